/**
 * Clients with nothing but HTTP (no WebSocket). Apollo Client 4 with only
 * an HttpLink: a subscription goes over Apollo's multipart HTTP protocol,
 * HttpLink's default. It gets the first value and then the change another
 * client makes, idles with heartbeats the client reads and skips, and ends
 * cleanly when the client unsubscribes and when the gateway drains. urql
 * with `fetchSubscriptions`: subscriptions over SSE, `@defer` over
 * multipart.
 */
import { ApolloClient, CombinedProtocolErrors, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { Client as UrqlClient, fetchExchange, gql as urqlGql } from '@urql/core';

const csrfHeader = { headers: { 'x-graphql-yoga-csrf': '1' } };
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql as post, startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startLibraryStack, type LibraryStack } from './helpers/library-stack.js';
import { metric } from './helpers/metrics.js';
import { ResultStream } from './helpers/live-client.js';
import { waitFor } from './helpers/wait.js';

const librarySdl = readFileSync(new URL('../schema/library.graphql', import.meta.url), 'utf8');
let stack: LibraryStack;
/** a gateway of this file's own: heartbeats every 100 ms */
let gw: TestGateway;

beforeAll(async () => {
  stack = await startLibraryStack();
  gw = await startTestGateway(stack.nats.url, librarySdl, { multipartHeartbeat: 100 });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await stack?.close();
}, 30_000);

/** fetch, counting the heartbeat parts (`{}`) of the multipart bodies it hands to Apollo */
function heartbeatCountingFetch(): { fetch: typeof fetch; heartbeats: () => number } {
  let heartbeats = 0;
  const counting: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    if (!response.body || !/^multipart\/mixed/.test(response.headers.get('content-type') ?? '')) return response;
    const decoder = new TextDecoder();
    const body = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          heartbeats += decoder.decode(chunk, { stream: true }).split('\r\n\r\n{}\r\n').length - 1;
          controller.enqueue(chunk);
        },
      }),
    );
    return new Response(body, { status: response.status, headers: response.headers });
  };
  return { fetch: counting, heartbeats: () => heartbeats };
}

function httpOnlyApollo(url: string, fetchFn: typeof fetch = fetch): ApolloClient {
  return new ApolloClient({ link: new HttpLink({ uri: url, fetch: fetchFn }), cache: new InMemoryCache() });
}

function collect(client: ApolloClient, query: string, variables: Record<string, unknown>): ResultStream<any> {
  const s = new ResultStream<any>();
  const sub = client.subscribe({ query: gql(query), variables }).subscribe({ next: (r) => s.push(r), error: (e) => s.end(e), complete: () => s.end() });
  s.dispose = () => sub.unsubscribe();
  return s;
}

const BookUpdates = 'subscription BookUpdates($id: ID!) { book(id: $id) { id title } }';

describe('Apollo Client 4 with only an HttpLink', { timeout: 60_000 }, () => {
  it('subscribes over multipart HTTP: the first value, then the change another client makes', async () => {
    const counting = heartbeatCountingFetch();
    const client = httpOnlyApollo(gw.url, counting.fetch);
    const updates = collect(client, BookUpdates, { id: '1' });
    expect((await updates.next(10_000)).data).toEqual({ book: { __typename: 'Book', id: 'library.book.1', title: 'A Wizard of Earthsea' } });

    // idle: heartbeats come and Apollo reads past them, emitting nothing
    await waitFor(() => counting.heartbeats() >= 3, 5000, 'three heartbeats');
    expect(updates.pending).toBe(0);

    const other = httpOnlyApollo(stack.gw.url);
    await other.mutate({ mutation: gql('mutation ($id: ID!, $title: String!) { setBookTitle(id: $id, title: $title) }'), variables: { id: '1', title: 'The Tombs of Atuan' } });
    expect((await updates.next(10_000)).data).toEqual({ book: { __typename: 'Book', id: 'library.book.1', title: 'The Tombs of Atuan' } });
    expect((client.cache.extract() as Record<string, object>)['Book:library.book.1']).toMatchObject({ title: 'The Tombs of Atuan' });

    // unsubscribing aborts the request: the gateway lets go of the live subscription
    updates.dispose();
    await waitFor(async () => (await metric(gw, 'resgraph_live_subscriptions')) === 0, 3000, 'the subscription to end at the gateway');
    client.stop();
    other.stop();
  });

  it('is told by a draining gateway that it is going away, and the stream ends', async () => {
    const draining = await startTestGateway(stack.nats.url, librarySdl);
    const client = httpOnlyApollo(draining.url);
    try {
      const updates = collect(client, BookUpdates, { id: '2' });
      expect((await updates.next(10_000)).data.book.id).toBe('library.book.2');
      const drained = draining.drain(5000);
      // Apollo reports the transport error the gateway sent before it cut the stream
      const last = await updates.next(5000);
      expect(CombinedProtocolErrors.is(last.error)).toBe(true);
      expect(last.error.errors).toEqual([{ message: 'The gateway is shutting down; subscribe again', extensions: { code: 'system.unavailable' } }]);
      await updates.completed;
      expect((await drained).forced).toBe(false);
      // internal: a drained gateway no longer listens, so no scrape can see that nothing is left behind
      expect(draining.live.stats.subscribers).toBe(0);
    } finally {
      client.stop();
      await draining.close();
    }
  });
});

describe('urql with fetchSubscriptions (no graphql-ws)', { timeout: 60_000 }, () => {
  it('subscribes over SSE, and gets the change another client makes', async () => {
    // urql sends queries as GET; outside a browser a GET carries a CSRF header (docs/security.md)
    const client = new UrqlClient({ url: gw.url, exchanges: [fetchExchange], fetchSubscriptions: true, fetchOptions: csrfHeader });
    const results = new ResultStream<any>();
    const sub = client.subscription(urqlGql`subscription { book(id: "3") { title } }`, {}).subscribe((r) => results.push(r));
    expect((await results.next(10_000)).data).toEqual({ book: { title: 'Dune' } });
    expect((await post(stack.gw.url, 'mutation { setBookTitle(id: "3", title: "Dune Messiah") }')).errors).toBeUndefined();
    expect((await results.next(10_000)).data).toEqual({ book: { title: 'Dune Messiah' } });
    sub.unsubscribe();
    await waitFor(async () => (await metric(gw, 'resgraph_live_subscriptions')) === 0, 3000, 'the subscription to end at the gateway');
  });

  it('reads a @defer query in parts: first without the deferred fields, then whole', async () => {
    const client = new UrqlClient({ url: gw.url, exchanges: [fetchExchange], fetchOptions: csrfHeader });
    const results = new ResultStream<any>();
    const sub = client
      .query(urqlGql`{ book(id: "4") { title ... @defer { author { name } } } }`, {}, { requestPolicy: 'network-only' })
      .subscribe((r) => results.push(r));
    const first = await results.next(10_000);
    const parts = [first];
    while (parts[parts.length - 1].hasNext) parts.push(await results.next(10_000));
    expect(first).toMatchObject({ data: { book: { title: 'Kindred' } }, hasNext: true });
    expect(first.data.book.author).toBeUndefined();
    expect(parts[parts.length - 1].data.book).toEqual({ title: 'Kindred', author: { name: 'Octavia E. Butler' } });
    sub.unsubscribe();
  });
});
