// The web sign-in as the official app runs it: the app opens
// /accounts/login/?mobile_flow_otp=<pad>, a person types the password and a TOTP code, and the
// page's redirect to zulip://login is caught and decoded as zulip-flutter does. The key must
// then work for users/me.
//
// Given (by tests/web/run): REALM_URL, PASSWORD, TOTP_EMAIL and TOTP_SECRET (a user enrolled by
// `user totp enroll`), ENROL_EMAIL (a user without a second factor in a realm that requires
// one), BROWSER_EMAIL (another such user, signing in without the app), SECRETS_OUT (where the
// pads and encrypted keys are written, for the check that the server logged none).
import { appendFileSync } from 'node:fs';

import { appRedirect, checkKey, decodeAsTheApp, expectVisible, newPad, submit, totp, typeInto } from '../app.mjs';

export default async function (t) {
    const realmUrl = t.env('REALM_URL');

    const remember = (pad, url) => {
        const encrypted = new URL(url).searchParams.get('otp_encrypted_api_key');
        appendFileSync(t.env('SECRETS_OUT'), `${pad}\n${encrypted}\n`);
    };
    const passwordStep = async (page, email, pad) => {
        await page.goto(`${realmUrl}/accounts/login/${pad ? `?mobile_flow_otp=${pad}` : ''}`);
        await expectVisible(page, 'input[name=username]');
        await expectVisible(page, 'input[name=password]');
        await t.screenshot(page, `login-${email.split('@')[0]}`);
        await typeInto(page, 'input[name=username]', email);
        await typeInto(page, 'input[name=password]', t.env('PASSWORD'));
        await submit(page);
    };
    const codeStep = async (page, code, name) => {
        await expectVisible(page, 'input[name=otp_token]');
        await t.screenshot(page, name);
        const redirect = appRedirect(page);
        await typeInto(page, 'input[name=otp_token]', code);
        await page.locator('button[type=submit]').click();
        return redirect;
    };

    // A user with a second factor: password, then a wrong code, then the right one.
    await t.check('password and TOTP code, then zulip://login', async (page) => {
        const secret = t.env('TOTP_SECRET');
        const pad = newPad();
        await passwordStep(page, t.env('TOTP_EMAIL'), pad);
        await expectVisible(page, 'input[name=otp_token]');
        await t.screenshot(page, 'code');
        const wrong = String((Number(totp(secret)) + 500_000) % 1_000_000).padStart(6, '0');
        await typeInto(page, 'input[name=otp_token]', wrong);
        await submit(page);
        await page.locator('.error').waitFor({ state: 'visible' });
        await page.locator('input[name=otp_token]').fill('');
        const url = await codeStep(page, totp(secret), 'code-after-a-wrong-one');
        remember(pad, url);
        await checkKey(realmUrl, await decodeAsTheApp(realmUrl, url, pad));
    });

    // A user without one, in a realm that requires it: the page enrols them before any key.
    await t.check('enrolment during the first sign-in, then zulip://login', async (page) => {
        const pad = newPad();
        await passwordStep(page, t.env('ENROL_EMAIL'), pad);
        await expectVisible(page, '.qr svg');
        // A person types the key shown under the QR code into an authenticator app.
        const secret = (await page.locator('code.secret').innerText()).replace(/\s+/g, '');
        const url = await codeStep(page, totp(secret), 'enrolment');
        remember(pad, url);
        await checkKey(realmUrl, await decodeAsTheApp(realmUrl, url, pad));
    });

    // A person at a browser, without the app: enrolment, then the page says who is signed in.
    await t.check('enrolment in a plain browser, then the account page', async (page) => {
        const email = t.env('BROWSER_EMAIL');
        await passwordStep(page, email, null);
        await expectVisible(page, '.qr svg');
        await t.screenshot(page, 'enrolment-without-the-app');
        const secret = (await page.locator('code.secret').innerText()).replace(/\s+/g, '');
        await typeInto(page, 'input[name=otp_token]', totp(secret));
        await submit(page);
        const text = await page.locator('main').innerText();
        // The finish opens the account page (the selfservice scenario goes on from there).
        if (!text.includes('Signed in as') || !text.includes(email)) throw new Error(`not signed in: ${text}`);
        await t.screenshot(page, 'signed-in');
    });
}
