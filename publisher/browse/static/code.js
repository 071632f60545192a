// The Code tab: ready-to-copy snippets reading this node with the tiled client, zarr/xarray or
// pandas/polars (at the node's own address from its data source when anyone may read it there,
// else through the API's Zarr route or Parquet answer), DuckDB over the catalog's Parquet node
// index, and curl. Credentials appear only as placeholders: the page never writes a secret into
// text meant to be copied.
import { encodePath } from './api.js';
import { h } from './dom.js';
import { copy, fileName, sliceShape } from './download.js';

/** A Python string literal (JSON's escapes are Python's). */
const py = (s) => JSON.stringify(s);
/** A POSIX shell word in single quotes. */
const sh = (s) => `'${String(s).replaceAll("'", "'\\''")}'`;

/** The node's published object, from Tiled's data_sources: {url, zarr, folder}; url is null when
 *  it cannot be read at that address by anyone (private, or not a web address); null when the
 *  server does not say (then specs decide). */
async function dataSource(ctx) {
  let answer;
  try {
    const query = { include_data_sources: true, fields: 'data_sources', omit_links: true };
    answer = await ctx.api.json('metadata', ctx.path, query);
  } catch { return null; }
  const sources = answer.data.attributes.data_sources;
  if (!Array.isArray(sources)) return null;
  const source = sources[0];
  if (!source) return { url: null, zarr: false, folder: true }; // a folder of the catalog
  const asset = source.assets?.[0] || {};
  let url = null;
  try { url = new URL(asset.data_uri, window.location.origin); } catch { /* no address */ }
  const open = url && (url.protocol === 'https:' || url.protocol === 'http:') && !source.properties?.access;
  const zarr = source.mimetype === 'application/x-zarr';
  return { url: open ? url.toString() : null, zarr, folder: Boolean(asset.is_directory), private: Boolean(source.properties?.access) };
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
  const button = h('button', {
    type: 'button', 'aria-label': `Copy the ${title} snippet`, onclick: () => copy(code, pre, said),
  }, 'Copy');
  return h('section', { class: 'snippet' }, h('h2', {}, title), note ? h('p', {}, note) : null, pre,
    h('div', { class: 'row' }, button, said));
}

const placeholder = (cred) => (cred.kind === 'apikey' ? 'Apikey <your API key>' : 'Bearer <your access token>');

/** Python lines naming the Authorization header, and the argument that sends it, for the API's
 *  routes (never for a direct address: S3 refuses a request that carries one). */
function pyAuth(cred, viaApi) {
  if (!cred || !viaApi) return { lines: '', opts: '', headers: '' };
  return {
    lines: `headers = {"Authorization": ${py(placeholder(cred))}}  # your own; never share it\n`,
    opts: ', storage_options={"headers": headers}',
    headers: ', headers=headers',
  };
}

/** The snippets for ctx's node. `source` from dataSource() (or null), `index` the node index URL. */
export function snippets(ctx, { origin, source, index }) {
  const { path } = ctx;
  const attrs = ctx.node.attributes;
  const family = attrs.structure_family;
  const specs = (attrs.specs || []).map((s) => s.name);
  const cred = ctx.api.credential;
  const asked = ctx.params.get('slice') || '';
  const slice = /^[-\d:, ]+$/.test(asked) ? asked : ''; // only what is also valid Python
  const api = `${origin}/api/v1`;
  const out = [];

  const key = cred?.kind === 'apikey' ? ', api_key="<your API key>"' : '';
  const read = family === 'container' ? 'print(list(node))  # its children; node["name"] opens one'
    : family === 'table' ? 'df = node.read()  # a pandas DataFrame'
      : family === 'awkward' ? 'data = node.read()  # an awkward.Array; node["field"] reads one field'
      : family === 'sparse' ? `data = node${slice ? `[${slice}]` : '.read()'}  # a sparse.COO`
      : `data = node${slice ? `[${slice}]` : '.read()'}  # a numpy array`;
  const login = cred?.kind === 'bearer' ? 'Signed in with a provider: the client asks you to log in too.' : null;
  // tiled's client puts the key into the URL's path as it is: "#", "?" and "%" in a name go escaped
  const clientKey = path.split('/').map((part) => part.replace(/[%#?]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)).join('/');
  const escaped = clientKey !== path ? `  # ${py(path)}, escaped as the client sends keys in URLs` : '';
  out.push(snippet('Tiled client', login,
    `from tiled.client import from_uri\n\nclient = from_uri(${py(origin)}${key})\nnode = client[${py(clientKey)}]${escaped}\n${read}\n`));

  const direct = source?.url || null;
  const auth = pyAuth(cred, !direct);
  const where = direct ? 'At the data’s own address (no API in between).'
    : 'Through the API’s Zarr route (each key redirects to the stored object).';
  const zurl = direct || `${api}/zarr/v3/${encodePath(path)}`;
  const isZarr = source ? source.zarr : family === 'array' || (family === 'container' && specs.length > 0);
  if (family === 'array' && isZarr) {
    out.push(snippet('zarr', where, `import zarr\n\n${auth.lines}array = zarr.open_array(${py(zurl)}, mode="r"${auth.opts})\n`
      + `data = array${slice ? `[${slice}]` : '[...]'}\n`));
    if (specs.some((s) => s.startsWith('xarray_'))) {
      out.push(snippet('xarray', 'The dataset this variable belongs to, opened lazily.',
        `import xarray\n\n${auth.lines}ds = xarray.open_zarr(${py(zurl.slice(0, zurl.lastIndexOf('/')))}${auth.opts})\n`
        + `da = ds[${py(path.split('/').pop())}]\n`));
    }
  } else if (family === 'container' && isZarr) {
    if (specs.includes('xarray_dataset')) {
      out.push(snippet('xarray', where, `import xarray\n\n${auth.lines}ds = xarray.open_zarr(${py(zurl)}${auth.opts})\n`));
    }
    out.push(snippet('zarr', where,
      `import zarr\n\n${auth.lines}group = zarr.open_group(${py(zurl)}, mode="r"${auth.opts})\nprint(group.tree())\n`));
  } else if (family === 'container') {
    out.push(h('p', { class: 'note' },
      'A folder of the catalog, not a Zarr group: read it with the tiled client or download it as HDF5.'));
  } else if (family === 'table') {
    const file = direct && !source.folder ? direct : null; // a partitioned table's folder cannot be listed over HTTP
    const turl = file || `${api}/table/full/${encodePath(path)}?format=parquet`;
    const tauth = pyAuth(cred, !file);
    const note = file ? 'The published Parquet file itself.' : 'The API’s Parquet answer for the whole table.';
    out.push(snippet('pandas', note, `import pandas\n\n${tauth.lines}df = pandas.read_parquet(${py(turl)}${tauth.opts})\n`));
    out.push(snippet('polars', note, file ? `import polars\n\ndf = polars.read_parquet(${py(turl)})\n`
      : `import io\n\nimport httpx\nimport polars\n\n${tauth.lines}`
        + `answer = httpx.get(${py(turl)}${tauth.headers}, follow_redirects=True)\n`
        + 'answer.raise_for_status()\ndf = polars.read_parquet(io.BytesIO(answer.content))\n'));
  } else if (family === 'sparse') {
    // the nonzeros as a table (dim0.., data), as Tiled's sparse answers and block files hold them
    const surl = `${api}/sparse/full/${encodePath(path)}?format=parquet${slice ? `&slice=${encodeURIComponent(slice)}` : ''}`;
    const sauth = pyAuth(cred, true);
    const sized = slice ? sliceShape(slice, attrs.structure?.shape || []) : attrs.structure?.shape || [];
    const dims = sized instanceof Error ? attrs.structure?.shape || [] : sized; // an integer index drops its dimension
    const shape = `(${dims.join(', ')}${dims.length === 1 ? ',' : ''})`;
    out.push(snippet('pyarrow + sparse', 'The API’s Parquet answer: one row per nonzero (coordinates dim0…, value data).',
      `import io\n\nimport httpx\nimport pyarrow.parquet as pq\nimport sparse\n\n${sauth.lines}`
        + `answer = httpx.get(${py(surl)}${sauth.headers}, follow_redirects=True)\nanswer.raise_for_status()\n`
        + 'nonzeros = pq.read_table(io.BytesIO(answer.content))\n'
        + `data = sparse.COO([nonzeros[f"dim{i}"].to_numpy() for i in range(${dims.length})], nonzeros["data"].to_numpy(), shape=${shape})\n`));
  } else if (family === 'awkward') {
    const aurl = direct || `${api}/awkward/full/${encodePath(path)}?format=parquet`;
    const aauth = pyAuth(cred, !direct);
    out.push(snippet('awkward', direct ? 'The published Parquet file itself (written by ak.to_parquet).' : 'The API’s Parquet answer.',
      `import awkward as ak\n\n${aauth.lines}data = ak.from_parquet(${py(aurl)}${aauth.opts})\n`));
  }

  if (index && !source?.private) { // (the index anyone reads holds public nodes only: a private one is not in it)
    const column = family === 'container' ? 'parent' : 'path';
    out.push(snippet('DuckDB on the node index',
      'The catalog’s metadata index: one row per node (path, parent, family, specs, metadata, structure, data_url)'
        + `${family === 'container' ? '; here the children of this node' : ''}${cred ? '; public nodes only' : ''}.`,
      `import duckdb\n\nrows = duckdb.execute(\n    "SELECT path, family, metadata FROM read_parquet(?) WHERE ${column} = ?",\n`
        + `    [${py(index)}, ${py(path)}],\n).df()\n`));
  }

  const format = { array: 'npy', table: 'parquet', container: 'h5', awkward: 'parquet', sparse: 'parquet' }[family];
  if (format) {
    const query = { format, slice: (family === 'array' || family === 'sparse') && slice ? slice : null };
    const url = ctx.api.url(`${family}/full`, path, query);
    const header = cred ? ` -H ${sh(`Authorization: ${placeholder(cred)}`)}` : '';
    out.push(snippet('curl', 'Large answers redirect to a stored copy: -L follows.',
      `curl -L${header} -o ${sh(fileName(path, query.slice, format))} ${sh(url)}\n`));
  }
  return out;
}

export async function render(el, ctx) {
  const [source, index] = await Promise.all([dataSource(ctx), indexUrl(ctx)]);
  el.append(h('div', { class: 'snippets' }, snippets(ctx, { origin: window.location.origin, source, index })));
}
