/**
 * The RES client protocol over WebSocket with the real ResClient (npm
 * resclient 2.5): get a model and a collection with references, change, add
 * and remove events (with the resources they bring into view), calls,
 * authentication, access lost on reaccess, a reconnect after a gateway
 * drain, and one cache shared with GraphQL; with raw RES clients, an event
 * sent with its new resources only to the clients that lack them, and a
 * client that stops reading disconnected without holding up the others.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import * as resclient from 'resclient';
import WebSocket from 'ws';
import { startTestEnv, type TestEnv } from './helpers/env.js';
import { startTestGateway } from './helpers/gateway.js';
import { subscribeWs, wsClient } from './helpers/live-client.js';
import { scrape } from './helpers/metrics.js';
import { ResgateClient } from './helpers/resgate.js';
import { waitFor, withTimeout } from './helpers/wait.js';

const sdl = /* GraphQL */ `
  type Book @resource(rid: "shop.book.{id}") {
    id: ID! @rid
    title: String
  }
  type Query {
    book(id: ID!): Book @get(rid: "shop.book.{id}")
  }
`;

/** What the tests use of ResClient (its published typings declare the class and a callback type under one name, which TypeScript cannot use). */
interface ResClient {
  get(rid: string): Promise<unknown>;
  call(rid: string, method: string, params?: unknown): Promise<unknown>;
  authenticate(rid: string, method: string, params?: unknown): Promise<unknown>;
  on(event: string, handler: (data: any) => void): void;
  off(event: string, handler: (data: any) => void): void;
  disconnect(): void;
}
const ResClient = (resclient as unknown as { default: new (ws: () => unknown, opt?: { reconnectDelay?: number }) => ResClient }).default;

const enc = new TextEncoder();
let env: TestEnv;
const clients: ResClient[] = [];

function resUrl(gatewayUrl: string): string {
  return gatewayUrl.replace(/^http/, 'ws').replace(/\/graphql$/, '/');
}

/**
 * A socket for ResClient that delivers one message per event-loop task, as a
 * browser's WebSocket does. ResClient applies a subscribe reply in a promise
 * callback; with ws's default (several messages of one read dispatched in one
 * tick) an event right behind the reply is applied first and then overwritten
 * by the older state in the reply. Against Resgate too: a ResClient on Node
 * needs this option.
 */
function resSocket(url: string): WebSocket {
  return new WebSocket(url, { allowSynchronousEvents: false });
}

function client(url = resUrl(env.gw.url)): ResClient {
  const c = new ResClient(() => resSocket(url), { reconnectDelay: 50 });
  clients.push(c);
  return c;
}

/** Resolves with the next `event` the item emits. */
function next<T = any>(item: { on(e: string, h: (d: T) => void): unknown; off(e: string, h: (d: T) => void): unknown }, event: string): Promise<T> {
  return withTimeout(
    new Promise<T>((resolve) => {
      const h = (d: T) => {
        item.off(event, h);
        resolve(d);
      };
      item.on(event, h);
    }),
    3000,
    `a ${event} event`,
  );
}

beforeAll(async () => {
  env = await startTestEnv(sdl);
  const { svc } = env;
  svc.model('shop.book.1', { title: 'Dune', author: { rid: 'shop.author.1' } });
  svc.model('shop.book.2', { title: 'Emma', author: { rid: 'shop.author.2' } });
  svc.model('shop.author.1', { name: 'Frank' });
  svc.model('shop.author.2', { name: 'Jane' });
  svc.collection('shop.books', [{ rid: 'shop.book.1' }]);
  svc.model('shop.secret.1', { text: 'the cake is a lie' });
  svc.handle('access.shop.secret.>', (p) => ({ result: { get: p.token?.user === 'alice' } }));
  svc.handle('call.shop.book.*.set', (p) => ({ result: { ok: true, got: p.params } }));
  svc.handle('auth.auth.user.login', (p) => {
    svc.nc.publish(`conn.${p.cid}.token`, enc.encode(JSON.stringify({ token: { user: p.params.name } })));
    return { result: { user: p.params.name } };
  });
});

beforeEach(() => {
  env.svc.requests.length = 0;
});

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await env?.close();
});

describe('ResClient against resgraph', () => {
  it('gets a model with its references, and follows change events', async () => {
    const c = client();
    const book: any = await c.get('shop.book.1');
    expect(book.title).toBe('Dune');
    expect(book.author.name).toBe('Frank');
    const changed = next(book, 'change');
    await env.svc.change('shop.book.1', { title: 'Dune Messiah' });
    expect(await changed).toEqual({ title: 'Dune' });
    expect(book.title).toBe('Dune Messiah');
    // a change to a new reference brings the referenced resource with it
    const moved = next(book, 'change');
    await env.svc.change('shop.book.1', { author: { rid: 'shop.author.2' } });
    await moved;
    expect(book.author.name).toBe('Jane');
    await env.svc.change('shop.book.1', { title: 'Dune', author: { rid: 'shop.author.1' } });
  });

  it('gets a collection of references, and follows add and remove events', async () => {
    const c = client();
    const books: any = await c.get('shop.books');
    expect(books.toArray().map((b: any) => b.title)).toEqual(['Dune']);
    const added = next(books, 'add');
    await env.svc.add('shop.books', { rid: 'shop.book.2' }, 1);
    expect((await added).idx).toBe(1);
    expect(books.toArray().map((b: any) => [b.title, b.author.name])).toEqual([['Dune', 'Frank'], ['Emma', 'Jane']]);
    const removed = next(books, 'remove');
    await env.svc.remove('shop.books', 0);
    expect((await removed).idx).toBe(0);
    expect(books.toArray().map((b: any) => b.title)).toEqual(['Emma']);
    await env.svc.remove('shop.books', 0);
    await env.svc.add('shop.books', { rid: 'shop.book.1' }, 0);
  });

  it('calls a method', async () => {
    const c = client();
    expect(await c.call('shop.book.1', 'set', { title: 'x' })).toEqual({ ok: true, got: { title: 'x' } });
    const [req] = env.svc.seen('call.shop.book.1.set');
    expect(req.payload.isHttp).toBeUndefined();
    await expect(c.call('shop.book.1', 'nothing')).rejects.toMatchObject({ code: 'system.methodNotFound' });
  });

  it('authenticates, and loses access on reaccess', async () => {
    const c = client();
    await expect(c.get('shop.secret.1')).rejects.toMatchObject({ code: 'system.accessDenied' });
    expect(await c.authenticate('auth.user', 'login', { name: 'alice' })).toEqual({ user: 'alice' });
    const secret: any = await c.get('shop.secret.1');
    expect(secret.text).toBe('the cake is a lie');
    const gone = next(secret, 'unsubscribe');
    env.svc.handle('access.shop.secret.>', () => ({ result: { get: false } }));
    await env.svc.event('shop.secret.1', 'reaccess');
    // ResClient tells that the subscription ended, not why; the gateway sent system.accessDenied (res-ws-differential.test.ts compares the event)
    expect((await gone).item).toBe(secret);
    env.svc.handle('access.shop.secret.>', (p) => ({ result: { get: p.token?.user === 'alice' } }));
  });

  it('reconnects to another gateway after a drain and picks up its resources there', async () => {
    const other = await startTestGateway(env.nats.url, sdl);
    let url = resUrl(other.url);
    const c = new ResClient(() => resSocket(url), { reconnectDelay: 50 });
    clients.push(c);
    try {
      const book: any = await c.get('shop.book.2');
      // ResClient resubscribes after a reconnect only what someone listens to
      const listener = () => undefined;
      book.on('change', listener);
      const connected = next(c, 'connect');
      // earlier tests' clients may hold it on this gateway too: the resubscription adds one holder
      // (internal on purpose: the access request of the resubscription comes before the gateway holds the
      // resource, and only the cache says when it does)
      const heldBefore = env.gw.cache.holdsOf('shop.book.2');
      url = resUrl(env.gw.url);
      await other.drain();
      await connected;
      // resubscribed on the gateway it reconnected to: changes come through there
      await waitFor(() => env.gw.cache.holdsOf('shop.book.2') > heldBefore, 5000, 'the resubscription');
      await env.svc.change('shop.book.2', { title: 'Emma (again)' });
      await waitFor(() => book.title === 'Emma (again)', 5000, 'the change through the other gateway');
      book.off('change', listener);
    } finally {
      await other.close();
    }
  });

  it('shares one cache with GraphQL: a subscription and a ResClient on one resource cost one get', async () => {
    env.svc.model('shop.book.9', { title: 'Shared', author: { rid: 'shop.author.1' } });
    const gql = wsClient(env.gw.url);
    try {
      const s = subscribeWs(gql, 'subscription { book(id: "9") { title } }');
      expect(await s.next()).toEqual({ data: { book: { title: 'Shared' } } });
      const book: any = await client().get('shop.book.9');
      expect(book.title).toBe('Shared');
      expect(env.svc.count('get.shop.book.9')).toBe(1);
      s.dispose();
    } finally {
      await gql.dispose();
    }
  });
});

describe('the RES WebSocket endpoint', () => {
  /** Opens a raw socket and resolves with the upgrade's response: its status and headers. */
  function upgrade(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string; ws?: WebSocket }> {
    return withTimeout(
      new Promise((resolve, reject) => {
        const ws = new WebSocket(url, { headers });
        ws.once('upgrade', (res) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '', ws }));
        ws.once('unexpected-response', (_req, res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        });
        ws.once('error', (e) => reject(e));
      }),
      3000,
      'the upgrade response',
    );
  }

  it('runs header auth before the upgrade: its meta headers are on the upgrade response, its 4XX status refuses it', async () => {
    const authed = await startTestGateway(env.nats.url, sdl, { headerAuth: 'session.cookie' });
    env.svc.handle('auth.session.cookie', (p) => {
      if (p.header?.Cookie?.[0] === 'session=expired') {
        return { error: { code: 'session.expired', message: 'Expired' }, meta: { status: 401, header: { 'Set-Cookie': ['session=; Max-Age=0'] } } };
      }
      return { result: null, meta: { header: { 'Set-Cookie': ['seen=1'] } } };
    });
    try {
      const ok = await upgrade(resUrl(authed.url), { cookie: 'session=alice' });
      expect(ok.status).toBe(101);
      expect(ok.headers['set-cookie']).toEqual(['seen=1']);
      const [req] = env.svc.seen('auth.session.cookie');
      expect(req.payload).toMatchObject({ isHttp: true, header: { Cookie: ['session=alice'] } });
      ok.ws!.terminate();

      const refused = await upgrade(resUrl(authed.url), { cookie: 'session=expired' });
      expect(refused.status).toBe(401);
      expect(refused.headers['set-cookie']).toEqual(['session=; Max-Age=0']);
      expect(JSON.parse(refused.body)).toEqual({ code: 'session.expired', message: 'Expired' });
      expect(authed.connections.size).toBe(0);
    } finally {
      await authed.close();
    }
  });

  it('refuses a page of another origin with 403 before any service is asked', async () => {
    const out = await upgrade(resUrl(env.gw.url), { origin: 'https://evil.example' });
    expect(out.status).toBe(403);
    expect(env.svc.requests).toEqual([]);
  });

  it('moves with resWsPath: the old path is refused', async () => {
    const moved = await startTestGateway(env.nats.url, sdl, { resWsPath: '/res' });
    try {
      expect((await upgrade(resUrl(moved.url))).status).toBe(400);
      const c = client(resUrl(moved.url).replace(/\/$/, '/res'));
      expect(((await c.get('shop.author.2')) as { name: string }).name).toBe('Jane');
    } finally {
      await moved.close();
    }
  });

  it('counts as a res connection, limits direct subscriptions as GraphQL live subscriptions are limited, and lets go of everything on close', async () => {
    const small = await startTestGateway(env.nats.url, sdl, { maxSubscriptionsPerConnection: 1 });
    try {
      const c = client(resUrl(small.url));
      await c.get('shop.book.1');
      await expect(c.get('shop.book.2')).rejects.toMatchObject({ code: 'system.limitExceeded' });
      expect(small.cache.holdsOf('shop.author.1')).toBe(1);
      expect((await scrape(small.metricsUrl!)).value('resgraph_connections', { transport: 'res' })).toBe(1);
      c.disconnect();
      await waitFor(() => small.connections.size === 0);
      expect(small.cache.holdsOf('shop.book.1')).toBe(0);
      expect(small.cache.holdsOf('shop.author.1')).toBe(0);
    } finally {
      await small.close();
    }
  });

  it('fills the {cid} tag in for the service and keeps it for the client', async () => {
    env.svc.handle('get.shop.user.*', (_p, subject) => ({ result: { model: { cid: subject.split('.')[3] } } }));
    const user = (await client().get('shop.user.{cid}')) as { cid: string; getResourceId(): string };
    expect(user.getResourceId()).toBe('shop.user.{cid}');
    const [access] = env.svc.seen(`access.shop.user.${user.cid}`);
    expect(access.payload.cid).toBe(user.cid);
  });

  it('sends an event with the resources it brings only to the clients that lack them, and the same event to the others', async () => {
    env.svc.model('shop.book.5', { title: 'Persuasion', author: { rid: 'shop.author.1' } });
    const url = resUrl(env.gw.url);
    const [holder, lacker, holder2] = await Promise.all([ResgateClient.connect(url), ResgateClient.connect(url), ResgateClient.connect(url)]);
    try {
      for (const c of [holder, lacker, holder2]) await c.subscribe('shop.book.5');
      await holder.subscribe('shop.author.2');
      await holder2.subscribe('shop.author.2');
      await env.svc.change('shop.book.5', { author: { rid: 'shop.author.2' } });
      await env.svc.change('shop.book.5', { title: 'Emma' });
      const events = await Promise.all([holder, lacker, holder2].map((c) => c.waitFor(() => c.events.length === 2 && c.events)));
      const moved = { event: 'shop.book.5.change', data: { values: { author: { rid: 'shop.author.2' } } } };
      const retitled = { event: 'shop.book.5.change', data: { values: { title: 'Emma' } } };
      expect(events[0]).toEqual([moved, retitled]);
      expect(events[2]).toEqual([moved, retitled]);
      expect(events[1]).toEqual([{ ...moved, data: { ...moved.data, models: { 'shop.author.2': { name: 'Jane' } } } }, retitled]);
    } finally {
      await Promise.all([holder, lacker, holder2].map((c) => c.close()));
    }
  });

  it('disconnects a client that stops reading its events once too much is unsent, while the others get every event', async () => {
    env.svc.model('shop.big.1', { text: '' });
    const url = resUrl(env.gw.url);
    const reader = await ResgateClient.connect(url);
    const stalled = new WebSocket(url);
    let stalledEvents = 0;
    stalled.on('message', (d) => void (String(d).startsWith('{"event"') && stalledEvents++));
    const closed = new Promise((resolve) => stalled.once('close', resolve));
    await new Promise((resolve) => stalled.once('open', resolve));
    const subscribed = new Promise((resolve) => stalled.once('message', resolve));
    stalled.send(JSON.stringify({ id: 1, method: 'subscribe.shop.big.1' }));
    await subscribed;
    await reader.subscribe('shop.big.1');
    const connections = env.gw.connections.size;
    stalled.pause();
    // 100 KB per event: past the 8 MiB the gateway keeps for a socket, and what the kernel buffers, within 300 events
    const events = 300;
    const chunk = 'x'.repeat(100_000);
    for (let i = 1; i <= events; i++) await env.svc.change('shop.big.1', { text: `${i} ${chunk}` });
    await reader.waitFor(() => reader.events.length === events, 15_000, 'every event at the reading client');
    expect(reader.events.map((e) => (e.data as { values: { text: string } }).values.text.split(' ')[0])).toEqual(
      Array.from({ length: events }, (_, i) => String(i + 1)),
    );
    await waitFor(() => env.gw.connections.size === connections - 1, 5000, 'the stalled client disconnected');
    expect(env.gw.logs.some((l) => l.msg.includes('does not read its events') && (l.fields?.unsentBytes as number) > 8 * 1024 * 1024)).toBe(true);
    stalled.resume();
    await withTimeout(closed, 5000, 'the stalled socket closed');
    expect(stalledEvents).toBeLessThan(events);
    await reader.close();
  });

  it('asks access again after a first login, and unsubscribes what the new token may not get (Resgate keeps the answers given for no token)', async () => {
    env.svc.model('shop.book.9', { title: 'Anonymous only' });
    env.svc.handle('access.shop.book.9', (p) => ({ result: { get: !p.token } }));
    env.svc.handle('auth.auth.user.firstlogin', (p) => {
      env.svc.nc.publish(`conn.${p.cid}.token`, enc.encode(JSON.stringify({ token: { user: 'eve' } })));
      return { result: null };
    });
    const c = await ResgateClient.connect(resUrl(env.gw.url));
    try {
      await c.subscribe('shop.book.9');
      const reasked = env.svc.nextRequest((r) => r.subject === 'access.shop.book.9' && r.payload?.token?.user === 'eve');
      await c.request('auth.auth.user.firstlogin');
      await reasked;
      const ev = await c.waitFor(() => c.events.find((e) => e.event === 'shop.book.9.unsubscribe'));
      expect(ev.data).toEqual({ reason: { code: 'system.accessDenied', message: 'Access denied' } });
    } finally {
      await c.close();
    }
  });

  it('answers system.tokenReset with an auth request for each RES connection holding the token id', async () => {
    env.svc.handle('auth.auth.user.tidlogin', (p) => {
      env.svc.nc.publish(`conn.${p.cid}.token`, enc.encode(JSON.stringify({ token: { user: 'bob' }, tid: 'bob-1' })));
      return { result: null };
    });
    const c = client();
    await c.authenticate('auth.user', 'tidlogin');
    const [login] = env.svc.seen('auth.auth.user.tidlogin');
    const refresh = env.svc.nextRequest('auth.auth.user.refresh');
    await env.svc.publish('system.tokenReset', { tids: ['bob-1'], subject: 'auth.auth.user.refresh' });
    expect((await refresh).payload).toMatchObject({ cid: login.payload.cid, token: { user: 'bob' } });
  });
});
