/**
 * Conformance: getting resources. Models with nested references and
 * collections, following only what a query selects, query resources, rid
 * templates and normalized queries.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestService } from './helpers/res-service.js';
import { startTestEnv, type TestEnv } from './helpers/env.js';
import { gql, type TestGateway } from './helpers/gateway.js';
import { librarySdl } from './helpers/sdl.js';

let env: TestEnv;
let svc: TestService;
let gw: TestGateway;

const gets = () => svc.seen('get.*').map((r) => r.subject + (r.payload?.query ? `?${r.payload.query}` : ''));

beforeAll(async () => {
  env = await startTestEnv(librarySdl);
  ({ svc, gw } = env);
});

afterAll(async () => {
  await env?.close();
});

/** A book with an author (who lists the book) and tags, under fresh ids. */
function library(n: number) {
  svc
    .model(`library.book.${n}`, { title: `Book ${n}`, author: { rid: `library.author.${n}` }, tags: { rid: `library.book.${n}.tags` } })
    .collection(`library.book.${n}.tags`, ['scifi', 'classic'])
    .model(`library.author.${n}`, { name: `Author ${n}`, books: { rid: `library.author.${n}.books` } })
    .collection(`library.author.${n}.books`, [{ rid: `library.book.${n}` }]);
}

describe('get', () => {
  it('resolves a model with nested references and a collection', async () => {
    library(1);
    const r = await gql(gw.url, '{ book(id: 1) { id title tags author { id name books { id title } } } }');
    expect(r).toEqual({
      data: {
        book: {
          id: 'library.book.1',
          title: 'Book 1',
          tags: ['scifi', 'classic'],
          author: { id: 'library.author.1', name: 'Author 1', books: [{ id: 'library.book.1', title: 'Book 1' }] },
        },
      },
    });
  });

  it('sends get for each resource once even when references form a cycle', async () => {
    library(2);
    const r = await gql(gw.url, '{ book(id: 2) { title author { books { title author { name books { title } } } } } }');
    expect(r.errors).toBeUndefined();
    expect(r.data.book.author.books[0].author.books[0].title).toBe('Book 2');
    for (const rid of ['library.book.2', 'library.author.2', 'library.author.2.books']) expect(svc.count(`get.${rid}`)).toBe(1);
  });

  it('requests only the references a query selects', async () => {
    library(3);
    const before = gets().length;
    const r = await gql(gw.url, '{ book(id: 3) { title } }');
    expect(r).toEqual({ data: { book: { title: 'Book 3' } } });
    expect(gets().slice(before)).toEqual(['get.library.book.3']);

    const r2 = await gql(gw.url, '{ book(id: 3) { author { name } } }');
    expect(r2).toEqual({ data: { book: { author: { name: 'Author 3' } } } });
    // the book is cached; only the author is new; tags and the author's books are never asked for
    expect(gets().slice(before)).toEqual(['get.library.book.3', 'get.library.author.3']);
    expect(svc.count('get.library.book.3.tags')).toBe(0);
    expect(svc.count('get.library.author.3.books')).toBe(0);
  });

  it('shows a reference as its rid on a scalar field and as {rid} on a JSON field without fetching it', async () => {
    svc.model('library.book.4', { title: 'T', meta: { rid: 'library.author.4' }, related: { rid: 'library.book.5' } });
    const r = await gql(gw.url, '{ book(id: 4) { meta } }');
    expect(r).toEqual({ data: { book: { meta: { rid: 'library.author.4' } } } });
    expect(svc.count('get.library.author.4')).toBe(0);
  });

  it('passes a data value through whole', async () => {
    svc.model('library.book.6', { title: 'T', meta: { data: { pages: 412, isbn: ['a', 'b'] } } });
    const r = await gql(gw.url, '{ book(id: 6) { meta } }');
    expect(r).toEqual({ data: { book: { meta: { pages: 412, isbn: ['a', 'b'] } } } });
  });

  it('gives system.notFound and null for a resource the service does not have', async () => {
    const r = await gql(gw.url, '{ book(id: 404) { title } }');
    expect(r.data).toEqual({ book: null });
    expect(r.errors).toHaveLength(1);
    expect(r.errors![0]).toMatchObject({ path: ['book'], extensions: { code: 'system.notFound' } });
  });

  it('sends the query part of a query resource in the get payload', async () => {
    svc.model('library.book.7', { title: 'Seven' });
    svc.collection('library.books?text=x&limit=20', [{ rid: 'library.book.7' }]);
    const r = await gql(gw.url, '{ search(text: "x") { title } }');
    expect(r).toEqual({ data: { search: [{ title: 'Seven' }] } });
    const get = svc.seen('get.library.books').at(-1)!;
    expect(get.payload).toEqual({ query: 'text=x&limit=20' });
    const access = svc.seen('access.library.books').at(-1)!;
    expect(access.payload.query).toBe('text=x&limit=20');
  });

  it('leaves a null argument out of the query part of the rid', async () => {
    svc.collection('library.books?limit=20', []);
    const r = await gql(gw.url, '{ search(text: null) { title } }');
    expect(r).toEqual({ data: { search: [] } });
    expect(svc.seen('get.library.books').at(-1)!.payload).toEqual({ query: 'limit=20' });
  });

  it('URI-encodes argument values in the query part', async () => {
    svc.collection('library.books?text=a%20b%26c&limit=3', []);
    const r = await gql(gw.url, '{ search(text: "a b&c", limit: 3) { title } }');
    expect(r).toEqual({ data: { search: [] } });
    expect(svc.seen('get.library.books').at(-1)!.payload).toEqual({ query: 'text=a%20b%26c&limit=3' });
  });

  it('rejects an argument containing "." in the name part with system.invalidParams and sends nothing', async () => {
    const before = svc.requests.length;
    const r = await gql(gw.url, '{ book(id: "1.tags") { title } }');
    expect(r.data).toEqual({ book: null });
    expect(r.errors![0].extensions?.code).toBe('system.invalidParams');
    expect(svc.requests.length).toBe(before);
  });

  it('rejects wildcards and whitespace in the name part', async () => {
    for (const id of ['*', '>', 'a b', 'x?y']) {
      const r = await gql(gw.url, '{ book(id: $id) { title } }'.replace('$id', JSON.stringify(id)));
      expect(r.errors![0].extensions?.code, id).toBe('system.invalidParams');
    }
  });

  it('fills {cid} in a rid template with the connection id', async () => {
    svc.handle('get.library.session.*', (_p, subject) => ({ result: { model: { subject } } }));
    const r = await gql(gw.url, '{ session }');
    const access = svc.seen('access.library.session.*').at(-1)!;
    expect(r).toEqual({ data: { session: { subject: `get.library.session.${access.payload.cid}` } } });
    expect(access.subject).toBe(`access.library.session.${access.payload.cid}`);
  });

  it('maps a requested query and the normalized query from the get reply to one entry', async () => {
    svc.model('library.book.8', { title: 'Eight' });
    svc.handle('get.library.books', (payload) => {
      if (payload?.query === 'text=norm&limit=20' || payload?.query === 'limit=20&text=norm') {
        return { result: { collection: [{ rid: 'library.book.8' }], query: 'limit=20&text=norm' } };
      }
      return { error: { code: 'system.notFound', message: 'Not found' } };
    });
    const r1 = await gql(gw.url, '{ search(text: "norm") { title } }');
    expect(r1).toEqual({ data: { search: [{ title: 'Eight' }] } });
    const n = svc.seen('get.library.books').length;
    // the normalized spelling is the same resource: served from the cache
    const r2 = await gql(gw.url, '{ searchNormalized(text: "norm") { title } }');
    expect(r2).toEqual({ data: { searchNormalized: [{ title: 'Eight' }] } });
    // and so is the first spelling again
    const r3 = await gql(gw.url, '{ search(text: "norm") { title } }');
    expect(r3).toEqual({ data: { search: [{ title: 'Eight' }] } });
    expect(svc.seen('get.library.books').length).toBe(n);
  });

  it('resolves a resource of the wrong kind for the schema to system.internalError and logs it', async () => {
    svc.collection('library.book.9', ['not', 'a', 'model']);
    const r = await gql(gw.url, '{ book(id: 9) { title } }');
    expect(r.data).toEqual({ book: null });
    expect(r.errors![0].extensions?.code).toBe('system.internalError');
    expect(gw.logs.some((l) => l.level === 'warn' && l.fields?.rid === 'library.book.9')).toBe(true);
  });
});
