/**
 * Custom events: a Subscription field marked `@event` streams the payload of
 * every `event.<rid>.<name>` in order, none coalesced or dropped, while the
 * mirrored `@get` fields of the same schema stay live results.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAuthor, addBook, closeClients, liveSdl, startLiveEnv, type LiveEnv } from './helpers/live-fixture.js';
import { subscribeWs, wsClient } from './helpers/live-client.js';
import { waitFor } from './helpers/wait.js';

const eventsSdl = `${liveSdl}
type Subscription {
  bookEvents(id: ID!): JSON @event(rid: "library.book.{id}", name: "highlight")
}
`;

let env: LiveEnv;
const enc = new TextEncoder();

beforeAll(async () => {
  env = await startLiveEnv({}, eventsSdl);
  addAuthor(env.svc, 1, 'Herbert');
  for (let id = 1; id <= 4; id++) addBook(env.svc, id, `Book ${id}`, 1);
});

afterAll(async () => {
  await env?.close();
});

/**
 * Waits until the gateway listens for custom events on `n` streams. Internal on
 * purpose: an event stream sends nothing first, so nothing outside shows when
 * it listens, and an event published before that is lost.
 */
function listening(n: number): Promise<unknown> {
  return waitFor(() => env.gw.cache.customEventListenerCount === n, 3000, `${n} custom event listeners`);
}

describe('custom events', () => {
  it('streams every payload of event.<rid>.<name> in order, none coalesced', async () => {
    const { svc, gw } = env;
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { bookEvents(id: 1) }');
    await listening(1);

    for (let i = 1; i <= 5; i++) svc.nc.publish('event.library.book.1.highlight', enc.encode(JSON.stringify({ n: i, text: `line ${i}` })));
    await svc.nc.flush();
    for (let i = 1; i <= 5; i++) expect(await s.next()).toEqual({ data: { bookEvents: { n: i, text: `line ${i}` } } });
    // the execution's lease, and the lease that hears the resource's delete
    expect(gw.cache.holdsOf('library.book.1')).toBe(2);
    await client.dispose();
    await listening(0);
    // the stream's hold on the resource (which keeps its event subscription) is let go
    await waitFor(() => gw.cache.holdsOf('library.book.1') === 0, 2000, 'the hold to be released');
  });

  it('streams only the named event of the named resource', async () => {
    const { svc, gw } = env;
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { bookEvents(id: 2) }');
    await listening(1);

    await svc.event('library.book.2', 'other', { n: 'other event' });
    await svc.event('library.book.3', 'highlight', { n: 'other book' });
    await svc.change('library.book.2', { title: 'a change is no custom event' });
    await svc.event('library.book.2', 'highlight', { n: 'mine' });
    expect(await s.next()).toEqual({ data: { bookEvents: { n: 'mine' } } });
    await client.dispose();
    await listening(0);
  });

  it('keeps mirrored fields live next to an SDL-defined Subscription type', async () => {
    const { svc, gw } = env;
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 4) { title } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 4' } } });
    await svc.change('library.book.4', { title: 'Still live' });
    expect(await s.next()).toEqual({ data: { book: { title: 'Still live' } } });
    await closeClients(gw, client);
  });

  it('denies an event stream on a resource the client may not get', async () => {
    const { svc, gw } = env;
    svc.accessRules.set('library.book.3', { get: false });
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { bookEvents(id: 3) }');
    const r = await s.next();
    expect(r.errors?.map((e) => e.extensions?.code)).toEqual(['system.accessDenied']);
    await s.completed;
    await client.dispose();
  });

  it('ends an event stream with system.accessDenied when access is lost, before any later event', async () => {
    const { svc, gw } = env;
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { bookEvents(id: 4) }');
    await listening(1);
    await svc.event('library.book.4', 'highlight', { n: 'before' });
    expect(await s.next()).toEqual({ data: { bookEvents: { n: 'before' } } });

    svc.accessRules.set('library.book.4', { get: false });
    svc.nc.publish('event.library.book.4.reaccess', new Uint8Array());
    svc.nc.publish('event.library.book.4.highlight', enc.encode(JSON.stringify({ n: 'after' })));
    await svc.nc.flush();
    const r = await s.next();
    expect(r.errors?.map((e) => e.extensions?.code)).toEqual(['system.accessDenied']);
    await s.completed;
    expect(s.pending).toBe(0);
    await client.dispose();
    await listening(0);
  });
});
