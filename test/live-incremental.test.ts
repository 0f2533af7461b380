/**
 * Incremental live results, as clients and /metrics see them: a change of
 * scalar properties is applied to the last result (no execution; the
 * `@live` patch names only the fields that show them), with exactly the
 * values, aliases, renames and errors a fresh execution gives; what it
 * cannot apply exactly (a null for a non-null field, a value its type
 * rejects, a scalar that becomes a reference, an added item that fails)
 * runs the operation again, counted with its reason. An added item and a
 * swapped reference are completed on their own, fetching what they bring.
 * Each case compares with a fresh HTTP query.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyLiveQueryJSONPatch } from '@n1ru4l/graphql-live-query-patch-json-patch';
import { startTestEnv, type TestEnv } from './helpers/env.js';
import { closeClients } from './helpers/live-fixture.js';
import { wsClient, type StreamResult } from './helpers/live-client.js';
import { LiveView, tap } from './helpers/live-view.js';
import { scrape } from './helpers/metrics.js';
import { gate, waitFor } from './helpers/wait.js';

const sdl = /* GraphQL */ `
enum Size {
  SMALL
  LARGE
}

type Item @resource(rid: "inc.item.{id}") {
  id: ID! @rid
  name: String!
  price: Int
  code: ID
  label: String @field(name: "title")
  size: Size
  owner: Owner
  tags: [String!]
}

type Owner @resource(rid: "inc.owner.{id}") {
  id: ID! @rid
  name: String
}

type Query {
  items: [Item!]! @get(rid: "inc.items")
  item(id: ID!): Item @get(rid: "inc.item.{id}")
  shelf(id: ID!): [Item!]! @get(rid: "inc.shelf.{id}")
}
`;

const items = 1000;
let env: TestEnv;

beforeAll(async () => {
  env = await startTestEnv(sdl, { evictDelay: 100 });
  for (let i = 0; i < items; i++) {
    env.svc.model(`inc.item.${i}`, { name: `item ${i}`, price: i, code: i, title: `label ${i}`, size: 'SMALL', owner: { rid: `inc.owner.${i % 3}` } });
  }
  for (let o = 0; o < 3; o++) env.svc.model(`inc.owner.${o}`, { name: `owner ${o}` });
  env.svc.collection('inc.items', Array.from({ length: items }, (_, i) => ({ rid: `inc.item.${i}` })));
});

afterAll(async () => {
  await env?.close();
});

/** resgraph_live_incremental_total and resgraph_live_executions_total now, by "outcome:reason" */
async function updates(): Promise<Record<string, number>> {
  const m = await scrape(env.gw.metricsUrl!);
  const out: Record<string, number> = { executions: m.sum('resgraph_live_executions_total') };
  for (const line of m.text.split('\n')) {
    const hit = /^resgraph_live_incremental_total\{outcome="(\w+)",reason="(\w*)"\} (\d+)/.exec(line);
    if (hit) out[hit[2] ? `${hit[1]}:${hit[2]}` : hit[1]!] = Number(hit[3]);
  }
  return out;
}

function delta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const d: Record<string, number> = {};
  for (const k of Object.keys(after)) if (after[k]! - (before[k] ?? 0) !== 0) d[k] = after[k]! - (before[k] ?? 0);
  return d;
}

async function fresh(query: string): Promise<StreamResult> {
  const res = await fetch(env.gw.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query }),
  });
  return (await res.json()) as StreamResult;
}

/** A client holding `query @live <selection>`: the frames it received (`wire`) and the data rebuilt from their patches (`live`), once the first result is in. */
async function watchLive(selection: string): Promise<{ client: ReturnType<typeof wsClient>; wire: StreamResult[]; live: LiveView }> {
  const client = wsClient(env.gw.url);
  const wire: StreamResult[] = [];
  const live = new LiveView(applyLiveQueryJSONPatch(tap(client.iterate({ query: `query @live ${selection}` }) as AsyncIterable<StreamResult>, wire)) as AsyncIterable<StreamResult>);
  await live.until((v) => v.results.length > 0, 5000, 'the first result');
  return { client, wire, live };
}

/** The result without the `@live` directive's mark, as a fresh query returns it. */
const text = (r: StreamResult | undefined) => JSON.stringify({ data: r?.data, ...(r?.errors ? { errors: r.errors.map((e) => ({ path: e.path, code: e.extensions?.code })) } : {}) });

describe('a change of scalar properties', () => {
  it('is applied to the last result: one patch of the changed fields, no execution, equal to a fresh query', async () => {
    const client = wsClient(env.gw.url);
    const selection = '{ items { id name cost: price price label } }';
    const wire: StreamResult[] = [];
    const live = new LiveView(applyLiveQueryJSONPatch(tap(client.iterate({ query: `query @live ${selection}` }) as AsyncIterable<StreamResult>, wire)) as AsyncIterable<StreamResult>);
    const full = new LiveView(client.iterate({ query: `subscription ${selection}` }) as AsyncIterable<StreamResult>);
    await live.until((v) => v.results.length > 0, 5000, 'the first @live result');
    await full.until((v) => v.results.length > 0, 5000, 'the first subscription result');
    // the first runs ran through graphql-js; the next ones would run compiled
    const before = await updates();

    await env.svc.change('inc.item.537', { price: 5370, title: 'relabelled' });
    const want = await fresh(selection);
    await live.until((v) => text(v.last) === text(want), 5000, '@live to show the change');
    await full.until((v) => text(v.last) === text(want), 5000, 'the subscription to show the change');
    // the price shows twice (aliased), the renamed property once; nothing else is in the patch
    expect(wire[wire.length - 1]).toEqual({
      patch: [
        { op: 'replace', path: '/items/537/cost', value: 5370 },
        { op: 'replace', path: '/items/537/price', value: 5370 },
        { op: 'replace', path: '/items/537/label', value: 'relabelled' },
      ],
      revision: 2,
    });
    // one live operation per mode, each applied once, none run
    expect(delta(await updates(), before)).toEqual({ applied: 2 });

    // a property the result does not show changes nothing, and sends nothing
    await env.svc.change('inc.item.12', { size: 'LARGE' });
    await env.svc.change('inc.item.13', { price: 1313 });
    await live.until((v) => v.data?.items?.[13]?.price === 1313, 5000, 'the next change');
    expect(wire.map((w) => (w as { patch?: unknown[] }).patch?.length)).toEqual([undefined, 3, 2]);
    await closeClients(env.gw, client);
  });

  it('serializes as execution does: an ID from a number, an enum, a rename; an error elsewhere in the result stays', async () => {
    env.svc.model('inc.item.9001', { name: 'odd', price: 'not a number', code: 1, title: 't', size: 'SMALL' });
    const selection = '{ odd: item(id: 9001) { price code size label } ok: item(id: 1) { code size } }';
    const client = wsClient(env.gw.url);
    const view = new LiveView(client.iterate({ query: `query @live(patch: false) ${selection}` }) as AsyncIterable<StreamResult>);
    await view.until((v) => v.results.length > 0, 5000, 'the first result');
    expect(view.last?.errors?.map((e) => e.path)).toEqual([['odd', 'price']]);
    const before = await updates();

    await env.svc.change('inc.item.9001', { code: 77, size: 'LARGE', title: 'renamed' });
    await env.svc.change('inc.item.1', { code: 42 });
    const want = await fresh(selection);
    await view.until((v) => text(v.last) === text(want), 5000, 'the changes, equal to a fresh query');
    expect(view.last?.data).toEqual({ odd: { price: null, code: '77', size: 'LARGE', label: 'renamed' }, ok: { code: '42', size: 'SMALL' } });
    const d = delta(await updates(), before);
    expect(d.executions ?? 0).toBe(0);
    expect(d.applied).toBeGreaterThanOrEqual(1);
    await closeClients(env.gw, client);
  });
});

describe('an item removed from a collection', () => {
  it('is taken out of the last result: one remove patch, no execution, and what it showed is let go', async () => {
    const selection = '{ items { name owner { name } } }';
    const { client, wire, live } = await watchLive(selection);
    const before = await updates();

    await env.svc.remove('inc.items', 2);
    const want = await fresh(selection);
    await live.until((v) => text(v.last) === text(want), 5000, 'the removal, equal to a fresh query');
    expect(wire[wire.length - 1]).toEqual({ patch: [{ op: 'remove', path: '/items/2' }], revision: 2 });
    // the removed item is let go: its change reaches no live result (a query that makes the
    // gateway get a new resource returns after the gateway took the event before that get's reply)
    env.svc.model('inc.item.9398', { name: 'barrier' });
    await env.svc.change('inc.item.2', { name: 'not heard' });
    await fresh('{ item(id: 9398) { name } }');
    expect(delta(await updates(), before)).toEqual({ applied: 1 });
    // later items moved up: a change of what is now item 2 lands there
    await env.svc.change('inc.item.3', { name: 'moved up' });
    await live.until((v) => v.data?.items?.[2]?.name === 'moved up', 5000, 'the change of the item that moved up');
    expect(wire[wire.length - 1]).toEqual({ patch: [{ op: 'replace', path: '/items/2/name', value: 'moved up' }], revision: 3 });
    expect(delta(await updates(), before)).toEqual({ applied: 2 });
    expect(text(live.last)).toBe(text(await fresh(selection)));
    await closeClients(env.gw, client);
  });
});

describe('a subtree that waits for the service', () => {
  it('is let go when the client leaves before it is in: the cache keeps nothing of it', async () => {
    // an env of its own: its cache is empty once its one client is gone
    const own = await startTestEnv(sdl, { evictDelay: 20 });
    try {
      own.svc.collection('inc.shelf.9', [{ rid: 'inc.item.90' }]);
      own.svc.model('inc.item.90', { name: 'there', price: 1 });
      own.svc.model('inc.item.91', { name: 'late', price: 2, owner: { rid: 'inc.owner.91' } });
      own.svc.model('inc.owner.91', { name: 'late owner' });
      const answer = gate();
      own.svc.handle('get.inc.item.91', async () => {
        await answer.promise;
        return { result: { model: { name: 'late', price: 2, owner: { rid: 'inc.owner.91' } } } };
      });
      const client = wsClient(own.gw.url);
      const live = new LiveView(client.iterate({ query: 'query @live { shelf(id: 9) { name owner { name } } }' }) as AsyncIterable<StreamResult>);
      await live.until((v) => v.results.length > 0, 5000, 'the first result');
      const asked = own.svc.nextRequest('get.inc.item.91');
      await own.svc.add('inc.shelf.9', { rid: 'inc.item.91' }, 1);
      await asked;
      await closeClients(own.gw, client);
      // the get is answered after the client left; the owner it brings is fetched for nothing and let go
      const owner = own.svc.nextRequest('get.inc.owner.91');
      answer.open();
      await owner;
      await waitFor(async () => (await scrape(own.gw.metricsUrl!)).sum('resgraph_cache_entries') === 0, 3000, 'the cache to let go of everything');
    } finally {
      await own.close();
    }
  });
});

describe('a list that holds an error', () => {
  it('moves the error with its item on an add or a removal, and drops it with the item: no execution', async () => {
    env.svc.model('inc.item.9400', { name: 'bad price', price: 'not a number' });
    env.svc.collection('inc.shelf.3', [{ rid: 'inc.item.30' }, { rid: 'inc.item.9400' }, { rid: 'inc.item.31' }]);
    const selection = '{ shelf(id: 3) { name price } }';
    const { client, wire, live } = await watchLive(selection);
    const before = await updates();
    const errorPaths = () => (wire[wire.length - 1]?.errors ?? []).map((e) => e.path);
    expect(errorPaths()).toEqual([['shelf', 1, 'price']]);

    await env.svc.remove('inc.shelf.3', 0);
    await live.until((v) => v.data?.shelf?.length === 2, 5000, 'the removal');
    expect(errorPaths()).toEqual([['shelf', 0, 'price']]);
    expect(text(live.last)).toBe(text(await fresh(selection)));
    await env.svc.add('inc.shelf.3', { rid: 'inc.item.32' }, 0);
    await live.until((v) => v.data?.shelf?.length === 3, 5000, 'the add');
    expect(errorPaths()).toEqual([['shelf', 1, 'price']]);
    expect(text(live.last)).toBe(text(await fresh(selection)));
    // the error leaves with its item: the result has no errors
    await env.svc.remove('inc.shelf.3', 1);
    await live.until((v) => v.data?.shelf?.length === 2, 5000, 'the removal of the failing item');
    expect(wire[wire.length - 1]?.errors).toBeUndefined();
    expect(text(live.last)).toBe(text(await fresh(selection)));
    expect(delta(await updates(), before)).toEqual({ applied: 3 });
    await closeClients(env.gw, client);
  });
});

describe('a collection of strings', () => {
  it('takes an added or removed string in place: one add or remove patch, no execution', async () => {
    env.svc.model('inc.item.1800', { name: 'tagged', price: 1, tags: { rid: 'inc.item.1800.tags' } });
    env.svc.collection('inc.item.1800.tags', ['a', 'b']);
    const selection = '{ item(id: 1800) { tags also: tags } }';
    const { client, wire, live } = await watchLive(selection);
    const before = await updates();

    await env.svc.add('inc.item.1800.tags', 'x', 1);
    await live.until((v) => v.data?.item?.tags?.length === 3, 5000, 'the added tag');
    expect(text(live.last)).toBe(text(await fresh(selection)));
    expect(wire[1]).toEqual({ patch: [{ op: 'add', path: '/item/tags/1', value: 'x' }, { op: 'add', path: '/item/also/1', value: 'x' }], revision: 2 });
    await env.svc.remove('inc.item.1800.tags', 0);
    await live.until((v) => v.data?.item?.tags?.[0] === 'x', 5000, 'the removed tag');
    expect(wire[2]).toEqual({ patch: [{ op: 'remove', path: '/item/tags/0' }, { op: 'remove', path: '/item/also/0' }], revision: 3 });
    expect(text(live.last)).toBe(text(await fresh(selection)));
    expect(delta(await updates(), before)).toEqual({ applied: 2 });
    await closeClients(env.gw, client);
  });
});

describe('an added or swapped reference', () => {
  it('an added item is completed on its own: one add patch of its subtree, fetched and then held, no execution', async () => {
    env.svc.collection('inc.shelf.1', [{ rid: 'inc.item.10' }, { rid: 'inc.item.11' }]);
    env.svc.model('inc.item.9200', { name: 'new', price: 92, title: 'fresh', owner: { rid: 'inc.owner.9200' } });
    env.svc.model('inc.owner.9200', { name: 'new owner' });
    const selection = '{ shelf(id: 1) { ...F owner { name } } } fragment F on Item { id n: name }';
    const { client, wire, live } = await watchLive(selection);
    const before = await updates();
    const fetched = Promise.all([env.svc.nextRequest('get.inc.item.9200'), env.svc.nextRequest('get.inc.owner.9200')]);

    await env.svc.add('inc.shelf.1', { rid: 'inc.item.9200' }, 1);
    await fetched;
    await live.until((v) => v.data?.shelf?.length === 3, 5000, 'the added item');
    expect(wire[1]).toEqual({ patch: [{ op: 'add', path: '/shelf/1', value: { id: 'inc.item.9200', n: 'new', owner: { name: 'new owner' } } }], revision: 2 });
    expect(text(live.last)).toBe(text(await fresh(selection)));
    // what the new item showed is held and heard: its changes land where it went, and the item after it moved
    await env.svc.change('inc.owner.9200', { name: 'renamed owner' });
    await env.svc.change('inc.item.11', { name: 'moved down' });
    await live.until((v) => v.data?.shelf?.[2]?.n === 'moved down', 5000, 'the changes after the add');
    expect(wire.slice(2).flatMap((w) => (w as { patch?: unknown[] }).patch ?? [])).toEqual([
      { op: 'replace', path: '/shelf/1/owner/name', value: 'renamed owner' },
      { op: 'replace', path: '/shelf/2/n', value: 'moved down' },
    ]);
    expect(text(live.last)).toBe(text(await fresh(selection)));
    // applied (the two changes after the add may have come in one batch), never run
    expect(Object.keys(delta(await updates(), before))).toEqual(['applied']);
    await closeClients(env.gw, client);
  });

  it('a swapped reference is completed on its own: one replace patch, no execution, and the old model is no longer heard', async () => {
    env.svc.model('inc.item.9300', { name: 'swapped', price: 1, owner: { rid: 'inc.owner.9301' } });
    env.svc.model('inc.owner.9301', { name: 'first owner' });
    env.svc.model('inc.owner.9302', { name: 'second owner' });
    const selection = '{ item(id: 9300) { name owner { id name } } }';
    const { client, wire, live } = await watchLive(selection);
    const before = await updates();

    await env.svc.change('inc.item.9300', { owner: { rid: 'inc.owner.9302' } });
    await live.until((v) => v.data?.item?.owner?.id === 'inc.owner.9302', 5000, 'the swapped owner');
    expect(wire[1]).toEqual({ patch: [{ op: 'replace', path: '/item/owner', value: { id: 'inc.owner.9302', name: 'second owner' } }], revision: 2 });
    expect(text(live.last)).toBe(text(await fresh(selection)));
    // the first owner is let go: its change reaches no live result (a query that makes the
    // gateway get a new resource returns after the gateway took the event before that get's reply)
    env.svc.model('inc.item.9399', { name: 'barrier' });
    await env.svc.change('inc.owner.9301', { name: 'not heard' });
    await fresh('{ item(id: 9399) { name } }');
    expect(delta(await updates(), before)).toEqual({ applied: 1 });
    // the second owner is held and heard
    await env.svc.change('inc.owner.9302', { name: 'shown' });
    await live.until((v) => v.data?.item?.owner?.name === 'shown', 5000, "the second owner's change");
    // a swap to null, and back to the first owner
    await env.svc.change('inc.item.9300', { owner: null });
    await live.until((v) => v.data?.item?.owner === null, 5000, 'no owner');
    await env.svc.change('inc.item.9300', { owner: { rid: 'inc.owner.9301' } });
    await live.until((v) => v.data?.item?.owner?.name === 'not heard', 5000, 'the first owner again');
    expect(text(live.last)).toBe(text(await fresh(selection)));
    expect(delta(await updates(), before)).toEqual({ applied: 4 });
    await closeClients(env.gw, client);
  });
});

describe('a change after access was withdrawn', () => {
  it('is not applied: the operation runs, asks access again, and the stream ends denied without showing the change', async () => {
    const client = wsClient(env.gw.url);
    const wire: StreamResult[] = [];
    const view = new LiveView(tap(client.iterate({ query: 'subscription { item(id: 6) { price } }' }) as AsyncIterable<StreamResult>, wire));
    await view.until((v) => v.results.length > 0, 5000, 'the first result');
    // the re-check's answer waits until the change has arrived behind the reaccess
    const answer = gate();
    env.svc.handle('access.inc.item.6', async () => {
      await answer.promise;
      return { result: { get: false } };
    });
    const asked = env.svc.nextRequest('access.inc.item.6');
    await env.svc.event('inc.item.6', 'reaccess');
    await env.svc.change('inc.item.6', { price: 666 });
    await asked;
    answer.open();
    await view.until((v) => v.done || v.error !== undefined || v.results.length > 1, 5000, 'the stream to end');
    expect(wire.map((r) => r.data?.item ?? null)).toEqual([{ price: 6 }, null]);
    expect(wire[1]?.errors?.map((e) => e.extensions?.code)).toEqual(['system.accessDenied']);
    await closeClients(env.gw, client);
  });
});

describe('what a change cannot be applied to', () => {
  /** subscribes, makes the change, and checks the result against a fresh query and the update's reason */
  async function fallsBack(selection: string, change: () => Promise<void>, reason: string): Promise<StreamResult> {
    const client = wsClient(env.gw.url);
    const view = new LiveView(client.iterate({ query: `subscription ${selection}` }) as AsyncIterable<StreamResult>);
    await view.until((v) => v.results.length > 0, 5000, 'the first result');
    const before = await updates();
    await change();
    const want = await fresh(selection);
    await view.until((v) => text(v.last) === text(want), 5000, 'the change, equal to a fresh query');
    const d = delta(await updates(), before);
    expect(d[`fallback:${reason}`] ?? 0, JSON.stringify(d)).toBeGreaterThanOrEqual(1);
    expect(d.executions).toBeGreaterThanOrEqual(1);
    expect(d.applied ?? 0).toBe(0);
    await closeClients(env.gw, client);
    return view.last!;
  }

  it('a null for a non-null field runs the operation: the null propagates as execution makes it', async () => {
    const last = await fallsBack('{ item(id: 2) { name price } }', () => env.svc.change('inc.item.2', { name: { action: 'delete' } }), 'value');
    expect(last.data).toEqual({ item: null });
    expect(last.errors?.map((e) => e.path)).toEqual([['item', 'name']]);
  });

  it('a value the field type rejects runs the operation, which reports the field error', async () => {
    const last = await fallsBack('{ item(id: 3) { price } }', () => env.svc.change('inc.item.3', { price: 1.5 }), 'value');
    expect(last.data).toEqual({ item: { price: null } });
    expect(last.errors?.map((e) => e.path)).toEqual([['item', 'price']]);
  });

  it('a scalar that becomes a reference runs the operation', async () => {
    await fallsBack('{ item(id: 5) { label } }', () => env.svc.change('inc.item.5', { title: { rid: 'inc.owner.1' } }), 'reference');
  });

  it('an added item whose get fails runs the operation, which reports its error', async () => {
    env.svc.collection('inc.shelf.2', [{ rid: 'inc.item.20' }]);
    const last = await fallsBack('{ shelf(id: 2) { name } }', () => env.svc.add('inc.shelf.2', { rid: 'inc.item.missing' }, 0), 'errors');
    expect(last.errors?.map((e) => [e.path, e.extensions?.code])).toEqual([[['shelf', 0], 'system.notFound']]);
  });
});
