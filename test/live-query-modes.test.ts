/**
 * The ways to ask for a live result, side by side on the same data: a
 * subscription to a mirrored field and `@live(patch: false)` (full results),
 * `@live` (JSON Patch, over graphql-ws and SSE), and `@live(if: false)` (an
 * ordinary query). Identical `@live` clients share one execution and one
 * patch per change; a `@live` result ends on deletion or lost access.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { applyLiveQueryJSONPatch } from '@n1ru4l/graphql-live-query-patch-json-patch';
import { gql } from './helpers/gateway.js';
import { subscribeSse, subscribeWs, wsClient, type StreamResult } from './helpers/live-client.js';
import { closeClients, putRatedBook, ref, startLiveEnv, type LiveEnv } from './helpers/live-fixture.js';
import { liveCounts } from './helpers/metrics.js';
import { ratedBooksSdl } from './helpers/sdl.js';
import { LiveView, iterateStream, tap } from './helpers/live-view.js';
import type { TestService } from './helpers/res-service.js';

/**
 * Counts patch computations: the engine's `diff`, passed through unchanged.
 * Internal on purpose: that three `@live` subscribers share one computed
 * patch shows nowhere outside (clients see equal patches either way).
 */
const patchCount = vi.hoisted(() => ({ n: 0, last: [] as unknown[] }));
vi.mock('../src/live/patch.js', async (importOriginal) => {
  const m = await importOriginal<typeof import('../src/live/patch.js')>();
  return {
    ...m,
    diff: (...args: Parameters<typeof m.diff>) => {
      const ops = m.diff(...args);
      patchCount.n++;
      patchCount.last.push(ops);
      return ops;
    },
  };
});

let env: LiveEnv;

beforeAll(async () => {
  env = await startLiveEnv({}, ratedBooksSdl);
});

afterAll(async () => {
  await env?.close();
});

function putShelf(svc: TestService, shelf: string, ids: number[]): void {
  for (const id of ids) putRatedBook(svc, id, `Book ${id}`, id % 5, ['scifi']);
  svc.collection(`library.shelf.${shelf}`, ids.map((id) => ref(`library.book.${id}`)));
}

/** What `shelf(id) { id title rating tags }` must be, from the service's store. */
function expectedShelf(svc: TestService, shelf: string): unknown {
  const list = svc.resources.get(`library.shelf.${shelf}`) as { collection: { rid: string }[] };
  return {
    shelf: list.collection.map(({ rid }) => {
      const m = (svc.resources.get(rid) as { model: Record<string, unknown> }).model;
      const tags = (svc.resources.get(`${rid}.tags`) as { collection: unknown[] }).collection;
      // a reference in a String field shows as its rid
      const title = m.title !== null && typeof m.title === 'object' ? (m.title as { rid: unknown }).rid : m.title;
      return { id: rid, title, rating: m.rating, tags: [...tags] };
    }),
  };
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const selection = (shelf: string) => `{ shelf(id: "${shelf}") { id title rating tags } }`;

describe('live results in every mode on the same data', () => {
  it('keeps subscription, @live(patch: false) and @live clients (graphql-ws and SSE) equal to a fresh query', async () => {
    const { svc, gw } = env;
    putShelf(svc, 'mix', [101, 102, 103, 104, 105]);
    const client = wsClient(gw.url);

    const subWire: StreamResult[] = [];
    const subSource = client.iterate({ query: `subscription ${selection('mix')}` });
    const sub = new LiveView(tap(subSource as AsyncIterable<StreamResult>, subWire));

    const fullWire: StreamResult[] = [];
    const fullSource = client.iterate({ query: `query @live(patch: false) ${selection('mix')}` });
    const full = new LiveView(tap(fullSource as AsyncIterable<StreamResult>, fullWire));

    const patchWire: StreamResult[] = [];
    const patchSource = client.iterate({ query: `query @live ${selection('mix')}` });
    const patched = new LiveView(applyLiveQueryJSONPatch(tap(patchSource as AsyncIterable<StreamResult>, patchWire)));

    const sseWire: StreamResult[] = [];
    const sse = subscribeSse(gw.url, `query @live ${selection('mix')}`);
    const ssePatched = new LiveView(applyLiveQueryJSONPatch(tap(iterateStream(sse), sseWire)));

    const views = { sub, full, patched, ssePatched };
    const allAt = async (what: string) => {
      const expected = expectedShelf(svc, 'mix');
      for (const [name, v] of Object.entries(views)) await v.until((x) => sameJson(x.data, expected), 3000, `${name}: ${what}`);
      const fresh = await gql(gw.url, `query ${selection('mix')}`);
      expect(fresh).toEqual({ data: expected });
      for (const v of Object.values(views)) expect(v.last).toEqual(fresh);
    };

    await allAt('the first result');
    await svc.change('library.book.103', { title: 'Changed' });
    await allAt('a changed title');
    putRatedBook(svc, 106, 'Added', 2, []);
    await svc.add('library.shelf.mix', ref('library.book.106'), 1);
    await allAt('an added book');
    await svc.remove('library.shelf.mix', 3);
    await allAt('a removed book');
    await svc.add('library.book.101.tags', 'classic', 0);
    await svc.change('library.book.105', { rating: 0, title: 'Both' });
    await allAt('a new tag and two changed properties');

    // full results carry no revision; @live sends one full result, then patches
    for (const w of [subWire, fullWire]) for (const r of w) expect(Object.keys(r)).toEqual(['data']);
    for (const w of [patchWire, sseWire]) {
      expect(w[0]).toMatchObject({ revision: 1 });
      expect(w.slice(1)).toEqual(w.slice(1).map((_, i) => ({ patch: expect.any(Array), revision: i + 2 })));
    }
    expect(patchWire.length).toBeGreaterThanOrEqual(5);

    await Promise.all([subSource, fullSource, patchSource].map((s) => s.return?.()));
    await closeClients(gw, client, sse);
  });
});

describe('shared @live work', () => {
  it('makes one update and one patch per change for three identical @live clients', async () => {
    const { svc, gw } = env;
    putShelf(svc, 'shared', [201, 202, 203, 204]);
    const query = `query @live ${selection('shared')}`;
    const clients = [wsClient(gw.url), wsClient(gw.url), wsClient(gw.url)];
    const wires: StreamResult[][] = [[], [], []];
    const sources = clients.map((c) => c.iterate({ query }));
    const views = sources.map((s, i) => new LiveView(applyLiveQueryJSONPatch(tap(s as AsyncIterable<StreamResult>, wires[i]))));
    const allAt = async (what: string) => {
      const expected = expectedShelf(svc, 'shared');
      for (const v of views) await v.until((x) => sameJson(x.data, expected), 3000, what);
    };
    await allAt('the first result');
    expect(await liveCounts(gw)).toMatchObject({ liveQueries: 1, subscribers: 3 });

    // a changed title, an added tag, a removed and an added book are applied to the last result, their patch
    // made from the change itself; a title that becomes a reference runs the operation again, and the patch
    // is a diff of the results
    const changes: [string, () => Promise<void>, 'applied' | 'run'][] = [
      ['a title', () => svc.change('library.book.202', { title: 'Shared change' }), 'applied'],
      ['a tag', () => svc.add('library.book.204.tags', 'shared', 1), 'applied'],
      ['a removed book', () => svc.remove('library.shelf.shared', 0), 'applied'],
      [
        'an added book',
        () => {
          putRatedBook(svc, 205, 'Added', 2);
          return svc.add('library.shelf.shared', ref('library.book.205'), 0);
        },
        'applied',
      ],
      ['a title as a reference', () => svc.change('library.book.203', { title: ref('library.book.201') }), 'run'],
    ];
    for (const [what, change, how] of changes) {
      const before = await liveCounts(gw);
      const patches = patchCount.n;
      patchCount.last = [];
      await change();
      await allAt(what);
      const after = await liveCounts(gw);
      expect(after.updates - before.updates, `updates for ${what}`).toBe(1);
      expect(after.executions - before.executions, `executions for ${what}`).toBe(how === 'run' ? 1 : 0);
      expect(patchCount.n - patches, `patches diffed for ${what}`).toBe(how === 'run' ? 1 : 0);
      // and that one patch is what every client received
      const sent = wires.map((w) => w[w.length - 1] as StreamResult & { revision?: number; patch?: unknown });
      const patch = how === 'run' ? patchCount.last[0] : sent[0].patch;
      expect(patch).toBeDefined();
      for (const s of sent) expect(s).toEqual({ patch, revision: sent[0].revision });
    }

    await Promise.all(sources.map((s) => s.return?.()));
    await closeClients(gw, ...clients);
  });
});

describe('@live(if: false)', () => {
  it('is an ordinary query over HTTP: one plain JSON result, nothing held live', async () => {
    const { svc, gw } = env;
    putRatedBook(svc, 301, 'Plain', 3);
    const { updates } = await liveCounts(gw);
    const res = await fetch(gw.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ query: 'query @live(if: false) { book(id: 301) { id title } }' }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/(graphql-response\+)?json/);
    expect(await res.json()).toEqual({ data: { book: { id: 'library.book.301', title: 'Plain' } } });
    // the same through a variable
    expect(await gql(gw.url, 'query ($live: Boolean!) @live(if: $live) { book(id: 301) { title } }', { live: false })).toEqual({
      data: { book: { title: 'Plain' } },
    });
    expect((await liveCounts(gw)).updates).toBe(updates);
    expect(await liveCounts(gw)).toMatchObject({ liveQueries: 0, subscribers: 0 });
  });
});

describe('how a @live result ends', () => {
  it('ends with system.notFound when its root resource is deleted', async () => {
    const { svc, gw } = env;
    putRatedBook(svc, 401, 'Doomed', 1);
    const client = wsClient(gw.url);
    const source = client.iterate({ query: 'query @live { book(id: 401) { title } }' });
    const view = new LiveView(applyLiveQueryJSONPatch(source as AsyncIterable<StreamResult>));
    await view.until((v) => v.results.length === 1, 3000, 'the first result');
    expect(view.last).toEqual({ data: { book: { title: 'Doomed' } } });

    svc.resources.delete('library.book.401');
    await svc.event('library.book.401', 'delete');
    await view.until((v) => v.done, 3000, 'the stream to end');
    expect(view.error).toBeUndefined();
    expect(view.results).toHaveLength(2);
    expect(view.last?.errors?.map((e) => e.extensions?.code)).toEqual(['system.notFound']);
    await closeClients(gw, client);
  });

  it('ends with system.accessDenied when access is revoked', async () => {
    const { svc, gw } = env;
    putRatedBook(svc, 402, 'Secret soon', 1);
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'query @live { book(id: 402) { title } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Secret soon' } }, revision: 1 });

    svc.accessRules.set('library.book.402', { get: false });
    await svc.event('library.book.402', 'reaccess');
    const r = await s.next();
    expect(r.data?.book ?? null).toBeNull();
    expect(r.errors?.map((e) => e.extensions?.code)).toEqual(['system.accessDenied']);
    await s.completed;
    expect(s.error).toBeUndefined();
    await closeClients(gw, client);
  });
});
