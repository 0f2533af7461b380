/**
 * The bench's gateway launcher: starts the compiled gateway (dist/server.js,
 * as in production) in this process, alone, and answers the orchestrator
 * over IPC: `gc` (needs --expose-gc), `mem` (process.memoryUsage),
 * `heapSnapshot` (for bench/heap-diff.mjs) and
 * `stats` (the gateway's own counters), `stop` (closes the gateway and
 * exits, which also writes a --cpu-prof profile). Nothing else runs here, so
 * /proc/<pid> of this process is the gateway's cost.
 *
 *   node --expose-gc bench/gateway.mjs <nats-url> [schema] [log-level] [--nats-* options]
 *
 * BENCH_REQUEST_TIMEOUT_MS, when set, is the gateway's NATS request timeout
 * (a scenario whose first result needs thousands of gets at once on a busy machine).
 */
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { serve, ready } from './lib/ipc.mjs';
import { natsFromArgv } from './lib/nats.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const { startGateway } = await import(join(root, 'dist/server.js'));
const { consoleLogger } = await import(join(root, 'dist/log.js'));

const { positionals, natsClient } = natsFromArgv(process.argv.slice(2), 'resgraph');
const [natsUrl, schema = join(root, 'bench/fixture/bench.graphql'), level = 'warn'] = positionals;
const gw = await startGateway({
  nats: natsUrl.split(','),
  natsClient,
  schema,
  port: 0,
  host: '127.0.0.1',
  logger: consoleLogger(level),
  ...(process.env.BENCH_REQUEST_TIMEOUT_MS ? { requestTimeout: Number(process.env.BENCH_REQUEST_TIMEOUT_MS) } : {}),
  // one live subscription per connection in every scenario; the default limit is fine
});
await gw.natsReady;

function gc() {
  if (typeof global.gc !== 'function') return false;
  global.gc();
  global.gc();
  return true;
}

/** GC pauses of the main thread, seen from inside (a long one shows up in every subscriber's latency) */
const gcStats = { count: 0, totalMs: 0, maxMs: 0, major: 0 };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcStats.count++;
    gcStats.totalMs += e.duration;
    gcStats.maxMs = Math.max(gcStats.maxMs, e.duration);
    if (e.detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) gcStats.major++;
  }
}).observe({ entryTypes: ['gc'] });

let stopping = false;
serve({
  gc: () => ({ gc: gc(), mem: process.memoryUsage() }),
  mem: () => process.memoryUsage(),
  heapSnapshot: ({ file }) => {
    gc();
    return writeHeapSnapshot(file);
  },
  stats: () => ({
    // read defensively: these are the gateway's internals, not a stable API
    live: gw.live?.stats ?? { liveQueries: null, subscribers: null },
    executions: gw.live?.executions ?? 0,
    cache: gw.cache?.stats ?? { entries: null },
    connections: gw.connections?.size ?? null,
    sent: { get: 0, access: 0, ...(gw.res?.sent ?? {}) },
    gc: { ...gcStats },
  }),
  /** resets the GC pause maximum (counts and totals are diffed by the caller) */
  resetGcMax: () => {
    gcStats.maxMs = 0;
    return true;
  },
  stop: () => {
    if (stopping) return true;
    stopping = true;
    // answer first, then close; exit even if closing hangs
    setTimeout(() => {
      const force = setTimeout(() => process.exit(0), 5000);
      gw.close().finally(() => {
        clearTimeout(force);
        process.exit(0);
      });
    }, 10);
    return true;
  },
});
ready({ url: gw.url, port: gw.port });
