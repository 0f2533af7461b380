/**
 * Faults: what a misbehaving service may send, and what clients see then.
 * Each case is one fault of issue 14, with Resgate 1.8.0's answer as the
 * reference: a too-deep payload is refused and the cache keeps its value; a
 * get reply with both model and collection, an access handler's error or an
 * invalid verdict show their own code; a query resource answered
 * system.notFound is deleted; a fresh value of the other kind is ignored;
 * an @event stream ends with its resource's delete; no responder is
 * system.notFound, and does not delete a cached resource on a reset.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Msg } from 'nats';
import { startTestEnv, type TestEnv } from '../helpers/env.js';
import { gql } from '../helpers/gateway.js';
import { metric } from '../helpers/metrics.js';
import { subscribeWs, wsClient } from '../helpers/live-client.js';
import { closeClients } from '../helpers/live-fixture.js';
import { librarySdl } from '../helpers/sdl.js';
import { waitFor } from '../helpers/wait.js';
import { deepJson, watchForCrashes } from '../helpers/faults.js';

const sdl = `${librarySdl}
type Subscription {
  bookEvents(id: ID!): JSON @event(rid: "library.book.{id}", name: "highlight")
}
`;

const enc = new TextEncoder();
let env: TestEnv;
const crashes = watchForCrashes();

beforeAll(async () => {
  // the service answers library.* only: other names have no responder
  env = await startTestEnv(sdl, { requestTimeout: 1000 }, ['library']);
});

afterAll(async () => {
  await env?.close();
  crashes.stop();
});

/** Answers requests on a subject with a fixed reply (query requests go to subjects the service names). */
function answer(subject: string, reply: unknown): void {
  env.svc.nc.subscribe(subject, { callback: (_e, m: Msg) => m.respond(enc.encode(JSON.stringify(reply))) });
}

function codes(r: { errors?: { extensions?: { code?: string } }[] }): (string | undefined)[] {
  return (r.errors ?? []).map((e) => e.extensions?.code);
}

describe('service faults', () => {
  it('refuses a change event 100,000 levels deep, keeps the cached value and delivers the next change', async () => {
    const { svc, gw } = env;
    svc.model('library.book.100', { title: 'Deep', meta: { data: { kept: true } } });
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 100) { title meta } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Deep', meta: { kept: true } } } });

    svc.nc.publish('event.library.book.100.change', enc.encode(`{"values":{"meta":{"data":${deepJson(100_000)}}}}`));
    await svc.change('library.book.100', { title: 'Next' });
    expect(await s.next()).toEqual({ data: { book: { title: 'Next', meta: { kept: true } } } });
    expect(gw.logs.some((l) => l.msg === 'malformed message ignored' && l.fields?.subject === 'event.library.book.100.change')).toBe(true);
    expect(crashes.seen).toEqual([]);
    await closeClients(gw, client);
  });

  it('delivers a data value just under the depth limit, also when it comes again', async () => {
    const { svc, gw } = env;
    svc.model('library.book.107', { title: 'Nested', meta: null });
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 107) { meta } }');
    expect(await s.next()).toEqual({ data: { book: { meta: null } } });
    // the envelope {"values":{"meta":{"data": ...}}} takes 3 levels
    const nested = deepJson(996);
    const change = enc.encode(`{"values":{"meta":{"data":${nested}}}}`);
    svc.nc.publish('event.library.book.107.change', change);
    svc.nc.publish('event.library.book.107.change', change);
    await svc.change('library.book.107', { title: 'After' });
    expect(JSON.stringify((await s.next()).data?.book.meta)).toBe(nested);
    expect(gw.logs.some((l) => l.fields?.subject === 'event.library.book.107.change')).toBe(false);
    await svc.change('library.book.107', { meta: 'flat' });
    expect(await s.next()).toEqual({ data: { book: { meta: 'flat' } } });
    await closeClients(gw, client);
  });

  it('answers system.internalError for a get reply nested too deep', async () => {
    const { svc, gw } = env;
    svc.handle('get.library.book.101', () => `{"result":{"model":{"meta":{"data":${deepJson(100_000)}}}}}`);
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 101) { meta } }');
    expect(codes(await s.next())).toEqual(['system.internalError']);
    expect(crashes.seen).toEqual([]);
    await closeClients(gw, client);
  });

  it('answers system.internalError for a get reply with both model and collection', async () => {
    const { svc, gw } = env;
    svc.handle('get.library.book.102', () => ({ result: { model: { title: 'Which?' }, collection: ['one'] } }));
    const r = await gql(gw.url, '{ book(id: 102) { title } }');
    expect(r.data).toEqual({ book: null });
    expect(codes(r)).toEqual(['system.internalError']);
    expect(gw.logs.some((l) => l.level === 'warn' && l.fields?.subject === 'get.library.book.102')).toBe(true);
  });

  it('does not keep an access error as a verdict: the same connection asks again', async () => {
    const { svc, gw } = env;
    svc.model('library.book.103', { title: 'Back' });
    let broken = true;
    svc.handle('access.library.book.103', () =>
      broken ? { error: { code: 'conf.banned', message: 'Banned for now' } } : { result: { get: true } },
    );
    const client = wsClient(gw.url);
    const first = subscribeWs(client, 'subscription { book(id: 103) { title } }');
    expect(codes(await first.next())).toEqual(['conf.banned']);
    // a live result is shared by identical subscriptions: let the first one go
    first.dispose();
    await waitFor(async () => (await metric(gw, 'resgraph_live_subscriptions')) === 0, 2000, 'the first stream to end');
    broken = false;
    const second = subscribeWs(client, 'subscription { book(id: 103) { title } }');
    expect(await second.next()).toEqual({ data: { book: { title: 'Back' } } });
    expect(svc.count('access.library.book.103')).toBe(2);
    await closeClients(gw, client);
  });

  it('ends a live stream with the access handler\'s own code when a re-check gets no verdict', async () => {
    const { svc, gw } = env;
    svc.model('library.book.104', { title: 'Watched' });
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 104) { title } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Watched' } } });
    svc.handle('access.library.book.104', () => ({ result: { get: 'foo' } }));
    await svc.event('library.book.104', 'reaccess');
    expect(codes(await s.next())).toEqual(['system.internalError']);
    await s.completed;
    await closeClients(gw, client);
  });

  it('ends the stream of a query resource whose query request is answered system.notFound', async () => {
    const { svc, gw } = env;
    svc.collection('library.books?text=gone&limit=20', [{ rid: 'library.book.100' }]);
    answer('faultq.gone', { error: { code: 'system.notFound', message: 'Not found' } });
    await svc.nc.flush();
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { search(text: "gone") { title } }');
    expect((await s.next()).data?.search).toHaveLength(1);
    await svc.event('library.books', 'query', { subject: 'faultq.gone' });
    expect(codes(await s.next())).toEqual(['system.notFound']);
    await s.completed;
    // gone from the cache: the next read asks the service again
    const gets = svc.count('get.library.books');
    await gql(gw.url, '{ search(text: "gone") { title } }');
    expect(svc.count('get.library.books')).toBe(gets + 1);
    await closeClients(gw, client);
  });

  it('ignores a query reply or a reset of the other kind: nothing is sent and the cache keeps its value', async () => {
    const { svc, gw } = env;
    svc.model('library.book.105', { title: 'Listed' });
    svc.collection('library.books?text=kind&limit=20', [{ rid: 'library.book.105' }]);
    answer('faultq.kind', { result: { model: { title: 'not a list' } } });
    await svc.nc.flush();
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { search(text: "kind") { title } }');
    expect(await s.next()).toEqual({ data: { search: [{ title: 'Listed' }] } });

    await svc.event('library.books', 'query', { subject: 'faultq.kind' });
    await waitFor(() => gw.logs.some((l) => l.msg.startsWith('fresh value of another kind')), 2000, 'the mismatch to be logged');
    // a reset whose get answers a model for the cached collection
    svc.model('library.books?text=kind&limit=20', { title: 'not a list either' });
    const logged = gw.logs.length;
    await svc.publish('system.reset', { resources: ['library.books'] });
    await waitFor(() => gw.logs.slice(logged).some((l) => l.msg.startsWith('fresh value of another kind')), 2000, 'the reset mismatch');
    expect((await gql(gw.url, '{ search(text: "kind") { title } }')).data).toEqual({ search: [{ title: 'Listed' }] });

    // and the next real change still arrives
    await svc.change('library.book.105', { title: 'Renamed' });
    expect(await s.next()).toEqual({ data: { search: [{ title: 'Renamed' }] } });
    expect(s.results).toHaveLength(2);
    await closeClients(gw, client);
  });

  it('ends an @event stream on its resource\'s delete: a new resource of that name does not feed it', async () => {
    const { svc, gw } = env;
    svc.model('library.book.106', { title: 'Short-lived' });
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { bookEvents(id: 106) }');
    // internal: nothing outside shows when the gateway starts listening for custom events (one published before is lost)
    await waitFor(() => gw.cache.customEventListenerCount === 1, 3000, 'the event stream to listen');
    await svc.event('library.book.106', 'highlight', { n: 1 });
    expect(await s.next()).toEqual({ data: { bookEvents: { n: 1 } } });

    await svc.event('library.book.106', 'delete');
    expect(codes(await s.next())).toEqual(['system.notFound']);
    await s.completed;
    // the name comes back as a new resource, fetched by someone else
    svc.model('library.book.106', { title: 'Reborn' });
    const other = wsClient(gw.url);
    const watcher = subscribeWs(other, 'subscription { book(id: 106) { title } }');
    expect(await watcher.next()).toEqual({ data: { book: { title: 'Reborn' } } });
    await svc.event('library.book.106', 'highlight', { n: 2 });
    await svc.change('library.book.106', { title: 'Reborn, changed' });
    expect(await watcher.next()).toEqual({ data: { book: { title: 'Reborn, changed' } } });
    expect(s.results).toHaveLength(2);
    await closeClients(gw, client, other);
  });

  it('answers system.notFound when no service answers, and keeps a cached resource whose reset finds none', async () => {
    const { svc, gw } = env;
    // a service of its own for `spare.thing`, which then goes away
    const get = svc.nc.subscribe('get.spare.thing', {
      callback: (_e, m) => m.respond(enc.encode(JSON.stringify({ result: { model: { n: 1 } } }))),
    });
    svc.nc.subscribe('access.spare.thing', {
      callback: (_e, m) => m.respond(enc.encode(JSON.stringify({ result: { get: true } }))),
    });
    await svc.nc.flush();
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { raw(name: "spare") }');
    expect(await s.next()).toEqual({ data: { raw: { n: 1 } } });
    get.unsubscribe();
    await svc.nc.flush();

    const r = await gql(gw.url, '{ raw(name: "missing") }');
    expect(codes(r)).toEqual(['system.notFound']);
    const logged = gw.logs.length;
    await svc.publish('system.reset', { resources: ['spare.>'] });
    await waitFor(() => gw.logs.slice(logged).some((l) => l.msg.startsWith('reset get failed')), 2000, 'the failed reset');
    await svc.event('spare.thing', 'change', { values: { n: 2 } });
    expect(await s.next()).toEqual({ data: { raw: { n: 2 } } });
    await closeClients(gw, client);
  });
});
