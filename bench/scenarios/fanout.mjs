/**
 * Scenario 1, fan-out latency: N graphql-ws clients subscribed to one model;
 * the fixture service publishes `change` events at a fixed rate; each client
 * measures event-to-client latency and checks order by `seq`. A plain NATS
 * subscriber receives the same events: the floor the gateway adds to.
 */
import { runPhase, liveHeader, liveRow } from '../lib/phase.mjs';
import { printTable, printWhere, targetRow } from '../lib/report.mjs';
import { startStack } from '../lib/stack.mjs';

export const defaultSizes = [100, 1000, 10000];

function plan(n, quick) {
  const s = (sec) => (quick ? Math.max(2, Math.round(sec / 5)) : sec) * 1000;
  if (n >= 10000) {
    // shorter: 10,000 results per event is a lot of work for two cores
    return [
      // one change at a time, a second apart: how long one change takes to reach every subscriber
      { label: `${n}: single events`, rate: 1, count: quick ? 4 : 10 },
      { label: `${n} @ 100/s`, rate: 100, durationMs: s(5) },
      { label: `${n} @ 1000/s`, rate: 1000, durationMs: s(5) },
    ];
  }
  return [
    { label: `${n} @ 100/s`, rate: 100, durationMs: s(10) },
    { label: `${n} @ 1000/s`, rate: 1000, durationMs: s(10) },
  ];
}

export async function fanout({ sizes = defaultSizes, quick = false, profile = false, clientProcs = 1, log = console.log } = {}) {
  const phases = [];
  const setups = [];
  const profiles = [];
  for (const n of sizes) {
    const stack = await startStack(`fanout-${n}`, { clients: n, clientProcs, floor: true, profile });
    try {
      if (n === sizes[0]) printWhere(stack.procs);
      const model = `fan${n}`;
      const conn = await stack.clients.connect(stack.gatewayUrl, n);
      const sub = await stack.clients.subscribe(model, n);
      setups.push({ subscribers: n, connectMs: Math.round(conn.ms), connectFailed: conn.failed, subscribeMs: Math.round(sub.ms), firstResults: sub.firstResults });
      log(`fanout ${n}: ${conn.connected} connected in ${Math.round(conn.ms)} ms (${conn.failed} failed${conn.failSample ? `: ${conn.failSample}` : ''}), ${sub.firstResults} subscribed in ${Math.round(sub.ms)} ms`);
      if (conn.failed > 0 || !sub.complete) log(`  warning: not every client is connected and subscribed`);
      await runPhase(stack, { ids: [model], rate: n >= 10000 ? 10 : 200, durationMs: quick ? 1000 : 2000, warmup: true });
      for (const p of plan(n, quick)) {
        const r = await runPhase(stack, { ...p, ids: [model] });
        phases.push(r);
        log(`  ${p.label}: ${r.deliveredPerSec} results/s, p99 ${r.latencyMs.p99} ms, lost ${r.lostClients}, reordered ${r.reordered}, gateway ${r.gateway.cpuPct}% CPU; noise: other processes ${r.otherCpuSec} CPU s${r.otherTop ? ` (${r.otherTop})` : ''}, hypervisor steal ${r.stealSec} s, gateway waiting for CPU ${r.gateway.waitPct}%`);
      }
    } finally {
      await stack.procs.stopAll();
      if (stack.profileFile) profiles.push(stack.profileFile);
    }
  }
  printTable('Fan-out: N clients on one model (latency = event publish → client receive)', liveHeader, phases.map(liveRow));
  return { phases, setups, targets: targets(phases), profiles };
}

function targets(phases) {
  const out = [];
  const k1 = phases.find((p) => p.subscribers === 1000 && p.rate === 1000);
  if (k1) {
    const ok = k1.latencyMs.p99 < 50 && k1.lostClients === 0 && k1.reordered === 0;
    out.push(
      targetRow(
        'fan-out 1,000 subs @ 1,000 ev/s',
        'p99 < 50 ms, 0 lost, 0 reordered',
        `p99 ${k1.latencyMs.p99} ms, ${k1.lostClients} lost, ${k1.reordered} reordered (${k1.coalescedPct}% coalesced)`,
        ok,
      ),
    );
  }
  const k10 = phases.find((p) => p.subscribers === 10000 && p.rate <= 10);
  if (k10) {
    out.push(
      targetRow(
        '10,000 subs on one resource, one change',
        'p99 < 100 ms',
        `p99 ${k10.latencyMs.p99} ms (max ${k10.latencyMs.max}, ${k10.lostClients} lost)`,
        k10.latencyMs.p99 < 100 && k10.lostClients === 0,
      ),
    );
  }
  return out;
}
