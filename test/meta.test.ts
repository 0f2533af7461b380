/**
 * `meta` in service replies (RES service protocol 1.2.3, "Meta object"):
 * status and headers that access, call and auth replies set on the HTTP
 * response of the GraphQL request that caused them, on the fast path (a JSON
 * POST) and through Yoga alike; a login that sets its session cookie through
 * meta, and header auth reading it back.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestEnv, type TestEnv } from './helpers/env.js';
import { subscribeWs, wsClient } from './helpers/live-client.js';
import type { TestService } from './helpers/res-service.js';
import { nodeHeaders } from '../src/transports/response-meta.js';

const sdl = /* GraphQL */ `
  type Secret @resource(rid: "vault.secret.{id}") {
    id: ID! @rid
    text: String!
  }
  type Query {
    secret(id: ID!): Secret @get(rid: "vault.secret.{id}")
  }
  type Mutation {
    login(name: String!): Boolean @auth(rid: "auth.user", method: "login")
    logout: Boolean @auth(rid: "auth.user", method: "logout")
    open(id: ID!): Boolean @call(rid: "vault.secret.{id}", method: "open")
  }
`;

const enc = new TextEncoder();
let env: TestEnv;
let svc: TestService;

/** Two ways to the gateway: the fast path takes a JSON POST accepting JSON; Yoga takes the GraphQL response type. */
const paths = {
  'fast path': 'application/json',
  Yoga: 'application/graphql-response+json',
} as const;

async function post(query: string, accept: string, headers: Record<string, string> = {}) {
  const response = await fetch(env.gw.url, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/json', accept, ...headers },
    body: JSON.stringify({ query }),
  });
  const text = await response.text();
  return { response, text, body: text === '' ? undefined : JSON.parse(text) };
}

beforeAll(async () => {
  env = await startTestEnv(sdl, { headerAuth: 'session.cookie' });
  svc = env.svc;
  svc.model('vault.secret.1', { text: 'the cake is a lie' });
  // the login service: the session lives in a cookie it sets through meta
  svc.handle('auth.auth.user.login', (p) => ({
    result: true,
    meta: { header: { 'set-cookie': [`session=${p.params.name}; Path=/; HttpOnly`], 'X-Login': ['ok'] } },
  }));
  svc.handle('auth.auth.user.logout', () => ({ result: true, meta: { status: 302, header: { Location: ['/signed-out'] } } }));
  // header auth reads the cookie back into a token
  svc.handle('auth.session.cookie', (p) => {
    const user = /(?:^|;\s*)session=(\w+)/.exec(p.header?.Cookie?.[0] ?? '')?.[1];
    if (user) svc.nc.publish(`conn.${p.cid}.token`, enc.encode(JSON.stringify({ token: { user } })));
    return { result: null, meta: { header: { 'Set-Cookie': ['seen=1; Path=/'] } } };
  });
  svc.handle('access.vault.>', (p) => ({ result: { get: p.token?.user === 'alice', call: '*' } }));
});

beforeEach(() => {
  svc.requests.length = 0;
});

afterAll(async () => {
  await env?.close();
});

describe.each(Object.entries(paths))('meta over HTTP (%s)', (_path, accept) => {
  it('a login sets its session cookie through meta, and header auth reads it back', async () => {
    const login = await post('mutation { login(name: "alice") }', accept);
    expect(login.response.status).toBe(200);
    expect(login.body.data).toEqual({ login: true });
    // header auth's cookie first (auth before auth), then the login's; both kept
    expect(login.response.headers.getSetCookie()).toEqual(['seen=1; Path=/', 'session=alice; Path=/; HttpOnly']);
    expect(login.response.headers.get('x-login')).toBe('ok');
    const [req] = svc.seen('auth.auth.user.login');
    expect(req.payload.isHttp).toBe(true);

    const cookie = login.response.headers.getSetCookie()[1].split(';')[0];
    const read = await post('{ secret(id: "1") { text } }', accept, { cookie });
    expect(read.body).toEqual({ data: { secret: { text: 'the cake is a lie' } } });
    const denied = await post('{ secret(id: "1") { text } }', accept);
    expect(denied.body.errors[0].extensions.code).toBe('system.accessDenied');
  });

  it('a 3XX status redirects to the Location, without content', async () => {
    const out = await post('mutation { logout }', accept);
    expect(out.response.status).toBe(302);
    expect(out.response.headers.get('location')).toBe('/signed-out');
    expect(out.text).toBe('');
    expect(out.response.headers.get('content-type')).toBeNull();
  });

  it('a 4XX status on an access reply replaces the status, the field gets its error, and nothing more is asked', async () => {
    svc.handle('access.vault.secret.9', () => ({ result: { get: true }, meta: { status: 401, header: { 'Www-Authenticate': ['Cookie'] } } }));
    const out = await post('{ a: secret(id: "9") { text } b: secret(id: "1") { text } }', accept, { cookie: 'session=alice' });
    expect(out.response.status).toBe(401);
    expect(out.response.headers.get('www-authenticate')).toBe('Cookie');
    expect(out.body.data.a).toBeNull();
    const codes = out.body.errors.map((e: { path: string[]; extensions: { code: string } }) => [e.path[0], e.extensions.code]);
    expect(codes).toContainEqual(['a', 'system.accessDenied']);
    expect(svc.count('get.vault.secret.9')).toBe(0);
  });

  it("a 4XX status with an error reply gives that error, and the call's status outranks the access's", async () => {
    svc.handle('access.vault.secret.5', () => ({ result: { get: true, call: '*' }, meta: { status: 200, header: { 'X-From': ['access'] } } }));
    svc.handle('call.vault.secret.5.open', () => ({
      error: { code: 'vault.locked', message: 'Locked' },
      meta: { status: 423, header: { 'X-From': ['call'], 'Content-Type': ['text/html'] } },
    }));
    const out = await post('mutation { open(id: "5") }', accept, { cookie: 'session=alice' });
    expect(out.response.status).toBe(423);
    expect(out.response.headers.get('x-from')).toBe('call');
    // the gateway owns the body's type
    expect(out.response.headers.get('content-type')).toMatch(/json/);
    expect(out.body.errors[0].extensions.code).toBe('vault.locked');
  });
});

describe('meta from header auth', () => {
  it('a 4XX status answers at once: no access or get request is sent', async () => {
    svc.handle('auth.session.cookie', () => ({ error: { code: 'session.expired', message: 'Session expired' }, meta: { status: 403 } }));
    try {
      for (const accept of Object.values(paths)) {
        const out = await post('{ secret(id: "1") { text } }', accept, { cookie: 'session=alice' });
        expect(out.response.status).toBe(403);
        expect(out.body.errors[0].extensions.code).toBe('session.expired');
      }
      expect(svc.count('access.vault.secret.1')).toBe(0);
    } finally {
      svc.handle('auth.session.cookie', () => ({ result: null }));
    }
  });
});

describe('meta without an HTTP response', () => {
  it('is ignored over graphql-ws: the login works, the request does not say isHttp', async () => {
    const client = wsClient(env.gw.url);
    try {
      const s = subscribeWs(client, 'mutation { logout }');
      expect(await s.next()).toEqual({ data: { logout: true } });
      s.dispose();
      expect(svc.seen('auth.auth.user.logout')[0].payload.isHttp).toBeUndefined();
    } finally {
      await client.dispose();
    }
  });
});

describe('handing a response to Node', () => {
  it('keeps every Set-Cookie (iterating fetch Headers into an object keeps only the last)', () => {
    const headers = new Headers([
      ['set-cookie', 'a=1'],
      ['set-cookie', 'b=2'],
      ['content-type', 'application/json'],
    ]);
    expect(nodeHeaders(headers)).toEqual({ 'set-cookie': ['a=1', 'b=2'], 'content-type': 'application/json' });
  });
});
