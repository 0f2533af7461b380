/**
 * Throttled resyncs, seen by the service: after `system.reset`s covering
 * 10,500 cached resources, no more re-gets are in flight at once than
 * `resyncConcurrency`, over both resets together; the resources a live
 * result holds are asked for before the ones nothing holds; and the
 * subscriber ends at the service's state.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'graphql-ws';
import { startTestEnv, type TestEnv } from './helpers/env.js';
import { subscribeWs, wsClient } from './helpers/live-client.js';
import { waitFor } from './helpers/wait.js';

const sdl = /* GraphQL */ `
type Item @resource(rid: "sync.item.{id}") {
  n: Int
}
type Other @resource(rid: "sync.other.{id}") {
  n: Int
}
type Query {
  items: [Item!]! @get(rid: "sync.items")
  others: [Other!]! @get(rid: "sync.others")
}
`;
const held = 10_000;
const unheld = 500;
const concurrency = 16;

let env: TestEnv;
let ws: Client;

beforeAll(async () => {
  // unheld entries stay cached for the whole test
  // ten thousand gets for the first result take a while on a busy machine
  env = await startTestEnv(sdl, { resyncConcurrency: concurrency, evictDelay: 120_000, requestTimeout: 30_000 });
  const { svc } = env;
  svc.collection('sync.items', Array.from({ length: held }, (_, i) => ({ rid: `sync.item.${i}` })));
  svc.collection('sync.others', Array.from({ length: unheld }, (_, i) => ({ rid: `sync.other.${i}` })));
  for (let i = 0; i < held; i++) svc.model(`sync.item.${i}`, { n: 0 });
  for (let i = 0; i < unheld; i++) svc.model(`sync.other.${i}`, { n: 0 });
  ws = wsClient(env.gw.url);
}, 60_000);

afterAll(async () => {
  await ws?.dispose();
  await env?.close();
});

describe('resyncs after system.reset', () => {
  it('never has more re-gets in flight than the bound, asks for held resources first, and ends at the service state', async () => {
    const { svc, gw } = env;
    const stream = subscribeWs(ws, 'subscription { items { n } }');
    const first = await stream.next(30_000);
    expect(first.errors).toBeUndefined();
    expect(first.data.items).toHaveLength(held);
    // cached, held by nothing once the request is answered
    expect((await (await fetch(gw.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ others { n } }' }) })).json()).data.others).toHaveLength(unheld);

    // the service's state moves on without events: only a re-get can see it (a few items: each
    // change re-runs the 10,000-item result, which is not what this test measures)
    const changed = (i: number) => i % 1000 === 0;
    for (let i = 0; i < held; i += 1000) svc.model(`sync.item.${i}`, { n: 1 });
    let inFlight = 0;
    let peak = 0;
    const order: string[] = [];
    svc.handle('get.sync.>', async (_p, subject) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      order.push(subject);
      // a service that takes a moment, so that re-gets overlap
      await new Promise((r) => setTimeout(r, 1));
      inFlight--;
      return { result: structuredClone(svc.resources.get(subject.slice('get.'.length))!) };
    });
    const started = Date.now();
    // two resets at once: the bound holds over both
    await svc.publish('system.reset', { resources: ['sync.>'] });
    await svc.publish('system.reset', { resources: ['sync.item.>'] });

    for (;;) {
      const { data } = await stream.next(60_000);
      if (data.items.every((item: { n: number }, i: number) => item.n === (changed(i) ? 1 : 0))) break;
    }
    await waitFor(() => new Set(order).size === held + unheld + 2 && inFlight === 0, 60_000, 'every cached resource to be re-got');
    const ms = Date.now() - started;
    console.log(`resync of ${held + unheld + 2} resources: peak ${peak} in flight (bound ${concurrency}), ${order.length} gets in ${ms} ms`);

    expect(peak).toBeLessThanOrEqual(concurrency);
    expect(peak).toBe(concurrency);
    const firstAsked = (prefix: string) => order.findIndex((s) => s.startsWith(prefix));
    const lastHeld = Math.max(...[...new Set(order)].filter((s) => s.startsWith('get.sync.item.')).map((s) => order.indexOf(s)));
    expect(lastHeld).toBeLessThan(firstAsked('get.sync.other.'));
  }, 120_000);
});
