// Passkeys in a real browser (web.md §9), with Chromium's virtual authenticator (a phone's
// platform authenticator: CTAP2, resident keys, a user verified at every touch): a passkey
// added on the account page signs its owner in without a username through the flow the
// official app runs, to a key that works for users/me; it serves as the second factor after
// a password; removed, it signs nobody in.
//
// Given (by tests/web/run): REALM_URL (http://localhost:PORT, the server's --external-url:
// WebAuthn refuses an IP address as the RP ID, and localhost is a secure context), EMAIL and
// PASSWORD of a user without a second factor.
import { addVirtualAuthenticator } from '../authenticator.mjs';
import { appRedirect, checkKey, decodeAsTheApp, expectText, expectVisible, newPad, submit, typeInto } from '../app.mjs';

export default async function (t) {
    const realmUrl = t.env('REALM_URL');
    const login = `${realmUrl}/accounts/login/`;
    // Each check is a fresh context: the passkey goes from one to the next as the
    // authenticator last held it (its counter moved).
    let held = null;
    const authenticator = async (page) => {
        const virtual = await addVirtualAuthenticator(page);
        if (held) await virtual.add(held);
        return virtual;
    };
    const keep = async (virtual) => {
        const [credential, ...more] = await virtual.credentials();
        if (!credential || more.length || !credential.isResidentCredential) {
            throw new Error(`the authenticator holds ${JSON.stringify(await virtual.credentials())}`);
        }
        held = credential;
    };
    const noErrors = (page) => {
        const errors = [];
        page.on('pageerror', (error) => errors.push(String(error)));
        // The browser's own request for /favicon.ico gets the 404 of every unknown path.
        page.on('console', (message) => {
            if (message.type() === 'error' && !message.location().url.endsWith('/favicon.ico')) {
                errors.push(`${message.text()} (${message.location().url})`);
            }
        });
        return errors;
    };
    const password = async (page, target) => {
        await page.goto(target);
        await typeInto(page, 'input[name=username]', t.env('EMAIL'));
        await typeInto(page, 'input[name=password]', t.env('PASSWORD'));
        await submit(page);
    };
    const navigated = (page, click) => Promise.all([page.waitForNavigation(), click]);
    // In the app's flow: `open` brings the page with the passkey button, whose use ends in
    // zulip://login, decoded as the app does, to a key that works for users/me.
    const inTheApp = async (page, open, shot) => {
        const virtual = await authenticator(page);
        const pad = newPad();
        await open(pad);
        await expectVisible(page, 'button[data-passkey=get]');
        await t.screenshot(page, shot);
        const redirect = appRedirect(page);
        await page.locator('button[data-passkey=get]').click();
        const url = await redirect;
        await checkKey(realmUrl, await decodeAsTheApp(realmUrl, url, pad));
        await keep(virtual);
    };

    await t.check('add a passkey on the account page, after the password', async (page) => {
        const virtual = await authenticator(page);
        const errors = noErrors(page);
        await password(page, login);
        await expectVisible(page, 'button[data-passkey=create]');
        await t.screenshot(page, 'account-without-passkeys');
        await typeInto(page, 'input[name=passkey_name]', 'My phone');
        await typeInto(page, '#password_passkey', t.env('PASSWORD'));
        await navigated(page, page.locator('button[data-passkey=create]').click());
        await expectText(page, 'Your recovery codes.');
        await expectText(page, 'My phone');
        await t.screenshot(page, 'account-with-a-passkey');
        await keep(virtual);
        if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
    });

    await t.check('sign in without a username through ?mobile_flow_otp= to zulip://login', async (page) => {
        await inTheApp(page, (pad) => page.goto(`${login}?mobile_flow_otp=${pad}`), 'login-with-passkey');
    });

    await t.check('the passkey as the second factor after a password, to zulip://login', async (page) => {
        await inTheApp(page, async (pad) => {
            await password(page, `${login}?mobile_flow_otp=${pad}`);
            await expectVisible(page, 'input[name=otp_token]');
        }, 'code-step-with-passkey');
    });

    await t.check('removed, the passkey signs nobody in', async (page) => {
        const virtual = await authenticator(page);
        // The account page, through the password and the passkey.
        await password(page, login);
        await navigated(page, page.locator('button[data-passkey=get]').click());
        await keep(virtual);
        await navigated(page, page.getByRole('link', { name: 'Remove' }).click());
        await expectText(page, 'will no longer sign you in');
        await t.screenshot(page, 'remove-confirmation');
        await typeInto(page, '#password_remove', t.env('PASSWORD'));
        await submit(page, page.locator('button.danger'));
        await expectText(page, 'The passkey is removed');
        await t.screenshot(page, 'account-passkey-removed');
        await page.goto(login);
        await navigated(page, page.locator('button[data-passkey=get]').click());
        await expectText(page, 'That passkey was not accepted.');
        await t.screenshot(page, 'login-refused-after-removal');
    });
}
