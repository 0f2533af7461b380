/**
 * `@live` queries as a real client sees them: the n1ru4l client helper
 * (`applyLiveQueryJSONPatch`) around graphql-ws's `client.iterate` follows a
 * long random sequence of change / add / remove events and always ends at
 * what a fresh HTTP query returns; and the frames on the wire stay
 * proportional to the change, not to the result.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'graphql';
import fastJsonPatch from 'fast-json-patch';
import { applyLiveQueryJSONPatch } from '@n1ru4l/graphql-live-query-patch-json-patch';
import { Connection } from '../src/access/access.js';
import { gql } from './helpers/gateway.js';
import { wsClient, type StreamResult } from './helpers/live-client.js';
import { closeClients, putRatedBook, ref, startLiveEnv, type LiveEnv } from './helpers/live-fixture.js';
import { ratedBooksSdl } from './helpers/sdl.js';
import { LiveView, RawLiveSocket, mulberry32, tap } from './helpers/live-view.js';
import type { TestService } from './helpers/res-service.js';

let env: LiveEnv;

beforeAll(async () => {
  env = await startLiveEnv({}, ratedBooksSdl);
});

afterAll(async () => {
  await env?.close();
});

function collection(svc: TestService, rid: string): any[] {
  const r = svc.resources.get(rid);
  if (!r || !('collection' in r)) throw new Error(`no collection ${rid}`);
  return r.collection;
}

function model(svc: TestService, rid: string): Record<string, any> {
  const r = svc.resources.get(rid);
  if (!r || !('model' in r)) throw new Error(`no model ${rid}`);
  return r.model;
}

/** What `books { id title rating tags }` must be, computed from the service's store (the truth). */
function expectedBooks(svc: TestService): unknown[] {
  return collection(svc, 'library.books').map(({ rid }: { rid: string }) => {
    const m = model(svc, rid);
    return { id: rid, title: m.title, rating: m.rating, tags: [...collection(svc, `${rid}.tags`)] };
  });
}

const booksSelection = '{ books { id title rating tags } }';

describe('@live with the n1ru4l JSON Patch client helper', () => {
  it('stays equal to a fresh query through 200 random change / add / remove events (fixed seed)', async () => {
    const { svc, gw } = env;
    for (let id = 1; id <= 20; id++) putRatedBook(svc, id, `Book ${id}`, id % 5, id % 3 === 0 ? ['scifi'] : []);
    svc.collection('library.books', Array.from({ length: 20 }, (_, i) => ref(`library.book.${i + 1}`)));

    const client = wsClient(gw.url);
    const wire: StreamResult[] = [];
    const source = client.iterate({ query: `query @live ${booksSelection}` });
    const view = new LiveView(applyLiveQueryJSONPatch(tap(source as AsyncIterable<StreamResult>, wire)));
    await view.until((v) => v.results.length > 0, 3000, 'the first result');
    expect(view.last).toEqual({ data: { books: expectedBooks(svc) } });

    const rand = mulberry32(20240607);
    const pick = (n: number) => Math.floor(rand() * n);
    let nextId = 1000;
    const created: number[] = Array.from({ length: 20 }, (_, i) => i + 1);
    let events = 0;
    let batches = 0;
    const counts = { change: 0, add: 0, readd: 0, remove: 0, tagAdd: 0, tagRemove: 0 };

    /** One random event, published (and flushed) by the service. */
    const randomEvent = async () => {
      const list = collection(svc, 'library.books');
      const r = rand();
      if (list.length > 0 && r < 0.4) {
        const { rid } = list[pick(list.length)];
        const s = rand();
        const values = s < 0.4 ? { title: `Title ${pick(1000)}` } : s < 0.8 ? { rating: pick(6) } : { title: `Both ${pick(1000)}`, rating: pick(6) };
        counts.change++;
        await svc.change(rid, values);
      } else if (list.length === 0 || r < 0.6) {
        let id: number;
        if (rand() < 0.2) {
          // a book that exists already (listed, or removed before): the list may hold a reference twice
          id = created[pick(created.length)];
          counts.readd++;
        } else {
          id = nextId++;
          putRatedBook(svc, id, `New ${id}`, pick(6), rand() < 0.5 ? ['new'] : []);
          created.push(id);
          counts.add++;
        }
        await svc.add('library.books', ref(`library.book.${id}`), pick(list.length + 1));
      } else if (r < 0.8) {
        counts.remove++;
        await svc.remove('library.books', pick(list.length));
      } else {
        const { rid } = list[pick(list.length)];
        const tags = collection(svc, `${rid}.tags`);
        if (tags.length > 0 && rand() < 0.5) {
          counts.tagRemove++;
          await svc.remove(`${rid}.tags`, pick(tags.length));
        } else {
          counts.tagAdd++;
          await svc.add(`${rid}.tags`, `tag${pick(10)}`, pick(tags.length + 1));
        }
      }
      events++;
    };

    while (events < 200) {
      // small batches: events that arrive together may make one result, and a patch then spans several events
      const size = Math.min(1 + pick(4), 200 - events);
      for (let k = 0; k < size; k++) await randomEvent();
      batches++;
      const expected = { books: expectedBooks(svc) };
      await view.until((v) => fastJsonPatch.compare(v.data ?? {}, expected).length === 0, 3000, `batch ${batches} (after ${events} events)`);
      // the gateway has applied the batch: a fresh query must agree with the patched client data
      expect(await gql(gw.url, `query ${booksSelection}`)).toEqual({ data: view.data });
    }

    expect(view.error).toBeUndefined();
    expect(view.last).toEqual({ data: { books: expectedBooks(svc) } });
    expect(await gql(gw.url, `query ${booksSelection}`)).toEqual({ data: view.data });
    // every kind of event happened
    for (const [kind, n] of Object.entries(counts)) expect(n, kind).toBeGreaterThan(0);

    // on the wire: the full result once, then only patches, revisions without gaps
    expect(wire[0]).toMatchObject({ revision: 1, data: expect.anything() });
    for (let i = 1; i < wire.length; i++) {
      expect(wire[i]).toEqual({ patch: expect.any(Array), revision: i + 1 });
      expect((wire[i] as any).patch.length).toBeGreaterThan(0);
    }

    await source.return?.();
    await closeClients(gw, client);
  });
});

describe('@live frame sizes', () => {
  const shelfQuery = 'query @live { shelf(id: "big") { id title rating } }';

  it('sends one replace for one changed property, and one op for one add or one remove, in a 100-item list', async () => {
    const { svc, gw } = env;
    for (let id = 2001; id <= 2100; id++) putRatedBook(svc, id, `Shelf book ${id}`, id % 5);
    svc.collection('library.shelf.big', Array.from({ length: 100 }, (_, i) => ref(`library.book.${2001 + i}`)));

    const sock = new RawLiveSocket(gw.url, shelfQuery);
    const first = await sock.next();
    expect(first.payload.revision).toBe(1);
    expect(first.payload.data.shelf).toHaveLength(100);
    let data = first.payload.data;
    const fresh = async () => (await gql(gw.url, 'query { shelf(id: "big") { id title rating } }')).data;
    const sizes: Record<string, number> = { full: first.bytes };

    // one property of one item
    await svc.change('library.book.2058', { title: 'Changed' });
    const changed = await sock.next();
    expect(changed.payload).toEqual({ patch: [{ op: 'replace', path: '/shelf/57/title', value: 'Changed' }], revision: 2 });
    expect(changed.bytes).toBeLessThan(first.bytes * 0.05);
    sizes.replace = changed.bytes;
    data = fastJsonPatch.applyPatch(data, changed.payload.patch, true, false).newDocument;
    expect(data).toEqual(await fresh());

    // one added item
    putRatedBook(svc, 2200, 'Inserted', 4);
    await svc.add('library.shelf.big', ref('library.book.2200'), 30);
    const added = await sock.next();
    expect(added.payload).toEqual({
      patch: [{ op: 'add', path: '/shelf/30', value: { id: 'library.book.2200', title: 'Inserted', rating: 4 } }],
      revision: 3,
    });
    expect(added.bytes).toBeLessThan(first.bytes * 0.05);
    sizes.add = added.bytes;
    data = fastJsonPatch.applyPatch(data, added.payload.patch, true, false).newDocument;
    expect(data).toEqual(await fresh());

    // one removed item
    await svc.remove('library.shelf.big', 75);
    const removed = await sock.next();
    expect(removed.payload).toEqual({ patch: [{ op: 'remove', path: '/shelf/75' }], revision: 4 });
    expect(removed.bytes).toBeLessThan(first.bytes * 0.05);
    sizes.remove = removed.bytes;
    data = fastJsonPatch.applyPatch(data, removed.payload.patch, true, false).newDocument;
    expect(data).toEqual(await fresh());
    expect(data.shelf).toHaveLength(100);
    expect(sock.pending).toBe(0);

    console.info(`@live frame bytes with 100 items: ${JSON.stringify(sizes)}`);
    sock.dispose();
    await closeClients(gw);
  });
});

describe('@live streams that skip states', () => {
  it('sends no empty patch when the data returns to what a slow consumer last received', async () => {
    // A real transport pulls as fast as it can, so the consumer's pace is only
    // controllable at the engine: one stream is pulled at once, the other not.
    const { svc, gw } = env;
    putRatedBook(svc, 40, 'A', 1);
    const { schema } = gw.yoga.getEnveloped({});
    const conn = new Connection('ws');
    const subscribe = () =>
      gw.live.subscribe(
        { schema, document: parse('query { book(id: 40) { title } }'), contextValue: { conn, lease: gw.cache.newLease() } },
        { mode: 'patch' },
      );
    const slow = subscribe();
    expect((await slow.next()).value).toEqual({ data: { book: { title: 'A' } }, revision: 1 });
    const fastStream = subscribe();
    const fast = new LiveView(fastStream as AsyncIterable<StreamResult>);
    await fast.until((v) => v.results.length === 1, 3000, 'the second stream to join');

    await svc.change('library.book.40', { title: 'B' });
    await fast.until((v) => v.results.length === 2, 3000, 'B');
    await svc.change('library.book.40', { title: 'A' });
    await fast.until((v) => v.results.length === 3, 3000, 'A again');
    expect(fast.results.slice(1)).toEqual([
      { patch: [{ op: 'replace', path: '/book/title', value: 'B' }], revision: 2 },
      { patch: [{ op: 'replace', path: '/book/title', value: 'A' }], revision: 3 },
    ]);

    // the slow stream already has A: its next payload is the next real change
    const next = slow.next();
    await svc.change('library.book.40', { title: 'C' });
    expect((await next).value).toEqual({ patch: [{ op: 'replace', path: '/book/title', value: 'C' }], revision: 2 });

    await slow.return!();
    await fast.until((v) => v.results.length === 4, 3000, 'C');
    await fastStream.return!();
    await closeClients(gw);
  });
});
