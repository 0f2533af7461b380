/**
 * Conformance: events keep the cache in sync. change / add / remove /
 * delete update what the next query returns; events racing a pending get are
 * discarded (the reply already holds them); malformed events are logged and
 * never corrupt the cache.
 *
 * Internal on purpose: these tests state the cache's own contract, event by
 * event, so they wait for an event to be applied (`nextEntryChange`) and read
 * the cached value, where no client could tell when an event arrived; a Lease
 * keeps what they read cached. What clients see of the same rules is in the
 * live-* tests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestService } from './helpers/res-service.js';
import { startTestEnv, type TestEnv } from './helpers/env.js';
import { gql, type TestGateway } from './helpers/gateway.js';
import { librarySdl } from './helpers/sdl.js';
import { nextEntryChange, waitFor, withTimeout } from './helpers/wait.js';
import type { EntryChange, Lease } from '../src/cache/cache.js';

let env: TestEnv;
let svc: TestService;
let gw: TestGateway;
let lease: Lease;

const enc = new TextEncoder();

beforeAll(async () => {
  env = await startTestEnv(librarySdl);
  ({ svc, gw } = env);
  // every rid these tests read stays cached (so events reach it) whatever the timing
  lease = gw.cache.newLease();
});

afterAll(async () => {
  lease?.release();
  await env?.close();
});

/** Loads a rid into the cache through a query and keeps it there. */
async function cached(rid: string, query: string): Promise<void> {
  lease.hold(rid);
  const r = await gql(gw.url, query);
  expect(r.errors).toBeUndefined();
  expect(gw.cache.peek(rid)).toBeDefined();
}

const warned = (msg: RegExp, field: string, value: string) =>
  gw.logs.some((l) => l.level === 'warn' && msg.test(l.msg) && l.fields?.[field] === value);

describe('events', () => {
  it('applies a change event to the next query', async () => {
    svc.model('library.book.1', { title: 'Old', meta: 1 });
    await cached('library.book.1', '{ book(id: 1) { title } }');
    const applied = nextEntryChange(gw.cache, 'library.book.1');
    await svc.change('library.book.1', { title: 'New', meta: { data: { x: [1] } } });
    expect(await applied).toEqual({ type: 'change', values: { title: 'New', meta: { data: { x: [1] } } } });
    expect(await gql(gw.url, '{ book(id: 1) { title meta } }')).toEqual({ data: { book: { title: 'New', meta: { x: [1] } } } });
    expect(svc.count('get.library.book.1')).toBe(1);
  });

  it('applies a change event that deletes a property', async () => {
    svc.model('library.book.2', { title: 'Gone soon', meta: 'm' });
    await cached('library.book.2', '{ book(id: 2) { title meta } }');
    const applied = nextEntryChange(gw.cache, 'library.book.2');
    await svc.change('library.book.2', { title: { action: 'delete' } });
    await applied;
    expect(gw.cache.peek('library.book.2')?.value).toEqual({ meta: 'm' });
    expect(await gql(gw.url, '{ book(id: 2) { title meta } }')).toEqual({ data: { book: { title: null, meta: 'm' } } });
  });

  it('follows a reference that a change event sets', async () => {
    svc.model('library.book.3', { title: 'T', author: { rid: 'library.author.3a' } });
    svc.model('library.author.3a', { name: 'First' });
    svc.model('library.author.3b', { name: 'Second' });
    await cached('library.book.3', '{ book(id: 3) { author { name } } }');
    const applied = nextEntryChange(gw.cache, 'library.book.3');
    await svc.change('library.book.3', { author: { rid: 'library.author.3b' } });
    await applied;
    expect(await gql(gw.url, '{ book(id: 3) { author { name } } }')).toEqual({ data: { book: { author: { name: 'Second' } } } });
  });

  it('does not report a change whose value equals the cached one', async () => {
    svc.model('library.book.4', { title: 'Same', meta: { data: { a: 1 } } });
    await cached('library.book.4', '{ book(id: 4) { title } }');
    const applied = nextEntryChange(gw.cache, 'library.book.4');
    await svc.change('library.book.4', { title: 'Same', meta: { data: { a: 1 } } });
    await svc.change('library.book.4', { title: 'Same', meta: { data: { a: 2 } } });
    // the first event changed nothing: the first change reported is the second one, with only meta in it
    expect(await applied).toEqual({ type: 'change', values: { meta: { data: { a: 2 } } } });
  });

  it('applies add and remove events to a collection in order', async () => {
    svc.collection('library.list.5', ['a', 'b', 'c']);
    await cached('library.list.5', '{ list(id: 5) }');
    let applied = nextEntryChange(gw.cache, 'library.list.5');
    await svc.add('library.list.5', 'x', 1);
    expect(await applied).toEqual({ type: 'add', idx: 1, value: 'x' });
    expect(await gql(gw.url, '{ list(id: 5) }')).toEqual({ data: { list: ['a', 'x', 'b', 'c'] } });

    applied = nextEntryChange(gw.cache, 'library.list.5');
    await svc.remove('library.list.5', 0);
    expect(await applied).toEqual({ type: 'remove', idx: 0 });
    expect(await gql(gw.url, '{ list(id: 5) }')).toEqual({ data: { list: ['x', 'b', 'c'] } });

    applied = nextEntryChange(gw.cache, 'library.list.5');
    await svc.add('library.list.5', { rid: 'library.book.1' }, 3);
    await applied;
    expect(await gql(gw.url, '{ list(id: 5) }')).toEqual({ data: { list: ['x', 'b', 'c', { rid: 'library.book.1' }] } });
    expect(svc.count('get.library.list.5')).toBe(1);
  });

  it('evicts a resource on a delete event: the next query asks again and sees not found', async () => {
    svc.model('library.book.6', { title: 'Doomed' });
    await cached('library.book.6', '{ book(id: 6) { title } }');
    const applied = nextEntryChange(gw.cache, 'library.book.6');
    svc.resources.delete('library.book.6');
    await svc.event('library.book.6', 'delete');
    expect(await applied).toEqual({ type: 'delete' });
    const r = await gql(gw.url, '{ book(id: 6) { title } }');
    expect(r.data).toEqual({ book: null });
    expect(r.errors![0].extensions?.code).toBe('system.notFound');
    expect(svc.count('get.library.book.6')).toBe(2);
  });

  it('discards a change event that arrives before the get response', async () => {
    svc.handle('get.library.book.7', async (_p, _s, msg) => {
      // a service publishes events before it replies; the reply already contains them
      await svc.event('library.book.7', 'change', { values: { title: 'After' } });
      msg.respond(enc.encode(JSON.stringify({ result: { model: { title: 'After', n: 1 } } })));
      return undefined;
    });
    const seen: unknown[] = [];
    // held before the load: a change applied while the get is pending would be told
    const watching = gw.cache.newLease((_e, c) => seen.push(c));
    watching.hold('library.book.7');
    const r = await gql(gw.url, '{ book(id: 7) { title } }');
    expect(r).toEqual({ data: { book: { title: 'After' } } });
    expect(gw.cache.peek('library.book.7')!.value).toEqual({ title: 'After', n: 1 });
    expect(seen).toEqual([]);
    // a later event is applied normally, and is the only change ever reported
    const applied = nextEntryChange(gw.cache, 'library.book.7');
    await svc.event('library.book.7', 'change', { values: { n: 2 } });
    await applied;
    expect(seen).toEqual([{ type: 'change', values: { n: 2 } }]);
    watching.release();
  });

  it('does not duplicate an item whose add event arrives before the get response', async () => {
    svc.handle('get.library.list.8', async (_p, _s, msg) => {
      await svc.event('library.list.8', 'add', { value: 'new', idx: 0 });
      msg.respond(enc.encode(JSON.stringify({ result: { collection: ['new', 'old'] } })));
      return undefined;
    });
    lease.hold('library.list.8');
    expect(await gql(gw.url, '{ list(id: 8) }')).toEqual({ data: { list: ['new', 'old'] } });
    const applied = nextEntryChange(gw.cache, 'library.list.8');
    await svc.event('library.list.8', 'add', { value: 'last', idx: 2 });
    await applied;
    expect(await gql(gw.url, '{ list(id: 8) }')).toEqual({ data: { list: ['new', 'old', 'last'] } });
  });

  it('applies an event published right after the get response', async () => {
    svc.handle('get.library.list.9', async (_p, _s, msg) => {
      // reply and event leave back to back, so they reach the gateway in one read
      msg.respond(enc.encode(JSON.stringify({ result: { collection: ['a'] } })));
      svc.nc.publish('event.library.list.9.add', enc.encode(JSON.stringify({ value: 'b', idx: 1 })));
      await svc.nc.flush();
      return undefined;
    });
    lease.hold('library.list.9');
    await gql(gw.url, '{ list(id: 9) }');
    await waitFor(() => (gw.cache.peek('library.list.9')?.value as unknown[] | undefined)?.length === 2, 2000, 'the add event');
    expect(await gql(gw.url, '{ list(id: 9) }')).toEqual({ data: { list: ['a', 'b'] } });
  });

  it('applies a delete event published right after the get response', async () => {
    svc.handle('get.library.book.10', async (_p, _s, msg) => {
      msg.respond(enc.encode(JSON.stringify({ result: { model: { title: 'Short-lived' } } })));
      svc.nc.publish('event.library.book.10.delete', new Uint8Array());
      await svc.nc.flush();
      return undefined;
    });
    lease.hold('library.book.10');
    await gql(gw.url, '{ book(id: 10) { title } }');
    svc.handle('get.library.book.10', () => ({ error: { code: 'system.notFound', message: 'Not found' } }));
    await waitFor(() => gw.cache.peek('library.book.10') === undefined, 2000, 'the delete event');
    const r = await gql(gw.url, '{ book(id: 10) { title } }');
    expect(r.errors![0].extensions?.code).toBe('system.notFound');
  });

  it('ignores an event for a resource nobody has cached', async () => {
    await svc.event('library.book.999', 'change', { values: { title: 'x' } });
    svc.model('library.book.999', { title: 'fresh' });
    expect(await gql(gw.url, '{ book(id: 999) { title } }')).toEqual({ data: { book: { title: 'fresh' } } });
  });
});

describe('malformed events', () => {
  it('logs an event with malformed JSON and keeps the cached value', async () => {
    svc.model('library.book.20', { title: 'Intact' });
    await cached('library.book.20', '{ book(id: 20) { title } }');
    svc.nc.publish('event.library.book.20.change', enc.encode('{"values": {"title": '));
    await svc.nc.flush();
    await waitFor(() => warned(/malformed JSON/, 'subject', 'event.library.book.20.change'), 2000, 'the warning');
    expect(await gql(gw.url, '{ book(id: 20) { title } }')).toEqual({ data: { book: { title: 'Intact' } } });
    // later events still apply
    const applied = nextEntryChange(gw.cache, 'library.book.20');
    await svc.change('library.book.20', { title: 'Changed' });
    await applied;
    expect(await gql(gw.url, '{ book(id: 20) { title } }')).toEqual({ data: { book: { title: 'Changed' } } });
  });

  it('logs a change event without values and keeps the cached value', async () => {
    svc.model('library.book.21', { title: 'Intact' });
    await cached('library.book.21', '{ book(id: 21) { title } }');
    await svc.event('library.book.21', 'change', { title: 'not wrapped in values' });
    await waitFor(() => warned(/malformed event/, 'rid', 'library.book.21'), 2000, 'the warning');
    expect(gw.cache.peek('library.book.21')?.value).toEqual({ title: 'Intact' });
  });

  it('logs a change event on a collection and gets the collection again', async () => {
    svc.collection('library.list.22', ['a', 'b']);
    await cached('library.list.22', '{ list(id: 22) }');
    svc.collection('library.list.22', ['a', 'b', 'c']);
    const reget = svc.nextRequest('get.library.list.22');
    await svc.event('library.list.22', 'change', { values: { x: 1 } });
    await reget;
    await waitFor(() => (gw.cache.peek('library.list.22')?.value as unknown[] | undefined)?.length === 3, 2000, 'the re-get');
    expect(warned(/does not fit/, 'rid', 'library.list.22')).toBe(true);
    expect(await gql(gw.url, '{ list(id: 22) }')).toEqual({ data: { list: ['a', 'b', 'c'] } });
  });

  it('logs an add event with idx out of range and gets the collection again', async () => {
    svc.collection('library.list.23', ['a']);
    await cached('library.list.23', '{ list(id: 23) }');
    const reget = svc.nextRequest('get.library.list.23');
    await svc.event('library.list.23', 'add', { value: 'z', idx: 5 });
    await reget;
    await waitFor(() => gw.cache.peek('library.list.23') !== undefined, 2000, 'the re-get');
    expect(warned(/does not fit/, 'rid', 'library.list.23')).toBe(true);
    expect(await gql(gw.url, '{ list(id: 23) }')).toEqual({ data: { list: ['a'] } });
  });

  it('logs a remove event with idx out of range and gets the collection again', async () => {
    svc.collection('library.list.24', ['a', 'b']);
    await cached('library.list.24', '{ list(id: 24) }');
    const reget = svc.nextRequest('get.library.list.24');
    await svc.event('library.list.24', 'remove', { idx: 2 });
    await reget;
    await waitFor(() => gw.cache.peek('library.list.24') !== undefined, 2000, 'the re-get');
    expect(await gql(gw.url, '{ list(id: 24) }')).toEqual({ data: { list: ['a', 'b'] } });
  });

  it('logs an add event with an invalid value and keeps the cached value', async () => {
    svc.collection('library.list.25', ['a']);
    await cached('library.list.25', '{ list(id: 25) }');
    await svc.event('library.list.25', 'add', { value: { nested: 'object' }, idx: 0 });
    await waitFor(() => warned(/malformed event/, 'rid', 'library.list.25'), 2000, 'the warning');
    expect(await gql(gw.url, '{ list(id: 25) }')).toEqual({ data: { list: ['a'] } });
  });

  it('stays up and serves other resources after malformed events', async () => {
    svc.model('library.book.26', { title: 'Fine' });
    expect(await gql(gw.url, '{ book(id: 26) { title } }')).toEqual({ data: { book: { title: 'Fine' } } });
    const health = await fetch(`http://127.0.0.1:${gw.port}/healthz`);
    expect(health.status).toBe(200);
  });
});

describe('query resources and resets', () => {
  it('updates a cached query resource from the events a query request returns', async () => {
    svc.model('library.book.30', { title: 'Thirty' });
    svc.model('library.book.31', { title: 'Thirty-one' });
    svc.collection('library.books?text=q30&limit=20', [{ rid: 'library.book.30' }]);
    await cached('library.books?text=q30&limit=20', '{ search(text: "q30") { title } }');
    const requests: unknown[] = [];
    const sub = svc.nc.subscribe('_query.library.books', {
      callback: (_e, m) => {
        requests.push(JSON.parse(new TextDecoder().decode(m.data)));
        m.respond(enc.encode(JSON.stringify({ result: { events: [{ event: 'add', data: { value: { rid: 'library.book.31' }, idx: 1 } }] } })));
      },
    });
    try {
      await svc.nc.flush();
      const applied = nextEntryChange(gw.cache, 'library.books?text=q30&limit=20');
      await svc.event('library.books', 'query', { subject: '_query.library.books' });
      expect(await applied).toEqual({ type: 'add', idx: 1, value: { rid: 'library.book.31' } });
      expect(requests).toEqual([{ query: 'text=q30&limit=20' }]);
      expect(await gql(gw.url, '{ search(text: "q30") { title } }')).toEqual({
        data: { search: [{ title: 'Thirty' }, { title: 'Thirty-one' }] },
      });
    } finally {
      sub.unsubscribe();
    }
  });

  it('updates a cached query resource from a full collection a query request returns', async () => {
    svc.model('library.book.32', { title: 'Thirty-two' });
    svc.collection('library.books?text=q32&limit=20', []);
    await cached('library.books?text=q32&limit=20', '{ search(text: "q32") { title } }');
    const sub = svc.nc.subscribe('_query2.library.books', {
      callback: (_e, m) => {
        const { query } = JSON.parse(new TextDecoder().decode(m.data));
        // other cached queries of the name are asked too: for them nothing changed
        const result = query === 'text=q32&limit=20' ? { collection: [{ rid: 'library.book.32' }] } : {};
        m.respond(enc.encode(JSON.stringify({ result })));
      },
    });
    try {
      await svc.nc.flush();
      const applied = nextEntryChange(gw.cache, 'library.books?text=q32&limit=20');
      await svc.event('library.books', 'query', { subject: '_query2.library.books' });
      expect(await applied).toEqual({ type: 'add', idx: 0, value: { rid: 'library.book.32' } });
      expect(await gql(gw.url, '{ search(text: "q32") { title } }')).toEqual({ data: { search: [{ title: 'Thirty-two' }] } });
    } finally {
      sub.unsubscribe();
    }
  });

  it('gets matching resources again on system.reset and applies the difference', async () => {
    svc.model('library.book.33', { title: 'Before', meta: 'gone' });
    svc.collection('library.list.33', ['a', 'b', 'c']);
    await cached('library.book.33', '{ book(id: 33) { title } }');
    await cached('library.list.33', '{ list(id: 33) }');
    // the service changed its state without events, then says so
    svc.model('library.book.33', { title: 'After' });
    svc.collection('library.list.33', ['a', 'c', 'd']);
    const bookChanged = nextEntryChange(gw.cache, 'library.book.33');
    const listChanged = nextEntryChange(gw.cache, 'library.list.33');
    await svc.publish('system.reset', { resources: ['library.book.33', 'library.list.*'] });
    expect(await bookChanged).toEqual({ type: 'change', values: { title: 'After', meta: { action: 'delete' } } });
    await listChanged;
    await waitFor(() => JSON.stringify(gw.cache.peek('library.list.33')?.value) === '["a","c","d"]', 2000, 'the list reset');
    expect(await gql(gw.url, '{ book(id: 33) { title meta } list(id: 33) }')).toEqual({
      data: { book: { title: 'After', meta: null }, list: ['a', 'c', 'd'] },
    });
  });

  it('tells a lease that held a query rid before the service normalized it of the normalized entry\'s changes, timed', async () => {
    svc.model('library.book.30', { title: 'Thirty' });
    svc.model('library.book.31', { title: 'Thirty-one' });
    let items = [{ rid: 'library.book.30' }];
    svc.handle('get.library.books', (payload) =>
      payload?.query === 'text=lease&limit=20' || payload?.query === 'limit=20&text=lease'
        ? { result: { collection: items, query: 'limit=20&text=lease' } }
        : { error: { code: 'system.notFound', message: 'Not found' } },
    );
    const heard: { change: EntryChange; eventAt: number }[] = [];
    let tell: () => void = () => undefined;
    const watching = gw.cache.newLease((_e, change, eventAt) => {
      heard.push({ change, eventAt });
      tell();
    });
    // held before the load, under the spelling the service then normalizes
    watching.hold('library.books?text=lease&limit=20');
    expect(await gql(gw.url, '{ search(text: "lease") { title } }')).toEqual({ data: { search: [{ title: 'Thirty' }] } });
    items = [{ rid: 'library.book.30' }, { rid: 'library.book.31' }];
    const before = performance.now();
    const told = new Promise<void>((resolve) => (tell = resolve));
    await svc.publish('system.reset', { resources: ['library.books'] });
    await withTimeout(told, 2000, 'the lease to hear the reset');
    expect(heard.map((h) => h.change)).toEqual([{ type: 'add', idx: 1, value: { rid: 'library.book.31' } }]);
    // a reset's change is timed from when its reply was applied
    expect(heard[0].eventAt).toBeGreaterThanOrEqual(before);
    expect(heard[0].eventAt).toBeLessThanOrEqual(performance.now());
    watching.release();
  });
});

