/**
 * One client lifecycle on every transport (GraphQL over HTTP by the fast
 * path and by Yoga, graphql-ws, graphql-sse's single connection, Resgate's
 * HTTP API and the RES client protocol): header auth runs once per client
 * connection, for the very connection (cid) the operations then run as, and
 * once a request is answered or a client goes, the gateway lets go of it:
 * no connection left open, and, after the short evict delay, nothing left
 * in the cache (a lease never released would keep its resources for ever).
 */
import { createClient as createSseClient } from 'graphql-sse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAuthor, addBook, closeClients, startLiveEnv, type LiveEnv } from './helpers/live-fixture.js';
import { subscribeWs, wsClient, ResultStream, type StreamResult } from './helpers/live-client.js';
import { gql } from './helpers/gateway.js';
import { scrape } from './helpers/metrics.js';
import { ResgateClient } from './helpers/resgate.js';
import { waitFor } from './helpers/wait.js';

let env: LiveEnv;

beforeAll(async () => {
  env = await startLiveEnv({ evictDelay: 100, headerAuth: 'session.header' });
  env.svc.handle('auth.session.header', () => ({ result: null }));
  addAuthor(env.svc, 1, 'Herbert');
  for (let id = 1; id <= 9; id++) addBook(env.svc, id, `Book ${id}`, 1);
});

afterAll(async () => {
  await env?.close();
});

/** The cids header auth ran for since `from` (an index into the service's auth requests). */
function authCidsSince(from: number): string[] {
  return env.svc.seen('auth.session.header').slice(from).map((r) => r.payload.cid as string);
}

/** The cids that asked access to a book. */
function accessCids(id: number): string[] {
  return env.svc.seen(`access.library.book.${id}`).map((r) => r.payload.cid as string);
}

/** Waits until the gateway holds no connection, no cache entry and no NATS event subscription. */
async function expectLetGo(): Promise<void> {
  const url = env.gw.metricsUrl!;
  const held = async () => {
    const m = await scrape(url);
    return { connections: m.sum('resgraph_connections'), entries: m.sum('resgraph_cache_entries'), subscriptions: m.sum('resgraph_cache_subscriptions') };
  };
  await waitFor(async () => {
    const h = await held();
    return h.connections === 0 && h.entries === 0 && h.subscriptions === 0;
  }, 3000, 'the gateway to let go of the client');
}

const auths = () => env.svc.count('auth.session.header');

describe('one client lifecycle on every transport', { timeout: 20_000 }, () => {
  it('a JSON POST query (the fast path): authenticated as its own connection, let go once answered', async () => {
    const before = auths();
    expect(await gql(env.gw.url, '{ book(id: 1) { title author { name } } }')).toEqual({ data: { book: { title: 'Book 1', author: { name: 'Herbert' } } } });
    expect(authCidsSince(before)).toEqual(accessCids(1));
    await expectLetGo();
  });

  it('a GET query (Yoga\'s path): authenticated as its own connection, let go once answered', async () => {
    const before = auths();
    const res = await fetch(`${env.gw.url}?query=${encodeURIComponent('{ book(id: 2) { title author { name } } }')}`, {
      headers: { accept: 'application/json', 'x-graphql-yoga-csrf': '1' },
    });
    expect(await res.json()).toEqual({ data: { book: { title: 'Book 2', author: { name: 'Herbert' } } } });
    expect(authCidsSince(before)).toEqual(accessCids(2));
    await expectLetGo();
  });

  it('a graphql-ws socket: authenticated once, its query and live subscription as that connection, let go when it closes', async () => {
    const before = auths();
    const client = wsClient(env.gw.url);
    const query = subscribeWs(client, '{ book(id: 3) { title } }');
    expect(await query.next()).toEqual({ data: { book: { title: 'Book 3' } } });
    const live = subscribeWs(client, 'subscription { book(id: 4) { title author { name } } }');
    expect(await live.next()).toEqual({ data: { book: { title: 'Book 4', author: { name: 'Herbert' } } } });
    const [cid] = authCidsSince(before);
    expect(authCidsSince(before)).toEqual([cid]);
    expect([...accessCids(3), ...accessCids(4)]).toEqual([cid, cid]);
    await closeClients(env.gw, client);
    await expectLetGo();
  });

  it('a graphql-sse reservation: authenticated once, its operations as that connection, let go when its stream closes', async () => {
    const before = auths();
    const client = createSseClient({ url: env.gw.url, singleConnection: true, lazy: false, retryAttempts: 0 });
    const stream = (query: string) => {
      const s = new ResultStream<StreamResult>();
      s.dispose = client.subscribe({ query }, { next: (r) => s.push(r as StreamResult), error: (e) => s.end(e), complete: () => s.end() });
      return s;
    };
    const query = stream('{ book(id: 5) { title } }');
    expect(await query.next()).toEqual({ data: { book: { title: 'Book 5' } } });
    const live = stream('subscription { book(id: 6) { title author { name } } }');
    expect(await live.next()).toEqual({ data: { book: { title: 'Book 6', author: { name: 'Herbert' } } } });
    const [cid] = authCidsSince(before);
    expect(authCidsSince(before)).toEqual([cid]);
    expect([...accessCids(5), ...accessCids(6)]).toEqual([cid, cid]);
    client.dispose();
    await expectLetGo();
  });

  it('a Resgate HTTP API request: authenticated as its own connection, let go once answered', async () => {
    const before = auths();
    const res = await fetch(env.gw.url.replace(/\/graphql$/, '/api/library/book/7'));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ title: 'Book 7', author: { href: '/api/library/author/1', model: { name: 'Herbert' } } });
    expect(authCidsSince(before)).toEqual(accessCids(7));
    await expectLetGo();
  });

  it('a RES client protocol socket: authenticated at the upgrade, its subscriptions as that connection, let go when it closes', async () => {
    const before = auths();
    const client = await ResgateClient.connect(env.gw.url.replace(/^http/, 'ws').replace(/\/graphql$/, '/'));
    await client.subscribe('library.book.8');
    await client.subscribe('library.book.9');
    expect(client.models.get('library.book.8')).toMatchObject({ title: 'Book 8' });
    const [cid] = authCidsSince(before);
    expect(authCidsSince(before)).toEqual([cid]);
    expect([...accessCids(8), ...accessCids(9)]).toEqual([cid, cid]);
    await client.close();
    await expectLetGo();
  });
});
