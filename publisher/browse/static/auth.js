// Signing in. Two ways, both sending only the Authorization header (api.js):
// - an API key, checked at /auth/whoami, then kept in sessionStorage (this tab and origin only);
// - OpenID Connect: authorization code + PKCE (S256) with the browser's public client the about
//   document advertises; the tokens live in this module's memory only (a reload signs out). Only
//   the PKCE verifier, the state and the route wait in sessionStorage across the redirect.
// Never localStorage, cookies or the URL for a secret; `?code=&state=` leave the address bar at once.
import { h } from './dom.js';

const KEY = 'skyshelf.apikey';
const PENDING = 'skyshelf.oidc'; // {verifier, state, hash} while the provider has the tab
const tokens = { access: null, refresh: null, timer: null, session: 0 }; // in memory only; session: bumped by sign-out
let note = null; // a message to show next to the control (a refused key, a failed sign-in)
let who = null; // whoami's name of the current credential

/** The browser's OIDC client as advertised by the about document, or null. */
function provider(api) {
  const p = (api.about?.authentication?.providers || []).find((x) => x.links?.browser_client_id && x.links?.authorize_endpoint);
  return p ? p.links : null;
}

const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const random = (n = 32) => b64url(crypto.getRandomValues(new Uint8Array(n)));

/** Whether this tab has a sign-in to restore or finish (a kept API key, a provider's answer). */
export function restoring() {
  const here = new URL(window.location.href);
  return Boolean(window.sessionStorage.getItem(KEY)) || (here.searchParams.has('state') && here.searchParams.has('code'));
}

/** Restore or finish this tab's sign-in, then draw the control into `slot`; `changed()` re-renders. */
export async function init(api, slot, changed) {
  const ctx = { api, slot, changed };
  const here = new URL(window.location.href);
  if (here.searchParams.has('state') && (here.searchParams.has('code') || here.searchParams.has('error'))) {
    await finish(ctx, here);
  } else {
    const stored = window.sessionStorage.getItem(KEY);
    if (stored) {
      const credential = { kind: 'apikey', value: stored };
      who = await whoami(api, credential).catch(() => null);
      if (who) api.credential = credential;
      else { window.sessionStorage.removeItem(KEY); note = 'The API key of this tab is no longer accepted.'; }
    }
  }
  draw(ctx);
}

/** Who `credential` speaks for (whoami's identity), or throws the API's ApiError (401: refused). */
async function whoami(api, credential = api.credential) {
  const saved = api.credential;
  api.credential = credential;
  try {
    const answer = await (await api.fetch(`${api.base}/auth/whoami`, { headers: { Accept: 'application/json' } })).json();
    const id = answer.identities?.[0];
    return id ? id.id : answer.type;
  } finally {
    api.credential = saved;
  }
}

/** Go to the provider's login page (this tab; the route comes back through sessionStorage). */
async function start(ctx) {
  const links = provider(ctx.api);
  const verifier = random(48);
  const state = random(24);
  const challenge = b64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  window.sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, hash: window.location.hash }));
  const url = new URL(links.authorize_endpoint);
  const query = {
    response_type: 'code', client_id: links.browser_client_id, redirect_uri: redirectUri(),
    scope: 'openid', state, code_challenge: challenge, code_challenge_method: 'S256',
  };
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  window.location.assign(url.toString());
}

const redirectUri = () => `${window.location.origin}/`;

/** Back from the provider: check the state, exchange the code, forget the verifier, clean the address bar. */
async function finish(ctx, here) {
  let pending = null;
  try { pending = JSON.parse(window.sessionStorage.getItem(PENDING) || 'null'); } catch { /* a broken entry: no pending sign-in */ }
  window.sessionStorage.removeItem(PENDING);
  const code = here.searchParams.get('code');
  const error = here.searchParams.get('error');
  const state = here.searchParams.get('state');
  // the address bar loses code, state and iss before anything else can read or log it
  window.history.replaceState(null, '', `${here.pathname}${pending?.hash || here.hash || ''}`);
  const links = provider(ctx.api);
  if (!pending || state !== pending.state) {
    note = 'Sign-in failed: the answer from the identity provider does not match a sign-in started here.';
    return;
  }
  if (error) { note = `Sign-in failed: ${here.searchParams.get('error_description') || error}`; return; }
  if (!links) { note = 'Sign-in failed: this catalog no longer advertises an identity provider.'; return; }
  try {
    await grant(ctx, links, { grant_type: 'authorization_code', code, redirect_uri: redirectUri(), code_verifier: pending.verifier });
  } catch (failure) {
    note = `Sign-in failed: ${failure.message}`;
  }
}

/** POST the token endpoint (a public client: no secret) and keep the tokens in memory. */
async function grant(ctx, links, form) {
  const { session } = tokens;
  const response = await fetch(links.token_endpoint, {
    method: 'POST', body: new URLSearchParams({ client_id: links.browser_client_id, ...form }),
    headers: { Accept: 'application/json' }, credentials: 'omit',
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok || !body.access_token) {
    throw new Error(body.error_description || body.error || `the token endpoint answered ${response.status}`);
  }
  const credential = { kind: 'bearer', value: body.access_token };
  const name = await whoami(ctx.api, credential); // the API must take the token too (its audience, its signer)
  if (session !== tokens.session) return; // signed out meanwhile (a renewal in flight)
  who = name;
  tokens.access = body.access_token;
  tokens.refresh = body.refresh_token || null;
  ctx.api.credential = credential;
  clearTimeout(tokens.timer);
  const seconds = Number(body.expires_in) || 0;
  // renew a little before expiry while a refresh token is held; without one, sign out then
  if (seconds > 0) tokens.timer = setTimeout(() => renew(ctx, links), Math.max(seconds * 0.75, seconds - 60) * 1000);
}

async function renew(ctx, links) {
  if (!tokens.refresh) { signOut(ctx, 'Your session ended: sign in again.'); return; }
  try { // same caller, same view: nothing to re-render
    await grant(ctx, links, { grant_type: 'refresh_token', refresh_token: tokens.refresh });
  } catch (failure) {
    signOut(ctx, `Your session ended (${failure.message}): sign in again.`);
  }
}

function signOut(ctx, message = null) {
  clearTimeout(tokens.timer);
  Object.assign(tokens, { access: null, refresh: null, timer: null, session: tokens.session + 1 });
  window.sessionStorage.removeItem(KEY);
  ctx.api.credential = null;
  who = null;
  note = message;
  draw(ctx);
  ctx.changed();
}

/** Check a key at whoami before keeping it: a refused key shows the API's reason and is dropped. */
async function useKey(ctx, value) {
  const { api } = ctx;
  const credential = { kind: 'apikey', value };
  try {
    who = await whoami(api, credential);
  } catch (failure) {
    note = `API key refused: ${failure.detail || failure.message}`;
    draw(ctx);
    return;
  }
  api.credential = credential;
  window.sessionStorage.setItem(KEY, value);
  note = null;
  draw(ctx);
  ctx.changed();
}

function message() {
  return note ? h('p', { class: 'auth-note', role: 'alert' }, note) : '';
}

function draw(ctx) {
  const { api, slot } = ctx;
  if (api.credential) {
    const how = api.credential.kind === 'apikey' ? 'API key' : 'identity provider';
    slot.replaceChildren(h('span', { class: 'who', title: `Signed in with an ${how}` }, 'Signed in as ', h('strong', {}, who || '?')),
      h('button', { type: 'button', class: 'secondary', onclick: () => signOut(ctx) }, 'Sign out'));
    return;
  }
  const form = h('form', { class: 'apikey', onsubmit: (event) => {
    event.preventDefault();
    const value = form.elements.key.value.trim();
    if (value) useKey(ctx, value);
  } },
  h('label', { for: 'apikey-input', class: 'visually-hidden' }, 'API key'),
  h('input', { id: 'apikey-input', name: 'key', type: 'password', autocomplete: 'off', placeholder: 'API key', size: 14 }),
  h('button', { type: 'submit', class: provider(api) ? 'secondary' : null }, provider(api) ? 'Use key' : 'Sign in'));
  const oidc = provider(api)
    ? h('button', { type: 'button', class: 'oidc', onclick: () => start(ctx).catch((failure) => {
      note = `Sign-in failed: ${failure.message}`;
      draw(ctx);
    }) }, 'Sign in')
    : '';
  slot.replaceChildren(oidc, form, message());
}

/** The error box `box` for `error`, or what helps more when signing in may change the answer:
 *  a sign-in prompt when the catalog refuses anonymous callers (401), a hint under a "not found"
 *  for an anonymous caller (a private node answers as a missing one). */
export function explain(api, error, box) {
  if (api.credential || !error) return box;
  const how = provider(api) ? 'Use “Sign in” above, or an API key.' : 'Enter an API key above.';
  if (error.status === 401) {
    return h('div', { class: 'signin-prompt', role: 'alert' }, h('strong', {}, 'Sign in to browse this catalog'),
      h('p', {}, 'It shows nothing to anonymous visitors. ', how));
  }
  // (only a catalog with an identity provider or closed to anonymous callers says it guards nodes)
  const guarded = api.about?.authentication?.required || (api.about?.authentication?.providers || []).length > 0;
  if (error.status === 404 && guarded) box.append(h('p', { class: 'auth-hint' }, 'Private nodes show only to signed-in visitors. ', how));
  return box;
}
