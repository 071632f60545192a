// A line plot drawn by hand as SVG (a charting library would weigh 20–100 KB for one polyline).
// Used by array.js (1-D arrays) and table.js (a table column). Colours are SVG presentation
// attributes, not styles, so the plot looks the same whichever view's sheet is loaded.

const SVG = 'http://www.w3.org/2000/svg';

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v != null) el.setAttribute(k, String(v));
  for (const c of children) if (c != null) el.append(c instanceof Node ? c : String(c));
  return el;
}

/** About `count` round tick values covering [lo, hi] (1, 2 or 5 × a power of ten apart). */
export function ticks(lo, hi, count = 5) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (lo === hi) return [lo];
  const raw = (hi - lo) / Math.max(count, 1);
  const power = 10 ** Math.floor(Math.log10(raw));
  const span = hi - lo;
  const step = [1, 2, 5, 10].map((m) => m * power)
    .reduce((best, x) => (Math.abs(span / x - count) < Math.abs(span / best - count) ? x : best));
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

const SECOND = 1e3;
const DAY = 86400e3;
const DATE_STEPS = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600].map((k) => k * SECOND)
  .concat([1, 2, 7, 14, 30, 91, 365, 730, 1826, 3652].map((k) => k * DAY));

/** Ticks of a date axis (epoch ms) at whole seconds, minutes, hours or days (UTC). */
export function dateTicks(lo, hi, count = 5) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (lo === hi) return [lo];
  const span = hi - lo;
  const step = DATE_STEPS.reduce((best, x) => (Math.abs(span / x - count) < Math.abs(span / best - count) ? x : best));
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) out.push(v);
  return out;
}

/** 1234567 → "1.23e+6", 0.5 → "0.5": short tick labels. */
export function fmtNum(v) {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(2).replace(/\.?0+e/, 'e');
  return String(Number(v.toPrecision(4)));
}

function extent(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (lo === Infinity) return [0, 1];
  if (lo === hi) return [lo - (lo ? Math.abs(lo) / 2 : 1), hi + (hi ? Math.abs(hi) / 2 : 1)];
  return [lo, hi];
}

/** The x positions: numbers as they are, dates (ISO strings, Date) as epoch ms, anything else
 *  (or no xs) as the index. `dates` says the axis is labelled with dates. */
function xValues(xs, n) {
  const index = { values: Array.from({ length: n }, (_, i) => i), dates: false };
  if (!xs || xs.length !== n) return index;
  const all = Array.from(xs);
  if (all.every((x) => x == null || typeof x === 'number' || typeof x === 'bigint' || (typeof x === 'string' && x.trim() !== '' && Number.isFinite(Number(x))))) {
    return { values: all.map((x) => (x == null ? NaN : Number(x))), dates: false };
  }
  // a date-time without an offset (numpy's datetime64, as the API writes it) is UTC, not local time
  const parse = (x) => Date.parse(/^\d{4}-\d\d-\d\dT[\d:.]+$/.test(x) ? `${x}Z` : x);
  const ms = all.map((x) => (x == null ? NaN : x instanceof Date ? x.getTime() : parse(String(x))));
  return ms.some(Number.isFinite) ? { values: ms, dates: true } : index;
}

/** A date formatter with the precision the span needs (days, minutes or seconds), in UTC. */
function fmtDate(lo, hi) {
  const span = hi - lo;
  const cut = span >= 5 * 86400e3 ? 10 : span >= 300e3 ? 16 : 19;
  return (t) => new Date(t).toISOString().slice(0, cut).replace('T', ' ');
}

/**
 * A line plot of `ys` (numbers; null/NaN leave a gap) against `xs` (numbers, default 0..n-1).
 * Returns an `<svg role="img">` with axes, a few ticks and an aria-label saying what it shows;
 * `data-points` holds how many points were drawn. It scales to its container's width (viewBox).
 */
export function linePlot(ys, { xs, xLabel = '', yLabel = '', width = 640, height = 260, title = '' } = {}) {
  const n = ys.length;
  const { values: xv, dates } = xValues(xs, n);
  const yv = Array.from(ys, (v) => (v == null ? NaN : Number(v)));
  const m = { top: title ? 24 : 10, right: 14, bottom: xLabel ? 42 : 26, left: yLabel ? 70 : 56 };
  const w = width - m.left - m.right;
  const ht = height - m.top - m.bottom;
  const [x0, x1] = extent(xv);
  const fmtX = dates ? fmtDate(x0, x1) : fmtNum;
  const [y0, y1] = extent(yv);
  const X = (x) => m.left + ((x - x0) / (x1 - x0)) * w;
  const Y = (y) => m.top + ht - ((y - y0) / (y1 - y0)) * ht;
  const r = (v) => Math.round(v * 10) / 10;

  const finite = yv.filter(Number.isFinite).length;
  const label = `${title || 'Line plot'}: ${finite} point${finite === 1 ? '' : 's'}`
    + `${yLabel ? `, ${yLabel}` : ''} from ${fmtNum(y0)} to ${fmtNum(y1)}`
    + `${xLabel ? ` against ${xLabel}` : ''} from ${fmtX(x0)} to ${fmtX(x1)}`;
  const svg = s('svg', {
    xmlns: SVG, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label, class: 'plot',
    width, height, 'font-size': 11, 'font-family': 'system-ui, sans-serif', 'data-points': finite,
  });
  svg.append(s('title', {}, label));
  if (title) svg.append(s('text', { x: m.left, y: 15, 'font-weight': 'bold', fill: 'currentColor' }, title));

  const axes = s('g', { stroke: 'currentColor', 'stroke-opacity': 0.5, fill: 'none' });
  axes.append(s('path', { d: `M${m.left},${m.top}V${m.top + ht}H${m.left + w}` }));
  const labels = s('g', { fill: 'currentColor' });
  for (const t of (dates ? dateTicks : ticks)(x0, x1, Math.max(2, Math.floor(w / (dates ? 130 : 90))))) {
    const x = r(X(t));
    axes.append(s('path', { d: `M${x},${m.top + ht}v5` }));
    labels.append(s('text', { x, y: m.top + ht + 17, 'text-anchor': 'middle' }, fmtX(t)));
  }
  for (const t of ticks(y0, y1, Math.max(2, Math.floor(ht / 50)))) {
    const y = r(Y(t));
    axes.append(s('path', { d: `M${m.left - 5},${y}h5` }));
    axes.append(s('path', { d: `M${m.left},${y}h${w}`, 'stroke-opacity': 0.12 }));
    labels.append(s('text', { x: m.left - 8, y: y + 4, 'text-anchor': 'end' }, fmtNum(t)));
  }
  if (xLabel) labels.append(s('text', { x: m.left + w / 2, y: height - 6, 'text-anchor': 'middle' }, xLabel));
  if (yLabel) {
    labels.append(s('text', { transform: `translate(14,${m.top + ht / 2}) rotate(-90)`, 'text-anchor': 'middle' }, yLabel));
  }
  svg.append(axes, labels);

  // One polyline per run of finite values (a NaN is a gap, not a drop to zero).
  const lines = s('g', { class: 'series', fill: 'none', stroke: '#1f77b4', 'stroke-width': 1.5, 'stroke-linejoin': 'round' });
  let run = [];
  const flush = () => {
    if (run.length === 1) lines.append(s('circle', { cx: run[0][0], cy: run[0][1], r: 2, fill: '#1f77b4' }));
    else if (run.length) lines.append(s('polyline', { points: run.map((p) => p.join(',')).join(' ') }));
    run = [];
  };
  for (let i = 0; i < n; i += 1) {
    if (Number.isFinite(yv[i]) && Number.isFinite(xv[i])) run.push([r(X(xv[i])), r(Y(yv[i]))]);
    else flush();
  }
  flush();
  svg.append(lines);
  if (finite <= 60) { // few points: mark each, so a reader sees where the samples are
    const marks = s('g', { class: 'markers', fill: '#1f77b4' });
    for (let i = 0; i < n; i += 1) {
      if (Number.isFinite(yv[i]) && Number.isFinite(xv[i])) marks.append(s('circle', { cx: r(X(xv[i])), cy: r(Y(yv[i])), r: 2.5 }));
    }
    svg.append(marks);
  }
  return svg;
}
