// The Code tab: ready-to-copy snippets reading this node with the tiled client, zarr/xarray or
// pandas/polars (at the node's direct URL when the API names one, else the API's own Zarr or
// Parquet answer), DuckDB over the catalog's Parquet node index, and curl. Credentials appear only
// as placeholders: the page never writes a secret into text meant to be copied.
import { h } from './dom.js';
import { copy, fileName } from './download.js';

/** A Python string literal (JSON's escapes are Python's). */
const py = (s) => JSON.stringify(s);
/** A POSIX shell word in single quotes. */
const sh = (s) => `'${String(s).replaceAll("'", "'\\''")}'`;

/** Where the node's bytes live outside the API, if the metadata names a web address for them. */
async function directUrl(ctx) {
  try {
    const answer = await ctx.api.json('metadata', ctx.path, { include_data_sources: true, omit_links: true });
    const uri = answer.data.attributes.data_sources?.[0]?.assets?.[0]?.data_uri;
    if (!uri) return null;
    const url = new URL(uri, window.location.origin);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.toString() : null;
  } catch { return null; }
}

/** The catalog's node index (Parquet) as a URL, from catalog.json beside the releases. */
async function indexUrl(ctx) {
  const files = `${window.location.origin}/files/`;
  const key = ctx.api.release ? `releases/${encodeURIComponent(ctx.api.release)}/catalog.json` : 'catalog.json';
  try {
    const response = await fetch(files + key, { headers: ctx.api.headers() });
    if (!response.ok) return null;
    const catalog = await response.json();
    return typeof catalog.index === 'string' ? files + catalog.index : null;
  } catch { return null; }
}

function snippet(title, note, code) {
  const pre = h('pre', { tabindex: '0' }, h('code', {}, code));
  const said = h('span', { class: 'copied', role: 'status' });
  return h('section', { class: 'snippet' }, h('h2', {}, title), note ? h('p', {}, note) : null, pre,
    h('div', { class: 'row' }, h('button', { type: 'button', 'aria-label': `Copy the ${title} snippet`, onclick: () => copy(code, pre, said) }, 'Copy'), said));
}

/** The Python lines that give a name to the Authorization header, when one is needed. */
function pyAuth(cred) {
  if (!cred) return { lines: '', opts: '' };
  const value = cred.kind === 'apikey' ? 'Apikey <your API key>' : 'Bearer <your access token>';
  return { lines: `headers = {"Authorization": ${py(value)}}  # never paste a secret into a shared notebook\n`, opts: ', storage_options={"headers": headers}' };
}

export function snippets(ctx, { origin, direct, index }) {
  const { path } = ctx;
  const attrs = ctx.node.attributes;
  const family = attrs.structure_family;
  const specs = (attrs.specs || []).map((s) => s.name);
  const cred = ctx.api.credential;
  const auth = pyAuth(cred);
  const name = path.split('/').pop();
  const out = [];

  const key = cred?.kind === 'apikey' ? ', api_key="<your API key>"' : '';
  const asked = ctx.params.get('slice') || '';
  const slice = /^[-\d:, ]+$/.test(asked) ? asked : ''; // only what is also valid Python
  const read = family === 'container' ? 'list(node)  # its children; node["name"] opens one'
    : family === 'table' ? 'df = node.read()  # a pandas DataFrame'
      : `data = node${slice ? `[${slice}]` : '.read()'}  # a numpy array`;
  out.push(snippet('Tiled client', cred?.kind === 'bearer' ? 'Signed in with a provider: the client asks you to log in as well.' : null,
    `from tiled.client import from_uri\n\nclient = from_uri(${py(origin)}${key})\nnode = client[${py(path)}]\n${read}\n`));

  const zarrRoute = `${origin}/api/v1/zarr/v3/${path.split('/').map(encodeURIComponent).join('/')}`;
  const where = direct ? 'The data’s own address (no API in between).' : 'Through the API’s Zarr route (each key redirects to the stored object).';
  const zurl = direct || zarrRoute;
  if (family === 'array') {
    out.push(snippet('zarr', where, `import zarr\n\n${auth.lines}array = zarr.open_array(${py(zurl)}, mode="r"${auth.opts})\n` +
      `data = array${slice ? `[${slice}]` : '[...]'}\n`));
    if (specs.some((s) => s.startsWith('xarray_'))) {
      const parent = zarrRoute.slice(0, zarrRoute.lastIndexOf('/'));
      out.push(snippet('xarray', 'The dataset this variable belongs to, opened lazily.',
        `import xarray\n\n${auth.lines}ds = xarray.open_zarr(${py(parent)}${auth.opts})\nda = ds[${py(name)}]\n`));
    }
  } else if (family === 'container' && (specs.length || direct)) {
    if (specs.includes('xarray_dataset')) {
      out.push(snippet('xarray', where, `import xarray\n\n${auth.lines}ds = xarray.open_zarr(${py(zurl)}${auth.opts})\n`));
    }
    out.push(snippet('zarr', where, `import zarr\n\n${auth.lines}group = zarr.open_group(${py(zurl)}, mode="r"${auth.opts})\nprint(group.tree())\n`));
  } else if (family === 'container') {
    out.push(h('p', { class: 'note' }, 'A folder of the catalog, not a Zarr group: read it with the tiled client or download it as HDF5.'));
  } else if (family === 'table') {
    const turl = direct || `${origin}/api/v1/table/full/${path.split('/').map(encodeURIComponent).join('/')}?format=parquet`;
    const note = direct ? 'The published Parquet file itself.' : 'The API’s Parquet answer for the whole table.';
    out.push(snippet('pandas', note, `import pandas\n\n${auth.lines}df = pandas.read_parquet(${py(turl)}${auth.opts})\n`));
    out.push(snippet('polars', note, direct
      ? `import polars\n\ndf = polars.read_parquet(${py(turl)})\n`
      : `import io\n\nimport httpx\nimport polars\n\n${auth.lines}answer = httpx.get(${py(turl)}${cred ? ', headers=headers' : ''}, follow_redirects=True)\n` +
        'answer.raise_for_status()\ndf = polars.read_parquet(io.BytesIO(answer.content))\n'));
  }

  if (index) {
    const column = family === 'container' ? 'parent' : 'path';
    out.push(snippet('DuckDB on the node index', `The catalog’s metadata index: one row per node (path, parent, family, specs, metadata, structure, data_url)${family === 'container' ? '; here the children of this node' : ''}.`,
      `import duckdb\n\nrows = duckdb.execute(\n    "SELECT path, family, metadata FROM read_parquet(?) WHERE ${column} = ?",\n    [${py(index)}, ${py(path)}],\n).df()\n`));
  }

  const format = { array: 'npy', table: 'parquet', container: 'h5' }[family];
  if (format) {
    const route = { array: 'array/full', table: 'table/full', container: 'container/full' }[family];
    const query = { format };
    if (family === 'array' && slice) query.slice = slice;
    const url = ctx.api.url(route, path, query);
    const header = cred ? ` -H ${sh(`Authorization: ${cred.kind === 'apikey' ? 'Apikey <your API key>' : 'Bearer <your access token>'}`)}` : '';
    out.push(snippet('curl', 'Large answers redirect to a stored copy: -L follows.',
      `curl -L${header} -o ${sh(fileName(path, family === 'array' ? slice : '', format))} ${sh(url)}\n`));
  }
  return out;
}

export async function render(el, ctx) {
  const origin = window.location.origin;
  const [direct, index] = await Promise.all([directUrl(ctx), indexUrl(ctx)]);
  el.append(h('div', { class: 'snippets' }, snippets(ctx, { origin, direct, index })));
}
