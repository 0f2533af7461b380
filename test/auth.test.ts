/**
 * Connection identity (issue 4): auth methods, tokens set by services,
 * header auth over HTTP and graphql-ws, token resets, and cids a client
 * cannot choose or learn.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Client } from 'graphql-ws';
import type { TestService } from './helpers/res-service.js';
import { startTestEnv, type TestEnv } from './helpers/env.js';
import { gql, startTestGateway, type TestGateway } from './helpers/gateway.js';
import { subscribeWs, wsClient } from './helpers/live-client.js';
import { waitFor } from './helpers/wait.js';

const sdl = /* GraphQL */ `
  type Secret @resource(rid: "vault.secret.{id}") {
    id: ID! @rid
    text: String!
  }
  type Query {
    secret(id: ID!): Secret @get(rid: "vault.secret.{id}")
  }
  type Mutation {
    login(name: String!, password: String!): Boolean @auth(rid: "auth.user", method: "login")
    logout: Boolean @auth(rid: "auth.user", method: "logout")
  }
`;

const enc = new TextEncoder();
let env: TestEnv;
let svc: TestService;
let gw: TestGateway;
const clients: Client[] = [];

/** The service's login: sets {user} as the connection's token (before replying, as the protocol says). */
function installAuthService(s: TestService): void {
  s.handle('auth.auth.user.login', (p) => {
    if (p.params?.password !== 'secret') return { error: { code: 'auth.badPassword', message: 'Wrong password' } };
    s.nc.publish(`conn.${p.cid}.token`, enc.encode(JSON.stringify({ token: { user: p.params.name }, tid: p.params.name })));
    return { result: true };
  });
  s.handle('auth.auth.user.logout', (p) => {
    s.nc.publish(`conn.${p.cid}.token`, enc.encode(JSON.stringify({ token: null })));
    return { result: true };
  });
  // only alice may read vault resources
  s.handle('access.vault.>', (p) => ({ result: { get: p.token?.user === 'alice' } }));
}

function client(params?: Record<string, unknown>): Client {
  const c = wsClient(gw.url, params);
  clients.push(c);
  return c;
}

/** Runs one query or mutation over graphql-ws and returns its result. */
async function wsRequest(c: Client, query: string, variables?: Record<string, unknown>) {
  const s = subscribeWs(c, query, variables);
  const r = await s.next();
  s.dispose();
  return r;
}

beforeAll(async () => {
  env = await startTestEnv(sdl);
  ({ svc, gw } = env);
  svc.model('vault.secret.1', { text: 'the cake is a lie' }).model('vault.secret.2', { text: 'forty-two' });
  installAuthService(svc);
});

beforeEach(() => {
  svc.requests.length = 0;
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.dispose()));
  await env?.close();
});

describe('auth methods and connection tokens', () => {
  it('a login over graphql-ws grants access on that connection only', async () => {
    const alice = client();
    const other = client();
    expect((await wsRequest(alice, '{ secret(id: 1) { text } }')).errors?.[0].extensions?.code).toBe('system.accessDenied');
    expect(await wsRequest(alice, 'mutation { login(name: "alice", password: "secret") }')).toEqual({ data: { login: true } });
    expect(await wsRequest(alice, '{ secret(id: 1) { text } }')).toEqual({ data: { secret: { text: 'the cake is a lie' } } });
    expect((await wsRequest(other, '{ secret(id: 1) { text } }')).errors?.[0].extensions?.code).toBe('system.accessDenied');
  });

  it('sends auth requests with cid, token, params and the HTTP details, without an access check', async () => {
    const c = client();
    await wsRequest(c, 'mutation { login(name: "alice", password: "secret") }');
    await wsRequest(c, 'mutation { logout }');
    const [login, logout] = svc.seen('auth.*');
    expect(login.payload).toMatchObject({ params: { name: 'alice', password: 'secret' }, host: expect.stringContaining('127.0.0.1') });
    expect(login.payload.cid).toEqual(expect.any(String));
    expect(login.payload.token).toBeUndefined();
    expect(login.payload.header['Sec-Websocket-Key']).toHaveLength(1);
    expect(logout.payload).toMatchObject({ cid: login.payload.cid, token: { user: 'alice' } });
    expect(svc.count('access.auth.user')).toBe(0);
  });

  it('a wrong password gives the service error code', async () => {
    const r = await gql(gw.url, 'mutation { login(name: "alice", password: "nope") }');
    expect(r.errors?.[0].extensions?.code).toBe('auth.badPassword');
  });

  it('a logout revokes access and ends a live subscription with system.accessDenied', async () => {
    const c = client();
    await wsRequest(c, 'mutation { login(name: "alice", password: "secret") }');
    const live = subscribeWs(c, 'subscription { secret(id: 2) { text } }');
    expect(await live.next()).toEqual({ data: { secret: { text: 'forty-two' } } });
    await wsRequest(c, 'mutation { logout }');
    const end = await live.next();
    expect(end.errors?.[0].extensions?.code).toBe('system.accessDenied');
    await live.completed;
    expect((await wsRequest(c, '{ secret(id: 2) { text } }')).errors?.[0].extensions?.code).toBe('system.accessDenied');
  });

  it('a token change keeps a still-allowed live subscription running', async () => {
    const c = client();
    await wsRequest(c, 'mutation { login(name: "alice", password: "secret") }');
    const live = subscribeWs(c, 'subscription { secret(id: 1) { text } }');
    expect(await live.next()).toEqual({ data: { secret: { text: 'the cake is a lie' } } });
    const rechecked = svc.nextRequest((r) => r.subject === 'access.vault.secret.1');
    await wsRequest(c, 'mutation { login(name: "alice", password: "secret") }');
    await rechecked;
    await svc.change('vault.secret.1', { text: 'still here' });
    expect(await live.next()).toEqual({ data: { secret: { text: 'still here' } } });
    await svc.change('vault.secret.1', { text: 'the cake is a lie' });
    expect(await live.next()).toEqual({ data: { secret: { text: 'the cake is a lie' } } });
    live.dispose();
  });
});

describe('cids', () => {
  it('are random, long and never taken from the client', async () => {
    const c = client({ cid: 'chosen-by-client' });
    await wsRequest(c, '{ secret(id: 1) { text } }');
    await gql(gw.url, '{ secret(id: 1) { text } }', undefined, { 'x-cid': 'chosen-by-client', cookie: 'cid=chosen-by-client' });
    await gql(gw.url, '{ secret(id: 1) { text } }');
    const cids = svc.seen('access.vault.secret.1').map((r) => r.payload.cid as string);
    expect(cids).toHaveLength(3);
    expect(new Set(cids).size).toBe(3);
    for (const cid of cids) {
      expect(cid).not.toContain('chosen');
      // at least 96 bits of randomness: 16 bytes in base64url
      expect(Buffer.from(cid, 'base64url').length).toBeGreaterThanOrEqual(12);
    }
  });

  it('a client cannot set another connection\'s token', async () => {
    const victim = client();
    await wsRequest(victim, '{ secret(id: 1) { text } }');
    const victimCid = svc.seen('access.vault.secret.1')[0].payload.cid;
    const attacker = client({ cid: victimCid, token: { user: 'alice' } });
    // the attacker logs in; the token goes to the attacker's own cid
    await wsRequest(attacker, 'mutation { login(name: "alice", password: "secret") }', { cid: victimCid });
    const login = svc.seen('auth.auth.user.login').at(-1)!;
    expect(login.payload.cid).not.toBe(victimCid);
    // a token smuggled through an operation's extensions or variables is not a token
    await gql(gw.url, 'query($token: String) { secret(id: 1) { text } }', { token: 'alice' });
    expect((await wsRequest(victim, '{ secret(id: 2) { text } }')).errors?.[0].extensions?.code).toBe('system.accessDenied');
    expect(svc.seen('access.vault.secret.2').every((r) => r.payload.token === undefined)).toBe(true);
  });
});

describe('header auth', () => {
  let hgw: TestGateway;
  beforeAll(async () => {
    hgw = await startTestGateway(env.nats.url, sdl, { headerAuth: 'session.header' });
    svc.handle('auth.session.header', (p) => {
      const bearer = /^Bearer (\w+)$/.exec(p.header?.Authorization?.[0] ?? '')?.[1];
      const user = bearer ?? p.params?.user;
      if (user) svc.nc.publish(`conn.${p.cid}.token`, enc.encode(JSON.stringify({ token: { user } })));
      return { result: null };
    });
  });
  afterAll(async () => {
    await hgw?.close();
  });

  it('turns an HTTP Authorization header into a token before the operation runs', async () => {
    expect(await gql(hgw.url, '{ secret(id: 1) { text } }', undefined, { authorization: 'Bearer alice' })).toEqual({
      data: { secret: { text: 'the cake is a lie' } },
    });
    expect((await gql(hgw.url, '{ secret(id: 1) { text } }')).errors?.[0].extensions?.code).toBe('system.accessDenied');
    const [withHeader] = svc.seen('auth.session.header');
    expect(withHeader.payload.header.Authorization).toEqual(['Bearer alice']);
    expect(withHeader.payload).toMatchObject({ uri: '/graphql', isHttp: true });
  });

  it('passes graphql-ws connectionParams as params', async () => {
    const c = wsClient(hgw.url, { user: 'alice' });
    clients.push(c);
    expect(await wsRequest(c, '{ secret(id: 1) { text } }')).toEqual({ data: { secret: { text: 'the cake is a lie' } } });
    const req = svc.seen('auth.session.header')[0];
    expect(req.payload.params).toEqual({ user: 'alice' });
    expect(req.payload.isHttp).toBeUndefined();
  });
});

describe('system.tokenReset', () => {
  it('sends exactly one auth request per connection holding a reset token id', async () => {
    const a1 = client();
    const a2 = client();
    const b = client();
    await wsRequest(a1, 'mutation { login(name: "carol", password: "secret") }');
    await wsRequest(a2, 'mutation { login(name: "carol", password: "secret") }');
    await wsRequest(b, 'mutation { login(name: "dave", password: "secret") }');
    const cidsOf = (name: string) => svc.seen('auth.auth.user.login').filter((r) => r.payload.params.name === name).map((r) => r.payload.cid);
    svc.handle('auth.auth.user.renew', () => ({ result: null }));
    await svc.publish('system.tokenReset', { tids: ['carol'], subject: 'auth.auth.user.renew' });
    await waitFor(() => svc.count('auth.auth.user.renew') >= 2, 3000, 'two renew requests');
    // a second reset for dave alone: its request arriving proves the first reset sent no more
    await svc.publish('system.tokenReset', { tids: ['dave'], subject: 'auth.auth.user.renew' });
    await waitFor(() => svc.count('auth.auth.user.renew') >= 3, 3000, 'the renew request for dave');
    const renewed = svc.seen('auth.auth.user.renew').map((r) => r.payload.cid);
    expect(renewed.slice(0, 2).sort()).toEqual(cidsOf('carol').sort());
    expect(renewed[2]).toBe(cidsOf('dave')[0]);
    expect(svc.seen('auth.auth.user.renew').every((r) => r.payload.params === undefined)).toBe(true);
  });
});
