/**
 * `--workers`, beside Resgate in one run: the two compare scenarios a
 * second core pays for, on resgraph as one process (bench/gateway.mjs),
 * as the command with `--workers 1` (the cost of the supervisor and its
 * round-robin hand-off of connections) and with `--workers 2`, and on
 * Resgate; one gateway at a time, the same nats-server, fixture service,
 * floor and client load (see compare.mjs for both scenarios):
 *
 *   2. 1,000 graphql-ws subscribers on one model, 100 events/s: latency p99.
 *   6. cached reads over HTTP, 50 connections: requests/s.
 *
 * A worker's CPU and memory are summed into the gateway's (procs.mjs,
 * procTreeStat). On a 2-core machine the load generators share the cores
 * with the workers: the figures say what one such machine does, not what
 * a gateway with cores of its own would.
 */
import { findResgate } from '../lib/gateways.mjs';
import { Processes } from '../lib/procs.mjs';
import { fmt, printTable, targetRow } from '../lib/report.mjs';
import { natsChildArgs } from '../lib/nats.mjs';
import { gatewayName, groupHttp, groupLive } from './compare.mjs';

export async function workers({ quick = false, clientProcs = 1, counts = [1, 2], log = console.log } = {}) {
  const found = findResgate();
  const kinds = ['resgraph', ...counts.map((n) => `resgraph-w${n}`), ...(found.bin ? ['resgate'] : [])];
  if (!found.bin) log(`workers: Resgate comparison skipped: ${found.reason}; no ratios.`);
  const sec = (s) => (quick ? Math.max(2, Math.round(s / 4)) : s) * 1000;
  const procs = new Processes('workers');
  const res = {};
  const t0 = Date.now();
  try {
    const nats = await procs.startNats();
    const service = (await procs.startNode('service', 'fixture RES service + event publisher', 'fixture/service.mjs', { args: [nats.url, ...natsChildArgs()] })).rpc;
    const floor = (await procs.startNode('floor', 'plain NATS subscriber (latency floor)', 'clients/floor.mjs', { args: [nats.url, ...natsChildArgs()] })).rpc;
    const ctx = { procs, nats, service, floor, log, quick, sec, clientProcs, resgateBin: found.bin, profile: false, profiles: [], rates: [], printed: false };
    for (const k of kinds) res[k] = await groupLive(ctx, k, new Set([2]));
    for (const k of kinds) Object.assign(res[k], await groupHttp(ctx, k));
  } finally {
    await procs.stopAll();
  }
  const base = res.resgate;
  const ratio = (x, y) => (x === undefined || y === undefined || y === 0 ? '-' : fmt(x / y, 2));
  printTable(
    'resgraph with --workers, beside Resgate (same run, one gateway at a time)',
    ['gateway', 'cached reads req/s', 'vs Resgate', 'fan-out p99 ms (1,000 subs, 100/s)', 'vs Resgate', 'gateway CPU µs/result'],
    kinds.map((k) => [gatewayName(k), res[k].s6?.rps, ratio(res[k].s6?.rps, base?.s6?.rps), res[k].s2?.latencyMs.p99, ratio(res[k].s2?.latencyMs.p99, base?.s2?.latencyMs.p99), res[k].s2?.gw.usPerResult]),
  );
  const w2 = res['resgraph-w2'];
  const targets = base && w2
    ? [
        targetRow('cached reads, --workers 2', 'resgraph/Resgate >= 1.5', ratio(w2.s6?.rps, base.s6?.rps), w2.s6?.rps / base.s6?.rps >= 1.5),
        targetRow('fan-out p99 at 1,000 subs, --workers 2', 'resgraph/Resgate <= 0.5', ratio(w2.s2?.latencyMs.p99, base.s2?.latencyMs.p99), w2.s2?.latencyMs.p99 / base.s2?.latencyMs.p99 <= 0.5),
      ]
    : [];
  log(`\nworkers: ${Math.round((Date.now() - t0) / 1000)} s${quick ? ' (--quick: phases shortened; not for numbers)' : ''}`);
  return { resgate: found.bin ?? null, results: res, targets };
}
