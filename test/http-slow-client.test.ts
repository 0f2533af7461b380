/**
 * The HTTP streams keep the live-result semantics of the WebSocket
 * transport: a client that stops reading an Apollo multipart subscription
 * or a graphql-sse single-connection stream is skipped ahead rather than
 * queued for, and once it reads again it gets the newest state, in order,
 * after at most what the sockets' buffers held.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResultStream, subscribeWs, wsClient } from './helpers/live-client.js';
import { addAuthor, addBook, closeClients, startLiveEnv, type LiveEnv } from './helpers/live-fixture.js';
import { metric } from './helpers/metrics.js';
import { postMultipart } from './helpers/multipart-client.js';
import { waitFor } from './helpers/wait.js';

let env: LiveEnv;
const enc = new TextEncoder();

beforeAll(async () => {
  env = await startLiveEnv();
  addAuthor(env.svc, 1, 'Herbert');
  addBook(env.svc, 1, 'Book 1', 1);
  addBook(env.svc, 2, 'Book 2', 1);
});

afterAll(async () => {
  await env?.close();
});

/** 400 KB titles: a hundred of them are far more than loopback's socket buffers hold. */
const bigTitle = (n: number) => `${n}:`.padEnd(400_000, 'x');
const numberOf = (title: string) => Number(title.slice(0, title.indexOf(':')));
const changes = 100;

/** Publishes `changes` big titles for a book while a fast WebSocket client follows them to the last. */
async function changeManyTimes(id: number): Promise<void> {
  const client = wsClient(env.gw.url);
  const fast = subscribeWs(client, `subscription { book(id: ${id}) { title } }`);
  await fast.next(5000);
  for (let n = 1; n <= changes; n++) {
    const title = bigTitle(n);
    (env.svc.resources.get(`library.book.${id}`) as { model: Record<string, unknown> }).model.title = title;
    env.svc.nc.publish(`event.library.book.${id}.change`, enc.encode(JSON.stringify({ values: { title } })));
    await env.svc.nc.flush();
  }
  let seen = 0;
  while (seen < changes) seen = numberOf((await fast.next(10_000)).data.book.title);
  await client.dispose();
}

/** Reads titles until the last one; they only ever go up, and fewer arrive than were made. */
async function readToTheLast(next: () => Promise<string>): Promise<number> {
  let last = 0;
  let received = 0;
  while (last < changes) {
    const n = numberOf(await next());
    expect(n).toBeGreaterThan(last);
    last = n;
    received++;
  }
  return received;
}

describe('a slow HTTP stream reader', { timeout: 60_000 }, () => {
  it('of a multipart subscription gets the newest state, not a backlog', async () => {
    const m = await postMultipart(env.gw.url, { query: 'subscription { book(id: 1) { title } }' }, undefined, {}, true);
    await waitFor(async () => (await metric(env.gw, 'resgraph_live_subscriptions')) === 1, 3000, 'the subscription');
    await changeManyTimes(1);
    m.resume();
    const payloads = async () => {
      for (;;) {
        const p = await m.parts.next(10_000);
        if (p.payload) return p.payload.data.book.title as string;
      }
    };
    expect(await payloads()).toBe('Book 1'); // the first state, sent before the reader paused
    const received = await readToTheLast(payloads);
    if (process.env.RESGRAPH_TEST_LOG) console.log('received', received, 'of', changes);
    expect(received).toBeLessThan(changes / 2);
    m.abort();
    await closeClients(env.gw);
  });

  it('of a graphql-sse single-connection stream gets the newest state, not a backlog', async () => {
    const url = env.gw.url;
    const token = await (await fetch(url, { method: 'PUT' })).text();
    const headers = { 'x-graphql-event-stream-token': token };
    const reading = new AbortController();
    const stream = await fetch(url, { headers: { ...headers, accept: 'text/event-stream' }, signal: reading.signal });
    const accepted = await fetch(url, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'subscription { book(id: 2) { title } }', extensions: { operationId: 'a' } }),
    });
    expect(accepted.status).toBe(202);
    await waitFor(async () => (await metric(env.gw, 'resgraph_live_subscriptions')) === 1, 3000, 'the subscription');
    await changeManyTimes(2);

    const events = new ResultStream<any>();
    void (async () => {
      let buffer = '';
      for await (const chunk of stream.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += Buffer.from(chunk).toString('utf8');
        let at: number;
        while ((at = buffer.indexOf('\n\n')) >= 0) {
          const data = /^data: (.+)$/m.exec(buffer.slice(0, at))?.[1];
          buffer = buffer.slice(at + 2);
          if (data) events.push(JSON.parse(data));
        }
      }
    })().catch(() => undefined);
    const titles = async () => {
      const e = await events.next(10_000);
      expect(e.id).toBe('a');
      return e.payload.data.book.title as string;
    };
    expect(await titles()).toBe('Book 2'); // the first state, sent before the reader paused
    const received = await readToTheLast(titles);
    if (process.env.RESGRAPH_TEST_LOG) console.log('received', received, 'of', changes);
    expect(received).toBeLessThan(changes / 2);
    reading.abort();
    await closeClients(env.gw);
  });
});
