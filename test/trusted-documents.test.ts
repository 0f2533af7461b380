/**
 * Trusted documents. With a manifest (hash → document) and persistedOnly,
 * clients name documents by `documentId` or `extensions.persistedQuery` over
 * HTTP, SSE and graphql-ws alike, and any other document is refused. Without
 * one, automatic persisted queries work: an unknown hash answers
 * PersistedQueryNotFound, the retry with the document stores it (its hash
 * checked), and Apollo Client's PersistedQueryLink runs queries and
 * mutations that way.
 */
import { createHash } from 'node:crypto';
import { ApolloClient, HttpLink, InMemoryCache, gql as apolloGql } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TrustedDocuments } from '../src/transports/trusted-documents.js';
import { addAuthor, addBook, closeClients, startLiveEnv, type LiveEnv } from './helpers/live-fixture.js';
import { ResultStream, subscribeSse, wsClient, type StreamResult } from './helpers/live-client.js';
import { startLibraryStack, type LibraryStack } from './helpers/library-stack.js';
import type { Client } from 'graphql-ws';
import { createClient as createSseClient } from 'graphql-sse';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const bookTitle = 'query BookTitle($id: ID!) { book(id: $id) { title } }';
const liveTitle = 'subscription LiveTitle($id: ID!) { book(id: $id) { title } }';
const manifest = { [sha256(bookTitle)]: bookTitle, [sha256(liveTitle)]: liveTitle };
const apq = (hash: string) => ({ persistedQuery: { version: 1, sha256Hash: hash } });

type Transport = 'fast path' | 'Yoga';
const accept: Record<Transport, string> = { 'fast path': 'application/json', Yoga: 'application/graphql-response+json' };

async function post(url: string, body: Record<string, unknown>, transport: Transport = 'fast path') {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: accept[transport] }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as StreamResult };
}

/** One operation over graphql-ws, with the payload as given (graphql-ws requires `query`, empty here). */
function wsOperation(client: Client, payload: Record<string, unknown>): ResultStream {
  const s = new ResultStream();
  s.dispose = client.subscribe({ query: '', ...payload } as never, {
    next: (r) => s.push(r as StreamResult),
    error: (e) => s.end(e),
    complete: () => s.end(),
  });
  return s;
}

/** SSE with a body of our own (the helper sends `query`). */
function sse(url: string, body: Record<string, unknown>): ResultStream {
  return subscribeSse(url, undefined as never, undefined, {}, body);
}

const fixture = (env: LiveEnv) => {
  addAuthor(env.svc, 1, 'Herbert');
  addBook(env.svc, 1, 'Dune', 1);
};

describe('a manifest with persistedOnly', () => {
  let env: LiveEnv;
  beforeAll(async () => {
    env = await startLiveEnv({ persistedDocuments: manifest, persistedOnly: true });
    fixture(env);
  });
  afterAll(async () => {
    await env?.close();
  });

  it.each(['fast path', 'Yoga'] as const)('runs a documentId and an extensions.persistedQuery over HTTP (%s)', async (transport) => {
    const byId = await post(env.gw.url, { documentId: sha256(bookTitle), variables: { id: 1 } }, transport);
    expect(byId).toEqual({ status: 200, body: { data: { book: { title: 'Dune' } } } });
    const byApq = await post(env.gw.url, { extensions: apq(sha256(bookTitle)), variables: { id: 1 } }, transport);
    expect(byApq.body).toEqual({ data: { book: { title: 'Dune' } } });
  });

  it.each(['fast path', 'Yoga'] as const)('refuses any other document over HTTP (%s), and an unknown hash', async (transport) => {
    const before = env.svc.requests.length;
    const other = await post(env.gw.url, { query: '{ book(id: 1) { title } }' }, transport);
    expect(other.status).toBe(400);
    expect(other.body.errors?.map((e) => e.extensions?.code)).toEqual(['system.untrustedDocument']);
    expect(other.body.errors?.[0].message).toMatch(/Only trusted documents/);
    // a known hash does not make its query trusted: the document run is the manifest's
    const disguised = await post(env.gw.url, { query: '{ author(id: 1) { name } }', extensions: apq(sha256(bookTitle)), variables: { id: 1 } }, transport);
    expect(disguised.body).toEqual({ data: { book: { title: 'Dune' } } });
    const unknown = await post(env.gw.url, { documentId: sha256('{ book(id: 1) { id } }') }, transport);
    expect(unknown.status).toBe(404);
    expect(unknown.body.errors).toEqual([{ message: 'PersistedQueryNotFound', extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } }]);
    // nothing of the documents sent ran: the service was never asked about an author
    expect(env.svc.requests.slice(before).filter((r) => r.subject.includes('author'))).toEqual([]);
  });

  it('streams a documentId and an extensions.persistedQuery over graphql-ws, and refuses other documents there', async () => {
    const client = wsClient(env.gw.url);
    const byId = wsOperation(client, { documentId: sha256(liveTitle), variables: { id: 1 } });
    expect(await byId.next()).toEqual({ data: { book: { title: 'Dune' } } });
    const byApq = wsOperation(client, { extensions: apq(sha256(bookTitle)), variables: { id: 1 } });
    expect(await byApq.next()).toEqual({ data: { book: { title: 'Dune' } } });
    await byApq.completed;

    const other = wsOperation(client, { query: 'subscription { book(id: 1) { title } }' });
    await other.completed;
    expect((other.error as StreamResult['errors'])?.map((e) => e.extensions?.code)).toEqual(['system.untrustedDocument']);
    const unknown = wsOperation(client, { documentId: 'nope' });
    await unknown.completed;
    expect(unknown.error).toEqual([{ message: 'PersistedQueryNotFound', extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } }]);

    await env.svc.change('library.book.1', { title: 'Dune Messiah' });
    expect(await byId.next()).toEqual({ data: { book: { title: 'Dune Messiah' } } });
    await env.svc.change('library.book.1', { title: 'Dune' });
    expect(await byId.next()).toEqual({ data: { book: { title: 'Dune' } } });
    await closeClients(env.gw, client);
  });

  it('streams a documentId over SSE, and refuses other documents there', async () => {
    const s = sse(env.gw.url, { documentId: sha256(liveTitle), variables: { id: 1 } });
    expect(await s.next()).toEqual({ data: { book: { title: 'Dune' } } });
    s.dispose();
    const refused = sse(env.gw.url, { query: liveTitle, variables: { id: 1 } });
    expect((await refused.next()).errors?.map((e) => e.extensions?.code)).toEqual(['system.untrustedDocument']);
  });

  it("streams a documentId over graphql-sse's single connection, and refuses other documents there", async () => {
    const client = createSseClient({ url: env.gw.url, singleConnection: true, retryAttempts: 0 });
    const stream = (payload: Record<string, unknown>) => {
      const s = new ResultStream();
      s.dispose = client.subscribe(payload as never, { next: (r) => s.push(r as StreamResult), error: (e) => s.end(e), complete: () => s.end() });
      return s;
    };
    const byId = stream({ documentId: sha256(liveTitle), variables: { id: 1 } });
    expect(await byId.next(5000)).toEqual({ data: { book: { title: 'Dune' } } });
    const before = env.svc.requests.length;
    const other = stream({ query: '{ author(id: 1) { name } }' });
    await other.completed;
    // graphql-sse's client reports a refused operation as a NetworkError carrying the response
    const refusal = (other.error as { response?: Response }).response!;
    expect(refusal.status).toBe(400);
    expect(env.svc.requests.slice(before).filter((r) => r.subject.includes('author'))).toEqual([]);
    byId.dispose();
    client.dispose();
  });
});

describe('automatic persisted queries (no manifest)', () => {
  let env: LiveEnv;
  beforeAll(async () => {
    env = await startLiveEnv();
    fixture(env);
  });
  afterAll(async () => {
    await env?.close();
  });

  it.each(['fast path', 'Yoga'] as const)('answers an unknown hash PersistedQueryNotFound, stores the retry, then runs the hash alone (HTTP, %s)', async (transport) => {
    const query = `query T_${transport.replace(' ', '_')}($id: ID!) { book(id: $id) { title } }`;
    const hash = sha256(query);
    const miss = await post(env.gw.url, { extensions: apq(hash), variables: { id: 1 } }, transport);
    expect(miss.status).toBe(404);
    expect(miss.body.errors).toEqual([{ message: 'PersistedQueryNotFound', extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } }]);
    const retry = await post(env.gw.url, { query, extensions: apq(hash), variables: { id: 1 } }, transport);
    expect(retry.body).toEqual({ data: { book: { title: 'Dune' } } });
    const hit = await post(env.gw.url, { extensions: apq(hash), variables: { id: 1 } }, transport);
    expect(hit.body).toEqual({ data: { book: { title: 'Dune' } } });
  });

  it('refuses a document whose hash is not the one sent with it, and does not store it', async () => {
    const hash = sha256('{ book(id: 1) { title } }');
    const lie = await post(env.gw.url, { query: '{ author(id: 1) { name } }', extensions: apq(hash) });
    expect(lie.status).toBe(400);
    expect(lie.body.errors).toEqual([{ message: 'PersistedQueryMismatch', extensions: { code: 'PERSISTED_QUERY_MISMATCH' } }]);
    const after = await post(env.gw.url, { extensions: apq(hash) });
    expect(after.body.errors?.map((e) => e.extensions?.code)).toEqual(['PERSISTED_QUERY_NOT_FOUND']);
  });

  it('resolves a stored hash over graphql-ws and SSE too (one store for every transport)', async () => {
    const query = 'subscription ApqLive($id: ID!) { book(id: $id) { title } }';
    const hash = sha256(query);
    const client = wsClient(env.gw.url);
    const miss = wsOperation(client, { extensions: apq(hash), variables: { id: 1 } });
    await miss.completed;
    expect(miss.error).toEqual([{ message: 'PersistedQueryNotFound', extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } }]);
    // stored over graphql-ws ...
    const stored = wsOperation(client, { query, extensions: apq(hash), variables: { id: 1 } });
    expect(await stored.next()).toEqual({ data: { book: { title: 'Dune' } } });
    const byHash = wsOperation(client, { extensions: apq(hash), variables: { id: 1 } });
    expect(await byHash.next()).toEqual({ data: { book: { title: 'Dune' } } });
    // ... and found over SSE
    const s = sse(env.gw.url, { extensions: apq(hash), variables: { id: 1 } });
    expect(await s.next()).toEqual({ data: { book: { title: 'Dune' } } });
    s.dispose();
    await closeClients(env.gw, client);
  });
});

describe('the persisted queries store', () => {
  it('is bounded: the least recently used document goes first', () => {
    const store = new TrustedDocuments({ maxDocumentBytes: 1000, maxStoredDocuments: 2 });
    const docs = ['{ a }', '{ b }', '{ c }'];
    store.resolve({ query: docs[0], extensions: apq(sha256(docs[0])) });
    store.resolve({ query: docs[1], extensions: apq(sha256(docs[1])) });
    expect(store.resolve({ extensions: apq(sha256(docs[0])) })).toEqual({ query: docs[0] });
    store.resolve({ query: docs[2], extensions: apq(sha256(docs[2])) });
    expect(store.resolve({ extensions: apq(sha256(docs[0])) })).toEqual({ query: docs[0] });
    expect(store.resolve({ extensions: apq(sha256(docs[2])) })).toEqual({ query: docs[2] });
    expect('error' in store.resolve({ extensions: apq(sha256(docs[1])) })).toBe(true);
  });

  it('keeps no document over the size limit', () => {
    const store = new TrustedDocuments({ maxDocumentBytes: 10 });
    const big = '{ book(id: 1) { title } }';
    expect(store.resolve({ query: big, extensions: apq(sha256(big)) })).toEqual({ query: big });
    expect('error' in store.resolve({ extensions: apq(sha256(big)) })).toBe(true);
  });
});

describe("Apollo Client's PersistedQueryLink (automatic persisted queries)", { timeout: 60_000 }, () => {
  let stack: LibraryStack;
  const sent: Record<string, unknown>[] = [];
  beforeAll(async () => {
    stack = await startLibraryStack();
  }, 60_000);
  afterAll(async () => {
    await stack?.close();
  });

  const client = () =>
    new ApolloClient({
      link: new PersistedQueryLink({ sha256 }).concat(
        new HttpLink({
          uri: stack.gw.url,
          fetch: (input, init) => {
            sent.push(JSON.parse(String(init?.body)) as Record<string, unknown>);
            return fetch(input, init);
          },
        }),
      ),
      cache: new InMemoryCache(),
    });

  it('runs a query and a mutation by hash after registering each once', async () => {
    const query = apolloGql`query ApqBook($id: ID!) { book(id: $id) { id title } }`;
    const mutation = apolloGql`mutation ApqRename($id: ID!, $title: String!) { setBookTitle(id: $id, title: $title) }`;
    const first = client();
    expect((await first.query({ query, variables: { id: '3' } })).data).toEqual({ book: { __typename: 'Book', id: 'library.book.3', title: 'Dune' } });
    // the hash alone first, then the document with it
    expect(sent.map((b) => 'query' in b)).toEqual([false, true]);
    const renamed = await first.mutate({ mutation, variables: { id: '3', title: 'Dune (APQ)' } });
    expect(renamed.data).toEqual({ setBookTitle: null });
    expect(sent.slice(2).map((b) => 'query' in b)).toEqual([false, true]);

    // a second client: both documents are known by their hash now
    sent.length = 0;
    const second = client();
    expect((await second.query({ query, variables: { id: '3' } })).data).toMatchObject({ book: { title: 'Dune (APQ)' } });
    await second.mutate({ mutation, variables: { id: '3', title: 'Dune' } });
    expect(sent.map((b) => 'query' in b)).toEqual([false, false]);
    first.stop();
    second.stop();
  });
});
