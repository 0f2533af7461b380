/**
 * The short path for JSON POST queries answers like Yoga does, and hands
 * everything it does not run itself to Yoga:
 * documents that fail to parse or validate, subscriptions and streams.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import type { TestService } from './helpers/res-service.js';
import { startTestEnv, type TestEnv } from './helpers/env.js';
import type { TestGateway } from './helpers/gateway.js';

let env: TestEnv;
let svc: TestService;
let gw: TestGateway;

beforeAll(async () => {
  env = await startTestEnv(readFileSync('schema/library.graphql', 'utf8'));
  ({ svc, gw } = env);
  svc.model('library.book.1', { id: 1, title: 'Dune', author: { rid: 'library.author.1' } }).model('library.author.1', { name: 'Herbert' });
});

afterAll(async () => {
  await env?.close();
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

  it('answers a document the same on its first run (graphql-js) and once it is compiled (later runs)', async () => {
    svc
      .model('library.book.3', { id: 3, title: 'Emma', author: { rid: 'library.author.3' } })
      .model('library.author.3', { name: 'Austen', books: { rid: 'library.author.3.books' } })
      .collection('library.author.3.books', [{ rid: 'library.book.3' }])
      // book 2's author is missing: a non-null field, so the error nulls the whole book
      .model('library.book.2', { id: 2, title: 'Persuasion', author: { rid: 'library.author.missing' }, tags: { rid: 'library.book.2.tags' }, meta: { data: { pages: [1, 2] } } })
      .collection('library.book.2.tags', ['sf', 'classic'])
      .model('library.secret', { id: 0, title: 'hidden' });
    svc.accessRules.set('library.secret', { get: false });
    const query = `query Q($id: ID!, $withAuthor: Boolean!) {
      first: book(id: $id) { __typename id title ...Who @include(if: $withAuthor) }
      second: book(id: "2") { id tags meta author { name } }
      nothing: book(id: "404") { id }
      secret { title }
    }
    fragment Who on Book { author { __typename name books { id } } }`;
    const body = { query, variables: { id: '3', withAuthor: true }, operationName: 'Q' };
    const texts = [];
    for (let i = 0; i < 3; i++) texts.push(await (await post(body)).text());
    // byte for byte: a live result is compared by its JSON
    expect(texts[1]).toBe(texts[0]);
    expect(texts[2]).toBe(texts[0]);
    const first = JSON.parse(texts[0]);
    expect(first.data.first).toEqual({ __typename: 'Book', id: 'library.book.3', title: 'Emma', author: { __typename: 'Author', name: 'Austen', books: [{ id: 'library.book.3' }] } });
    expect(first.data.second).toBeNull();
    expect(first.data.nothing).toBeNull();
    expect(first.data.secret).toBeNull();
    const codes = Object.fromEntries(first.errors.map((e: { path: string[]; extensions?: { code?: string } }) => [e.path.join('.'), e.extensions?.code]));
    expect(codes).toMatchObject({ 'nothing': 'system.notFound', 'secret': 'system.accessDenied', 'second.author': 'system.notFound' });
    // variables are coerced alike on both paths: a missing one is a request error
    const bad = [];
    for (let i = 0; i < 2; i++) bad.push(await (await post({ ...body, variables: { id: '3' } })).text());
    expect(JSON.parse(bad[0]).data).toBeUndefined();
    expect(bad[1]).toBe(bad[0]);
  });

  it('leaves syntax errors, invalid JSON and unknown fields to Yoga', async () => {
    const syntax = await post({ query: '{ book(id: 1) { title }' });
    expect((await syntax.json()).errors[0].message).toMatch(/Syntax Error/);
    const invalid = await post('{"query": ');
    expect(invalid.status).toBe(400);
    const unknown = await (await post({ query: '{ nope }' })).json();
    expect(unknown.errors[0].message).toMatch(/Cannot query field "nope"/);
  });

  it('answers a same-origin browser request (its Origin names the gateway itself) without CORS headers', async () => {
    const res = await post({ query: '{ book(id: 1) { title } }' }, { origin: new URL(gw.url).origin });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(await res.json()).toEqual({ data: { book: { title: 'Dune' } } });
  });
});
