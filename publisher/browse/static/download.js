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
const PREFERRED = {
  array: 'application/x-npy', sparse: 'application/x-parquet', table: 'application/x-parquet', container: 'application/x-hdf5',
  awkward: 'application/x-parquet',
};
/** Where each family's whole answer is (Tiled's links.full; a sparse array's is ours, docs/catalog.md). */
const ROUTES = { array: 'array/full', sparse: 'sparse/full', table: 'table/full', container: 'container/full', awkward: 'awkward/full' };
/** Sparse formats that write the dense array (the others write its nonzeros: dim0.., data). */
const DENSE = ['text/csv', 'image/png'];

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

const NPY_TYPES = ['application/octet-stream', 'application/x-npy', 'image/tiff'];
/** A table format's size per byte of its values (rows × columns × 8), plus a fixed overhead,
 *  measured on the demo's tables: small tables are mostly footer (Parquet), styles (XLSX). */
const TABLE_SIZE = {
  'application/x-parquet': [1, 1500, 'at most about the values’ size: Parquet compresses'],
  'application/vnd.apache.arrow.file': [1.3, 1000, 'about the values’ size'],
  'text/csv': [3, 0, 'up to about 3 × the values’ size, as text'],
  'application/json': [3, 0, 'up to about 3 × the values’ size, as text'],
  'application/json-seq': [6, 0, 'up to about 6 × the values’ size: each row repeats the names'],
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': [2, 5000, 'about 2 × the values’ size'],
};

/** Bytes a download should weigh, {bytes, how} or null when it cannot be known beforehand:
 *  exact for raw bytes and NPY (values × item size; NPY adds a 128-byte header), a bound for
 *  arrays as text and PNG, a measured ratio for table formats. */
export function estimate(family, structure, type, { shape, columns } = {}) {
  if (family === 'sparse' && !DENSE.includes(type)) return null; // the nonzeros: their count is not in the structure
  if (family === 'array' || family === 'sparse') {
    const count = shape.reduce((a, b) => a * b, 1);
    if (NPY_TYPES.includes(type)) return { bytes: count * itemsize(structure.data_type), how: 'values × item size' };
    const width = textWidth(structure.data_type);
    if (type === 'text/csv') return { bytes: count * width, how: 'at most: every value written in full' };
    if (type === 'application/json') return { bytes: count * (width + 1), how: 'at most: every value written in full' };
    if (type === 'image/png') return { bytes: count * 4, how: 'at most: PNG compresses' };
    return null;
  }
  const size = family === 'table' && TABLE_SIZE[type];
  if (!size) return null;
  return { bytes: Math.round((structure.row_count || 0) * columns * 8 * size[0] + size[1]), how: size[2] };
}

/** publisher/limits.py: the server builds a whole answer in memory and refuses one needing more
 *  than SKYSHELF_MAX_ANSWER_BYTES (512 MiB unless configured); working bytes per data byte
 *  (FACTORS) and per array value in text and images (PER_VALUE), as measured there. */
const MAX_ANSWER_BYTES = 512 * 2 ** 20;
const FACTORS = {
  'application/vnd.apache.arrow.file': 2, 'application/x-parquet': 2, 'application/octet-stream': 2,
  'application/x-npy': 2, 'application/x-hdf5': 2, 'image/tiff': 2, 'text/csv': 4, 'application/json': 20,
  'application/json-seq': 20, 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 25,
};
const PER_VALUE = { 'application/json': 96, 'text/csv': 40, 'image/png': 24, 'text/html': 96 };

/** The memory the server needs to build this answer (limits.cost with array_factor), or null. */
export function buildCost(family, structure, type, { shape, columns } = {}) {
  if (family === 'sparse' && !DENSE.includes(type)) return null;
  if (family === 'array' || family === 'sparse') {
    const size = itemsize(structure.data_type);
    const bytes = shape.reduce((a, b) => a * b, 1) * size;
    return bytes * (type in PER_VALUE ? 1 + PER_VALUE[type] / size : FACTORS[type] ?? 20);
  }
  if (family === 'table') return (structure.row_count || 0) * columns * 8 * (FACTORS[type] ?? 20);
  return null;
}

let uid = 0;

/** A read-only field with the URL and a Copy button (copies, or selects the text to copy). */
export function copyField(label, value) {
  const id = `dl-${++uid}`;
  const input = h('input', { id, type: 'text', readOnly: true, value, class: 'url', spellcheck: 'false' });
  const said = h('span', { class: 'copied', role: 'status' });
  const button = h('button', { type: 'button', onclick: () => copy(input.value, input, said) }, 'Copy');
  const el = h('div', { class: 'copyfield' }, h('label', { for: id }, label), h('div', { class: 'row' }, input, button, said));
  return { el, input, button };
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

function choice(type, name, value, label, checked, onchange) {
  const id = `dl-${++uid}`;
  const input = h('input', { type, id, name, value, checked, onchange });
  return h('span', { class: 'choice' }, input, h('label', { for: id }, label));
}

/** The array part of the form: the whole array or an editable slice (kept in the address). */
function arrayChoice(structure, state, refresh) {
  const pick = (mode) => () => { state.mode = mode; refresh(); };
  const slice = h('input', {
    id: 'dl-slice', type: 'text', value: state.slice, spellcheck: 'false', 'aria-describedby': 'dl-slice-help',
    placeholder: structure.shape.map(() => ':').join(','),
    oninput: () => {
      state.slice = slice.value.trim();
      state.mode = 'slice';
      fieldset.querySelector('input[value=slice]').checked = true;
      refresh();
    },
  });
  const fieldset = h('fieldset', { class: 'what' }, h('legend', {}, 'What'),
    choice('radio', 'dl-what', 'whole', `The whole array (${fmtShape(structure.shape)})`,
      state.mode === 'whole', pick('whole')),
    choice('radio', 'dl-what', 'slice', 'A slice', state.mode === 'slice', pick('slice')),
    h('div', { class: 'field' }, h('label', { for: 'dl-slice' }, 'Slice'), slice,
      h('small', { id: 'dl-slice-help' },
        'Per dimension an index or start:stop:step, comma-separated (e.g. 3,0:10,:)')));
  return fieldset;
}

/** The table part: a checkbox per column (all = the whole table), with All / None. */
function columnChoice(structure, columns, chosen, refresh) {
  const boxes = columns.map((name) => choice('checkbox', null, name, name, chosen.has(name), (e) => {
    if (e.target.checked) chosen.add(name);
    else chosen.delete(name);
    refresh();
  }));
  const all = (on) => () => {
    chosen.clear();
    if (on) columns.forEach((c) => chosen.add(c));
    for (const box of boxes) box.querySelector('input').checked = on;
    refresh();
  };
  const legend = h('legend', {}, `Columns (${fmtInt(structure.row_count)} rows)`);
  return h('fieldset', { class: 'what columns' }, legend, boxes,
    h('div', { class: 'row' }, h('button', { type: 'button', class: 'secondary', onclick: all(true) }, 'All'),
      h('button', { type: 'button', class: 'secondary', onclick: all(false) }, 'None')));
}

/** Formats that hold numbers only (the handlers answer 400 for complex, text, records...). */
const NUMBERS_ONLY = ['image/tiff', 'image/png'];

/** Whether the node's values go into this format: TIFF and PNG only for booleans, integers and floats. */
function takes(family, structure, type) {
  if (!['array', 'sparse'].includes(family) || !NUMBERS_ONLY.includes(type)) return true;
  return ['b', 'i', 'u', 'f'].includes(structure.data_type?.kind);
}

/** What is wrong with the selection before anything is asked (null: nothing). */
function selectionProblem(family, type, shape, chosen) {
  if (shape instanceof Error) return `Slice: ${shape.message}.`;
  if (shape && type === 'image/png' && !(shape.length === 2 || (shape.length === 3 && [3, 4].includes(shape[2])))) {
    return `A PNG needs a 2-D selection (this one is ${fmtShape(shape)}): choose a slice such as 0,:,:.`;
  }
  if (family === 'table' && !chosen.size) return 'Choose at least one column.';
  return null;
}

export async function render(el, ctx) {
  const family = ctx.node.attributes.structure_family;
  const structure = ctx.node.attributes.structure || {};
  const offered = ctx.api.about?.formats?.[family] || [];
  const aliases = ctx.api.about?.aliases?.[family] || {};
  const types = [...offered].filter((t) => takes(family, structure, t))
    .sort((a, b) => (b === PREFERRED[family]) - (a === PREFERRED[family]));
  if (!types.length || !ROUTES[family]) {
    el.append(h('p', {}, `This server offers no downloads for a ${family}.`));
    return;
  }
  // an awkward array is sliced like a 1-D array, by its top-level entries
  const isArray = ['array', 'sparse', 'awkward'].includes(family);
  const shaped = family === 'awkward' ? { ...structure, shape: [structure.length || 0] } : structure;
  const asked = ctx.params.get('slice') || '';
  const state = { type: types[0], mode: asked ? 'slice' : 'whole', slice: asked, named: false };
  const columns = family === 'table' ? (structure.columns || []) : [];
  // repeated columns=; one comma-separated value as links before names with commas were kept whole
  const named = ctx.params.getAll('columns');
  const listed = (named.length === 1 && !columns.includes(named[0]) ? named[0].split(',') : named).filter((c) => columns.includes(c));
  const chosen = new Set(listed.length ? listed : columns);
  const extension = (type) => (FORMATS[type] || [type, (aliases[type] || ['bin'])[0]])[1];

  const select = h('select', { id: 'dl-format', onchange: () => {
    if (state.named) { // keep the chosen stem, change the extension
      nameInput.value = nameInput.value.replace(new RegExp(`\\.${extension(state.type)}$`), `.${extension(select.value)}`);
    }
    state.type = select.value;
    refresh();
  } }, types.map((t) => h('option', { value: t }, (FORMATS[t] || [t])[0])));
  const nameInput = h('input', {
    id: 'dl-name', type: 'text', spellcheck: 'false', oninput: () => { state.named = true; refresh(); },
  });
  const size = h('p', { class: 'estimate', id: 'dl-size', 'aria-live': 'polite' });
  const problem = h('p', { class: 'problem', role: 'alert', hidden: true });
  const warning = h('p', { class: 'warning', hidden: true });
  const url = copyField('URL', '');
  const status = h('p', { class: 'status', role: 'status' });
  const button = h('button', { type: 'submit', class: 'primary', id: 'dl-go' }, 'Download');
  el.append(h('form', { class: 'download', onsubmit: (e) => { e.preventDefault(); go(); } },
    h('div', { class: 'field' }, h('label', { for: 'dl-format' }, 'Format'), select),
    isArray ? arrayChoice(shaped, state, refresh)
      : family === 'table' ? columnChoice(structure, columns, chosen, refresh)
        : h('p', {}, `The whole ${family}, with everything below it.`),
    h('div', { class: 'field' }, h('label', { for: 'dl-name' }, 'File name'), nameInput),
    size, problem, warning, url.el, h('div', { class: 'row' }, button, status)));

  let current = null;
  function refresh() {
    const { type } = state;
    const slice = isArray && state.mode === 'slice' ? state.slice : '';
    const shape = isArray ? (slice ? sliceShape(slice, shaped.shape) : shaped.shape) : null;
    const error = selectionProblem(family, type, shape, chosen);
    if (!state.named) nameInput.value = fileName(ctx.path, slice, extension(type));
    const filename = nameInput.value.trim() || fileName(ctx.path, slice, extension(type));
    const picked = columns.filter((c) => chosen.has(c));
    const query = { format: (aliases[type] || [type])[0], filename, slice: slice || null };
    if (picked.length < columns.length) query.column = picked;
    const href = ctx.api.url(ROUTES[family], ctx.path, query);
    url.input.value = href;
    const selection = { shape, columns: chosen.size };
    const guess = error ? null : estimate(family, structure, type, selection);
    size.textContent = guess ? `Size: ≈ ${fmtBytes(guess.bytes)} (an estimate: ${guess.how})`
      : 'Size: not known before the download';
    size.dataset.bytes = guess ? String(guess.bytes) : '';
    const cost = error ? null : buildCost(family, structure, type, selection);
    warning.hidden = !(cost > MAX_ANSWER_BYTES);
    warning.textContent = warning.hidden ? ''
      : `The server may refuse this: building it takes about ${fmtBytes(cost)} of memory, past its usual limit `
        + `of ${fmtBytes(MAX_ANSWER_BYTES)}. Choose a ${isArray ? 'slice' : 'few columns'} or a binary format.`;
    problem.textContent = error || '';
    problem.hidden = !error;
    button.disabled = Boolean(error);
    current = error ? null : { href, filename };
    if (isArray) ctx.update({ slice: slice || null });
    if (family === 'table') ctx.update({ columns: picked.length < columns.length ? picked : null });
  }

  async function go() {
    if (!current) return;
    const { href, filename } = current;
    status.textContent = 'Starting the download…';
    try {
      await ctx.api.download(href, filename, (bytes) => { status.textContent = `Downloading ${filename}: ${fmtBytes(bytes)}`; });
      status.textContent = `Downloaded ${filename}`;
    } catch (error) {
      status.textContent = `The download failed: ${error.detail || error.message}`;
    }
  }
  refresh();
}
