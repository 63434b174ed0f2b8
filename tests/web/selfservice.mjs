// A person who forgot their password gets it back from their mailbox, in a real browser
// (Debian's chromium at a phone's size), with nothing from the operator: they ask for a
// reset, open the link of the delivered message, set a new password, sign in, and download
// a zuliprc for Zulip's Python library.
//
// Environment (set by tests/web/run): REALM_URL, EMAIL, OLD_PASSWORD, NEW_PASSWORD, MAILDIR
// (where the test's SMTP server writes each message), ZULIPRC_OUT (where the download is
// saved), SHOTS (screenshots). Exits non-zero on the first failure.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
    const value = process.env[name];
    if (!value) throw new Error(`${name} is not set`);
    return value;
};
const REALM_URL = env('REALM_URL');
const EMAIL = env('EMAIL');
const OLD_PASSWORD = env('OLD_PASSWORD');
const NEW_PASSWORD = env('NEW_PASSWORD');
const MAILDIR = env('MAILDIR');
const SHOTS = env('SHOTS');
const PHONE = { width: 390, height: 844 };

let shot = 0;
async function screenshot(page, name) {
    shot += 1;
    const path = join(SHOTS, `selfservice-${String(shot).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path, fullPage: true });
    console.log(`    screenshot ${path}`);
}

async function fetchApiKey(password) {
    const body = new URLSearchParams({ username: EMAIL, password });
    const response = await fetch(`${REALM_URL}/api/v1/fetch_api_key`, { method: 'POST', body });
    return { status: response.status, body: await response.json() };
}

// The link of the first message that arrives, its quoted-printable soft breaks joined.
async function deliveredLink() {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
        const names = readdirSync(MAILDIR).filter((n) => n.endsWith('.eml') && !n.startsWith('.')).sort();
        if (names.length > 0) {
            const message = readFileSync(join(MAILDIR, names[0]), 'utf8').replace(/=\r?\n/g, '');
            if (!message.includes(`X-Envelope-To: ${EMAIL}`)) throw new Error(`mail for someone else:\n${message}`);
            const match = message.match(/https?:\/\/[^\s"<>]*\/accounts\/password\/reset\/[A-Za-z0-9_-]{43}\//);
            if (!match) throw new Error(`no reset link in\n${message}`);
            return match[0];
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error('no message arrived within 20 s');
}

async function submit(page) {
    await Promise.all([page.waitForLoadState('load'), page.locator('button[type=submit]').first().click()]);
}

async function expectText(page, text) {
    await page.getByText(text, { exact: false }).first().waitFor({ state: 'visible', timeout: 10_000 });
}

async function scenario(page) {
    const before = await fetchApiKey(OLD_PASSWORD);
    if (before.status !== 200) throw new Error(`the old password did not log in: ${JSON.stringify(before)}`);

    // 1. The request.
    await page.goto(`${REALM_URL}/accounts/password/reset/`);
    await page.locator('input[name=email]').fill(EMAIL);
    await screenshot(page, 'request');
    await submit(page);
    await expectText(page, 'Password reset sent!');
    await screenshot(page, 'sent');

    // 2. The link from the delivered message, on the realm's URL.
    const link = await deliveredLink();
    if (!link.startsWith(`${REALM_URL}/`)) throw new Error(`the link ${link} is not on ${REALM_URL}`);
    await page.goto(link);

    // 3. The new password.
    await page.locator('input[name=new_password1]').fill(NEW_PASSWORD);
    await page.locator('input[name=new_password2]').fill(NEW_PASSWORD);
    await screenshot(page, 'new-password');
    await submit(page);
    await expectText(page, "You've set a new password!");
    await screenshot(page, 'done');

    // 4. The old password fails, the new one gives the same key.
    const old = await fetchApiKey(OLD_PASSWORD);
    if (old.status !== 401 || old.body.code !== 'AUTHENTICATION_FAILED') {
        throw new Error(`the old password still works: ${JSON.stringify(old)}`);
    }
    const after = await fetchApiKey(NEW_PASSWORD);
    if (after.status !== 200 || after.body.api_key !== before.body.api_key) {
        throw new Error(`the new password gave ${JSON.stringify(after)}, not the key ${before.body.api_key}`);
    }

    // 5. Sign in, then download zuliprc with the password entered again.
    await page.goto(`${REALM_URL}/accounts/login/`);
    await page.locator('input[name=username]').fill(EMAIL);
    await page.locator('input[name=password]').fill(NEW_PASSWORD);
    await submit(page);
    await expectText(page, 'Signed in as');
    await screenshot(page, 'account');
    const form = page.locator('form[action="/accounts/settings/zuliprc"]');
    await form.locator('input[name=password]').fill(NEW_PASSWORD);
    const [download] = await Promise.all([page.waitForEvent('download'), form.locator('button').click()]);
    if (download.suggestedFilename() !== 'zuliprc') throw new Error(`downloaded ${download.suggestedFilename()}`);
    await download.saveAs(env('ZULIPRC_OUT'));
    const zuliprc = readFileSync(env('ZULIPRC_OUT'), 'utf8');
    const expected = `[api]\nemail=${EMAIL}\nkey=${after.body.api_key}\nsite=${REALM_URL}\n`;
    if (zuliprc !== expected) throw new Error(`zuliprc is\n${zuliprc}\nnot\n${expected}`);
}

mkdirSync(SHOTS, { recursive: true });
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
    acceptDownloads: true,
});
let failed = false;
try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(20_000);
    await scenario(page);
    console.log('ok   forgotten password: mail, link, new password, sign-in, zuliprc');
} catch (error) {
    console.log(`FAIL forgotten password: ${error.stack ?? error}`);
    failed = true;
} finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
