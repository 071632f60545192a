// A table's preview: its first rows (one bounded request: table/full?slice=0:100) under headers
// naming each column's type (read from structure.arrow_schema by arrow.js) and units (from the
// metadata, when the source gave them), and one chosen column as a line plot (`column=` in the
// address), against the row number or another numeric column (`x=`).
import { arrowSchema } from './arrow.js';
import { append, fmtInt, h } from './dom.js';
import { linePlot } from './plot.js';

/** Rows shown; also what a table/full slice costs at most (the API bounds answers). */
export const FIRST_ROWS = 100;
/** Points a column plot asks for at most: longer columns are strided (every k-th row). */
export const PLOT_POINTS = 2000;

const NUMERIC = /^(u?int\d+|halffloat|float|double|decimal\d+\(.*\)|bool)$/;
/** Columns plot.js places as dates (ISO strings in the JSON answer). */
const DATES = /^(timestamp\[.*\]|date(32|64)\[.*\])$/;

function columnTypes(structure) {
  try {
    return new Map(arrowSchema(structure.arrow_schema).map((f) => [f.name, f.type]));
  } catch (error) {
    console.warn('arrow_schema unreadable', error);
    return new Map();
  }
}

/** metadata.columns.<name>.units (NeXus/HDF5 attributes kept by the build), else ''. */
const unitsOf = (metadata, name) => {
  const u = metadata?.columns?.[name]?.units;
  return typeof u === 'string' ? u : '';
};

function cell(value) {
  if (value === null || value === undefined) return h('td', { class: 'null' }, '—');
  if (typeof value === 'number') return h('td', { class: 'num' }, String(value));
  if (typeof value === 'boolean') return h('td', { class: 'num' }, String(value));
  if (typeof value === 'object') return h('td', {}, JSON.stringify(value));
  return h('td', {}, value);
}

function rowsTable(columns, types, metadata, data, count) {
  const head = h('tr', {}, h('th', { scope: 'col', class: 'rownum' }, '#'), columns.map((name) => {
    const units = unitsOf(metadata, name);
    return h('th', { scope: 'col', dataset: { column: name } }, h('span', { class: 'name' }, name),
      h('span', { class: 'type' }, types.get(name) || '?'), units ? h('span', { class: 'units' }, units) : null);
  }));
  const body = Array.from({ length: count }, (_, i) => h('tr', {}, h('th', { scope: 'row', class: 'rownum' }, String(i)),
    columns.map((name) => cell((data[name] || [])[i]))));
  return h('div', { class: 'table-scroll', tabindex: '0', role: 'region', 'aria-label': 'First rows' },
    h('table', { class: 'rows' }, h('thead', {}, head), h('tbody', {}, body)));
}

/** A column's values, every `step`-th row: numbers (anything else → NaN, a gap), or as sent (dates). */
async function columnValues(ctx, name, rows, step, raw = false) {
  // the table's column= and not column/full/<table>/<name>: a name holding "/" (I/I0) is no path segment
  const answer = await ctx.api.json('table/full', ctx.path, { column: name, slice: `0:${rows}:${step}`, format: 'application/json' });
  const values = answer[name];
  return raw ? values : values.map((v) => (typeof v === 'number' ? v : typeof v === 'boolean' ? Number(v) : NaN));
}

export async function render(el, ctx) {
  const { structure = {}, metadata = {} } = ctx.node.attributes;
  const columns = structure.columns || [];
  const rowCount = structure.row_count || 0;
  const types = columnTypes(structure);
  const shown = Math.min(FIRST_ROWS, rowCount);
  let data = {};
  let failed = null; // the rows could not be had (the server's limits): the columns and plot still help
  if (shown && columns.length) {
    try {
      data = await ctx.api.json('table/full', ctx.path, { slice: `0:${shown}`, format: 'application/json' });
    } catch (error) {
      if (!error.status) throw error;
      failed = h('p', { class: 'error', role: 'alert' }, `Could not load the first rows: ${error.detail || error.message}`);
    }
  }

  const numeric = columns.filter((c) => NUMERIC.test(types.get(c) || ''));
  const plotted = h('div', { class: 'column-plot', 'aria-live': 'polite' });
  const say = h('p', { class: 'plot-note' });
  const pick = (id, label, options, value) => h('span', { class: 'field' }, h('label', { for: id }, label),
    h('select', { id }, options.map(([v, text]) => h('option', { value: v, selected: v === value }, text))));
  const wanted = numeric.includes(ctx.params.get('column')) ? ctx.params.get('column') : '';
  const axes = columns.filter((c) => NUMERIC.test(types.get(c) || '') || DATES.test(types.get(c) || ''));
  const against = axes.includes(ctx.params.get('x')) ? ctx.params.get('x') : '';
  const ySelect = pick('table-column', 'Plot column', [['', '(none)'], ...numeric.map((c) => [c, c])], wanted);
  const xSelect = pick('table-x', 'against', [['', 'row number'], ...axes.map((c) => [c, c])], against);

  let drawn = 0;
  async function draw() {
    const mine = ++drawn;
    const y = ySelect.querySelector('select').value;
    const x = xSelect.querySelector('select').value;
    ctx.update({ column: y || null, x: x || null });
    if (!y) { plotted.replaceChildren(); say.textContent = ''; return; }
    const step = Math.max(1, Math.ceil(rowCount / PLOT_POINTS));
    plotted.replaceChildren(h('p', { class: 'loading' }, `Loading ${y}…`));
    try {
      const [ys, xs] = await Promise.all([columnValues(ctx, y, rowCount, step),
        x ? columnValues(ctx, x, rowCount, step, DATES.test(types.get(x))) : Array.from({ length: Math.ceil(rowCount / step) }, (_, i) => i * step)]);
      if (mine !== drawn) return;
      const label = (name) => (unitsOf(metadata, name) ? `${name} (${unitsOf(metadata, name)})` : name);
      plotted.replaceChildren(linePlot(ys, { xs, xLabel: x ? label(x) : 'row', yLabel: label(y), width: 720, height: 280, title: `${y} of ${ctx.path.split('/').pop()}` }));
      say.textContent = step > 1 ? `One row in ${fmtInt(step)}: ${fmtInt(ys.length)} of ${fmtInt(rowCount)} rows drawn.` : `All ${fmtInt(ys.length)} rows.`;
    } catch (error) {
      if (mine !== drawn) return;
      plotted.replaceChildren(h('p', { class: 'error', role: 'alert' }, `Could not load column ${y}: ${error.detail || error.message}`));
    }
  }
  ySelect.addEventListener('change', draw);
  xSelect.addEventListener('change', draw);

  append(el, // dom.js's append skips a null (the native one writes "null")
    h('p', { class: 'rows-note' }, rowCount > shown ? `The first ${fmtInt(shown)} of ${fmtInt(rowCount)} rows.` : `All ${fmtInt(rowCount)} rows.`),
    failed, columns.length ? rowsTable(columns, types, metadata, data, failed ? 0 : shown) : h('p', { class: 'empty' }, 'No columns.'),
    numeric.length ? h('div', { class: 'plot-controls' }, ySelect, xSelect) : h('p', { class: 'empty' }, 'No numeric column to plot.'),
    say, plotted,
  );
  if (wanted) await draw();
}
