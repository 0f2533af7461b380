/**
 * Scenario 3, query throughput: HTTP POST /graphql with 50 concurrent
 * keep-alive connections (autocannon in its own process). `cached`: one
 * model, fetched once beforehand; `uncached`: every request a new rid, so
 * each costs a get (and the rid is evicted 5 s later). Every HTTP request is
 * a connection of its own to the gateway, so each also asks `access`.
 */
import { PhaseMeter, round, waitQuiet } from '../lib/procs.mjs';
import { printTable, printWhere, targetRow } from '../lib/report.mjs';
import { startStack } from '../lib/stack.mjs';

export async function query({ quick = false, connections = 50, profile = false, log = console.log } = {}) {
  const durationSec = quick ? 3 : 10;
  const stack = await startStack('query', { profile });
  const runs = [];
  try {
    const load = await stack.procs.startNode('http-load', 'autocannon (HTTP load generator)', 'clients/http-load.mjs');
    printWhere(stack.procs);
    // warm the cache and the code paths (not measured)
    await load.rpc.call('run', { url: stack.gatewayUrl, connections: 10, durationSec: 2, mode: 'cached', id: 'hot' });
    for (const mode of ['cached', 'uncached']) {
      const quiet = await waitQuiet(stack.procs);
      const before = await stack.gateway.call('stats');
      const meter = new PhaseMeter(stack.procs);
      const r = await load.rpc.call('run', { url: stack.gatewayUrl, connections, durationSec, mode, id: 'hot', prefix: `u${Date.now()}-` }, (durationSec + 60) * 1000);
      const m = meter.stop();
      const after = await stack.gateway.call('stats');
      const sent = Object.fromEntries(Object.keys(after.sent).map((k) => [k, after.sent[k] - before.sent[k]]));
      runs.push({
        ...r,
        quietStart: quiet,
        natsRequestsPerQuery: { get: round(sent.get / Math.max(1, r.requests), 2), access: round(sent.access / Math.max(1, r.requests), 2) },
        cacheEntriesAfter: after.cache.entries,
        gateway: m.perProcess.gateway,
        processes: m.perProcess,
        otherCpuSec: m.otherCpuSec,
        otherTop: m.otherTop,
        stealSec: m.stealSec,
        machineBusyPct: m.machineBusyPct,
      });
      log(`  ${mode}: ${Math.round(r.rps)} req/s, p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms, errors ${r.errors + r.non2xx + r.graphqlErrors}; noise: other processes ${m.otherCpuSec} CPU s${m.otherTop ? ` (${m.otherTop})` : ''}, hypervisor steal ${m.stealSec} s, gateway waiting for CPU ${m.perProcess.gateway?.waitPct}%`);
    }
  } finally {
    await stack.procs.stopAll();
  }
  printTable(
    `Query throughput: POST /graphql, ${connections} connections, ${durationSec} s each`,
    ['mode', 'requests', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'errors', 'get/query', 'access/query', 'gw CPU %', 'gw RSS MB', 'load CPU %', 'service CPU %', 'other/steal s'],
    runs.map((r) => [
      r.mode,
      r.requests,
      round(r.rps, 0),
      r.latency.p50,
      r.latency.p99,
      r.latency.max,
      r.errors + r.non2xx + r.timeouts + r.graphqlErrors,
      r.natsRequestsPerQuery.get,
      r.natsRequestsPerQuery.access,
      r.gateway?.cpuPct,
      r.gateway?.peakRssMB,
      r.processes['http-load']?.cpuPct,
      r.processes.service?.cpuPct,
      `${r.otherCpuSec}/${r.stealSec}`,
    ]),
  );
  const cached = runs.find((r) => r.mode === 'cached');
  return {
    profiles: stack.profileFile ? [stack.profileFile] : [],
    runs,
    targets: cached
      ? [targetRow('cached-query throughput', '>= 10,000 req/s', `${Math.round(cached.rps).toLocaleString('en-US')} req/s (p99 ${cached.latency.p99} ms)`, cached.rps >= 10000)]
      : [],
  };
}
