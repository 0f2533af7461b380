/**
 * Limits: a connection may hold only so many live subscriptions (the next
 * one gets a system.limitExceeded error while the others keep working), and
 * an operation selecting deeper than the configured depth is refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAuthor, addBook, closeClients, startLiveEnv, type LiveEnv } from './helpers/live-fixture.js';
import { subscribeSse, subscribeWs, wsClient } from './helpers/live-client.js';
import { gql } from './helpers/gateway.js';
import { liveCounts } from './helpers/metrics.js';
import { waitFor } from './helpers/wait.js';

let env: LiveEnv;

beforeAll(async () => {
  env = await startLiveEnv({ maxSubscriptionsPerConnection: 2, maxDepth: 3 });
  addAuthor(env.svc, 1, 'Herbert');
  for (let id = 1; id <= 6; id++) addBook(env.svc, id, `Book ${id}`, 1);
});

afterAll(async () => {
  await env?.close();
});

const bookTitle = 'subscription ($id: ID!) { book(id: $id) { title } }';
/** book → author → books → title: four levels, one more than allowed */
const tooDeep = '{ book(id: 1) { author { books { title } } } }';

describe('subscriptions per connection', () => {
  it('refuses a subscription beyond the limit with system.limitExceeded, and keeps the others working', async () => {
    const { svc, gw } = env;
    const client = wsClient(gw.url);
    const a = subscribeWs(client, bookTitle, { id: 1 });
    const b = subscribeWs(client, bookTitle, { id: 2 });
    expect(await a.next()).toEqual({ data: { book: { title: 'Book 1' } } });
    expect(await b.next()).toEqual({ data: { book: { title: 'Book 2' } } });

    const c = subscribeWs(client, bookTitle, { id: 3 });
    const refused = await c.next();
    expect(refused.data ?? null).toBeNull();
    expect(refused.errors?.map((e) => e.extensions?.code)).toEqual(['system.limitExceeded']);
    expect(refused.errors?.[0].message).toMatch(/at most 2/);
    await c.completed;
    expect((await liveCounts(gw)).subscribers).toBe(2);

    await svc.change('library.book.1', { title: 'One still live' });
    expect(await a.next()).toEqual({ data: { book: { title: 'One still live' } } });
    await svc.change('library.book.2', { title: 'Two still live' });
    expect(await b.next()).toEqual({ data: { book: { title: 'Two still live' } } });
    await closeClients(gw, client);
  });

  it('frees a place when a subscription ends', async () => {
    const { gw } = env;
    const client = wsClient(gw.url);
    const a = subscribeWs(client, bookTitle, { id: 4 });
    const b = subscribeWs(client, bookTitle, { id: 5 });
    await a.next();
    await b.next();
    a.dispose();
    await waitFor(async () => (await liveCounts(gw)).subscribers === 1, 2000, 'the first subscription to end');
    const c = subscribeWs(client, bookTitle, { id: 6 });
    expect(await c.next()).toEqual({ data: { book: { title: 'Book 6' } } });
    await closeClients(gw, client);
  });

  it('counts per connection: another connection has its own allowance', async () => {
    const { gw } = env;
    const c1 = wsClient(gw.url);
    const c2 = wsClient(gw.url);
    const a = subscribeWs(c1, bookTitle, { id: 4 });
    const b = subscribeWs(c1, bookTitle, { id: 5 });
    await a.next();
    await b.next();
    const c = subscribeWs(c2, bookTitle, { id: 6 });
    expect(await c.next()).toEqual({ data: { book: { title: 'Book 6' } } });
    await closeClients(gw, c1, c2);
  });
});

describe('depth limit', () => {
  it('rejects a too-deep query over HTTP with a clear error', async () => {
    const r = await gql(env.gw.url, tooDeep);
    expect(r.data).toBeUndefined();
    expect(r.errors?.[0].message).toMatch(/depth/i);
  });

  it('rejects a too-deep subscription over graphql-ws with a clear error, keeping the connection\'s others', async () => {
    const { svc, gw } = env;
    const client = wsClient(gw.url);
    const ok = subscribeWs(client, bookTitle, { id: 1 });
    await ok.next();
    const before = (await liveCounts(gw)).updates;
    const s = subscribeWs(client, `subscription ${tooDeep}`);
    await s.completed;
    const errors = s.error as { message: string }[];
    expect(Array.isArray(errors)).toBe(true);
    expect(errors[0].message).toMatch(/depth limit of 3/i);
    expect((await liveCounts(gw)).updates).toBe(before);

    await svc.change('library.book.1', { title: 'Socket still open' });
    expect(await ok.next()).toEqual({ data: { book: { title: 'Socket still open' } } });
    await closeClients(gw, client);
  });

  it('rejects a too-deep subscription over SSE with a clear error', async () => {
    const s = subscribeSse(env.gw.url, `subscription ${tooDeep}`);
    const r = await s.next();
    expect(r.errors?.[0].message).toMatch(/depth/i);
  });

  it('accepts a query at the depth limit', async () => {
    const r = await gql(env.gw.url, '{ book(id: 1) { author { name } } }');
    expect(r).toEqual({ data: { book: { author: { name: 'Herbert' } } } });
  });
});
