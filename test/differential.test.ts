/**
 * Differential tests: resgraph against Resgate 1.8.0 as an oracle. One
 * fixture service (TestService) on one nats-server serves both gateways.
 * For each scripted event sequence, a resgraph graphql-ws subscription and a
 * Resgate WebSocket subscription watch the same resource while the service
 * publishes; after each step that has a visible effect both are awaited
 * until they show it, and the resgraph result must equal the state the
 * Resgate client rebuilt, read along the GraphQL selection (denormalize in
 * helpers/resgate.ts). Errors must carry the same RES codes, and resgraph
 * must not send the service more `get` or `access` requests than Resgate.
 *
 * How requests are told apart. Get requests carry no cid, so requests cannot
 * be attributed by payload. Each scenario therefore runs twice, once per
 * gateway, on identical fresh fixture state under disjoint resource names:
 * every rid of a run contains the run's key (`chgG` for resgraph, `chgR` for
 * Resgate, e.g. `diff.book.chgG`, `diff.author.chgG`). A request belongs to a
 * run iff its subject contains the run's key; the two gateways never share a
 * resource, so neither one's cache (both keep unused resources a few seconds,
 * with their event subscriptions) can react to the other run's events or
 * resets, and both run with their default cache settings. Observations are
 * compared after mapping the run key back to the scenario key.
 *
 * Skipped, with a printed reason, when no Resgate binary is found
 * (RESGATE_BIN, else ../shared/resgate/resgate beside the repository).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { closeClients } from './helpers/live-fixture.js';
import { subscribeWs, wsClient, type ResultStream } from './helpers/live-client.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import {
  ResgateClient,
  ResgateRequestError,
  denormalize,
  findResgate,
  rootField,
  sortErrors,
  startResgate,
  type Denormalized,
  type ResErrorObject,
  type ResgateServer,
} from './helpers/resgate.js';
import { TestService } from './helpers/res-service.js';
import { waitFor } from './helpers/wait.js';

const found = findResgate();
const resgateBin = 'bin' in found ? found.bin : undefined;
if (!resgateBin) console.warn(`differential.test.ts skipped: ${'reason' in found ? found.reason : ''}`);

const sdl = /* GraphQL */ `
type Book @resource(rid: "diff.book.{id}") {
  id: ID! @rid
  title: String
  year: Int
  note: String
  author: Author
  tags: [String]
}

type Author @resource(rid: "diff.author.{id}") {
  id: ID! @rid
  name: String
}

type Query {
  book(id: ID!): Book @get(rid: "diff.book.{id}")
  list(id: ID!): [Book] @get(rid: "diff.list.{id}")
  search(id: ID!, tag: String!): [Book] @get(rid: "diff.search.{id}?tag={tag}")
}

type Mutation {
  refuse(id: ID!, reason: String!): JSON @call(rid: "diff.book.{id}", method: "refuse", params: "{ reason }")
  accept(id: ID!, reason: String!): JSON @call(rid: "diff.book.{id}", method: "accept", params: "{ reason }")
}

type Subscription {
  pings(id: ID!): JSON @event(rid: "diff.book.{id}", name: "ping")
}
`;

/** The request timeout of the gateway pair that tests timeouts, in ms (both: Resgate `-r`, resgraph `requestTimeout`). */
const shortTimeout = 500;
const DEL = { action: 'delete' };
const ref = (rid: string) => ({ rid });
const enc = new TextEncoder();

/**
 * What a client shows: a result (GraphQL data, and errors as path + RES
 * code), or the end of the subscription with a code. The intended mappings
 * between the two protocols:
 * - resgraph ends a subscription whose root is deleted with system.notFound
 *   (docs/protocol-notes.md#ended-streams); Resgate sends `delete` and then `unsubscribe`
 *   with reason system.deleted: both are `{ended: 'system.notFound'}`.
 * - lost access: resgraph ends the stream with system.accessDenied; Resgate
 *   sends `unsubscribe` with that reason: `{ended: 'system.accessDenied'}`.
 * - a root that fails with system.notFound / system.accessDenied ends a
 *   resgraph subscription at once; Resgate refuses the subscribe request
 *   with the code: `{ended: code}`. Other root errors (system.timeout) leave
 *   the resgraph stream open with `{book: null}` and the error at `book`.
 */
type Observed = Denormalized | { ended: string };

const terminalCodes = new Set(['system.notFound', 'system.accessDenied']);

interface Side {
  observe(): Observed | undefined;
  /** resolves with the first observation satisfying pred; rejects after timeoutMs with the last one */
  until(pred: (o: Observed) => boolean, what: string, timeoutMs?: number): Promise<Observed>;
  close(): Promise<void>;
}

function resgraphObservation(stream: ResultStream): Observed | undefined {
  const last = stream.results.at(-1);
  if (stream.done) {
    const code = last?.errors?.[0]?.extensions?.code;
    return { ended: code ? String(code) : `stream ended without an error result (${JSON.stringify(stream.error ?? null)})` };
  }
  if (!last) return undefined;
  return {
    data: (last.data ?? {}) as Record<string, unknown>,
    errors: sortErrors((last.errors ?? []).map((e) => ({ path: e.path ?? [], code: String(e.extensions?.code) }))),
  };
}

function resgraphSide(gw: TestGateway, query: string): Side {
  const client = wsClient(gw.url);
  const stream = subscribeWs(client, query);
  const observe = () => resgraphObservation(stream);
  return {
    observe,
    async until(pred, what, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const o = observe();
        if (o && pred(o)) return o;
        if (stream.done) throw new Error(`resgraph: the stream ended before ${what}; last: ${JSON.stringify(o)}`);
        try {
          await stream.next(Math.max(1, deadline - Date.now()));
        } catch (e) {
          if (stream.done) continue;
          throw new Error(`resgraph: no ${what} within ${timeoutMs} ms; last: ${JSON.stringify(observe())}`);
        }
      }
    },
    close: () => closeClients(gw, client),
  };
}

async function resgateSide(rs: ResgateServer, rid: string, query: string): Promise<Side> {
  const client = await ResgateClient.connect(rs.wsUrl);
  const field = rootField(query);
  const key = field.alias?.value ?? field.name.value;
  let refused: ResErrorObject | undefined;
  try {
    await client.subscribe(rid);
  } catch (e) {
    if (!(e instanceof ResgateRequestError)) throw e;
    refused = e.error;
  }
  const observe = (): Observed => {
    if (refused) return terminalCodes.has(refused.code) ? { ended: refused.code } : { data: { [key]: null }, errors: [{ path: [key], code: refused.code }] };
    const reason = client.unsubscribed.get(rid);
    if (reason) return { ended: reason.code === 'system.deleted' ? 'system.notFound' : reason.code };
    return denormalize(client, rid, field);
  };
  return {
    observe,
    async until(pred, what, timeoutMs = 5000) {
      try {
        return await client.waitFor(() => {
          const o = observe();
          return pred(o) ? o : undefined;
        }, timeoutMs, what);
      } catch (e) {
        let last: unknown;
        try {
          last = observe();
        } catch (e2) {
          last = (e2 as Error).message;
        }
        throw new Error(`Resgate: ${(e as Error).message}; last: ${JSON.stringify(last)}; events: ${JSON.stringify(client.events)}`);
      }
    },
    close: async () => {
      expect(client.protocolErrors).toEqual([]);
      await client.close();
    },
  };
}

interface Step {
  what: string;
  act(svc: TestService): Promise<void>;
  /** when set, both clients are awaited until this holds, and what they show then is compared */
  until?: (o: Observed) => boolean;
}

interface Scenario {
  /** the scenario key; a run's key (key + G or R) is part of every rid it uses */
  key: string;
  /** subject handlers for this run's resources (registered once per run key) */
  handlers?(svc: TestService, k: string): void;
  /** the run's fresh fixture state */
  setup(svc: TestService, k: string): void;
  query(k: string): string;
  /** the rid the Resgate client subscribes to */
  rid(k: string): string;
  steps(k: string): Step[];
}

interface RunRecord {
  snapshots: unknown[];
  get: number;
  access: number;
  other: Record<string, number>;
}

interface Env {
  nats: NatsServer;
  svc: TestService;
  gw: TestGateway;
  rs: ResgateServer;
}

/** The data of the one root field, or undefined when the subscription ended. */
const root = (o: Observed): any => ('data' in o ? Object.values(o.data)[0] : undefined);
const ended = (code: string) => (o: Observed) => 'ended' in o && o.ended === code;
const titles = (o: Observed) => (root(o) as { title: string }[] | undefined)?.map((b) => b?.title).join(',');

/** Query requests per subject (TestService answers get/access/call/auth only). */
const queryEvents = new Map<string, unknown[]>();
const queryRequests: string[] = [];

/** Requests of one run, by type. */
function countRequests(svc: TestService, k: string): Omit<RunRecord, 'snapshots'> {
  const mine = svc.requests.filter((r) => r.subject.includes(k));
  const other: Record<string, number> = {};
  for (const r of mine) {
    const type = r.subject.split('.')[0];
    if (type !== 'get' && type !== 'access') other[type] = (other[type] ?? 0) + 1;
  }
  const q = queryRequests.filter((s) => s.includes(k)).length;
  if (q) other.query = q;
  return {
    get: mine.filter((r) => r.subject.startsWith('get.')).length,
    access: mine.filter((r) => r.subject.startsWith('access.')).length,
    other,
  };
}

/** Runs a scenario through one gateway: subscribe, then each step, recording what the client shows. */
async function run(env: Env, sc: Scenario, which: 'resgraph' | 'resgate'): Promise<RunRecord> {
  const { svc } = env;
  const k = sc.key + (which === 'resgraph' ? 'G' : 'R');
  sc.handlers?.(svc, k);
  sc.setup(svc, k);
  const query = sc.query(k);
  const side = which === 'resgraph' ? resgraphSide(env.gw, query) : await resgateSide(env.rs, sc.rid(k), query);
  const snapshots: unknown[] = [];
  // maps the run key back to the scenario key, so both runs' observations compare
  const norm = (o: Observed) => JSON.parse(JSON.stringify(o).replaceAll(k, sc.key));
  try {
    snapshots.push(norm(await side.until(() => true, 'the first result')));
    for (const step of sc.steps(k)) {
      await step.act(svc);
      if (step.until) snapshots.push(norm(await side.until(step.until, step.what)));
    }
  } finally {
    await side.close();
  }
  return { snapshots, ...countRequests(svc, k) };
}

const report: string[] = [];

/** Runs a scenario on both gateways and compares what their clients show and what they asked. */
async function differential(env: Env, sc: Scenario, label = sc.key): Promise<{ rg: RunRecord; rs: RunRecord }> {
  const rg = await run(env, sc, 'resgraph');
  const rs = await run(env, sc, 'resgate');
  report.push(
    `${label.padEnd(10)} get ${rg.get}/${rs.get}  access ${rg.access}/${rs.access}` +
      (Object.keys({ ...rg.other, ...rs.other }).length ? `  other ${JSON.stringify(rg.other)}/${JSON.stringify(rs.other)}` : ''),
  );
  expect(rg.snapshots).toEqual(rs.snapshots);
  expect(rg.get, 'get requests: resgraph vs Resgate').toBeLessThanOrEqual(rs.get);
  expect(rg.access, 'access requests: resgraph vs Resgate').toBeLessThanOrEqual(rs.access);
  return { rg, rs };
}

/** Changes a model in the service's store without publishing anything. */
function silently(svc: TestService, rid: string, values: Record<string, unknown>): void {
  const model = (svc.resources.get(rid) as { model: Record<string, unknown> }).model;
  for (const [p, v] of Object.entries(values)) {
    if (v === DEL) delete model[p];
    else model[p] = v;
  }
}

// --- scenarios ----------------------------------------------------------------

const changeWithDeletes: Scenario = {
  key: 'chg',
  setup(svc, k) {
    svc.model(`diff.book.${k}`, {
      title: 'Dune',
      year: 1965,
      note: 'first edition',
      author: ref(`diff.author.${k}`),
      tags: ref(`diff.book.${k}.tags`),
    });
    svc.model(`diff.author.${k}`, { name: 'Herbert' });
    svc.collection(`diff.book.${k}.tags`, ['scifi', 'classic']);
  },
  query: (k) => `subscription { book(id: "${k}") { id title year note author { id name } tags } }`,
  rid: (k) => `diff.book.${k}`,
  steps: (k) => [
    {
      what: 'a delete action and a value in one change',
      act: (svc) => svc.change(`diff.book.${k}`, { note: DEL, year: 1966 }),
      until: (o) => root(o)?.note === null && root(o)?.year === 1966,
    },
    {
      what: 'another delete action',
      act: (svc) => svc.change(`diff.book.${k}`, { year: DEL, title: 'Dune Messiah' }),
      until: (o) => root(o)?.year === null && root(o)?.title === 'Dune Messiah',
    },
    // no effect: the same value, and a delete of a property that is already gone
    { what: 'a change that changes nothing', act: (svc) => svc.change(`diff.book.${k}`, { title: 'Dune Messiah', note: DEL }) },
    {
      what: 'a change of the referenced author',
      act: (svc) => svc.change(`diff.author.${k}`, { name: 'Frank Herbert' }),
      until: (o) => root(o)?.author?.name === 'Frank Herbert',
    },
    {
      what: 'an add to the referenced tags',
      act: (svc) => svc.add(`diff.book.${k}.tags`, 'space', 1),
      until: (o) => root(o)?.tags?.length === 3,
    },
    {
      what: 'the final change',
      act: (svc) => svc.change(`diff.book.${k}`, { note: 'restored', title: 'final' }),
      until: (o) => root(o)?.title === 'final',
    },
  ],
};

const collectionAddRemove: Scenario = {
  key: 'col',
  setup(svc, k) {
    svc.collection(`diff.list.${k}`, [ref(`diff.book.${k}a`), ref(`diff.book.${k}b`)]);
    for (const x of ['a', 'b', 'c']) svc.model(`diff.book.${k}${x}`, { title: x.toUpperCase(), author: ref(`diff.author.${k}`) });
    svc.model(`diff.author.${k}`, { name: 'Shared' });
  },
  query: (k) => `subscription { list(id: "${k}") { id title author { name } } }`,
  rid: (k) => `diff.list.${k}`,
  steps: (k) => [
    {
      what: 'an add of a reference to a resource not seen before',
      act: (svc) => svc.add(`diff.list.${k}`, ref(`diff.book.${k}c`), 1),
      until: (o) => titles(o) === 'A,C,B',
    },
    { what: 'a remove', act: (svc) => svc.remove(`diff.list.${k}`, 0), until: (o) => titles(o) === 'C,B' },
    {
      what: 'an add of the reference removed before',
      act: (svc) => svc.add(`diff.list.${k}`, ref(`diff.book.${k}a`), 2),
      until: (o) => titles(o) === 'C,B,A',
    },
    {
      what: 'a change of the resource all items reference',
      act: (svc) => svc.change(`diff.author.${k}`, { name: 'Renamed' }),
      until: (o) => (root(o) as { author: { name: string } }[] | undefined)?.every((b) => b.author.name === 'Renamed') ?? false,
    },
    {
      what: 'the final change',
      act: (svc) => svc.change(`diff.book.${k}c`, { title: 'final' }),
      until: (o) => titles(o) === 'final,B,A',
    },
  ],
};

const swapReference: Scenario = {
  key: 'swp',
  setup(svc, k) {
    svc.model(`diff.book.${k}`, { title: 'Swap', author: ref(`diff.author.${k}1`) });
    svc.model(`diff.author.${k}1`, { name: 'First' });
    svc.model(`diff.author.${k}2`, { name: 'Second' });
  },
  query: (k) => `subscription { book(id: "${k}") { title author { id name } } }`,
  rid: (k) => `diff.book.${k}`,
  steps: (k) => [
    {
      what: 'a change to a reference to a new resource',
      act: (svc) => svc.change(`diff.book.${k}`, { author: ref(`diff.author.${k}2`) }),
      until: (o) => root(o)?.author?.name === 'Second',
    },
    // the old author is no longer referenced: neither client shows this
    { what: 'a change of the old resource', act: (svc) => svc.change(`diff.author.${k}1`, { name: 'First, changed' }) },
    {
      what: 'a change of the new resource',
      act: (svc) => svc.change(`diff.author.${k}2`, { name: 'final' }),
      until: (o) => root(o)?.author?.name === 'final',
    },
  ],
};

const deleteRoot: Scenario = {
  key: 'del',
  setup(svc, k) {
    svc.model(`diff.book.${k}`, { title: 'Doomed', author: ref(`diff.author.${k}`) });
    svc.model(`diff.author.${k}`, { name: 'Someone' });
  },
  query: (k) => `subscription { book(id: "${k}") { title author { name } } }`,
  rid: (k) => `diff.book.${k}`,
  steps: (k) => [
    {
      what: 'a change before the end',
      act: (svc) => svc.change(`diff.book.${k}`, { title: 'Still here' }),
      until: (o) => root(o)?.title === 'Still here',
    },
    {
      what: 'the end after delete',
      act: async (svc) => {
        svc.resources.delete(`diff.book.${k}`);
        await svc.event(`diff.book.${k}`, 'delete');
      },
      until: ended('system.notFound'),
    },
  ],
};

const reaccessWithdrawn: Scenario = {
  key: 'acc',
  setup(svc, k) {
    svc.model(`diff.book.${k}`, { title: 'Secret', author: ref(`diff.author.${k}`) });
    svc.model(`diff.author.${k}`, { name: 'Anonymous' });
  },
  query: (k) => `subscription { book(id: "${k}") { title author { name } } }`,
  rid: (k) => `diff.book.${k}`,
  steps: (k) => [
    // a reaccess that keeps access: both ask again and carry on
    { what: 'a reaccess with access kept', act: (svc) => svc.event(`diff.book.${k}`, 'reaccess') },
    {
      what: 'a change after the kept reaccess',
      act: (svc) => svc.change(`diff.book.${k}`, { title: 'Still readable' }),
      until: (o) => root(o)?.title === 'Still readable',
    },
    {
      what: 'the end after access is withdrawn',
      act: async (svc) => {
        svc.accessRules.set(`diff.book.${k}`, { get: false });
        await svc.event(`diff.book.${k}`, 'reaccess');
      },
      until: ended('system.accessDenied'),
    },
  ],
};

const resetAfterSilentChange: Scenario = {
  key: 'rst',
  setup(svc, k) {
    svc.model(`diff.book.${k}`, { title: 'Before', year: 1, author: ref(`diff.author.${k}`), tags: ref(`diff.book.${k}.tags`) });
    svc.model(`diff.author.${k}`, { name: 'Author' });
    svc.collection(`diff.book.${k}.tags`, ['a', 'b', 'c']);
  },
  query: (k) => `subscription { book(id: "${k}") { title year author { name } tags } }`,
  rid: (k) => `diff.book.${k}`,
  steps: (k) => [
    {
      what: 'the corrected state after system.reset',
      act: async (svc) => {
        silently(svc, `diff.book.${k}`, { title: 'Silent', year: DEL });
        silently(svc, `diff.author.${k}`, { name: 'Silent author' });
        svc.collection(`diff.book.${k}.tags`, ['b', 'c', 'd']);
        // exact names: a pattern could match resources of other runs that a gateway still caches
        await svc.publish('system.reset', { resources: [`diff.book.${k}`, `diff.author.${k}`, `diff.book.${k}.tags`] });
      },
      until: (o) => root(o)?.title === 'Silent' && root(o)?.author?.name === 'Silent author' && root(o)?.tags?.join() === 'b,c,d',
    },
    {
      what: 'the final change on top of the reset',
      act: (svc) => svc.change(`diff.book.${k}`, { year: 2 }),
      until: (o) => root(o)?.year === 2,
    },
  ],
};

const queryResource: Scenario = {
  key: 'qry',
  handlers(svc, k) {
    // a query resource's get reply names its normalized query
    svc.handle(`get.diff.search.${k}`, (p: { query?: string }) => {
      const r = svc.resources.get(`diff.search.${k}?${p?.query}`);
      return r ? { result: { ...structuredClone(r), query: p.query } } : { error: { code: 'system.notFound', message: 'Not found' } };
    });
  },
  setup(svc, k) {
    for (const n of [1, 2, 3]) svc.model(`diff.book.${k}${n}`, { title: `Q${n}` });
    svc.collection(`diff.search.${k}?tag=x`, [ref(`diff.book.${k}1`), ref(`diff.book.${k}3`)]);
  },
  query: (k) => `subscription { search(id: "${k}", tag: "x") { id title } }`,
  rid: (k) => `diff.search.${k}?tag=x`,
  steps: (k) => {
    const rid = `diff.search.${k}?tag=x`;
    /** edits the store, then tells the gateways to ask what changed: the reply holds these events */
    const queryEvent = async (svc: TestService, events: { event: string; data: any }[]) => {
      const list = (svc.resources.get(rid) as { collection: unknown[] }).collection;
      for (const e of events) {
        if (e.event === 'add') list.splice(e.data.idx, 0, e.data.value);
        else list.splice(e.data.idx, 1);
      }
      queryEvents.set(`diffq.${k}`, events);
      await svc.event(`diff.search.${k}`, 'query', { subject: `diffq.${k}` });
    };
    return [
      {
        what: 'an add from a query event',
        act: (svc) => queryEvent(svc, [{ event: 'add', data: { value: ref(`diff.book.${k}2`), idx: 1 } }]),
        until: (o) => titles(o) === 'Q1,Q2,Q3',
      },
      {
        what: 'a remove from a query event',
        act: (svc) => queryEvent(svc, [{ event: 'remove', data: { idx: 0 } }]),
        until: (o) => titles(o) === 'Q2,Q3',
      },
      {
        what: 'the final change of an item',
        act: (svc) => svc.change(`diff.book.${k}2`, { title: 'final' }),
        until: (o) => titles(o) === 'final,Q3',
      },
    ];
  },
};

const referenceTimeout: Scenario = {
  key: 'tmo',
  handlers(svc, k) {
    svc.handle(`get.diff.author.${k}`, () => undefined); // never answers
  },
  setup(svc, k) {
    svc.model(`diff.book.${k}`, { title: 'Waiting', author: ref(`diff.author.${k}`) });
  },
  query: (k) => `subscription { book(id: "${k}") { title author { name } } }`,
  rid: (k) => `diff.book.${k}`,
  steps: (k) => [
    {
      what: 'the final change next to the timed-out reference',
      act: (svc) => svc.change(`diff.book.${k}`, { title: 'final' }),
      until: (o) => root(o)?.title === 'final',
    },
  ],
};

const rootTimeout: Scenario = {
  key: 'slw',
  handlers(svc, k) {
    svc.handle(`get.diff.book.${k}`, () => undefined); // never answers
  },
  setup() {},
  query: (k) => `subscription { book(id: "${k}") { title } }`,
  rid: (k) => `diff.book.${k}`,
  steps: () => [],
};

// --- the tests ------------------------------------------------------------------

describe.skipIf(!resgateBin)('differential: resgraph against Resgate', () => {
  let env: Env;

  beforeAll(async () => {
    const nats = await startNatsServer();
    const svc = await TestService.start(nats.url);
    // query requests go to subjects the service names in its query events
    svc.nc.subscribe('diffq.>', {
      callback: (_e, m) => {
        queryRequests.push(m.subject);
        m.respond(enc.encode(JSON.stringify({ result: { events: queryEvents.get(m.subject) ?? [] } })));
      },
    });
    await svc.nc.flush();
    const gw = await startTestGateway(nats.url, sdl);
    const rs = await startResgate(resgateBin!, nats.url);
    env = { nats, svc, gw, rs };
  });

  afterAll(async () => {
    if (report.length) console.log(`requests per scenario, resgraph/Resgate:\n  ${report.join('\n  ')}`);
    await env?.gw.close();
    await env?.rs.stop();
    await env?.svc.close();
    await env?.nats.stop();
  });

  it('change events with delete actions', async () => {
    await differential(env, changeWithDeletes);
  });

  it('add and remove of references in a collection', async () => {
    await differential(env, collectionAddRemove);
  });

  it('a change that swaps a reference to a new resource', async () => {
    await differential(env, swapReference);
  });

  it('delete of the subscribed resource', async () => {
    await differential(env, deleteRoot);
  });

  it('reaccess, first with access kept, then withdrawn', async () => {
    await differential(env, reaccessWithdrawn);
  });

  it('system.reset after the service changed state silently', async () => {
    await differential(env, resetAfterSilentChange);
  });

  it('a query resource and its query events', async () => {
    const { rg, rs } = await differential(env, queryResource);
    expect(rg.other.query).toBe(rs.other.query);
  });

  it('service timeouts: system.timeout on both, for a root and for a reference', async () => {
    // a second pair with a short request timeout: Resgate -r, resgraph requestTimeout
    const gw = await startTestGateway(env.nats.url, sdl, { requestTimeout: shortTimeout });
    const rs = await startResgate(resgateBin!, env.nats.url, { requestTimeout: shortTimeout });
    try {
      const short = { ...env, gw, rs };
      const slow = await differential(short, rootTimeout, 'slw');
      expect(slow.rs.snapshots).toEqual([{ data: { book: null }, errors: [{ path: ['book'], code: 'system.timeout' }] }]);
      const ref = await differential(short, referenceTimeout, 'tmo');
      expect(ref.rs.snapshots[0]).toEqual({ data: { book: { title: 'Waiting', author: null } }, errors: [{ path: ['book', 'author'], code: 'system.timeout' }] });
    } finally {
      await gw.close();
      await rs.stop();
    }
  });

  it('call errors and results: the same code, data and params on both', async () => {
    const { svc, gw } = env;
    const outcomes: Record<string, unknown[]> = {};
    const params: Record<string, unknown[]> = {};
    const access: Record<string, number> = {};
    for (const which of ['resgraph', 'resgate'] as const) {
      const k = `cal${which === 'resgraph' ? 'G' : 'R'}`;
      const rid = `diff.book.${k}`;
      svc.model(rid, { title: 'Callable' });
      svc.handle(`call.${rid}.refuse`, (p: { params: { reason: string } }) => ({
        error: { code: 'diff.refused', message: 'Refused', data: { reason: p.params.reason, n: 42 } },
      }));
      svc.handle(`call.${rid}.accept`, (p: { params: { reason: string } }) => ({ result: { accepted: p.params.reason } }));
      const out: unknown[] = [];
      if (which === 'resgraph') {
        // over graphql-ws: one connection, like the Resgate client's (access verdicts are cached per connection)
        const client = wsClient(gw.url);
        for (const m of ['refuse', 'accept']) {
          const r = await subscribeWs(client, `mutation { ${m}(id: "${k}", reason: "because") }`).next(5000);
          const e = r.errors?.[0];
          out.push(e ? { code: e.extensions?.code, data: e.extensions?.data } : { result: r.data?.[m] });
        }
        await client.dispose();
      } else {
        const client = await ResgateClient.connect(env.rs.wsUrl);
        for (const m of ['refuse', 'accept']) {
          try {
            out.push({ result: await client.call(rid, m, { reason: 'because' }) });
          } catch (e) {
            if (!(e instanceof ResgateRequestError)) throw e;
            out.push({ code: e.code, data: e.data });
          }
        }
        await client.close();
      }
      outcomes[which] = out;
      params[which] = svc.requests.filter((r) => r.subject.startsWith(`call.${rid}.`)).map((r) => [r.subject.replace(k, 'cal'), r.payload.params]);
      access[which] = countRequests(svc, k).access;
    }
    report.push(`cal        access ${access.resgraph}/${access.resgate}`);
    expect(outcomes.resgraph).toEqual(outcomes.resgate);
    expect(outcomes.resgate).toEqual([{ code: 'diff.refused', data: { reason: 'because', n: 42 } }, { result: { accepted: 'because' } }]);
    expect(params.resgraph).toEqual(params.resgate);
    expect(access.resgraph).toBeLessThanOrEqual(access.resgate);
  });

  it('custom events: the same payloads, in order', async () => {
    const { svc, gw } = env;
    const received: Record<string, unknown[]> = {};
    const counts: Record<string, { get: number; access: number }> = {};
    const publish = async (k: string) => {
      const rid = `diff.book.${k}`;
      await svc.event(rid, 'ping', { n: 1 });
      await svc.event(rid, 'other', { n: 'another event' });
      await svc.change(rid, { title: 'a change is no custom event' });
      await svc.event(rid, 'ping'); // no payload
      await svc.event(rid, 'ping', { n: 3, nested: { list: [1, 2] } });
    };
    for (const which of ['resgraph', 'resgate'] as const) {
      const k = `evt${which === 'resgraph' ? 'G' : 'R'}`;
      svc.model(`diff.book.${k}`, { title: 'Eventful' });
      if (which === 'resgraph') {
        const client = wsClient(gw.url);
        const s = subscribeWs(client, `subscription { pings(id: "${k}") }`);
        // an event stream sends nothing first, so only the gateway can say that it listens (internal on purpose)
        await waitFor(() => gw.cache.customEventListenerCount === 1, 5000, 'resgraph to listen for custom events');
        await publish(k);
        const got: unknown[] = [];
        for (let i = 0; i < 3; i++) got.push((await s.next(5000)).data?.pings);
        received[which] = got;
        await client.dispose();
        await waitFor(() => gw.cache.customEventListenerCount === 0, 5000, 'resgraph to stop listening');
      } else {
        const client = await ResgateClient.connect(env.rs.wsUrl);
        await client.subscribe(`diff.book.${k}`);
        await publish(k);
        await client.waitFor(() => client.custom.filter((e) => e.name === 'ping').length === 3, 5000, 'three ping events');
        received[which] = client.custom.filter((e) => e.name === 'ping').map((e) => e.data);
        expect(client.protocolErrors).toEqual([]);
        await client.close();
      }
      counts[which] = countRequests(svc, k);
    }
    report.push(`evt        get ${counts.resgraph.get}/${counts.resgate.get}  access ${counts.resgraph.access}/${counts.resgate.access}`);
    expect(received.resgraph).toEqual(received.resgate);
    expect(received.resgate).toEqual([{ n: 1 }, null, { n: 3, nested: { list: [1, 2] } }]);
    expect(counts.resgraph.get).toBeLessThanOrEqual(counts.resgate.get);
    expect(counts.resgraph.access).toBeLessThanOrEqual(counts.resgate.access);
  });
});
