/**
 * Conformance: a gateway started before its NATS server stays up, answers
 * with a clear system.timeout error, reports itself not ready, and works as
 * soon as NATS is reachable.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { TestService } from './helpers/res-service.js';
import { gql, startTestGateway, type TestGateway } from './helpers/gateway.js';
import { scrape } from './helpers/metrics.js';
import { librarySdl } from './helpers/sdl.js';
import { withTimeout } from './helpers/wait.js';

let port: number;
let nats: NatsServer | undefined;
let svc: TestService | undefined;
let gw: TestGateway;

beforeAll(async () => {
  // a port with nothing on it yet; the nats-server for this file starts there during the test
  port = await freePort();
  gw = await startTestGateway('nats://not-awaited', librarySdl, { nats: `nats://127.0.0.1:${port}` });
});

afterAll(async () => {
  await gw?.close();
  await svc?.close();
  await nats?.stop();
});

const readyz = () => fetch(`http://127.0.0.1:${gw.port}/readyz`);

describe('NATS unavailable at start (tests run in order)', () => {
  it('answers a query with a clear system.timeout error', async () => {
    const r = await gql(gw.url, '{ book(id: 1) { title } }');
    expect(r.data).toEqual({ book: null });
    expect(r.errors![0]).toMatchObject({ path: ['book'], extensions: { code: 'system.timeout' } });
    expect(r.errors![0].message).toMatch(/NATS/);
  });

  it('reports itself not ready on /readyz with 503, and alive on /healthz', async () => {
    expect((await fetch(`http://127.0.0.1:${gw.port}/healthz`)).status).toBe(200);
    const h = await readyz();
    expect(h.status).toBe(503);
    expect(await h.json()).toMatchObject({ nats: 'disconnected' });
  });

  it('leaves nothing in the cache after a load fails for want of NATS', async () => {
    expect((await gql(gw.url, '{ book(id: 1) { title } }')).errors?.map((e) => e.extensions?.code)).toEqual(['system.timeout']);
    const m = await scrape(gw.metricsUrl!);
    expect([m.sum('resgraph_cache_entries'), m.sum('resgraph_cache_subscriptions')]).toEqual([0, 0]);
  });

  it('connects once NATS is reachable: /readyz 200 and queries work', async () => {
    nats = await startNatsServer(port);
    svc = await TestService.start(nats.url);
    svc.model('library.book.1', { title: 'Finally' });
    await withTimeout(gw.natsReady, 10_000, 'the gateway to connect to NATS');

    expect((await readyz()).status).toBe(200);
    expect(await gql(gw.url, '{ book(id: 1) { title } }')).toEqual({ data: { book: { title: 'Finally' } } });
    expect(svc.count('get.library.book.1')).toBe(1);
  });
});
