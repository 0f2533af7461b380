/**
 * `--workers 2`, through a real port: `node dist/cli.js` forks two gateway
 * processes sharing it. Seen from outside: the service gets one `get` per
 * worker (each has its own cache), `/metrics` sums both, `/readyz` counts
 * them, a worker killed with SIGKILL is replaced, and SIGTERM drains every
 * worker (graphql-ws clients get 1012) before the command exits 0.
 *
 * The tests run in order and share the fleet.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startCliStack, type CliStack, type GatewayProcess } from './helpers/cli-gateway.js';
import { queryOnNewConnection } from './helpers/gateway.js';
import { scrape } from './helpers/metrics.js';
import type { TestService } from './helpers/res-service.js';
import { waitFor } from './helpers/wait.js';

const sdl = /* GraphQL */ `
type Book @resource(rid: "library.book.{id}") {
  title: String
}

type Query {
  book(id: ID!): Book @get(rid: "library.book.{id}")
}
`;

let stack: CliStack;
let svc: TestService;
let fleet: GatewayProcess;

beforeAll(async () => {
  stack = await startCliStack(sdl, ['--workers', '2', '--port', '0'], (s) => s.model('library.book.1', { title: 'Dune' }), 40_000);
  ({ svc, gw: fleet } = stack);
}, 60_000);

afterAll(async () => {
  await stack?.close();
});

/** The pids of the workers started so far, from the primary's log. */
const workerPids = () => [...fleet.output().matchAll(/worker started \{"worker":\d+,"pid":(\d+)\}/g)].map((m) => Number(m[1]));

describe('--workers 2', { timeout: 60_000 }, () => {
  it('prints its URL once, for the fleet', () => {
    expect(fleet.output().match(/resgraph listening on/g)).toHaveLength(1);
    expect(fleet.output()).toMatch(/resgraph listening on \S+ \(2 workers\)/);
    expect(workerPids()).toHaveLength(2);
  });

  it('runs two gateways, each with a cache of its own: the service sees one get per worker', async () => {
    for (let i = 0; i < 6; i++) expect(await queryOnNewConnection(fleet.url, '{ book(id: 1) { title } }')).toEqual({ data: { book: { title: 'Dune' } } });
    expect(svc.count('get.library.book.1')).toBe(2);
  });

  it('serves /metrics summed over the workers, and /readyz counting them', async () => {
    const m = await scrape(fleet.metricsUrl);
    expect(m.value('resgraph_nats_connected')).toBe(2);
    expect(m.value('resgraph_res_requests_total', { type: 'get', outcome: 'ok' })).toBe(2);
    const ready = await fetch(new URL('/readyz', fleet.url));
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ok', workers: { ready: 2, workers: 2 } });
  });

  it('replaces a worker that dies', async () => {
    const [first] = workerPids();
    process.kill(first, 'SIGKILL');
    await waitFor(() => /worker exited; starting another/.test(fleet.output()), 10_000, 'the primary to see the worker die');
    await waitFor(() => workerPids().length === 3, 10_000, 'a third worker to start');
    await waitFor(
      async () => ((await (await fetch(new URL('/readyz', fleet.url))).json()) as { workers: { ready: number } }).workers.ready === 2,
      20_000,
      'both workers to be ready again',
    );
    for (let i = 0; i < 4; i++) expect(await queryOnNewConnection(fleet.url, '{ book(id: 1) { title } }')).toEqual({ data: { book: { title: 'Dune' } } });
  });

  it('drains every worker on SIGTERM: WebSocket clients get 1012, and it exits 0', async () => {
    const sockets = await Promise.all(
      [0, 1, 2, 3].map(
        () =>
          new Promise<WebSocket>((resolve, reject) => {
            const ws = new WebSocket(fleet.url.replace(/^http/, 'ws'), 'graphql-transport-ws');
            ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init' })));
            ws.on('message', (d) => JSON.parse(String(d)).type === 'connection_ack' && resolve(ws));
            ws.on('error', reject);
          }),
      ),
    );
    const codes = sockets.map((ws) => new Promise<number>((resolve) => ws.once('close', (code) => resolve(code))));
    fleet.child.kill('SIGTERM');
    expect(await Promise.all(codes)).toEqual([1012, 1012, 1012, 1012]);
    expect(await fleet.exited).toEqual({ code: 0, signal: null });
    expect(fleet.output().match(/drained; exiting/g)).toHaveLength(2);
  });
});
