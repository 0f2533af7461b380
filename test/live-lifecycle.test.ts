/**
 * How live results end: a deleted root resource ends the stream with
 * system.notFound; a client that leaves (unsubscribes, closes its WebSocket,
 * aborts its SSE request) lets go of everything it held, so with a short
 * evict delay the cache and the live engine return to empty.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAuthor, addBook, closeClients, startLiveEnv, type LiveEnv } from './helpers/live-fixture.js';
import { subscribeSse, subscribeWs, wsClient } from './helpers/live-client.js';
import { gql } from './helpers/gateway.js';
import { liveCounts, metric, scrape } from './helpers/metrics.js';
import { waitFor } from './helpers/wait.js';

let env: LiveEnv;

beforeAll(async () => {
  env = await startLiveEnv({ evictDelay: 200 });
  addAuthor(env.svc, 1, 'Herbert');
  for (let id = 1; id <= 9; id++) addBook(env.svc, id, `Book ${id}`, 1);
});

afterAll(async () => {
  await env?.close();
});

/** Waits until the gateway's /metrics show it holds nothing: no live queries, no cache entries, no NATS event subscriptions. */
async function expectEmpty(): Promise<void> {
  const { gw } = env;
  const cache = async () => {
    const m = await scrape(gw.metricsUrl!);
    return { entries: m.sum('resgraph_cache_entries'), subscriptions: m.sum('resgraph_cache_subscriptions') };
  };
  await waitFor(async () => {
    const live = await liveCounts(gw);
    return live.liveQueries === 0 && live.subscribers === 0;
  }, 3000, 'the live engine to be empty');
  await waitFor(async () => {
    const c = await cache();
    return c.entries === 0 && c.subscriptions === 0;
  }, 3000, 'the cache to be empty');
  expect(await liveCounts(gw)).toMatchObject({ liveQueries: 0, subscribers: 0 });
}

describe('ending live results', () => {
  it('ends the subscription with system.notFound when its root resource is deleted', async () => {
    const { svc, gw } = env;
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 1) { title author { name } } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 1', author: { name: 'Herbert' } } } });

    svc.resources.delete('library.book.1');
    await svc.event('library.book.1', 'delete');
    const r = await s.next();
    expect(r.errors?.map((e) => e.extensions?.code)).toEqual(['system.notFound']);
    await s.completed;
    expect(s.error).toBeUndefined();
    expect(s.pending).toBe(0);
    await closeClients(gw, client);
    await expectEmpty();
  });

  it('goes on when a referenced resource is deleted, showing it as not found', async () => {
    const { svc, gw } = env;
    addAuthor(svc, 2, 'Gone Soon');
    addBook(svc, 2, 'Book 2', 2);
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 2) { title author { name } } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 2', author: { name: 'Gone Soon' } } } });

    svc.resources.delete('library.author.2');
    await svc.event('library.author.2', 'delete');
    const r = await s.next();
    expect(r.data).toEqual({ book: { title: 'Book 2', author: null } });
    expect(r.errors?.map((e) => [e.path, e.extensions?.code])).toEqual([[['book', 'author'], 'system.notFound']]);
    await svc.change('library.book.2', { title: 'Orphan' });
    expect((await s.next()).data).toEqual({ book: { title: 'Orphan', author: null } });
    await closeClients(gw, client);
    await expectEmpty();
  });

  it('releases everything a WebSocket client held when it disconnects', async () => {
    const { gw } = env;
    const client = wsClient(gw.url);
    const a = subscribeWs(client, 'subscription { book(id: 3) { title author { name } tags } }');
    const b = subscribeWs(client, 'subscription { book(id: 4) { title } }');
    await a.next();
    await b.next();
    expect(await metric(gw, 'resgraph_cache_entries')).toBeGreaterThanOrEqual(4);
    expect(await liveCounts(gw)).toMatchObject({ liveQueries: 2, subscribers: 2 });

    await client.dispose();
    await expectEmpty();
    await waitFor(async () => (await metric(gw, 'resgraph_connections')) === 0, 2000, 'the connection to be forgotten');
  });

  it('releases what one subscription held when it is stopped, keeping the connection\'s others', async () => {
    const { svc, gw } = env;
    addAuthor(svc, 5, 'Only Five');
    addBook(svc, 5, 'Book 5', 5);
    const client = wsClient(gw.url);
    const a = subscribeWs(client, 'subscription { book(id: 5) { title author { name } } }');
    const b = subscribeWs(client, 'subscription { book(id: 6) { title } }');
    await a.next();
    await b.next();

    a.dispose();
    // book 5 and its author go; book 6, which the other subscription holds, stays
    await waitFor(async () => (await metric(gw, 'resgraph_cache_entries')) === 1, 3000, 'book 5 and its author to be evicted');
    expect(await liveCounts(gw)).toMatchObject({ liveQueries: 1, subscribers: 1 });
    await svc.change('library.book.6', { title: 'Still live' });
    expect(await b.next()).toEqual({ data: { book: { title: 'Still live' } } });
    expect(svc.count('get.library.book.6')).toBe(1);
    const gets = svc.count('get.library.book.5');
    expect((await gql(gw.url, '{ book(id: 5) { title } }')).data).toEqual({ book: { title: 'Book 5' } });
    expect(svc.count('get.library.book.5')).toBe(gets + 1);
    await client.dispose();
    await expectEmpty();
  });

  it('releases everything an SSE client held when it disconnects', async () => {
    const { gw } = env;
    const s = subscribeSse(gw.url, 'subscription { book(id: 7) { title author { name } } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 7', author: { name: 'Herbert' } } } });
    expect(await liveCounts(gw)).toMatchObject({ liveQueries: 1, subscribers: 1 });
    s.dispose();
    await expectEmpty();
    await waitFor(async () => (await metric(gw, 'resgraph_connections')) === 0, 2000, 'the connection to be forgotten');
  });
});
