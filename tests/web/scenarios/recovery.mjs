// A lost phone (web.md §4.1): the official app's sign-in with a recovery code in place of the
// authenticator's code. The app opens /accounts/login/?mobile_flow_otp=<pad>, a person types the
// password, then a recovery code into the code's field (whose pattern the browser checks before
// it submits); the redirect to zulip://login is decoded as zulip-flutter does and the key must
// work for users/me. The same code is then refused, in the same field, as a wrong code.
//
// Given (by tests/web/run): REALM_URL, PASSWORD, EMAIL (a user enrolled by `user totp enroll`),
// CODE (one of the recovery codes that printed), SECRETS_OUT (where the pads and encrypted keys
// are written, for the check that the server logged none).
import { appendFileSync } from 'node:fs';

import { appRedirect, checkKey, decodeAsTheApp, expectText, expectVisible, newPad, submit, typeInto } from '../app.mjs';

export default async function (t) {
    const realmUrl = t.env('REALM_URL');
    const code = t.env('CODE');

    const passwordStep = async (page, pad) => {
        await page.goto(`${realmUrl}/accounts/login/?mobile_flow_otp=${pad}`);
        await expectVisible(page, 'input[name=username]');
        await typeInto(page, 'input[name=username]', t.env('EMAIL'));
        await typeInto(page, 'input[name=password]', t.env('PASSWORD'));
        await submit(page);
        await expectVisible(page, 'input[name=otp_token]');
        await expectText(page, 'or one of your recovery codes');
    };

    await t.check('password and a recovery code, then zulip://login', async (page) => {
        const pad = newPad();
        await passwordStep(page, pad);
        await t.screenshot(page, 'code-step');
        const redirect = appRedirect(page);
        await typeInto(page, 'input[name=otp_token]', code);
        await page.locator('button[type=submit]').click();
        const url = await redirect;
        const encrypted = new URL(url).searchParams.get('otp_encrypted_api_key');
        appendFileSync(t.env('SECRETS_OUT'), `${pad}\n${encrypted}\n`);
        await checkKey(realmUrl, await decodeAsTheApp(realmUrl, url, pad));
    });

    await t.check('the same recovery code again is refused as a wrong code', async (page) => {
        await passwordStep(page, newPad());
        let left = false;
        page.on('request', (request) => {
            if (request.url().startsWith('zulip://')) left = true;
        });
        await typeInto(page, 'input[name=otp_token]', code);
        await submit(page);
        await page.locator('.error').waitFor({ state: 'visible' });
        await expectText(page, 'That code is not right.');
        // Still the code step, and the app was never handed a key.
        await expectVisible(page, 'input[name=otp_token]');
        if (left) throw new Error('a used recovery code reached zulip://login');
        await t.screenshot(page, 'used-code-refused');
    });
}
