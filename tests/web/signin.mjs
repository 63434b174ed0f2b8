// The web sign-in in a real browser, as the official app runs it: Debian's chromium at a
// phone's size opens /accounts/login/?mobile_flow_otp=<pad>, a person types the password and
// a TOTP code, and the page's redirect to zulip://login is caught and decoded as
// zulip-flutter's WebAuthPayload does. The key must then work for users/me.
//
// Environment (set by tests/web/run): REALM_URL, PASSWORD, TOTP_EMAIL and TOTP_SECRET (a user
// enrolled by `user totp enroll`), ENROL_EMAIL (a user without a second factor in a realm that
// requires one), BROWSER_EMAIL (another such user, signing in without the app), SHOTS (where
// screenshots go), SECRETS_OUT (where the pads and encrypted keys
// are written). Prints "N passed, N failed".
import { createHmac, randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
    const value = process.env[name];
    if (!value) throw new Error(`${name} is not set`);
    return value;
};
const REALM_URL = env('REALM_URL');
const PASSWORD = env('PASSWORD');
const SHOTS = env('SHOTS');
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 800 };

// RFC 4648 base32, as in the otpauth URI.
function base32Decode(text) {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
    let bits = '';
    for (const c of text.replace(/=+$/, '').toUpperCase()) {
        const index = alphabet.indexOf(c);
        if (index < 0) throw new Error(`not base32: ${c}`);
        bits += index.toString(2).padStart(5, '0');
    }
    const bytes = [];
    for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
    return Buffer.from(bytes);
}

// RFC 6238: HMAC-SHA1, 30 s steps, six digits, as an authenticator app computes it.
function totp(secretBase32, epochSeconds = Date.now() / 1000) {
    const counter = Buffer.alloc(8);
    counter.writeBigUInt64BE(BigInt(Math.floor(epochSeconds / 30)));
    const mac = createHmac('sha1', base32Decode(secretBase32)).update(counter).digest();
    const offset = mac[mac.length - 1] & 0x0f;
    const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
    return String(value).padStart(6, '0');
}

// zulip-flutter's WebAuthPayload.parse and decodeApiKey, and handleWebAuthUrl's origin check.
async function decodeAsTheApp(url, pad) {
    const parsed = new URL(url);
    if (parsed.protocol !== 'zulip:' || parsed.host !== 'login') throw new Error(`not zulip://login: ${url}`);
    const names = [...parsed.searchParams.keys()];
    const expected = ['otp_encrypted_api_key', 'email', 'user_id', 'realm'];
    if (names.join() !== expected.join()) throw new Error(`parameters ${names} are not ${expected}`);
    const encrypted = parsed.searchParams.get('otp_encrypted_api_key');
    if (!/^[0-9a-fA-F]{64}$/.test(encrypted)) throw new Error(`bad encrypted key ${encrypted}`);
    const userId = parsed.searchParams.get('user_id');
    if (!/^[0-9]+$/.test(userId)) throw new Error(`bad user_id ${userId}`);
    const settings = await (await fetch(`${REALM_URL}/api/v1/server_settings`)).json();
    const realm = parsed.searchParams.get('realm');
    if (new URL(realm).origin !== new URL(settings.realm_uri).origin) {
        throw new Error(`realm ${realm} is not the server's ${settings.realm_uri}`);
    }
    const padBytes = Buffer.from(pad, 'hex');
    const keyBytes = Buffer.from(encrypted, 'hex');
    const apiKey = String.fromCharCode(...keyBytes.map((b, i) => b ^ padBytes[i]));
    return { apiKey, email: parsed.searchParams.get('email'), userId: Number(userId) };
}

async function checkKey({ apiKey, email, userId }) {
    const auth = Buffer.from(`${email}:${apiKey}`).toString('base64');
    const response = await fetch(`${REALM_URL}/api/v1/users/me`, { headers: { Authorization: `Basic ${auth}` } });
    const body = await response.json();
    if (response.status !== 200 || body.email !== email || body.user_id !== userId) {
        throw new Error(`users/me answered ${response.status} ${JSON.stringify(body)}`);
    }
}

// The pads and redirects, for tests/web/run to check that the server logged none of them.
function remember(pad, url) {
    appendFileSync(env('SECRETS_OUT'), `${pad}\n${new URL(url).searchParams.get('otp_encrypted_api_key')}\n`);
}

let shot = 0;
async function screenshot(page, name) {
    shot += 1;
    const path = join(SHOTS, `${String(shot).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path, fullPage: true });
    await page.setViewportSize(DESKTOP);
    await page.screenshot({ path: path.replace(/\.png$/, '-desktop.png'), fullPage: true });
    await page.setViewportSize(PHONE);
    console.log(`    screenshot ${path} (and -desktop)`);
}

// The field is shown, inside the phone's width, and can be typed into.
async function expectVisible(page, selector) {
    const field = page.locator(selector);
    await field.waitFor({ state: 'visible', timeout: 10_000 });
    const box = await field.boundingBox();
    if (!box || box.width < 100 || box.x < 0 || box.x + box.width > PHONE.width) {
        throw new Error(`${selector} is not laid out within the phone's width: ${JSON.stringify(box)}`);
    }
}

// Resolves with the zulip:// URL the browser is sent to, once it sets out to open it (as the
// app's in-app browser hands it to the app): so the page's policy let the form's redirect
// through. No app is installed here, so Chromium then aborts it.
// (A policy without `zulip:` in form-action blocks it, and this times out.)
function appRedirect(page) {
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no navigation to zulip://')), 20_000);
        page.on('request', (request) => {
            if (request.url().startsWith('zulip://')) {
                clearTimeout(timer);
                resolve(request.url());
            }
        });
    });
}

async function typeInto(page, selector, text) {
    await page.locator(selector).click();
    await page.locator(selector).pressSequentially(text, { delay: 15 });
}

async function passwordStep(page, email, pad) {
    await page.goto(`${REALM_URL}/accounts/login/${pad ? `?mobile_flow_otp=${pad}` : ''}`);
    await expectVisible(page, 'input[name=username]');
    await expectVisible(page, 'input[name=password]');
    await screenshot(page, `login-${email.split('@')[0]}`);
    await typeInto(page, 'input[name=username]', email);
    await typeInto(page, 'input[name=password]', PASSWORD);
    await Promise.all([page.waitForLoadState('load'), page.locator('button[type=submit]').click()]);
}

async function codeStep(page, code, name) {
    await expectVisible(page, 'input[name=otp_token]');
    await screenshot(page, name);
    const redirect = appRedirect(page);
    await typeInto(page, 'input[name=otp_token]', code);
    await page.locator('button[type=submit]').click();
    return redirect;
}

// A fresh browser with a profile of its own, as the brief for CI runs asks.
async function withPage(run) {
    const profile = mkdtempSync(join(tmpdir(), 'zulip-auth-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
        executablePath: '/usr/bin/chromium',
        args: [
            '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync',
        ],
        timeout: 60_000,
        viewport: PHONE,
        isMobile: true,
        hasTouch: true,
        deviceScaleFactor: 2,
    });
    try {
        const page = context.pages()[0] ?? (await context.newPage());
        page.setDefaultTimeout(20_000);
        await run(page);
    } finally {
        await context.close();
        rmSync(profile, { recursive: true, force: true });
    }
}

const scenarios = {
    // A user with a second factor: password, then a wrong code, then the right one.
    async 'password and TOTP code, then zulip://login'(page) {
        const email = env('TOTP_EMAIL');
        const pad = randomBytes(32).toString('hex');
        await passwordStep(page, email, pad);
        await expectVisible(page, 'input[name=otp_token]');
        await screenshot(page, 'code');
        const wrong = String((Number(totp(env('TOTP_SECRET'))) + 500_000) % 1_000_000).padStart(6, '0');
        await typeInto(page, 'input[name=otp_token]', wrong);
        await Promise.all([page.waitForLoadState('load'), page.locator('button[type=submit]').click()]);
        await page.locator('.error').waitFor({ state: 'visible' });
        await page.locator('input[name=otp_token]').fill('');
        const url = await codeStep(page, totp(env('TOTP_SECRET')), 'code-after-a-wrong-one');
        remember(pad, url);
        await checkKey(await decodeAsTheApp(url, pad));
    },
    // A user without one, in a realm that requires it: the page enrols them before any key.
    async 'enrolment during the first sign-in, then zulip://login'(page) {
        const email = env('ENROL_EMAIL');
        const pad = randomBytes(32).toString('hex');
        await passwordStep(page, email, pad);
        await expectVisible(page, '.qr svg');
        // A person types the key shown under the QR code into an authenticator app.
        const secret = (await page.locator('code.secret').innerText()).replace(/\s+/g, '');
        const url = await codeStep(page, totp(secret), 'enrolment');
        remember(pad, url);
        await checkKey(await decodeAsTheApp(url, pad));
    },
    // A person at a browser, without the app: enrolment, then the page says who is signed in.
    async 'enrolment in a plain browser, then the account page'(page) {
        const email = env('BROWSER_EMAIL');
        await passwordStep(page, email, null);
        await expectVisible(page, '.qr svg');
        await screenshot(page, 'enrolment-without-the-app');
        const secret = (await page.locator('code.secret').innerText()).replace(/\s+/g, '');
        await typeInto(page, 'input[name=otp_token]', totp(secret));
        await Promise.all([page.waitForLoadState('load'), page.locator('button[type=submit]').click()]);
        const text = await page.locator('main').innerText();
        // The finish opens the account page (tests/web/selfservice.mjs goes on from there).
        if (!text.includes('Signed in as') || !text.includes(email)) throw new Error(`not signed in: ${text}`);
        await screenshot(page, 'signed-in');
    },
};

mkdirSync(SHOTS, { recursive: true });
let passed = 0;
let failed = 0;
for (const [name, run] of Object.entries(scenarios)) {
    console.log(`--- ${name}`);
    try {
        await withPage(run);
        console.log(`ok   ${name}`);
        passed += 1;
    } catch (error) {
        console.log(`FAIL ${name}: ${error.stack ?? error}`);
        failed += 1;
    }
}
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
