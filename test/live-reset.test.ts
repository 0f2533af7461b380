/**
 * `system.reset` of resources: the gateway re-gets every cached resource the
 * patterns match and turns the difference into ordinary changes, so a
 * subscriber receives the corrected result even though the service changed
 * its store without publishing events.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAuthor, addBook, closeClients, ref, startLiveEnv, type LiveEnv } from './helpers/live-fixture.js';
import { subscribeWs, wsClient } from './helpers/live-client.js';
import { gate } from './helpers/wait.js';

let env: LiveEnv;

beforeAll(async () => {
  env = await startLiveEnv();
  addAuthor(env.svc, 1, 'Herbert');
  for (let id = 1; id <= 9; id++) addBook(env.svc, id, `Book ${id}`, 1);
});

afterAll(async () => {
  await env?.close();
});

/** Changes a model in the service's store without telling anyone. */
function silently(rid: string, values: Record<string, unknown>): void {
  Object.assign((env.svc.resources.get(rid) as { model: Record<string, unknown> }).model, values);
}

describe('system.reset of resources', () => {
  it('sends the corrected result after a silent change and a matching system.reset', async () => {
    const { svc, gw } = env;
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 1) { title year } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 1', year: 1965 } } });

    silently('library.book.1', { title: 'Corrected', year: 1970 });
    await svc.publish('system.reset', { resources: ['library.book.*'] });
    expect(await s.next()).toEqual({ data: { book: { title: 'Corrected', year: 1970 } } });
    // later events apply on top of the corrected state
    await svc.change('library.book.1', { year: 1971 });
    expect(await s.next()).toEqual({ data: { book: { title: 'Corrected', year: 1971 } } });
    await closeClients(gw, client);
  });

  it('re-gets once more when a reset arrives while the previous reset is still waiting for its get', async () => {
    const { svc, gw } = env;
    addBook(svc, 20, 'Book 20', 1);
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 20) { title } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 20' } } });
    // the first re-get is answered late, with what the service had when it was asked
    const late = gate();
    let first = true;
    svc.handle('get.library.book.20', async () => {
      const snapshot = structuredClone(svc.resources.get('library.book.20'));
      if (first) {
        first = false;
        await late.promise;
      }
      return { result: snapshot };
    });
    silently('library.book.20', { title: 'First fix' });
    const firstGet = svc.nextRequest('get.library.book.20');
    await svc.publish('system.reset', { resources: ['library.book.20'] });
    await firstGet;
    silently('library.book.20', { title: 'Second fix' });
    const secondGet = svc.nextRequest('get.library.book.20');
    await svc.publish('system.reset', { resources: ['library.book.20'] });
    late.open();
    await secondGet; // before the fix, the second reset was merged into the first one's get and lost
    let last = await s.next();
    while (last.data.book.title !== 'Second fix') last = await s.next();
    expect(last).toEqual({ data: { book: { title: 'Second fix' } } });
    await closeClients(gw, client);
  });

  it('corrects a collection that the pattern matches', async () => {
    const { svc, gw } = env;
    svc.collection('library.shelf.1', [ref('library.book.2'), ref('library.book.3')]);
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { shelf(id: 1) { title } }');
    expect(await s.next()).toEqual({ data: { shelf: [{ title: 'Book 2' }, { title: 'Book 3' }] } });

    svc.collection('library.shelf.1', [ref('library.book.3'), ref('library.book.4')]);
    await svc.publish('system.reset', { resources: ['library.shelf.*'] });
    expect(await s.next()).toEqual({ data: { shelf: [{ title: 'Book 3' }, { title: 'Book 4' }] } });
    await svc.add('library.shelf.1', ref('library.book.2'), 0);
    expect(await s.next()).toEqual({ data: { shelf: [{ title: 'Book 2' }, { title: 'Book 3' }, { title: 'Book 4' }] } });
    await closeClients(gw, client);
  });

  it('corrects a referenced resource that the pattern matches', async () => {
    const { svc, gw } = env;
    addAuthor(svc, 2, 'Banks');
    addBook(svc, 8, 'Book 8', 2);
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 8) { title author { name } } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 8', author: { name: 'Banks' } } } });

    silently('library.author.2', { name: 'Iain Banks' });
    await svc.publish('system.reset', { resources: ['library.author.>'] });
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 8', author: { name: 'Iain Banks' } } } });
    await closeClients(gw, client);
  });

  it('shows a referenced resource whose get failed once a reset finds it', async () => {
    const { svc, gw } = env;
    // the author is not in the service's store yet: its get fails, and the result shows the error on its field
    svc.model('library.book.11', { title: 'Book 11', year: 1965, author: ref('library.author.11'), tags: ref('library.book.11.tags') });
    svc.collection('library.book.11.tags', []);
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 11) { title author { name } } }');
    const first = await s.next();
    expect(first.data).toEqual({ book: { title: 'Book 11', author: null } });
    expect(first.errors?.map((e) => e.extensions?.code)).toEqual(['system.notFound']);

    addAuthor(svc, 11, 'Le Guin');
    await svc.publish('system.reset', { resources: ['library.author.>'] });
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 11', author: { name: 'Le Guin' } } } });
    await closeClients(gw, client);
  });

  it('sends nothing for a reset that finds no difference', async () => {
    const { svc, gw } = env;
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 5) { title } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 5' } } });
    const asked = svc.nextRequest('get.library.book.5');
    await svc.publish('system.reset', { resources: ['library.book.5'] });
    await asked;
    await svc.change('library.book.5', { title: 'After an empty reset' });
    expect(await s.next()).toEqual({ data: { book: { title: 'After an empty reset' } } });
    await closeClients(gw, client);
  });

  it('leaves resources the patterns do not match alone', async () => {
    const { svc, gw } = env;
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 6) { title } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 6' } } });
    const gets = svc.count('get.library.book.6');
    silently('library.book.6', { title: 'Not reset' });
    await svc.publish('system.reset', { resources: ['library.author.*', 'library.book.6.>'] });
    await svc.change('library.book.6', { year: 2000 });
    await svc.change('library.book.6', { title: 'Changed' });
    expect(await s.next()).toEqual({ data: { book: { title: 'Changed' } } });
    expect(svc.count('get.library.book.6')).toBe(gets);
    await closeClients(gw, client);
  });

  it('ends a subscription with system.notFound when the reset finds its resource gone', async () => {
    const { svc, gw } = env;
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 7) { title } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 7' } } });
    svc.resources.delete('library.book.7');
    await svc.publish('system.reset', { resources: ['library.book.7'] });
    const r = await s.next();
    expect(r.errors?.map((e) => e.extensions?.code)).toEqual(['system.notFound']);
    await s.completed;
    await closeClients(gw, client);
  });
});
