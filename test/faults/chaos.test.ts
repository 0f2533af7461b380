/**
 * Chaos: a fuzzed service and churning clients against one gateway, with
 * the figures printed. Three phases, each ending in a check that what
 * clients see equals what the service holds:
 *
 * 1. events fuzzed: valid changes, adds and removes mixed with hostile
 *    events (too deep, not JSON, of the wrong kind, out of range, of the
 *    wrong shape) and resets, published in bursts to resources that live
 *    subscriptions watch;
 * 2. connections churned: short-lived WebSocket clients that subscribe and
 *    then leave, half cleanly and half by dropping the socket, while events
 *    flow; afterwards the gateway holds no connection, stream or cache entry
 *    for them, and its heap is back near where it started;
 * 3. the service crashes and another takes its place with other data: the
 *    gateway answers at once while none is there, and after the new
 *    service's system.reset every stream shows the new data.
 *
 * Every random choice comes from one seeded generator, so a failure replays.
 */
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, connect } from 'nats';
import WebSocket from 'ws';
import { startTestEnv, type TestEnv } from '../helpers/env.js';
import { gql } from '../helpers/gateway.js';
import { subscribeWs, wsClient, wsUrl, type ResultStream } from '../helpers/live-client.js';
import { metric, scrape } from '../helpers/metrics.js';
import { TestService } from '../helpers/res-service.js';
import { librarySdl } from '../helpers/sdl.js';
import { waitFor } from '../helpers/wait.js';
import { deepJson, watchForCrashes } from '../helpers/faults.js';
import { jsonDepthExceeds } from '../../src/res/protocol.js';

const books = 8;
const lists = 3;
const clientsWatching = 3;
const eventsFuzzed = 3000;
const churned = 240;
const seed = 14;

const enc = new TextEncoder();
let env: TestEnv;
const crashes = watchForCrashes();
const figures: string[] = [];

/** mulberry32: small, fast and good enough to pick faults */
function generator(s: number): () => number {
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = generator(seed);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
const int = (n: number) => Math.floor(random() * n);

/** A heap figure after a full collection (V8's gc, reached without a command-line flag). */
function heapMb(): number {
  setFlagsFromString('--expose_gc');
  (runInNewContext('gc') as () => void)();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

const bookRid = (i: number) => `library.book.c${i}`;
const listRid = (i: number) => `library.list.c${i}`;
const bookQuery = (i: number) => `subscription { book(id: "c${i}") { title meta } }`;
const listQuery = (i: number) => `subscription { list(id: "c${i}") }`;

function seedStore(svc: TestService, generation: string): void {
  for (let i = 0; i < books; i++) svc.model(bookRid(i), { title: `${generation} ${i}`, meta: { data: { n: 0 } } });
  for (let i = 0; i < lists; i++) svc.collection(listRid(i), [`${generation} a`, `${generation} b`]);
}

/** What a stream of each resource must show, from the service's store. */
function expectedBook(svc: TestService, i: number): unknown {
  const m = (svc.resources.get(bookRid(i)) as { model: Record<string, any> }).model;
  const meta = m.meta && typeof m.meta === 'object' && 'data' in m.meta ? m.meta.data : m.meta;
  return { data: { book: { title: m.title, meta: meta ?? null } } };
}
function expectedList(svc: TestService, i: number): unknown {
  return { data: { list: (svc.resources.get(listRid(i)) as { collection: unknown[] }).collection } };
}

interface Watcher {
  close(): Promise<void>;
  books: ResultStream[];
  lists: ResultStream[];
}

async function watchAll(url: string): Promise<Watcher> {
  const client = wsClient(url);
  const w = {
    books: Array.from({ length: books }, (_, i) => subscribeWs(client, bookQuery(i))),
    lists: Array.from({ length: lists }, (_, i) => subscribeWs(client, listQuery(i))),
    close: async () => client.dispose(),
  };
  for (const s of [...w.books, ...w.lists]) await s.next();
  return w;
}

/** Whether every stream's newest result is what the service holds. */
function converged(svc: TestService, watchers: Watcher[]): boolean {
  const eq = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  return watchers.every(
    (w) =>
      w.books.every((s, i) => eq(s.results.at(-1), expectedBook(svc, i))) &&
      w.lists.every((s, i) => eq(s.results.at(-1), expectedList(svc, i))),
  );
}

/** One fuzzed event: applied to the service's store when valid, published either way. */
function fuzzOne(svc: TestService, counts: Record<string, number>): void {
  const count = (k: string) => (counts[k] = (counts[k] ?? 0) + 1);
  const publish = (subject: string, text: string) => svc.nc.publish(subject, enc.encode(text));
  const b = int(books);
  const l = int(lists);
  const roll = random();
  if (roll < 0.35) {
    count('valid change');
    const values = random() < 0.5 ? { title: `t${int(1000)}` } : { meta: { data: { n: int(1000), at: [int(9)] } } };
    const m = (svc.resources.get(bookRid(b)) as { model: Record<string, unknown> }).model;
    Object.assign(m, values);
    publish(`event.${bookRid(b)}.change`, JSON.stringify({ values }));
  } else if (roll < 0.55) {
    const c = (svc.resources.get(listRid(l)) as { collection: unknown[] }).collection;
    if (c.length > 0 && random() < 0.45) {
      count('valid remove');
      const idx = int(c.length);
      c.splice(idx, 1);
      publish(`event.${listRid(l)}.remove`, JSON.stringify({ idx }));
    } else {
      count('valid add');
      const idx = int(c.length + 1);
      const value = `v${int(1000)}`;
      c.splice(idx, 0, value);
      publish(`event.${listRid(l)}.add`, JSON.stringify({ value, idx }));
    }
  } else {
    // mostly faults, with resets and reaccess events (valid, but they make the gateway ask again) among them
    const fault = pick([
      'too deep',
      'not JSON',
      'change on a collection',
      'add on a model',
      'idx out of range',
      'change without values',
      'object outside data',
      'custom event too deep',
      'valid reset',
      'malformed reset',
      'valid reaccess',
    ] as const);
    count(fault);
    switch (fault) {
      case 'too deep':
        return publish(`event.${bookRid(b)}.change`, `{"values":{"meta":{"data":${deepJson(1001 + int(50_000))}}}}`);
      case 'not JSON':
        return publish(`event.${bookRid(b)}.change`, '{"values": {"title": ');
      case 'change on a collection':
        return publish(`event.${listRid(l)}.change`, JSON.stringify({ values: { title: 'wrong kind' } }));
      case 'add on a model':
        return publish(`event.${bookRid(b)}.add`, JSON.stringify({ value: 'x', idx: 0 }));
      case 'idx out of range':
        return publish(`event.${listRid(l)}.remove`, JSON.stringify({ idx: 1000 + int(1000) }));
      case 'change without values':
        return publish(`event.${bookRid(b)}.change`, JSON.stringify({ title: 'no values' }));
      case 'object outside data':
        return publish(`event.${bookRid(b)}.change`, JSON.stringify({ values: { meta: { nested: { not: 'wrapped' } } } }));
      case 'custom event too deep':
        return publish(`event.${bookRid(b)}.fuzz`, deepJson(2000));
      case 'valid reset':
        return publish('system.reset', JSON.stringify({ resources: [pick(['library.book.*', 'library.list.*', 'library.>'])] }));
      case 'malformed reset':
        return publish('system.reset', JSON.stringify({ resources: 'library.>' }));
      case 'valid reaccess':
        return publish(`event.${bookRid(b)}.reaccess`, '');
    }
  }
}

beforeAll(async () => {
  env = await startTestEnv(librarySdl, { requestTimeout: 1000, evictDelay: 100, maxSubscriptionsPerConnection: 50 });
  seedStore(env.svc, 'gen1');
});

afterAll(async () => {
  if (figures.length) console.log(`chaos figures (seed ${seed}):\n  ${figures.join('\n  ')}`);
  await env?.close();
  crashes.stop();
});

describe('chaos', () => {
  it('fuzzed events: clients end with exactly what the service holds', async () => {
    const { svc, gw } = env;
    const watchers = await Promise.all(Array.from({ length: clientsWatching }, () => watchAll(gw.url)));
    const counts: Record<string, number> = {};
    const started = performance.now();
    for (let i = 0; i < eventsFuzzed; i++) {
      fuzzOne(svc, counts);
      if (i % 100 === 99) await svc.nc.flush();
    }
    await svc.nc.flush();
    const published = performance.now();
    await waitFor(() => converged(svc, watchers), 10_000, 'every stream to show what the service holds');
    const recovered = performance.now();
    // and a fresh read, served from the cache the events went through, shows the same
    for (let i = 0; i < books; i++) expect(await gql(gw.url, bookQuery(i).replace('subscription', 'query'))).toEqual(expectedBook(svc, i));
    for (let i = 0; i < lists; i++) expect(await gql(gw.url, listQuery(i).replace('subscription', 'query'))).toEqual(expectedList(svc, i));
    const streams = watchers.length * (books + lists);
    const hostile = Object.entries(counts).filter(([k]) => !k.startsWith('valid')).reduce((n, [, v]) => n + v, 0);
    figures.push(
      `events fuzzed: ${eventsFuzzed} (${hostile} hostile) in ${(published - started).toFixed(0)} ms to ${streams} streams; ` +
        `converged ${(recovered - published).toFixed(0)} ms after the last one`,
      `  by kind: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    );
    for (const w of watchers) await w.close();
    await waitFor(async () => (await metric(gw, 'resgraph_live_subscriptions')) === 0, 3000, 'the streams to end');
    expect(crashes.seen).toEqual([]);
  }, 20_000);

  it('churned connections: nothing is left behind, and the heap returns near where it was', async () => {
    const { svc, gw } = env;
    await waitFor(async () => (await metric(gw, 'resgraph_cache_entries')) === 0, 3000, 'the cache to empty');
    const heapBefore = heapMb();
    let stop = false;
    // events keep flowing while clients come and go
    const changes = (async () => {
      for (let n = 0; !stop; n++) {
        await svc.change(bookRid(n % books), { title: `churn ${n}` });
        await new Promise((r) => setImmediate(r));
      }
    })();
    const started = performance.now();
    let abrupt = 0;
    const oneClient = (k: number) =>
      new Promise<void>((resolve, reject) => {
        const socket = new WebSocket(wsUrl(gw.url), 'graphql-transport-ws');
        const timer = setTimeout(() => reject(new Error(`client ${k} got no result`)), 5000);
        socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init' })));
        let done = false;
        socket.on('message', (raw) => {
          const msg = JSON.parse(String(raw));
          if (done) return;
          if (msg.type === 'connection_ack') {
            for (let i = 0; i < 1 + (k % 3); i++) {
              socket.send(JSON.stringify({ id: String(i), type: 'subscribe', payload: { query: bookQuery((k + i) % books) } }));
            }
          } else if (msg.type === 'next') {
            done = true;
            clearTimeout(timer);
            if (k % 2 === 0) {
              abrupt++;
              socket.terminate();
            } else socket.close(1000);
            resolve();
          }
        });
        socket.on('error', () => undefined);
      });
    for (let k = 0; k < churned; k += 24) await Promise.all(Array.from({ length: 24 }, (_, j) => oneClient(k + j)));
    const churnMs = performance.now() - started;
    stop = true;
    await changes;
    const cleanStarted = performance.now();
    await waitFor(
      async () => {
        const m = await scrape(gw.metricsUrl!);
        return ['resgraph_connections', 'resgraph_live_subscriptions', 'resgraph_cache_entries', 'resgraph_cache_subscriptions'].every((name) => m.sum(name) === 0);
      },
      5000,
      'every connection, stream and cache entry of the churned clients to go',
    );
    const cleanMs = performance.now() - cleanStarted;
    const heapAfter = heapMb();
    figures.push(
      `connections churned: ${churned} (${abrupt} dropped without a close) in ${churnMs.toFixed(0)} ms with changes flowing; ` +
        `all released ${cleanMs.toFixed(0)} ms later; heap ${heapBefore.toFixed(1)} MB before, ${heapAfter.toFixed(1)} MB after`,
    );
    // a leak of a few kB per connection would show as several MB here
    expect(heapAfter - heapBefore).toBeLessThan(8);
    expect(crashes.seen).toEqual([]);
  }, 20_000);

  it('a crashed service: answers at once while none is there, and recovers after the new one resets', async () => {
    const { svc, gw, nats } = env;
    const watcher = await watchAll(gw.url);
    await svc.close();
    // the broker drops a closed connection's subscriptions a moment after it closes: until then a
    // request goes to it and waits for the timeout, which is not what this measures
    const probe = await connect({ servers: nats.url });
    await waitFor(
      () => probe.request('get.library.book.c999', new Uint8Array(), { timeout: 500 }).then(() => false, (e: { code?: string }) => e.code === ErrorCode.NoResponders),
      5000,
      "the broker to drop the closed service's subscriptions",
    );
    await probe.close();
    // while no service is there: an immediate system.notFound, not a wait for the timeout
    const askedAt = performance.now();
    const r = await gql(gw.url, '{ book(id: "c999") { title } }');
    const answerMs = performance.now() - askedAt;
    expect(r.errors?.[0]?.extensions?.code).toBe('system.notFound');

    const next = await TestService.start(nats.url);
    seedStore(next, 'gen2');
    const resetAt = performance.now();
    await next.publish('system.reset', { resources: ['library.>'] });
    await waitFor(() => converged(next, [watcher]), 5000, 'every stream to show the new service\'s data');
    const recoverMs = performance.now() - resetAt;
    figures.push(
      `service crash: no-service answer in ${answerMs.toFixed(1)} ms; ${books + lists} streams recovered ` +
        `${recoverMs.toFixed(0)} ms after the new service's system.reset`,
    );
    await watcher.close();
    await next.close();
    expect(crashes.seen).toEqual([]);
  }, 20_000);

  it('the depth check costs a small part of parsing a normal payload', () => {
    const decoder = new TextDecoder();
    /** µs per call, over about 150 ms of calls after a warm-up */
    const time = (f: () => unknown) => {
      for (let i = 0; i < 50; i++) f();
      const t = performance.now();
      let calls = 0;
      while (performance.now() - t < 150) {
        for (let i = 0; i < 20; i++) f();
        calls += 20;
      }
      return ((performance.now() - t) * 1000) / calls;
    };
    let bytes = new Uint8Array();
    // get replies of a typical and of a large size, a quarter of the properties data values
    for (const properties of [40, 400]) {
      const model: Record<string, unknown> = {};
      for (let i = 0; i < properties; i++) model[`p${i}`] = i % 4 === 0 ? { data: { list: [i, i + 1], note: `n${i}` } } : `value number ${i}`;
      bytes = enc.encode(JSON.stringify({ result: { model } }));
      const check = time(() => jsonDepthExceeds(bytes));
      const parse = time(() => JSON.parse(decoder.decode(bytes)));
      figures.push(
        `depth check: ${check.toFixed(1)} µs for a ${bytes.length}-byte get reply, against ${parse.toFixed(1)} µs to decode and parse it ` +
          `(${((check / parse) * 100).toFixed(0)} %); nothing for payloads of 1,000 bytes or less`,
      );
    }
    expect(jsonDepthExceeds(bytes)).toBe(false);
    expect(jsonDepthExceeds(enc.encode(deepJson(1001)))).toBe(true);
    expect(jsonDepthExceeds(enc.encode(`["${'['.repeat(5000)}"]`))).toBe(false);
  });
});
