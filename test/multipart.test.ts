/**
 * Apollo's multipart HTTP protocol for subscriptions, read raw: a
 * subscription, a `@live` query and an `@event` stream as parts of one
 * `multipart/mixed;boundary="graphql"` response, `{"payload": ...}` each;
 * heartbeats while idle; the end of the stream when the client goes away,
 * when the result ends it (lost access), and on a drain.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAuthor, addBook, liveSdl, startLiveEnv, type LiveEnv } from './helpers/live-fixture.js';
import { startTestGateway } from './helpers/gateway.js';
import { postMultipart } from './helpers/multipart-client.js';
import { liveCounts } from './helpers/metrics.js';
import { waitFor } from './helpers/wait.js';

const sdl = `${liveSdl}
type Subscription {
  bookEvents(id: ID!): JSON @event(rid: "library.book.{id}", name: "highlight")
}
`;

let env: LiveEnv;

beforeAll(async () => {
  env = await startLiveEnv({ multipartHeartbeat: 100 }, sdl);
  addAuthor(env.svc, 1, 'Herbert');
  for (let id = 1; id <= 5; id++) addBook(env.svc, id, `Book ${id}`, 1);
});

afterAll(async () => {
  await env?.close();
});

/** The next part that is not a heartbeat. */
async function nextPayload(s: { next(ms?: number): Promise<any> }, timeoutMs = 5000): Promise<any> {
  for (;;) {
    const p = await s.next(timeoutMs);
    if (Object.keys(p).length > 0) return p;
  }
}

describe('multipart subscriptions (Apollo protocol)', () => {
  it('sends the first state at once, then each change, as {payload} parts of multipart/mixed;boundary="graphql"', async () => {
    const { svc, gw } = env;
    const m = await postMultipart(gw.url, { query: 'subscription { book(id: 1) { title author { name } } }' });
    expect(m.response.status).toBe(200);
    expect(m.response.headers.get('content-type')).toBe('multipart/mixed;boundary="graphql";subscriptionSpec="1.0"');
    expect(await nextPayload(m.parts)).toEqual({ payload: { data: { book: { title: 'Book 1', author: { name: 'Herbert' } } } } });
    await svc.change('library.book.1', { title: 'Dune' });
    expect(await nextPayload(m.parts)).toEqual({ payload: { data: { book: { title: 'Dune', author: { name: 'Herbert' } } } } });

    // the client goes away: the gateway lets go of the live subscription
    m.abort();
    await waitFor(async () => (await liveCounts(gw)).subscribers === 0, 3000, 'the live subscription to end');
  });

  it('sends heartbeats {} while nothing changes', async () => {
    const m = await postMultipart(env.gw.url, { query: 'subscription { book(id: 2) { title } }' });
    // on a busy machine a heartbeat may come before the first result
    expect(await nextPayload(m.parts)).toEqual({ payload: { data: { book: { title: 'Book 2' } } } });
    // the gateway of this file beats every 100 ms
    expect(await m.parts.next(2000)).toEqual({});
    expect(await m.parts.next(2000)).toEqual({});
    m.abort();
    await waitFor(async () => (await liveCounts(env.gw)).subscribers === 0, 3000, 'the live subscription to end');
  });

  it('streams a @live query: the first result, then JSON Patches', async () => {
    const { svc, gw } = env;
    const m = await postMultipart(gw.url, { query: 'query @live { book(id: 3) { title } }' });
    expect(await nextPayload(m.parts)).toEqual({ payload: { data: { book: { title: 'Book 3' } }, revision: 1 } });
    await svc.change('library.book.3', { title: 'Emma' });
    expect(await nextPayload(m.parts)).toEqual({
      payload: { patch: [{ op: 'replace', path: '/book/title', value: 'Emma' }], revision: 2 },
    });
    m.abort();
    await waitFor(async () => (await liveCounts(gw)).subscribers === 0, 3000, 'the live query to end');
  });

  it('delivers every event of an @event stream, in order', async () => {
    const { svc, gw } = env;
    const m = await postMultipart(gw.url, { query: 'subscription { bookEvents(id: 4) }' });
    // internal: nothing outside shows when the gateway starts or stops listening for custom events (one published before is lost)
    await waitFor(() => gw.cache.customEventListenerCount === 1, 3000, 'the event listener');
    for (let n = 1; n <= 5; n++) await svc.event('library.book.4', 'highlight', { n });
    for (let n = 1; n <= 5; n++) expect(await nextPayload(m.parts)).toEqual({ payload: { data: { bookEvents: { n } } } });
    m.abort();
    await waitFor(() => gw.cache.customEventListenerCount === 0, 3000, 'the event listener to go');
  });

  it('ends the stream, after the error, with the closing delimiter when access is lost', async () => {
    const { svc, gw } = env;
    const m = await postMultipart(gw.url, { query: 'subscription { book(id: 5) { title } }' });
    expect(await nextPayload(m.parts)).toEqual({ payload: { data: { book: { title: 'Book 5' } } } });
    svc.accessRules.set('library.book.5', { get: false });
    await svc.publish('event.library.book.5.reaccess', null);
    const last = await nextPayload(m.parts);
    expect(last.payload.errors[0].extensions.code).toBe('system.accessDenied');
    expect(await m.closed).toBe(true);
    svc.accessRules.delete('library.book.5');
  });

  it('answers a subscription that does not validate with a JSON error (Apollo reads it as the result)', async () => {
    const r = await fetch(env.gw.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'multipart/mixed;boundary="graphql";subscriptionSpec=1.0,application/json' },
      body: JSON.stringify({ query: 'subscription { nope }' }),
    });
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    const body = await r.json();
    expect(body.errors[0].extensions.code).toBe('GRAPHQL_VALIDATION_FAILED');
  });

  it('on a drain, says why with a transport error and ends the response without the closing delimiter', async () => {
    const gw = await startTestGateway(env.nats.url, sdl);
    try {
      const m = await postMultipart(gw.url, { query: 'subscription { book(id: 1) { title } }' });
      expect((await nextPayload(m.parts)).payload.data.book).toBeDefined();
      const drained = gw.drain(5000);
      expect(await nextPayload(m.parts)).toEqual({
        payload: null,
        errors: [{ message: 'The gateway is shutting down; subscribe again', extensions: { code: 'system.unavailable' } }],
      });
      expect(await m.closed).toBe(false);
      expect((await drained).forced).toBe(false);
      // internal: a drained gateway no longer listens, so no scrape can see that nothing is left behind
      expect(gw.live.stats.subscribers).toBe(0);
    } finally {
      await gw.close();
    }
  });
});
