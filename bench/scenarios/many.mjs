/**
 * Scenario 2, many resources: 10,000 clients, each subscribed to its own
 * model; events are spread round-robin over all the models. Every event is
 * one re-execution in the gateway for one subscriber.
 */
import { runPhase, liveHeader, liveRow } from '../lib/phase.mjs';
import { printTable, printWhere } from '../lib/report.mjs';
import { startStack } from '../lib/stack.mjs';

export async function many({ n = 10000, quick = false, clientProcs = 1, profile = false, log = console.log } = {}) {
  const s = (sec) => (quick ? Math.max(2, Math.round(sec / 5)) : sec) * 1000;
  const stack = await startStack('many', { clients: n, clientProcs, floor: true, profile });
  const phases = [];
  let setup;
  try {
    printWhere(stack.procs);
    const ids = Array.from({ length: n }, (_, i) => `m${i}`);
    const conn = await stack.clients.connect(stack.gatewayUrl, n);
    const sub = await stack.clients.subscribe(ids, n);
    const gw = await stack.gateway.call('stats');
    setup = { subscribers: n, connectMs: Math.round(conn.ms), connectFailed: conn.failed, subscribeMs: Math.round(sub.ms), firstResults: sub.firstResults, gateway: gw };
    log(`many: ${conn.connected} connected in ${Math.round(conn.ms)} ms, ${sub.firstResults} subscribed (own model each) in ${Math.round(sub.ms)} ms; gateway holds ${gw.cache.entries} entries, ${gw.live.liveQueries} live queries`);
    await runPhase(stack, { ids, rate: 1000, durationMs: quick ? 1000 : 2000, warmup: true });
    for (const p of [
      { label: `${n} models @ 1000/s`, rate: 1000, durationMs: s(10) },
      { label: `${n} models @ 5000/s`, rate: 5000, durationMs: s(6) },
    ]) {
      const r = await runPhase(stack, { ...p, ids });
      phases.push(r);
      log(`  ${p.label}: ${r.deliveredPerSec} results/s, p99 ${r.latencyMs.p99} ms, lost ${r.lostClients}, gateway ${r.gateway.cpuPct}% CPU; noise: other processes ${r.otherCpuSec} CPU s${r.otherTop ? ` (${r.otherTop})` : ''}, hypervisor steal ${r.stealSec} s, gateway waiting for CPU ${r.gateway.waitPct}%`);
    }
  } finally {
    await stack.procs.stopAll();
  }
  printTable('Many resources: each client on its own model, events round-robin over all models', liveHeader, phases.map(liveRow));
  return { phases, setup, targets: [], profiles: stack.profileFile ? [stack.profileFile] : [] };
}
