/**
 * Scenario 4, memory: the gateway's RSS (from /proc) and V8 heap after a
 * forced GC (--expose-gc, through the launcher's IPC hook) when idle, with
 * 10,000 idle graphql-ws connections (connection_init done), and with one
 * live subscription on each (all on one resource that is already cached).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PhaseMeter, procStat, resultsDir, round, sleep } from '../lib/procs.mjs';
import { printTable, printWhere, targetRow } from '../lib/report.mjs';
import { startStack, subscriptionQuery } from '../lib/stack.mjs';

export async function memory({ n = 10000, clientProcs = 1, heapSnapshots = false, quick = false, log = console.log } = {}) {
  const stack = await startStack('memory', { clients: n, clientProcs });
  const steps = [];
  try {
    printWhere(stack.procs);
    const gwPid = stack.procs.get('gateway').pid;
    const snapshots = [];
    const snapshot = async (name) => {
      if (!heapSnapshots) return;
      mkdirSync(join(resultsDir, 'heap'), { recursive: true });
      const file = await stack.gateway.call('heapSnapshot', { file: join(resultsDir, 'heap', `memory-${name}.heapsnapshot`) }, 300_000);
      snapshots.push(file);
      log(`  heap snapshot: ${file}`);
    };
    const measure = async (label) => {
      await sleep(1000);
      const { gc, mem } = await stack.gateway.call('gc');
      await sleep(500);
      const { rss } = procStat(gwPid);
      const stats = await stack.gateway.call('stats');
      const step = { label, rss, heapUsed: mem.heapUsed, external: mem.external, arrayBuffers: mem.arrayBuffers, gc, connections: stats.connections, subscribers: stats.live.subscribers };
      steps.push(step);
      log(`  ${label}: RSS ${round(rss / 1048576, 1)} MB, heap ${round(mem.heapUsed / 1048576, 1)} MB, ${stats.connections} connections, ${stats.live.subscribers} subscribers`);
      return step;
    };
    // warm-up (not measured): code paths that are compiled or allocated on first use
    const warmN = Math.min(200, n);
    await stack.clients.connect(stack.gatewayUrl, warmN);
    await stack.clients.subscribe('warm', warmN);
    await stack.clients.all('close', {});
    await sleep(500);

    const idle = await measure('idle (after warm-up)');
    await snapshot('0-idle');
    const conn = await stack.clients.connect(stack.gatewayUrl, n);
    if (conn.failed) log(`  warning: ${conn.failed} connections failed (${conn.failSample})`);
    const conns = await measure(`${conn.connected} idle connections`);
    // what idle connections cost in CPU (graphql-ws pings every socket every 12 s)
    const idleMeter = new PhaseMeter(stack.procs);
    await sleep(quick ? 3000 : 12_500);
    const idleCpu = idleMeter.stop().perProcess.gateway;
    log(`  idle CPU with ${conn.connected} connections: ${idleCpu.cpuPct}% of a core`);
    await snapshot('1-connections');
    // one subscriber first, so the resource and its live query exist before the others join
    await stack.clients.list[0].call('subscribe', { query: subscriptionQuery, ids: 'mem', from: 0, to: 1 });
    const one = await measure('+ 1 subscription (resource cached)');
    await snapshot('2-one-subscription');
    const rest = await subscribeRest(stack, n);
    if (!rest.complete) log(`  warning: only ${rest.firstResults} subscriptions got their first result`);
    const subs = await measure(`+ ${rest.subscribed} more subscriptions`);
    await snapshot('3-subscriptions');

    if (heapSnapshots) log('  note: writing heap snapshots grows RSS; with --heap-snapshots only the heap numbers are meaningful');
    const perConn = (conns.rss - idle.rss) / conn.connected;
    const perConnHeap = (conns.heapUsed + conns.external - idle.heapUsed - idle.external) / conn.connected;
    const perSub = (subs.rss - one.rss) / rest.subscribed;
    const perSubHeap = (subs.heapUsed + subs.external - one.heapUsed - one.external) / rest.subscribed;
    const result = { snapshots, idleCpuWithConnections: idleCpu, steps, perConnectionBytes: Math.round(perConn), perConnectionHeapBytes: Math.round(perConnHeap), perSubscriptionBytes: Math.round(perSub), perSubscriptionHeapBytes: Math.round(perSubHeap) };
    printTable(
      `Memory: gateway after GC (RSS from /proc/${gwPid}/status; heap = V8 heapUsed + external)`,
      ['state', 'RSS MB', 'heap MB', 'connections', 'subscribers'],
      steps.map((s) => [s.label, round(s.rss / 1048576, 1), round((s.heapUsed + s.external) / 1048576, 1), s.connections, s.subscribers]),
    );
    printTable('Memory per connection / subscription', ['what', 'RSS bytes', 'heap bytes'], [
      ['per idle WebSocket connection', Math.round(perConn), Math.round(perConnHeap)],
      ['per extra subscription (cached resource)', Math.round(perSub), Math.round(perSubHeap)],
    ]);
    console.log(`\nGateway CPU with ${conn.connected} idle connections: ${idleCpu.cpuPct}% of a core (${idleCpu.cpuSec} s over ${quick ? 3 : 12.5} s; graphql-ws pings each socket every 12 s)`);
    result.targets = [
      targetRow('memory per idle WebSocket connection', '<= 20 KB', `${round(perConn / 1024, 1)} KB RSS (${round(perConnHeap / 1024, 1)} KB heap)`, perConn <= 20 * 1024),
      targetRow('memory per extra subscription', '<= 4 KB', `${round(perSub / 1024, 1)} KB RSS (${round(perSubHeap / 1024, 1)} KB heap)`, perSub <= 4 * 1024),
    ];
    return result;
  } finally {
    await stack.procs.stopAll();
  }
}

/** Subscribes every client but the very first (already subscribed) to the same model. */
async function subscribeRest(stack, n) {
  const counts = stack.clients.split(n);
  const r = await Promise.all(
    stack.clients.list.map((c, i) => c.call('subscribe', { query: subscriptionQuery, ids: 'mem', from: i === 0 ? 1 : 0, to: counts[i] }, 600_000)),
  );
  return { subscribed: r.reduce((a, x) => a + x.subscribed, 0), firstResults: r.reduce((a, x) => a + x.firstResults, 0), complete: r.every((x) => x.complete) };
}
