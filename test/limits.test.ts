/**
 * Operation limits: a request over a limit (body bytes, document bytes,
 * tokens, depth, aliases, directives) is refused with a coded GraphQL error
 * on every transport (Yoga's HTTP path, the fast HTTP path, SSE, graphql-ws)
 * before anything runs, and the gateway answers the next request at once. A
 * WebSocket message over the body limit closes that socket with 1009 while
 * the others carry on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { addAuthor, addBook, closeClients, startLiveEnv, type LiveEnv } from './helpers/live-fixture.js';
import { subscribeSse, subscribeWs, wsClient, wsUrl } from './helpers/live-client.js';
import { gql } from './helpers/gateway.js';

/** Small limits, so over-limit documents stay small; the defaults are checked in cli.test.ts. */
const limits = { maxDepth: 5, maxAliases: 3, maxTokens: 400, maxDirectives: 4, maxDocumentBytes: 2000, maxBodyBytes: 4000 };

let env: LiveEnv;

beforeAll(async () => {
  env = await startLiveEnv(limits);
  addAuthor(env.svc, 1, 'Herbert');
  addBook(env.svc, 1, 'Dune', 1);
});

afterAll(async () => {
  await env?.close();
});

const aliases = (n: number) => `{ book(id: 1) { ${Array.from({ length: n }, (_, i) => `a${i}: title`).join(' ')} } }`;
const directives = (n: number) => `{ book(id: 1) { ${'... @include(if: true) { title } '.repeat(n)} } }`;
/** Over each limit, and under every other one. */
const overLimit = {
  depth: '{ book(id: 1) { author { books { author { books { title } } } } } }',
  aliases: aliases(4),
  tokens: `{ book(id: 1) { ${'id '.repeat(400)} } }`,
  directives: directives(5),
  documentBytes: `{ book(id: 1) { title } } ${'#'.repeat(2000)}`,
} as const;

type Transport = 'fast path' | 'Yoga';
/** The fast path takes a plain JSON POST; any other Accept header makes it Yoga's. */
const accept: Record<Transport, string> = { 'fast path': 'application/json', Yoga: 'application/graphql-response+json' };

async function post(transport: Transport, body: string) {
  const res = await fetch(env.gw.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: accept[transport] }, body });
  return { status: res.status, body: (await res.json()) as { data?: unknown; errors?: { message: string; extensions?: Record<string, unknown> }[] } };
}

async function expectGatewayAnswers(): Promise<void> {
  expect(await gql(env.gw.url, '{ book(id: 1) { title } }')).toEqual({ data: { book: { title: 'Dune' } } });
}

describe.each(['fast path', 'Yoga'] as const)('HTTP (%s)', (transport) => {
  it.each(Object.entries(overLimit))('refuses a document over the %s limit with a coded error, and answers the next query', async (limit, query) => {
    const before = env.svc.requests.length;
    const r = await post(transport, JSON.stringify({ query }));
    expect(r.status).toBe(400);
    expect(r.body.data).toBeUndefined();
    expect(r.body.errors?.map((e) => e.extensions)).toEqual([{ code: 'system.limitExceeded', limit }]);
    expect(r.body.errors?.[0].message).toMatch(/limit of \d+ (bytes )?exceeded/);
    // refused before anything ran: the service was asked nothing
    expect(env.svc.requests.length).toBe(before);
    await expectGatewayAnswers();
  });

  it('answers a body over the limit with 413, and the next query at once', async () => {
    const r = await post(transport, JSON.stringify({ query: '{ book(id: 1) { title } }', variables: { pad: 'x'.repeat(5000) } }));
    expect(r.status).toBe(413);
    expect(r.body.errors?.map((e) => e.extensions)).toEqual([{ code: 'system.limitExceeded', limit: 'bodyBytes' }]);
    expect(r.body.errors?.[0].message).toBe('Request body limit of 4000 bytes exceeded.');
    await expectGatewayAnswers();
  });

  it('accepts operations at the depth, alias and directive limits', async () => {
    const atDepth = '{ book(id: 1) { author { books { author { name } } } } }';
    expect((await post(transport, JSON.stringify({ query: atDepth }))).body.errors).toBeUndefined();
    const r = await post(transport, JSON.stringify({ query: aliases(3) }));
    expect(r.body).toEqual({ data: { book: { a0: 'Dune', a1: 'Dune', a2: 'Dune' } } });
    expect((await post(transport, JSON.stringify({ query: directives(4) }))).body).toEqual({ data: { book: { title: 'Dune' } } });
  });
});

describe('SSE', () => {
  it.each(Object.entries(overLimit))('refuses a subscription over the %s limit with a coded error', async (limit, query) => {
    const s = subscribeSse(env.gw.url, `subscription ${query.replace(/^\{/, '{')}`);
    const r = await s.next();
    expect(r.errors?.map((e) => e.extensions)).toEqual([{ code: 'system.limitExceeded', limit }]);
    await expectGatewayAnswers();
  });
});

describe('graphql-ws', () => {
  it.each(Object.entries(overLimit))('refuses an operation over the %s limit with a coded error, keeping the socket', async (limit, query) => {
    const client = wsClient(env.gw.url);
    const s = subscribeWs(client, query);
    await s.completed;
    expect((s.error as { extensions?: unknown }[]).map((e) => e.extensions)).toEqual([{ code: 'system.limitExceeded', limit }]);
    const ok = subscribeWs(client, '{ book(id: 1) { title } }');
    expect(await ok.next()).toEqual({ data: { book: { title: 'Dune' } } });
    await closeClients(env.gw, client);
  });

  it('closes a socket that sends a message over the body limit with 1009; another socket keeps working', async () => {
    const other = wsClient(env.gw.url);
    const live = subscribeWs(other, 'subscription { book(id: 1) { title } }');
    expect(await live.next()).toEqual({ data: { book: { title: 'Dune' } } });

    const ws = new WebSocket(wsUrl(env.gw.url), 'graphql-transport-ws');
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send(JSON.stringify({ type: 'connection_init' }));
    await new Promise((resolve) => ws.once('message', resolve));
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: '{ book(id: 1) { title } }', variables: { pad: 'x'.repeat(5000) } } }));
    expect(await closed).toBe(1009);

    await env.svc.change('library.book.1', { title: 'Still live' });
    expect(await live.next()).toEqual({ data: { book: { title: 'Still live' } } });
    await env.svc.change('library.book.1', { title: 'Dune' });
    expect(await live.next()).toEqual({ data: { book: { title: 'Dune' } } });
    await closeClients(env.gw, other);
  });
});

/** `{ a { a { ... } } }`, `levels` deep: about 6 bytes a level. */
const nested = (levels: number) => `${'{ a '.repeat(levels)}${' }'.repeat(levels)}`;

describe('hostile documents, with the default limits', () => {
  let dflt: LiveEnv;
  /** the default limits but for a 10 MB body limit */
  let largeBodies: LiveEnv;

  beforeAll(async () => {
    dflt = await startLiveEnv();
    largeBodies = await startLiveEnv({ maxBodyBytes: 10 * 1024 * 1024 });
    for (const e of [dflt, largeBodies]) {
      addAuthor(e.svc, 1, 'Herbert');
      addBook(e.svc, 1, 'Dune', 1);
    }
  });

  afterAll(async () => {
    await dflt?.close();
    await largeBodies?.close();
  });

  const postTo = async (url: string, query: string) => {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }) });
    return { status: res.status, body: (await res.json()) as { errors?: { message: string; extensions?: Record<string, unknown> }[] } };
  };
  const expectAnswers = async (e: LiveEnv) =>
    expect(await gql(e.gw.url, '{ book(id: 1) { title } }')).toEqual({ data: { book: { title: 'Dune' } } });
  /** 100,000 aliases: 2.9 MB */
  const manyAliases = `{ ${Array.from({ length: 100_000 }, (_, i) => `alias${i}: book(id: 1) { id }`).join(' ')} }`;

  // the parser runs out of stack long before the token limit's 5,000 tokens
  it('refuses a 10,000-deep document (60 KB) over HTTP (fast path) with a coded error, and answers the next query at once', async () => {
    const r = await postTo(dflt.gw.url, nested(10_000));
    expect(r.status).toBe(400);
    expect(r.body.errors).toEqual([{ message: 'Document nesting is too deep to parse.', extensions: { code: 'system.limitExceeded', limit: 'depth' } }]);
    await expectAnswers(dflt);
  });

  it('refuses a 10,000-deep document over graphql-ws with a coded error', async () => {
    const client = wsClient(dflt.gw.url);
    const s = subscribeWs(client, nested(10_000));
    await s.completed;
    expect((s.error as { extensions?: unknown }[]).map((x) => x.extensions)).toEqual([{ code: 'system.limitExceeded', limit: 'depth' }]);
    await closeClients(dflt.gw, client);
  });

  it('refuses a 100,000-alias document (2.9 MB) by the body limit, and answers a query sent meanwhile at once', async () => {
    expect(manyAliases.length).toBeGreaterThan(2_900_000);
    const started = performance.now();
    const attack = postTo(dflt.gw.url, manyAliases);
    await expectAnswers(dflt);
    const r = await attack;
    expect(r.status).toBe(413);
    expect(r.body.errors?.map((x) => x.extensions)).toEqual([{ code: 'system.limitExceeded', limit: 'bodyBytes' }]);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('refuses a 100,000-alias document by the document size limit when the body limit lets it through', async () => {
    const r = await postTo(largeBodies.gw.url, manyAliases);
    expect(r.status).toBe(400);
    expect(r.body.errors?.map((x) => x.extensions)).toEqual([{ code: 'system.limitExceeded', limit: 'documentBytes' }]);
    await expectAnswers(largeBodies);
  });

  it('closes a WebSocket that sends a 10 MB message with 1009', async () => {
    const ws = new WebSocket(wsUrl(dflt.gw.url), 'graphql-transport-ws');
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.send(JSON.stringify({ type: 'connection_init', payload: { pad: 'x'.repeat(10 * 1024 * 1024) } }));
    expect(await closed).toBe(1009);
    await expectAnswers(dflt);
  });
});
