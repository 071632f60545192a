// A container's children: one page of Tiled's /search answer at a time, as a table of links.
// Each child's attributes seed the API cache, so opening it renders without another round trip.
import { append, fmtInt, h, summary } from './dom.js';

export const PAGE = 100;
const FIELDS = ['structure_family', 'structure', 'metadata', 'specs'];

/** One row per child: name (a link), family, and shape / rows / items. */
export function childRows(items, ctx, parentOf = () => ctx.path) {
  return items.map((item) => {
    const parent = parentOf(item);
    const path = parent ? `${parent}/${item.id}` : item.id;
    const a = item.attributes;
    ctx.api.remember('metadata', path, { fields: FIELDS, omit_links: true }, { data: item });
    return h('tr', {},
      h('td', {}, h('a', { href: ctx.href(path) }, item.id)),
      h('td', {}, h('span', { class: `family family-${a.structure_family}` }, a.structure_family)),
      h('td', { class: 'num' }, summary(a.structure_family, a.structure)));
  });
}

export function pager(offset, count, ctx, extra = {}) {
  if (count <= PAGE) return null;
  const page = Math.floor(offset / PAGE);
  const last = Math.ceil(count / PAGE) - 1;
  const link = (p, label, rel) => (p < 0 || p > last ? h('span', { class: 'disabled', 'aria-disabled': 'true' }, label)
    : h('a', { href: ctx.href(ctx.path, { ...extra, page: p || null }), rel }, label));
  return h('nav', { class: 'pager', 'aria-label': 'Pages' },
    link(0, '« First'), link(page - 1, '‹ Previous', 'prev'),
    h('span', { class: 'range' }, `${fmtInt(offset + 1)}–${fmtInt(Math.min(offset + PAGE, count))} of ${fmtInt(count)}`),
    link(page + 1, 'Next ›', 'next'), link(last, 'Last »'));
}

const pageOf = (params) => Math.max(0, parseInt(params.get('page') || '0', 10) || 0);

/** The children page the address asks for (also fetched ahead by app.js, so one cache entry). */
export function firstPage(api, path, params) {
  return api.json('search', path, { 'page[offset]': pageOf(params) * PAGE, 'page[limit]': PAGE, fields: FIELDS, omit_links: true });
}

export async function render(el, ctx) {
  const offset = pageOf(ctx.params) * PAGE;
  const answer = await firstPage(ctx.api, ctx.path, ctx.params);
  const count = answer.meta?.count ?? answer.data.length;
  if (!answer.data.length) {
    if (!count) {
      el.append(h('p', { class: 'empty' }, 'This container is empty (or holds nothing you may read).'));
      return;
    }
    // a page past the last (an old link to a container that shrank): say so, and lead back to its pages
    const last = Math.ceil(count / PAGE) - 1;
    el.append(h('p', { class: 'empty' }, `No items on this page: the container holds ${fmtInt(count)}. `,
      h('a', { href: ctx.href(ctx.path, { page: last || null }) }, 'Go to its last page'), '.'));
    return;
  }
  append(el,
    h('table', { class: 'children' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Kind'), h('th', { scope: 'col' }, 'Size'))),
      h('tbody', {}, childRows(answer.data, ctx))),
    pager(offset, count, ctx));
}
