/**
 * Scaling out, with real processes on loopback: a 3-node NATS cluster, three
 * `resgraph` processes (each connected to its own node, with the full server
 * list), the fixture RES service on node 0, and graphql-ws clients spread
 * over the three gateways, all watching the same resource. Clients know all
 * three URLs and go round-robin when their gateway goes away.
 *
 * The tests run in order and share the fleet: one get per gateway first,
 * then ordering across nodes, then a NATS node lost under a gateway, then a
 * gateway drained with SIGTERM.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type Client } from 'graphql-ws';
import { connect, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ensureBuilt, startGatewayProcess, type GatewayProcess } from './helpers/cli-gateway.js';
import { wsUrl } from './helpers/live-client.js';
import { scrape } from './helpers/metrics.js';
import { startNatsCluster, type NatsCluster } from './helpers/nats-cluster.js';
import { TestService } from './helpers/res-service.js';
import { waitFor, withTimeout } from './helpers/wait.js';

const rid = 'cluster.counter.1';
const sdl = /* GraphQL */ `
type Counter @resource(rid: "cluster.counter.{id}") {
  seq: Int
}

type Query {
  counter(id: ID!): Counter @get(rid: "cluster.counter.{id}")
}
`;
const subscription = 'subscription { counter(id: "1") { seq } }';
const clientsPerGateway = 4;

interface Seen {
  seq: number;
  /** the gateway the client was connected to */
  gw: number;
  at: number;
}

/** A graphql-ws client that starts at its home gateway and tries the next URL whenever its socket is lost. */
class FleetClient {
  readonly seen: Seen[] = [];
  connects = 0;
  current = -1;
  ended = false;
  error: unknown;
  private readonly client: Client;
  private readonly unsubscribe: () => void;

  constructor(
    readonly home: number,
    urls: string[],
  ) {
    let k = 0;
    let dialing = -1;
    this.client = createClient({
      url: () => {
        dialing = (home + k++) % urls.length;
        return wsUrl(urls[dialing]);
      },
      webSocketImpl: WebSocket,
      retryAttempts: 10,
      // reconnect at once: the next URL is another gateway
      retryWait: async () => undefined,
      on: {
        connected: () => {
          this.connects++;
          this.current = dialing;
        },
      },
    });
    this.unsubscribe = this.client.subscribe(
      { query: subscription },
      {
        next: (r) => this.seen.push({ seq: (r.data as { counter: { seq: number } }).counter.seq, gw: this.current, at: performance.now() }),
        error: (e) => {
          this.ended = true;
          this.error = e;
        },
        complete: () => (this.ended = true),
      },
    );
  }

  get last(): number | undefined {
    return this.seen.at(-1)?.seq;
  }

  async dispose(): Promise<void> {
    this.unsubscribe();
    await this.client.dispose();
  }
}

let cluster: NatsCluster;
let svc: TestService;
let dir: string;
const gateways: GatewayProcess[] = [];
const publishers: NatsConnection[] = [];
const clients: FleetClient[] = [];
let seq = 0;
const enc = new TextEncoder();

beforeAll(async () => {
  await ensureBuilt();
  cluster = await startNatsCluster(3);
  const urls = cluster.nodes.map((n) => n.url);
  svc = await TestService.start(urls[0]);
  svc.model(rid, { seq: 0 });
  for (const url of urls) publishers.push(await connect({ servers: url, name: 'test-publisher', noRandomize: true, maxReconnectAttempts: 0 }));

  dir = mkdtempSync(join(tmpdir(), 'resgraph-cluster-'));
  writeFileSync(join(dir, 'schema.graphql'), sdl);
  // gateway i: its own node first, then the others
  const started = await Promise.all(
    [0, 1, 2].map((i) =>
      startGatewayProcess([
        '--nats', [0, 1, 2].map((k) => urls[(i + k) % 3]).join(','),
        '--schema', join(dir, 'schema.graphql'),
        '--port', '0',
        '--log-level', 'info',
        '--drain-timeout', '5000',
        // one gateway serves its metrics on a port of its own
        ...(i === 2 ? ['--metrics', '0'] : []),
      ]),
    ),
  );
  gateways.push(...started);

  const gatewayUrls = gateways.map((g) => g.url);
  for (let i = 0; i < 3; i++) for (let c = 0; c < clientsPerGateway; c++) clients.push(new FleetClient(i, gatewayUrls));
  await waitFor(() => clients.every((c) => c.last === 0), 15_000, 'every client to get the first result');
}, 90_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.dispose().catch(() => undefined)));
  await Promise.all(gateways.map((g) => g.kill()));
  for (const p of publishers) await p.close().catch(() => undefined);
  await svc?.close();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Sets the service's state and publishes the change from a connection on the given node. */
async function publishChanges(node: number, count: number): Promise<number> {
  const pub = publishers[node];
  const model = (svc.resources.get(rid) as { model: { seq: number } }).model;
  for (let i = 0; i < count; i++) {
    model.seq = ++seq;
    pub.publish(`event.${rid}.change`, enc.encode(JSON.stringify({ values: { seq } })));
  }
  await pub.flush();
  return seq;
}

function allAt(value: number, which: FleetClient[] = clients, timeoutMs = 15_000): Promise<boolean> {
  return waitFor(() => which.every((c) => c.last === value), timeoutMs, `${which.length} clients to reach seq ${value}`);
}

/** Seqs only grow; on one gateway connection they strictly increase (a reconnect repeats the current state once). */
function expectInOrder(c: FleetClient): void {
  for (let i = 1; i < c.seen.length; i++) {
    const [a, b] = [c.seen[i - 1], c.seen[i]];
    if (a.gw === b.gw) expect(b.seq, `client of gateway ${c.home}: ${JSON.stringify(c.seen.map((s) => s.seq))}`).toBeGreaterThan(a.seq);
    else expect(b.seq).toBeGreaterThanOrEqual(a.seq);
  }
}

const onGateway = (i: number) => clients.filter((c) => c.home === i);

async function resgraphConnections(node: number): Promise<{ subscriptions_list?: string[] }[]> {
  const connz = await cluster.nodes[node].monitor('/connz?subs=1');
  return (connz.connections ?? []).filter((c: { name?: string }) => c.name === 'resgraph');
}

describe('a fleet of three gateways on a three-node NATS cluster', () => {
  it('makes one get and holds one event subscription per gateway, whatever its client count', async () => {
    expect(svc.count(`get.${rid}`)).toBe(3);
    for (let node = 0; node < 3; node++) {
      // gateway i is connected to node i, with one subscription to the resource's events
      const conns = await resgraphConnections(node);
      expect(conns).toHaveLength(1);
      expect(conns[0].subscriptions_list!.filter((s) => s.startsWith('event.'))).toEqual([`event.${rid}.*`]);
    }
    for (const gw of gateways) {
      const m = await scrape(gw.metricsUrl);
      expect(m.value('resgraph_live_subscriptions')).toBe(clientsPerGateway);
      expect(m.value('resgraph_live_operations')).toBe(1);
      expect(m.value('resgraph_connections', { transport: 'ws' })).toBe(clientsPerGateway);
      expect(m.value('resgraph_cache_subscriptions')).toBe(1);
      expect(m.value('resgraph_res_requests_total', { type: 'get', outcome: 'ok' })).toBe(1);
    }
    expect(gateways[2].metricsUrl).not.toContain(`:${gateways[2].port}/`);
  });

  it('delivers changes published on any node to every subscriber on every gateway, in order, none lost', async () => {
    for (const node of [0, 1, 2]) {
      const last = await publishChanges(node, 40);
      await allAt(last);
    }
    for (const c of clients) {
      expectInOrder(c);
      expect(c.connects).toBe(1);
      expect(c.ended).toBe(false);
    }
    // every gateway saw the changes as events and re-ran its one live operation for them
    for (const gw of gateways) {
      const m = await scrape(gw.metricsUrl);
      expect(m.value('resgraph_res_events_total', { type: 'change' })).toBe(seq);
      expect(m.value('resgraph_live_push_latency_seconds_count')).toBeGreaterThan(0);
    }
  });

  it('resynchronizes a gateway whose NATS node goes away, including changes made while it was away', async () => {
    const gets = svc.count(`get.${rid}`);
    // frozen: gateway 2's connection to node 2 stays open, but no event reaches it
    cluster.nodes[2].pause();
    for (let i = 0; i < 5; i++) await svc.change(rid, { seq: ++seq });
    await allAt(seq, [...onGateway(0), ...onGateway(1)]);
    expect(onGateway(2).every((c) => c.last! < seq)).toBe(true);

    // node 2 dies: gateway 2 reconnects to another node, re-gets and diffs.
    // The re-get is awaited for itself: events node 2 wrote to its socket
    // just before it froze can still bring gateway 2's clients up to date
    // before the reconnect is even noticed.
    const reget = svc.nextRequest(`get.${rid}`, 15_000);
    await publishers[2].close();
    await cluster.nodes[2].kill();
    await reget;
    await allAt(seq, onGateway(2));
    expect(svc.count(`get.${rid}`)).toBeGreaterThan(gets);
    const moved = [...(await resgraphConnections(0)), ...(await resgraphConnections(1))];
    expect(moved).toHaveLength(3);

    // and follows changes again
    const last = await publishChanges(1, 10);
    await allAt(last);
    for (const c of clients) {
      expectInOrder(c);
      expect(c.connects).toBe(1);
      expect(c.ended).toBe(false);
    }
  });

  it('drains a gateway on SIGTERM: its clients move to another one, the others notice nothing, it exits 0', async () => {
    const leaving = onGateway(1);
    const staying = clients.filter((c) => c.home !== 1);
    const current = seq;
    const seenBefore = new Map(leaving.map((c) => [c, c.seen.length]));

    const sigterm = performance.now();
    gateways[1].child.kill('SIGTERM');
    const exit = withTimeout(gateways[1].exited, 15_000, 'gateway 1 to exit');
    await waitFor(() => leaving.every((c) => c.seen.slice(seenBefore.get(c)).some((s) => s.gw !== 1)), 15_000, 'the clients of gateway 1 to resubscribe elsewhere');
    const firstElsewhere = leaving.map((c) => c.seen.slice(seenBefore.get(c)).find((s) => s.gw !== 1)!);
    const ms = firstElsewhere.map((s) => Math.round((s.at - sigterm) * 10) / 10).sort((a, b) => a - b);
    console.log(`SIGTERM to first result on another gateway, ${ms.length} clients: min ${ms[0]} ms, median ${ms[Math.floor(ms.length / 2)]} ms, max ${ms.at(-1)} ms`);

    // the current state first
    for (const s of firstElsewhere) expect(s.seq).toBe(current);
    expect(await exit).toEqual({ code: 0, signal: null });
    expect(gateways[1].output()).toMatch(/drained; exiting/);

    // then updates, for everyone
    const last = await publishChanges(0, 10);
    await allAt(last);
    for (const c of leaving) {
      expect(c.current).not.toBe(1);
      expect(c.connects).toBe(2);
      expect(c.ended).toBe(false);
      expectInOrder(c);
    }
    for (const c of staying) {
      expect(c.connects).toBe(1);
      expect(c.ended).toBe(false);
      expectInOrder(c);
    }
  });
});
