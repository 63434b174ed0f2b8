// A passkey for Chromium driven by playwright-core: the DevTools protocol's virtual
// authenticator (WebAuthn.enable, WebAuthn.addVirtualAuthenticator) on a page's CDP session,
// as a phone's platform authenticator: CTAP2, internal transport, resident keys, and a user
// who is verified at every touch.
//
// Run directly (`node authenticator.mjs PASSKEY_JS SHOTS`, from beside playwright-core), it
// checks itself: a throw-away static server on http://localhost:PORT (WebAuthn refuses an IP
// address as the RP ID; localhost is a secure context) serves a page with the given
// passkey.js under our pages' policy, and Chromium registers a passkey through it and signs
// in with it again without a username. Prints "N passed, N failed" and the time taken.

import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

/// Gives `page` a virtual platform authenticator; `credentials()` lists what it holds.
export async function addVirtualAuthenticator(page) {
    const session = await page.context().newCDPSession(page);
    await session.send('WebAuthn.enable', { enableUI: false });
    const { authenticatorId } = await session.send('WebAuthn.addVirtualAuthenticator', {
        options: {
            protocol: 'ctap2',
            transport: 'internal',
            hasResidentKey: true,
            hasUserVerification: true,
            isUserVerified: true,
            automaticPresenceSimulation: true,
        },
    });
    return {
        authenticatorId,
        async credentials() {
            return (await session.send('WebAuthn.getCredentials', { authenticatorId })).credentials;
        },
        // Gives it a credential another authenticator held (as credentials() listed it,
        // private key included): the same passkey in a fresh browser context.
        async add(credential) {
            await session.send('WebAuthn.addCredential', { authenticatorId, credential });
        },
        async remove() {
            await session.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId });
        },
    };
}

// --- the self-check ---

const base64url = (bytes) => Buffer.from(bytes).toString('base64url');
const isBase64url = (text) => typeof text === 'string' && /^[A-Za-z0-9_-]+$/.test(text);

// The policy the binary gives a page with passkey buttons.
const POLICY = "default-src 'none'; script-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'";

const PAGE = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Passkey self-check</title>
<script src="/static/passkey.js" defer></script></head>
<body><main><p id="outcome">ready</p>
<form method="post" action="/create"><input type="hidden" name="csrfmiddlewaretoken" value="token">
<button type="button" hidden data-passkey="create">Add a passkey</button></form>
<form method="post" action="/get"><input type="hidden" name="csrfmiddlewaretoken" value="token">
<button type="button" hidden data-passkey="get">Sign in with a passkey</button></form>
</main></body></html>`;

// What a relying party at `origin` hands out and checks, as webauthn-rs shapes it: the
// options' JSON (binary values base64url, the ceremony's id under `ceremony`), and the
// answer's client data. Signatures are webauthn-rs' business, not this check's.
function relyingParty(origin) {
    const userHandle = randomBytes(16);
    const issued = new Map();
    let registered = null;
    const begin = (publicKey) => {
        const ceremony = base64url(randomBytes(32));
        const challenge = base64url(randomBytes(32));
        issued.set(ceremony, challenge);
        return { ceremony, publicKey: { ...publicKey, challenge } };
    };
    const clientData = (form, type) => {
        const challenge = issued.get(form.get('ceremony'));
        issued.delete(form.get('ceremony'));
        const credential = JSON.parse(form.get('credential'));
        if (!challenge) throw new Error('no such ceremony');
        if (credential.type !== 'public-key' || !isBase64url(credential.rawId) || credential.id !== credential.rawId) {
            throw new Error(`not a credential: ${form.get('credential')}`);
        }
        const data = JSON.parse(Buffer.from(credential.response.clientDataJSON, 'base64url'));
        if (data.type !== type || data.challenge !== challenge || data.origin !== origin) {
            throw new Error(`client data ${JSON.stringify(data)}`);
        }
        return credential;
    };
    return {
        options(path) {
            if (path === '/create') {
                return begin({
                    rp: { id: 'localhost', name: 'Self-check' },
                    user: { id: base64url(userHandle), name: 'iago@example.com', displayName: 'Iago' },
                    pubKeyCredParams: [{ alg: -7, type: 'public-key' }, { alg: -257, type: 'public-key' }],
                    timeout: 300000,
                    attestation: 'none',
                    authenticatorSelection: { requireResidentKey: true, residentKey: 'required', userVerification: 'required' },
                    excludeCredentials: registered ? [{ type: 'public-key', id: registered }] : [],
                    extensions: { credProps: true, credentialProtectionPolicy: 'userVerificationRequired', enforceCredentialProtectionPolicy: false, uvm: true },
                });
            }
            return begin({ allowCredentials: [], rpId: 'localhost', timeout: 300000, userVerification: 'required', extensions: { uvm: true } });
        },
        finish(path, form) {
            if (path === '/create') {
                const credential = clientData(form, 'webauthn.create');
                if (!isBase64url(credential.response.attestationObject)) throw new Error('no attestation object');
                registered = credential.rawId;
                return `registered ${registered}`;
            }
            const credential = clientData(form, 'webauthn.get');
            const { authenticatorData, signature, userHandle: handle } = credential.response;
            if (!isBase64url(authenticatorData) || !isBase64url(signature)) throw new Error('no signature');
            if (credential.rawId !== registered || handle !== base64url(userHandle)) {
                throw new Error(`credential ${credential.rawId} of ${handle}`);
            }
            return `signed in with ${registered}`;
        },
    };
}

// Serves PAGE, the script, the options (POST with passkey_options=1) and the finished forms
// of `site.rp`; `site.posts` records what the script sent for the options.
function serve(script, site) {
    const server = createServer((request, response) => {
        const answer = (status, type, body) => {
            response.writeHead(status, { 'Content-Type': type, 'Content-Security-Policy': POLICY, 'Cache-Control': 'no-store' });
            response.end(body);
        };
        let body = '';
        request.on('data', (chunk) => { body += chunk; });
        request.on('end', () => {
            try {
                if (request.method === 'GET' && request.url === '/') return answer(200, 'text/html; charset=utf-8', PAGE);
                if (request.method === 'GET' && request.url === '/static/passkey.js') return answer(200, 'text/javascript', script);
                if (request.method !== 'POST' || !['/create', '/get'].includes(request.url)) return answer(404, 'text/plain', 'not found');
                const form = new URLSearchParams(body);
                if (form.get('passkey_options') === '1') {
                    site.posts.push({ path: request.url, type: request.headers['content-type'], form: Object.fromEntries(form) });
                    return answer(200, 'application/json', JSON.stringify(site.rp.options(request.url)));
                }
                const outcome = site.rp.finish(request.url, form);
                return answer(200, 'text/html; charset=utf-8', `<!DOCTYPE html><p id="outcome">${outcome}</p>`);
            } catch (error) {
                return answer(400, 'text/html; charset=utf-8', `<!DOCTYPE html><p id="outcome">refused: ${error.message}</p>`);
            }
        });
    });
    return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function selfCheck(scriptPath, shots) {
    const started = Date.now();
    const script = readFileSync(scriptPath, 'utf8');
    mkdirSync(shots, { recursive: true });
    // Chromium resolves localhost to loopback itself; the server listens on 127.0.0.1 only.
    const site = { rp: null, posts: [] };
    const server = await serve(script, site);
    const origin = `http://localhost:${server.address().port}`;
    site.rp = relyingParty(origin);
    const { posts } = site;
    const browser = await chromium.launch({
        executablePath: '/usr/bin/chromium',
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync'],
        timeout: 60_000,
    });
    let passed = 0;
    let failed = 0;
    const check = async (name, run) => {
        const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
        const page = await context.newPage();
        page.setDefaultTimeout(20_000);
        try {
            await run(page);
            console.log(`ok   ${name}`);
            passed += 1;
        } catch (error) {
            console.log(`FAIL ${name}: ${error.stack ?? error}`);
            failed += 1;
        } finally {
            await context.close();
        }
    };
    const outcome = (page) => page.locator('#outcome').innerText();
    const submitted = (page, click) => Promise.all([page.waitForURL((url) => url.pathname !== '/'), click]);

    await check('without WebAuthn the buttons stay hidden', async (page) => {
        await page.addInitScript(() => { delete window.PublicKeyCredential; });
        await page.goto(`${origin}/`);
        await page.waitForLoadState('load');
        if (await page.locator('button[data-passkey]:visible').count() !== 0) throw new Error('a passkey button is shown');
    });
    await check('create, then get without a username, through passkey.js', async (page) => {
        const authenticator = await addVirtualAuthenticator(page);
        const errors = [];
        page.on('pageerror', (error) => errors.push(error));
        page.on('console', (message) => { if (message.type() === 'error') errors.push(message.text()); });
        await page.goto(`${origin}/`);
        await submitted(page, page.locator('button[data-passkey=create]').click());
        const created = await outcome(page);
        await page.screenshot({ path: join(shots, 'passkey-selfcheck-created.png') });
        if (!created.startsWith('registered ')) throw new Error(created);
        const [credential, ...more] = await authenticator.credentials();
        if (!credential || more.length || !credential.isResidentCredential) {
            throw new Error(`the authenticator holds ${JSON.stringify(await authenticator.credentials())}`);
        }
        if (`registered ${credential.credentialId.replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_')}` !== created) {
            throw new Error(`${created}, but the authenticator holds ${credential.credentialId}`);
        }
        await page.goto(`${origin}/`);
        await submitted(page, page.locator('button[data-passkey=get]').click());
        const signedIn = await outcome(page);
        await page.screenshot({ path: join(shots, 'passkey-selfcheck-signed-in.png') });
        if (!signedIn.startsWith('signed in with ')) throw new Error(signedIn);
        if ((await authenticator.credentials())[0].signCount < 1) throw new Error('the counter did not move');
        if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
        const expected = ['/create', '/get'];
        if (posts.map((post) => post.path).join() !== expected.join() ||
            !posts.every((post) => post.type === 'application/x-www-form-urlencoded;charset=UTF-8' && post.form.csrfmiddlewaretoken === 'token')) {
            throw new Error(`the options were asked for as ${JSON.stringify(posts)}`);
        }
    });
    await browser.close();
    server.close();
    console.log(`passkey self-check: ${passed} passed, ${failed} failed, in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return failed === 0;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
    const [scriptPath, shots] = process.argv.slice(2);
    if (!scriptPath || !shots) {
        console.error('usage: node authenticator.mjs PASSKEY_JS SHOTS');
        process.exit(2);
    }
    process.exit((await selfCheck(scriptPath, shots)) ? 0 : 1);
}
