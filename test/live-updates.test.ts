/**
 * Live results follow the data: a subscription gets its result at once, and
 * exactly one new result per change that alters it, over graphql-ws and SSE.
 *
 * "Nothing else arrived" is shown without sleeping: after the expected
 * result a second, different change is made, and the very next result must
 * be that second change.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAuthor, addBook, closeClients, startLiveEnv, type LiveEnv } from './helpers/live-fixture.js';
import { subscribeSse, subscribeWs, wsClient } from './helpers/live-client.js';
import { gate, nextEntryChange } from './helpers/wait.js';

let env: LiveEnv;

beforeAll(async () => {
  env = await startLiveEnv();
  addAuthor(env.svc, 1, 'Herbert');
  for (let id = 1; id <= 6; id++) addBook(env.svc, id, `Book ${id}`, 1);
});

afterAll(async () => {
  await env?.close();
});

const bookTitle = 'subscription ($id: ID!) { book(id: $id) { title } }';

describe('live updates', () => {
  it('sends the current result at once on subscribe', async () => {
    const client = wsClient(env.gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 1) { id title author { name } tags } }');
    expect(await s.next()).toEqual({
      data: { book: { id: 'library.book.1', title: 'Book 1', author: { name: 'Herbert' }, tags: ['scifi'] } },
    });
    await closeClients(env.gw, client);
  });

  it('sends exactly one new result when a selected property changes', async () => {
    const { svc } = env;
    const client = wsClient(env.gw.url);
    const s = subscribeWs(client, bookTitle, { id: 2 });
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 2' } } });

    await svc.change('library.book.2', { title: 'Changed once' });
    expect(await s.next()).toEqual({ data: { book: { title: 'Changed once' } } });
    // the very next result is the next change: nothing came in between
    await svc.change('library.book.2', { title: 'Changed twice' });
    expect(await s.next()).toEqual({ data: { book: { title: 'Changed twice' } } });
    expect(s.pending).toBe(0);
    await closeClients(env.gw, client);
  });

  it('sends nothing when a property the query does not select changes', async () => {
    const { svc } = env;
    const client = wsClient(env.gw.url);
    const s = subscribeWs(client, bookTitle, { id: 3 });
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 3' } } });

    await svc.change('library.book.3', { year: 1999 });
    await svc.change('library.book.3', { title: 'Selected change' });
    // had the year change produced a result, it would come first
    expect(await s.next()).toEqual({ data: { book: { title: 'Selected change' } } });
    expect(s.pending).toBe(0);
    await closeClients(env.gw, client);
  });

  it('sends nothing when a change event repeats the cached value', async () => {
    const { svc } = env;
    const client = wsClient(env.gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 4) { title year } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 4', year: 1965 } } });

    await svc.change('library.book.4', { title: 'Book 4' });
    await svc.change('library.book.4', { year: 2001 });
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 4', year: 2001 } } });
    await closeClients(env.gw, client);
  });

  it('sends a new result when a referenced resource changes', async () => {
    const { svc } = env;
    addAuthor(svc, 50, 'Le Guin');
    addBook(svc, 5, 'Book 5', 50);
    const client = wsClient(env.gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 5) { title author { name } } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 5', author: { name: 'Le Guin' } } } });

    await svc.change('library.author.50', { name: 'Ursula K. Le Guin' });
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 5', author: { name: 'Ursula K. Le Guin' } } } });
    await svc.change('library.author.50', { born: 1929 }); // not selected
    await svc.change('library.book.5', { title: 'The Dispossessed' });
    expect(await s.next()).toEqual({ data: { book: { title: 'The Dispossessed', author: { name: 'Ursula K. Le Guin' } } } });
    await closeClients(env.gw, client);
  });

  it('streams exactly one new result per change over SSE', async () => {
    const { svc } = env;
    const s = subscribeSse(env.gw.url, bookTitle, { id: 6 });
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 6' } } });

    await svc.change('library.book.6', { title: 'Over SSE' });
    expect(await s.next()).toEqual({ data: { book: { title: 'Over SSE' } } });
    await svc.change('library.book.6', { year: 2020 }); // not selected: no result
    await svc.change('library.book.6', { title: 'Over SSE again' });
    expect(await s.next()).toEqual({ data: { book: { title: 'Over SSE again' } } });
    expect(s.pending).toBe(0);
    await closeClients(env.gw, s);
  });

  it('ends at the new value of a resource that changed while the run waited for another', async () => {
    const { svc, gw } = env;
    addAuthor(svc, 40, 'Slow');
    addBook(svc, 40, 'Read before', 40);
    const author = gate();
    svc.handle('get.library.author.40', async () => {
      await author.promise;
      return { result: { model: { name: 'Slow', born: 1920 } } };
    });
    const asked = svc.nextRequest('get.library.author.40');
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 40) { title author { name } } }');
    // the run has read the book and waits for its author
    await asked;
    const applied = nextEntryChange(gw.cache, 'library.book.40');
    await svc.change('library.book.40', { title: 'Changed meanwhile' });
    await applied;
    author.open();
    const changed = { data: { book: { title: 'Changed meanwhile', author: { name: 'Slow' } } } };
    // the run's result may hold the old title; the run that follows it reads the new one
    let r = await s.next();
    if (r.data?.book && (r.data.book as { title: string }).title !== 'Changed meanwhile') r = await s.next();
    expect(r).toEqual(changed);
    await closeClients(gw, client);
  });
});
