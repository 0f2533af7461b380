/**
 * Conformance: mutations. `@call` sends `call.<rid>.<method>` with the
 * connection's cid and token and the params the field's arguments make;
 * `result` and `resource` replies map onto the return type; service errors
 * keep their code and data.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestService } from './helpers/res-service.js';
import { startTestEnv, type TestEnv } from './helpers/env.js';
import { gql, type TestGateway } from './helpers/gateway.js';
import { librarySdl } from './helpers/sdl.js';

let env: TestEnv;
let svc: TestService;
let gw: TestGateway;

beforeAll(async () => {
  env = await startTestEnv(librarySdl);
  ({ svc, gw } = env);
  // a `set` handler as a RES service writes it: apply, publish the change, then reply
  svc.handle('call.library.book.*.set', async (payload, subject) => {
    const rid = subject.split('.').slice(1, -1).join('.');
    await svc.change(rid, payload.params);
    return { result: null };
  });
});

afterAll(async () => {
  await env?.close();
});

describe('mutations', () => {
  it('calls set with the params the template picks and returns the result reply', async () => {
    svc.model('library.book.1', { title: 'Old', meta: 'keep' });
    const call = svc.nextRequest('call.library.book.1.set');
    const r = await gql(gw.url, 'mutation { setBookTitle(id: 1, title: "New") }');
    expect(r).toEqual({ data: { setBookTitle: null } });
    const seen = await call;
    expect(seen.payload.params).toEqual({ title: 'New' });
    // the service published the change before replying: the next query shows it
    expect(await gql(gw.url, '{ book(id: 1) { title meta } }')).toEqual({ data: { book: { title: 'New', meta: 'keep' } } });
  });

  it('deletes a property through set with {"action":"delete"} in a JSON argument', async () => {
    svc.model('library.book.2', { title: 'Doomed', meta: 'keep' });
    expect(await gql(gw.url, '{ book(id: 2) { title } }')).toEqual({ data: { book: { title: 'Doomed' } } });
    const call = svc.nextRequest('call.library.book.2.set');
    const r = await gql(gw.url, 'mutation { setBookTitleRaw(id: 2, title: {action: "delete"}) }');
    expect(r).toEqual({ data: { setBookTitleRaw: null } });
    expect((await call).payload.params).toEqual({ title: { action: 'delete' } });
    expect(await gql(gw.url, '{ book(id: 2) { title meta } }')).toEqual({ data: { book: { title: null, meta: 'keep' } } });
  });

  it('renames arguments with a params template', async () => {
    svc.handle('call.library.book.3.rename', (payload) => ({ result: { renamedTo: payload.params.title } }));
    const call = svc.nextRequest('call.library.book.3.rename');
    const r = await gql(gw.url, 'mutation { renameBook(id: 3, newTitle: "Renamed") }');
    expect(r).toEqual({ data: { renameBook: { renamedTo: 'Renamed' } } });
    expect((await call).payload.params).toEqual({ title: 'Renamed' });
  });

  it('sends the object of all arguments as params when there is no template, leaving out absent ones', async () => {
    svc.handle('call.library.book.4.ping', () => ({ result: 'pong' }));
    const call = svc.nextRequest('call.library.book.4.ping');
    const r = await gql(gw.url, 'mutation { ping(id: 4, n: 7) }');
    expect(r).toEqual({ data: { ping: 'pong' } });
    expect((await call).payload.params).toEqual({ id: '4', n: 7 });
  });

  it('reads a new call answered the old way, with {rid} as its result, as a resource reply', async () => {
    svc.model('library.author.15', { name: 'Bea' });
    svc.handle('call.library.books.new', async (payload) => {
      svc.model('library.book.15', { title: payload.params.title, author: { rid: `library.author.${payload.params.authorId}` } });
      return { result: { rid: 'library.book.15' } };
    });
    const r = await gql(gw.url, 'mutation { newBook(input: {title: "Older", authorId: "15"}) { id title author { name } } }');
    expect(r).toEqual({ data: { newBook: { id: 'library.book.15', title: 'Older', author: { name: 'Bea' } } } });
    expect(svc.count('get.library.book.15')).toBe(1);
    // the operator hears of the deprecated reply once per resource name
    await gql(gw.url, 'mutation { newBook(input: {title: "Again", authorId: "15"}) { id } }');
    expect(gw.logs.filter((l) => l.level === 'warn' && l.fields?.subject === 'call.library.books.new')).toHaveLength(1);
  });

  it('sends a single input argument as params itself and resolves a resource reply to the return type', async () => {
    svc.model('library.author.5', { name: 'Ann' });
    svc.handle('call.library.books.add', async (payload) => {
      svc.model('library.book.5', { title: payload.params.title, author: { rid: `library.author.${payload.params.authorId}` } });
      return { resource: { rid: 'library.book.5' } };
    });
    const call = svc.nextRequest('call.library.books.add');
    const r = await gql(gw.url, 'mutation { addBook(input: {title: "Fresh", authorId: "5"}) { id title author { name } } }');
    expect(r).toEqual({ data: { addBook: { id: 'library.book.5', title: 'Fresh', author: { name: 'Ann' } } } });
    expect((await call).payload.params).toEqual({ title: 'Fresh', authorId: '5' });
    expect(svc.count('get.library.book.5')).toBe(1);
  });

  it('carries the connection cid in the call payload, the same cid as its access request', async () => {
    svc.handle('call.library.book.6.ping', () => ({ result: true }));
    const access = svc.nextRequest('access.library.book.6');
    const call = svc.nextRequest('call.library.book.6.ping');
    await gql(gw.url, 'mutation { ping(id: 6) }');
    const [a, c] = [await access, await call];
    expect(typeof c.payload.cid).toBe('string');
    expect(c.payload.cid.length).toBeGreaterThanOrEqual(16);
    expect(c.payload.cid).toBe(a.payload.cid);
    expect(c.payload).not.toHaveProperty('token');
    expect(c.payload).not.toHaveProperty('query');
    expect(c.payload.params).toEqual({ id: '6' });
    expect(c.payload.isHttp).toBe(true);
  });

  it('carries the token a service set for the connection in later calls', async () => {
    svc.handle('auth.auth.user.login', async (payload) => {
      // a service sets the token before it answers the auth request
      await svc.publish(`conn.${payload.cid}.token`, { token: { user: payload.params.name } });
      return { result: true };
    });
    svc.handle('call.library.book.7.ping', () => ({ result: 'ok' }));
    const call = svc.nextRequest('call.library.book.7.ping');
    const auth = svc.nextRequest('auth.auth.user.login');
    const r = await gql(gw.url, 'mutation { login(name: "ann", password: "pw") ping(id: 7) }');
    expect(r).toEqual({ data: { login: true, ping: 'ok' } });
    expect((await auth).payload).toMatchObject({ params: { name: 'ann', password: 'pw' } });
    expect((await call).payload).toMatchObject({ cid: (await auth).payload.cid, token: { user: 'ann' } });
    // the access request for the call went out with the token as well
    const access = svc.seen('access.library.book.7').at(-1)!;
    expect(access.payload.token).toEqual({ user: 'ann' });
  });

  it('maps a service-defined call error to extensions.code and extensions.data', async () => {
    svc.handle('call.library.book.8.set', () => ({
      error: { code: 'library.badTitle', message: 'Title too long', data: { max: 10 } },
    }));
    const r = await gql(gw.url, 'mutation { setBookTitle(id: 8, title: "A very long title") }');
    expect(r.data).toEqual({ setBookTitle: null });
    expect(r.errors).toHaveLength(1);
    expect(r.errors![0]).toMatchObject({
      message: 'Title too long',
      path: ['setBookTitle'],
      extensions: { code: 'library.badTitle', data: { max: 10 } },
    });
  });

  it('maps a predefined call error code unchanged', async () => {
    const r = await gql(gw.url, 'mutation { removeBook(id: 9) }');
    expect(r.errors![0].extensions).toEqual({ code: 'system.methodNotFound' });
  });
});
