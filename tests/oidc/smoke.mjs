// The relying party (src/auth/oidc, through examples/oidc-check) against the real provider of
// provider.mjs: discovery, keys, the code flow through the development login pages (scripted
// with fetch, cookies kept by hand), and the refusals a callback can meet. Run by
// tests/oidc/run, which sets:
//   CHECK_BIN      the built examples/oidc-check
//   ISSUER         a provider that puts email and name only in userinfo (CONFORM=1)
//   ISSUER_PLAIN   a provider that puts them in the ID token too (CONFORM=0)
//   PROVIDER_PID   ISSUER's process, frozen with SIGSTOP in the last test
//   RETURN_URL     the return URL both providers know
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

import { Browser } from './agent.mjs';

const { CHECK_BIN, ISSUER, ISSUER_PLAIN, PROVIDER_PID, RETURN_URL } = process.env;

// One run of oidc-check: its JSON answer, its exit status and how long it took.
function check(...args) {
  const started = Date.now();
  const run = spawnSync(CHECK_BIN, args, { encoding: 'utf8', timeout: 60_000 });
  const took = Date.now() - started;
  assert.ok(run.stdout, `no answer from oidc-check ${args[0]}: ${run.stderr}`);
  return { answer: JSON.parse(run.stdout), status: run.status, took };
}

// start, the login pages, and the callback URL, with the pending sign-in to finish it.
async function started(issuer, login, ...options) {
  const start = check('start', issuer, RETURN_URL, ...options);
  assert.equal(start.status, 0, JSON.stringify(start.answer));
  const callback = await new Browser().provider(start.answer.url, login, RETURN_URL);
  return { ...start.answer, callback };
}

function finish(issuer, pending, callback) {
  return check('finish', issuer, RETURN_URL, JSON.stringify(pending), callback);
}

test('the authorization URL asks for a code with PKCE S256, state, nonce and the scopes', () => {
  const { answer } = check('start', ISSUER, RETURN_URL);
  const url = new URL(answer.url);
  assert.equal(url.origin + url.pathname, `${ISSUER}/auth`);
  const q = url.searchParams;
  assert.equal(q.get('response_type'), 'code');
  assert.equal(q.get('client_id'), 'zulip');
  assert.equal(q.get('redirect_uri'), RETURN_URL);
  assert.equal(q.get('scope'), 'openid email profile');
  assert.equal(q.get('code_challenge_method'), 'S256');
  assert.match(q.get('code_challenge'), /^[A-Za-z0-9_-]{43}$/);
  assert.equal(q.get('state'), answer.pending.state);
  assert.equal(q.get('nonce'), answer.pending.nonce);
  assert.equal(q.get('prompt'), null);
  assert.ok(!answer.url.includes(answer.pending.verifier), 'the verifier stays here');
});

for (const [kind, issuer] of [['userinfo', ISSUER], ['the ID token', ISSUER_PLAIN]]) {
  test(`a sign-in ends in the identity, with the email from ${kind}`, async () => {
    const { pending, callback } = await started(issuer, 'iago@example.com');
    const { answer, status } = finish(issuer, pending, callback);
    assert.equal(status, 0, JSON.stringify(answer));
    assert.deepEqual(answer, {
      subject: 'iago@example.com',
      email: 'iago@example.com',
      name: 'Name of iago@example.com',
    });
  });

  test(`email_verified false is refused (${kind})`, async () => {
    const { pending, callback } = await started(issuer, 'unverified-hamlet@example.com');
    const { answer, status } = finish(issuer, pending, callback);
    assert.equal(status, 1);
    assert.equal(answer.reason, 'oidc_email_unverified');
  });
}

test('a tampered state is refused before the provider is asked', async () => {
  const { pending, callback } = await started(ISSUER, 'iago@example.com');
  const tampered = new URL(callback);
  tampered.searchParams.set('state', `${pending.state}x`);
  assert.deepEqual(finish(ISSUER, pending, tampered.href).answer, { refused: 'state' });
});

test('a replayed callback: the provider refuses the used code', async () => {
  const { pending, callback } = await started(ISSUER, 'iago@example.com');
  assert.equal(finish(ISSUER, pending, callback).status, 0);
  const again = finish(ISSUER, pending, callback);
  assert.equal(again.status, 1);
  assert.equal(again.answer.reason, 'oidc_code_refused');
  assert.match(again.answer.error, /\(invalid_grant\)$/);
  assert.ok(!again.answer.error.includes(new URL(callback).searchParams.get('code')));
});

test('another PKCE verifier: the provider refuses the code', async () => {
  const { pending, callback } = await started(ISSUER, 'iago@example.com');
  const { answer } = finish(ISSUER, { ...pending, verifier: 'x'.repeat(43) }, callback);
  assert.equal(answer.reason, 'oidc_code_refused');
});

test("another sign-in's nonce: the ID token is refused", async () => {
  const { pending, callback } = await started(ISSUER_PLAIN, 'iago@example.com');
  const { answer } = finish(ISSUER_PLAIN, { ...pending, nonce: 'another nonce' }, callback);
  assert.equal(answer.reason, 'oidc_nonce');
});

test('a re-confirmation asks for a new login and gets a fresh auth_time', async () => {
  const { url, pending, callback } = await started(ISSUER, 'iago@example.com', 'reconfirm');
  const q = new URL(url).searchParams;
  assert.equal(q.get('prompt'), 'login');
  assert.equal(q.get('max_age'), '0');
  assert.equal(pending.reconfirm, true);
  const { answer, status } = finish(ISSUER, pending, callback);
  assert.equal(status, 0, JSON.stringify(answer));
  // A login an hour before the re-confirmation started is not fresh.
  const other = await started(ISSUER, 'iago@example.com', 'reconfirm');
  const stale = { ...other.pending, started: other.pending.started + 3600 };
  assert.equal(finish(ISSUER, stale, other.callback).answer.reason, 'oidc_not_fresh');
});

test('an http issuer off loopback is refused without a request', () => {
  const { answer, status, took } = check('start', 'http://id.example.com', RETURN_URL);
  assert.equal(status, 1);
  assert.equal(answer.reason, 'oidc_config');
  assert.match(answer.error, /must use https/);
  assert.ok(took < 5000, `${took} ms`);
});

test('a stopped provider: a clear error at once', () => {
  const { answer, status, took } = check('start', 'http://127.0.0.1:9', RETURN_URL);
  assert.equal(status, 1);
  assert.equal(answer.unavailable, true);
  assert.match(answer.error, /could not connect/);
  assert.ok(took < 5000, `${took} ms`);
});

test('a frozen provider: a clear error within the bound', () => {
  process.kill(Number(PROVIDER_PID), 'SIGSTOP');
  try {
    const { answer, status, took } = check('start', ISSUER, RETURN_URL);
    assert.equal(status, 1);
    assert.equal(answer.unavailable, true);
    assert.match(answer.error, /no answer in time/);
    assert.ok(took >= 9_000 && took < 12_000, `${took} ms`);
  } finally {
    process.kill(Number(PROVIDER_PID), 'SIGCONT');
  }
});
