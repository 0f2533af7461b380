/**
 * Faults: no input from a service ends the process. First every kind of
 * service payload, nested far too deep (get, call and auth replies, access
 * replies, events, query replies, system.reset, system.tokenReset, connection
 * tokens): each is refused and logged, and the gateway answers the next
 * request as usual. Then a throw provoked inside each entry point that
 * service input reaches (a NATS subscription callback, a request's reply
 * handler, a system subject handler, a live engine microtask, a stream
 * callback) and the eviction timer: each is logged, and nothing reaches
 * the process uncaught.
 *
 * Internal on purpose where a throw must be provoked inside the gateway (a
 * listener, a value that cannot serialize, a stream the engine holds): a
 * correct gateway gives no outside input that throws there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Msg } from 'nats';
import { startTestEnv, type TestEnv } from '../helpers/env.js';
import { gql } from '../helpers/gateway.js';
import { subscribeWs, wsClient } from '../helpers/live-client.js';
import { closeClients } from '../helpers/live-fixture.js';
import { librarySdl } from '../helpers/sdl.js';
import { waitFor } from '../helpers/wait.js';
import { deepJson, watchForCrashes } from '../helpers/faults.js';

const enc = new TextEncoder();
const deep = deepJson(100_000);
let env: TestEnv;
const crashes = watchForCrashes();

beforeAll(async () => {
  env = await startTestEnv(librarySdl, { requestTimeout: 500, evictDelay: 50 });
  env.svc.model('library.book.1', { title: 'Steady', meta: null });
});

afterAll(async () => {
  await env?.close();
  crashes.stop();
});

function codes(r: { errors?: { extensions?: { code?: string } }[] }): (string | undefined)[] {
  return (r.errors ?? []).map((e) => e.extensions?.code);
}

/** The gateway still answers: a plain query works. */
async function expectAlive(): Promise<void> {
  expect(await gql(env.gw.url, '{ book(id: 1) { title } }')).toEqual({ data: { book: { title: 'Steady' } } });
  expect(crashes.seen).toEqual([]);
}

/** Waits until the gateway has logged something about a subject since `from`. */
function loggedAbout(subject: string, from: number): Promise<unknown> {
  return waitFor(() => env.gw.logs.slice(from).some((l) => l.fields?.subject === subject), 2000, `a log entry about ${subject}`);
}

describe('hostile payloads of every kind', () => {
  it('answers system.internalError for call, auth and access replies nested too deep', async () => {
    const { svc, gw } = env;
    svc.handle('call.library.book.2.ping', () => `{"result":${deep}}`);
    svc.handle('auth.auth.user.login', () => `{"result":${deep}}`);
    svc.handle('access.library.book.3', () => `{"result":${deep}}`);
    svc.model('library.book.3', { title: 'Guarded' });
    expect(codes(await gql(gw.url, 'mutation { ping(id: 2) }'))).toEqual(['system.internalError']);
    expect(codes(await gql(gw.url, 'mutation { login(name: "a", password: "b") }'))).toEqual(['system.internalError']);
    expect(codes(await gql(gw.url, '{ book(id: 3) { title } }'))).toEqual(['system.internalError']);
    await expectAlive();
  });

  it('drops events, query replies and system messages nested too deep, and goes on', async () => {
    const { svc, gw } = env;
    svc.collection('library.books?text=deep&limit=20', [{ rid: 'library.book.1' }]);
    svc.nc.subscribe('deepq.reply', { callback: (_e, m: Msg) => m.respond(enc.encode(`{"result":{"events":${deep}}}`)) });
    await svc.nc.flush();
    const before = new Set(gw.connections.all());
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 1) { title } }');
    const q = subscribeWs(client, 'subscription { search(text: "deep") { title } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Steady' } } });
    expect(await q.next()).toEqual({ data: { search: [{ title: 'Steady' }] } });
    const cid = [...gw.connections.all()].find((c) => !before.has(c))!.cid;

    const from = gw.logs.length;
    const raw: [string, string][] = [
      ['event.library.book.1.change', `{"values":{"meta":{"data":${deep}}}}`],
      ['event.library.book.1.custom', deep],
      ['system.reset', `{"resources":${deep}}`],
      ['system.tokenReset', `{"tids":${deep},"subject":"auth.x"}`],
      [`conn.${cid}.token`, `{"token":${deep}}`],
    ];
    for (const [subject, text] of raw) svc.nc.publish(subject, enc.encode(text));
    await svc.event('library.books', 'query', { subject: 'deepq.reply' });
    for (const [subject] of raw) await loggedAbout(subject, from);
    await loggedAbout('deepq.reply', from);

    await svc.change('library.book.1', { title: 'Steady' });
    await svc.change('library.book.1', { meta: 'shallow' });
    // a change that shows nothing new sends nothing; the stream is still there
    await svc.change('library.book.1', { title: 'Moved' });
    expect(await s.next()).toEqual({ data: { book: { title: 'Moved' } } });
    expect(await q.next()).toEqual({ data: { search: [{ title: 'Moved' }] } });
    await svc.change('library.book.1', { title: 'Steady' });
    expect(await s.next()).toEqual({ data: { book: { title: 'Steady' } } });
    expect(await q.next()).toEqual({ data: { search: [{ title: 'Steady' }] } });
    await closeClients(gw, client);
    await expectAlive();
  });
});

describe('a throw inside each entry point', () => {
  it('a NATS subscription callback: logged, and the next event is handled', async () => {
    const { svc, gw } = env;
    const from = gw.logs.length;
    const seen: unknown[] = [];
    const throwing = () => {
      throw new Error('listener broke');
    };
    const stopThrowing = gw.cache.onCustomEvent(throwing);
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 1) { title } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Steady' } } });
    await svc.event('library.book.1', 'poke', { n: 1 });
    await waitFor(() => gw.logs.slice(from).some((l) => l.msg === 'handling a message failed'), 2000, 'the failure to be logged');
    stopThrowing();
    const stopSeeing = gw.cache.onCustomEvent((_n, _e, payload) => seen.push(payload));
    await svc.event('library.book.1', 'poke', { n: 2 });
    await waitFor(() => seen.length === 1, 2000, 'the next event');
    await svc.change('library.book.1', { title: 'After' });
    expect(await s.next()).toEqual({ data: { book: { title: 'After' } } });
    await svc.change('library.book.1', { title: 'Steady' });
    expect(await s.next()).toEqual({ data: { book: { title: 'Steady' } } });
    stopSeeing();
    await closeClients(gw, client);
    expect(crashes.seen).toEqual([]);
  });

  it('a system subject handler: a token event whose listener throws is logged', async () => {
    const { svc, gw } = env;
    const before = new Set(gw.connections.all());
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 1) { title } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Steady' } } });
    const conn = [...gw.connections.all()].find((c) => !before.has(c))!;
    conn.onAccessChanged(() => {
      throw new Error('access listener broke');
    });
    const from = gw.logs.length;
    await svc.publish(`conn.${conn.cid}.token`, { token: { user: 'u' } });
    await waitFor(() => gw.logs.slice(from).some((l) => l.msg === 'handling a message failed'), 2000, 'the failure to be logged');
    expect(conn.token).toEqual({ user: 'u' });
    await closeClients(gw, client);
    await expectAlive();
  });

  it("a request's reply handler: logged, and the request ends with system.timeout", async () => {
    const { gw } = env;
    const from = gw.logs.length;
    const asked = gw.res.get('library.book.1', undefined, {
      onAnswer: () => {
        throw new Error('reply handler broke');
      },
    });
    await expect(asked).rejects.toMatchObject({ code: 'system.timeout' });
    expect(gw.logs.slice(from).some((l) => l.msg === 'handling a reply failed')).toBe(true);
    await expectAlive();
  });

  it('a live engine microtask: a run that cannot serialize is logged, and the next change is delivered', async () => {
    const { svc, gw } = env;
    svc.model('library.book.4', { title: 'Live', meta: null });
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 4) { title meta } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Live', meta: null } } });
    // no service can send a BigInt: put one in the cache so the run's JSON.stringify throws
    gw.cache.peek('library.book.4')!.model!.meta = { data: { n: 1n } };
    const from = gw.logs.length;
    // a title sent as an object cannot be applied to the last result (live/incremental.ts): the operation runs, and reads the BigInt
    await svc.change('library.book.4', { title: { data: { text: 'Unserializable' } } });
    await waitFor(() => gw.logs.slice(from).some((l) => l.msg === 'live query run failed'), 2000, 'the failure to be logged');
    gw.cache.peek('library.book.4')!.model!.meta = null;
    await svc.change('library.book.4', { title: 'Fine again' });
    expect(await s.next()).toEqual({ data: { book: { title: 'Fine again', meta: null } } });
    await closeClients(gw, client);
    expect(crashes.seen).toEqual([]);
  });

  it("a stream callback: a transport's onAvailable that throws is logged, and the stream goes on", async () => {
    const { svc, gw } = env;
    svc.model('library.book.5', { title: 'Streamed' });
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 5) { title } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Streamed' } } });
    // the transport's own callback, broken once
    const streams: Map<unknown, unknown>[] = [...(gw.live as any).byConnection.values()];
    expect(streams).toHaveLength(1);
    const stream = streams[0].keys().next().value as any;
    const pull = stream.onAvailable;
    stream.onAvailable = () => {
      stream.onAvailable = pull;
      throw new Error('transport callback broke');
    };
    const from = gw.logs.length;
    await svc.change('library.book.5', { title: 'Once' });
    await waitFor(() => gw.logs.slice(from).some((l) => l.msg === 'sending a live result failed'), 2000, 'the failure to be logged');
    await svc.change('library.book.5', { title: 'Twice' });
    expect(await s.next()).toEqual({ data: { book: { title: 'Twice' } } });
    await closeClients(gw, client);
    expect(crashes.seen).toEqual([]);
  });

  it('the eviction timer: an unsubscribe that throws is logged', async () => {
    const { svc, gw } = env;
    svc.model('library.book.6', { title: 'Evicted' });
    expect(await gql(gw.url, '{ book(id: 6) { title } }')).toEqual({ data: { book: { title: 'Evicted' } } });
    // no service input reaches eviction; an unsubscribe on a closing connection might throw
    const group = (gw.cache as any).groups.get('library.book.6');
    const unsubscribe = group.sub.unsubscribe.bind(group.sub);
    group.sub.unsubscribe = () => {
      unsubscribe();
      group.sub.unsubscribe = unsubscribe;
      throw new Error('unsubscribe broke');
    };
    await waitFor(() => gw.logs.some((l) => l.msg === 'evicting a resource failed' && l.fields?.rid === 'library.book.6'), 2000, 'the failure to be logged');
    await expectAlive();
  });
});
