// Search with facets: Tiled's /search-deep under the container searched from (fulltext `q` and one
// `eq` filter per `f.<key>` param), one page of results at a time, and a side panel of metadata
// keys whose few distinct values (with counts from /distinct over the same descendants and filters)
// narrow the results when clicked.
import { append, fmtInt, h } from './dom.js';
import { PAGE, childRows, pager } from './tree.js';

const FIELDS = ['structure_family', 'structure', 'metadata', 'specs'];
// search-deep and distinct are both told this depth (the API's maximum): distinct without it
// counts direct children only, and the same number on both keeps the counts equal to what is listed.
const DEPTH = 64;
// A facet is a key with 2..50 distinct values: one value does not narrow anything, more than 50
// is an identifier or a measurement, not a category.
const MIN_VALUES = 2;
const MAX_VALUES = 50;
// At most this many keys go to /distinct (in one request: one round trip, one pass over the
// subtree on the server). Each key's answer can hold as many values as there are results, so
// the cap bounds the answer and the server's work; the keys most results carry come first.
const MAX_KEYS = 8;
const SHOWN = 8; // values listed per facet before "more"

/** A value as it appears in the address bar: text as itself unless it would read as JSON
 *  (`1`, `true`, `"x"`), numbers and booleans as JSON. So `f.beamline=28-ID-1`, `f.scan_number=1`. */
export function toParam(value) {
  if (typeof value !== 'string') return JSON.stringify(value);
  try { JSON.parse(value); return JSON.stringify(value); } catch { return value; }
}

/** The inverse of toParam: JSON when it parses as JSON, otherwise the text itself. */
export function fromParam(text) {
  try { return JSON.parse(text); } catch { return text; }
}

/** Active filters, `[[key, value], ...]`, from the `f.<key>` params, in address order. */
export function filtersOf(params) {
  const out = [];
  for (const [name, text] of params) if (name.startsWith('f.') && name.length > 2) out.push([name.slice(2), fromParam(text)]);
  return out;
}

/** Tiled's filter parameters for the text and filters; `eq` values are JSON (a string quoted). */
function filterQuery(q, filters) {
  const query = {};
  if (q) query['filter[fulltext][condition][text]'] = q;
  if (filters.length) {
    query['filter[eq][condition][key]'] = filters.map(([k]) => k);
    query['filter[eq][condition][value]'] = filters.map(([, v]) => JSON.stringify(v));
  }
  return query;
}

const isScalar = (v) => ['string', 'number', 'boolean'].includes(typeof v);

/** Dotted paths of the scalar leaves of a metadata object (`sample.name`); lists are skipped
 *  (an `eq` on a list compares the whole list) and so are keys that hold a dot themselves. */
function leaves(metadata, prefix = '', out = new Map()) {
  for (const [key, value] of Object.entries(metadata || {})) {
    if (key.includes('.') || !key) continue;
    const path = prefix ? `${prefix}.${key}` : key;
    if (isScalar(value)) {
      if (!out.has(path)) out.set(path, new Set());
      out.get(path).add(JSON.stringify(value));
    } else if (value && typeof value === 'object' && !Array.isArray(value)) leaves(value, path, out);
  }
  return out;
}

/** The keys worth a facet, judged from this page of results: by how many results carry them,
 *  dropping those that already show too many values (or, when the page is every result, too few).
 *  Active filters' keys always stay, so their chips' values are listed too. */
export function candidateKeys(items, complete, active) {
  const carried = new Map(); // key → [results carrying it, values seen]
  for (const item of items) {
    for (const [key, values] of leaves(item.attributes.metadata)) {
      const seen = carried.get(key) || [0, new Set()];
      seen[0] += 1;
      for (const v of values) seen[1].add(v);
      carried.set(key, seen);
    }
  }
  const keys = [...carried].filter(([, [, values]]) => values.size <= MAX_VALUES && (!complete || values.size >= MIN_VALUES))
    .sort((a, b) => b[1][0] - a[1][0] || (a[0] < b[0] ? -1 : 1)).map(([key]) => key)
    .filter((key) => !active.includes(key));
  return [...active, ...keys].slice(0, Math.max(MAX_KEYS, active.length));
}

const pageOf = (params) => Math.max(0, parseInt(params.get('page') || '0', 10) || 0);

/** The page of results the address asks for under the container `scope` (one cache entry, so
 *  app.js may ask for it together with the node, as it does a container's first page). */
export function resultsPage(api, scope, params) {
  const query = filterQuery((params.get('q') || '').trim(), filtersOf(params));
  return api.json('search-deep', scope, {
    ...query, 'page[offset]': pageOf(params) * PAGE, 'page[limit]': PAGE, max_depth: DEPTH, fields: FIELDS, omit_links: true,
  });
}

const shown = (value) => (typeof value === 'string' ? value : JSON.stringify(value));

export async function render(el, ctx) {
  const family = ctx.node?.attributes?.structure_family;
  // searching from an array or table searches its container
  const scope = !ctx.node || family === 'container' ? ctx.path : ctx.path.split('/').slice(0, -1).join('/');
  const q = (ctx.params.get('q') || '').trim();
  const filters = filtersOf(ctx.params);
  const box = document.getElementById('q');
  if (box && document.activeElement !== box) box.value = q;

  // the address this view is at, minus the page: every facet link and chip starts from it
  const base = { view: 'search', q: q || null };
  for (const [key, value] of filters) base[`f.${key}`] = toParam(value);
  const link = (changes) => ctx.href(ctx.path, { ...base, ...changes });

  const offset = pageOf(ctx.params) * PAGE;
  const query = filterQuery(q, filters);
  const answer = await resultsPage(ctx.api, scope, ctx.params);
  const count = answer.meta?.count ?? answer.data.length;
  // the facet counts are asked for before the results are drawn: one round trip less on the clock
  const keys = candidateKeys(answer.data, offset === 0 && answer.data.length >= count, filters.map(([k]) => k));
  const counted = keys.length ? ctx.api.json('distinct', scope, { ...query, metadata: keys, counts: true, max_depth: DEPTH }) : null;

  const facets = h('div', { class: 'facet-list' });
  const panel = h('details', { class: 'facets', open: window.matchMedia('(min-width: 700px)').matches },
    h('summary', {}, 'Filters'), facets);
  const results = h('div', { class: 'results' });
  append(el, h('div', { class: 'search-layout' }, panel, results));

  const where = scope ? `in “${scope}”` : 'in the whole catalog';
  append(results,
    h('p', { class: 'search-status', role: 'status' },
      `${fmtInt(count)} result${count === 1 ? '' : 's'}`, q ? ` for “${q}”` : '', ` ${where}`,
      scope ? [' · ', h('a', { href: ctx.href('', { ...base, view: 'search' }) }, 'search everywhere')] : null),
    chips(filters, link));

  results.append(resultList(answer, count, offset, ctx, base, filters.length));

  await fillFacets(facets, keys, filters, link, counted);
}

/** The shallowest metadata value (as [dotted key, text]) that holds the searched text, to show
 *  why a result matched; null when none holds it as typed (the server's fulltext matches words). */
function matched(metadata, q) {
  const want = q.toLowerCase();
  let level = [['', metadata]];
  while (level.length) {
    const next = [];
    for (const [path, value] of level) {
      if (isScalar(value)) {
        if (String(value).toLowerCase().includes(want)) return [path, String(value)];
      } else if (value && typeof value === 'object') {
        for (const [key, inner] of Object.entries(value)) next.push([path ? `${path}.${key}` : key, inner]);
      }
    }
    level = next;
  }
  return null;
}

/** The results as a table (name, kind, size, where) with pages, or a note saying there are none. */
function resultList(answer, count, offset, ctx, base, filtered) {
  if (!answer.data.length) {
    return h('div', { class: 'empty search-empty' },
      h('p', {}, count ? 'No results on this page.' : 'Nothing matches.'),
      filtered ? h('p', {}, h('a', { href: ctx.href(ctx.path, { view: 'search', q: base.q }) }, 'Clear the filters')) : null);
  }
  const parentOf = (item) => (item.attributes.ancestors || []).join('/');
  const rows = childRows(answer.data, ctx, parentOf);
  rows.forEach((row, i) => {
    const parent = parentOf(answer.data[i]);
    const hit = base.q ? matched(answer.data[i].attributes.metadata, base.q) : null;
    if (hit) row.firstChild.append(h('div', { class: 'match' }, `${hit[0]}: ${hit[1]}`));
    row.append(h('td', { class: 'where' }, h('a', { href: ctx.href(parent) }, `/${parent}`)));
  });
  const frag = document.createDocumentFragment();
  append(frag,
    h('table', { class: 'children results-table' },
      h('thead', {}, h('tr', {}, ['Name', 'Kind', 'Size', 'In'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)),
    pager(offset, count, ctx, base));
  return frag;
}

/** The facet panel's groups, once /distinct has counted the keys' values (`counted`, its pending
 *  answer; the results are on screen meanwhile, and if counting fails they stay, with a note). */
async function fillFacets(facets, keys, filters, link, counted) {
  if (!keys.length) { facets.append(h('p', { class: 'empty' }, 'No filters for these results.')); return; }
  const counting = h('p', { class: 'loading' }, 'Counting…');
  facets.append(counting);
  let distinct;
  try {
    distinct = await counted;
  } catch (error) {
    counting.replaceWith(h('p', { class: 'empty', role: 'status' }, `Filters unavailable: ${error.detail || error.message}`));
    console.warn(error);
    return;
  }
  const active = new Map(filters.map(([k, v]) => [k, JSON.stringify(v)]));
  const groups = keys.map((key) => facet(key, distinct.metadata?.[key] || [], active, link)).filter(Boolean);
  counting.replaceWith(...(groups.length ? groups : [h('p', { class: 'empty' }, 'No filters for these results.')]));
}

/** The scalar values of a /distinct answer, equal ones as one: it lists 300 and 300.0 apart, but
 *  JSON (and so a filter) cannot tell them apart and `eq` 300 matches both, so their counts add. */
export function merged(values) {
  const out = new Map();
  for (const { value, count } of values) {
    if (value === null || !isScalar(value)) continue;
    const key = JSON.stringify(value);
    if (out.has(key)) out.get(key).count += count;
    else out.set(key, { value, count });
  }
  return [...out.values()];
}

/** One key's values with counts, most common first, each a link toggling its filter. */
function facet(key, values, active, link) {
  const known = merged(values);
  const isActive = active.has(key);
  if (!isActive && (known.length < MIN_VALUES || known.length > MAX_VALUES)) return null;
  known.sort((a, b) => b.count - a.count || (shown(a.value) < shown(b.value) ? -1 : 1));
  const item = ({ value, count }) => {
    const on = active.get(key) === JSON.stringify(value);
    return h('li', {}, h('a', {
      href: link({ [`f.${key}`]: on ? null : toParam(value), page: null }),
      class: on ? 'facet-value on' : 'facet-value',
      'aria-current': on ? 'true' : null,
      'aria-label': `${on ? 'Remove filter' : 'Filter'} ${key} = ${shown(value)} (${count})`,
    }, h('span', { class: 'facet-name' }, shown(value)), h('span', { class: 'count' }, fmtInt(count))));
  };
  const first = known.slice(0, SHOWN);
  const rest = known.slice(SHOWN);
  const id = `facet-${key.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  return h('section', { class: 'facet', 'aria-labelledby': id },
    h('h2', { id }, key),
    h('ul', {}, first.map(item)),
    rest.length ? h('details', { class: 'more' }, h('summary', {}, `${rest.length} more`), h('ul', {}, rest.map(item))) : null);
}

/** The active filters as removable chips, and a way to remove them all. */
function chips(filters, link) {
  if (!filters.length) return null;
  const none = Object.fromEntries(filters.map(([k]) => [`f.${k}`, null]));
  return h('ul', { class: 'chips', 'aria-label': 'Active filters' },
    filters.map(([key, value]) => h('li', {}, h('a', {
      class: 'chip', href: link({ [`f.${key}`]: null, page: null }), 'aria-label': `Remove filter ${key} = ${shown(value)}`,
    }, `${key}: ${shown(value)}`, h('span', { class: 'x', 'aria-hidden': 'true' }, '×')))),
    filters.length > 1 ? h('li', {}, h('a', { class: 'clear', href: link({ ...none, page: null }) }, 'Clear all')) : null);
}
