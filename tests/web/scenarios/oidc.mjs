// The sign-in through an identity provider (web.md §10) in Chromium, as the official app runs
// it: the app opens the provider's login_url from server_settings with ?mobile_flow_otp=<pad>,
// the person signs in on the provider's pages (npm oidc-provider's development pages, on
// localhost: another site than the server on 127.0.0.1), and the server's redirect to
// zulip://login is caught and decoded as zulip-flutter does. Also a TOTP code after the
// provider, auto-signup on and off, a sign-in without the app that lands on the account page,
// a tampered state, a replayed callback and a stopped provider.
//
// Given (by tests/web/run): REALM_URL, a server whose root realm has the providers `idp`
// (auto-signup off), `open` (the same provider, auto-signup on) and `down` (nothing listens);
// MEMBER_EMAIL (a user without a second factor), TOTP_EMAIL and TOTP_SECRET (one with).
import { appRedirect, checkKey, decodeAsTheApp, expectText, newPad, submit, totp, typeInto } from '../app.mjs';

export default async function (t) {
    const realmUrl = t.env('REALM_URL');
    const settings = await (await fetch(`${realmUrl}/api/v1/server_settings`)).json();
    const loginUrl = (name) => {
        const method = settings.external_authentication_methods.find((m) => m.name === `oidc:${name}`);
        if (!method) throw new Error(`server_settings lists no oidc:${name}`);
        return `${realmUrl}${method.login_url}`;
    };

    // The provider's pages: its login form (any password), then its consent.
    const atProvider = async (page, login, shots) => {
        await page.locator('input[name=login]').waitFor({ state: 'visible' });
        if (!new URL(page.url()).hostname.startsWith('localhost')) throw new Error(`not at the provider: ${page.url()}`);
        if (shots) await t.screenshot(page, `${shots}-provider-login`);
        await typeInto(page, 'input[name=login]', login);
        await typeInto(page, 'input[name=password]', 'any password');
        await submit(page);
        await page.locator('button[type=submit]').waitFor({ state: 'visible' });
        if (shots) await t.screenshot(page, `${shots}-provider-consent`);
    };

    await t.check('the app: login_url with a pad, the provider, then zulip://login', async (page) => {
        const pad = newPad();
        await page.goto(`${realmUrl}/accounts/login/?mobile_flow_otp=${pad}`);
        await t.screenshot(page, 'sign-in-page-with-the-link');
        const link = page.getByText('Sign in with Test IdP', { exact: true });
        const href = await link.getAttribute('href');
        if (href !== `/accounts/login/social/oidc/idp?mobile_flow_otp=${pad}`) throw new Error(`link ${href}`);
        await Promise.all([page.waitForLoadState('load'), link.click()]);
        await atProvider(page, t.env('MEMBER_EMAIL'), 'app');
        const redirect = appRedirect(page);
        await page.locator('button[type=submit]').click();
        await checkKey(realmUrl, await decodeAsTheApp(realmUrl, await redirect, pad));
    });

    await t.check('the app with a second factor: the provider, a TOTP code, zulip://login', async (page) => {
        const pad = newPad();
        await page.goto(`${loginUrl('idp')}?mobile_flow_otp=${pad}`);
        await atProvider(page, t.env('TOTP_EMAIL'), null);
        await submit(page);
        await page.locator('input[name=otp_token]').waitFor({ state: 'visible' });
        await t.screenshot(page, 'code-after-the-provider');
        const redirect = appRedirect(page);
        await typeInto(page, 'input[name=otp_token]', totp(t.env('TOTP_SECRET')));
        await page.locator('button[type=submit]').click();
        await checkKey(realmUrl, await decodeAsTheApp(realmUrl, await redirect, pad));
    });

    await t.check('auto-signup off: no account for that address', async (page) => {
        await page.goto(loginUrl('idp'));
        await atProvider(page, 'stranger@example.com', null);
        await submit(page);
        await expectText(page, 'This organization has no account for that address.');
        await t.screenshot(page, 'no-account');
    });

    await t.check('auto-signup on: a new member, signed in through the app', async (page) => {
        const pad = newPad();
        await page.goto(`${loginUrl('open')}?mobile_flow_otp=${pad}`);
        await atProvider(page, 'newcomer@example.com', null);
        const redirect = appRedirect(page);
        await page.locator('button[type=submit]').click();
        const decoded = await decodeAsTheApp(realmUrl, await redirect, pad);
        if (decoded.email !== 'newcomer@example.com') throw new Error(`signed up ${decoded.email}`);
        await checkKey(realmUrl, decoded);
    });

    await t.check('without the app: the provider, then signed in on the account page', async (page) => {
        await page.goto(loginUrl('idp'));
        await atProvider(page, t.env('MEMBER_EMAIL'), null);
        await submit(page);
        await page.waitForURL(`${realmUrl}/accounts/settings/`, { timeout: 10_000 });
        const text = await page.locator('main').innerText();
        if (!text.includes('Signed in as') || !text.includes(t.env('MEMBER_EMAIL'))) {
            throw new Error(`not signed in: ${text}`);
        }
        await t.screenshot(page, 'account-page-after-the-provider');
    });

    await t.check('a tampered state, then a replayed callback: refused', async (page) => {
        await page.goto(loginUrl('idp'));
        await atProvider(page, t.env('MEMBER_EMAIL'), null);
        // The provider's way back is held back, as an attacker would hold it: the consent's
        // POST and the provider's redirects are followed here, up to the callback URL.
        const provider = new URL(page.url()).origin;
        let callback;
        await page.route((url) => url.origin === provider, async (route) => {
            if (route.request().method() !== 'POST') return route.continue();
            let response = await route.fetch({ maxRedirects: 0 });
            let next = new URL(response.headers().location, route.request().url());
            while (next.origin === provider) {
                response = await page.context().request.get(next.href, { maxRedirects: 0 });
                next = new URL(response.headers().location, next);
            }
            callback = next;
            return route.fulfill({ status: 200, contentType: 'text/plain', body: 'held back' });
        });
        await submit(page);
        await page.unrouteAll();
        if (!callback?.href.startsWith(`${realmUrl}/complete/oidc/?`)) throw new Error(`held ${callback}`);
        const tampered = new URL(callback);
        tampered.searchParams.set('state', `${callback.searchParams.get('state')}x`);
        await page.goto(tampered.href);
        await expectText(page, 'Sign-in expired');
        await t.screenshot(page, 'tampered-state');
        // The real one signs in once; its replay is refused.
        await page.goto(callback.href);
        await page.waitForURL(`${realmUrl}/accounts/settings/`, { timeout: 10_000 });
        await page.goto(callback.href);
        await expectText(page, 'Sign-in expired');
        await t.screenshot(page, 'replayed-callback');
    });

    await t.check('a stopped provider: a clear page within 10 s', async (page) => {
        const started = Date.now();
        await page.goto(loginUrl('down'));
        await expectText(page, 'The identity provider could not be reached.');
        const took = Date.now() - started;
        if (took >= 10_000) throw new Error(`the page took ${took} ms`);
        await t.screenshot(page, 'provider-unreachable');
    });
}
