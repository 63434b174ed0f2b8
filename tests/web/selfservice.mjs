// A person who forgot their password gets it back from their mailbox, in a real browser
// (Debian's chromium at a phone's size), with nothing from the operator: they follow the
// sign-in's link to the reset, open the link of the delivered message, set a new password,
// sign in, download a zuliprc for Zulip's Python library, see their key where they are
// looking, and meet the confirmations of a new key and of signing out. Every page is
// captured at the phone's size and at a desktop's.
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
const DESKTOP = { width: 1280, height: 800 };

let shot = 0;
async function screenshot(page, name) {
    shot += 1;
    const path = join(SHOTS, `selfservice-${String(shot).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path, fullPage: true });
    await page.setViewportSize(DESKTOP);
    await page.screenshot({ path: path.replace(/\.png$/, '-desktop.png'), fullPage: true });
    await page.setViewportSize(PHONE);
    console.log(`    screenshot ${path} (and -desktop)`);
}

// The element is on the phone's screen as the page opened, without scrolling.
async function expectInView(page, selector) {
    const box = await page.locator(selector).boundingBox();
    if (!box || box.y < 0 || box.y + box.height > PHONE.height) {
        throw new Error(`${selector} is not on screen: ${JSON.stringify(box)}`);
    }
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

    // 1. The request, from the sign-in's link.
    await page.goto(`${REALM_URL}/accounts/login/`);
    await screenshot(page, 'login-with-mail');
    await Promise.all([page.waitForLoadState('load'), page.getByText('Forgot your password?').click()]);
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
    // The page opens at its top, and no field takes the focus.
    const focused = await page.evaluate(() => [document.activeElement?.tagName, window.scrollY]);
    if (focused[0] !== 'BODY' || focused[1] !== 0) throw new Error(`focus and scroll: ${focused}`);
    await screenshot(page, 'account');
    const form = page.locator('form[action="/accounts/settings/api-key#api-key"]');
    await form.locator('input[name=password]').fill(NEW_PASSWORD);
    const zuliprcButton = form.locator('button[formaction="/accounts/settings/zuliprc"]');
    const [download] = await Promise.all([page.waitForEvent('download'), zuliprcButton.click()]);
    if (download.suggestedFilename() !== 'zuliprc') throw new Error(`downloaded ${download.suggestedFilename()}`);
    await download.saveAs(env('ZULIPRC_OUT'));
    const zuliprc = readFileSync(env('ZULIPRC_OUT'), 'utf8');
    const expected = `[api]\nemail=${EMAIL}\nkey=${after.body.api_key}\nsite=${REALM_URL}\n`;
    if (zuliprc !== expected) throw new Error(`zuliprc is\n${zuliprc}\nnot\n${expected}`);

    // 6. "Show API key": the key is on screen, in the section the person was using.
    await form.locator('input[name=password]').fill(NEW_PASSWORD);
    await Promise.all([page.waitForLoadState('load'), form.getByText('Show API key').click()]);
    await expectText(page, after.body.api_key);
    await expectInView(page, '#api-key .status code');
    await screenshot(page, 'api-key-shown');

    // 7. A new key and signing out are each confirmed on a page of their own.
    await Promise.all([page.waitForLoadState('load'), page.getByText('Generate a new API key').click()]);
    await expectText(page, 'stops working at once');
    await screenshot(page, 'confirm-new-key');
    await Promise.all([page.waitForLoadState('load'), page.getByText('Keep the current key').click()]);
    await Promise.all([page.waitForLoadState('load'), page.locator('a', { hasText: 'Sign out' }).click()]);
    await expectText(page, 'Sign out of');
    await screenshot(page, 'confirm-sign-out');
    await Promise.all([page.waitForLoadState('load'), page.locator('button', { hasText: 'Sign out' }).click()]);
    await page.locator('input[name=username]').waitFor({ state: 'visible' });
    const kept = await fetchApiKey(NEW_PASSWORD);
    if (kept.body.api_key !== after.body.api_key) throw new Error('the key changed without a confirmation');
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
    console.log('ok   forgotten password: mail, link, new password, sign-in, zuliprc, key, confirmations');
} catch (error) {
    console.log(`FAIL forgotten password: ${error.stack ?? error}`);
    failed = true;
} finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
