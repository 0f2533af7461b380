/**
 * Conformance: errors. A RES error becomes a GraphQL error on its field with
 * the code (and data) in extensions; no error carries a stack trace or an
 * internal detail, whatever went wrong.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestService } from './helpers/res-service.js';
import { startTestEnv, type TestEnv } from './helpers/env.js';
import { gql, recordingLogger, type TestGateway } from './helpers/gateway.js';
import { librarySdl } from './helpers/sdl.js';
import { toGraphQLError } from '../src/resolvers/resolvers.js';

let env: TestEnv;
let svc: TestService;
let gw: TestGateway;

beforeAll(async () => {
  env = await startTestEnv(librarySdl, { requestTimeout: 300 });
  ({ svc, gw } = env);
  svc.model('library.book.1', { title: 'Fine' });
  svc.accessRules.set('library.book.2', { get: false });
  svc.handle('get.library.book.3', () => undefined);
  svc.handle('get.library.book.4', () => 'definitely { not json');
  svc.collection('library.book.5', ['a collection', 'where a model belongs']);
  svc.collection('library.books', [{ rid: 'library.book.1' }, null]);
  svc.handle('call.library.book.6.set', () => ({ error: { code: 'library.badTitle', message: 'Bad title', data: { max: 3 } } }));
});

afterAll(async () => {
  await env?.close();
});

/** Posts an operation and returns both the raw body and its parse. */
async function post(query: string): Promise<{ text: string; json: any }> {
  const res = await fetch(gw.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query }),
  });
  const text = await res.text();
  return { text, json: JSON.parse(text) };
}

function expectNoInternals(text: string): void {
  expect(text).not.toMatch(/stack/i);
  expect(text).not.toMatch(/Error:/);
  expect(text).not.toMatch(/\.[cm]?[jt]s:\d+/); // file:line of a stack frame
  expect(text).not.toMatch(/node_modules|\/src\//);
  expect(text).not.toMatch(/originalError/);
}

describe('errors', () => {
  const cases: [string, string, string][] = [
    ['access denied', '{ book(id: 2) { title } }', 'system.accessDenied'],
    ['not found', '{ book(id: 404) { title } }', 'system.notFound'],
    ['timeout', '{ book(id: 3) { title } }', 'system.timeout'],
    ['malformed JSON reply', '{ book(id: 4) { title } }', 'system.internalError'],
    ['resource of the wrong kind', '{ book(id: 5) { title } }', 'system.internalError'],
    ['invalid argument', '{ book(id: "a.b") { title } }', 'system.invalidParams'],
    ['service-defined error', 'mutation { setBookTitle(id: 6, title: "too long") }', 'library.badTitle'],
  ];
  for (const [what, query, code] of cases) {
    it(`gives ${code} for ${what} on the field, without stack traces or internal details`, async () => {
      const { text, json } = await post(query);
      expect(json.errors).toHaveLength(1);
      expect(json.errors[0].extensions.code).toBe(code);
      expect(Object.keys(json.errors[0].extensions).every((k) => k === 'code' || k === 'data')).toBe(true);
      expect(json.errors[0].path).toHaveLength(1);
      expectNoInternals(text);
    });
  }

  it('keeps other root fields of the operation when one fails', async () => {
    const { json } = await post('{ ok: book(id: 1) { title } bad: book(id: 2) { title } }');
    expect(json.data).toEqual({ ok: { title: 'Fine' }, bad: null });
    expect(json.errors.map((e: any) => e.path)).toEqual([['bad']]);
  });

  it('asks access once per resource in one HTTP request, also when it times out', async () => {
    svc.handle('access.library.book.7', () => undefined);
    const before = svc.count('access.library.book.7');
    const { json } = await post('{ a: book(id: 7) { title } b: book(id: 7) { title } }');
    expect(json.data).toEqual({ a: null, b: null });
    expect(json.errors.map((e: any) => [e.path[0], e.extensions.code])).toEqual([
      ['a', 'system.timeout'],
      ['b', 'system.timeout'],
    ]);
    expect(svc.count('access.library.book.7') - before).toBe(1);
  });

  it('reports a null in a non-null list as a GraphQL error without internals', async () => {
    const { text, json } = await post('{ books { title } }');
    expect(json.data).toBeNull();
    expect(json.errors).toHaveLength(1);
    expectNoInternals(text);
  });

  // internal on purpose: no client or service input makes a resolver throw an unexpected exception
  // (that would be a bug of ours); this is the guard for when one does
  it('turns an unexpected exception into a bare system.internalError and logs it', () => {
    const logger = recordingLogger();
    const err = toGraphQLError(new TypeError('cannot read x of undefined at /src/secret.ts:1:2'), logger);
    expect(err.message).toBe('Internal error');
    expect(err.extensions).toEqual({ code: 'system.internalError' });
    expect(JSON.stringify(err.toJSON())).not.toMatch(/secret|stack/);
    expect(logger.entries.some((l) => l.level === 'error')).toBe(true);
  });

  it('keeps code, message and data of a service error', async () => {
    const { json } = await post('mutation { setBookTitle(id: 6, title: "too long") }');
    expect(json.errors).toEqual([
      { message: 'Bad title', locations: [{ line: 1, column: 12 }], path: ['setBookTitle'], extensions: { code: 'library.badTitle', data: { max: 3 } } },
    ]);
  });
});
