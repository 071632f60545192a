// Preview of an array: an image of the last two dimensions (coloured by the server's PNG
// serializer) with a slider per leading dimension, colormap, linear/log, min/max and zoom; a line
// plot for 1-D numbers; the values as text for scalars and strings. Every change is written to
// the address bar (ctx.update) so the view is a deep link, and read back from it on render.
import { errorBox } from './app.js';
import { h } from './dom.js';
import { dimName, parseRange, plotView, textView } from './array-values.js';

/** Each colormap as 16 evenly spaced stops (RRGGBB each, from colormaps.npz; a test checks them),
 *  for the colour bar under the image. */
export const GRADIENTS = {
  gray: '000000111111222222333333444444555555666666777777888888999999aaaaaabbbbbbccccccddddddeeeeeeffffff',
  viridis: '440154481a6c472f7d41448739568c31688e2a788e23888e1f988b22a88435b77954c5687ad151a5db36d2e21bfde725',
  magma: '0000040b092420114b3b0f7057157e721f818c2981a8327dc43c75de4968f1605dfa7f5efe9f6dfebf84fddea0fcfdbf',
  inferno: '0000040c0826240c4f420a685d126e781c6d932667ae305cc73e4cdd513aed6925f8850ffca50afac62df2e661fcffa4',
  plasma: '0d08873305975002a26a00a88405a79c179eb12a90c33d80d35171e16462ed7953f68f44fca636fec029f9dc24f0f921',
  cividis: '00224e002e6c1e3a6f35456c47516c575d6d666970757575848279948e77a59c74b7a96ec8b866dbc75aeed649fee838',
  hot: '0b0000370000640000900000bd0000ea0000ff1700ff4400ff7100ff9d00ffca00fff600ffff36ffff79ffffbcffffff',
  jet: '0000800000cd0008ff004cff0090ff00d4ff29ffce60ff9797ff60ceff29ffe600ffa700ff6800ff2900cd0000800000',
  coolwarm: '3b4cc04f69d96485ec7b9ff993b5feaac7fdc0d4f5d4dbe6e5d8d1f2cbb7f7b89cf5a081ee8468e0654fcc403ab40426',
  turbo: '30123b4143a74771e93e9bfe22c5e21ae4b646f88488ff4eb9f635e1dd37faba39fd8d27f05b12d63506af18017a0403',
};
export const COLORMAPS = Object.keys(GRADIENTS);
/** About this many image pixels per side at most: a larger region is asked for with a step. */
const DISPLAY = 1024;
/** The image is shown at most this many times wider than high (or higher than wide). */
const MAX_RATIO = 4;
const NUMERIC = new Set(['u', 'i', 'f', 'b']);

export async function render(el, ctx) {
  const { shape = [], data_type: dt } = ctx.node.attributes.structure;
  if (shape.includes(0)) { el.append(h('p', { class: 'empty' }, `This array is empty (${shape.join(' × ')}).`)); return undefined; }
  if (ctx.node.attributes.structure_family === 'sparse') { // its PNG is drawn dense from the nonzeros (sparse/full)
    if (shape.length >= 2 && NUMERIC.has(dt?.kind)) return imageView(el, ctx, 'sparse/full');
    el.append(h('p', { class: 'empty' }, 'A preview shows sparse arrays of two or more dimensions: take this one from Download.'));
    return undefined;
  }
  if (shape.length >= 2 && NUMERIC.has(dt?.kind)) return imageView(el, ctx, 'array/full');
  if (shape.length === 1 && NUMERIC.has(dt?.kind)) return plotView(el, ctx);
  return textView(el, ctx);
}

// ---- ≥2-D: an image of the last two dimensions -------------------------------------------------

/** The state a deep link names: indices of the leading dims, the region of the last two. */
function readState(params, shape) {
  const parts = (params.get('slice') || '').split(',').filter((p, i, all) => all.length > 1 || p !== '');
  const lead = shape.length - 2;
  const index = shape.slice(0, lead).map((n, i) => {
    const k = parseInt(parts[i], 10);
    return Number.isFinite(k) ? Math.min(n - 1, Math.max(0, k < 0 ? k + n : k)) : 0;
  });
  const [h0, w0] = shape.slice(lead);
  const [y0, y1] = parseRange(parts[lead], h0);
  const [x0, x1] = parseRange(parts[lead + 1], w0);
  const num = (k) => (params.get(k) != null && params.get(k) !== '' && Number.isFinite(Number(params.get(k))) ? params.get(k) : '');
  return {
    index, y0, y1, x0, x1,
    cmap: COLORMAPS.includes(params.get('cmap')) ? params.get('cmap') : 'gray',
    scale: params.get('scale') === 'log' ? 'log' : 'linear',
    min: num('min'), max: num('max'),
  };
}

/** The slice of a state: leading indices, then each region `a:b` (`:` when whole) with a step
 *  when that side is longer than the display. Each side has its own step: one step for both
 *  would drop whole rows of a 5 × 20000 array (::20 keeps one of its 5 rows). */
export function sliceText(state, shape) {
  const lead = shape.length - 2;
  const [hN, wN] = shape.slice(lead);
  const range = (a, b, n) => {
    const step = Math.max(1, Math.ceil((b - a) / DISPLAY));
    const whole = a === 0 && b === n;
    return `${whole ? '' : `${a}:${b}`}${step > 1 ? `${whole ? ':' : ''}:${step}` : ''}` || ':';
  };
  return [...state.index, range(state.y0, state.y1, hN), range(state.x0, state.x1, wN)].join(',');
}

/** The shape the image is shown with: the region's (its pixels need not be square once each
 *  side has its own step), at most 1:MAX_RATIO so a 3000 × 40 region is not a sliver. */
export function shownRatio(state) {
  return Math.min(MAX_RATIO, Math.max(1 / MAX_RATIO, (state.x1 - state.x0) / (state.y1 - state.y0)));
}

function imageView(el, ctx, route) {
  const { shape } = ctx.node.attributes.structure;
  const lead = shape.length - 2;
  const [H, W] = shape.slice(lead);
  const state = readState(ctx.params, shape);
  const name = ctx.path.split('/').pop();

  // -- controls
  const sliders = state.index.map((value, i) => {
    const out = h('output', { class: 'dim-index' }, String(value));
    const input = h('input', {
      type: 'range', min: '0', max: String(shape[i] - 1), step: '1', value: String(value),
      'aria-valuetext': `${dimName(ctx, i)} ${value} of ${shape[i] - 1}`,
      oninput: () => {
        state.index[i] = Number(input.value);
        out.textContent = input.value;
        input.setAttribute('aria-valuetext', `${dimName(ctx, i)} ${input.value} of ${shape[i] - 1}`);
        changed(input.dataset.dragging ? 80 : 0); // a drag passes many indices: ask when it rests
      },
      onpointerdown: () => { input.dataset.dragging = '1'; },
      onpointerup: () => { delete input.dataset.dragging; },
      onpointercancel: () => { delete input.dataset.dragging; },
    });
    return h('label', { class: 'dim' }, h('span', { class: 'dim-name' }, `${dimName(ctx, i)}`), input,
      out, h('span', { class: 'dim-of' }, ` / ${shape[i] - 1}`));
  });
  const cmap = h('select', { onchange: () => { state.cmap = cmap.value; changed(); } },
    COLORMAPS.map((c) => h('option', { value: c, selected: c === state.cmap }, c)));
  const scale = h('select', { onchange: () => { state.scale = scale.value; changed(); } },
    ['linear', 'log'].map((s) => h('option', { value: s, selected: s === state.scale }, s)));
  const range = (key) => h('input', {
    type: 'number', step: 'any', class: 'range-input', value: state[key],
    onchange: () => { // a bound typed: both are sent (the other as shown, the automatic one or typed)
      state.min = lo.value.trim();
      state.max = hi.value.trim();
      if (state.min === '' || state.max === '') { state.min = ''; state.max = ''; }
      changed();
    },
  });
  const lo = range('min');
  const hi = range('max');
  const auto = h('button', { type: 'button', class: 'secondary', onclick: () => { state.min = ''; state.max = ''; changed(); } }, 'Automatic range');
  const rangeNote = h('span', { class: 'note range-note', 'aria-live': 'polite' });
  const zoomBy = (f) => () => zoom(f);
  const pan = (dy, dx) => () => setRegion(state.y0 + (dy * (state.y1 - state.y0)) / 2, state.x0 + (dx * (state.x1 - state.x0)) / 2,
    state.y1 - state.y0, state.x1 - state.x0);
  const panButtons = h('div', { class: 'zoom pan', role: 'group', 'aria-label': 'Pan' },
    [['←', 'Pan left', 0, -1], ['↑', 'Pan up', -1, 0], ['↓', 'Pan down', 1, 0], ['→', 'Pan right', 0, 1]].map(([text, label, dy, dx]) =>
      h('button', { type: 'button', class: 'secondary', 'aria-label': label, title: label, onclick: pan(dy, dx) }, text)));
  const buttons = h('div', { class: 'zoom', role: 'group', 'aria-label': 'Zoom' },
    h('button', { type: 'button', class: 'secondary', onclick: zoomBy(0.5) }, 'Zoom in ×2'),
    h('button', { type: 'button', class: 'secondary', onclick: zoomBy(2) }, 'Zoom out'),
    h('button', { type: 'button', class: 'secondary', onclick: () => { Object.assign(state, { y0: 0, y1: H, x0: 0, x1: W }); changed(); } }, 'Reset zoom'));
  const sliceOut = h('code', { class: 'slice-text' });
  const status = h('p', { class: 'status', role: 'status', 'aria-live': 'polite' });
  const problem = h('div', { class: 'array-error' });

  // -- the image, and a rectangle dragged over it to zoom
  const img = h('img', { class: 'array-image', alt: '', draggable: 'false', tabindex: '0' });
  const box = h('div', { class: 'zoom-box', hidden: true });
  const frame = h('div', { class: 'array-frame' }, img, box);
  const bar = h('div', { class: 'colorbar' });
  const barLo = h('span', { class: 'bar-lo' });
  const barHi = h('span', { class: 'bar-hi' });
  const barScale = h('span', { class: 'note' });
  const colorbar = h('div', { class: 'colorbar-box', hidden: true }, bar, h('div', { class: 'colorbar-labels' }, barLo, barScale, barHi));
  el.append(
    h('div', { class: 'array-controls' },
      sliders.length ? h('fieldset', { class: 'dims' }, h('legend', {}, 'Position'), sliders) : null,
      h('fieldset', { class: 'look' }, h('legend', {}, 'Colour'),
        h('label', {}, 'Colormap ', cmap), h('label', {}, 'Scale ', scale),
        h('label', {}, 'Min ', lo), h('label', {}, 'Max ', hi), auto, rangeNote),
      h('fieldset', { class: 'view' }, h('legend', {}, 'Region'), buttons, panButtons,
        h('p', { class: 'slice-line' }, 'Slice ', sliceOut, ' ', h('span', { class: 'note' }, `of ${shape.join(' × ')} (drag on the image to zoom; on the focused image, arrows pan and + / − zoom)`)))),
    problem, status, frame, colorbar,
  );

  /** The colour bar of what is on screen: its colormap, and the range that mapped onto it. */
  function paintBar(lo, hi) {
    const hex = GRADIENTS[state.cmap];
    const stops = hex.match(/.{6}/g).map((c) => `#${c}`);
    bar.style.background = `linear-gradient(to right, ${stops.join(', ')})`;
    barLo.textContent = lo;
    barHi.textContent = hi;
    barScale.textContent = `${state.cmap}, ${state.scale}`;
    colorbar.hidden = false;
  }

  function zoom(factor) {
    const cy = (state.y0 + state.y1) / 2;
    const cx = (state.x0 + state.x1) / 2;
    const hh = Math.max(2, Math.min(H, Math.round((state.y1 - state.y0) * factor)));
    const ww = Math.max(2, Math.min(W, Math.round((state.x1 - state.x0) * factor)));
    setRegion(cy - hh / 2, cx - ww / 2, hh, ww);
  }

  function setRegion(top, left, rows, cols) {
    const hh = Math.min(H, Math.max(1, Math.round(rows)));
    const ww = Math.min(W, Math.max(1, Math.round(cols)));
    const clampStart = (s, len, n) => Math.min(n - len, Math.max(0, Math.round(s)));
    state.y0 = clampStart(top, hh, H);
    state.y1 = state.y0 + hh;
    state.x0 = clampStart(left, ww, W);
    state.x1 = state.x0 + ww;
    changed();
  }

  let drag = null;
  const at = (event) => {
    const r = img.getBoundingClientRect();
    return [Math.min(r.width, Math.max(0, event.clientX - r.left)), Math.min(r.height, Math.max(0, event.clientY - r.top)), r];
  };
  img.addEventListener('pointerdown', (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    img.setPointerCapture(event.pointerId);
    const [x, y] = at(event);
    drag = { x, y };
  });
  img.addEventListener('pointermove', (event) => {
    if (!drag) return;
    const [x, y] = at(event);
    box.hidden = false;
    box.style.left = `${img.offsetLeft + Math.min(x, drag.x)}px`;
    box.style.top = `${img.offsetTop + Math.min(y, drag.y)}px`;
    box.style.width = `${Math.abs(x - drag.x)}px`;
    box.style.height = `${Math.abs(y - drag.y)}px`;
  });
  const endDrag = (event) => {
    if (!drag) return;
    const [x, y, r] = at(event);
    const start = drag;
    drag = null;
    box.hidden = true;
    if (Math.abs(x - start.x) < 4 || Math.abs(y - start.y) < 4 || !r.width || !r.height) return; // a click, not a rectangle
    const sy = (state.y1 - state.y0) / r.height;
    const sx = (state.x1 - state.x0) / r.width;
    const top = state.y0 + Math.min(y, start.y) * sy;
    const left = state.x0 + Math.min(x, start.x) * sx;
    setRegion(top, left, Math.max(2, Math.round(Math.abs(y - start.y) * sy)), Math.max(2, Math.round(Math.abs(x - start.x) * sx)));
  };
  img.addEventListener('pointerup', endDrag);
  const KEYS = { ArrowLeft: pan(0, -1), ArrowRight: pan(0, 1), ArrowUp: pan(-1, 0), ArrowDown: pan(1, 0), '+': () => zoom(0.5), '=': () => zoom(0.5), '-': () => zoom(2) };
  img.addEventListener('keydown', (event) => {
    const act = !event.altKey && !event.ctrlKey && !event.metaKey && KEYS[event.key];
    if (!act) return;
    event.preventDefault();
    act();
  });
  img.addEventListener('pointercancel', () => { drag = null; box.hidden = true; });

  // -- loading: the newest request wins; a slider being dragged waits a little before asking
  let generation = 0;
  let timer = null;
  let controller = null;
  let shown = null; // the object URL on screen

  function changed(wait = 0) {
    clearTimeout(timer);
    const slice = sliceText(state, shape);
    sliceOut.textContent = slice;
    ctx.update({
      slice, cmap: state.cmap === 'gray' ? null : state.cmap, scale: state.scale === 'log' ? 'log' : null,
      min: state.min || null, max: state.max || null,
    });
    if (wait) timer = setTimeout(load, wait);
    else load();
  }

  async function load() {
    const mine = ++generation;
    controller?.abort();
    controller = new AbortController();
    const slice = sliceText(state, shape);
    sliceOut.textContent = slice;
    const query = { format: 'image/png', slice, colormap: state.cmap, scale: state.scale === 'log' ? 'log' : null };
    if (state.min !== '' && state.max !== '') query.rescale = `${state.min},${state.max}`;
    frame.classList.add('busy');
    el.setAttribute('aria-busy', 'true');
    status.textContent = `Loading slice ${slice}…`;
    try {
      const response = await ctx.api.fetch(ctx.api.url(route, ctx.path, query), { signal: controller.signal });
      // arrayBuffer, not blob(): the same bytes, and devtools (the tests) can still read the answer
      const blob = new Blob([await response.arrayBuffer()], { type: 'image/png' });
      if (mine !== generation) return;
      const used = (response.headers.get('X-Skyshelf-Rescale') || '').split(',');
      const url = URL.createObjectURL(blob);
      const probe = new Image();
      probe.src = url;
      await probe.decode().catch(() => {});
      if (mine !== generation || !el.isConnected) { URL.revokeObjectURL(url); return; }
      img.src = url;
      if (shown) URL.revokeObjectURL(shown);
      shown = url;
      img.style.setProperty('--ratio', String(shownRatio(state)));
      img.alt = `${name}, slice ${slice}, ${state.cmap} colormap, ${state.scale} scale`;
      img.dataset.slice = slice;
      if (used.length === 2) {
        const fmt = (v) => String(Number(Number(v).toPrecision(6)));
        if (state.min === '') lo.value = fmt(used[0]);
        if (state.max === '') hi.value = fmt(used[1]);
        rangeNote.textContent = state.min === '' ? `automatic (${fmt(used[0])} to ${fmt(used[1])})` : 'as typed';
        paintBar(fmt(used[0]), fmt(used[1]));
      }
      problem.replaceChildren();
      status.textContent = `Slice ${slice}: ${probe.naturalWidth} × ${probe.naturalHeight} pixels`;
    } catch (error) {
      if (mine !== generation) return;
      problem.replaceChildren(errorBox(error, `the image of slice ${slice}`));
      status.textContent = '';
    } finally {
      if (mine === generation) {
        frame.classList.remove('busy');
        el.removeAttribute('aria-busy');
      }
    }
  }

  // the view replaced (another tab or node): let the image's bytes go
  const leave = () => setTimeout(() => {
    if (el.isConnected) return;
    window.removeEventListener('hashchange', leave);
    controller?.abort();
    if (shown) URL.revokeObjectURL(shown);
    shown = null;
  });
  window.addEventListener('hashchange', leave);
  sliceOut.textContent = sliceText(state, shape);
  return load();
}
