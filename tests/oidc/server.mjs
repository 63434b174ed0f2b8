// The OpenID sign-in through the real server (web.md §10) against the real provider of
// provider.mjs, scripted with fetch (cookies kept by hand): the app's flow to zulip://login,
// with a TOTP code after the provider, auto-signup on and off, a browser sign-in that lands on
// the account page, a tampered state, a replayed callback, a stopped and a frozen provider.
// Run by tests/oidc/run, which sets:
//   SERVER_BIN     the built zulip-auth
//   SERVER_PORT    the port it is to listen on, on 127.0.0.1 (the providers know its return URL)
//   ISSUER_PLAIN   a provider that puts the email in the ID token
//   PLAIN_PID      its process, frozen with SIGSTOP in the last test
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { checkKey, decodeAsTheApp, totp } from '../web/app.mjs';
import { Browser as Agent } from './agent.mjs';

const { SERVER_BIN, SERVER_PORT, ISSUER_PLAIN, PLAIN_PID } = process.env;
const BASE = `http://127.0.0.1:${SERVER_PORT}`;
const RETURN_URL = `${BASE}/complete/oidc/`;

const dir = mkdtempSync(join(tmpdir(), 'zulip-auth-oidc-'));
const env = { ...process.env, ZULIP_AUTH_CONFIG: 'none', ZULIP_AUTH_DB: join(dir, 'db') };
let server;

function cli(...args) {
  const run = spawnSync(SERVER_BIN, args, { encoding: 'utf8', env, timeout: 30_000 });
  assert.equal(run.status, 0, `${args.join(' ')}: ${run.stderr}`);
  return run.stdout;
}

before(async () => {
  writeFileSync(join(dir, 'secret'), 'zulip-test-secret\n');
  const secret = ['--client-secret-file', join(dir, 'secret')];
  cli('idp', 'add', 'plain', '--issuer', ISSUER_PLAIN, '--client-id', 'zulip', ...secret,
    '--display-name', 'Test IdP');
  cli('idp', 'add', 'stopped', '--issuer', 'http://127.0.0.1:9', '--client-id', 'zulip', ...secret);
  cli('user', 'create', 'iago@example.com', '--no-password');
  cli('user', 'create', 'hamlet@example.com', '--no-password');
  server = spawn(SERVER_BIN, ['serve', '--listen', `127.0.0.1:${SERVER_PORT}`, '--workers', '2'],
    { env: { ...env, ZULIP_AUTH_ARGON2_M: '256', ZULIP_AUTH_ARGON2_T: '1' }, stdio: ['ignore', 'ignore', 'pipe'] });
  server.stderr.on('data', (chunk) => { log += chunk; });
  for (let i = 0; i < 200; i += 1) {
    try {
      if ((await fetch(`${BASE}/health`)).ok) return;
    } catch { /* not yet */ }
    await new Promise((resolve) => { setTimeout(resolve, 50); });
  }
  throw new Error(`the server did not start: ${log}`);
});
let log = '';

after(() => {
  server?.kill();
  rmSync(dir, { recursive: true, force: true });
});

// The browser of these tests: the provider's pages, and the server's start before them.
class Browser extends Agent {
  // The start at `path` on the server: its redirect to the provider, then the provider's.
  async signIn(path, login) {
    const start = await this.fetch(`${BASE}${path}`);
    assert.equal(start.status, 302, await start.text());
    const to = start.headers.get('location');
    assert.ok(to.startsWith(`${ISSUER_PLAIN}/auth?`), to);
    assert.match(start.headers.get('set-cookie'), /^oidc_signin=[\w-]{43}; Path=\/; HttpOnly; Max-Age=600; SameSite=Lax$/);
    return this.provider(to, login, RETURN_URL);
  }
}

const pad = () => randomBytes(32).toString('hex');

test('the app flow ends in zulip://login with a key that users/me accepts', async () => {
  const browser = new Browser();
  const otp = pad();
  const callback = await browser.signIn(`/accounts/login/social/oidc/plain?mobile_flow_otp=${otp}`, 'iago@example.com');
  const back = await browser.fetch(callback);
  assert.equal(back.status, 302, await back.text());
  const decoded = await decodeAsTheApp(BASE, back.headers.get('location'), otp);
  assert.equal(decoded.email, 'iago@example.com');
  assert.match(decoded.apiKey, /^[A-Za-z0-9]{32}$/);
  await checkKey(BASE, decoded);

  // Replayed: the pending sign-in was taken.
  const again = await browser.fetch(callback);
  assert.equal(again.status, 400);
  assert.match(await again.text(), /This sign-in is unknown, was used already/);
  assert.match(cli('audit', '--user', 'iago@example.com'), /login_success .*OpenID Connect sign-in/);
});

test('the single-provider and sign-up URLs start the same sign-in', async () => {
  const signup = new Browser();
  const otp = pad();
  const callback = await signup.signIn(`/accounts/register/social/oidc/plain?mobile_flow_otp=${otp}`, 'iago@example.com');
  const back = await signup.fetch(callback);
  assert.equal((await decodeAsTheApp(BASE, back.headers.get('location'), otp)).email, 'iago@example.com');
  // The root realm has two providers: no single one.
  const none = await new Browser().fetch(`${BASE}/accounts/login/social/oidc`);
  assert.equal(none.status, 404);
});

test('a user with a TOTP key gives a code after the provider', async () => {
  const secret = cli('user', 'totp', 'enroll', 'hamlet@example.com').split('\n')[0].match(/secret=([A-Z2-7]+)/)[1];
  const browser = new Browser();
  const otp = pad();
  const callback = await browser.signIn(`/accounts/login/social/oidc/plain?mobile_flow_otp=${otp}`, 'hamlet@example.com');
  const step = await browser.fetch(callback);
  const html = await step.text();
  assert.equal(step.status, 200, html);
  assert.match(html, /Two-factor authentication/);
  const field = (name) => html.match(new RegExp(`name="${name}" value="([^"]+)"`))[1];
  const form = new URLSearchParams({
    csrfmiddlewaretoken: field('csrfmiddlewaretoken'),
    mobile_flow_otp: field('mobile_flow_otp'),
    step_token: field('step_token'),
    otp_token: totp(secret),
  });
  const done = await browser.fetch(`${BASE}/accounts/login/`, { method: 'POST', form });
  assert.equal(done.status, 302, await done.text());
  await checkKey(BASE, await decodeAsTheApp(BASE, done.headers.get('location'), otp));
  // The finish after the code is the provider's sign-in, audited as such.
  assert.match(cli('audit', '--user', 'hamlet@example.com'), /login_success .*OpenID Connect sign-in/);
});

test('auto-signup: on makes a member, off says there is no account', async () => {
  const off = new Browser();
  const callback = await off.signIn('/accounts/login/social/oidc/plain', 'nobody@example.com');
  const page = await off.fetch(callback);
  assert.equal(page.status, 403);
  assert.match(await page.text(), /This organization has no account for that address/);

  cli('idp', 'set', 'plain', '--auto-signup', 'on');
  try {
    const on = new Browser();
    const otp = pad();
    const back = await on.fetch(await on.signIn(`/accounts/login/social/oidc/plain?mobile_flow_otp=${otp}`, 'nobody@example.com'));
    assert.equal(back.status, 302, await back.text());
    const decoded = await decodeAsTheApp(BASE, back.headers.get('location'), otp);
    await checkKey(BASE, decoded);
    const auth = Buffer.from(`${decoded.email}:${decoded.apiKey}`).toString('base64');
    const user = await (await fetch(`${BASE}/api/v1/users/me`, { headers: { authorization: `Basic ${auth}` } })).json();
    assert.equal(user.full_name, 'Name of nobody@example.com');
    assert.equal(user.role, 400);
  } finally {
    cli('idp', 'set', 'plain', '--auto-signup', 'off');
  }
});

test('a sign-in without an OTP lands signed in on the account page', async () => {
  const browser = new Browser();
  const callback = await browser.signIn('/accounts/login/social/oidc/plain', 'iago@example.com');
  const back = await browser.fetch(callback);
  assert.equal(back.status, 200);
  assert.equal(back.headers.get('refresh'), '0; url=/accounts/settings/');
  assert.match(back.headers.getSetCookie().join('\n'), /sessionid=[^;]+; Path=\/; HttpOnly; Max-Age=\d+; SameSite=Strict/);
  const account = await browser.fetch(`${BASE}/accounts/settings/`);
  assert.equal(account.status, 200);
  assert.match(await account.text(), /iago@example\.com/);
});

test('a user without a password re-confirms a change with a fresh sign-in', async () => {
  const browser = new Browser();
  await browser.fetch(await browser.signIn('/accounts/login/social/oidc/plain', 'iago@example.com'));
  const account = await browser.fetch(`${BASE}/accounts/settings/`);
  const html = await account.text();
  assert.equal(account.status, 200);
  assert.match(html, /<a class="button" href="\/accounts\/login\/social\/oidc\/plain\?reconfirm=1">Sign in again with Test IdP<\/a>/);
  assert.doesNotMatch(html, /name="(old_)?password"/);
  // Signed in a moment ago: the key is shown without a password.
  const csrf = html.match(/name="csrfmiddlewaretoken" value="([^"]+)"/)[1];
  const shown = await browser.fetch(`${BASE}/accounts/settings/api-key`, {
    method: 'POST',
    form: new URLSearchParams({ csrfmiddlewaretoken: csrf }),
  });
  assert.equal(shown.status, 200);
  assert.match(await shown.text(), /Your API key: <code>[A-Za-z0-9]{32}<\/code>/);
  // The re-confirmation asks the provider for a new login.
  const again = await browser.fetch(`${BASE}/accounts/login/social/oidc/plain?reconfirm=1`);
  assert.equal(again.status, 302);
  const q = new URL(again.headers.get('location')).searchParams;
  assert.equal(q.get('prompt'), 'login');
  assert.equal(q.get('max_age'), '0');
  const callback = await browser.provider(again.headers.get('location'), 'iago@example.com', RETURN_URL);
  const back = await browser.fetch(callback);
  assert.equal(back.status, 200, await back.text());
  assert.equal(back.headers.get('refresh'), '0; url=/accounts/settings/');
});

test('a tampered state or a callback in another browser is refused', async () => {
  const browser = new Browser();
  const callback = await browser.signIn('/accounts/login/social/oidc/plain', 'iago@example.com');
  const tampered = new URL(callback);
  tampered.searchParams.set('state', `${tampered.searchParams.get('state')}x`);
  const refused = await browser.fetch(tampered.href);
  assert.equal(refused.status, 400);
  assert.match(await refused.text(), /Sign-in expired/);
  const elsewhere = await new Browser().fetch(callback);
  assert.equal(elsewhere.status, 400);
  // Spent by the refusal in another browser, too.
  assert.equal((await browser.fetch(callback)).status, 400);
});

test('a stopped provider: a clear page at once', async () => {
  const started = Date.now();
  const res = await new Browser().fetch(`${BASE}/accounts/login/social/oidc/stopped`);
  assert.equal(res.status, 503);
  assert.match(await res.text(), /The identity provider could not be reached/);
  assert.ok(Date.now() - started < 10_000);
});

test('a frozen provider: a clear page within 12 s, and server_settings is not delayed', async () => {
  const browser = new Browser();
  const callback = await browser.signIn('/accounts/login/social/oidc/plain', 'iago@example.com');
  process.kill(Number(PLAIN_PID), 'SIGSTOP');
  try {
    const started = Date.now();
    const stuck = browser.fetch(callback);
    await new Promise((resolve) => { setTimeout(resolve, 500); });
    const settings = await fetch(`${BASE}/api/v1/server_settings`);
    const settingsTook = Date.now() - started;
    assert.equal(settings.status, 200);
    const res = await stuck;
    const took = Date.now() - started;
    assert.equal(res.status, 503, await res.text());
    assert.ok(took < 12_000, `${took} ms`);
    assert.ok(settingsTook < took, `server_settings waited ${settingsTook} ms`);
  } finally {
    process.kill(Number(PLAIN_PID), 'SIGCONT');
  }
  assert.doesNotMatch(log, /code=|state=/);
});
