/**
 * Faults, against Resgate 1.8.0: for each broken answer of a service (none
 * at all, an access error, an invalid verdict, a get with both model and
 * collection) a resgraph client gets the error code a Resgate client gets.
 * Skipped, with the reason printed, when no Resgate binary is at hand.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { TestService } from '../helpers/res-service.js';
import { ResgateClient, ResgateRequestError, findResgate, startResgate, type ResgateServer } from '../helpers/resgate.js';
import { librarySdl } from '../helpers/sdl.js';
import { waitFor } from '../helpers/wait.js';

const found = findResgate();
const resgateBin = 'bin' in found ? found.bin : undefined;
if (!resgateBin) console.log(`resgate-codes skipped: ${(found as { reason: string }).reason}`);

const enc = new TextEncoder();
let nats: NatsServer;
let svc: TestService;
let gw: TestGateway;
let rs: ResgateServer;
let client: ResgateClient;

/** The code a Resgate client gets for a request, or 'ok'. */
async function resgateCode(request: () => Promise<unknown>): Promise<string> {
  try {
    await request();
    return 'ok';
  } catch (e) {
    if (e instanceof ResgateRequestError) return e.code;
    throw e;
  }
}

describe.skipIf(!resgateBin)('faults: the same codes as Resgate', () => {
  beforeAll(async () => {
    nats = await startNatsServer();
    // the service answers library.* only; `orphan.thing` gets an access responder and nothing else
    svc = await TestService.start(nats.url, ['library']);
    svc.nc.subscribe('access.orphan.thing', {
      callback: (_e, m) => m.respond(enc.encode(JSON.stringify({ result: { get: true, call: '*' } }))),
    });
    svc.model('library.book.50', { title: 'T' });
    svc.handle('access.library.book.50', () => ({ error: { code: 'system.internalError', message: 'Broken' } }));
    svc.model('library.book.51', { title: 'T' });
    svc.handle('access.library.book.51', () => ({ error: { code: 'conf.banned', message: 'Banned' } }));
    svc.model('library.book.52', { title: 'T' });
    svc.handle('access.library.book.52', () => ({ result: { get: 'foo' } }));
    svc.handle('get.library.book.53', () => ({ result: { model: { title: 'T' }, collection: [] } }));
    await svc.nc.flush();
    gw = await startTestGateway(nats.url, librarySdl);
    rs = await startResgate(resgateBin!, nats.url);
    // Resgate prints "Listening on" a moment before it accepts on a loaded machine: try until it does
    client = (await waitFor(() => ResgateClient.connect(rs.wsUrl).catch(() => undefined), 5000, 'Resgate to accept a connection'))!;
  });

  afterAll(async () => {
    await client?.close();
    await rs?.stop();
    await gw?.close();
    await svc?.close();
    await nats?.stop();
  });

  const cases: [string, string, () => Promise<unknown>, string][] = [
    ['no service for get', '{ raw(name: "orphan") }', () => client.subscribe('orphan.thing'), 'system.notFound'],
    ['no service for access', '{ raw(name: "nobody") }', () => client.subscribe('nobody.thing'), 'system.notFound'],
    ['no service for a call', 'mutation { poke(name: "orphan") }', () => client.call('orphan.thing', 'poke'), 'system.notFound'],
    ['an access error', '{ book(id: 50) { title } }', () => client.subscribe('library.book.50'), 'system.internalError'],
    ['an access error of the service', '{ book(id: 51) { title } }', () => client.subscribe('library.book.51'), 'conf.banned'],
    ['an invalid access verdict', '{ book(id: 52) { title } }', () => client.subscribe('library.book.52'), 'system.internalError'],
    ['a get with model and collection', '{ book(id: 53) { title } }', () => client.subscribe('library.book.53'), 'system.internalError'],
  ];
  for (const [what, query, resgateRequest, code] of cases) {
    it(`${what}: ${code} on both`, async () => {
      const r = await gql(gw.url, query);
      expect(r.errors?.map((e) => e.extensions?.code)).toEqual([await resgateCode(resgateRequest)]);
      expect(r.errors?.[0]?.extensions?.code).toBe(code);
    });
  }
});
