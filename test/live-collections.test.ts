/**
 * Live results over collections: add and remove events update the list, a
 * newly referenced item is fetched with the fields the query selects, and
 * the resources of a removed item are let go (evicted after the cache's
 * delay, here 200 ms) while the rest stay cached.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAuthor, addBook, closeClients, ref, startLiveEnv, type LiveEnv } from './helpers/live-fixture.js';
import { subscribeWs, wsClient } from './helpers/live-client.js';
import { gate, nextEntryChange, waitFor } from './helpers/wait.js';

let env: LiveEnv;

beforeAll(async () => {
  env = await startLiveEnv({ evictDelay: 200 });
  addAuthor(env.svc, 1, 'Herbert');
  addAuthor(env.svc, 2, 'Le Guin');
  for (let id = 1; id <= 9; id++) addBook(env.svc, id, `Book ${id}`, id % 2 === 0 ? 2 : 1);
});

afterAll(async () => {
  await env?.close();
});

const shelfQuery = 'subscription ($id: ID!) { shelf(id: $id) { id title author { name } } }';
const item = (id: number) => ({ id: `library.book.${id}`, title: `Book ${id}`, author: { name: id % 2 === 0 ? 'Le Guin' : 'Herbert' } });

describe('collections of references', () => {
  it('adds a new item with the fields the query selects', async () => {
    const { svc, gw } = env;
    svc.collection('library.shelf.1', [ref('library.book.1')]);
    const client = wsClient(gw.url);
    const s = subscribeWs(client, shelfQuery, { id: 1 });
    expect(await s.next()).toEqual({ data: { shelf: [item(1)] } });
    expect(gw.cache.peek('library.book.2')).toBeUndefined();

    await svc.add('library.shelf.1', ref('library.book.2'), 0);
    expect(await s.next()).toEqual({ data: { shelf: [item(2), item(1)] } });
    // the new item is held and kept in sync like the others
    await svc.change('library.author.2', { name: 'Ursula' });
    expect(await s.next()).toEqual({ data: { shelf: [{ ...item(2), author: { name: 'Ursula' } }, item(1)] } });
    await svc.change('library.author.2', { name: 'Le Guin' });
    await s.next();
    await closeClients(gw, client);
  });

  it('removes an item and releases its resources while the rest stay cached', async () => {
    const { svc, gw } = env;
    svc.collection('library.shelf.2', [ref('library.book.3'), ref('library.book.4'), ref('library.book.5')]);
    const client = wsClient(gw.url);
    const s = subscribeWs(client, shelfQuery, { id: 2 });
    expect(await s.next()).toEqual({ data: { shelf: [item(3), item(4), item(5)] } });

    await svc.remove('library.shelf.2', 1);
    expect(await s.next()).toEqual({ data: { shelf: [item(3), item(5)] } });
    await waitFor(() => gw.cache.peek('library.book.4') === undefined, 3000, 'library.book.4 to be evicted');
    expect(gw.cache.peek('library.book.3')).toBeDefined();
    expect(gw.cache.peek('library.book.5')).toBeDefined();
    expect(gw.cache.peek('library.shelf.2')).toBeDefined();
    expect(gw.cache.peek('library.author.1')).toBeDefined();

    // the removed item is no longer watched: its changes make no result
    await svc.change('library.book.4', { title: 'Gone' });
    await svc.change('library.book.5', { title: 'Still here' });
    expect(await s.next()).toEqual({ data: { shelf: [item(3), { ...item(5), title: 'Still here' }] } });
    await closeClients(gw, client);
  });

  it('releases a referenced resource only the removed item used', async () => {
    const { svc, gw } = env;
    addAuthor(svc, 3, 'Banks');
    addBook(svc, 6, 'Book 6', 3);
    svc.collection('library.shelf.3', [ref('library.book.6'), ref('library.book.7')]);
    const client = wsClient(gw.url);
    const s = subscribeWs(client, shelfQuery, { id: 3 });
    expect(await s.next()).toEqual({ data: { shelf: [{ ...item(6), author: { name: 'Banks' } }, item(7)] } });

    await svc.remove('library.shelf.3', 0);
    expect(await s.next()).toEqual({ data: { shelf: [item(7)] } });
    await waitFor(() => !gw.cache.peek('library.book.6') && !gw.cache.peek('library.author.3'), 3000, 'book 6 and its author to be evicted');
    expect(gw.cache.peek('library.book.7')).toBeDefined();
    expect(gw.cache.peek('library.author.1')).toBeDefined();
    await closeClients(gw, client);
  });

  it('updates a collection of strings on add and remove', async () => {
    const { svc, gw } = env;
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 8) { tags } }');
    expect(await s.next()).toEqual({ data: { book: { tags: ['scifi'] } } });
    await svc.add('library.book.8.tags', 'classic', 1);
    expect(await s.next()).toEqual({ data: { book: { tags: ['scifi', 'classic'] } } });
    await svc.remove('library.book.8.tags', 0);
    expect(await s.next()).toEqual({ data: { book: { tags: ['classic'] } } });
    await closeClients(gw, client);
  });

  it('moves an item (remove then add) in one result when both events arrive together', async () => {
    const { svc, gw } = env;
    svc.collection('library.shelf.4', [ref('library.book.8'), ref('library.book.9')]);
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { shelf(id: 4) { id } }');
    expect(await s.next()).toEqual({ data: { shelf: [{ id: 'library.book.8' }, { id: 'library.book.9' }] } });
    const enc = new TextEncoder();
    svc.collection('library.shelf.4', [ref('library.book.9'), ref('library.book.8')]);
    svc.nc.publish('event.library.shelf.4.remove', enc.encode(JSON.stringify({ idx: 0 })));
    svc.nc.publish('event.library.shelf.4.add', enc.encode(JSON.stringify({ value: ref('library.book.8'), idx: 1 })));
    await svc.nc.flush();
    expect(await s.next()).toEqual({ data: { shelf: [{ id: 'library.book.9' }, { id: 'library.book.8' }] } });
    await svc.add('library.shelf.4', ref('library.book.1'), 2);
    expect(await s.next()).toEqual({ data: { shelf: [{ id: 'library.book.9' }, { id: 'library.book.8' }, { id: 'library.book.1' }] } });
    await closeClients(gw, client);
  });

  it('shows a change to an item that arrived while the run that added it still waited for another item', async () => {
    // The run after the adds reads book 20 as soon as its get is answered,
    // then waits for book 21. A change of book 20 in that gap is applied to
    // the cache before the run watches book 20: the run must notice it.
    // Internal on purpose: only the cache can say that the change was applied
    // inside that gap; a client sees the outcome alone.
    const { svc, gw } = env;
    addBook(svc, 20, 'Twenty', 1);
    addBook(svc, 21, 'Twenty-one', 1);
    svc.collection('library.shelf.5', []);
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { shelf(id: 5) { id title } }');
    expect(await s.next()).toEqual({ data: { shelf: [] } });

    const held = gate();
    svc.handle('get.library.book.21', async () => {
      await held.promise;
      return { result: structuredClone(svc.resources.get('library.book.21')) };
    });
    const enc = new TextEncoder();
    svc.collection('library.shelf.5', [ref('library.book.20'), ref('library.book.21')]);
    svc.nc.publish('event.library.shelf.5.add', enc.encode(JSON.stringify({ value: ref('library.book.20'), idx: 0 })));
    svc.nc.publish('event.library.shelf.5.add', enc.encode(JSON.stringify({ value: ref('library.book.21'), idx: 1 })));
    await svc.nextRequest('get.library.book.21');
    await waitFor(() => gw.cache.peek('library.book.20'), 2000, 'book 20 in the cache');
    const applied = nextEntryChange(gw.cache, 'library.book.20');
    await svc.change('library.book.20', { title: 'Twenty, changed' });
    await applied;
    held.open();

    let last = await s.next();
    while (last.data?.shelf?.[0]?.title !== 'Twenty, changed') last = await s.next();
    expect(last).toEqual({ data: { shelf: [{ id: 'library.book.20', title: 'Twenty, changed' }, { id: 'library.book.21', title: 'Twenty-one' }] } });
    await closeClients(gw, client);
  });
});
