/**
 * resgraph vs Resgate, in one run: the same nats-server, the same fixture
 * service (and its state), the same floor subscriber and the same client
 * load, against one gateway and then the other (never both at once: they
 * would share the two cores). resgraph's clients speak graphql-transport-ws,
 * Resgate's its own WebSocket protocol (version, subscribe.<rid>, change
 * events); both through the raw-socket transport of clients/ws-clients.mjs,
 * so the load generator costs the same per message read.
 *
 *   1. 10 subscribers, 100 events/s: latency added over a plain NATS subscriber;
 *      also on the relay (fixture/relay.mjs, the Node floor: the least a
 *      gateway on nats.js and ws does per event), part 1 only. Two rounds,
 *      the second in the reverse order (see part1Rounds).
 *   2. 1,000 subscribers on one model, 100 events/s: latency, loss, order, CPU.
 *   3. 1,000 subscribers, rising rate: the highest rate kept up with; staleness per rate.
 *   4. 10,000 subscribers, one change every 2 s: time until the last client has it.
 *   5. memory: idle, 10,000 connections, 10,000 subscribed clients.
 *   6. cached read over HTTP, 50 connections: POST /graphql vs GET /api/<rid>.
 *   7. one client holding a list of 100, 1,000, 10,000 items while one item
 *      changes: CPU and bytes per event, subscription and @live (size.mjs).
 *
 * Part 1 starts a gateway per round; groups of scenarios share a gateway
 * process (2–3: 1,000 clients; 4–5: 10,000 clients; 6: HTTP); each group
 * runs on resgraph, on resgraph again
 * with Resgate's clients (its WebSocket protocol on resgraph's RES path, GET
 * /api: the same clients on both gateways, a second table), then on Resgate;
 * part 7 starts a gateway per list size and client kind (not resgraph with
 * Resgate's clients).
 * Without a Resgate binary, resgraph runs alone and no ratios are printed.
 */
import { Hist } from '../lib/hist.mjs';
import { findResgate, startGateway, workersOf } from '../lib/gateways.mjs';
import { PhaseMeter, Processes, procStat, round, sleep, waitQuiet } from '../lib/procs.mjs';
import { fmt, printTable, printWhere, targetRow } from '../lib/report.mjs';
import { ClientPool, subscriptionQuery } from '../lib/stack.mjs';
import { phaseNoise, quietest } from '../lib/phase.mjs';
import { printSize, sizeCompareRows, sizeRuns, sizeTargets } from './size.mjs';
import { natsChildArgs } from '../lib/nats.mjs';

export const compareScenarios = [1, 2, 3, 4, 5, 6, 7];
const RATES = [100, 150, 200, 300, 1000];
/** How a gateway kind is named in the output. */
export const gatewayName = (kind) =>
  kind === 'resgate' ? 'Resgate' : kind === 'resgraph-res' ? 'resgraph (RES clients)' : kind === 'relay' ? 'relay (Node floor)' : workersOf(kind) ? `resgraph --workers ${workersOf(kind)}` : kind;
/** Whether a gateway kind's clients speak Resgate's protocols (its WebSocket protocol, GET /api) rather than GraphQL. */
const speaksRes = (kind) => kind === 'resgate' || kind === 'resgraph-res';

export async function compare({ quick = false, clientProcs = 1, profile = false, only, rates = RATES, log = console.log } = {}) {
  const which = new Set(only?.length ? only : compareScenarios);
  const found = findResgate();
  // resgraph twice: for GraphQL clients, and for the clients written for Resgate (its WebSocket protocol and /api)
  const kinds = found.bin ? ['resgraph', 'resgraph-res', 'resgate'] : ['resgraph', 'resgraph-res'];
  if (!found.bin) log(`compare: Resgate comparison skipped: ${found.reason}. resgraph runs alone; no ratios.`);
  else log(`compare: Resgate at ${found.bin}; each group of scenarios runs on resgraph, then on Resgate (one gateway at a time)`);
  const sec = (s) => (quick ? Math.max(2, Math.round(s / 4)) : s) * 1000;
  const procs = new Processes('compare');
  const res = { resgraph: {}, 'resgraph-res': {}, relay: {}, resgate: {} };
  // the relay (the Node floor) in part 1 only: parts 2–5 measure a gateway's fan-out and memory, which the relay does not have
  const liveKinds = which.has(1) ? [...kinds.filter((k) => k !== 'resgate'), 'relay', ...kinds.filter((k) => k === 'resgate')] : kinds;
  const profiles = [];
  let size;
  const t0 = Date.now();
  try {
    const nats = await procs.startNats();
    const service = (await procs.startNode('service', 'fixture RES service + event publisher', 'fixture/service.mjs', { args: [nats.url, ...natsChildArgs()] })).rpc;
    const floor = (await procs.startNode('floor', 'plain NATS subscriber (latency floor)', 'clients/floor.mjs', { args: [nats.url, ...natsChildArgs()] })).rpc;
    const ctx = { procs, nats, service, floor, log, quick, sec, clientProcs, resgateBin: found.bin, profile, profiles, rates, printed: false };
    if (which.has(1)) for (const [k, s1] of Object.entries(await part1Rounds(ctx, liveKinds))) res[k].s1 = s1;
    const fanout = new Set([2, 3].filter((i) => which.has(i)));
    if (fanout.size) for (const k of kinds) Object.assign(res[k], await groupLive(ctx, k, fanout));
    if ([4, 5].some((i) => which.has(i))) for (const k of kinds) Object.assign(res[k], await groupTenK(ctx, k, which));
    if (which.has(6)) for (const k of kinds) Object.assign(res[k], await groupHttp(ctx, k));
    if (which.has(7)) size = await sizeRuns(ctx);
  } finally {
    await procs.stopAll();
  }
  const withResgate = kinds.includes('resgate');
  printDetails(res, liveKinds);
  if (size) printSize(size, log);
  const { rows, targets } = summarize(res, withResgate, found.reason);
  if (size) {
    rows.push(...sizeCompareRows(size, withResgate));
    targets.push(...sizeTargets(size));
  }
  printTable(
    `resgraph vs Resgate: same nats-server, fixture service, floor and client load; one gateway at a time${withResgate ? '' : ` (Resgate skipped: ${found.reason})`}`,
    ['#', 'measure', 'resgraph', 'Resgate', 'resgraph/Resgate'],
    rows,
  );
  // the same measures with the same clients on both: Resgate's WebSocket protocol and GET /api
  const sameClients = summarize({ resgraph: res['resgraph-res'], resgate: res.resgate }, withResgate, found.reason, { resClients: true });
  // (part 7 alone has no rows here: it does not run resgraph with Resgate's clients)
  if (sameClients.rows.length) {
    printTable(
      'resgraph serving Resgate\'s clients (RES WebSocket protocol, GET /api) vs Resgate: the same clients on both',
      ['#', 'measure', 'resgraph', 'Resgate', 'resgraph/Resgate'],
      sameClients.rows,
    );
  }
  targets.push(...sameClients.targets.map((t) => ({ ...t, name: `RES clients: ${t.name}` })));
  const floor = floorPart1(res);
  if (floor.length) {
    printTable(
      'Part 1 against the Node floor: the relay (bench/fixture/relay.mjs: nats.js + ws, no cache, no GraphQL) beside resgraph and Resgate; 10 subscribers, 100 events/s; added = latency over the plain NATS subscriber',
      ['measure', 'resgraph', 'relay', 'Resgate', 'resgraph/Resgate', 'relay/Resgate', 'resgraph/relay'],
      floor.map((f) => [f.measure, fmt(f.resgraph, f.digits), fmt(f.relay, f.digits), withResgate ? fmt(f.resgate, f.digits) : 'skipped', fmt(f.resgraphVsResgate, 2), fmt(f.relayVsResgate, 2), fmt(f.resgraphVsRelay, 2)]),
    );
  }
  log(`\ncompare: ${Math.round((Date.now() - t0) / 1000)} s${quick ? ' (--quick: phases shortened; not for numbers)' : ''}`);
  return { resgate: found.bin ?? null, skippedReason: found.reason ?? null, rates, results: res, size, summary: rows, summaryResClients: sameClients.rows, floor: { part1: floor, size: size?.floor }, targets, profiles };
}

// ---- gateway lifetimes ---------------------------------------------------------

const protocolOf = (kind) => ({ protocol: speaksRes(kind) ? 'resgate' : 'graphql-ws', transport: 'raw' });

/** Starts gateway `kind` and the client processes, runs fn, stops both (the broker, service and floor stay). */
async function withGateway(ctx, kind, { clients = 0, tag, profile = false, extra = [] }, fn) {
  const { procs } = ctx;
  const gw = await startGateway(procs, kind, ctx.nats.url, { fds: clients + 1024, profile, tag: `-${tag}`, resgateBin: ctx.resgateBin });
  const started = ['gateway', ...extra];
  try {
    const pool = [];
    if (clients > 0) {
      const per = Math.ceil(clients / ctx.clientProcs);
      for (let i = 0; i < ctx.clientProcs; i++) {
        const name = `clients${ctx.clientProcs > 1 ? i + 1 : ''}`;
        started.push(name);
        pool.push((await procs.startNode(name, `WebSocket clients (${protocolOf(kind).protocol}, raw sockets)`, 'clients/ws-clients.mjs', { fds: per + 1024, logName: `${kind}-${tag}-${name}` })).rpc);
      }
    }
    if (!ctx.printed) {
      printWhere(procs);
      ctx.printed = true;
    }
    return await fn(gw, new ClientPool(pool));
  } finally {
    await procs.stop(...started);
    if (gw.profileFile) ctx.profiles.push(gw.profileFile);
  }
}

// ---- one live phase ------------------------------------------------------------

/**
 * Publishes events at `rate` to `ids`, waits for every client to hold the
 * last state, and collects latency, staleness (optional), order, loss and
 * the CPU of every process over the phase.
 */
async function livePhase(ctx, gw, clients, { label, ids, rate, durationMs, count, staleness = false, perEvent = false, drainTimeoutMs = 5000, settleMs = 0, quietMaxMs = 5000, withHists = false }) {
  const { procs, service, floor } = ctx;
  // (at most 5 s at first, to keep the whole run short; the phase reports the noise either way)
  const quiet = await waitQuiet(procs, { maxMs: quietMaxMs });
  await Promise.all([clients.all('phase', { staleness, perEvent }), floor.call('phase')]);
  const meter = new PhaseMeter(procs);
  const pub = await service.call('publish', { ids, rate, durationMs, count, withTs: staleness }, 600_000);
  const drain = await clients.waitFor(pub.last, drainTimeoutMs);
  const m = meter.stop();
  const reports = await clients.all('report', { expect: pub.last, sent: pub.sent }, 300_000);
  const fr = await floor.call('report', { expect: pub.last });
  // a backlog left over would spoil the next phase: give it time to drain (not measured)
  let settle;
  if (!drain.done && settleMs > 0) settle = await clients.waitFor(pub.last, settleMs);

  const sum = (k) => reports.reduce((a, r) => a + (r[k] ?? 0), 0);
  const hist = new Hist();
  for (const r of reports) hist.merge(r.hist);
  const lat = hist.summary();
  const fl = Hist.from(fr.hist).summary();
  const subscribers = sum('subscribed');
  const received = sum('received');
  const gwp = m.perProcess.gateway ?? {};
  const cli = Object.entries(m.perProcess).filter(([k]) => k.startsWith('clients'));
  const cliCpu = cli.reduce((a, [, v]) => a + v.cpuSec, 0);
  const out = {
    label,
    gateway: gw.kind,
    subscribers,
    rate,
    published: pub.published,
    achievedRate: round(pub.achievedRate, 0),
    publisherMaxLagMs: round(pub.maxLagMs, 1),
    delivered: received,
    deliveredPerSec: round(received / m.wallSec, 0),
    /** seqs jumped over: coalesced by resgraph (by design); for Resgate, events it did not deliver */
    skipped: sum('coalesced'),
    skippedPct: round((100 * sum('coalesced')) / Math.max(1, pub.published * (subscribers / ids.length)), 1),
    reordered: sum('reordered'),
    duplicates: sum('duplicates'),
    lost: sum('lost'),
    lostSample: reports.find((r) => r.lostSample)?.lostSample,
    errors: sum('errors'),
    errorSample: reports.find((r) => r.errorSample)?.errorSample,
    unexpectedCloses: sum('unexpectedCloses'),
    reads: sum('reads'),
    drained: drain.done,
    drainMs: round(drain.ms, 0),
    behindAtTimeout: drain.done ? 0 : drain.behind,
    settledMs: settle ? round(drain.ms + settle.ms, 0) : undefined,
    /** the backlog had not drained before the next phase started */
    carriesBacklog: settle ? !settle.done : false,
    latencyMs: rnd(lat),
    floorMs: rnd(fl),
    addedMs: lat.count && fl.count ? { p50: round(lat.p50 - fl.p50, 2), p99: round(lat.p99 - fl.p99, 2) } : undefined,
    gw: {
      cpuSec: gwp.cpuSec,
      cpuPct: gwp.cpuPct,
      // the main thread's wait: where node runs JavaScript; says little about Go's many threads
      waitPct: gw.kind === 'resgate' ? null : gwp.waitPct,
      peakRssMB: gwp.peakRssMB,
      /** gateway CPU per delivered result */
      usPerResult: round((1e6 * (gwp.cpuSec ?? 0)) / Math.max(1, received), 2),
      /** gateway CPU per published event per subscriber: independent of how many results were coalesced */
      usPerEventSub: round((1e6 * (gwp.cpuSec ?? 0)) / Math.max(1, pub.published * (subscribers / ids.length)), 2),
    },
    clientCpuPct: round((100 * cliCpu) / m.wallSec, 0),
    clientUsPerResult: round((1e6 * cliCpu) / Math.max(1, received), 2),
    ...phaseNoise(m, quiet),
  };
  if (staleness) out.staleness = mergeStaleness(reports.map((r) => r.staleness).filter(Boolean));
  // for mergeRounds, which takes them out again
  if (withHists) out.hists = { latency: hist.toJSON(), floor: fr.hist };
  return out;
}

function mergeStaleness(list) {
  const all = new Hist();
  const first = new Hist();
  const last = new Hist();
  const perClient = [];
  let censored = 0;
  const maxBySeq = {};
  for (const s of list) {
    all.merge(s.all);
    first.merge(s.first);
    last.merge(s.last);
    perClient.push(...s.perClientP99);
    censored += s.censored;
    for (const [k, v] of Object.entries(s.maxBySeq ?? {})) maxBySeq[k] = Math.max(maxBySeq[k] ?? 0, v);
  }
  perClient.sort((a, b) => a - b);
  const a = all.summary();
  const f = first.summary();
  const l = last.summary();
  return {
    ...rnd(a),
    firstSecond: { p50: r2(f.p50), p99: r2(f.p99) },
    lastSecond: { p50: r2(l.p50), p99: r2(l.p99) },
    /** events some client had not got when the phase was measured: their staleness is a lower bound */
    censored,
    perClientP99: { median: perClient[Math.floor(perClient.length / 2)] ?? null, max: perClient.at(-1) ?? null, over100ms: perClient.filter((x) => x > 100).length, clients: perClient.length },
    maxBySeq: Object.keys(maxBySeq).length ? maxBySeq : undefined,
  };
}

/** Kept up with the rate: drained within 1 s after publishing stopped, and no growing backlog (the last second's events no staler than ~2× the first's). */
function keptUp(p) {
  const s = p.staleness;
  const growing = s && s.lastSecond.p50 !== null && s.firstSecond.p50 !== null && s.lastSecond.p50 > 2 * s.firstSecond.p50 + 10;
  return p.drained && p.drainMs <= 1000 && !growing && p.lost === 0 && p.errors === 0 && p.unexpectedCloses === 0 && !p.inheritsBacklog;
}

// ---- groups of scenarios --------------------------------------------------------------

/** One line on a live phase as it ends. */
function sayPhase(log, kind, p) {
  log(
    `  ${gatewayName(kind)} ${p.label}: ${p.deliveredPerSec} results/s, latency p50 ${fmt(p.latencyMs.p50)} p99 ${fmt(p.latencyMs.p99)} ms` +
      (p.staleness ? `, staleness p50 ${fmt(p.staleness.p50)} p99 ${fmt(p.staleness.p99)} ms (first s p50 ${fmt(p.staleness.firstSecond.p50)}, last s p50 ${fmt(p.staleness.lastSecond.p50)})` : '') +
      `, drained ${p.drained ? `in ${p.drainMs} ms` : `NOT within ${p.drainMs} ms (${p.behindAtTimeout} behind)`}${p.settledMs !== undefined ? `, settled ${p.carriesBacklog ? 'NOT ' : ''}after ${p.settledMs} ms` : ''}` +
      `, skipped ${p.skippedPct}%, lost ${p.lost}, err ${p.errors}, gw ${p.gw.cpuPct}% CPU, clients ${p.clientCpuPct}% CPU; noise: other ${p.otherCpuSec} CPU s, steal ${p.stealSec} s${p.gw.waitPct === null ? '' : `, gw wait ${p.gw.waitPct}%`}`,
  );
}

/**
 * Scenario 1 (10 subscribers) on every gateway in two rounds, the second in
 * the reverse order, each gateway's two phases taken together. The phases
 * of one run do not see the same machine: its first minutes are slower
 * than the later ones (why is not known; the broker, service and floor,
 * which stay for the whole run, warm up then), and a gateway measured
 * first had p99 latencies two to three times those of the same gateway
 * measured last. In one fixed order the first gateway would pay for that
 * alone. So a first phase is not counted, and in two opposite orders each
 * gateway meets the rest of the drift about as much as the others.
 */
async function part1Rounds(ctx, kinds) {
  ctx.log(`part 1: a phase on ${gatewayName(kinds[0])} that is not counted (the first minutes of a run are slower), then two rounds, the second in the reverse order`);
  await part1Phase(ctx, kinds[0]);
  const phases = Object.fromEntries(kinds.map((k) => [k, []]));
  for (const [i, order] of [kinds, [...kinds].reverse()].entries()) {
    for (const k of order) phases[k].push({ round: i + 1, ...(await part1Phase(ctx, k)) });
  }
  return Object.fromEntries(kinds.map((k) => [k, mergeRounds(phases[k])]));
}

/** One gateway's 10-subscriber phase: its own gateway process and clients, a warm-up, then 10 s at 100 events/s. */
async function part1Phase(ctx, kind) {
  const { sec, log } = ctx;
  const profile = ctx.profile && kind !== 'resgate';
  return withGateway(ctx, kind, { clients: 10, tag: 'live', profile }, async (gw, clients) => {
    const conn = await clients.connect(gw.wsUrl, 10, protocolOf(kind));
    const sub = await clients.subscribe('cmp10', 10);
    log(`${gatewayName(kind)}: ${conn.connected} connected, ${sub.firstResults} subscribed`);
    await warm(ctx, clients, ['cmp10'], 100, sec(2));
    const p = await quietest((quietMaxMs) => livePhase(ctx, gw, clients, { label: '10 subs @ 100/s', ids: ['cmp10'], rate: 100, durationMs: sec(10), quietMaxMs, withHists: true }), { log, name: gatewayName(kind) });
    sayPhase(log, kind, p);
    await clients.all('close', {});
    return p;
  });
}

/** The phases of the rounds as one: latencies from their merged histograms, counts and CPU summed, the rounds kept as they were. */
function mergeRounds(rounds) {
  const latency = new Hist();
  const floor = new Hist();
  for (const p of rounds) {
    latency.merge(p.hists.latency);
    floor.merge(p.hists.floor);
  }
  const lat = latency.summary();
  const fl = floor.summary();
  const sum = (get) => rounds.reduce((a, p) => a + (get(p) ?? 0), 0);
  const max = (get) => Math.max(...rounds.map((p) => get(p) ?? 0));
  const wallSec = sum((p) => p.wallSec);
  const published = sum((p) => p.published);
  const delivered = sum((p) => p.delivered);
  const cpuSec = sum((p) => p.gw.cpuSec);
  const perEventSub = published * rounds[0].subscribers;
  const first = rounds[0];
  return {
    label: first.label,
    gateway: first.gateway,
    subscribers: first.subscribers,
    rate: first.rate,
    published,
    delivered,
    deliveredPerSec: round(delivered / Math.max(wallSec, 1e-9), 0),
    skipped: sum((p) => p.skipped),
    skippedPct: round((100 * sum((p) => p.skipped)) / Math.max(1, perEventSub), 1),
    reordered: sum((p) => p.reordered),
    duplicates: sum((p) => p.duplicates),
    lost: sum((p) => p.lost),
    errors: sum((p) => p.errors),
    unexpectedCloses: sum((p) => p.unexpectedCloses),
    drained: rounds.every((p) => p.drained),
    drainMs: max((p) => p.drainMs),
    latencyMs: rnd(lat),
    floorMs: rnd(fl),
    addedMs: lat.count && fl.count ? { p50: round(lat.p50 - fl.p50, 2), p99: round(lat.p99 - fl.p99, 2) } : undefined,
    gw: {
      cpuSec: round(cpuSec, 2),
      cpuPct: round((100 * cpuSec) / Math.max(wallSec, 1e-9), 0),
      waitPct: first.gw.waitPct === null ? null : max((p) => p.gw.waitPct),
      peakRssMB: max((p) => p.gw.peakRssMB),
      usPerResult: round((1e6 * cpuSec) / Math.max(1, delivered), 2),
      usPerEventSub: round((1e6 * cpuSec) / Math.max(1, perEventSub), 2),
    },
    clientCpuPct: round(sum((p) => p.clientCpuPct * p.wallSec) / Math.max(wallSec, 1e-9), 0),
    wallSec: round(wallSec, 1),
    otherCpuSec: round(sum((p) => p.otherCpuSec), 2),
    stealSec: round(sum((p) => p.stealSec), 2),
    rounds: rounds.map((p) => ({ ...withoutHists(p), noisyAttempt: p.noisyAttempt && { ...p.noisyAttempt, result: withoutHists(p.noisyAttempt.result) } })),
  };
}

const withoutHists = ({ hists, ...phase }) => phase;

/** Scenarios 2–3: 1,000 subscribers on one model. */
export async function groupLive(ctx, kind, which) {
  const { sec, log } = ctx;
  const profile = ctx.profile && kind !== 'resgate';
  return withGateway(ctx, kind, { clients: 1000, tag: 'live', profile }, async (gw, clients) => {
    const out = {};
    const say = (p) => sayPhase(log, kind, p);
    if (which.has(2) || which.has(3)) {
      const conn = await clients.connect(gw.wsUrl, 1000, protocolOf(kind));
      const sub = await clients.subscribe('cmp1k', 1000);
      log(`${gatewayName(kind)}: ${conn.connected} connected in ${Math.round(conn.ms)} ms (${conn.failed} failed${conn.failSample ? `: ${conn.failSample}` : ''}), ${sub.firstResults} subscribed in ${Math.round(sub.ms)} ms`);
      out.setup1k = { connected: conn.connected, connectMs: Math.round(conn.ms), subscribed: sub.firstResults, subscribeMs: Math.round(sub.ms) };
      await warm(ctx, clients, ['cmp1k'], 100, sec(2));
      if (which.has(2)) {
        out.s2 = await quietest((quietMaxMs) => livePhase(ctx, gw, clients, { label: '1,000 subs @ 100/s', ids: ['cmp1k'], rate: 100, durationMs: sec(20), drainTimeoutMs: 10_000, settleMs: 20_000, quietMaxMs }), { log, name: gatewayName(kind) });
        say(out.s2);
      }
      if (which.has(3)) {
        out.s3 = [];
        let backlog = out.s2?.carriesBacklog ?? false;
        for (const [i, rate] of ctx.rates.entries()) {
          const lastOne = i === ctx.rates.length - 1;
          const p = await livePhase(ctx, gw, clients, { label: `1,000 subs @ ${rate}/s`, ids: ['cmp1k'], rate, durationMs: sec(8), staleness: true, drainTimeoutMs: 5000, settleMs: lastOne ? 0 : 25_000 });
          p.inheritsBacklog = backlog;
          p.keptUp = keptUp(p);
          backlog = p.carriesBacklog;
          out.s3.push(p);
          say(p);
        }
      }
    }
    return out;
  });
}

/** Scenarios 4–5: 10,000 clients; memory at each step, then one change every 2 s. */
async function groupTenK(ctx, kind, which) {
  const { log } = ctx;
  const n = 10_000;
  return withGateway(ctx, kind, { clients: n, tag: '10k', profile: ctx.profile && kind !== 'resgate' }, async (gw, clients) => {
    const out = {};
    const measure = async (label) => {
      await sleep(2000);
      const { rss } = procStat(gw.pid);
      let rssAfterGc;
      if (gw.rpc) {
        await gw.rpc.call('gc');
        await sleep(500);
        rssAfterGc = procStat(gw.pid).rss;
      }
      const step = { label, rss, rssAfterGc };
      log(`  ${gatewayName(kind)} memory, ${label}: RSS ${round(rss / 1048576, 1)} MB${rssAfterGc ? ` (${round(rssAfterGc / 1048576, 1)} MB after a forced GC)` : ''}`);
      return step;
    };
    const opts = protocolOf(kind);
    if (which.has(5)) {
      // warm-up (not measured): code paths compiled or allocated on first use
      await clients.connect(gw.wsUrl, 200, opts);
      await clients.subscribe('warm', 200);
      await clients.all('close', {});
      const idle = await measure('idle (after warm-up)');
      const conn = await clients.connect(gw.wsUrl, n, opts);
      if (conn.failed) log(`  warning: ${conn.failed} connections failed (${conn.failSample})`);
      const conns = await measure(`${conn.connected} idle connections`);
      await clients.list[0].call('subscribe', { query: subscriptionQuery, ids: 'cmp10k', from: 0, to: 1 });
      const one = await measure('+ 1 subscription');
      const rest = await subscribeRest(clients, n, 'cmp10k');
      if (!rest.complete) log(`  warning: only ${rest.firstResults} subscriptions got their first result`);
      const subs = await measure(`${n} subscribed clients`);
      const per = (a, b, k, count) => (a[k] !== undefined && b[k] !== undefined ? Math.round((b[k] - a[k]) / count) : null);
      out.s5 = {
        steps: [idle, conns, one, subs],
        connections: conn.connected,
        idleMB: round(idle.rss / 1048576, 1),
        connsMB: round(conns.rss / 1048576, 1),
        subsMB: round(subs.rss / 1048576, 1),
        perConnection: per(idle, conns, 'rss', conn.connected),
        perSubscription: per(one, subs, 'rss', n - 1),
        perSubscribedClient: per(idle, subs, 'rss', n),
        afterGc: gw.rpc
          ? { perConnection: per(idle, conns, 'rssAfterGc', conn.connected), perSubscription: per(one, subs, 'rssAfterGc', n - 1), perSubscribedClient: per(idle, subs, 'rssAfterGc', n) }
          : undefined,
      };
    } else {
      await clients.connect(gw.wsUrl, n, opts);
      await clients.subscribe('cmp10k', n);
    }
    if (which.has(4)) {
      const changes = ctx.quick ? 3 : 5;
      const p = await livePhase(ctx, gw, clients, { label: `${n.toLocaleString('en-US')} subs, 1 change / 2 s`, ids: ['cmp10k'], rate: 0.5, count: changes, staleness: true, perEvent: true, drainTimeoutMs: 10_000 });
      const perChange = Object.values(p.staleness.maxBySeq ?? {}).sort((a, b) => a - b);
      p.lastClientMs = { perChange: perChange.map((x) => r2(x)), p50: r2(perChange[Math.floor((perChange.length - 1) / 2)]), max: r2(perChange.at(-1)) };
      out.s4 = p;
      log(
        `  ${gatewayName(kind)} ${p.label}: last client has the change after p50 ${fmt(p.lastClientMs.p50)} ms, max ${fmt(p.lastClientMs.max)} ms (per change: ${p.lastClientMs.perChange.join(', ')}); all deliveries p50 ${fmt(p.latencyMs.p50)} p99 ${fmt(p.latencyMs.p99)} ms; lost ${p.lost}, clients ${p.clientUsPerResult} µs/result`,
      );
    }
    return out;
  });
}

/** Subscribes every client but the first (already subscribed) to the same model. */
async function subscribeRest(clients, n, id) {
  const counts = clients.split(n);
  const r = await Promise.all(clients.list.map((c, i) => c.call('subscribe', { query: subscriptionQuery, ids: id, from: i === 0 ? 1 : 0, to: counts[i] }, 600_000)));
  return { subscribed: r.reduce((a, x) => a + x.subscribed, 0), firstResults: r.reduce((a, x) => a + x.firstResults, 0), complete: r.every((x) => x.complete) };
}

/** Scenario 6: one cached resource read over HTTP by autocannon, 50 keep-alive connections. */
export async function groupHttp(ctx, kind) {
  const { procs, service, log, quick } = ctx;
  const durationSec = quick ? 3 : 10;
  const connections = 50;
  return withGateway(ctx, kind, { tag: 'http', extra: ['http-load'], profile: ctx.profile && kind !== 'resgate' }, async (gw) => {
    const load = (await procs.startNode('http-load', 'autocannon (HTTP load generator)', 'clients/http-load.mjs', { logName: `${kind}-http-load` })).rpc;
    const mode = speaksRes(kind) ? 'resgate-get' : 'cached';
    const args = { url: gw.url, mode, id: 'cmphot' };
    await load.call('run', { ...args, connections: 10, durationSec: 2 }); // warm (not measured)
    const measure = async (quietMaxMs) => {
      const quiet = await waitQuiet(procs, { maxMs: quietMaxMs });
      const before = await service.call('counts');
      const meter = new PhaseMeter(procs);
      const r = await load.call('run', { ...args, connections, durationSec }, (durationSec + 60) * 1000);
      const m = meter.stop();
      const after = await service.call('counts');
      return {
        label: 'cached read',
        what: speaksRes(kind) ? 'GET /api/bench/item/cmphot' : 'POST /graphql { item(id) { id seq ts name } }',
        connections,
        durationSec,
        requests: r.requests,
        rps: round(r.rps, 0),
        latency: r.latency,
        errors: r.errors + r.non2xx + r.timeouts + r.graphqlErrors,
        errorSample: r.errorSample,
        /** NATS requests the service answered per HTTP request */
        getPerRequest: round((after.get - before.get) / Math.max(1, r.requests), 3),
        accessPerRequest: round((after.access - before.access) / Math.max(1, r.requests), 3),
        gw: m.perProcess.gateway,
        loadCpuPct: m.perProcess['http-load']?.cpuPct,
        processes: m.perProcess,
        quietStart: quiet,
        otherCpuSec: m.otherCpuSec,
        stealSec: m.stealSec,
        wallSec: m.wallSec,
      };
    };
    const s6 = await quietest(measure, { log, name: gatewayName(kind) });
    log(
      `  ${gatewayName(kind)} cached read (${s6.what}): ${s6.rps} req/s, p50 ${s6.latency.p50} ms, p99 ${s6.latency.p99} ms, errors ${s6.errors}${s6.errorSample ? ` (${s6.errorSample})` : ''}; get/req ${s6.getPerRequest}, access/req ${s6.accessPerRequest}; gw ${s6.gw?.cpuPct}% CPU; noise: other ${s6.otherCpuSec} CPU s, steal ${s6.stealSec} s`,
    );
    return { s6 };
  });
}

async function warm(ctx, clients, ids, rate, durationMs) {
  const pub = await ctx.service.call('publish', { ids, rate, durationMs }, 600_000);
  await clients.waitFor(pub.last, 30_000);
}

// ---- output ----------------------------------------------------------------------------

function printDetails(res, kinds) {
  const live = [];
  for (const k of kinds) for (const key of ['s1', 's2']) if (res[k][key]) live.push([gatewayName(k), res[k][key]]);
  if (live.length) {
    printTable(
      'Scenarios 1–2: latency = event publish → client receive; added = gateway − plain NATS subscriber (floor), same phase',
      ['gateway', 'phase', 'results/s', 'p50', 'p95', 'p99', 'max', 'floor p50', 'floor p99', 'added p50', 'added p99', 'skipped', 'reord', 'lost', 'err', 'gw CPU s', 'gw CPU %', 'gw µs/result', 'gw µs/event/sub', 'gw RSS MB', 'gw wait %', 'cli CPU %', 'other/steal s'],
      live.map(([g, p]) => [g, p.label, p.deliveredPerSec, p.latencyMs.p50, p.latencyMs.p95, p.latencyMs.p99, p.latencyMs.max, p.floorMs.p50, p.floorMs.p99, p.addedMs?.p50, p.addedMs?.p99, `${p.skippedPct}%`, p.reordered, p.lost, p.errors, p.gw.cpuSec, p.gw.cpuPct, p.gw.usPerResult, p.gw.usPerEventSub, p.gw.peakRssMB, p.gw.waitPct, p.clientCpuPct, `${p.otherCpuSec}/${p.stealSec}`]),
    );
  }
  const ramp = [];
  for (const k of kinds) for (const p of res[k].s3 ?? []) ramp.push([gatewayName(k), p]);
  if (ramp.length) {
    printTable(
      'Scenario 3: 1,000 subscribers, rising event rate; staleness = publish → a client holds a result reflecting that event or later (first/last s: events published in the first/last second)',
      ['gateway', 'ev/s', 'sent/s', 'results/s', 'lat p50', 'lat p99', 'stale p50', 'stale p99', 'stale max', 'first s p50', 'last s p50', 'client p99 max', 'drain ms', 'kept up', 'skipped', 'behind at end', 'gw CPU %', 'gw µs/event/sub', 'gw wait %', 'cli CPU %', 'other/steal s'],
      ramp.map(([g, p]) => [
        g,
        p.rate,
        p.achievedRate,
        p.deliveredPerSec,
        p.latencyMs.p50,
        p.latencyMs.p99,
        p.staleness.p50,
        `${p.staleness.censored ? '≥' : ''}${fmt(p.staleness.p99)}`,
        `${p.staleness.censored ? '≥' : ''}${fmt(p.staleness.max)}`,
        p.staleness.firstSecond.p50,
        p.staleness.lastSecond.p50,
        p.staleness.perClientP99.max,
        p.drained ? p.drainMs : `> ${p.drainMs}`,
        p.keptUp ? 'yes' : p.inheritsBacklog ? 'no (backlog)' : 'no',
        `${p.skippedPct}%`,
        p.behindAtTimeout,
        p.gw.cpuPct,
        p.gw.usPerEventSub,
        p.gw.waitPct,
        p.clientCpuPct,
        `${p.otherCpuSec}/${p.stealSec}`,
      ]),
    );
  }
  const mem = kinds.filter((k) => res[k].s5);
  if (mem.length) {
    printTable(
      'Scenario 5: gateway RSS (/proc/<pid>/status, 2 s after each step; no forced GC for either gateway)',
      ['gateway', 'idle MB', '10k conns MB', '10k subscribed MB', 'per conn KB', 'per sub KB', 'per subscribed client KB', 'per subscribed client KB after forced GC'],
      mem.map((k) => {
        const m = res[k].s5;
        return [gatewayName(k), m.idleMB, m.connsMB, m.subsMB, round(m.perConnection / 1024, 1), round(m.perSubscription / 1024, 1), round(m.perSubscribedClient / 1024, 1), m.afterGc ? round(m.afterGc.perSubscribedClient / 1024, 1) : 'n/a'];
      }),
    );
  }
}

const r2 = (x) => (x === null || x === undefined ? null : round(x, 2));
function rnd(o) {
  const out = {};
  for (const [k, v] of Object.entries(o)) out[k] = typeof v === 'number' ? round(v, 2) : v;
  return out;
}

function ratio(a, b) {
  if (a === null || a === undefined || b === null || b === undefined || b === 0) return null;
  return round(a / b, 2);
}

/** Part 1 on resgraph, the relay (the Node floor) and Resgate: added latency and gateway CPU per event, with the three ratios. */
function floorPart1(res) {
  const [a, f, b] = [res.resgraph.s1, res.relay.s1, res.resgate.s1];
  if (!f) return [];
  const perEvent = (p) => (p ? round((1e6 * (p.gw.cpuSec ?? 0)) / Math.max(1, p.published), 1) : undefined);
  const measures = [
    ['added over NATS floor p50 ms', (p) => p?.addedMs?.p50, 2],
    ['added over NATS floor p99 ms', (p) => p?.addedMs?.p99, 2],
    ['gateway CPU µs per event (10 results)', perEvent, 0],
    ['other/steal s during the phase', (p) => (p ? `${p.otherCpuSec}/${p.stealSec}` : undefined)],
  ];
  return measures.map(([measure, get, digits]) => {
    const [x, y, z] = [get(a), get(f), get(b)];
    const num = typeof y === 'number';
    return { measure, digits, resgraph: x, relay: y, resgate: z, resgraphVsResgate: num ? ratio(x, z) : null, relayVsResgate: num ? ratio(y, z) : null, resgraphVsRelay: num ? ratio(x, y) : null };
  });
}

/** The highest rate kept up with, counting only rates below which every one was kept up with. */
function highest(phases) {
  let best = null;
  for (const p of phases) {
    if (!p.keptUp) break;
    best = p.rate;
  }
  return { rate: best, all: phases.length > 0 && best === phases.at(-1).rate, none: best === null };
}

/**
 * The rows and targets of resgraph against Resgate. `resClients`: resgraph
 * serving Resgate's own clients, whose targets are issue 19's (resgraph
 * ≥ Resgate on every ratio): the protocol delivers every event, so there is
 * no coalescing to reach twice Resgate's rate, or 100 ms of staleness where
 * neither keeps up.
 */
function summarize(res, withResgate, reason, { resClients = false } = {}) {
  const a = res.resgraph;
  const b = withResgate ? res.resgate : {};
  const rows = [];
  const targets = [];
  const row = (n, what, x, y, digits = 2) => {
    const r = ratio(x, y);
    rows.push([n, what, x ?? '-', withResgate ? (y ?? '-') : 'skipped', r === null ? '-' : fmt(r, digits)]);
    return r;
  };
  const target = (name, wanted, r, cmp, detail) => {
    if (!withResgate) {
      targets.push(targetRow(name, wanted, `n/a (Resgate skipped: ${reason})`, null));
      return;
    }
    targets.push(targetRow(name, wanted, r === null ? `n/a (${detail})` : `${fmt(r, 2)} (${detail})`, r === null ? false : cmp(r)));
  };
  if (a.s1) {
    const x = a.s1;
    const y = b.s1;
    row(1, 'latency p50 ms (10 subs, 100/s)', x.latencyMs.p50, y?.latencyMs.p50);
    row(1, 'latency p99 ms', x.latencyMs.p99, y?.latencyMs.p99);
    const r50 = row(1, 'added over NATS floor p50 ms', x.addedMs?.p50, y?.addedMs?.p50);
    const r99 = row(1, 'added over NATS floor p99 ms', x.addedMs?.p99, y?.addedMs?.p99);
    target('added latency p50 (10 subs, 100 ev/s)', 'resgraph/Resgate <= 1.0', r50, (r) => r <= 1, `${x.addedMs?.p50} vs ${y?.addedMs?.p50} ms`);
    target('added latency p99 (10 subs, 100 ev/s)', 'resgraph/Resgate <= 1.0', r99, (r) => r <= 1, `${x.addedMs?.p99} vs ${y?.addedMs?.p99} ms`);
  }
  if (a.s2) {
    const x = a.s2;
    const y = b.s2;
    row(2, 'latency p50 ms (1,000 subs, 100/s, delivered results)', x.latencyMs.p50, y?.latencyMs.p50);
    row(2, 'latency p95 ms', x.latencyMs.p95, y?.latencyMs.p95);
    const r99 = row(2, 'latency p99 ms', x.latencyMs.p99, y?.latencyMs.p99);
    row(2, 'latency max ms', x.latencyMs.max, y?.latencyMs.max);
    row(2, 'results delivered', x.delivered, y?.delivered);
    row(2, 'skipped seqs % (resgraph: coalesced)', x.skippedPct, y?.skippedPct);
    row(2, 'lost clients / reordered', `${x.lost} / ${x.reordered}`, y ? `${y.lost} / ${y.reordered}` : undefined);
    row(2, 'gateway CPU s', x.gw.cpuSec, y?.gw.cpuSec);
    const rc = row(2, 'gateway CPU µs per delivered result', x.gw.usPerResult, y?.gw.usPerResult);
    const re = row(2, 'gateway CPU µs per event per subscriber', x.gw.usPerEventSub, y?.gw.usPerEventSub);
    target('latency p99 at 1,000 subs (100 ev/s)', 'resgraph/Resgate <= 1.0', r99, (r) => r <= 1, `${x.latencyMs.p99} vs ${y?.latencyMs.p99} ms`);
    target('gateway CPU per delivered result', 'resgraph/Resgate <= 1.0', rc, (r) => r <= 1, `${x.gw.usPerResult} vs ${y?.gw.usPerResult} µs; per event per subscriber ${x.gw.usPerEventSub} vs ${y?.gw.usPerEventSub} µs = ${fmt(re, 2)}`);
  }
  if (a.s3) {
    const ha = highest(a.s3);
    const hb = b.s3 ? highest(b.s3) : undefined;
    const show = (h) => (!h ? undefined : h.none ? `< ${a.s3[0].rate}/s` : h.all ? `>= ${h.rate}/s` : `${h.rate}/s`);
    let r = null;
    let rs = '-';
    if (hb) {
      // bounds when one of them kept up with every rate or with none
      const lo = ha.rate ?? 0;
      const hiB = hb.rate ?? 0;
      if (hiB > 0) {
        r = round(lo / hiB, 2);
        rs = `${ha.all ? '>= ' : ''}${fmt(r, 2)}`;
      } else if (lo > 0) {
        r = Infinity;
        rs = `> ${fmt(round(lo / a.s3[0].rate, 2), 2)}`;
      }
    }
    rows.push([3, 'highest rate kept up with (1,000 subs)', show(ha), withResgate ? (show(hb) ?? '-') : 'skipped', rs]);
    for (const p of a.s3) {
      const q = b.s3?.find((z) => z.rate === p.rate);
      const cell = (z) => (z ? `${fmt(z.staleness.p50)} / ${z.staleness.censored ? '≥' : ''}${fmt(z.staleness.p99)}` : undefined);
      const rr = ratio(p.staleness.p99, q?.staleness.p99);
      rows.push([3, `staleness p50 / p99 ms @ ${p.rate}/s`, cell(p), withResgate ? (cell(q) ?? '-') : 'skipped', rr === null ? '-' : `${q.staleness.censored ? '<= ' : ''}${fmt(rr, 2)} (p99)`]);
    }
    const wantRate = resClients ? 1 : 2;
    const wantText = `resgraph/Resgate >= ${wantRate}.0`;
    if (!withResgate) target('highest sustained event rate at 1,000 subs', wantText, null);
    else
      targets.push(
        targetRow(
          'highest sustained event rate at 1,000 subs',
          wantText,
          `${rs} (${show(ha)} vs ${show(hb)})`,
          // a lower bound that reaches it counts; an upper bound or nothing does not
          r !== null && r >= wantRate,
        ),
      );
    const k = a.s3.find((p) => p.rate === 1000);
    const kb = b.s3?.find((p) => p.rate === 1000);
    if (k && resClients) {
      // Resgate's p99 is a lower bound when it had not caught up: the ratio is then an upper bound, which counts
      const rk = ratio(k.staleness.p99, kb?.staleness.p99);
      target('staleness p99 at 1,000 ev/s, 1,000 subs', 'resgraph/Resgate <= 1.0', rk, (x) => x <= 1 && !k.staleness.censored, `${fmt(k.staleness.p99)} vs ${kb?.staleness.censored ? '≥ ' : ''}${fmt(kb?.staleness.p99)} ms`);
    } else if (k) {
      const worst = k.staleness.perClientP99.max;
      targets.push(
        targetRow(
          'staleness at 1,000 ev/s, 1,000 subs (resgraph)',
          'p99 <= 100 ms for every client',
          `worst client p99 ${fmt(worst)} ms (median client ${fmt(k.staleness.perClientP99.median)} ms, ${k.staleness.perClientP99.over100ms} clients over 100 ms; all p99 ${fmt(k.staleness.p99)} ms${k.staleness.censored ? `, ${k.staleness.censored} events not yet reflected` : ''})`,
          worst !== null && worst <= 100 && !k.staleness.censored,
        ),
      );
    }
  }
  if (a.s4) {
    row(4, 'last of 10,000 clients has the change, p50 over changes, ms', a.s4.lastClientMs.p50, b.s4?.lastClientMs.p50);
    row(4, 'last of 10,000 clients has the change, max over changes, ms', a.s4.lastClientMs.max, b.s4?.lastClientMs.max);
    row(4, 'all deliveries p99 ms', a.s4.latencyMs.p99, b.s4?.latencyMs.p99);
  }
  if (a.s5) {
    const kb = (x) => (x === null || x === undefined ? undefined : round(x / 1024, 1));
    row(5, 'RSS idle MB', a.s5.idleMB, b.s5?.idleMB);
    row(5, 'RSS with 10,000 idle connections MB', a.s5.connsMB, b.s5?.connsMB);
    row(5, 'RSS with 10,000 subscribed clients MB', a.s5.subsMB, b.s5?.subsMB);
    row(5, 'per connection KB', kb(a.s5.perConnection), kb(b.s5?.perConnection));
    row(5, 'per subscription KB', kb(a.s5.perSubscription), kb(b.s5?.perSubscription));
    const r = row(5, 'per subscribed client KB (connection + subscription)', kb(a.s5.perSubscribedClient), kb(b.s5?.perSubscribedClient));
    target('memory per subscribed client', 'resgraph/Resgate <= 0.5', r, (x) => x <= 0.5, `${kb(a.s5.perSubscribedClient)} vs ${kb(b.s5?.perSubscribedClient)} KB`);
  }
  if (a.s6) {
    const r = row(6, 'cached read req/s (50 connections)', a.s6.rps, b.s6?.rps);
    row(6, 'cached read p50 ms', a.s6.latency.p50, b.s6?.latency.p50);
    row(6, 'cached read p99 ms', a.s6.latency.p99, b.s6?.latency.p99);
    row(6, 'errors', a.s6.errors, b.s6?.errors);
    target('cached reads (HTTP, 50 connections)', 'resgraph/Resgate >= 1.0', r, (x) => x >= 1, `${a.s6.rps} vs ${b.s6?.rps} req/s`);
  }
  return { rows, targets };
}
