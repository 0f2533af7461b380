/**
 * Running in a fleet: the probes (/healthz liveness, /readyz readiness) and
 * the graceful drain. A drain refuses new work, tells live clients to
 * reconnect elsewhere (WebSocket close 1012, SSE streams end), lets queries
 * and mutations in flight finish, and then lets go of NATS. Everything is
 * read from the real endpoints.
 */
import { createClient, type Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { parseCliArgs, UsageError } from '../src/cli.js';
import { gql, startTestGateway, type TestGateway } from './helpers/gateway.js';
import { subscribeSse, subscribeWs, wsUrl } from './helpers/live-client.js';
import { metric, scrape } from './helpers/metrics.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { TestService } from './helpers/res-service.js';
import { librarySdl } from './helpers/sdl.js';
import { gate, waitFor, withTimeout } from './helpers/wait.js';

let nats: NatsServer;
let svc: TestService;
const gateways: TestGateway[] = [];

beforeAll(async () => {
  nats = await startNatsServer();
  svc = await TestService.start(nats.url);
  for (let id = 1; id <= 9; id++) svc.model(`library.book.${id}`, { title: `Book ${id}` });
});

afterAll(async () => {
  for (const gw of gateways) await gw.drain(0);
  await svc?.close();
  await nats?.stop();
});

async function gateway(): Promise<TestGateway> {
  const gw = await startTestGateway(nats.url, librarySdl);
  gateways.push(gw);
  return gw;
}

const probe = (gw: TestGateway, path: '/healthz' | '/readyz') => fetch(`http://127.0.0.1:${gw.port}${path}`);

/** A graphql-ws client that does not retry, recording how its socket closed. */
function closeRecordingClient(url: string): Client & { closes: number[] } {
  const closes: number[] = [];
  const client = createClient({
    url: wsUrl(url),
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: false,
    onNonLazyError: () => undefined,
    on: { closed: (e) => closes.push((e as { code: number }).code) },
  });
  return Object.assign(client, { closes });
}

/** Opens a WebSocket and resolves with the HTTP status the upgrade was answered with (101 when accepted). */
function upgradeStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(wsUrl(url), 'graphql-transport-ws');
    socket.once('open', () => {
      socket.close();
      resolve(101);
    });
    socket.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      socket.terminate();
    });
    socket.once('error', (e) => reject(e));
  });
}

describe('probes', () => {
  it('/healthz answers 200 while the process serves; /readyz 503 while NATS is down', async () => {
    const own = await startNatsServer();
    const gw = await startTestGateway(own.url, librarySdl);
    gateways.push(gw);
    try {
      expect((await probe(gw, '/readyz')).status).toBe(200);
      expect(await (await probe(gw, '/readyz')).json()).toEqual({ status: 'ok', nats: 'connected', draining: false });

      await own.stop();
      const down = (await waitFor(async () => {
        const r = await probe(gw, '/readyz');
        return r.status === 503 && r;
      }, 5000, '/readyz to answer 503')) as Response;
      // natsError: the connection was lost, or why the last reconnect attempt failed
      expect(await down.json()).toEqual({ status: 'unavailable', nats: 'disconnected', natsError: expect.any(String), draining: false });
      expect((await probe(gw, '/healthz')).status).toBe(200);
      const m = await scrape(gw.metricsUrl!);
      expect(m.value('resgraph_nats_connected')).toBe(0);
      expect(m.value('resgraph_ready')).toBe(0);

      await own.start();
      await waitFor(async () => (await probe(gw, '/readyz')).status === 200, 10_000, '/readyz to answer 200 again');
    } finally {
      await gw.drain(0);
      await own.stop();
    }
  });
});

describe('drain', () => {
  it('ends live streams (WebSocket close 1012, SSE streams end), finishes an HTTP query in flight, and reports not ready', async () => {
    const gw = await gateway();
    const ws = closeRecordingClient(gw.url);
    const live = subscribeWs(ws, 'subscription { book(id: 1) { title } }');
    const sse = subscribeSse(gw.url, 'subscription { book(id: 2) { title } }');
    expect(await live.next()).toEqual({ data: { book: { title: 'Book 1' } } });
    expect(await sse.next()).toEqual({ data: { book: { title: 'Book 2' } } });

    // a query whose get the service holds until the test lets it go
    const held = gate();
    svc.handle('get.library.book.50', async () => {
      await held.promise;
      return { result: { model: { title: 'Held' } } };
    });
    const asked = svc.nextRequest('get.library.book.50');
    const inFlight = gql(gw.url, '{ book(id: 50) { title } }');
    await asked;

    const drained = gw.drain(10_000);
    expect(gw.draining).toBe(true);

    // live clients are told to go elsewhere, at once
    await withTimeout(live.completed, 3000, 'the WebSocket subscription to end');
    expect(ws.closes).toEqual([1012]);
    expect((live.error as { code?: number }).code).toBe(1012);
    await withTimeout(sse.completed, 3000, 'the SSE stream to end');
    expect(sse.results).toHaveLength(1);

    // while the query is in flight: not ready, alive, and no new work
    const ready = await probe(gw, '/readyz');
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'unavailable', nats: 'connected', draining: true });
    expect((await probe(gw, '/healthz')).status).toBe(200);
    expect((await scrape(gw.metricsUrl!)).value('resgraph_ready')).toBe(0);
    const refused = await fetch(gw.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ book(id: 3) { title } }' }),
    });
    expect(refused.status).toBe(503);
    expect((await refused.json()).errors[0].extensions.code).toBe('system.unavailable');
    expect(await upgradeStatus(gw.url)).toBe(503);
    await waitFor(async () => (await metric(gw, 'resgraph_live_subscriptions')) === 0, 3000, 'every live stream to be closed');

    // the query in flight still gets its answer
    held.open();
    expect(await withTimeout(inFlight, 3000, 'the query in flight')).toEqual({ data: { book: { title: 'Held' } } });
    const result = await withTimeout(drained, 5000, 'the drain');
    expect(result.forced).toBe(false);
    // internal: the drained gateway no longer listens, so only the in-process client can say NATS is closed
    expect(gw.res.connected).toBe(false);
    await expect(probe(gw, '/healthz')).rejects.toThrow();
    // close() after drain() is the same shutdown
    await withTimeout(gw.close(), 1000, 'close after drain');
  });

  it('keeps a WebSocket with a mutation in flight open until it is answered, then closes it with 1012', async () => {
    const gw = await gateway();
    const ws = closeRecordingClient(gw.url);
    const live = subscribeWs(ws, 'subscription { book(id: 4) { title } }');
    expect(await live.next()).toEqual({ data: { book: { title: 'Book 4' } } });

    const held = gate();
    svc.handle('call.library.book.4.ping', async () => {
      await held.promise;
      return { result: 'pong' };
    });
    const asked = svc.nextRequest('call.library.book.4.ping');
    const mutation = subscribeWs(ws, 'mutation { ping(id: 4) }');
    await asked;

    const drained = gw.drain(10_000);
    // the socket stays: its mutation has not been answered; live updates still flow meanwhile
    await svc.change('library.book.4', { title: 'During drain' });
    expect(await live.next()).toEqual({ data: { book: { title: 'During drain' } } });
    expect(ws.closes).toEqual([]);

    held.open();
    expect(await mutation.next()).toEqual({ data: { ping: 'pong' } });
    await withTimeout(mutation.completed, 3000, 'the mutation to complete');
    expect(mutation.error).toBeUndefined();
    await withTimeout(live.completed, 3000, 'the socket to close');
    expect(ws.closes).toEqual([1012]);
    expect((await withTimeout(drained, 5000, 'the drain')).forced).toBe(false);
  });

  it('closes what is left when the timeout runs out', async () => {
    const gw = await gateway();
    const held = gate();
    svc.handle('get.library.book.51', async () => {
      await held.promise;
      return { result: { model: { title: 'Too late' } } };
    });
    try {
      const asked = svc.nextRequest('get.library.book.51');
      const inFlight = gql(gw.url, '{ book(id: 51) { title } }').then(
        () => 'answered',
        () => 'cut off',
      );
      await asked;
      const started = Date.now();
      const result = await withTimeout(gw.drain(300), 5000, 'the drain');
      expect(result.forced).toBe(true);
      expect(Date.now() - started).toBeLessThan(3000);
      expect(await withTimeout(inFlight, 3000, 'the client to notice')).toBe('cut off');
    } finally {
      held.open();
    }
  });
});

describe('command line', () => {
  it('reads --drain-timeout and --metrics, flags winning over RESGRAPH_DRAIN_TIMEOUT and RESGRAPH_METRICS', () => {
    const run = (argv: string[], env: Record<string, string> = {}) => {
      const cmd = parseCliArgs(argv, env);
      if (cmd.command !== 'run') throw new Error(cmd.command);
      return cmd.options;
    };
    expect(run([])).toMatchObject({ drainTimeout: 10_000, metrics: 'on' });
    expect(run(['--drain-timeout', '2500', '--metrics', '9464'])).toMatchObject({ drainTimeout: 2500, metrics: 9464 });
    expect(run(['--metrics', 'off'])).toMatchObject({ metrics: 'off' });
    expect(run([], { RESGRAPH_DRAIN_TIMEOUT: '0', RESGRAPH_METRICS: 'OFF' })).toMatchObject({ drainTimeout: 0, metrics: 'off' });
    expect(run(['--drain-timeout', '700'], { RESGRAPH_DRAIN_TIMEOUT: '5' })).toMatchObject({ drainTimeout: 700 });
    expect(() => run(['--metrics', 'maybe'])).toThrow(UsageError);
    expect(() => run(['--metrics', '70000'])).toThrow(/expected on, off, or a port number/);
    expect(() => run(['--drain-timeout', 'soon'])).toThrow(/invalid --drain-timeout "soon"/);
  });
});

