// The Download tab: every format the handlers offer for the node's family, what to take (the
// whole node, an array slice, chosen table columns), the file name, a size estimated from the
// structure before anything is fetched, the URL (copyable) and a Download button.
import { h, fmtBytes, fmtInt, fmtShape, itemsize } from './dom.js';

/** Media type → [readable name, file extension]. Unknown types fall back to their alias. */
const FORMATS = {
  'application/octet-stream': ['Raw bytes', 'bin'],
  'application/json': ['JSON', 'json'],
  'text/csv': ['CSV', 'csv'],
  'application/x-npy': ['NPY (NumPy)', 'npy'],
  'image/tiff': ['TIFF', 'tiff'],
  'image/png': ['PNG image', 'png'],
  'text/html': ['HTML', 'html'],
  'application/x-parquet': ['Parquet', 'parquet'],
  'application/vnd.apache.arrow.file': ['Arrow (Feather)', 'arrow'],
  'application/json-seq': ['JSON lines', 'jsonl'],
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': ['XLSX (Excel)', 'xlsx'],
  'application/x-hdf5': ['HDF5', 'h5'],
};
/** The first format offered: the most useful one per family. */
const PREFERRED = { array: 'application/x-npy', sparse: 'application/x-npy', table: 'application/x-parquet', container: 'application/x-hdf5' };
const ROUTES = { array: 'array/full', sparse: 'array/full', table: 'table/full', container: 'container/full' };

/** Characters per value of an array written as text (digits, sign, point, separator): an
 *  estimate for the widest value of the type, as the values themselves are not known yet. */
function textWidth(dt) {
  const size = itemsize(dt);
  if (dt?.kind === 'f' || dt?.kind === 'c') return size >= 8 ? 22 : 13;
  if (dt?.kind === 'b') return 2;
  return { 1: 4, 2: 6, 4: 11, 8: 20 }[size] || size * 3;
}

/** Tiled slice syntax ("3,0:10,::2") against a shape → the selected shape, or an Error. */
export function sliceShape(text, shape) {
  const parts = text.trim() ? text.split(',').map((p) => p.trim()) : [];
  if (parts.length > shape.length) return new Error(`${parts.length} dimensions given, the array has ${shape.length}`);
  const out = [];
  for (let i = 0; i < shape.length; i += 1) {
    const n = shape[i];
    const part = parts[i] ?? ':';
    if (/^-?\d+$/.test(part)) {
      const k = Number(part);
      if (k >= n || k < -n) return new Error(`index ${k} is outside dimension ${i} (length ${n})`);
      continue;
    }
    const m = part.match(/^(-?\d*):(-?\d*)(?::(-?\d*))?$/);
    if (!m) return new Error(`“${part}” is not an index or a start:stop:step range`);
    const step = m[3] ? Number(m[3]) : 1;
    if (step <= 0) return new Error(`step ${step} must be positive`);
    const clamp = (v, dflt) => (v === '' ? dflt : Math.min(Math.max(Number(v) < 0 ? n + Number(v) : Number(v), 0), n));
    const start = clamp(m[1], 0);
    const stop = clamp(m[2], n);
    out.push(Math.max(0, Math.ceil((stop - start) / step)));
  }
  return out;
}

/** The handler's own default name (handlers/data.py): "data_3_0-10_0-5.csv". */
export function fileName(path, slice, ext) {
  let name = path.split('/').pop() || 'catalog';
  const dims = (slice || '').split(',').map((d) => d.trim());
  while (dims.length && ['', ':', '::'].includes(dims[dims.length - 1])) dims.pop();
  if (dims.length) name += `_${dims.map((d) => (d === ':' || d === '::' ? 'all' : d.replaceAll(':', '-'))).join('_')}`;
  return `${name.replace(/[/\\]/g, '_')}.${ext}`;
}

/** Bytes a download should weigh: exact for raw bytes and NPY (plus its 128-byte header),
 *  near for binary table formats, a bound for text and images. null when it cannot be known. */
export function estimate(family, structure, type, { shape, columns } = {}) {
  if (family === 'array' || family === 'sparse') {
    const count = shape.reduce((a, b) => a * b, 1);
    const bytes = count * itemsize(structure.data_type);
    if (['application/octet-stream', 'application/x-npy', 'image/tiff'].includes(type)) return { bytes, how: 'values × item size' };
    if (type === 'text/csv') return { bytes: count * textWidth(structure.data_type), how: 'at most, values written as text' };
    if (type === 'application/json') return { bytes: count * (textWidth(structure.data_type) + 1), how: 'at most, values written as text' };
    if (type === 'image/png') return { bytes: count * 4, how: 'at most: PNG compresses' };
    return null;
  }
  if (family === 'table') {
    const bytes = (structure.row_count || 0) * columns * 8;
    const factor = { 'application/x-parquet': [1, 'at most: Parquet compresses'], 'application/vnd.apache.arrow.file': [1, 'rows × columns × 8 bytes'],
      'text/csv': [3, 'about 3 × the binary size'], 'application/json': [6, 'about 6 × the binary size'],
      'application/json-seq': [6, 'about 6 × the binary size'],
      'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': [2, 'about 2 × the binary size'] }[type];
    return factor ? { bytes: bytes * factor[0], how: factor[1] } : null;
  }
  return null;
}

let uid = 0;

/** A read-only field with the URL and a Copy button (copies, or selects the text to copy). */
export function copyField(label, value) {
  const id = `dl-${++uid}`;
  const input = h('input', { id, type: 'text', readOnly: true, value, class: 'url', spellcheck: 'false' });
  const said = h('span', { class: 'copied', role: 'status' });
  const button = h('button', { type: 'button', onclick: () => copy(input.value, input, said) }, 'Copy');
  return { el: h('div', { class: 'copyfield' }, h('label', { for: id }, label), h('div', { class: 'row' }, input, button, said)), input, button };
}

/** navigator.clipboard where the page may use it (https or localhost), else select the text. */
export async function copy(text, target, said) {
  try {
    if (!navigator.clipboard) throw new Error('no clipboard');
    await navigator.clipboard.writeText(text);
    said.textContent = 'Copied';
  } catch {
    if (target.select) target.select();
    else window.getSelection().selectAllChildren(target);
    said.textContent = 'Selected: press Ctrl+C';
  }
  setTimeout(() => { said.textContent = ''; }, 3000);
}

function radio(name, value, label, checked, onchange) {
  const id = `dl-${++uid}`;
  return h('span', { class: 'choice' }, h('input', { type: 'radio', id, name, value, checked, onchange }), h('label', { for: id }, label));
}

export async function render(el, ctx) {
  const family = ctx.node.attributes.structure_family;
  const structure = ctx.node.attributes.structure || {};
  const about = ctx.api.about || {};
  const offered = (about.formats || {})[family === 'sparse' ? 'array' : family] || [];
  const aliases = (about.aliases || {})[family === 'sparse' ? 'array' : family] || {};
  const types = [...offered].sort((a, b) => (b === PREFERRED[family]) - (a === PREFERRED[family]));
  if (!types.length) { el.append(h('p', {}, `This server offers no downloads for a ${family}.`)); return; }
  const state = { type: types[0], mode: ctx.params.get('slice') ? 'slice' : 'whole', slice: ctx.params.get('slice') || '' };
  const isArray = family === 'array' || family === 'sparse';
  const columns = family === 'table' ? (structure.columns || []) : [];
  const chosenParam = (ctx.params.get('columns') || '').split(',').filter((c) => columns.includes(c));
  const chosen = new Set(chosenParam.length ? chosenParam : columns);

  const select = h('select', { id: 'dl-format', onchange: () => { state.type = select.value; refresh(); } },
    types.map((t) => h('option', { value: t }, `${(FORMATS[t] || [t])[0]}`)));
  const parts = [h('div', { class: 'field' }, h('label', { for: 'dl-format' }, 'Format'), select)];

  let sliceInput = null;
  if (isArray) {
    sliceInput = h('input', { id: 'dl-slice', type: 'text', value: state.slice, placeholder: structure.shape.map(() => ':').join(','),
      spellcheck: 'false', 'aria-describedby': 'dl-slice-help',
      oninput: () => { state.slice = sliceInput.value.trim(); state.mode = 'slice'; whole.querySelector('input[value=slice]').checked = true; refresh(); } });
    const whole = h('fieldset', { class: 'what' }, h('legend', {}, 'What'),
      radio('dl-what', 'whole', `The whole array (${fmtShape(structure.shape)})`, state.mode === 'whole', () => { state.mode = 'whole'; refresh(); }),
      radio('dl-what', 'slice', 'A slice', state.mode === 'slice', () => { state.mode = 'slice'; refresh(); }),
      h('div', { class: 'field' }, h('label', { for: 'dl-slice' }, 'Slice'), sliceInput,
        h('small', { id: 'dl-slice-help' }, 'Per dimension an index or start:stop:step, comma-separated (e.g. 3,0:10,:)')));
    parts.push(whole);
  } else if (family === 'table') {
    const boxes = columns.map((name) => {
      const id = `dl-${++uid}`;
      return h('span', { class: 'choice' }, h('input', { type: 'checkbox', id, value: name, checked: chosen.has(name),
        onchange: (e) => { if (e.target.checked) chosen.add(name); else chosen.delete(name); refresh(); } }), h('label', { for: id }, name));
    });
    const all = (on) => { for (const b of boxes) b.querySelector('input').checked = on; chosen.clear(); if (on) columns.forEach((c) => chosen.add(c)); refresh(); };
    parts.push(h('fieldset', { class: 'what columns' }, h('legend', {}, `Columns (${fmtInt(structure.row_count)} rows)`), boxes,
      h('div', { class: 'row' }, h('button', { type: 'button', onclick: () => all(true) }, 'All'), h('button', { type: 'button', onclick: () => all(false) }, 'None'))));
  } else {
    parts.push(h('p', {}, `The whole ${family}, with everything below it.`));
  }

  const nameInput = h('input', { id: 'dl-name', type: 'text', spellcheck: 'false', oninput: () => { state.named = true; refresh(); } });
  const size = h('p', { class: 'estimate', id: 'dl-size', 'aria-live': 'polite' });
  const problem = h('p', { class: 'problem', role: 'alert', hidden: true });
  const url = copyField('URL', '');
  const status = h('p', { class: 'status', role: 'status' });
  const button = h('button', { type: 'button', class: 'primary', id: 'dl-go', onclick: go }, 'Download');
  parts.push(h('div', { class: 'field' }, h('label', { for: 'dl-name' }, 'File name'), nameInput), size, problem, url.el,
    h('div', { class: 'row' }, button, status));
  el.append(h('form', { class: 'download', onsubmit: (e) => { e.preventDefault(); go(); } }, parts));

  let current = null;
  function refresh() {
    const type = state.type;
    const [, ext] = FORMATS[type] || [type, (aliases[type] || ['bin'])[0]];
    const slice = isArray && state.mode === 'slice' ? state.slice : '';
    let shape = isArray ? structure.shape : null;
    let error = null;
    if (isArray && slice) {
      shape = sliceShape(slice, structure.shape);
      if (shape instanceof Error) { error = `Slice: ${shape.message}.`; shape = null; }
    }
    if (!error && isArray && type === 'image/png' && !(shape.length === 2 || (shape.length === 3 && [3, 4].includes(shape[2])))) {
      error = `A PNG needs a 2-D selection (this one is ${fmtShape(shape)}): choose a slice such as 0,:,:.`;
    }
    if (!error && family === 'table' && !chosen.size) error = 'Choose at least one column.';
    if (!state.named) nameInput.value = fileName(ctx.path, slice, ext);
    const filename = nameInput.value.trim() || fileName(ctx.path, slice, ext);
    const query = { format: (aliases[type] || [type])[0], filename };
    if (slice) query.slice = slice;
    if (family === 'table' && chosen.size < columns.length) query.column = columns.filter((c) => chosen.has(c));
    const href = ctx.api.url(ROUTES[family], ctx.path, query);
    url.input.value = href;
    const guess = error ? null : estimate(family, structure, type, { shape, columns: chosen.size });
    size.replaceChildren(guess ? `Size: ≈ ${fmtBytes(guess.bytes)} (an estimate: ${guess.how})` : 'Size: not known before the download');
    size.dataset.bytes = guess ? String(guess.bytes) : '';
    problem.textContent = error || '';
    problem.hidden = !error;
    button.disabled = Boolean(error);
    current = error ? null : { href, filename };
    if (isArray) ctx.update({ slice: state.mode === 'slice' && state.slice ? state.slice : null });
    if (family === 'table') ctx.update({ columns: chosen.size < columns.length ? columns.filter((c) => chosen.has(c)).join(',') : null });
  }

  async function go() {
    if (!current) return;
    status.textContent = 'Starting the download…';
    try {
      await ctx.api.download(current.href, current.filename);
      status.textContent = `Downloading ${current.filename}`;
    } catch (error) {
      status.textContent = `The download failed: ${error.detail || error.message}`;
    }
  }
  refresh();
}
