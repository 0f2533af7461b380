/**
 * A live result is a state, not an event log: a WebSocket client that stops
 * reading is skipped ahead rather than queued for. The gateway writes to it
 * until its socket's buffer passes the high-water mark, then keeps only the
 * newest state for it; the other clients of the same result go on at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAuthor, addBook, closeClients, startLiveEnv, type LiveEnv } from './helpers/live-fixture.js';
import { subscribeWs, wsClient } from './helpers/live-client.js';
import { RawLiveSocket } from './helpers/live-view.js';

let env: LiveEnv;
const enc = new TextEncoder();

beforeAll(async () => {
  env = await startLiveEnv();
  addAuthor(env.svc, 1, 'Herbert');
  addBook(env.svc, 1, 'Book 1', 1);
});

afterAll(async () => {
  await env?.close();
});

/** 400 KB titles: a hundred of them are far more than loopback's socket buffers hold. */
const bigTitle = (n: number) => `${n}:`.padEnd(400_000, 'x');
const numberOf = (title: string) => Number(title.slice(0, title.indexOf(':')));

describe('a client that stops reading', () => {
  it('does not hold back the others, and gets only the newest states, in order, once it reads again', async () => {
    const { svc, gw } = env;
    const query = 'subscription { book(id: 1) { title } }';
    const slow = new RawLiveSocket(gw.url, query);
    expect((await slow.next()).payload).toEqual({ data: { book: { title: 'Book 1' } } });
    const client = wsClient(gw.url);
    const fast = subscribeWs(client, query);
    expect(await fast.next()).toEqual({ data: { book: { title: 'Book 1' } } });

    slow.pause();
    const changes = 100;
    for (let n = 1; n <= changes; n++) {
      const title = bigTitle(n);
      (svc.resources.get('library.book.1') as { model: Record<string, unknown> }).model.title = title;
      svc.nc.publish('event.library.book.1.change', enc.encode(JSON.stringify({ values: { title } })));
      await svc.nc.flush();
    }
    // the reading client reaches the last state while the other reads nothing
    let seen = 0;
    while (seen < changes) {
      const n = numberOf((await fast.next(10_000)).data.book.title);
      expect(n).toBeGreaterThan(seen);
      seen = n;
    }

    slow.resume();
    let last = 0;
    while (last < changes) {
      const n = numberOf((await slow.next(10_000)).payload.data.book.title);
      expect(n).toBeGreaterThan(last);
      last = n;
    }
    // what it got is what the kernel's buffers held plus the newest state: states were skipped, not queued
    const received = slow.frames.length - 1;
    expect(received).toBeLessThan(changes / 2);
    expect(slow.pending).toBe(0);
    await closeClients(gw, client, slow);
  });
});
