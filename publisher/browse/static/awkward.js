// An awkward (ragged) node's preview: its first entries as the API's JSON (one bounded request:
// awkward/full?slice=0:20), each entry as nested lists and records, with paging by entries.
import { append, fmtInt, h } from './dom.js';
import { valueTable } from './node.js';

/** Entries shown per page; also what one awkward/full slice costs at most. */
export const ENTRIES = 20;

/** The form's type in awkward's notation, shallow: "var * {a: int64, b: var * float64}". */
export function typeOf(form) {
  if (!form) return '?';
  switch (form.class) {
    case 'NumpyArray': return (form.inner_shape || []).map((n) => `${n} * `).join('') + form.primitive;
    case 'ListOffsetArray': case 'ListArray': return `var * ${typeOf(form.content)}`;
    case 'RegularArray': return `${form.size} * ${typeOf(form.content)}`;
    case 'IndexedOptionArray': case 'ByteMaskedArray': case 'BitMaskedArray': case 'UnmaskedArray': return `?${typeOf(form.content)}`;
    case 'IndexedArray': return typeOf(form.content);
    case 'RecordArray': return `{${(form.fields || form.contents.map((_, i) => String(i)))
      .map((f, i) => `${f}: ${typeOf(form.contents[i])}`).join(', ')}}`;
    case 'UnionArray': return `union[${form.contents.map(typeOf).join(', ')}]`;
    case 'EmptyArray': return 'unknown';
    default: return form.class;
  }
}

export async function render(el, ctx) {
  const { length = 0, form } = ctx.node.attributes.structure || {};
  const pages = Math.max(1, Math.ceil(length / ENTRIES));
  const page = Math.min(Math.max(Number(ctx.params.get('page')) || 1, 1), pages);
  const start = (page - 1) * ENTRIES;
  const stop = Math.min(start + ENTRIES, length);
  const entries = length ? await ctx.api.json('awkward/full', ctx.path, { slice: `${start}:${stop}`, format: 'application/json' }) : [];
  const nav = pages > 1 ? h('nav', { class: 'pager', 'aria-label': 'Entries' },
    page > 1 ? h('a', { href: ctx.href(ctx.path, { view: 'preview', page: page - 1 }) }, '← Previous') : null,
    h('span', {}, ` entries ${fmtInt(start)}–${fmtInt(stop - 1)} of ${fmtInt(length)} `),
    page < pages ? h('a', { href: ctx.href(ctx.path, { view: 'preview', page: page + 1 }) }, 'Next →') : null) : null;
  append(el,
    h('p', { class: 'awkward-type' }, h('code', {}, `${fmtInt(length)} * ${typeOf(form)}`)),
    length ? h('ol', { class: 'awkward-entries', start: String(start) },
      entries.map((entry) => h('li', {}, valueTable(entry)))) : h('p', { class: 'empty' }, 'No entries.'),
    nav);
}
