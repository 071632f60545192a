// The array previews that are not images: a 1-D line plot (zoomed and panned as new slices) and
// the values as text (scalars, strings, dates, complex numbers). Split from array.js, which
// picks the view and draws images; the deep-link params are the same (slice).
import { errorBox } from './app.js';
import { h, append, fmtInt } from './dom.js';
import { linePlot } from './plot.js';

/** At most this many points in a line plot (longer ranges are strided). */
const POINTS = 2000;
/** At most this many values shown as text. */
const TEXT_VALUES = 1000;

/** "a:b:c" (any part empty) of a dimension of length n → [start, stop] (the step is recomputed). */
export function parseRange(text, n) {
  const [a, b] = (text ?? ':').split(':');
  const at = (v, dflt) => {
    if (v == null || v.trim() === '') return dflt;
    const k = parseInt(v, 10);
    if (!Number.isFinite(k)) return dflt;
    return Math.min(n, Math.max(0, k < 0 ? k + n : k));
  };
  const start = at(a, 0);
  const stop = at(b, n);
  return stop - start >= 1 ? [start, stop] : [0, n];
}

// ---- 0-D, strings, dates: the values as JSON text ---------------------------------------------

export async function textView(el, ctx) {
  const shape = ctx.node.attributes.structure.shape || [];
  const product = (dims) => dims.reduce((a, b) => a * b, 1);
  // At most TEXT_VALUES values: fewer along the first dimension, then (when one index of it is
  // still too many, as a 2 × 100000 array) along the next ones too.
  const counts = [...shape];
  for (let i = 0; i < counts.length && product(counts) > TEXT_VALUES; i += 1) {
    counts[i] = Math.max(1, Math.floor(TEXT_VALUES / product(counts.slice(i + 1))));
  }
  let slice = null;
  let note = null;
  if (counts.some((c, i) => c < shape[i])) {
    slice = counts.map((c, i) => (c < shape[i] ? `0:${c}` : ':')).join(',');
    note = counts.slice(1).every((c, i) => c === shape[i + 1])
      ? `The first ${fmtInt(counts[0])} of ${fmtInt(shape[0])} along ${dimName(ctx, 0)} (download for all).`
      : `The first ${counts.map(fmtInt).join(' × ')} of ${shape.map(fmtInt).join(' × ')} (slice ${slice}; download for all).`;
  }
  const values = await ctx.api.json('array/full', ctx.path, { format: 'application/json', slice });
  // complex values come as [re, im] pairs (the JSON answer's form): shown as numbers, 1+2j, where a
  // pair read as one more dimension (a 1-element complex array looked like a 1 × 2 real one)
  const complex = ctx.node.attributes.structure.data_type?.kind === 'c';
  const text = typeof values === 'string' ? values : rowsText(complex ? complexes(values, shape.length) : values, 0, complex);
  append(el, h('pre', { class: 'array-text', tabindex: '0', 'aria-label': 'Values' }, text), note && h('p', { class: 'note' }, note));
}

/** JSON with one innermost row per line ([[1,2],[3,4]] → "[[1,2],\n [3,4]]"): a table to read,
 *  where an indented dump puts every value on a line of its own. */
function rowsText(values, depth = 0, bare = false) {
  const leaf = (v) => (bare && typeof v === 'string' ? v : JSON.stringify(v));
  if (!Array.isArray(values)) return leaf(values);
  if (!values.some(Array.isArray)) return `[${values.map(leaf).join(',')}]`;
  return `[${values.map((v) => rowsText(v, depth + 1, bare)).join(`,\n${' '.repeat(depth + 1)}`)}]`;
}

/** [re, im] pairs `ndim` deep → "re+imj" texts (non-finite parts as the answer spells them). */
export function complexes(values, ndim) {
  if (ndim > 0) return values.map((v) => complexes(v, ndim - 1));
  const [re, im] = values;
  const negative = typeof im === 'number' && (im < 0 || Object.is(im, -0));
  return `${re}${negative ? '-' : '+'}${typeof im === 'number' ? Math.abs(im) : im}j`;
}

export const dimName = (ctx, i) => (ctx.node.attributes.structure.dims || [])[i] || `dim_${i}`;

// ---- 1-D: a line plot --------------------------------------------------------------------------

/** The plot drawn as wide as its figure is shown (array.css: at most 48rem): its labels then keep
 *  their size, where a 640-wide drawing shrunk onto a 390 px phone has 6 px text. */
const plotWidth = (figure) => Math.round(Math.max(280, figure.clientWidth || 640));

export async function plotView(el, ctx) {
  const n = ctx.node.attributes.structure.shape[0];
  const name = ctx.path.split('/').pop();
  // the range shown (deep-linked as slice=a:b; its step is recomputed to stay ≤ POINTS points)
  let [a, b] = parseRange((ctx.params.get('slice') || '').split(',')[0], n);
  const figure = h('figure', { class: 'array-plot' });
  const problem = h('div', { class: 'array-error' });
  const sliceOut = h('code', { class: 'slice-text' });
  const setRange = (start, length) => {
    const len = Math.min(n, Math.max(Math.min(2, n), Math.round(length)));
    a = Math.min(n - len, Math.max(0, Math.round(start)));
    b = a + len;
    ctx.update({ slice: a === 0 && b === n ? null : `${a}:${b}` });
    draw().catch((error) => problem.replaceChildren(errorBox(error, `the values ${a} to ${b - 1}`)));
  };
  const zoom = (f) => () => setRange((a + b) / 2 - ((b - a) * f) / 2, (b - a) * f);
  const pan = (d) => () => setRange(a + (d * (b - a)) / 2, b - a);
  const button = (text, onclick, label) => h('button', { type: 'button', class: 'secondary', onclick, 'aria-label': label, title: label }, text);
  if (n > 2) {
    el.append(h('div', { class: 'array-controls' }, h('fieldset', { class: 'view' }, h('legend', {}, 'Range'),
      h('div', { class: 'zoom', role: 'group', 'aria-label': 'Zoom' },
        button('Zoom in ×2', zoom(0.5)), button('Zoom out', zoom(2)), button('Reset zoom', () => setRange(0, n))),
      h('div', { class: 'zoom pan', role: 'group', 'aria-label': 'Pan' }, button('←', pan(-1), 'Pan left'), button('→', pan(1), 'Pan right')),
      h('p', { class: 'slice-line' }, 'Slice ', sliceOut, ' ', h('span', { class: 'note' }, `of ${fmtInt(n)}`)))));
  }
  el.append(problem, figure);

  let generation = 0;
  async function draw() {
    const mine = ++generation;
    const step = Math.max(1, Math.ceil((b - a) / POINTS));
    const whole = a === 0 && b === n;
    const slice = whole ? (step > 1 ? `::${step}` : null) : `${a}:${b}${step > 1 ? `:${step}` : ''}`;
    sliceOut.textContent = slice || ':';
    el.setAttribute('aria-busy', 'true');
    figure.classList.add('busy');
    try {
      const ys = await ctx.api.json('array/full', ctx.path, { format: 'application/json', slice });
      if (mine !== generation) return;
      const xs = ys.map((_, i) => a + i * step);
      const every = step > 1 ? ` one value in ${step} (${fmtInt(ys.length)} points, slice ${slice}); download for all.` : '';
      figure.replaceChildren(
        linePlot(ys, { xs, xLabel: `${dimName(ctx, 0)} (index)`, yLabel: name, title: name, width: plotWidth(figure) }),
        h('figcaption', { class: 'note' }, whole
          ? (step > 1 ? `One value in ${step} of ${fmtInt(n)} (${fmtInt(ys.length)} points, slice ::${step}); download for all.` : `All ${fmtInt(n)} values.`)
          : `Values ${fmtInt(a)} to ${fmtInt(b - 1)} of ${fmtInt(n)}${step > 1 ? `,${every}` : '.'}`));
      figure.dataset.slice = slice || ':';
      problem.replaceChildren();
    } finally {
      if (mine === generation) { el.removeAttribute('aria-busy'); figure.classList.remove('busy'); }
    }
  }
  return draw();
}
