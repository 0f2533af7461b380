/**
 * The graphql-transport-ws protocol as the gateway's WebSocket loop speaks
 * it, checked with a raw socket: the handshake, ping/pong, and the close
 * codes for clients that break the protocol.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import type { TestService } from './helpers/res-service.js';
import { startTestEnv, type TestEnv } from './helpers/env.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { withTimeout } from './helpers/wait.js';

let env: TestEnv;
let svc: TestService;
let gw: TestGateway;

beforeAll(async () => {
  env = await startTestEnv(readFileSync('schema/library.graphql', 'utf8'));
  ({ svc, gw } = env);
  svc.model('library.book.1', { id: 1, title: 'Dune' });
});

afterAll(async () => {
  await env?.close();
});

/** A raw socket with a queue of received messages and its close event. */
function raw(protocol: string | null = 'graphql-transport-ws') {
  const ws = new WebSocket(gw.url.replace(/^http/, 'ws'), protocol ?? undefined);
  const messages: any[] = [];
  let wake: (() => void) | undefined;
  ws.on('message', (d) => {
    messages.push(JSON.parse(d.toString()));
    wake?.();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  const opened = new Promise<void>((resolve) => ws.on('open', () => resolve()));
  return {
    ws,
    closed: withTimeout(closed, 5000, 'the socket to close'),
    async send(m: unknown) {
      await opened;
      ws.send(typeof m === 'string' ? m : JSON.stringify(m));
    },
    async next(): Promise<any> {
      const deadline = Date.now() + 3000;
      while (messages.length === 0) {
        if (Date.now() > deadline) throw new Error('no message');
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
      return messages.shift();
    },
  };
}

describe('graphql-transport-ws', () => {
  it('acknowledges, answers pings, streams a subscription and completes it on request', async () => {
    const c = raw();
    await c.send({ type: 'connection_init' });
    expect(await c.next()).toEqual({ type: 'connection_ack' });
    await c.send({ type: 'ping', payload: { n: 1 } });
    expect(await c.next()).toEqual({ type: 'pong', payload: { n: 1 } });
    await c.send({ id: 'a', type: 'subscribe', payload: { query: 'subscription { book(id: 1) { title } }' } });
    expect(await c.next()).toEqual({ id: 'a', type: 'next', payload: { data: { book: { title: 'Dune' } } } });
    await c.send({ id: 'a', type: 'complete' });
    // the id is free again: a query under it is answered and completed
    await c.send({ id: 'a', type: 'subscribe', payload: { query: '{ book(id: 1) { title } }' } });
    expect(await c.next()).toEqual({ id: 'a', type: 'next', payload: { data: { book: { title: 'Dune' } } } });
    expect(await c.next()).toEqual({ id: 'a', type: 'complete' });
    c.ws.close();
  });

  it('answers an invalid operation with an error message for that id, and the socket stays open', async () => {
    const c = raw();
    await c.send({ type: 'connection_init' });
    await c.next();
    await c.send({ id: 'x', type: 'subscribe', payload: { query: '{ nope }' } });
    const err = await c.next();
    expect(err).toMatchObject({ id: 'x', type: 'error' });
    expect(err.payload[0].message).toMatch(/nope/);
    await c.send({ id: 'y', type: 'subscribe', payload: { query: '{ book(id: 1) { title } }' } });
    expect(await c.next()).toMatchObject({ id: 'y', type: 'next' });
    c.ws.close();
  });

  it('closes with 4401 on a subscribe before connection_init', async () => {
    const c = raw();
    await c.send({ id: '1', type: 'subscribe', payload: { query: '{ books { title } }' } });
    expect((await c.closed).code).toBe(4401);
  });

  it('closes with 4429 on a second connection_init', async () => {
    const c = raw();
    await c.send({ type: 'connection_init' });
    await c.next();
    await c.send({ type: 'connection_init' });
    expect((await c.closed).code).toBe(4429);
  });

  it('closes with 4409 when a subscription id is already in use', async () => {
    const c = raw();
    await c.send({ type: 'connection_init' });
    await c.next();
    await c.send({ id: 's', type: 'subscribe', payload: { query: 'subscription { book(id: 1) { title } }' } });
    await c.next();
    await c.send({ id: 's', type: 'subscribe', payload: { query: 'subscription { book(id: 1) { title } }' } });
    expect((await c.closed).code).toBe(4409);
  });

  it('closes with 4400 on a message that is not the protocol', async () => {
    const c = raw();
    await c.send('not json');
    expect((await c.closed).code).toBe(4400);
  });

  it('closes with 4406 when the client asks for no graphql-transport-ws subprotocol', async () => {
    const c = raw(null);
    expect((await c.closed).code).toBe(4406);
  });
});

describe('connection_init timeout', () => {
  it('closes with 4408 when connection_init does not come in time', async () => {
    const quick = await startTestGateway(env.nats.url, readFileSync('schema/library.graphql', 'utf8'));
    try {
      const ws = new WebSocket(quick.url.replace(/^http/, 'ws'), 'graphql-transport-ws');
      const code = await withTimeout(new Promise<number>((resolve) => ws.on('close', (c) => resolve(c))), 6000, 'the 4408 close');
      expect(code).toBe(4408);
    } finally {
      await quick.close();
    }
  });
});
