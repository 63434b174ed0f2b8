// A real OpenID provider for tests: npm oidc-provider 8.x (OpenID Certified), with one static
// client and its development login pages, on loopback.
//
//   REDIRECT_URIS  the client's return URLs, comma-separated (http://127.0.0.1:PORT/complete/oidc/)
//   CLIENT_ID      default "zulip"
//   CLIENT_SECRET  default "zulip-test-secret"
//   PORT           default 0 (any free port)
//   CONFORM        "1" (default): the email and profile claims go only to userinfo, as the
//                  specification says for the code flow; "0": they are in the ID token too,
//                  as Keycloak, Authentik, Google and Entra ID put them
//
// It prints "issuer http://localhost:PORT" once it listens. The issuer is on localhost and
// the server under test on 127.0.0.1, so a browser treats them as different sites.
//
// The development login page takes any login and password. The login is the account id and
// the email; `email_verified` is false for a login that starts with "unverified-". The name
// is "Name of LOGIN". PKCE (S256) is required.
import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';

import Provider from 'oidc-provider';

const redirectUris = (process.env.REDIRECT_URIS ?? '').split(',').filter(Boolean);
if (redirectUris.length === 0) {
  console.error('REDIRECT_URIS is required');
  process.exit(2);
}

// A signing key made now: the relying party must fetch it from jwks_uri.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: `test-${Date.now()}`, use: 'sig', alg: 'RS256' };

const configuration = {
  clients: [
    {
      client_id: process.env.CLIENT_ID ?? 'zulip',
      client_secret: process.env.CLIENT_SECRET ?? 'zulip-test-secret',
      redirect_uris: redirectUris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: ['a cookie key for tests only'] },
  pkce: { required: () => true },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  conformIdTokenClaims: process.env.CONFORM !== '0',
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: id,
          email_verified: !id.startsWith('unverified-'),
          name: `Name of ${id}`,
        };
      },
    };
  },
};

const server = http.createServer();
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://localhost:${port}`;
  const provider = new Provider(issuer, configuration);
  server.on('request', provider.callback());
  console.log(`issuer ${issuer}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
