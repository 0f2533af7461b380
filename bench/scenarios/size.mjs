/**
 * The cost of one change in a big list: one client holds the collection
 * `bench.items` of N item models {id, name, price} (N = 100, 1,000, 10,000)
 * while the fixture service changes the price of one item (the middle one),
 * 200 single-property `change` events at 50/s, price = the event's sequence
 * number. For each N, one gateway at a time, each started afresh:
 *
 *   - resgraph, `subscription { items { id name price } }`: a full result per change;
 *   - resgraph, `query @live { items { id name price } }`: JSON Patch after the first result;
 *   - the relay (fixture/relay.mjs), the same `@live` query: the Node floor, the
 *     least a gateway on nats.js and ws does per event (no cache, no GraphQL);
 *   - Resgate, its WebSocket protocol, `subscribe.bench.items`: the models, then `change` events.
 *
 * Measured per (gateway, N): gateway CPU per event (over the event phase,
 * from the gateway's threads in /proc, divided by the events published),
 * WebSocket payload bytes per event the client received after its first
 * result, latency (publish → the client holds that price or a later one)
 * p50/p99, and the share of states the client never held (skipped). In
 * this process, JSON.stringify of the full result at each N (median of many
 * runs): the yardstick of the full-result subscription. The relay's cost is
 * the yardstick of `@live`: `@live` / relay is what resgraph adds over the
 * floor, relay / Resgate what the runtime and libraries cost against Go.
 *
 * `npm run bench:size`, and part 7 of `compare` (sizeRuns with compare's context).
 */
import { findResgate, startGateway } from '../lib/gateways.mjs';
import { phaseNoise, quietest } from '../lib/phase.mjs';
import { PhaseMeter, Processes, procStat, round, sleep, threadsCpuSec, waitQuiet } from '../lib/procs.mjs';
import { fmt, printTable, printWhere, targetRow } from '../lib/report.mjs';
import { natsChildArgs } from '../lib/nats.mjs';

export const defaultItemCounts = [100, 1000, 10000];
const RATE = 50;
/** `client`: what the list client speaks, when not the mode's key */
const MODES = [
  { key: 'subscription', gateway: 'resgraph', label: 'resgraph subscription' },
  { key: 'live', gateway: 'resgraph', label: 'resgraph @live' },
  { key: 'relay', gateway: 'relay', client: 'live', label: 'relay (Node floor: nats.js + ws)' },
  { key: 'resgate', gateway: 'resgate', label: 'Resgate' },
];
const labelOf = (key) => MODES.find((m) => m.key === key).label;

/** `npm run bench:size`: its own nats-server and fixture service, then sizeRuns. */
export async function size({ quick = false, sizes = defaultItemCounts, profile = false, log = console.log } = {}) {
  const found = findResgate();
  if (!found.bin) log(`size: Resgate comparison skipped: ${found.reason}. resgraph runs alone; no ratios to Resgate.`);
  const procs = new Processes('size');
  const profiles = [];
  let result;
  try {
    const nats = await procs.startNats();
    const service = (await procs.startNode('service', 'fixture RES service + event publisher', 'fixture/service.mjs', { args: [nats.url, ...natsChildArgs()] })).rpc;
    result = await sizeRuns({ procs, nats, service, log, quick, resgateBin: found.bin, profile, profiles, printed: false }, { sizes });
  } finally {
    await procs.stopAll();
  }
  printSize(result, log);
  return { ...result, skippedReason: found.reason ?? null, targets: sizeTargets(result), profiles };
}

/**
 * Every (N, gateway) run on the broker and fixture service of `ctx`
 * ({procs, nats, service, log, quick, resgateBin, profile, profiles,
 * printed}); the client process is started here and stopped at the end.
 */
export async function sizeRuns(ctx, { sizes = defaultItemCounts } = {}) {
  const { procs, service, log, quick } = ctx;
  const events = quick ? 50 : 200;
  const warmEvents = quick ? 25 : 50;
  const modes = MODES.filter((m) => m.gateway !== 'resgate' || ctx.resgateBin);
  const t0 = Date.now();
  const client = (await procs.startNode('list-client', 'one WebSocket client holding the list (graphql-ws or Resgate protocol)', 'clients/list-client.mjs')).rpc;
  const runs = [];
  const stringify = {};
  try {
    for (const n of sizes) {
      await service.call('setItems', { n });
      const watch = Math.floor(n / 2);
      for (const mode of modes) {
        let one;
        try {
          one = await runOne(ctx, client, mode, { n, watch, events, warmEvents });
        } catch (e) {
          // one failed run (a first result with errors, say) must not cost compare the parts before it
          const label = `${mode.label}, ${n.toLocaleString('en-US')} items`;
          runs.push({ label, mode: mode.key, gateway: mode.gateway, items: n, failed: String(e.message ?? e) });
          log(`  ${label}: FAILED: ${e.message ?? e}`);
          continue;
        }
        const { run, payloadText } = one;
        runs.push(run);
        log(
          `  ${run.label}: gateway ${fmt(run.gw.usPerEvent)} µs/event (stat ${fmt(run.gw.usPerEventStat)}), ${fmt(run.bytesPerEvent, 0)} B/event, latency p50 ${fmt(run.latencyMs.p50, 2)} p99 ${fmt(run.latencyMs.p99, 2)} ms, ` +
            `skipped ${run.skippedPct}%, ${run.results} results, err ${run.errors}${run.errorSample ? ` (${run.errorSample})` : ''}${run.holdsOk ? '' : `, holds ${JSON.stringify(run.holds)} (expected ${n} items, price ${run.lastPrice})`}; ` +
            `first result ${fmt(run.firstResult.bytes)} B after ${fmt(run.firstResult.ms, 0)} ms; noise: other ${run.otherCpuSec} CPU s, steal ${run.stealSec} s`,
        );
        if (payloadText) {
          stringify[n] = stringifyCost(payloadText);
          log(`  JSON.stringify of the full result, ${n.toLocaleString('en-US')} items (${fmt(stringify[n].bytes)} B): ${fmt(stringify[n].us)} µs CPU, ${fmt(stringify[n].wallUs)} µs wall (medians of ${stringify[n].samples} samples)`);
        }
      }
    }
  } finally {
    await procs.stop('list-client');
  }
  log(`size: ${Math.round((Date.now() - t0) / 1000)} s${quick ? ` (--quick: ${events} events per run; not for numbers)` : ''}`);
  const result = { sizes, rate: RATE, events, warmEvents, resgate: ctx.resgateBin ?? null, runs, stringify };
  return { ...result, floor: sizeFloor(result) };
}

/** One gateway, started for this run alone: the client subscribes, a warm-up, then the measured events. */
async function runOne(ctx, client, mode, { n, watch, events, warmEvents }) {
  const { procs, service, log } = ctx;
  // the first result asks for N models at once: on a busy machine the last answers can take longer than the default 3 s
  const gw = await startGateway(procs, mode.gateway, ctx.nats.url, { profile: ctx.profile && mode.gateway !== 'resgate', tag: `-size-${mode.key}-${n}`, resgateBin: ctx.resgateBin, requestTimeoutMs: 30_000 });
  try {
    if (!ctx.printed) {
      printWhere(procs);
      ctx.printed = true;
    }
    const firstResult = await client.call('open', { url: gw.wsUrl, mode: mode.client ?? mode.key, watch }, 130_000);
    // not measured: lets V8 (and Go) reach their steady state on this list first
    const warm = await service.call('publishPrices', { index: watch, rate: RATE, count: warmEvents }, 60_000);
    await client.call('waitFor', { price: warm.last, timeoutMs: 15_000 }, 30_000);
    const label = `${mode.label}, ${n.toLocaleString('en-US')} items`;
    // a noisy run is repeated once (quietest); each attempt waits at most 5 s for a quiet moment, to keep the nine runs within a few minutes
    const run = await quietest((quietMaxMs) => measure(ctx, client, gw, { label, mode, n, watch, events, firstResult, quietMaxMs: Math.min(quietMaxMs, 5000) }), { log });
    const payloadText = mode.key === 'subscription' ? await client.call('firstPayload') : undefined;
    return { run, payloadText };
  } finally {
    await client.call('close');
    await procs.stop('gateway');
    if (gw.profileFile) ctx.profiles.push(gw.profileFile);
  }
}

/** The measured events of one run, with the gateway's idle CPU just before them. */
async function measure(ctx, client, gw, { label, mode, n, watch, events, firstResult, quietMaxMs }) {
  const { procs, service } = ctx;
  const quiet = await waitQuiet(procs, { maxMs: quietMaxMs });
  // the gateway with nothing to do (timers, keep-alives): what a small per-event figure includes anyway
  const idleStart = [threadsCpuSec(gw.pid), performance.now()];
  await sleep(500);
  const idleUsPerSec = (1e6 * (threadsCpuSec(gw.pid) - idleStart[0])) / ((performance.now() - idleStart[1]) / 1000);

  await client.call('phase');
  const [served0, stats0] = await Promise.all([service.call('counts'), gw.rpc?.call('stats')]);
  const meter = new PhaseMeter(procs);
  const cpu0 = threadsCpuSec(gw.pid);
  const stat0 = procStat(gw.pid).cpu;
  const pub = await service.call('publishPrices', { index: watch, rate: RATE, count: events }, 120_000);
  const drain = await client.call('waitFor', { price: pub.last, timeoutMs: 10_000 }, 30_000);
  const threadsSec = threadsCpuSec(gw.pid) - cpu0;
  const statSec = procStat(gw.pid).cpu - stat0;
  const m = meter.stop();
  const [rep, served1, stats1] = await Promise.all([client.call('report', { first: pub.first, ts: pub.ts }), service.call('counts'), gw.rpc?.call('stats')]);

  // /proc/<pid>/stat counts 10 ms ticks; the threads' schedstat is exact but misses threads that ended during the phase
  const threadsEnded = statSec > threadsSec + 0.02;
  const cpuSec = threadsEnded ? statSec : threadsSec;
  const gwp = m.perProcess.gateway ?? {};
  return {
    label,
    mode: mode.key,
    gateway: mode.gateway,
    items: n,
    watched: String(watch),
    firstResult,
    published: pub.published,
    achievedRate: round(pub.achievedRate, 1),
    publisherMaxLagMs: round(pub.maxLagMs, 1),
    lastPrice: pub.last,
    /** result messages after the first (next frames, RES change events) */
    results: rep.results,
    /** prices the client held; skipped: published prices it never held (a later state reflected them) */
    states: rep.states,
    skipped: rep.skipped,
    skippedPct: round((100 * rep.skipped) / Math.max(1, pub.published), 1),
    unchanged: rep.unchanged,
    reordered: rep.reordered,
    errors: rep.errors,
    errorSample: rep.errorSample,
    drained: drain.done,
    drainMs: round(drain.ms, 0),
    /** events the client did not reflect when measured: their latency is a lower bound */
    censored: rep.censored,
    holds: rep.holds,
    holdsOk: rep.holds?.items === n && rep.holds?.price === pub.last,
    bytes: rep.bytes,
    bytesPerEvent: round(rep.bytes / Math.max(1, pub.published), 1),
    keepAlive: { messages: rep.other, bytes: rep.otherBytes },
    /** requests the service answered during the phase: none expected (every item is cached) */
    serviceRequests: { get: served1.get - served0.get, access: served1.access - served0.access },
    /** resgraph: operation runs during the phase (one per result, unless coalesced) */
    executions: stats1?.executions !== undefined ? stats1.executions - stats0.executions : undefined,
    latencyMs: rnd(rep.latency),
    gw: {
      usPerEvent: round((1e6 * cpuSec) / Math.max(1, pub.published), 1),
      /** from /proc/<pid>/stat (utime + stime, 10 ms ticks): the same time, coarser */
      usPerEventStat: round((1e6 * statSec) / Math.max(1, pub.published), 1),
      cpuSec: round(cpuSec, 4),
      threadsCpuSec: round(threadsSec, 4),
      statCpuSec: round(statSec, 2),
      cpuSource: threadsEnded ? 'stat (threads ended during the phase)' : 'threads',
      cpuPct: gwp.cpuPct,
      peakRssMB: gwp.peakRssMB,
      idleUsPerSec: round(idleUsPerSec, 0),
    },
    ...phaseNoise(m, quiet),
  };
}

/**
 * JSON.stringify of a full result (the payload the gateway sent), in this
 * process, after a warm-up: CPU time (process.cpuUsage, every thread, like
 * the gateway's figure) and wall time per call, medians over samples of at
 * least ~2 ms each (a small result is stringified several times per sample).
 */
function stringifyCost(text) {
  const value = JSON.parse(text);
  const t = performance.now();
  for (let i = 0; i < 20; i++) JSON.stringify(value);
  const batch = Math.max(1, Math.ceil(2 / ((performance.now() - t) / 20)));
  const cpu = [];
  const wall = [];
  const t0 = performance.now();
  while (cpu.length < 30 || (cpu.length < 500 && performance.now() - t0 < 1000)) {
    const c = process.cpuUsage();
    const w = performance.now();
    for (let i = 0; i < batch; i++) JSON.stringify(value);
    wall.push(((performance.now() - w) * 1000) / batch);
    const d = process.cpuUsage(c);
    cpu.push((d.user + d.system) / batch);
  }
  const median = (list) => round(list.sort((a, b) => a - b)[Math.floor(list.length / 2)], 1);
  return { us: median(cpu), wallUs: median(wall), samples: cpu.length, perSample: batch, bytes: Buffer.byteLength(text) };
}

// ---- output ----------------------------------------------------------------------------

const find = (result, key, n) => result.runs.find((r) => r.mode === key && r.items === n && !r.failed);
const ratio = (a, b) => (a === null || a === undefined || !b ? null : round(a / b, 2));

export function printSize(result, log = console.log) {
  const small = Math.min(...result.sizes);
  printTable(
    `Size: one client holds N items; one item changes, ${result.events} events at ${result.rate}/s; gateway CPU per event (its threads in /proc over the events), bytes per event after the first result, latency = publish → the client holds that state or a later one`,
    ['items', 'gateway', 'results', 'skipped', 'gw µs/event', 'stat µs/event', 'vs Resgate', 'vs relay', `vs ${small} items`, 'vs stringify', 'B/event', 'first result B', 'p50 ms', 'p99 ms', 'max ms', 'gw CPU %', 'gw idle µs/s', 'other/steal s'],
    result.runs.map((r) => r.failed ? [r.items, labelOf(r.mode), `FAILED: ${r.failed.slice(0, 120)}`] : [
      r.items,
      labelOf(r.mode),
      r.results,
      `${r.skippedPct}%`,
      r.gw.usPerEvent,
      r.gw.usPerEventStat,
      r.mode === 'resgate' ? '' : fmt(ratio(r.gw.usPerEvent, find(result, 'resgate', r.items)?.gw.usPerEvent), 2),
      r.gateway === 'resgraph' ? fmt(ratio(r.gw.usPerEvent, find(result, 'relay', r.items)?.gw.usPerEvent), 2) : '',
      r.items === small ? '' : fmt(ratio(r.gw.usPerEvent, find(result, r.mode, small)?.gw.usPerEvent), 2),
      fmt(ratio(r.gw.usPerEvent, result.stringify[r.items]?.us), 2),
      r.bytesPerEvent,
      r.firstResult.bytes,
      `${r.censored ? '≥' : ''}${fmt(r.latencyMs.p50, 2)}`,
      `${r.censored ? '≥' : ''}${fmt(r.latencyMs.p99, 2)}`,
      `${r.censored ? '≥' : ''}${fmt(r.latencyMs.max, 2)}`,
      r.gw.cpuPct,
      r.gw.idleUsPerSec,
      `${r.otherCpuSec}/${r.stealSec}`,
    ]),
  );
  const bad = result.runs.filter((r) => !r.failed && (r.errors || !r.holdsOk || r.reordered));
  for (const r of bad) log(`  warning: ${r.label}: ${r.errors} errors${r.errorSample ? ` (${r.errorSample})` : ''}, ${r.reordered} reordered, holds ${JSON.stringify(r.holds)} (expected ${r.items} items, price ${r.lastPrice})`);
  printTable(
    'The floor: gateway CPU µs per event of resgraph @live, the relay (the least a Node gateway on nats.js + ws does: NATS message in, JSON.parse, one JSON Patch frame out) and Resgate; relay / Resgate is what Node and the two libraries cost against Go, @live / relay what resgraph adds over them',
    ['items', '@live µs', 'relay µs', 'Resgate µs', '@live / Resgate', 'relay / Resgate', '@live / relay', '@live − relay µs'],
    result.floor.map((f) => [f.items, f.liveUs, f.relayUs, f.resgateUs, fmt(f.liveVsResgate, 2), fmt(f.relayVsResgate, 2), fmt(f.liveVsRelay, 2), f.liveMinusRelayUs]),
  );
  printTable(
    'JSON.stringify of the full result { data: { items } } in the bench process, per call (medians; CPU is the subscription target\'s yardstick)',
    ['items', 'result B', 'CPU µs', 'wall µs', 'samples', 'calls per sample'],
    result.sizes.filter((n) => result.stringify[n]).map((n) => [n, result.stringify[n].bytes, result.stringify[n].us, result.stringify[n].wallUs, result.stringify[n].samples, result.stringify[n].perSample]),
  );
}

/** Per N: `@live`, the relay and Resgate, CPU µs per event, and their ratios (the relay is the Node floor; see fixture/relay.mjs). */
function sizeFloor(result) {
  return result.sizes.map((n) => {
    const us = (key) => find(result, key, n)?.gw.usPerEvent ?? null;
    const [live, relay, resgate] = [us('live'), us('relay'), us('resgate')];
    return {
      items: n,
      liveUs: live,
      relayUs: relay,
      resgateUs: resgate,
      liveVsResgate: ratio(live, resgate),
      relayVsResgate: ratio(relay, resgate),
      liveVsRelay: ratio(live, relay),
      liveMinusRelayUs: live === null || relay === null ? null : round(live - relay, 1),
    };
  });
}

/** The three targets of the largest N (10,000 by default), from one run. */
export function sizeTargets(result) {
  const big = Math.max(...result.sizes);
  const small = Math.min(...result.sizes);
  const items = (n) => `${n.toLocaleString('en-US')} items`;
  const live = find(result, 'live', big);
  const liveSmall = find(result, 'live', small);
  const sub = find(result, 'subscription', big);
  const resgate = find(result, 'resgate', big);
  const str = result.stringify[big];
  const flaw = (...runs) => (runs.some((r) => r.errors || !r.holdsOk) ? '; a run had errors or ended on the wrong state' : '');
  /** a target of runs a and b: n/a when b's gateway did not run (`skip`), not met when a run failed */
  const target = (name, wanted, a, b, limit, detail, skip) => {
    if (skip) return targetRow(name, wanted, `n/a (${skip})`, null);
    if (!a || !b) return targetRow(name, wanted, 'n/a (a run failed; see above)', false);
    const r = ratio(a.gw?.usPerEvent ?? a.us, b.gw?.usPerEvent ?? b.us);
    return targetRow(name, wanted, `${fmt(r, 2)} (${detail(a, b)}${flaw(...[a, b].filter((x) => x.gw))})`, r !== null && r <= limit && !flaw(...[a, b].filter((x) => x.gw)));
  };
  const us = (a, b) => `${fmt(a.gw?.usPerEvent ?? a.us)} vs ${fmt(b.gw?.usPerEvent ?? b.us)} µs`;
  return [
    target(`@live CPU per event, ${items(big)}, vs Resgate`, 'resgraph/Resgate <= 1.0', live, resgate, 1, us, result.resgate ? undefined : 'Resgate skipped'),
    target(`@live CPU per event, ${big.toLocaleString('en-US')} vs ${items(small)}`, '<= 2.0×', live, liveSmall, 2, us, big === small ? 'one size only' : undefined),
    target(`subscription (full results) CPU per event, ${items(big)}, vs JSON.stringify of the result`, '<= 3.0×', sub, str, 3, (a, b) => `${us(a, b)}; ${a.skippedPct}% of states skipped`),
  ];
}

/** Rows of compare's summary table (part 7): resgraph's two modes against Resgate. */
export function sizeCompareRows(result, withResgate) {
  const big = Math.max(...result.sizes);
  const rows = [];
  const row = (what, x, y) => rows.push([7, what, x ?? '-', withResgate ? (y ?? '-') : 'skipped', fmt(ratio(x, y), 2)]);
  for (const n of result.sizes) row(`@live gateway CPU µs per event (${n.toLocaleString('en-US')} items, ${result.rate} ev/s)`, find(result, 'live', n)?.gw.usPerEvent, find(result, 'resgate', n)?.gw.usPerEvent);
  const at = `${big.toLocaleString('en-US')} items`;
  row(`subscription gateway CPU µs per event (${at})`, find(result, 'subscription', big)?.gw.usPerEvent, find(result, 'resgate', big)?.gw.usPerEvent);
  row(`@live bytes per event (${at})`, find(result, 'live', big)?.bytesPerEvent, find(result, 'resgate', big)?.bytesPerEvent);
  row(`@live latency p99 ms (${at})`, find(result, 'live', big)?.latencyMs.p99, find(result, 'resgate', big)?.latencyMs.p99);
  return rows;
}

function rnd(o) {
  const out = {};
  for (const [k, v] of Object.entries(o ?? {})) out[k] = typeof v === 'number' ? round(v, 2) : v;
  return out;
}
