// Small DOM and formatting helpers shared by every view. Server strings only ever become text
// nodes or attribute values (never HTML): the page runs under a CSP with script-src 'self'.

/** h('a', {href: '#/x', class: 'c'}, 'text', child) → an element. `on<event>` attributes become
 *  listeners; null/false attributes and children are skipped; arrays of children are flattened. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key in el && typeof value !== 'string' && key !== 'list') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, ...children);
  return el;
}

export function append(el, ...children) {
  for (const child of children) {
    if (child == null || child === false) continue;
    if (Array.isArray(child)) append(el, ...child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];

/** 1536 → "1.5 KB" (decimal units, as browsers and S3 consoles show sizes). */
export function fmtBytes(n) {
  if (n == null || !Number.isFinite(n)) return '?';
  let i = 0;
  while (n >= 1000 && i < UNITS.length - 1) { n /= 1000; i += 1; }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${UNITS[i]}`;
}

export const fmtInt = (n) => (n == null ? '?' : Number(n).toLocaleString('en-US'));

export const fmtShape = (shape) => (shape && shape.length ? shape.map(fmtInt).join(' × ') : 'scalar');

/** Tiled's data_type {kind, itemsize} → numpy's name ("uint16", "float64", "<U12"). */
export function dtypeName(dt) {
  if (!dt) return '?';
  if (dt.fields) return 'struct';
  const kinds = { u: 'uint', i: 'int', f: 'float', c: 'complex', b: 'bool', M: 'datetime64', m: 'timedelta64' };
  if (dt.kind === 'b') return 'bool';
  if (dt.kind === 'U') return `str${dt.itemsize / 4}`;
  if (dt.kind === 'S') return `bytes${dt.itemsize}`;
  if (dt.kind in kinds) return `${kinds[dt.kind]}${dt.kind === 'M' || dt.kind === 'm' ? '' : dt.itemsize * 8}`;
  return `${dt.kind}${dt.itemsize}`;
}

export const itemsize = (dt) => (dt && dt.itemsize) || 8;

/** Bytes an array holds in memory: what npy downloads weigh and what others are estimated from. */
export const arrayBytes = (structure) =>
  (structure.shape || []).reduce((a, b) => a * b, 1) * itemsize(structure.data_type);

/** The one-line summary of a node: "12 × 256 × 256 uint16", "12 rows × 4 columns", "3 items". */
export function summary(family, structure) {
  if (!structure) return family;
  if (family === 'container') return `${fmtInt(structure.count)} item${structure.count === 1 ? '' : 's'}`;
  if (family === 'table') return `${fmtInt(structure.row_count)} rows × ${fmtInt((structure.columns || []).length)} columns`;
  if (family === 'array' || family === 'sparse') return `${fmtShape(structure.shape)} ${dtypeName(structure.data_type)}`;
  if (family === 'awkward') return `${fmtInt(structure.length)} ragged item${structure.length === 1 ? '' : 's'}`;
  return family;
}
