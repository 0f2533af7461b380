/**
 * Live results under random events. A seeded sequence of events (changes,
 * some deleting properties, adds and removes at random indexes, reference
 * swaps, soft references, data values, deletes, resets of silently changed
 * resources, withdrawn access) runs against a store of models and
 * collections. After each batch, every live operation (subscriptions,
 * `@live(patch: false)` and `@live` patches rebuilt by the n1ru4l client
 * helper) must equal a fresh execution of the same operation byte for
 * byte: a second gateway, which keeps nothing between requests, answers it
 * over HTTP straight from the service.
 *
 * A failing run prints its seed; `RANDOM_SEED=<n> npx vitest run
 * test/live-random.test.ts` replays it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyLiveQueryJSONPatch } from '@n1ru4l/graphql-live-query-patch-json-patch';
import type { Client } from 'graphql-ws';
import { startTestEnv, type TestEnv } from './helpers/env.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { wsClient, type StreamResult } from './helpers/live-client.js';
import { LiveView, mulberry32, tap } from './helpers/live-view.js';
import { scrape } from './helpers/metrics.js';

const sdl = /* GraphQL */ `
interface Node {
  id: ID!
}

type Item implements Node @resource(rid: "rnd.item.{id}") {
  id: ID! @rid
  name: String
  price: Int
  label: String @field(name: "title")
  meta: JSON
  tags: [String]
  owner: Person
  "a soft reference"
  related: Item
}

type Person implements Node @resource(rid: "rnd.person.{id}") {
  id: ID! @rid
  name: String
  friends: [Person]
}

union Thing = Item | Person

type Query {
  items: [Item] @get(rid: "rnd.items")
  item(id: ID!): Item @get(rid: "rnd.item.{id}")
  things: [Thing] @get(rid: "rnd.things")
  nodes: [Node] @get(rid: "rnd.things")
  grid: [[Int]] @get(rid: "rnd.grid")
  rows(id: ID!): [[Int]] @get(rid: "rnd.rows.{id}")
}
`;

/** The live operations under test; `mode` says how each is asked for. */
const operations: { name: string; mode: 'subscription' | 'full' | 'patch'; selection: string; variables?: Record<string, unknown> }[] = [
  {
    name: 'items, every kind of field',
    mode: 'patch',
    selection: '{ items { id name cost: price label meta tags owner { id name } related { id name price } } }',
  },
  {
    name: 'union with fragments',
    mode: 'subscription',
    selection: '{ things { __typename ... on Item { id name owner { name } } ...P } } fragment P on Person { id name friends { name } }',
  },
  {
    name: 'interface, @include, aliases',
    mode: 'full',
    selection:
      'query Q($deep: Boolean!) { nodes { id ... on Item { n: name tags @include(if: $deep) } ... on Person { name friends @include(if: $deep) { id } } } }',
    variables: { deep: true },
  },
  {
    name: 'lists of lists and a single model',
    mode: 'patch',
    selection: '{ grid first: item(id: "1") { name price meta related { name owner { name friends { name } } } } }',
  },
  {
    name: 'the same items, full results',
    mode: 'subscription',
    selection: '{ items { ...I } } fragment I on Item { id price owner { name friends { id name } } related { label } }',
  },
];

const seed = Number(process.env.RANDOM_SEED ?? Math.floor(Math.random() * 2 ** 31));
const batches = Number(process.env.RANDOM_BATCHES ?? 60);
const eventsPerBatch = 30;

type Model = Record<string, unknown>;
const ref = (rid: string, soft = false) => (soft ? { rid, soft: true } : { rid });

let env: TestEnv;
/** the gateway that answers fresh executions: it holds nothing between requests */
let fresh: TestGateway;
let client: Client;

beforeAll(async () => {
  env = await startTestEnv(sdl);
  fresh = await startTestGateway(env.nats.url, sdl, { evictDelay: 0 });
  client = wsClient(env.gw.url);
});

afterAll(async () => {
  await client?.dispose();
  await fresh?.close();
  await env?.close();
});

/** The service's store and the random events that change it, each applied to the store before it is published. */
class RandomStore {
  private nextItem = 1;
  private readonly people = 6;
  /** items that exist in the store */
  readonly items: number[] = [];
  /** items withdrawn from view by their access rule */
  readonly hidden = new Set<number>();

  constructor(
    private readonly env: TestEnv,
    private readonly rand: () => number,
  ) {}

  private get svc() {
    return this.env.svc;
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rand() * xs.length)];
  }

  private int(n: number): number {
    return Math.floor(this.rand() * n);
  }

  private model(rid: string): Model {
    const r = this.svc.resources.get(rid);
    if (!r || !('model' in r)) throw new Error(`no model ${rid}`);
    return r.model as Model;
  }

  private collection(rid: string): unknown[] {
    const r = this.svc.resources.get(rid);
    if (!r || !('collection' in r)) throw new Error(`no collection ${rid}`);
    return r.collection;
  }

  private randomValue(): unknown {
    switch (this.int(4)) {
      case 0:
        return `v${this.int(1000)}`;
      case 1:
        return this.int(100);
      case 2:
        return { data: { n: this.int(10), list: [this.int(5), `x${this.int(5)}`], nested: { ok: this.rand() < 0.5 } } };
      default:
        return null;
    }
  }

  createItem(): number {
    const id = this.nextItem++;
    this.svc.model(`rnd.item.${id}`, {
      name: `item ${id}`,
      price: this.int(100),
      title: `Title ${id}`,
      tags: ref(`rnd.item.${id}.tags`),
      owner: ref(`rnd.person.${1 + this.int(this.people)}`),
      ...(this.items.length > 0 && this.rand() < 0.5 ? { related: ref(`rnd.item.${this.pick(this.items)}`, true) } : {}),
      ...(this.rand() < 0.5 ? { meta: { data: { created: id } } } : {}),
    });
    this.svc.collection(`rnd.item.${id}.tags`, Array.from({ length: this.int(3) }, () => `t${this.int(9)}`));
    this.items.push(id);
    return id;
  }

  seed(): void {
    for (let p = 1; p <= this.people; p++) {
      this.svc.model(`rnd.person.${p}`, { name: `person ${p}`, friends: ref(`rnd.person.${p}.friends`) });
      this.svc.collection(`rnd.person.${p}.friends`, [ref(`rnd.person.${1 + (p % this.people)}`)]);
    }
    for (let i = 0; i < 12; i++) this.createItem();
    this.svc.collection('rnd.items', this.items.slice(0, 8).map((id) => ref(`rnd.item.${id}`)));
    this.svc.collection('rnd.things', [ref('rnd.item.1'), ref('rnd.person.1'), ref('rnd.item.2'), ref('rnd.person.2')]);
    for (let r = 1; r <= 3; r++) this.svc.collection(`rnd.row.${r}`, [r, r * 10]);
    this.svc.collection('rnd.grid', [ref('rnd.row.1'), ref('rnd.row.2')]);
  }

  /** One random event, applied to the store and published; returns what it did (for the failure message). */
  async step(): Promise<string> {
    const roll = this.int(100);
    if (roll < 30) return this.changeScalars();
    if (roll < 38) return this.swapOwner();
    if (roll < 44) return this.swapRelated();
    if (roll < 58) return this.addOrRemove('rnd.items', () => ref(`rnd.item.${this.rand() < 0.3 ? this.createItem() : this.pick(this.items)}`), 1);
    if (roll < 66) return this.addOrRemove(`rnd.item.${this.pick(this.items)}.tags`, () => `t${this.int(9)}`, 0);
    if (roll < 72) return this.addOrRemove(`rnd.person.${1 + this.int(this.people)}.friends`, () => ref(`rnd.person.${1 + this.int(this.people)}`), 0);
    if (roll < 80) {
      const thing = () => (this.rand() < 0.5 ? ref(`rnd.item.${this.pick(this.items)}`) : ref(`rnd.person.${1 + this.int(this.people)}`));
      return this.addOrRemove('rnd.things', thing, 1);
    }
    if (roll < 86) return this.changeGrid();
    if (roll < 90) return this.deleteItem();
    if (roll < 95) return this.silentChangeThenReset();
    return this.toggleAccess();
  }

  private async changeScalars(): Promise<string> {
    const id = this.pick(this.items);
    const values: Model = {};
    for (const key of ['name', 'price', 'title', 'meta']) {
      if (this.rand() < 0.4) continue;
      const roll = this.rand();
      if (roll < 0.15) values[key] = { action: 'delete' };
      else if (key === 'meta') values[key] = this.randomValue();
      else if (key === 'price') values[key] = this.int(1000);
      else values[key] = `${key} ${this.int(1000)}`;
    }
    if (Object.keys(values).length === 0) values.price = this.int(1000);
    await this.svc.change(`rnd.item.${id}`, values);
    return `change rnd.item.${id} ${JSON.stringify(values)}`;
  }

  private async swapOwner(): Promise<string> {
    const id = this.pick(this.items);
    const owner = this.rand() < 0.1 ? null : ref(`rnd.person.${1 + this.int(this.people)}`);
    await this.svc.change(`rnd.item.${id}`, { owner });
    return `owner of rnd.item.${id} = ${JSON.stringify(owner)}`;
  }

  private async swapRelated(): Promise<string> {
    const id = this.pick(this.items);
    const related = this.rand() < 0.2 ? { action: 'delete' } : ref(`rnd.item.${this.pick(this.items)}`, true);
    await this.svc.change(`rnd.item.${id}`, { related });
    return `related of rnd.item.${id} = ${JSON.stringify(related)}`;
  }

  private async addOrRemove(rid: string, value: () => unknown, keep: number): Promise<string> {
    const list = this.collection(rid);
    if (list.length > keep && (list.length > 12 || this.rand() < 0.45)) {
      const idx = this.int(list.length);
      await this.svc.remove(rid, idx);
      return `remove ${rid} @${idx}`;
    }
    const idx = this.int(list.length + 1);
    const v = value();
    await this.svc.add(rid, v, idx);
    return `add ${rid} @${idx} ${JSON.stringify(v)}`;
  }

  private async changeGrid(): Promise<string> {
    if (this.rand() < 0.3) return this.addOrRemove('rnd.grid', () => ref(`rnd.row.${1 + this.int(3)}`), 0);
    return this.addOrRemove(`rnd.row.${1 + this.int(3)}`, () => this.int(100), 0);
  }

  /** Deletes an item the way a service does: gone from the store, then the `delete` event. */
  private async deleteItem(): Promise<string> {
    if (this.items.length < 6) return this.changeScalars();
    // item 1 is the single-model root of one operation: its deletion ends that stream by design
    const candidates = this.items.filter((id) => id !== 1);
    const id = this.pick(candidates);
    this.items.splice(this.items.indexOf(id), 1);
    this.svc.resources.delete(`rnd.item.${id}`);
    await this.svc.event(`rnd.item.${id}`, 'delete');
    return `delete rnd.item.${id}`;
  }

  /** Changes a resource in the store without an event, then resets it: the gateway must pick up the difference. */
  private async silentChangeThenReset(): Promise<string> {
    const id = this.pick(this.items);
    const m = this.model(`rnd.item.${id}`);
    m.name = `reset ${this.int(1000)}`;
    m.price = this.int(1000);
    const tags = this.collection(`rnd.item.${id}.tags`);
    tags.splice(this.int(tags.length + 1), 0, `r${this.int(9)}`);
    await this.svc.publish('system.reset', { resources: [`rnd.item.${id}`, `rnd.item.${id}.tags`] });
    return `silent change + system.reset of rnd.item.${id}`;
  }

  /** Withdraws (or gives back) access to an item, then tells the gateways with `reaccess`. */
  private async toggleAccess(): Promise<string> {
    // item 1 is a root: losing access to it ends that stream by design
    const id = this.pick(this.items.filter((i) => i !== 1));
    if (this.hidden.has(id)) {
      this.hidden.delete(id);
      this.svc.accessRules.delete(`rnd.item.${id}`);
    } else {
      this.hidden.add(id);
      this.svc.accessRules.set(`rnd.item.${id}`, { get: false });
    }
    await this.svc.event(`rnd.item.${id}`, 'reaccess');
    return `${this.hidden.has(id) ? 'withdraw' : 'give back'} access to rnd.item.${id}`;
  }
}

/**
 * The exact text of a result's data and errors, in the order the gateway
 * wrote them; errors sorted by path, since execution lists them as they
 * happen, which depends on which resources were already cached.
 */
function text(r: StreamResult | undefined): string {
  if (!r) return 'nothing';
  if (r.errors === undefined) return JSON.stringify({ data: r.data });
  const errors = r.errors.map((e) => [JSON.stringify(e.path), JSON.stringify(e)] as const).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify({ data: r.data, errors: errors.map(([, e]) => JSON.parse(e) as unknown) });
}

/** Where two JSON values first differ, for a failure message a reader can act on. */
function firstDifference(a: unknown, b: unknown, path = ''): string | undefined {
  if (JSON.stringify(a) === JSON.stringify(b)) return undefined;
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    for (const k of keys) {
      const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}/${k}`);
      if (d) return d;
    }
  }
  return `${path || '/'}: ${JSON.stringify(a)} instead of ${JSON.stringify(b)}`;
}

/** A fresh execution, over HTTP, on the gateway that keeps nothing. */
async function freshResult(document: string, variables?: Record<string, unknown>): Promise<string> {
  const res = await fetch(fresh.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query: document, variables }),
  });
  const body = JSON.parse(await res.text()) as StreamResult;
  return text(body);
}

/**
 * The operation's live document, and the fresh one laid out the same way
 * (the live directive or keyword blanked out), so error locations match.
 */
function documents(op: (typeof operations)[number]): { live: string; fresh: string } {
  const s = op.selection;
  const brace = s.startsWith('query ') ? s.indexOf('{') : 0;
  const head = brace > 0 ? s.slice(0, brace) : 'query ';
  const body = s.slice(brace);
  if (op.mode === 'subscription') {
    return { live: head.replace('query', 'subscription') + body, fresh: head.replace('query', 'query       ') + body };
  }
  const directive = op.mode === 'full' ? '@live(patch: false) ' : '@live ';
  return { live: head + directive + body, fresh: head + ' '.repeat(directive.length) + body };
}

function open(op: (typeof operations)[number], wire: StreamResult[]): LiveView {
  const source = tap(client.iterate({ query: documents(op).live, variables: op.variables }) as AsyncIterable<StreamResult>, wire);
  return new LiveView(op.mode === 'patch' ? (applyLiveQueryJSONPatch(source) as AsyncIterable<StreamResult>) : source);
}

describe('lists with failed items', () => {
  it('keep their length over HTTP, also once the query runs compiled, and live', async () => {
    // graphql-jit appends a null for each list item whose promise rejected:
    // the gateway runs such a result again through graphql-js (compiled.ts)
    env.svc.collection('rnd.row.71', [1, 2]);
    env.svc.collection('rnd.rows.71', [ref('rnd.row.71'), ref('rnd.row.404'), ref('rnd.row.71')]);
    const want = { data: { rows: [[1, 2], null, [1, 2]] } };
    for (let run = 1; run <= 3; run++) {
      const body = (await (await fetch(env.gw.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ query: '{ rows(id: 71) }' }),
      })).json()) as StreamResult;
      expect({ data: body.data }, `run ${run}`).toEqual(want);
      expect(body.errors?.map((e) => [e.path, e.extensions?.code])).toEqual([[['rows', 1], 'system.notFound']]);
    }
    const view = new LiveView(client.iterate({ query: 'subscription { rows(id: 71) }' }) as AsyncIterable<StreamResult>);
    await view.until((v) => v.results.length > 0, 3000, 'the first result');
    await env.svc.add('rnd.rows.71', ref('rnd.row.404'), 0);
    await view.until((v) => v.results.length > 1, 3000, 'the result after an add');
    // the second result is a re-run of a compiled document (its second run)
    expect(view.data).toEqual({ rows: [null, [1, 2], null, [1, 2]] });
  });
});

describe(`live results under random events (seed ${seed})`, () => {
  it('stay equal to a fresh execution after every batch, in every mode', { timeout: 120_000 }, async () => {
    const rand = mulberry32(seed);
    const store = new RandomStore(env, rand);
    store.seed();
    const views = operations.map((op) => {
      const wire: StreamResult[] = [];
      return { op, wire, view: open(op, wire) };
    });
    const history: string[] = [];
    try {
      for (let batch = 0; batch <= batches; batch++) {
        if (batch > 0) for (let i = 0; i < eventsPerBatch; i++) history.push(await store.step());
        for (const { op, view } of views) {
          const want = await freshResult(documents(op).fresh, op.variables);
          await view.until((v) => text(v.last) === want, 5000, `"${op.name}" to equal a fresh execution`).catch((e: Error) => {
            throw new Error(`${e.message.split(';')[0]}; it differs at ${firstDifference(JSON.parse(text(view.last)), JSON.parse(want))}`);
          });
        }
      }
    } catch (e) {
      const last = history.slice(-eventsPerBatch).join('\n  ');
      console.error(`live-random failed with RANDOM_SEED=${seed}; the last batch:\n  ${last}`);
      for (const { op, view } of views) console.error(`VIEW "${op.name}": ${text(view.last)}`);
      for (const { op, wire } of views) console.error(`"${op.name}", its last frames:\n  ${wire.slice(-6).map((w) => JSON.stringify(w)).join('\n  ')}`);
      throw e;
    } finally {
      // a stream left open would outlive the test
      for (const { op, view, wire } of views) {
        if (view.error) console.error(`"${op.name}" failed; its last frames:\n  ${wire.slice(-3).map((w) => JSON.stringify(w)).join('\n  ')}`);
        expect(view.error).toBeUndefined();
      }
    }
    // how the updates were made: applied to the last result, or by running the operation again (incremental.ts)
    const m = await scrape(env.gw.metricsUrl!);
    const updates: Record<string, number> = {};
    for (const line of m.text.split('\n')) {
      const hit = /^resgraph_live_incremental_total\{outcome="(\w+)",reason="(\w*)"\} (\d+)/.exec(line);
      if (hit && Number(hit[3]) > 0) updates[hit[2] ? `${hit[1]}:${hit[2]}` : hit[1]] = Number(hit[3]);
    }
    const total = Object.values(updates).reduce((a, b) => a + b, 0);
    const share = (k: string) => `${k} ${updates[k]} (${Math.round((100 * updates[k]!) / total)}%)`;
    console.info(`live-random: seed ${seed}, ${history.length} events, ${views.length} live operations; updates: ${Object.keys(updates).sort().map(share).join(', ')}`);
    // the random changes of scalar properties must take the incremental path, which the comparisons above then checked
    expect(updates.applied ?? 0).toBeGreaterThan(0);
  });
});
