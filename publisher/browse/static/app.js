// Boot, hash router and layout of the browse page. Views are modules loaded on first use
// (`render(el, ctx)`, see docs/browse.md); this file owns the header, breadcrumbs, tabs and errors.
import { Api, ApiError, encodePath } from './api.js';
import * as auth from './auth.js';
import { h, summary } from './dom.js';
import { firstPage } from './tree.js';

const api = new Api();
const NODE_FIELDS = ['structure_family', 'structure', 'metadata', 'specs'];

/** The tabs each family offers, the first being its default; module per tab. */
const TABS = {
  container: ['children', 'metadata', 'download', 'code'],
  array: ['preview', 'metadata', 'download', 'code'],
  sparse: ['preview', 'metadata', 'download', 'code'],
  table: ['preview', 'metadata', 'download', 'code'],
  awkward: ['preview', 'metadata', 'download', 'code'],
};
const LABELS = { children: 'Contents', preview: 'Preview', metadata: 'Metadata', download: 'Download', code: 'Code', search: 'Search' };
const MODULES = {
  children: './tree.js', metadata: './node.js', download: './download.js', code: './code.js', search: './search.js',
  preview: { array: './array.js', sparse: './array.js', table: './table.js', awkward: './awkward.js' },
};

/** Style sheets a view needs beyond app.css, fetched with its module rather than on the first
 *  paint of every page (the root view's budget is 300 ms; a request fewer on its path counts). */
const STYLES = { search: 'search.css', download: 'download.css', code: 'download.css', preview: { array: 'array.css', sparse: 'array.css', table: 'table.css' } };
const sheets = new Map();

function style(file) {
  if (!file) return Promise.resolve();
  if (!sheets.has(file)) {
    sheets.set(file, new Promise((resolve) => {
      const link = h('link', { rel: 'stylesheet', href: `/ui/${file}` });
      link.addEventListener('load', resolve);
      link.addEventListener('error', resolve); // unstyled beats blank
      document.head.append(link);
    }));
  }
  return sheets.get(file);
}

let route = { path: '', params: new URLSearchParams() };

/** A path segment of the address, decoded; a `%` that starts no escape (a hand-typed
 *  `100%_humidity`) is itself, where decodeURIComponent threw and the page showed nothing. */
function segment(part) {
  try { return decodeURIComponent(part); } catch { return part; }
}

/** `#/a/b?x=1` → {path: 'a/b', params}. */
function parse(hash) {
  const raw = hash.replace(/^#\/?/, '');
  const cut = raw.indexOf('?');
  const pathPart = cut < 0 ? raw : raw.slice(0, cut);
  const path = pathPart.split('/').filter(Boolean).map(segment).join('/');
  return { path, params: new URLSearchParams(cut < 0 ? '' : raw.slice(cut + 1)) };
}

/** A link to a node (and view params) that keeps the pinned release. */
export function href(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) v.forEach((one) => q.append(k, one));
    else if (v != null && v !== '') q.set(k, v);
  }
  const release = route.params.get('release');
  if (release && !q.has('release')) q.set('release', release);
  const qs = q.toString();
  return `#/${encodePath(path)}${qs ? `?${qs}` : ''}`;
}

/** Change the address bar's params without re-rendering (a slider moved, a column chosen). */
function update(changes, { push = false } = {}) {
  const params = new URLSearchParams(route.params);
  for (const [k, v] of Object.entries(changes)) {
    if (v == null || v === '' || (Array.isArray(v) && !v.length)) params.delete(k);
    else if (Array.isArray(v)) { // repeated (columns=a&columns=b): a value may hold any character, a comma too
      params.delete(k);
      for (const one of v) params.append(k, one);
    } else params.set(k, v);
  }
  route = { path: route.path, params };
  retab();
  const qs = params.toString();
  const url = `#/${encodePath(route.path)}${qs ? `?${qs}` : ''}`;
  if (push) window.history.pushState(null, '', url);
  else window.history.replaceState(null, '', url);
}

function crumbs(path) {
  const parts = path ? path.split('/') : [];
  const items = [h('li', {}, h('a', { href: href('') }, api.about?.meta?.name || 'Catalog'))];
  parts.forEach((part, i) => {
    const last = i === parts.length - 1;
    items.push(h('li', {}, last ? h('span', { 'aria-current': 'page' }, part) : h('a', { href: href(parts.slice(0, i + 1).join('/')) }, part)));
  });
  return h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('ol', {}, items));
}

/** What a tab carries from the view it leaves: the slice shown (a frame chosen with the slider is
 *  the Download's and Code's selection too) and the columns chosen; the tab itself. */
const CARRIED = ['slice', 'columns'];

function tabParams(name, first) {
  const q = { view: name === first ? null : name };
  for (const k of CARRIED) {
    const values = route.params.getAll(k);
    if (values.length) q[k] = values;
  }
  return q;
}

function tabs(path, family, current) {
  const names = TABS[family] || ['metadata'];
  return h('nav', { class: 'tabs', 'aria-label': 'Views' }, names.map((name) => h('a', {
    href: href(path, tabParams(name, names[0])),
    'data-view': name,
    'data-first': names[0],
    'aria-current': name === current ? 'page' : null,
    class: name === current ? 'tab current' : 'tab',
  }, LABELS[name])));
}

/** The tabs' links again, once a view changed the address (a slider moved, columns chosen). */
function retab() {
  for (const a of document.querySelectorAll('nav.tabs a[data-view]')) a.href = href(route.path, tabParams(a.dataset.view, a.dataset.first));
}

export function errorBox(error, what) {
  const status = error instanceof ApiError ? error.status : null;
  const title = status === 404 ? `Not found: ${what}` : status === 401 || status === 403
    ? `Not allowed: ${what} (sign in with an account that may read it)` : `Could not load ${what}`;
  return h('div', { class: 'error', role: 'alert' }, h('strong', {}, title), h('p', {}, error.detail || error.message));
}

async function loadNode(path) {
  return (await api.json('metadata', path, { fields: NODE_FIELDS, omit_links: true })).data;
}

/** Ask for what the view at `path` will need: the node and, for a container's default view, its
 *  first page — at once for the root (always a container) and for a child whose attributes came
 *  with its parent's page, else as soon as the node says it is a container (a speculative request
 *  for a non-container would be a 400, which the browser logs as a console error). */
function prefetch(path, params) {
  const pending = loadNode(path);
  if (!params.get('view')) {
    const children = () => firstPage(api, path, params).catch(() => {});
    if (!path) children();
    else pending.then((node) => node.attributes.structure_family === 'container' && children()).catch(() => {});
  } else if (params.get('view') === 'search') { // a search link: its module, style and first page at once
    style(STYLES.search);
    const results = (scope) => import('./search.js').then((search) => search.resultsPage(api, scope, params)).catch(() => {});
    if (!path) results('');
    else pending.then((node) => node.attributes.structure_family === 'container' && results(path)).catch(() => {});
  }
  return pending;
}

async function view(path, params, main) {
  const node = await prefetch(path, params);
  const family = node.attributes.structure_family;
  const names = TABS[family] || ['metadata'];
  const name = params.get('view') === 'search' ? 'search' : (names.includes(params.get('view')) ? params.get('view') : names[0]);
  const title = path ? path.split('/').pop() : (api.about?.meta?.name || 'Catalog');
  document.title = `${title} · Skyshelf`;
  const section = h('section', { class: `view view-${name}`, id: 'view' });
  main.replaceChildren(
    crumbs(path),
    h('div', { class: 'head' },
      h('h1', { tabindex: '-1' }, title),
      h('p', { class: 'summary' }, h('span', { class: `family family-${family}` }, family), ' ', summary(family, node.attributes.structure),
        (node.attributes.specs || []).map((s) => h('span', { class: 'spec' }, s.name)))),
    ...(name === 'search' ? [] : [tabs(path, family, name)]), // replaceChildren writes a null as "null"
    section,
  );
  let module = MODULES[name];
  if (typeof module === 'object') module = module[family];
  if (!module) { section.append(h('p', {}, `No ${name} for a ${family}.`)); return; }
  const sheet = typeof STYLES[name] === 'object' ? STYLES[name][family] : STYLES[name];
  try {
    const [{ render }] = await Promise.all([import(module), style(sheet)]);
    await render(section, { path, node, params, api, update, href });
  } catch (error) { // the node is known: keep its heading and tabs, say what failed below them
    section.replaceChildren(errorBox(error, `the ${LABELS[name].toLowerCase()} of “${path || 'the catalog'}”`));
    console.warn(error);
  }
}

let generation = 0;

async function render() {
  const mine = ++generation;
  route = parse(window.location.hash);
  const release = route.params.get('release');
  if ((release || null) !== api.release) { api.release = release || null; }
  releaseBanner();
  const main = document.getElementById('main');
  const focus = document.activeElement && document.activeElement !== document.body && main.contains(document.activeElement);
  try {
    await view(route.path, route.params, main);
  } catch (error) {
    if (mine !== generation) return;
    main.replaceChildren(crumbs(route.path), auth.explain(api, error, errorBox(error, route.path ? `“${route.path}”` : 'the catalog')));
    console.warn(error);
  }
  if (mine !== generation) return;
  if (focus) main.querySelector('h1')?.focus();
  document.body.dataset.ready = `${route.path}|${route.params.get('view') || ''}`;
  performance.mark('view-ready');
}

function releaseBanner() {
  const el = document.getElementById('release');
  const pinned = api.release;
  const current = api.about?.meta?.release;
  if (pinned) {
    el.replaceChildren(`Release ${pinned} (pinned)`, current && current !== pinned ? ' · ' : '',
      current && current !== pinned ? h('a', { href: `#/${encodePath(route.path)}` }, 'see the current release') : '');
  } else if (current) {
    const q = new URLSearchParams(route.params);
    q.set('release', current);
    el.replaceChildren(`Release ${current} · `, h('a', { href: `#/${encodePath(route.path)}?${q}` , class: 'pin' }, 'link to this release'));
  } else el.replaceChildren();
}

function search(event) {
  event.preventDefault();
  const q = new FormData(event.target).get('q').trim();
  const base = route.params.get('view') === 'search' || !route.path ? route.path : route.path;
  window.location.hash = href(base, { view: 'search', q });
}

async function boot() {
  document.getElementById('search').addEventListener('submit', search);
  const first = parse(window.location.hash);
  api.release = first.params.get('release') || null;
  // about (preloaded by index.html) and the first view's data are fetched together. Anonymously,
  // and only with no sign-in to restore (its answers come under their own cache key; the
  // anonymous one of a private node was a wasted request, a 404 in the console)
  const about = fetch(`${api.base}/`).then((r) => r.json());
  if (!auth.restoring()) prefetch(first.path, first.params).catch(() => {});
  api.about = await about;
  await auth.init(api, document.getElementById('auth'), () => { api.forget(); render(); });
  const name = api.about?.meta?.name;
  if (name) document.getElementById('brand').textContent = name;
  window.addEventListener('hashchange', render);
  await render();
}

boot().catch((error) => {
  document.getElementById('main').replaceChildren(errorBox(error, 'the catalog'));
  console.warn(error);
});
