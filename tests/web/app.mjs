// What the scenarios share: the official app's side of the `mobile_flow_otp` flow
// (zulip-flutter's WebAuthPayload and decodeApiKey), an authenticator app's TOTP, and a
// person's typing on the pages.
import { createHmac, randomBytes } from 'node:crypto';

export const PHONE = { width: 390, height: 844 };
export const DESKTOP = { width: 1280, height: 800 };

// The one-time pad the app puts in `mobile_flow_otp`: 32 random bytes in hex.
export function newPad() {
    return randomBytes(32).toString('hex');
}

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
export function totp(secretBase32, epochSeconds = Date.now() / 1000) {
    const counter = Buffer.alloc(8);
    counter.writeBigUInt64BE(BigInt(Math.floor(epochSeconds / 30)));
    const mac = createHmac('sha1', base32Decode(secretBase32)).update(counter).digest();
    const offset = mac[mac.length - 1] & 0x0f;
    const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
    return String(value).padStart(6, '0');
}

// zulip-flutter's WebAuthPayload.parse and decodeApiKey, and handleWebAuthUrl's origin check
// against the server at `realmUrl`.
export async function decodeAsTheApp(realmUrl, url, pad) {
    const parsed = new URL(url);
    if (parsed.protocol !== 'zulip:' || parsed.host !== 'login') throw new Error(`not zulip://login: ${url}`);
    const names = [...parsed.searchParams.keys()];
    const expected = ['otp_encrypted_api_key', 'email', 'user_id', 'realm'];
    if (names.join() !== expected.join()) throw new Error(`parameters ${names} are not ${expected}`);
    const encrypted = parsed.searchParams.get('otp_encrypted_api_key');
    if (!/^[0-9a-fA-F]{64}$/.test(encrypted)) throw new Error(`bad encrypted key ${encrypted}`);
    const userId = parsed.searchParams.get('user_id');
    if (!/^[0-9]+$/.test(userId)) throw new Error(`bad user_id ${userId}`);
    const settings = await (await fetch(`${realmUrl}/api/v1/server_settings`)).json();
    const realm = parsed.searchParams.get('realm');
    if (new URL(realm).origin !== new URL(settings.realm_uri).origin) {
        throw new Error(`realm ${realm} is not the server's ${settings.realm_uri}`);
    }
    const padBytes = Buffer.from(pad, 'hex');
    const keyBytes = Buffer.from(encrypted, 'hex');
    const apiKey = String.fromCharCode(...keyBytes.map((b, i) => b ^ padBytes[i]));
    return { apiKey, email: parsed.searchParams.get('email'), userId: Number(userId) };
}

// The decoded key works for users/me, as the app's first request.
export async function checkKey(realmUrl, { apiKey, email, userId }) {
    const auth = Buffer.from(`${email}:${apiKey}`).toString('base64');
    const response = await fetch(`${realmUrl}/api/v1/users/me`, { headers: { Authorization: `Basic ${auth}` } });
    const body = await response.json();
    if (response.status !== 200 || body.email !== email || body.user_id !== userId) {
        throw new Error(`users/me answered ${response.status} ${JSON.stringify(body)}`);
    }
}

// Resolves with the zulip:// URL the browser is sent to, once it sets out to open it (as the
// app's in-app browser hands it to the app): so the page's policy let the redirect through.
// No app is installed here, so Chromium then aborts it.
// (A policy without `zulip:` in form-action blocks it, and this times out.)
export function appRedirect(page) {
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

// The field is shown, inside the phone's width, and can be typed into.
export async function expectVisible(page, selector) {
    const field = page.locator(selector);
    await field.waitFor({ state: 'visible', timeout: 10_000 });
    const box = await field.boundingBox();
    if (!box || box.width < 100 || box.x < 0 || box.x + box.width > PHONE.width) {
        throw new Error(`${selector} is not laid out within the phone's width: ${JSON.stringify(box)}`);
    }
}

export async function typeInto(page, selector, text) {
    await page.locator(selector).click();
    await page.locator(selector).pressSequentially(text, { delay: 15 });
}

// Submits the page's (first) form and waits for the answer to load.
export async function submit(page, button = page.locator('button[type=submit]').first()) {
    await Promise.all([page.waitForLoadState('load'), button.click()]);
}

export async function expectText(page, text) {
    await page.getByText(text, { exact: false }).first().waitFor({ state: 'visible', timeout: 10_000 });
}
