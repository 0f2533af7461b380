/**
 * The live engine's economy: events that arrive together make one run and
 * one result, and identical operations with equal tokens share one
 * execution whatever connection they come from.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAuthor, addBook, closeClients, startLiveEnv, type LiveEnv } from './helpers/live-fixture.js';
import { subscribeWs, wsClient } from './helpers/live-client.js';
import { liveCounts } from './helpers/metrics.js';
import { waitFor } from './helpers/wait.js';

let env: LiveEnv;
const enc = new TextEncoder();

beforeAll(async () => {
  env = await startLiveEnv();
  addAuthor(env.svc, 1, 'Herbert');
  for (let id = 1; id <= 6; id++) addBook(env.svc, id, `Book ${id}`, 1);
});

afterAll(async () => {
  await env?.close();
});

/** Publishes a change event without touching the store's flush, so several go out in one write. */
function publishChange(rid: string, values: Record<string, unknown>): void {
  const r = env.svc.resources.get(rid) as { model: Record<string, unknown> };
  Object.assign(r.model, values);
  env.svc.nc.publish(`event.${rid}.change`, enc.encode(JSON.stringify({ values })));
}

describe('coalescing', () => {
  it('turns three events that arrive together into exactly one new result', async () => {
    const { svc, gw } = env;
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 1) { title year author { name } } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 1', year: 1965, author: { name: 'Herbert' } } } });

    const before = (await liveCounts(gw)).updates;
    publishChange('library.book.1', { title: 'Dune' });
    publishChange('library.book.1', { year: 1966 });
    publishChange('library.author.1', { name: 'Frank Herbert' });
    await svc.nc.flush();
    expect(await s.next()).toEqual({ data: { book: { title: 'Dune', year: 1966, author: { name: 'Frank Herbert' } } } });
    expect((await liveCounts(gw)).updates - before).toBe(1);

    await svc.change('library.book.1', { title: 'Dune Messiah' });
    expect(await s.next()).toEqual({ data: { book: { title: 'Dune Messiah', year: 1966, author: { name: 'Frank Herbert' } } } });
    await closeClients(env.gw, client);
  });
});

describe('de-duplication', () => {
  it('runs two identical subscriptions on one connection once', async () => {
    const { svc, gw } = env;
    const client = wsClient(gw.url);
    const q = 'subscription { book(id: 2) { title } }';
    const before = await liveCounts(gw);
    const a = subscribeWs(client, q);
    expect(await a.next()).toEqual({ data: { book: { title: 'Book 2' } } });
    const b = subscribeWs(client, q);
    expect(await b.next()).toEqual({ data: { book: { title: 'Book 2' } } });
    expect((await liveCounts(gw)).updates - before.updates).toBe(1);
    expect(await liveCounts(gw)).toMatchObject({ liveQueries: before.liveQueries + 1, subscribers: before.subscribers + 2 });

    await svc.change('library.book.2', { title: 'Shared' });
    expect(await a.next()).toEqual({ data: { book: { title: 'Shared' } } });
    expect(await b.next()).toEqual({ data: { book: { title: 'Shared' } } });
    expect((await liveCounts(gw)).updates - before.updates).toBe(2);
    await closeClients(env.gw, client);
  });

  it('runs identical subscriptions of two connections without tokens once', async () => {
    const { svc, gw } = env;
    const c1 = wsClient(gw.url);
    const c2 = wsClient(gw.url);
    const q = 'subscription ($id: ID!) { book(id: $id) { title } }';
    const before = await liveCounts(gw);
    const a = subscribeWs(c1, q, { id: 3 });
    expect(await a.next()).toEqual({ data: { book: { title: 'Book 3' } } });
    const b = subscribeWs(c2, q, { id: 3 });
    expect(await b.next()).toEqual({ data: { book: { title: 'Book 3' } } });
    expect((await liveCounts(gw)).updates - before.updates).toBe(1);
    expect(await liveCounts(gw)).toMatchObject({ liveQueries: before.liveQueries + 1, subscribers: before.subscribers + 2 });

    await svc.change('library.book.3', { title: 'Shared by two' });
    expect(await a.next()).toEqual({ data: { book: { title: 'Shared by two' } } });
    expect(await b.next()).toEqual({ data: { book: { title: 'Shared by two' } } });
    expect((await liveCounts(gw)).updates - before.updates).toBe(2);
    await closeClients(env.gw, c1, c2);
  });

  it('runs identical subscriptions started at the same moment once', async () => {
    const { gw } = env;
    const c1 = wsClient(gw.url);
    const c2 = wsClient(gw.url);
    const q = 'subscription { book(id: 4) { title } }';
    const before = (await liveCounts(gw)).updates;
    const a = subscribeWs(c1, q);
    const b = subscribeWs(c2, q);
    expect(await a.next()).toEqual({ data: { book: { title: 'Book 4' } } });
    expect(await b.next()).toEqual({ data: { book: { title: 'Book 4' } } });
    expect((await liveCounts(gw)).updates - before).toBe(1);
    await closeClients(env.gw, c1, c2);
  });

  it('runs subscriptions with different variables separately', async () => {
    const { svc, gw } = env;
    const client = wsClient(gw.url);
    const q = 'subscription ($id: ID!) { book(id: $id) { title } }';
    const before = (await liveCounts(gw)).liveQueries;
    const a = subscribeWs(client, q, { id: 5 });
    const b = subscribeWs(client, q, { id: 6 });
    expect(await a.next()).toEqual({ data: { book: { title: 'Book 5' } } });
    expect(await b.next()).toEqual({ data: { book: { title: 'Book 6' } } });
    expect((await liveCounts(gw)).liveQueries - before).toBe(2);

    await svc.change('library.book.6', { title: 'Only six' });
    expect(await b.next()).toEqual({ data: { book: { title: 'Only six' } } });
    await svc.change('library.book.5', { title: 'Now five' });
    expect(await a.next()).toEqual({ data: { book: { title: 'Now five' } } });
    await closeClients(env.gw, client);
  });

  it('forgets a shared live query when its last subscriber leaves', async () => {
    const { gw } = env;
    const c1 = wsClient(gw.url);
    const c2 = wsClient(gw.url);
    const q = 'subscription { book(id: 1) { id } }';
    const a = subscribeWs(c1, q);
    const b = subscribeWs(c2, q);
    await a.next();
    await b.next();
    const stats = (await liveCounts(gw));
    a.dispose();
    await waitFor(async () => (await liveCounts(gw)).subscribers === stats.subscribers - 1, 2000, 'the first subscriber to leave');
    expect((await liveCounts(gw)).liveQueries).toBe(stats.liveQueries);
    b.dispose();
    await waitFor(async () => (await liveCounts(gw)).liveQueries === stats.liveQueries - 1, 2000, 'the live query to go');
    await closeClients(env.gw, c1, c2);
  });

  it('does not share a per-connection ({cid}) resource between connections with equal tokens', async () => {
    const { svc, gw } = env;
    const users = new Map<string, string>();
    svc.handle('get.session.*', (_p, subject) => {
      const cid = subject.split('.')[2];
      return { result: { model: { user: users.get(cid) ?? null } } };
    });
    svc.handle('access.session.*', (p, subject) => {
      // each connection may see only its own session
      const cid = subject.split('.')[2];
      if (!users.has(cid)) users.set(cid, `user ${users.size + 1}`);
      return { result: { get: p.cid === cid } };
    });
    const c1 = wsClient(gw.url);
    const c2 = wsClient(gw.url);
    const q = 'subscription { session { user } }';
    const a = subscribeWs(c1, q);
    expect(await a.next()).toEqual({ data: { session: { user: 'user 1' } } });
    const b = subscribeWs(c2, q);
    expect(await b.next()).toEqual({ data: { session: { user: 'user 2' } } });
    await closeClients(gw, c1, c2);
  });
});
