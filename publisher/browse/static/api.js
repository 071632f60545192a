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

  /** Save `url` as `filename`. Anonymous: a plain link (the browser streams it and follows any
   *  redirect to a spilled answer). Signed in: a link cannot carry the header, so fetch it. */
  async download(url, filename) {
    let href = url;
    let revoke = null;
    if (this.credential) {
      href = URL.createObjectURL(await this.blob(url));
      revoke = href;
    }
    const a = document.createElement('a');
    a.href = href;
    a.download = filename || '';
    document.body.append(a);
    a.click();
    a.remove();
    if (revoke) setTimeout(() => URL.revokeObjectURL(revoke), 60_000);
  }
}
