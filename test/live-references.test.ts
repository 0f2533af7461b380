/**
 * References that appear and disappear: when a change points a property at
 * another resource, the live result follows the new one (fetched, held,
 * watched) and lets go of the old one (no longer watched, evicted after the
 * delay, here 200 ms, unless someone else holds it).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAuthor, addBook, closeClients, ref, startLiveEnv, type LiveEnv } from './helpers/live-fixture.js';
import { subscribeWs, wsClient } from './helpers/live-client.js';
import { gql } from './helpers/gateway.js';
import { liveCounts, metric } from './helpers/metrics.js';
import { waitFor } from './helpers/wait.js';

let env: LiveEnv;

beforeAll(async () => {
  env = await startLiveEnv({ evictDelay: 200 });
  for (let id = 1; id <= 8; id++) addAuthor(env.svc, id, `Author ${id}`);
  for (let id = 1; id <= 6; id++) addBook(env.svc, id, `Book ${id}`, id);
});

afterAll(async () => {
  await env?.close();
});

describe('references that change', () => {
  it('follows a swapped reference: shows the new author, pushes its changes and not the old one\'s', async () => {
    const { svc, gw } = env;
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 1) { title author { id name } } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 1', author: { id: 'library.author.1', name: 'Author 1' } } } });

    await svc.change('library.book.1', { author: ref('library.author.7') });
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 1', author: { id: 'library.author.7', name: 'Author 7' } } } });

    const before = (await liveCounts(gw)).updates;
    await svc.change('library.author.1', { name: 'Old author renamed' });
    await svc.change('library.author.7', { name: 'New author renamed' });
    // had the old author's change been pushed, it would come first
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 1', author: { id: 'library.author.7', name: 'New author renamed' } } } });
    // and it did not even make the query run again
    expect((await liveCounts(gw)).updates - before).toBe(1);
    await closeClients(gw, client);
  });

  it('lets go of the old referenced resource when nothing else holds it', async () => {
    const { svc, gw } = env;
    const entries = () => metric(gw, 'resgraph_cache_entries');
    // what earlier tests held is evicted first, so the count below is this test's alone
    await waitFor(async () => (await entries()) === 0, 3000, 'earlier entries to be evicted');
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 2) { author { name } } }');
    expect(await s.next()).toEqual({ data: { book: { author: { name: 'Author 2' } } } });
    expect(await entries()).toBe(2);

    await svc.change('library.book.2', { author: ref('library.author.8') });
    expect(await s.next()).toEqual({ data: { book: { author: { name: 'Author 8' } } } });
    await waitFor(async () => (await entries()) === 2, 3000, 'the old author to be evicted');
    // the old author is asked for again when read; the book and the new author are still cached
    const gets = (rid: string) => svc.count(`get.${rid}`);
    const before = [gets('library.author.2'), gets('library.author.8'), gets('library.book.2')];
    expect((await gql(gw.url, '{ author(id: 2) { name } book(id: 2) { author { name } } }')).data).toEqual({
      author: { name: 'Author 2' },
      book: { author: { name: 'Author 8' } },
    });
    expect([gets('library.author.2'), gets('library.author.8'), gets('library.book.2')]).toEqual([before[0] + 1, before[1], before[2]]);
    await closeClients(gw, client);
  });

  it('keeps an old referenced resource another subscription still shows', async () => {
    const { svc, gw } = env;
    const client = wsClient(gw.url);
    const book = subscribeWs(client, 'subscription { book(id: 3) { author { name } } }');
    const author = subscribeWs(client, 'subscription { author(id: 3) { name } }');
    expect(await book.next()).toEqual({ data: { book: { author: { name: 'Author 3' } } } });
    expect(await author.next()).toEqual({ data: { author: { name: 'Author 3' } } });

    await svc.change('library.book.3', { author: ref('library.author.4') });
    expect(await book.next()).toEqual({ data: { book: { author: { name: 'Author 4' } } } });
    const before = (await liveCounts(gw)).updates;
    await svc.change('library.author.3', { name: 'Still followed' });
    expect(await author.next()).toEqual({ data: { author: { name: 'Still followed' } } });
    // only the author's subscription ran again: the book's no longer watches the old author
    expect((await liveCounts(gw)).updates - before).toBe(1);
    await closeClients(gw, client);
  });

  it('shows null when a reference property is deleted, and follows one set again', async () => {
    const { svc, gw } = env;
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 5) { author { name } } }');
    expect(await s.next()).toEqual({ data: { book: { author: { name: 'Author 5' } } } });

    await svc.change('library.book.5', { author: { action: 'delete' } });
    expect(await s.next()).toEqual({ data: { book: { author: null } } });
    await svc.change('library.book.5', { author: ref('library.author.6') });
    expect(await s.next()).toEqual({ data: { book: { author: { name: 'Author 6' } } } });
    await svc.change('library.author.6', { name: 'Followed again' });
    expect(await s.next()).toEqual({ data: { book: { author: { name: 'Followed again' } } } });
    await closeClients(gw, client);
  });

  it('follows a soft reference that appears only after its own access check', async () => {
    const { svc, gw } = env;
    svc.accessRules.set('library.book.4', { get: false });
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 6) { title related { title } } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 6', related: null } } });

    const asked = svc.nextRequest('access.library.book.4');
    await svc.change('library.book.6', { related: { rid: 'library.book.4', soft: true } });
    await asked;
    const denied = await s.next();
    expect(denied.data).toEqual({ book: { title: 'Book 6', related: null } });
    expect(denied.errors?.map((e) => [e.path, e.extensions?.code])).toEqual([[['book', 'related'], 'system.accessDenied']]);
    expect(svc.count('get.library.book.4')).toBe(0);

    await svc.change('library.book.6', { related: { rid: 'library.book.1', soft: true } });
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 6', related: { title: 'Book 1' } } } });
    await closeClients(gw, client);
  });

  it('keeps a subscription whose soft reference is denied when its root is re-checked', async () => {
    const { svc, gw } = env;
    svc.accessRules.set('library.book.5', { get: false });
    svc.model('library.book.7', { title: 'Book 7', related: { rid: 'library.book.5', soft: true } });
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 7) { title related { title } } }');
    const first = await s.next();
    expect(first.data).toEqual({ book: { title: 'Book 7', related: null } });
    expect(first.errors?.map((e) => e.extensions?.code)).toEqual(['system.accessDenied']);

    // a re-check of the root, still granted, does not end the stream for the soft reference's sake
    const asked = svc.nextRequest('access.library.book.7');
    await svc.event('library.book.7', 'reaccess');
    await asked;
    await svc.change('library.book.7', { title: 'Still live' });
    const r = await s.next();
    expect(r.data).toEqual({ book: { title: 'Still live', related: null } });
    await closeClients(gw, client);
  });

  it('shows a soft reference once access to it is granted', async () => {
    const { svc, gw } = env;
    svc.accessRules.set('library.book.3', { get: false });
    svc.model('library.book.8', { title: 'Book 8', related: { rid: 'library.book.3', soft: true } });
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 8) { title related { id } } }');
    expect((await s.next()).errors?.map((e) => [e.path, e.extensions?.code])).toEqual([[['book', 'related'], 'system.accessDenied']]);

    svc.accessRules.delete('library.book.3');
    await svc.publish('system.reset', { access: ['library.book.3'] });
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 8', related: { id: 'library.book.3' } } } });
    await closeClients(gw, client);
  });
});
