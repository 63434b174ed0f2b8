// A scripted browser for the provider's development pages (provider.mjs): cookies per host,
// kept by hand, redirects followed one by one. Used by smoke.mjs and server.mjs.
import assert from 'node:assert/strict';

export class Browser {
  constructor() { this.jars = new Map(); }

  jar(url) {
    const { host } = new URL(url);
    if (!this.jars.has(host)) this.jars.set(host, new Map());
    return this.jars.get(host);
  }

  async fetch(url, { method = 'GET', form = null } = {}) {
    const jar = this.jar(url);
    const headers = { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') };
    if (form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(url, { method, body: form?.toString(), headers, redirect: 'manual' });
    for (const cookie of res.headers.getSetCookie()) {
      const pair = cookie.split(';')[0];
      const eq = pair.indexOf('=');
      if (/Max-Age=0/.test(cookie)) jar.delete(pair.slice(0, eq));
      else jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    return res;
  }

  // From the authorization URL through the provider's login (any password) and consent
  // pages to the redirect back to `returnUrl`; returns that callback URL.
  async provider(authorizationUrl, login, returnUrl) {
    let url = authorizationUrl;
    let form = null;
    for (let hop = 0; hop < 20; hop += 1) {
      if (url.startsWith(returnUrl)) return url;
      const res = await this.fetch(url, { method: form ? 'POST' : 'GET', form });
      if (res.status >= 300 && res.status < 400) {
        url = new URL(res.headers.get('location'), url).href;
        form = null;
        continue;
      }
      const html = await res.text();
      assert.equal(res.status, 200, `${res.status} at ${url}: ${html.slice(0, 500)}`);
      const action = html.match(/<form[^>]*action="([^"]+)"/)?.[1];
      const prompt = html.match(/name="prompt" value="([^"]+)"/)?.[1];
      assert.ok(action && prompt, `no form at ${url}`);
      form = new URLSearchParams({ prompt });
      if (prompt === 'login') {
        form.set('login', login);
        form.set('password', 'any password');
      }
      url = new URL(action.replaceAll('&amp;', '&'), url).href;
    }
    throw new Error('too many hops');
  }
}
