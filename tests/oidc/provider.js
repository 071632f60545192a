// Minimal OpenID provider for Skyshelf tests (oidc-provider 9.13.3, node >= 20).
// Env: PORT (0 = pick free), AUDIENCE, CLIENT_ID, KEYS_FILE (private JWKS; created if absent),
//      ACCOUNTS (JSON {"alice": {"groups": ["grp-a"]}}), ACCESS_TTL (seconds),
//      BROWSER_REDIRECT_URIS (comma list: registers the browse page's public client BROWSER_CLIENT_ID,
//      default skyshelf-browse: authorization code + PKCE S256 + refresh, same audience and groups;
//      it always gets a refresh token, as Cognito's code flow does; its access tokens last
//      BROWSER_ACCESS_TTL seconds, default ACCESS_TTL).
// Prints one JSON line {"issuer": ..., "port": ...} on stdout when ready.
import http from 'node:http';
import fs from 'node:fs';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

// Progress on stderr with the time since node started, so a start that hangs says where.
const stage = (what) => process.stderr.write(`skyshelf-test-oidc: ${what} at ${(process.uptime() * 1000).toFixed(0)} ms\n`);
stage('modules loaded');
const AUDIENCE = process.env.AUDIENCE || 'https://skyshelf.test/api';
const CLIENT_ID = process.env.CLIENT_ID || 'skyshelf-cli';
const ACCOUNTS = JSON.parse(process.env.ACCOUNTS || '{"alice":{"groups":["grp-a"]},"bob":{"groups":["grp-b"]}}');
const ACCESS_TTL = Number(process.env.ACCESS_TTL || 300);
const BROWSER_CLIENT_ID = process.env.BROWSER_CLIENT_ID || 'skyshelf-browse';
const BROWSER_REDIRECT_URIS = (process.env.BROWSER_REDIRECT_URIS || '').split(',').filter(Boolean);
const BROWSER_ACCESS_TTL = Number(process.env.BROWSER_ACCESS_TTL || ACCESS_TTL);
const accessTtl = (client) => (client && client.clientId === BROWSER_CLIENT_ID ? BROWSER_ACCESS_TTL : ACCESS_TTL);

function newKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), alg: 'RS256', use: 'sig' };
}
// Key rotation = restart with a new KEYS_FILE: keys[0] signs; later keys are still published in
// jwks_uri (overlap); drop them to retire. `node provider.js --rotate` prepends a new key and exits.
let keys;
const KEYS_FILE = process.env.KEYS_FILE;
if (KEYS_FILE && fs.existsSync(KEYS_FILE)) keys = JSON.parse(fs.readFileSync(KEYS_FILE)).keys;
else keys = [newKey()];
if (process.argv.includes('--rotate')) {
  const keep = process.argv.includes('--retire-old') ? [] : keys;
  fs.writeFileSync(KEYS_FILE, JSON.stringify({ keys: [newKey(), ...keep] }));
  process.exit(0);
}
if (KEYS_FILE && !fs.existsSync(KEYS_FILE)) fs.writeFileSync(KEYS_FILE, JSON.stringify({ keys }));
stage('signing keys ready');

const server = http.createServer();
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  stage(`listening on ${port}`);
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      token_endpoint_auth_method: 'none', // public client
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      response_types: [],
      redirect_uris: [],
    }, ...(BROWSER_REDIRECT_URIS.length ? [{
      // the browse page: public (it can keep no secret), so PKCE is required; oidc-provider answers
      // CORS on /token for a public client's redirect_uris' origins (clientBasedCORS's default)
      client_id: BROWSER_CLIENT_ID,
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: BROWSER_REDIRECT_URIS,
    }] : [])],
    jwks: { keys },
    scopes: ['openid', 'offline_access', 'skyshelf:read'],
    claims: { openid: ['sub'], groups: ['groups'] },
    findAccount: async (ctx, sub) => (ACCOUNTS[sub] ? {
      accountId: sub,
      claims: async () => ({ sub, groups: ACCOUNTS[sub].groups }),
    } : undefined),
    // groups claim in the JWT access token
    extraTokenClaims: async (ctx, token) => (token.accountId && ACCOUNTS[token.accountId]
      ? { groups: ACCOUNTS[token.accountId].groups } : undefined),
    features: {
      devInteractions: { enabled: false },
      deviceFlow: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => AUDIENCE, // tiled's client sends no `resource`
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, resource, client) => {
          if (resource !== AUDIENCE) throw new Error('unknown resource');
          return { scope: 'skyshelf:read', audience: AUDIENCE, accessTokenTTL: accessTtl(client),
                   accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
        },
      },
    },
    ttl: { AccessToken: (ctx, token, client) => accessTtl(client), DeviceCode: 600, RefreshToken: 86400, Grant: 86400,
           Interaction: 600, Session: 86400, IdToken: ACCESS_TTL },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    rotateRefreshToken: true,
    issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token')
      && (code.scopes.has('offline_access') || client.clientId === BROWSER_CLIENT_ID),
    pkce: { required: (ctx, client) => client.clientId === BROWSER_CLIENT_ID },
  });
  provider.proxy = false;
  // oidc-provider omits `interval` from the device authorization response (RFC 8628 makes it
  // optional, default 5 s) but tiled's client reads verification["interval"]: add it.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/device/auth' && ctx.status === 200 && ctx.body) ctx.body = { ...ctx.body, interval: Number(process.env.DEVICE_INTERVAL || 1) };
  });
  // Login page: GET shows a form; POST login=<account> completes it (no password: test-only IdP).
  provider.use(async (ctx, next) => {
    const m = ctx.path.match(/^\/interaction\/([^/]+)$/);
    if (!m) return next();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.prompt.name === 'consent') { // headless consent: grant what was asked
      const grant = details.grantId ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
      const d = details.prompt.details;
      if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
      if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes || {})) grant.addResourceScope(indicator, scopes.join(' '));
      return provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
    }
    if (ctx.method === 'GET') {
      ctx.type = 'html';
      ctx.body = `<!doctype html><title>Test IdP</title><form method="post" action="/interaction/${details.uid}">`
        + '<label>Account <input name="login" autocomplete="username"/></label><button type="submit">Sign in</button></form>';
      return undefined;
    }
    const body = await new Promise((res) => { let b = ''; ctx.req.on('data', (c) => { b += c; }); ctx.req.on('end', () => res(b)); });
    const login = new URLSearchParams(body).get('login');
    if (!ACCOUNTS[login]) { ctx.status = 403; ctx.body = 'unknown account'; return undefined; }
    return provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
  });
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
});
