/**
 * Lost access ends a live result: when a service says access may have
 * changed (`reaccess`, `system.reset` access patterns, a new token), every
 * affected subscription is re-checked, and the ones now denied end with
 * system.accessDenied while the others go on receiving updates.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAuthor, addBook, closeClients, startLiveEnv, type LiveEnv } from './helpers/live-fixture.js';
import { metric } from './helpers/metrics.js';
import { subscribeWs, wsClient, type ResultStream } from './helpers/live-client.js';
import { gate, waitFor } from './helpers/wait.js';

let env: LiveEnv;

beforeAll(async () => {
  env = await startLiveEnv();
  addAuthor(env.svc, 1, 'Herbert');
  for (let id = 1; id <= 12; id++) addBook(env.svc, id, `Book ${id}`, 1);
});

afterAll(async () => {
  await env?.close();
});

const bookTitle = 'subscription ($id: ID!) { book(id: $id) { title } }';

/** The stream's last result is an access denial on `book`, and the stream has completed. */
async function expectAccessDenied(s: ResultStream): Promise<void> {
  const r = await s.next();
  expect(r.data?.book ?? null).toBeNull();
  expect(r.errors?.map((e) => e.extensions?.code)).toEqual(['system.accessDenied']);
  await s.completed;
  expect(s.error).toBeUndefined();
}

describe('access of live results', () => {
  it('ends a subscription with system.accessDenied after reaccess denies its resource, and keeps the others', async () => {
    const { svc, gw } = env;
    const client = wsClient(gw.url);
    const denied = subscribeWs(client, bookTitle, { id: 1 });
    const kept = subscribeWs(client, bookTitle, { id: 2 });
    expect(await denied.next()).toEqual({ data: { book: { title: 'Book 1' } } });
    expect(await kept.next()).toEqual({ data: { book: { title: 'Book 2' } } });

    svc.accessRules.set('library.book.1', { get: false });
    await svc.event('library.book.1', 'reaccess');
    await expectAccessDenied(denied);

    await svc.change('library.book.2', { title: 'Still visible' });
    expect(await kept.next()).toEqual({ data: { book: { title: 'Still visible' } } });
    // the ended stream receives nothing more
    await svc.change('library.book.1', { title: 'Secret' });
    await svc.change('library.book.2', { title: 'Visible again' });
    expect(await kept.next()).toEqual({ data: { book: { title: 'Visible again' } } });
    expect(denied.pending).toBe(0);
    await closeClients(gw, client);
  });

  it('ends a subscription with system.accessDenied after a system.reset of access denies it, and keeps the others', async () => {
    const { svc, gw } = env;
    const client = wsClient(gw.url);
    const denied = subscribeWs(client, bookTitle, { id: 3 });
    const kept = subscribeWs(client, bookTitle, { id: 4 });
    expect(await denied.next()).toEqual({ data: { book: { title: 'Book 3' } } });
    expect(await kept.next()).toEqual({ data: { book: { title: 'Book 4' } } });

    svc.accessRules.set('library.book.3', { get: false });
    const accessBefore = svc.count('access.library.book.4');
    await svc.publish('system.reset', { access: ['library.book.*'] });
    await expectAccessDenied(denied);
    // the other resource matched the pattern too: asked again, and still granted
    await waitFor(() => svc.count('access.library.book.4') > accessBefore, 2000, 'book 4 access to be asked again');

    await svc.change('library.book.4', { title: 'Still visible' });
    expect(await kept.next()).toEqual({ data: { book: { title: 'Still visible' } } });
    await closeClients(gw, client);
  });

  it('keeps a subscription whose access is re-checked and still granted, without a duplicate result', async () => {
    const { svc, gw } = env;
    const client = wsClient(gw.url);
    const s = subscribeWs(client, bookTitle, { id: 5 });
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 5' } } });
    const asked = svc.nextRequest('access.library.book.5');
    await svc.event('library.book.5', 'reaccess');
    await asked;
    await svc.change('library.book.5', { title: 'After reaccess' });
    expect(await s.next()).toEqual({ data: { book: { title: 'After reaccess' } } });
    await closeClients(gw, client);
  });

  it('ends a subscription with system.accessDenied when a new token is denied', async () => {
    const { svc, gw } = env;
    svc.handle('access.library.book.6', (p) => ({ result: { get: p?.token?.role !== 'guest' } }));
    const client = wsClient(gw.url);
    const asked = svc.nextRequest('access.library.book.6');
    const s = subscribeWs(client, bookTitle, { id: 6 });
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 6' } } });
    const { cid } = (await asked).payload as { cid: string };

    await svc.publish(`conn.${cid}.token`, { token: { role: 'guest' } });
    await expectAccessDenied(s);
    await closeClients(gw, client);
  });

  it('keeps a subscription across a token change that keeps access, without a duplicate result', async () => {
    const { svc, gw } = env;
    const client = wsClient(gw.url);
    const asked = svc.nextRequest('access.library.book.7');
    const s = subscribeWs(client, bookTitle, { id: 7 });
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 7' } } });
    const { cid } = (await asked).payload as { cid: string };

    const reasked = svc.nextRequest((r) => r.subject === 'access.library.book.7' && r.payload?.token?.user === 'ann');
    await svc.publish(`conn.${cid}.token`, { token: { user: 'ann' } });
    await reasked;
    await svc.change('library.book.7', { title: 'Seen by ann' });
    expect(await s.next()).toEqual({ data: { book: { title: 'Seen by ann' } } });
    await closeClients(gw, client);
  });

  it('checks access for a connection that joins a live query before its first result', async () => {
    const { svc, gw } = env;
    // the first connection to ask is allowed; any other is not
    let allowed: string | undefined;
    const held = gate();
    svc.handle('access.library.book.8', async (p) => {
      allowed ??= p.cid;
      if (p.cid === allowed) await held.promise;
      return { result: { get: p.cid === allowed } };
    });
    const c1 = wsClient(gw.url);
    const c2 = wsClient(gw.url);
    const first = svc.nextRequest('access.library.book.8');
    const a = subscribeWs(c1, bookTitle, { id: 8 });
    await first;
    const b = subscribeWs(c2, bookTitle, { id: 8 });
    await waitFor(async () => (await metric(gw, 'resgraph_live_subscriptions')) === 2, 2000, 'the second subscriber to join');
    held.open();
    expect(await a.next()).toEqual({ data: { book: { title: 'Book 8' } } });
    await expectAccessDenied(b);
    await closeClients(gw, c1, c2);
  });

  it('ends a subscription whose access was withdrawn while its first run waited for the service', async () => {
    // The run asks access (granted), then waits for the get; a reaccess that
    // withdraws access arrives meanwhile. The verdict the run holds is stale:
    // it must not show the data, and the stream ends with system.accessDenied.
    const { svc, gw } = env;
    const held = gate();
    svc.handle('get.library.book.9', async () => {
      await held.promise;
      return { result: structuredClone(svc.resources.get('library.book.9')) };
    });
    const client = wsClient(gw.url);
    const s = subscribeWs(client, bookTitle, { id: 9 });
    await svc.nextRequest('get.library.book.9');
    svc.accessRules.set('library.book.9', { get: false });
    const asked = svc.nextRequest('access.library.book.9');
    await svc.event('library.book.9', 'reaccess');
    held.open();
    await expectAccessDenied(s);
    await asked;
    await closeClients(gw, client);
  });
  it('shows a soft reference once reaccess grants what was denied, though the denied resource was never fetched', async () => {
    // The denied book is never loaded, so no cached resource listens for its
    // events: the live result itself must hear its reaccess.
    const { svc, gw } = env;
    svc.accessRules.set('library.book.11', { get: false });
    svc.model('library.book.10', { title: 'Book 10', related: { rid: 'library.book.11', soft: true } });
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 10) { title related { title } } }');
    const first = await s.next();
    expect(first.data).toEqual({ book: { title: 'Book 10', related: null } });
    expect(first.errors?.map((e) => [e.path, e.extensions?.code])).toEqual([[['book', 'related'], 'system.accessDenied']]);
    expect(svc.count('get.library.book.11')).toBe(0);

    svc.accessRules.delete('library.book.11');
    const asked = svc.nextRequest('access.library.book.11');
    await svc.event('library.book.11', 'reaccess');
    await asked;
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 10', related: { title: 'Book 11' } } } });
    await closeClients(gw, client);
  });

  it('withdraws a soft reference when reaccess arrives while its access request is answered', async () => {
    // The service answers the access request, then withdraws access and sends
    // reaccess; the gateway gets the (now stale) grant, then the reaccess.
    const { svc, gw } = env;
    svc.model('library.book.12', { title: 'Book 12', related: null });
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 12) { title related { title } } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 12', related: null } } });
    let asked = 0;
    svc.handle('access.library.book.5', () => {
      if (asked++ > 0) return { result: { get: false } };
      // granted as asked, then withdrawn at once: the reaccess is published
      // before the grant's reply, and NATS keeps one connection's messages in order
      svc.nc.publish('event.library.book.5.reaccess');
      return { result: { get: true } };
    });
    await svc.change('library.book.12', { related: { rid: 'library.book.5', soft: true } });
    let last = await s.next();
    while (last.data?.book?.related !== null) last = await s.next();
    expect(last.errors?.map((e) => [e.path, e.extensions?.code])).toEqual([[['book', 'related'], 'system.accessDenied']]);
    await closeClients(gw, client);
  });
});
