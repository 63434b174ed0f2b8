// zulip-js 2.1.0, the npm client, against a running zulip-auth (REALM, no trailing slash).
// It sends fetch_api_key as multipart/form-data and server_settings with Basic auth.
const test = require('node:test');
const assert = require('node:assert');

const realm = process.env.REALM;
const username = 'iago@example.com';
const password = 'Correct-Horse-9';

// A plain urlencoded fetch_api_key, before zulip-js replaces the global FormData.
async function plainFetchApiKey() {
  const response = await fetch(`${realm}/api/v1/fetch_api_key`, {
    method: 'POST',
    body: new URLSearchParams({ username, password }),
  });
  assert.strictEqual(response.status, 200);
  return (await response.json()).api_key;
}

test('zulipInit with the right password yields the key plain fetch_api_key returns', async () => {
  const expected = await plainFetchApiKey();
  const zulipInit = require('zulip-js');
  const z = await zulipInit({ realm, username, password });
  assert.strictEqual(z.config.apiKey, expected);
  const raw = await z.accounts.retrieve();
  assert.deepStrictEqual(Object.keys(raw), ['result', 'msg', 'api_key', 'email', 'user_id']);
  assert.strictEqual(raw.email, username);
  const settings = await z.server.settings(); // sends Basic auth, which must be ignored
  assert.strictEqual(settings.result, 'success');
  assert.strictEqual(settings.realm_uri, realm);
});

test('a wrong password yields no key', async () => {
  const zulipInit = require('zulip-js');
  const bad = await zulipInit({ realm, username, password: 'wrong' });
  assert.strictEqual(bad.config.apiKey, undefined);
  const raw = await bad.accounts.retrieve();
  assert.strictEqual(raw.code, 'AUTHENTICATION_FAILED');
  assert.strictEqual(raw.msg, 'Your username or password is incorrect');
});
