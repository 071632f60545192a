// Signing in. An API key is kept in sessionStorage (this tab and this origin only, gone when the
// tab closes), never in localStorage, a cookie or the URL.
import { h } from './dom.js';

const KEY = 'skyshelf.apikey';

/** Restore this tab's credential and draw the sign-in control into `slot`; `changed()` re-renders. */
export async function init(api, slot, changed) {
  const stored = window.sessionStorage.getItem(KEY);
  if (stored) api.credential = { kind: 'apikey', value: stored };
  draw(api, slot, changed);
}

function draw(api, slot, changed) {
  if (api.credential) {
    slot.replaceChildren(h('span', { class: 'who' }, 'Signed in with an API key'), ' ',
      h('button', { type: 'button', onclick: () => { window.sessionStorage.removeItem(KEY); api.credential = null; draw(api, slot, changed); changed(); } }, 'Sign out'));
    return;
  }
  const form = h('form', { class: 'apikey', onsubmit: (event) => {
    event.preventDefault();
    const value = form.elements.key.value.trim();
    if (!value) return;
    window.sessionStorage.setItem(KEY, value);
    api.credential = { kind: 'apikey', value };
    draw(api, slot, changed);
    changed();
  } },
  h('label', { for: 'apikey-input', class: 'visually-hidden' }, 'API key'),
  h('input', { id: 'apikey-input', name: 'key', type: 'password', autocomplete: 'off', placeholder: 'API key', size: 14 }),
  h('button', { type: 'submit' }, 'Sign in'));
  slot.replaceChildren(form);
}
