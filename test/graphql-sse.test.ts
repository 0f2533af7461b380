/**
 * graphql-sse's client in both of its modes against the gateway: distinct
 * connections (Yoga's SSE: one request per operation) and a single
 * connection (a reserved stream carrying every operation of the client, by
 * id). Both get live results and the change a mutation from another client
 * makes; the single connection is one connection of the gateway (one cid).
 */
import { createClient, type Client, type ExecutionResult } from 'graphql-sse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { gql, startTestGateway } from './helpers/gateway.js';
import { startLibraryStack, type LibraryStack } from './helpers/library-stack.js';
import { ResultStream } from './helpers/live-client.js';
import { metric } from './helpers/metrics.js';
import { waitFor } from './helpers/wait.js';

let stack: LibraryStack;
const clients: Client[] = [];

beforeAll(async () => {
  stack = await startLibraryStack();
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.dispose();
  await stack?.close();
}, 30_000);

function sseClient(url: string, singleConnection: boolean): Client {
  const client = createClient({ url, singleConnection, retryAttempts: 0 });
  clients.push(client);
  return client;
}

function subscribe(client: Client, query: string, variables?: Record<string, unknown>): ResultStream<ExecutionResult> {
  const s = new ResultStream<ExecutionResult>();
  s.dispose = client.subscribe({ query, variables }, { next: (r) => s.push(r as ExecutionResult), error: (e) => s.end(e), complete: () => s.end() });
  return s;
}

const bookTitle = 'subscription ($id: ID!) { book(id: $id) { title } }';
const setTitle = 'mutation ($id: ID!, $title: String!) { setBookTitle(id: $id, title: $title) }';

describe('graphql-sse, distinct connections mode', { timeout: 30_000 }, () => {
  it('streams a subscription and its update after a mutation', async () => {
    const client = sseClient(stack.gw.url, false);
    const s = subscribe(client, bookTitle, { id: '1' });
    expect((await s.next(5000)).data).toEqual({ book: { title: 'A Wizard of Earthsea' } });
    expect((await gql(stack.gw.url, setTitle, { id: '1', title: 'Tehanu' })).errors).toBeUndefined();
    expect((await s.next(5000)).data).toEqual({ book: { title: 'Tehanu' } });
    s.dispose();
  });
});

describe('graphql-sse, single connection mode', { timeout: 30_000 }, () => {
  it('carries a subscription and a query over one stream, and the update after a mutation', async () => {
    const { gw } = stack;
    await waitFor(async () => (await metric(gw, 'resgraph_connections')) === 0, 3000, 'earlier connections to close');
    const client = sseClient(gw.url, true);
    const book = subscribe(client, bookTitle, { id: '2' });
    expect((await book.next(5000)).data).toEqual({ book: { title: 'The Left Hand of Darkness' } });
    const query = subscribe(client, '{ book(id: "3") { title author { name } } }');
    expect((await query.next(5000)).data).toEqual({ book: { title: 'Dune', author: { name: 'Frank Herbert' } } });
    await query.completed;
    // one stream, one connection of the gateway, for both operations
    expect(await metric(gw, 'resgraph_connections')).toBe(1);

    expect((await gql(gw.url, setTitle, { id: '2', title: 'The Dispossessed' })).errors).toBeUndefined();
    expect((await book.next(5000)).data).toEqual({ book: { title: 'The Dispossessed' } });

    // stopping the subscription (DELETE) ends it at the gateway
    book.dispose();
    await waitFor(async () => (await metric(gw, 'resgraph_live_subscriptions')) === 0, 3000, 'the subscription to end');
    client.dispose();
    await waitFor(async () => (await metric(gw, 'resgraph_connections')) === 0, 3000, 'the connection to close');
  });

  it('sends the parts of a @defer query as next events, then complete', async () => {
    const client = sseClient(stack.gw.url, true);
    const parts = subscribe(client, '{ book(id: "4") { title ... @defer { author { name } } } }');
    expect(await parts.next(5000)).toEqual({ data: { book: { title: 'Kindred' } }, hasNext: true });
    expect(await parts.next(5000)).toEqual({ incremental: [{ data: { author: { name: 'Octavia E. Butler' } }, path: ['book'] }], hasNext: false });
    await parts.completed;
    client.dispose();
  });

  it('answers an operation that does not validate with 400 and its errors, as graphql-sse does', async () => {
    const put = await fetch(stack.gw.url, { method: 'PUT' });
    expect(put.status).toBe(201);
    const token = await put.text();
    const stream = await fetch(stack.gw.url, { headers: { accept: 'text/event-stream', 'x-graphql-event-stream-token': token } });
    expect(stream.status).toBe(200);
    const r = await fetch(stack.gw.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-graphql-event-stream-token': token },
      body: JSON.stringify({ query: '{ nope }', extensions: { operationId: '1' } }),
    });
    expect(r.status).toBe(400);
    expect((await r.json()).errors[0].extensions.code).toBe('GRAPHQL_VALIDATION_FAILED');
    const again = await fetch(stack.gw.url, { headers: { accept: 'text/event-stream', 'x-graphql-event-stream-token': token } });
    expect(again.status).toBe(409);
    await stream.body?.cancel();
  });

  it('on a drain, ends the stream without complete, and the client sees a lost connection', async () => {
    const gw = await startTestGateway(stack.nats.url, readFileSync(new URL('../schema/library.graphql', import.meta.url), 'utf8'));
    try {
      const client = sseClient(gw.url, true);
      const book = subscribe(client, bookTitle, { id: '3' });
      expect((await book.next(5000)).data).toEqual({ book: { title: 'Dune' } });
      const drained = gw.drain(5000);
      await book.completed;
      expect(book.error).toBeDefined(); // an error, not a complete: graphql-sse would connect again (to another instance)
      expect((await drained).forced).toBe(false);
      // internal: a drained gateway no longer listens, so no scrape can see that nothing is left behind
      expect(gw.connections.size).toBe(0);
      expect(gw.live.stats.subscribers).toBe(0);
    } finally {
      await gw.close();
    }
  });

  it('refuses an unknown token with 404', async () => {
    const unknown = await fetch(stack.gw.url, { headers: { accept: 'text/event-stream', 'x-graphql-event-stream-token': 'nope' } });
    expect(unknown.status).toBe(404);
    expect((await unknown.json()).errors[0].extensions.code).toBe('system.invalidParams');
  });

  it('answers malformed operations with a clear error and a code, and keeps the stream working', async () => {
    const url = stack.gw.url;
    const token = await (await fetch(url, { method: 'PUT' })).text();
    const headers = { 'x-graphql-event-stream-token': token };
    const reading = new AbortController();
    const stream = await fetch(`${url}?token=${token}`, { headers: { accept: 'text/event-stream' }, signal: reading.signal });
    expect(stream.status).toBe(200);
    const post = (body: string, contentType = 'application/json') =>
      fetch(url, { method: 'POST', headers: { ...headers, 'content-type': contentType }, body });
    const cases: [Response, number, string][] = [
      [await post('{not json'), 400, 'Unparsable JSON body'],
      [await post('{"query": 1, "extensions": {"operationId": "x"}}'), 400, 'Invalid GraphQL request parameters'],
      [await post('{"query": "{ books { id } }"}'), 400, 'Operation ID is missing'],
      [await post('{"query": "{ books { id } }", "extensions": {"operationId": "x"}}', 'text/plain'), 415, 'Operations are sent as application/json'],
      [await fetch(`${url}?operationId=`, { method: 'DELETE', headers }), 400, 'Operation ID is missing'],
    ];
    for (const [r, status, message] of cases) {
      expect(r.status).toBe(status);
      const body = await r.json();
      expect(body.errors[0]).toEqual({ message, extensions: { code: 'system.invalidParams' } });
    }
    const ok = await post('{"query": "subscription { book(id: \\"1\\") { id } }", "extensions": {"operationId": "x"}}');
    expect(ok.status).toBe(202);
    const twice = await post('{"query": "{ books { id } }", "extensions": {"operationId": "x"}}');
    expect(twice.status).toBe(409);
    expect((await twice.json()).errors[0].message).toBe('Operation with ID already exists');
    expect((await fetch(`${url}?operationId=x`, { method: 'DELETE', headers })).status).toBe(200);
    await waitFor(async () => (await metric(stack.gw, 'resgraph_live_subscriptions')) === 0, 3000, 'the stopped subscription to end');
    reading.abort();
  });

  it('forgets a reservation whose stream is not opened in time', async () => {
    const gw = await startTestGateway(stack.nats.url, 'type Query { x: Int }', { sseReservationTimeout: 100 });
    try {
      const token = await (await fetch(gw.url, { method: 'PUT' })).text();
      expect(await metric(gw, 'resgraph_connections')).toBe(1);
      await waitFor(async () => (await metric(gw, 'resgraph_connections')) === 0, 3000, 'the reservation to expire');
      const late = await fetch(gw.url, { headers: { accept: 'text/event-stream', 'x-graphql-event-stream-token': token } });
      expect(late.status).toBe(404);
    } finally {
      await gw.close();
    }
  });
});
