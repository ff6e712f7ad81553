// A real OpenID Connect provider (panva/oidc-provider) dressed up as a Microsoft Entra ID
// tenant, for Sluice's identity tests (crates/identity/tests).
//
// Why a real provider: the gateway's token validation must work against what an actual
// OIDC implementation serves (discovery document, JWKS, RS256 access tokens signed with a
// key the test did not choose), not against a mock that agrees with our own assumptions.
//
// What it emulates: Entra app-only access tokens from the client-credentials grant. The
// issuer has Entra's v2 shape, `http://127.0.0.1:<port>/<tenant-id>/v2.0`, with discovery
// at `<issuer>/.well-known/openid-configuration`. Access tokens are JWTs (resource
// indicators make them so), signed RS256 with a `kid`, header `typ: JWT` as Entra writes,
// and `formats.customizers.jwt` reshapes the payload into Entra's claims. Each client below
// stands for one kind of app registration, so tests pick the token shape by client id:
//
//   reader-v2    v2 token (`azp`, `azpacr`, `ver` 2.0) with roles
//   writer-v1    v1 token (`appid`, `appidacr`, `ver` 1.0) with roles. The real v1 issuer is
//                https://sts.windows.net/<tid>/, which this server cannot be, so v1 tokens
//                carry this server's issuer; the v1/v2 issuer mapping is unit-tested in Rust.
//   noroles-v2   app-only token without a `roles` claim (any app in a tenant can get one)
//   overage-v2   roles, plus a groups overage (`_claim_names.groups`, `_claim_sources`)
//   groups-v2    roles and a `groups` claim
//   user-v2      delegated-looking token: `scp`, `name`, `idtyp` user (a person)
//
// Every client's secret is `<client_id>-secret`. Resources (audiences) that may be asked
// for with `resource=`: api://sluice (the default) and api://other.
//
// Usage: node server.js [--port N] [--tenant GUID] [--exit-with-parent]
//   --port 0 (the default) picks a free port. When listening, one JSON line goes to stdout:
//   {"issuer": "...", "port": N, "tenant": "..."}; callers read it instead of guessing ports.
//   --exit-with-parent: exit when stdin closes, so the process never outlives the test
//   that started it, even if that test is killed.

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { promisify } from 'node:util';

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  if (i !== -1 && i + 1 < process.argv.length) return process.argv[i + 1];
  return fallback;
}

const port = Number(arg('--port', process.env.PORT ?? '0'));
const tenant = arg('--tenant', process.env.TENANT_ID ?? '3f1b6a52-7c0e-4d7a-9b1e-5a2c8d4e6f70');
const exitWithParent = process.argv.includes('--exit-with-parent');

const RESOURCES = new Set(['api://sluice', 'api://other']);

// Per app registration: the object id of its service principal and what Entra would put
// in its tokens.
const CLIENTS = {
  'reader-v2': { ver: '2.0', oid: '0a1b2c3d-0000-4000-8000-000000000001', roles: ['Reports.Reader'] },
  'writer-v1': { ver: '1.0', oid: '0a1b2c3d-0000-4000-8000-000000000002', roles: ['Orders.Writer', 'Reports.Reader'] },
  'noroles-v2': { ver: '2.0', oid: '0a1b2c3d-0000-4000-8000-000000000003' },
  'overage-v2': { ver: '2.0', oid: '0a1b2c3d-0000-4000-8000-000000000004', roles: ['Reports.Reader'], overage: true },
  'groups-v2': { ver: '2.0', oid: '0a1b2c3d-0000-4000-8000-000000000005', roles: ['Reports.Reader'], groups: ['7d0b3a4e-1111-4000-8000-00000000000a', 'dba-oncall'] },
  'user-v2': { ver: '2.0', oid: '0a1b2c3d-0000-4000-8000-000000000006', user: { name: 'Ada Lovelace', scp: 'Data.Read' }, roles: ['Reports.Reader'] },
};

// A fresh signing key per process: tests must discover it, never know it in advance.
//
// Made before oidc-provider is loaded, and off the main thread: on Node 20 (OpenSSL 3),
// synchronous key generation and export raced with crypto work that loading
// oidc-provider starts, and about one start in twenty deadlocked in a futex wait.
const { privateKey } = await promisify(crypto.generateKeyPair)('rsa', { modulusLength: 2048 });
const signingJwk = {
  ...privateKey.export({ format: 'jwk' }),
  kid: crypto.randomBytes(12).toString('base64url'),
  alg: 'RS256',
  use: 'sig',
};

const { default: Provider, errors } = await import('oidc-provider');

const server = http.createServer();
server.listen(port, '127.0.0.1', () => {
  const actualPort = server.address().port;
  const prefix = `/${tenant}/v2.0`;
  const issuer = `http://127.0.0.1:${actualPort}${prefix}`;

  const provider = new Provider(issuer, {
    clients: Object.keys(CLIENTS).map((clientId) => ({
      client_id: clientId,
      client_secret: `${clientId}-secret`,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_post',
    })),
    jwks: { keys: [signingJwk] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    ttl: { ClientCredentials: 3600 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'api://sluice',
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resourceIndicator) => {
          if (!RESOURCES.has(resourceIndicator)) {
            throw new errors.InvalidTarget();
          }
          return {
            scope: '',
            audience: resourceIndicator,
            accessTokenTTL: 3600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    formats: {
      customizers: {
        // Reshape oidc-provider's RFC 9068 payload into what Entra issues for app tokens.
        jwt(_ctx, token, jwt) {
          const client = CLIENTS[token.clientId];
          const std = jwt.payload;
          const out = {
            aud: std.aud,
            iss: std.iss,
            iat: std.iat,
            nbf: std.iat,
            exp: std.exp,
            tid: tenant,
            oid: client.oid,
            sub: client.oid,
            rh: '0.AAAA-test-only',
            uti: std.jti,
            ver: client.ver,
          };
          if (client.ver === '2.0') {
            out.azp = token.clientId;
            out.azpacr = '1';
          } else {
            out.appid = token.clientId;
            out.appidacr = '1';
          }
          if (client.user) {
            Object.assign(out, client.user);
            out.idtyp = 'user';
          } else {
            out.idtyp = 'app';
          }
          if (client.roles) out.roles = client.roles;
          if (client.groups) out.groups = client.groups;
          if (client.overage) {
            out._claim_names = { groups: 'src1' };
            out._claim_sources = {
              src1: { endpoint: `https://graph.microsoft.com/v1.0/users/${client.oid}/getMemberObjects` },
            };
          }
          jwt.payload = out;
          // oidc-provider writes `at+jwt` (RFC 9068); Entra writes `JWT`.
          jwt.header = { typ: 'JWT' };
        },
      },
    },
  });
  provider.on('server_error', (_ctx, err) => console.error('server_error', err));

  // oidc-provider must believe it is mounted at the issuer's path: strip the prefix and
  // keep the original URL, as Express's app.use(prefix, ...) does.
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url === prefix || req.url.startsWith(`${prefix}/`)) {
      req.originalUrl = req.url;
      req.url = req.url.slice(prefix.length) || '/';
      callback(req, res);
    } else {
      res.statusCode = 404;
      res.end('not found\n');
    }
  });

  process.stdout.write(`${JSON.stringify({ issuer, port: actualPort, tenant })}\n`);
});

if (exitWithParent) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
process.on('SIGTERM', () => process.exit(0));
