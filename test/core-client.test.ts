/**
 * Conformance: the RES client's request handling. Timeouts, the
 * `timeout:"ms"` pre-response, no responders, and malformed replies, seen
 * through GraphQL over HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestService } from './helpers/res-service.js';
import { startTestEnv, type TestEnv } from './helpers/env.js';
import { gql, type TestGateway } from './helpers/gateway.js';
import { librarySdl } from './helpers/sdl.js';

let env: TestEnv;
let svc: TestService;
let gw: TestGateway;

const enc = new TextEncoder();
const requestTimeout = 300;

beforeAll(async () => {
  // the service answers library.* only; `orphan` gets an access responder but no get responder
  env = await startTestEnv(librarySdl, { requestTimeout }, ['library']);
  ({ svc, gw } = env);
  svc.nc.subscribe('access.orphan.thing', {
    callback: (_e, m) => m.respond(enc.encode(JSON.stringify({ result: { get: true, call: '*' } }))),
  });
  await svc.nc.flush();
});

afterAll(async () => {
  await env?.close();
});

describe('RES client', () => {
  it('answers system.timeout when a service never replies', async () => {
    svc.handle('get.library.book.1', () => undefined);
    const started = Date.now();
    const r = await gql(gw.url, '{ book(id: 1) { title } }');
    expect(Date.now() - started).toBeGreaterThanOrEqual(requestTimeout - 20);
    expect(r.data).toEqual({ book: null });
    expect(r.errors![0]).toMatchObject({ path: ['book'], extensions: { code: 'system.timeout' } });
  });

  it('does not keep a timed-out get: the next query asks again', async () => {
    svc.handle('get.library.book.2', () => undefined);
    await gql(gw.url, '{ book(id: 2) { title } }');
    svc.handle('get.library.book.2', () => ({ result: { model: { title: 'Late but there' } } }));
    expect(await gql(gw.url, '{ book(id: 2) { title } }')).toEqual({ data: { book: { title: 'Late but there' } } });
    expect(svc.count('get.library.book.2')).toBe(2);
  });

  it('waits as long as a timeout:"ms" pre-response asks before giving up', async () => {
    svc.handle('get.library.book.3', (_p, _s, msg) => {
      msg.respond(enc.encode('timeout:"2000"'));
      // the real answer comes well after the gateway's own 300 ms timeout
      setTimeout(() => msg.respond(enc.encode(JSON.stringify({ result: { model: { title: 'Slow' } } }))), 3 * requestTimeout);
      return undefined;
    });
    const started = Date.now();
    const r = await gql(gw.url, '{ book(id: 3) { title } }');
    expect(r).toEqual({ data: { book: { title: 'Slow' } } });
    expect(Date.now() - started).toBeGreaterThanOrEqual(3 * requestTimeout - 20);
  });

  it('times out after the time a pre-response asked for', async () => {
    svc.handle('get.library.book.4', (_p, _s, msg) => {
      msg.respond(enc.encode('timeout:"600"'));
      return undefined;
    });
    const started = Date.now();
    const r = await gql(gw.url, '{ book(id: 4) { title } }');
    expect(r.errors![0].extensions?.code).toBe('system.timeout');
    expect(Date.now() - started).toBeGreaterThanOrEqual(600 - 20);
  });

  it('answers system.internalError for a reply that is not JSON, and logs it with its subject', async () => {
    svc.handle('get.library.book.5', () => '{"result": {"model": ');
    const r = await gql(gw.url, '{ book(id: 5) { title } }');
    expect(r.errors![0]).toMatchObject({ path: ['book'], extensions: { code: 'system.internalError' } });
    expect(gw.logs.some((l) => l.level === 'warn' && l.fields?.subject === 'get.library.book.5')).toBe(true);
  });

  it('answers system.internalError for a get reply of the wrong shape, and logs it', async () => {
    svc.handle('get.library.book.6', () => ({ result: { model: { title: { nested: 'not a RES value' } } } }));
    const r = await gql(gw.url, '{ book(id: 6) { title } }');
    expect(r.errors![0].extensions?.code).toBe('system.internalError');
    expect(gw.logs.some((l) => l.level === 'warn' && l.fields?.subject === 'get.library.book.6')).toBe(true);
  });

  it('answers system.internalError for a call reply with neither result, resource nor error', async () => {
    svc.handle('call.library.book.7.ping', () => '{"nothing": true}');
    const r = await gql(gw.url, 'mutation { ping(id: 7) }');
    expect(r.errors![0].extensions?.code).toBe('system.internalError');
    expect(gw.logs.some((l) => l.level === 'warn' && l.fields?.subject === 'call.library.book.7.ping')).toBe(true);
  });

  it('answers system.notFound when no service listens for the get, as Resgate does', async () => {
    const started = Date.now();
    const r = await gql(gw.url, '{ raw(name: "orphan") }');
    expect(r.data).toEqual({ raw: null });
    expect(r.errors![0]).toMatchObject({ path: ['raw'], extensions: { code: 'system.notFound' } });
    // no responders is known at once; it does not wait for the timeout
    expect(Date.now() - started).toBeLessThan(requestTimeout);
  });

  it('answers system.notFound when no service listens for a call, as Resgate does', async () => {
    // access is granted, but nothing subscribes to call.orphan.thing.*
    const started = Date.now();
    const r = await gql(gw.url, 'mutation { poke(name: "orphan") }');
    expect(r.errors![0]).toMatchObject({ path: ['poke'], extensions: { code: 'system.notFound' } });
    expect(Date.now() - started).toBeLessThan(requestTimeout);
  });

  it('ignores a reply that arrives after the timeout', async () => {
    let late: (() => void) | undefined;
    svc.handle('get.library.book.8', (_p, _s, msg) => {
      late = () => msg.respond(enc.encode(JSON.stringify({ result: { model: { title: 'Too late' } } })));
      return undefined;
    });
    const r = await gql(gw.url, '{ book(id: 8) { title } }');
    expect(r.errors![0].extensions?.code).toBe('system.timeout');
    late!();
    await svc.nc.flush();
    svc.handle('get.library.book.8', () => ({ result: { model: { title: 'Fresh' } } }));
    expect(await gql(gw.url, '{ book(id: 8) { title } }')).toEqual({ data: { book: { title: 'Fresh' } } });
  });
});
