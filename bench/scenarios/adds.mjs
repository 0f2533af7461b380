/**
 * The cost of an item added to a big list: one client holds the collection
 * `bench.items` of N item models (N = 100 and 10,000) while the fixture
 * service appends new items, 100 `add` events at 20/s, each a reference to
 * a model the gateway has not seen (so each costs it one `get`). The new
 * item's `price` is above every price before it, and the client follows the
 * last item of its list. For each N, one gateway at a time, each started
 * afresh on a fresh list:
 *
 *   - resgraph, `subscription { items { id name price } }`: a full result per add;
 *   - resgraph, `query @live { items { id name price } }`: one JSON Patch `add` per add;
 *   - Resgate, its WebSocket protocol: the `add` event with the new model.
 *
 * Measured per (gateway, N): gateway CPU per add (its threads in /proc over
 * the events), WebSocket bytes per add, latency (publish → the client holds
 * the new item) p50/p99, resgraph's operation runs during the phase (0 when
 * every add was applied to the last result) and the `get`s the service
 * answered (one per add expected). `npm run bench:adds`.
 */
import { findResgate, startGateway } from '../lib/gateways.mjs';
import { phaseNoise, quietest } from '../lib/phase.mjs';
import { PhaseMeter, Processes, round, threadsCpuSec, waitQuiet } from '../lib/procs.mjs';
import { fmt, printTable, printWhere } from '../lib/report.mjs';
import { natsChildArgs } from '../lib/nats.mjs';

const SIZES = [100, 10000];
const RATE = 20;
const MODES = [
  { key: 'subscription', gateway: 'resgraph', label: 'resgraph subscription' },
  { key: 'live', gateway: 'resgraph', label: 'resgraph @live' },
  { key: 'resgate', gateway: 'resgate', label: 'Resgate' },
];

export async function adds({ quick = false, sizes = SIZES, profile = false, log = console.log } = {}) {
  const found = findResgate();
  if (!found.bin) log(`adds: Resgate comparison skipped: ${found.reason}.`);
  const events = quick ? 25 : 100;
  const warmEvents = quick ? 10 : 30;
  const procs = new Processes('adds');
  const runs = [];
  const profiles = [];
  try {
    const nats = await procs.startNats();
    const service = (await procs.startNode('service', 'fixture RES service + event publisher', 'fixture/service.mjs', { args: [nats.url, ...natsChildArgs()] })).rpc;
    const client = (await procs.startNode('list-client', 'one WebSocket client holding the list (graphql-ws or Resgate protocol)', 'clients/list-client.mjs')).rpc;
    let printed = false;
    for (const n of sizes) {
      for (const mode of MODES.filter((m) => m.gateway !== 'resgate' || found.bin)) {
        // a fresh list for each gateway: the adds of the run before are gone
        await service.call('setItems', { n });
        const gw = await startGateway(procs, mode.gateway, nats.url, { profile: profile && mode.gateway !== 'resgate', tag: `-adds-${mode.key}-${n}`, resgateBin: found.bin, requestTimeoutMs: 30_000 });
        try {
          if (!printed) printWhere(procs);
          printed = true;
          await client.call('open', { url: gw.wsUrl, mode: mode.key, watch: 0, followLast: true }, 130_000);
          const warm = await service.call('publishAdds', { rate: RATE, count: warmEvents }, 60_000);
          await client.call('waitFor', { price: warm.last, timeoutMs: 15_000 }, 30_000);
          const label = `${mode.label}, ${n.toLocaleString('en-US')} items`;
          const run = await quietest((quietMaxMs) => measure(procs, service, client, gw, { label, mode, n, events, quietMaxMs: Math.min(quietMaxMs, 5000) }), { log });
          runs.push(run);
          log(`  ${label}: ${fmt(run.usPerAdd)} µs/add, ${fmt(run.bytesPerAdd, 0)} B/add, p50 ${fmt(run.latencyMs.p50, 2)} p99 ${fmt(run.latencyMs.p99, 2)} ms, runs ${run.executions ?? '-'}, gets ${run.gets}, holds ${JSON.stringify(run.holds)}${run.errors ? `, ${run.errors} errors (${run.errorSample})` : ''}`);
        } finally {
          await client.call('close');
          await procs.stop('gateway');
          if (gw.profileFile) profiles.push(gw.profileFile);
        }
      }
    }
  } finally {
    await procs.stopAll();
  }
  const result = { sizes, rate: RATE, events, resgate: found.bin ?? null, runs };
  printAdds(result);
  return { ...result, skippedReason: found.reason ?? null, profiles };
}

async function measure(procs, service, client, gw, { label, mode, n, events, quietMaxMs }) {
  const quiet = await waitQuiet(procs, { maxMs: quietMaxMs });
  await client.call('phase');
  const [served0, stats0] = await Promise.all([service.call('counts'), gw.rpc?.call('stats')]);
  const meter = new PhaseMeter(procs);
  const cpu0 = threadsCpuSec(gw.pid);
  const pub = await service.call('publishAdds', { rate: RATE, count: events }, 120_000);
  await client.call('waitFor', { price: pub.last, timeoutMs: 15_000 }, 30_000);
  const cpuSec = threadsCpuSec(gw.pid) - cpu0;
  const m = meter.stop();
  const [rep, served1, stats1] = await Promise.all([client.call('report', { first: pub.first, ts: pub.ts }), service.call('counts'), gw.rpc?.call('stats')]);
  return {
    label,
    mode: mode.key,
    items: n,
    published: pub.published,
    usPerAdd: round((1e6 * cpuSec) / Math.max(1, pub.published), 1),
    bytesPerAdd: round(rep.bytes / Math.max(1, pub.published), 1),
    latencyMs: Object.fromEntries(Object.entries(rep.latency).map(([k, v]) => [k, typeof v === 'number' ? round(v, 2) : v])),
    executions: stats1 ? stats1.executions - stats0.executions : undefined,
    gets: served1.get - served0.get,
    holds: rep.holds,
    // the list the service holds now (a noisy phase run again appended twice)
    holdsOk: rep.holds?.items === served1.items && rep.holds?.price === pub.last,
    errors: rep.errors,
    errorSample: rep.errorSample,
    ...phaseNoise(m, quiet),
  };
}

function printAdds(result) {
  printTable(
    `Adds: one client holds N items; ${result.events} items appended at ${result.rate}/s, each a model the gateway gets; gateway CPU per add (its threads in /proc), bytes per add, latency = publish → the client holds the new item`,
    ['run',  'µs/add', 'vs Resgate', 'B/add', 'p50 ms', 'p99 ms', 'operation runs', 'gets', 'ends right', 'other/steal s'],
    result.runs.map((r) => {
      const base = result.runs.find((x) => x.mode === 'resgate' && x.items === r.items);
      return [
        r.label,
        r.usPerAdd,
        r.mode === 'resgate' || !base ? '' : fmt(r.usPerAdd / base.usPerAdd, 2),
        r.bytesPerAdd,
        fmt(r.latencyMs.p50, 2),
        fmt(r.latencyMs.p99, 2),
        r.executions ?? '-',
        r.gets,
        r.holdsOk && !r.errors ? 'yes' : 'NO',
        `${r.otherCpuSec}/${r.stealSec}`,
      ];
    }),
  );
}
