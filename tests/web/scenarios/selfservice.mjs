// A person who forgot their password gets it back from their mailbox, with nothing from the
// operator: they follow the sign-in's link to the reset, open the link of the delivered
// message, set a new password, sign in, download a zuliprc for Zulip's Python library, see
// their key where they are looking, and meet the confirmations of a new key and of signing
// out.
//
// Given (by tests/web/run): REALM_URL (a server whose mail goes to the test's SMTP server),
// EMAIL, OLD_PASSWORD, NEW_PASSWORD, MAILDIR (where that SMTP server writes each message),
// ZULIPRC_OUT (where the download is saved).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { PHONE, expectText, submit } from '../app.mjs';

// The element is on the phone's screen as the page opened, without scrolling.
async function expectInView(page, selector) {
    const box = await page.locator(selector).boundingBox();
    if (!box || box.y < 0 || box.y + box.height > PHONE.height) {
        throw new Error(`${selector} is not on screen: ${JSON.stringify(box)}`);
    }
}

// The link of the first message for `email` in `maildir`, its quoted-printable soft breaks
// joined.
async function deliveredLink(maildir, email) {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
        const names = readdirSync(maildir).filter((n) => n.endsWith('.eml') && !n.startsWith('.')).sort();
        if (names.length > 0) {
            const message = readFileSync(join(maildir, names[0]), 'utf8').replace(/=\r?\n/g, '');
            if (!message.includes(`X-Envelope-To: ${email}`)) throw new Error(`mail for someone else:\n${message}`);
            const match = message.match(/https?:\/\/[^\s"<>]*\/accounts\/password\/reset\/[A-Za-z0-9_-]{43}\//);
            if (!match) throw new Error(`no reset link in\n${message}`);
            return match[0];
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error('no message arrived within 20 s');
}

export default async function (t) {
    const realmUrl = t.env('REALM_URL');
    const email = t.env('EMAIL');
    const oldPassword = t.env('OLD_PASSWORD');
    const newPassword = t.env('NEW_PASSWORD');
    const fetchApiKey = async (password) => {
        const body = new URLSearchParams({ username: email, password });
        const response = await fetch(`${realmUrl}/api/v1/fetch_api_key`, { method: 'POST', body });
        return { status: response.status, body: await response.json() };
    };

    await t.check('forgotten password: mail, link, new password, sign-in, zuliprc, key, confirmations', async (page) => {
        const before = await fetchApiKey(oldPassword);
        if (before.status !== 200) throw new Error(`the old password did not log in: ${JSON.stringify(before)}`);

        // 1. The request, from the sign-in's link.
        await page.goto(`${realmUrl}/accounts/login/`);
        await t.screenshot(page, 'login-with-mail');
        await Promise.all([page.waitForLoadState('load'), page.getByText('Forgot your password?').click()]);
        await page.locator('input[name=email]').fill(email);
        await t.screenshot(page, 'request');
        await submit(page);
        await expectText(page, 'Password reset sent!');
        await t.screenshot(page, 'sent');

        // 2. The link from the delivered message, on the realm's URL.
        const link = await deliveredLink(t.env('MAILDIR'), email);
        if (!link.startsWith(`${realmUrl}/`)) throw new Error(`the link ${link} is not on ${realmUrl}`);
        await page.goto(link);

        // 3. The new password.
        await page.locator('input[name=new_password1]').fill(newPassword);
        await page.locator('input[name=new_password2]').fill(newPassword);
        await t.screenshot(page, 'new-password');
        await submit(page);
        await expectText(page, "You've set a new password!");
        await t.screenshot(page, 'done');

        // 4. The old password fails, the new one gives the same key.
        const old = await fetchApiKey(oldPassword);
        if (old.status !== 401 || old.body.code !== 'AUTHENTICATION_FAILED') {
            throw new Error(`the old password still works: ${JSON.stringify(old)}`);
        }
        const after = await fetchApiKey(newPassword);
        if (after.status !== 200 || after.body.api_key !== before.body.api_key) {
            throw new Error(`the new password gave ${JSON.stringify(after)}, not the key ${before.body.api_key}`);
        }

        // 5. Sign in, then download zuliprc with the password entered again.
        await page.goto(`${realmUrl}/accounts/login/`);
        await page.locator('input[name=username]').fill(email);
        await page.locator('input[name=password]').fill(newPassword);
        await submit(page);
        await expectText(page, 'Signed in as');
        // The page opens at its top, and no field takes the focus.
        const focused = await page.evaluate(() => [document.activeElement?.tagName, window.scrollY]);
        if (focused[0] !== 'BODY' || focused[1] !== 0) throw new Error(`focus and scroll: ${focused}`);
        await t.screenshot(page, 'account');
        const form = page.locator('form[action="/accounts/settings/api-key#api-key"]');
        await form.locator('input[name=password]').fill(newPassword);
        const zuliprcButton = form.locator('button[formaction="/accounts/settings/zuliprc"]');
        const [download] = await Promise.all([page.waitForEvent('download'), zuliprcButton.click()]);
        if (download.suggestedFilename() !== 'zuliprc') throw new Error(`downloaded ${download.suggestedFilename()}`);
        await download.saveAs(t.env('ZULIPRC_OUT'));
        const zuliprc = readFileSync(t.env('ZULIPRC_OUT'), 'utf8');
        const expected = `[api]\nemail=${email}\nkey=${after.body.api_key}\nsite=${realmUrl}\n`;
        if (zuliprc !== expected) throw new Error(`zuliprc is\n${zuliprc}\nnot\n${expected}`);

        // 6. "Show API key": the key is on screen, in the section the person was using.
        await form.locator('input[name=password]').fill(newPassword);
        await Promise.all([page.waitForLoadState('load'), form.getByText('Show API key').click()]);
        await expectText(page, after.body.api_key);
        await expectInView(page, '#api-key .status code');
        await t.screenshot(page, 'api-key-shown');

        // 7. A new key and signing out are each confirmed on a page of their own.
        await Promise.all([page.waitForLoadState('load'), page.getByText('Generate a new API key').click()]);
        await expectText(page, 'stops working at once');
        await t.screenshot(page, 'confirm-new-key');
        await Promise.all([page.waitForLoadState('load'), page.getByText('Keep the current key').click()]);
        await Promise.all([page.waitForLoadState('load'), page.locator('a', { hasText: 'Sign out' }).click()]);
        await expectText(page, 'Sign out of');
        await t.screenshot(page, 'confirm-sign-out');
        await Promise.all([page.waitForLoadState('load'), page.locator('button', { hasText: 'Sign out' }).click()]);
        await page.locator('input[name=username]').waitFor({ state: 'visible' });
        const kept = await fetchApiKey(newPassword);
        if (kept.body.api_key !== after.body.api_key) throw new Error('the key changed without a confirmation');
    });
}
