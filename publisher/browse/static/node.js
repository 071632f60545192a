// What a node is: its metadata as a nested table, its structure, specs and where it came from.
import { append, arrayBytes, dtypeName, fmtBytes, fmtInt, fmtShape, h } from './dom.js';

const isPlain = (v) => v === null || ['string', 'number', 'boolean'].includes(typeof v);

/** A JSON value as nested tables: objects as key/value rows, lists of scalars inline. */
export function valueTable(value) {
  if (isPlain(value)) return h('span', { class: `v v-${value === null ? 'null' : typeof value}` }, value === null ? '—' : String(value));
  if (Array.isArray(value)) {
    if (value.every(isPlain)) return h('span', { class: 'v v-list' }, value.length ? value.map(String).join(', ') : '[]');
    return h('ol', { class: 'v-items' }, value.map((item) => h('li', {}, valueTable(item))));
  }
  const keys = Object.keys(value);
  if (!keys.length) return h('span', { class: 'v v-null' }, '{}');
  return h('table', { class: 'kv' }, h('tbody', {}, keys.map((k) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, valueTable(value[k]))))));
}

function structureRows(family, s) {
  if (!s) return [];
  if (family === 'array' || family === 'sparse') {
    const chunks = (s.chunks || []).map((c) => (c.length > 1 ? `${c[0]} (${c.length} chunks)` : `${c[0]}`)).join(' × ');
    return [['Shape', fmtShape(s.shape)], ['Dimensions', (s.dims || []).join(', ') || '—'], ['Data type', dtypeName(s.data_type)],
      ['Chunks', chunks || '—'], ['Size in memory', fmtBytes(arrayBytes(s))]];
  }
  if (family === 'table') {
    return [['Rows', fmtInt(s.row_count)], ['Columns', (s.columns || []).join(', ')], ['Partitions', fmtInt(s.npartitions)]];
  }
  if (family === 'container') return [['Items', fmtInt(s.count)]];
  return [['Structure', JSON.stringify(s)]];
}

export async function render(el, ctx) {
  // data_sources only on request (as Tiled): where the node came from and where it is published
  const full = await ctx.api.json('metadata', ctx.path, {
    fields: ['structure_family', 'structure', 'metadata', 'specs', 'data_sources'], include_data_sources: true, omit_links: true });
  const a = full.data.attributes;
  const sources = (a.data_sources || []).flatMap((ds) => [
    ds.parameters?.source_file ? ['Source file', ds.parameters.source_file] : null,
    ds.parameters?.source_path ? ['Path in file', ds.parameters.source_path] : null,
    ...(ds.assets || []).map((asset) => ['Published at', h('a', { href: asset.data_uri }, asset.data_uri)]),
  ]).filter(Boolean);
  const rows = (pairs) => h('table', { class: 'kv' }, h('tbody', {}, pairs.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, v)))));
  append(el,
    h('h2', {}, 'Metadata'),
    a.metadata && Object.keys(a.metadata).length ? valueTable(a.metadata) : h('p', { class: 'empty' }, 'No metadata.'),
    h('h2', {}, 'Structure'), rows(structureRows(a.structure_family, a.structure)),
    (a.specs || []).length ? [h('h2', {}, 'Specs'), h('ul', { class: 'specs' }, a.specs.map((s) => h('li', {}, s.version ? `${s.name} ${s.version}` : s.name)))] : null,
    sources.length ? [h('h2', {}, 'Where it came from'), rows(sources)] : null,
  );
}
