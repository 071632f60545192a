// The page's one way to the handlers: Tiled's HTTP API under /api/v1 on this origin.
// Credentials (set by auth.js) travel only in the Authorization header, never in a URL.

export class ApiError extends Error {
  constructor(status, detail, url) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
    this.url = url;
  }

  static async from(response) {
    let detail = response.statusText || 'request failed';
    try {
      const body = await response.json();
      detail = typeof body.detail === 'string' ? body.detail : JSON.stringify(body.detail ?? body);
    } catch { /* not JSON: keep the status text */ }
    return new ApiError(response.status, detail, response.url);
  }
}

/** A node path ("a/b c") as URL path segments ("a/b%20c"). */
export const encodePath = (path) => path.split('/').filter(Boolean).map(encodeURIComponent).join('/');

export class Api {
  constructor(base = '/api/v1') {
    this.base = base;
    this.release = null; // a pinned release id: every request carries it
    this.credential = null; // {kind: 'apikey' | 'bearer', value}
    this.about = null;
    this.cache = new Map(); // URL → parsed JSON, for this page's life (a release never changes under a URL)
  }

  /** Absolute URL of `/api/v1/<route>/<path>?<query>`; array values repeat the key. */
  url(route, path = '', query = {}) {
    const u = new URL(`${this.base}/${route}${route ? '/' : ''}${encodePath(path)}`, window.location.origin);
    for (const [key, value] of Object.entries(query)) {
      if (value == null) continue;
      for (const one of Array.isArray(value) ? value : [value]) u.searchParams.append(key, String(one));
    }
    if (this.release) u.searchParams.set('release', this.release);
    return u.toString();
  }

  headers() {
    const c = this.credential;
    if (!c) return {};
    return { Authorization: `${c.kind === 'apikey' ? 'Apikey' : 'Bearer'} ${c.value}` };
  }

  async fetch(url, init = {}) {
    let response;
    try {
      response = await fetch(url, { ...init, headers: { ...this.headers(), ...(init.headers || {}) } });
    } catch (error) {
      throw new ApiError(0, `the server could not be reached (${error.message})`, url);
    }
    if (!response.ok) throw await ApiError.from(response);
    return response;
  }

  /** GET JSON; answers are kept per URL (and per credential) so going back is instant. */
  async json(route, path = '', query = {}) {
    const url = this.url(route, path, query);
    const key = `${this.credential ? this.credential.value : ''} ${url}`;
    if (!this.cache.has(key)) {
      const pending = this.fetch(url).then((r) => r.json());
      this.cache.set(key, pending);
      pending.catch(() => this.cache.delete(key));
    }
    return this.cache.get(key);
  }

  /** Seed the cache with an answer learned elsewhere (a child's attributes from its parent's page). */
  remember(route, path, query, value) {
    const key = `${this.credential ? this.credential.value : ''} ${this.url(route, path, query)}`;
    if (!this.cache.has(key)) this.cache.set(key, Promise.resolve(value));
  }

  forget() { this.cache.clear(); }

  async blob(url) {
    return (await this.fetch(url)).blob();
  }

  /** Save `url` as `filename`: fetched (a refusal shows its reason, where a plain link's download
   *  was cancelled without one and the page said "Downloading"; a signed-in one carries the
   *  header a link cannot), then handed to the browser. `progress(bytes)` as it arrives. */
  async download(url, filename, progress = () => {}) {
    const response = await this.fetch(url);
    const chunks = [];
    let received = 0;
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      received += value.length;
      progress(received);
    }
    const href = URL.createObjectURL(new Blob(chunks, { type: response.headers.get('Content-Type') || '' }));
    const a = document.createElement('a');
    a.href = href;
    a.download = filename || '';
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(href), 60_000);
  }
}
