/**
 * Prometheus metrics for one gateway, in a registry of its own (several
 * gateways in one process, as in tests, never share or collide). The parts
 * report through small observer interfaces they define themselves
 * (RequestObserver, EventObserver, LiveObserver), which GatewayMetrics
 * implements; gauges are read from the parts when scraped.
 *
 * Served at `/metrics` on the gateway's port, or on a port of its own
 * (`startMetricsServer`), in the Prometheus text format.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ConnectionRegistry } from '../access/access.js';
import type { EventObserver, ResourceCache } from '../cache/cache.js';
import type { LiveEngine } from '../live/engine.js';
import type { LiveObserver } from '../live/stream.js';
import type { FallbackReason } from '../live/incremental.js';
import type { RequestKind, RequestObserver } from '../res/client.js';
import { reservedEvents } from '../res/protocol.js';

/** What the gauges read, once the parts exist (they are built after the observers they report to). */
export interface MetricSources {
  connections: ConnectionRegistry;
  cache: ResourceCache;
  live: LiveEngine;
  /** whether the NATS connection is up */
  natsConnected: () => boolean;
  /** whether /readyz answers 200 */
  ready: () => boolean;
}

export interface GatewayMetricsOptions {
  /** also collect the process's CPU, memory, event loop and GC metrics (once per process: the CLI does) */
  processMetrics?: boolean;
  /** in a worker of `--workers`: what `/metrics` serves, every worker's metrics aggregated */
  fleetText?: () => Promise<string>;
}

/** Seconds; the event-to-push latency of a local gateway is well under a millisecond when idle. */
const latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

const transports = ['http', 'sse', 'ws', 'res'] as const;

export class GatewayMetrics implements RequestObserver, EventObserver, LiveObserver {
  readonly registry = new Registry();
  private sources: MetricSources | undefined;
  private readonly requests: Counter<'type' | 'outcome'>;
  private readonly schemaReloads: Counter<'outcome'>;
  private readonly latency: Histogram;
  /**
   * Counts on the hot path (every event, every result handed to a socket)
   * are plain numbers, added to their prom-client metrics when scraped: a
   * state pushed to 10,000 sockets must not cost 10,000 prom-client calls.
   */
  private readonly hot = { pushed: 0, coalesced: 0, dropped: 0, events: new Map<string, number>(), incremental: new Map<string, number>() };
  /**
   * Push latencies (s) not yet observed by the histogram: observed in a
   * batch when scraped, after the current I/O once half full (a batch takes
   * milliseconds: never on the way of the event being pushed), or at once
   * when full (a fan-out that fills it in one go).
   */
  private readonly latencies = new Float64Array(4096);
  private latencyCount = 0;
  private latencyFlushScheduled = false;

  constructor(opts: GatewayMetricsOptions = {}) {
    this.fleetText = opts.fleetText;
    const registers = [this.registry];
    const self = this;
    new Gauge({
      name: 'resgraph_connections',
      help: 'Open client connections by transport: http (GraphQL requests in progress), sse (event streams), ws (WebSockets), res (Resgate HTTP API requests in progress and ResClient WebSockets)',
      labelNames: ['transport'],
      registers,
      collect() {
        const counts = { http: 0, sse: 0, ws: 0, res: 0 };
        for (const c of self.sources?.connections.all() ?? []) counts[c.transport]++;
        for (const t of transports) this.set({ transport: t }, counts[t]);
      },
    });
    new Gauge({
      name: 'resgraph_live_subscriptions',
      help: 'Live result streams open (subscriptions and @live queries), over all transports',
      registers,
      collect() {
        this.set(self.sources?.live.stats.subscribers ?? 0);
      },
    });
    new Gauge({
      name: 'resgraph_live_operations',
      help: 'Distinct live operations (same document, variables and token share one), each executed once per change',
      registers,
      collect() {
        this.set(self.sources?.live.stats.liveQueries ?? 0);
      },
    });
    let executionsSeen = 0;
    new Counter({
      name: 'resgraph_live_executions_total',
      help: 'Executions of live operations (first runs and re-runs after changes)',
      registers,
      collect() {
        const now = self.sources?.live.executions ?? 0;
        if (now > executionsSeen) this.inc(now - executionsSeen);
        executionsSeen = now;
      },
    });
    new Gauge({
      name: 'resgraph_cache_entries',
      help: 'Resources in the cache',
      registers,
      collect() {
        this.set(self.sources?.cache.stats.entries ?? 0);
      },
    });
    new Gauge({
      name: 'resgraph_cache_subscriptions',
      help: 'NATS event subscriptions the cache holds (one per resource name)',
      registers,
      collect() {
        this.set(self.sources?.cache.stats.subscriptions ?? 0);
      },
    });
    new Gauge({
      name: 'resgraph_nats_connected',
      help: '1 while the NATS connection is up, else 0',
      registers,
      collect() {
        this.set(self.sources?.natsConnected() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'resgraph_ready',
      help: '1 while /readyz answers 200 (NATS connected, not draining), else 0',
      registers,
      collect() {
        this.set(self.sources?.ready() ? 1 : 0);
      },
    });
    this.requests = new Counter({
      name: 'resgraph_res_requests_total',
      help: 'RES requests sent to services, by type (get, access, call, auth, query) and outcome (ok, timeout, or the error code)',
      labelNames: ['type', 'outcome'],
      registers,
    });
    const hot = this.hot;
    const events = new Counter({
      name: 'resgraph_res_events_total',
      help: 'Resource events received from NATS, by type (change, add, remove, delete, reaccess, query, ...; custom for the others)',
      labelNames: ['type'],
      registers,
      collect() {
        for (const [type, n] of hot.events) this.inc({ type }, n);
        hot.events.clear();
      },
    });
    /** a counter of one of the hot counts */
    const hotCounter = (name: string, help: string, key: 'pushed' | 'coalesced' | 'dropped') =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.inc(hot[key]);
          hot[key] = 0;
        },
      });
    hotCounter('resgraph_live_results_pushed_total', 'Live results handed to the transports', 'pushed');
    hotCounter('resgraph_live_results_coalesced_total', 'Live results replaced by a newer one before the client took them', 'coalesced');
    hotCounter(
      'resgraph_live_results_dropped_total',
      'Live results discarded unsent: the result went back to what the client has, or the stream ended first',
      'dropped',
    );
    const incremental = new Counter({
      name: 'resgraph_live_incremental_total',
      help: 'Updates of live results after changes: applied to the last result (outcome "applied"), or left to a run of the operation (outcome "fallback", with the reason: add, delete, reference, whole, errors, value, access)',
      labelNames: ['outcome', 'reason'],
      registers,
      collect() {
        for (const [key, n] of hot.incremental) {
          const [outcome, reason] = key.split(':') as [string, string];
          this.inc({ outcome, reason }, n);
        }
        hot.incremental.clear();
      },
    });
    this.latency = new Histogram({
      name: 'resgraph_live_push_latency_seconds',
      help: 'From a resource event reaching the cache to the new result being handed to the transport',
      buckets: latencyBuckets,
      registers,
      collect() {
        self.observeLatencies();
      },
    });
    // the common series exist from the start, at 0, so rates over them need no first event
    for (const type of ['get', 'access', 'call', 'auth', 'query'] satisfies RequestKind[]) {
      for (const outcome of ['ok', 'timeout']) this.requests.inc({ type, outcome }, 0);
    }
    for (const type of [...reservedEvents, 'custom']) events.inc({ type }, 0);
    incremental.inc({ outcome: 'applied', reason: '' }, 0);
    this.schemaReloads = new Counter({
      name: 'resgraph_schema_reloads_total',
      help: 'Schema reloads (SIGHUP, --watch-schema), by outcome: applied, or refused (an invalid schema; the one before is still served)',
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of ['applied', 'refused'] as const) this.schemaReloads.inc({ outcome }, 0);
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** Starts reading the gauges from the parts. */
  watch(sources: MetricSources): void {
    this.sources = sources;
  }

  request(kind: RequestKind, outcome: string): void {
    this.requests.inc({ type: kind, outcome });
  }

  schemaReload(outcome: 'applied' | 'refused'): void {
    this.schemaReloads.inc({ outcome });
  }

  event(type: string): void {
    this.hot.events.set(type, (this.hot.events.get(type) ?? 0) + 1);
  }

  pushed(latencyMs: number | undefined): void {
    this.hot.pushed++;
    if (latencyMs === undefined) return;
    this.latencies[this.latencyCount++] = latencyMs / 1000;
    if (this.latencyCount === this.latencies.length) this.observeLatencies();
    else if (this.latencyCount === this.latencies.length / 2 && !this.latencyFlushScheduled) {
      this.latencyFlushScheduled = true;
      setImmediate(() => {
        this.latencyFlushScheduled = false;
        this.observeLatencies();
      }).unref();
    }
  }

  incremental(outcome: 'applied' | 'fallback', reason?: FallbackReason): void {
    const key = `${outcome}:${reason ?? ''}`;
    this.hot.incremental.set(key, (this.hot.incremental.get(key) ?? 0) + 1);
  }

  coalesced(): void {
    this.hot.coalesced++;
  }

  dropped(): void {
    this.hot.dropped++;
  }

  private observeLatencies(): void {
    for (let i = 0; i < this.latencyCount; i++) this.latency.observe(this.latencies[i]);
    this.latencyCount = 0;
  }

  private readonly fleetText: (() => Promise<string>) | undefined;

  /** The metrics in the Prometheus text format: this gateway's, or its fleet's. */
  text(): Promise<string> {
    return this.fleetText ? this.fleetText() : this.registry.metrics();
  }

  /** Answers a `GET /metrics` (node http). */
  async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    try {
      const body = await this.text();
      res.writeHead(200, { 'content-type': this.registry.contentType });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`cannot collect metrics: ${(e as Error).message}\n`);
    }
  }
}

/** Serves `/metrics` alone on a port of its own (anything else is 404); resolves once listening. */
export async function startMetricsServer(
  metrics: GatewayMetrics,
  port: number,
  host: string,
): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    if (new URL(req.url ?? '/', 'http://x').pathname === '/metrics') void metrics.serve(req, res);
    else res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; metrics are at /metrics\n');
  });
  await once(server.listen(port, host), 'listening');
  const actual = (server.address() as AddressInfo).port;
  return {
    server,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${actual}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
