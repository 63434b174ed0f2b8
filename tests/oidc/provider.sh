# Shared by tests/oidc/run and tests/web/run (sourced, from the repository's root): npm
# oidc-provider 8.8.1 (pinned in tests/oidc/package-lock.json; 9.x needs Node 22) installed with
# npm ci into /var/cache/zulip-auth-ci/oidc (outside the checkout, reused while the lockfile is
# unchanged; ZULIP_AUTH_CI_CACHE moves it), and a function that starts tests/oidc/provider.mjs.

oidc_cache=${ZULIP_AUTH_CI_CACHE:-/var/cache/zulip-auth-ci}/oidc
if ! cmp -s tests/oidc/package-lock.json "$oidc_cache/package-lock.json" ||
    [ ! -f "$oidc_cache/node_modules/oidc-provider/package.json" ]; then
    mkdir -p "$oidc_cache"
    cp tests/oidc/package.json tests/oidc/package-lock.json "$oidc_cache/"
    (cd "$oidc_cache" && npm ci --no-audit --no-fund --loglevel=error)
fi
# ES modules resolve packages beside the script, so the provider runs from the cache.
cp tests/oidc/provider.mjs "$oidc_cache/provider.mjs"

# oidc_provider LOG CONFORM RETURN_URLS: starts a provider on localhost whose client returns to
# RETURN_URLS (comma-separated), logging to LOG; waits for its discovery document; sets $issuer
# and $pid (the caller stops it).
oidc_provider() {
    local log=$1 conform=$2 return_urls=$3
    REDIRECT_URIS=$return_urls CONFORM=$conform node "$oidc_cache/provider.mjs" >"$log.out" 2>"$log" &
    pid=$!
    issuer=
    for _ in $(seq 200); do
        issuer=$(sed -n 's/^issuer //p' "$log.out")
        if [ -n "$issuer" ] && node -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(2000) })
            .then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' \
            "$issuer/.well-known/openid-configuration"; then
            return 0
        fi
        sleep 0.05
    done
    echo "the identity provider did not start" >&2
    cat "$log" >&2
    return 1
}
