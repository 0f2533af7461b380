/**
 * Conformance: the resource cache. One pending get per rid, serving from
 * the cache, delayed eviction that drops the NATS event subscription, and
 * failed gets that are not kept.
 *
 * What the service is asked and /metrics are the assertions; a few steps
 * reach into the cache on purpose: a Lease holds resources so the short evict
 * delay cannot race an assertion, and `holdsOf` tells when a second request
 * waits on the same unanswered get, which nothing outside shows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestService } from './helpers/res-service.js';
import { startTestEnv, type TestEnv } from './helpers/env.js';
import { gql, type TestGateway } from './helpers/gateway.js';
import { librarySdl } from './helpers/sdl.js';
import { gate, waitFor } from './helpers/wait.js';

let env: TestEnv;
let svc: TestService;
/** evicts after 100 ms, so eviction can be awaited quickly */
let gw: TestGateway;

beforeAll(async () => {
  env = await startTestEnv(librarySdl, { evictDelay: 100 });
  ({ svc, gw } = env);
});

afterAll(async () => {
  await env?.close();
});

describe('cache', () => {
  it('sends one get for two concurrent queries of one rid', async () => {
    svc.model('library.book.1', { title: 'One' });
    const g = gate();
    svc.handle('get.library.book.1', async () => {
      await g.promise;
      return { result: { model: { title: 'One' } } };
    });
    const q1 = gql(gw.url, '{ book(id: 1) { title } }');
    const q2 = gql(gw.url, '{ book(id: 1) { title } }');
    // both executions hold the rid (they hold it right before loading it), while the get is still unanswered
    await waitFor(() => gw.cache.holdsOf('library.book.1') === 2, 2000, 'both queries to load the book');
    g.open();
    expect(await q1).toEqual({ data: { book: { title: 'One' } } });
    expect(await q2).toEqual({ data: { book: { title: 'One' } } });
    expect(svc.count('get.library.book.1')).toBe(1);
  });

  it('sends one get for two root fields on one rid in one operation', async () => {
    svc.model('library.book.2', { title: 'Two' });
    const r = await gql(gw.url, '{ a: book(id: 2) { title } b: book(id: 2) { id } }');
    expect(r).toEqual({ data: { a: { title: 'Two' }, b: { id: 'library.book.2' } } });
    expect(svc.count('get.library.book.2')).toBe(1);
  });

  it('sends no get for a cached rid', async () => {
    svc.model('library.book.3', { title: 'Three' });
    const lease = gw.cache.newLease();
    lease.hold('library.book.3'); // keeps it cached regardless of the short evict delay
    try {
      await gql(gw.url, '{ book(id: 3) { title } }');
      const r = await gql(gw.url, '{ book(id: 3) { title } }');
      expect(r).toEqual({ data: { book: { title: 'Three' } } });
      expect(svc.count('get.library.book.3')).toBe(1);
    } finally {
      lease.release();
    }
  });

  it('evicts an unused resource after the delay, drops its event subscription, and gets it again on the next query', async () => {
    await waitFor(() => gw.cache.stats.subscriptions === 0, 2000, 'earlier entries to be evicted');
    svc.model('library.book.4', { title: 'Four', author: { rid: 'library.author.4' } });
    svc.model('library.author.4', { name: 'A' });
    // held while we look at the stats, so the short delay cannot race the assertions
    const lease = gw.cache.newLease();
    lease.hold('library.book.4');
    lease.hold('library.author.4');
    const r = await gql(gw.url, '{ book(id: 4) { title author { name } } }');
    expect(r.errors).toBeUndefined();
    expect(gw.cache.stats.entries).toBe(2);
    expect(gw.cache.stats.subscriptions).toBe(2);
    lease.release();
    await waitFor(() => gw.cache.stats.entries === 0 && gw.cache.stats.subscriptions === 0, 2000, 'eviction');
    expect(gw.cache.stats.held).toBe(0);
    // events for an evicted resource are no longer received (its subscription is gone)
    expect(gw.cache.peek('library.book.4')).toBeUndefined();

    const r2 = await gql(gw.url, '{ book(id: 4) { title } }');
    expect(r2).toEqual({ data: { book: { title: 'Four' } } });
    expect(svc.count('get.library.book.4')).toBe(2);
    expect(svc.count('get.library.author.4')).toBe(1);
    await waitFor(() => gw.cache.stats.subscriptions === 0, 2000, 'eviction');
  });

  it('keeps a held resource past the evict delay', async () => {
    svc.model('library.book.5', { title: 'Five' });
    const lease = gw.cache.newLease();
    lease.hold('library.book.5');
    await gw.cache.load('library.book.5');
    // another entry, loaded at the same time and not held, is evicted: by then the held one would be too
    svc.model('library.book.6', { title: 'Six' });
    await gw.cache.load('library.book.6');
    await waitFor(() => gw.cache.peek('library.book.6') === undefined, 2000, 'eviction of the unheld entry');
    expect(gw.cache.peek('library.book.5')?.value).toEqual({ title: 'Five' });
    lease.release();
    await waitFor(() => gw.cache.peek('library.book.5') === undefined, 2000, 'eviction after release');
  });

  it('does not keep a failed get: the next query asks the service again', async () => {
    const r = await gql(gw.url, '{ book(id: 7) { title } }');
    expect(r.errors![0].extensions?.code).toBe('system.notFound');
    expect(gw.cache.stats.entries).toBe(0);
    svc.model('library.book.7', { title: 'Seven' });
    const r2 = await gql(gw.url, '{ book(id: 7) { title } }');
    expect(r2).toEqual({ data: { book: { title: 'Seven' } } });
    expect(svc.count('get.library.book.7')).toBe(2);
  });

  it('shares one event subscription between a resource and its queries, and drops it with the last entry', async () => {
    await waitFor(() => gw.cache.stats.subscriptions === 0, 2000, 'earlier entries to be evicted');
    svc.collection('library.books', []);
    svc.collection('library.books?text=a&limit=20', []);
    svc.collection('library.books?text=b&limit=20', []);
    const lease = gw.cache.newLease();
    for (const rid of ['library.books', 'library.books?text=a&limit=20', 'library.books?text=b&limit=20']) lease.hold(rid);
    const r = await gql(gw.url, '{ books { title } a: search(text: "a") { title } b: search(text: "b") { title } }');
    expect(r.errors).toBeUndefined();
    expect(gw.cache.stats.entries).toBe(3);
    expect(gw.cache.stats.subscriptions).toBe(1);
    lease.release();
    await waitFor(() => gw.cache.stats.entries === 0 && gw.cache.stats.subscriptions === 0, 2000, 'eviction');
  });
});
