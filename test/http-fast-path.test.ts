/**
 * The short path for JSON POST queries answers like Yoga does, and hands
 * everything it does not run itself to Yoga: browser requests (CORS),
 * documents that fail to parse or validate, subscriptions and streams.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { TestService } from './helpers/res-service.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

let nats: NatsServer;
let svc: TestService;
let gw: TestGateway;

beforeAll(async () => {
  nats = await startNatsServer();
  svc = await TestService.start(nats.url);
  svc.model('library.book.1', { id: 1, title: 'Dune', author: { rid: 'library.author.1' } }).model('library.author.1', { name: 'Herbert' });
  gw = await startTestGateway(nats.url, readFileSync('schema/library.graphql', 'utf8'));
});

afterAll(async () => {
  await gw?.close();
  await svc?.close();
  await nats?.stop();
});

const post = (body: unknown, headers: Record<string, string> = {}) =>
  fetch(gw.url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

describe('HTTP query short path', () => {
  it('answers a query, with variables and an operation name, as JSON', async () => {
    const res = await post({ query: 'query A($id: ID!) { book(id: $id) { title author { name } } } query B { books { title } }', variables: { id: '1' }, operationName: 'A' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({ data: { book: { title: 'Dune', author: { name: 'Herbert' } } } });
  });

  it('gives the same answer twice (the prepared document is reused) and a variables error like graphql-js', async () => {
    const q = { query: 'query($id: ID!) { book(id: $id) { title } }', variables: { id: '1' } };
    expect(await (await post(q)).json()).toEqual(await (await post(q)).json());
    const bad = await (await post({ query: q.query, variables: {} })).json();
    expect(bad.errors[0].message).toMatch(/\$id/);
    expect(bad.data).toBeUndefined();
  });

  it('leaves syntax errors, invalid JSON and unknown fields to Yoga', async () => {
    const syntax = await post({ query: '{ book(id: 1) { title }' });
    expect((await syntax.json()).errors[0].message).toMatch(/Syntax Error/);
    const invalid = await post('{"query": ');
    expect(invalid.status).toBe(400);
    const unknown = await (await post({ query: '{ nope }' })).json();
    expect(unknown.errors[0].message).toMatch(/Cannot query field "nope"/);
  });

  it('leaves browser requests to Yoga, which answers with CORS headers', async () => {
    const res = await post({ query: '{ book(id: 1) { title } }' }, { origin: 'http://example.test' });
    expect(res.headers.get('access-control-allow-origin')).toBeTruthy();
    expect(await res.json()).toEqual({ data: { book: { title: 'Dune' } } });
  });
});
