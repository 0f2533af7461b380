/**
 * Conformance: access. One `access` request per (connection, root rid),
 * denial on the field only, call access per method, hard references covered
 * by the root, soft references checked on their own. Only a verdict or a
 * system.accessDenied reply means "you may not": a broken access handler
 * (an error reply, an invalid verdict, no responder) shows its own code, as
 * Resgate 1.8.0 does, and is not kept as a verdict.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestService } from './helpers/res-service.js';
import { startTestEnv, type TestEnv } from './helpers/env.js';
import { gql, type TestGateway } from './helpers/gateway.js';
import { metric } from './helpers/metrics.js';
import { librarySdl } from './helpers/sdl.js';

let env: TestEnv;
let svc: TestService;
let gw: TestGateway;

beforeAll(async () => {
  // the service answers library.* only: other names have no access responder
  env = await startTestEnv(librarySdl, {}, ['library']);
  ({ svc, gw } = env);
});

afterAll(async () => {
  await env?.close();
});

describe('access', () => {
  it('denies a get with system.accessDenied on that field only', async () => {
    svc.model('library.book.1', { title: 'Secret' });
    svc.model('library.book.2', { title: 'Public' });
    svc.accessRules.set('library.book.1', { get: false });
    const r = await gql(gw.url, '{ a: book(id: 1) { title } b: book(id: 2) { title } }');
    expect(r.data).toEqual({ a: null, b: { title: 'Public' } });
    expect(r.errors).toHaveLength(1);
    expect(r.errors![0]).toMatchObject({ path: ['a'], extensions: { code: 'system.accessDenied' } });
    expect(svc.count('get.library.book.1')).toBe(0);
  });

  it('passes the code of an error reply to access through, without sending the get', async () => {
    svc.model('library.book.3', { title: 'T' });
    svc.handle('access.library.book.3', () => ({ error: { code: 'system.internalError', message: 'oops' } }));
    const r = await gql(gw.url, '{ book(id: 3) { title } }');
    expect(r.errors![0]).toMatchObject({ path: ['book'], extensions: { code: 'system.internalError' } });
    svc.handle('access.library.book.3', () => ({ error: { code: 'conf.banned', message: 'Banned', data: { until: 'tomorrow' } } }));
    const banned = await gql(gw.url, '{ book(id: 3) { title } }');
    expect(banned.errors![0]).toMatchObject({ path: ['book'], extensions: { code: 'conf.banned', data: { until: 'tomorrow' } } });
    expect(svc.count('get.library.book.3')).toBe(0);
  });

  it('answers system.internalError for an invalid verdict, and system.accessDenied for a denial reply', async () => {
    svc.model('library.book.39', { title: 'T' });
    svc.handle('access.library.book.39', () => ({ result: { get: 'foo' } }));
    const invalid = await gql(gw.url, '{ book(id: 39) { title } }');
    expect(invalid.errors![0]).toMatchObject({ path: ['book'], extensions: { code: 'system.internalError' } });
    expect(gw.logs.some((l) => l.level === 'warn' && l.fields?.subject === 'access.library.book.39')).toBe(true);
    svc.handle('access.library.book.39', () => ({ error: { code: 'system.accessDenied', message: 'No' } }));
    const denied = await gql(gw.url, '{ book(id: 39) { title } }');
    expect(denied.errors![0]).toMatchObject({ path: ['book'], extensions: { code: 'system.accessDenied' } });
    expect(svc.count('get.library.book.39')).toBe(0);
  });

  it('answers system.notFound at once when no service answers access requests, as Resgate does', async () => {
    const started = Date.now();
    const r = await gql(gw.url, '{ raw(name: "nobody") }');
    expect(r.data).toEqual({ raw: null });
    expect(r.errors![0]).toMatchObject({ path: ['raw'], extensions: { code: 'system.notFound' } });
    // a no-responders answer is immediate: not a wait for the request timeout
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('denies a method the access reply does not list, without sending the call', async () => {
    svc.accessRules.set('library.books', { get: true, call: 'set' });
    const r = await gql(gw.url, 'mutation { addBook(input: {title: "X", authorId: "1"}) { title } }');
    expect(r.data).toEqual({ addBook: null });
    expect(r.errors![0]).toMatchObject({ path: ['addBook'], extensions: { code: 'system.accessDenied' } });
    expect(svc.count('call.library.books.add')).toBe(0);
  });

  it('allows a method the access reply lists', async () => {
    svc.accessRules.set('library.book.4', { get: true, call: 'ping, set' });
    svc.handle('call.library.book.4.ping', () => ({ result: 'pong' }));
    const r = await gql(gw.url, 'mutation { ping(id: 4) }');
    expect(r).toEqual({ data: { ping: 'pong' } });
  });

  it('denies every call when the access reply has no call field', async () => {
    svc.accessRules.set('library.book.5', { get: true });
    const r = await gql(gw.url, 'mutation { ping(id: 5) }');
    expect(r.errors![0].extensions?.code).toBe('system.accessDenied');
    expect(svc.count('call.library.book.5.ping')).toBe(0);
  });

  it('asks access once per connection and rid: two root fields in one request share the verdict', async () => {
    svc.model('library.book.6', { title: 'Six' });
    const r = await gql(gw.url, '{ a: book(id: 6) { title } b: book(id: 6) { id } }');
    expect(r.errors).toBeUndefined();
    expect(svc.count('access.library.book.6')).toBe(1);
  });

  it('asks access again for a second HTTP request, which is a new connection', async () => {
    svc.model('library.book.7', { title: 'Seven' });
    await gql(gw.url, '{ book(id: 7) { title } }');
    await gql(gw.url, '{ book(id: 7) { title } }');
    const seen = svc.seen('access.library.book.7');
    expect(seen).toHaveLength(2);
    expect(seen[0].payload.cid).not.toBe(seen[1].payload.cid);
    // the resource itself came from the cache the second time
    expect(svc.count('get.library.book.7')).toBe(1);
  });

  it('sends cid and isHttp in the access payload, and no token before one is set', async () => {
    svc.model('library.book.8', { title: 'T' });
    const access = svc.nextRequest('access.library.book.8');
    await gql(gw.url, '{ book(id: 8) { title } }');
    const { payload } = await access;
    expect(Object.keys(payload).sort()).toEqual(['cid', 'isHttp']);
    expect(payload.isHttp).toBe(true);
  });

  it('does not check access on resources reached through hard references', async () => {
    svc.model('library.book.9', { title: 'T', author: { rid: 'library.author.9' }, tags: { rid: 'library.book.9.tags' } });
    svc.model('library.author.9', { name: 'A' });
    svc.collection('library.book.9.tags', ['x']);
    svc.accessRules.set('library.author.9', { get: false });
    const r = await gql(gw.url, '{ book(id: 9) { author { name } tags } }');
    expect(r).toEqual({ data: { book: { author: { name: 'A' }, tags: ['x'] } } });
    expect(svc.count('access.library.author.9')).toBe(0);
    expect(svc.count('access.library.book.9.tags')).toBe(0);
  });

  it('checks access on a soft reference on its own', async () => {
    svc.model('library.book.10', { title: 'T', related: { rid: 'library.book.11', soft: true } });
    svc.model('library.book.11', { title: 'Related' });
    svc.accessRules.set('library.book.11', { get: false });
    const r = await gql(gw.url, '{ book(id: 10) { title related { title } } }');
    expect(r.data).toEqual({ book: { title: 'T', related: null } });
    expect(r.errors![0]).toMatchObject({ path: ['book', 'related'], extensions: { code: 'system.accessDenied' } });
    expect(svc.count('get.library.book.11')).toBe(0);

    svc.accessRules.set('library.book.11', { get: true });
    const r2 = await gql(gw.url, '{ book(id: 10) { related { title } } }');
    expect(r2).toEqual({ data: { book: { related: { title: 'Related' } } } });
  });

  it('does not follow a soft reference the query does not select', async () => {
    svc.model('library.book.12', { title: 'T', related: { rid: 'library.book.13', soft: true } });
    await gql(gw.url, '{ book(id: 12) { title } }');
    expect(svc.count('access.library.book.13')).toBe(0);
    expect(svc.count('get.library.book.13')).toBe(0);
  });

  it('checks get access on the resource a call returns', async () => {
    svc.model('library.book.14', { title: 'New' });
    svc.accessRules.set('library.books', { get: true, call: '*' });
    svc.accessRules.set('library.book.14', { get: false });
    svc.handle('call.library.books.add', () => ({ resource: { rid: 'library.book.14' } }));
    const r = await gql(gw.url, 'mutation { addBook(input: {title: "New", authorId: "1"}) { title } }');
    expect(r.errors![0].extensions?.code).toBe('system.accessDenied');
    expect(svc.count('get.library.book.14')).toBe(0);
  });

  it('forgets the connection of an HTTP request when the request ends', async () => {
    svc.model('library.book.15', { title: 'T' });
    await gql(gw.url, '{ book(id: 15) { title } }');
    await gql(gw.url, '{ nosuchfield }');
    expect(await metric(gw, 'resgraph_connections')).toBe(0);
  });
});
