#!/usr/bin/env node
/**
 * The benchmark suite's entry point.
 *
 *   node bench/run.mjs <scenario...|all> [--quick] [--client-procs N] [--sizes 100,1000] [--profile] [--pin others|split|none] [--heap-snapshots] [--subscribers N] [--only 1,2]
 *   node bench/run.mjs profile      the 1,000-subscriber fan-out with the gateway under --cpu-prof,
 *                                   then its top costs (bench/top-costs.mjs)
 *
 * Scenarios: fanout, many, query, memory, compare (resgraph vs Resgate in
 * the same run; `--only 2,3` picks among its seven), size (compare's part 7
 * alone: one client holding a list of 100, 1,000, 10,000 items; `--sizes`
 * picks the item counts), adds (items appended to a list of 100 and
 * 10,000 while one client holds it), workers (`--workers 1` and `2`
 * beside Resgate; size, adds and workers are not part of `all` on their own). Each starts its own nats-server,
 * fixture service, gateway (node dist/, built by `npm run build`) and load
 * generators as separate processes on 127.0.0.1, stops them all at the end,
 * prints tables and writes bench/results/<scenario>.json. `--nats <url>` with
 * the gateway's --nats-* options (TLS, creds, NKey, token, user/password) runs
 * every scenario against that server instead (not started, not measured).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { benchDir, rootDir, fdLimits, pinFor, pinningMode, setPinning } from './lib/procs.mjs';
import { machineInfo, printTargets, writeResult } from './lib/report.mjs';
import { fanout } from './scenarios/fanout.mjs';
import { many } from './scenarios/many.mjs';
import { query } from './scenarios/query.mjs';
import { memory } from './scenarios/memory.mjs';
import { compare } from './scenarios/compare.mjs';
import { adds } from './scenarios/adds.mjs';
import { size } from './scenarios/size.mjs';
import { workers } from './scenarios/workers.mjs';
import { natsParseArgsOptions, useExternalNats } from './lib/nats.mjs';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    quick: { type: 'boolean', default: false },
    'client-procs': { type: 'string', default: '1' },
    sizes: { type: 'string' },
    pin: { type: 'string', default: 'others' },
    profile: { type: 'boolean', default: false },
    'heap-snapshots': { type: 'boolean', default: false },
    subscribers: { type: 'string' },
    only: { type: 'string' },
    nats: { type: 'string' },
    ...natsParseArgsOptions,
    help: { type: 'boolean', short: 'h' },
  },
});
const all = ['fanout', 'many', 'query', 'memory', 'compare'];
if (values.help || positionals.length === 0) {
  console.log('usage: node bench/run.mjs <fanout|many|query|memory|compare|size|workers|all|profile>... [--quick] [--client-procs N] [--sizes 100,1000 (fanout: subscribers; size: items)] [--profile] [--pin others|split|none] [--heap-snapshots] [--subscribers N] [--only 1,2,...7 (compare)] [--nats <url> [--nats-creds <file>, --nats-tls-ca <file>, ... (the gateway\'s --nats-* options)]]');
  process.exit(values.help ? 0 : 2);
}
const wanted = positionals.flatMap((p) => (p === 'all' ? all : [p]));
for (const w of wanted) if (![...all, 'profile', 'size', 'adds', 'workers'].includes(w)) {
  console.error(`unknown scenario ${w}`);
  process.exit(2);
}
const quick = values.quick;
const clientProcs = Math.max(1, Number(values['client-procs']) || 1);
const sizes = values.sizes?.split(',').map(Number);
if (!['others', 'split', 'none'].includes(values.pin)) {
  console.error('--pin must be others, split or none');
  process.exit(2);
}
setPinning(values.pin);
try {
  useExternalNats(values);
} catch (e) {
  console.error(`bench: ${e.message}`);
  process.exit(2);
}

checkDist();

const started = Date.now();
const info = machineInfo();
console.log(
  `resgraph bench: ${wanted.join(', ')} | node ${info.node}, ${info.cpus} cores (${info.cpuModel}), load average ${info.loadavgAtStart.join(' ')}, open-file limit ${fdLimits().soft}`,
);
const pin = {
  others: `pinned with taskset: everything but the gateway on core ${pinFor(false)}; the gateway may use any core (--pin split|none to change)`,
  split: `pinned with taskset: the gateway on core ${pinFor(true)}, everything else of the bench on core(s) ${pinFor(false)}`,
  none: 'not pinned to cores: the OS places every process',
}[pinningMode()];
console.log(
  `Every part is its own process on this machine: nats-server, the fixture service (+ publisher), the gateway (node dist/), the NATS floor subscriber, and ${clientProcs} WebSocket client process(es) / autocannon; ${pin}. ` +
    `Other work on the machine (other engineers' test runs) is not pinned and adds noise: see "other/steal s" (CPU used by processes not started by the bench, and time the hypervisor took) and "gw wait %" per phase.`,
);

const allTargets = [];
const timeBudget = setTimeout(() => {
  console.error('bench: over the 20-minute safety limit; stopping');
  process.exit(1); // the exit handlers of lib/procs kill what is left
}, 20 * 60_000);
timeBudget.unref();

let failed = false;
for (const name of wanted) {
  const t0 = Date.now();
  console.log(`\n=== ${name} ===`);
  try {
    let result;
    const profile = values.profile;
    if (name === 'fanout') result = await fanout({ sizes, quick, clientProcs, profile });
    else if (name === 'many') result = await many({ quick, clientProcs, profile });
    else if (name === 'query') result = await query({ quick, profile });
    else if (name === 'memory') result = await memory({ quick, clientProcs, heapSnapshots: values['heap-snapshots'], n: Number(values.subscribers) || undefined });
    else if (name === 'compare') result = await compare({ quick, clientProcs, profile, only: values.only?.split(',').map(Number) });
    else if (name === 'size') result = await size({ quick, sizes, profile });
    else if (name === 'adds') result = await adds({ quick, sizes, profile });
    else if (name === 'workers') result = await workers({ quick, clientProcs });
    else if (name === 'profile') result = await fanout({ sizes: sizes ?? [1000], quick, clientProcs, profile: true });
    allTargets.push(...(result.targets ?? []));
    for (const file of result.profiles ?? []) {
      console.log(`\nCPU profile of the gateway: ${relative(rootDir, file)}`);
      console.log(execFileSync(process.execPath, [join(benchDir, 'top-costs.mjs'), file], { encoding: 'utf8' }));
    }
    const file = writeResult(name, { scenario: name, machine: info, quick, clientProcs, pinning: { mode: pinningMode(), gateway: pinFor(true) ?? 'any', others: pinFor(false) ?? 'any' }, elapsedSec: Math.round((Date.now() - t0) / 1000), ...result });
    console.log(`\n${name}: done in ${Math.round((Date.now() - t0) / 1000)} s; results in ${file}`);
  } catch (e) {
    failed = true;
    console.error(`\n${name} FAILED: ${e.stack ?? e}`);
  }
}
if (allTargets.length) printTargets(allTargets);
console.log(`\nbench: finished in ${Math.round((Date.now() - started) / 1000)} s`);
process.exit(failed ? 1 : 0);

/** The gateway runs from dist/: say so when it is missing or older than src/. */
function checkDist() {
  const dist = join(rootDir, 'dist/server.js');
  if (!existsSync(dist)) {
    console.error('bench: dist/server.js is missing; run `npm run build` first');
    process.exit(2);
  }
  const builtAt = statSync(dist).mtimeMs;
  const newer = [];
  const walk = (d) => {
    for (const f of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, f.name);
      if (f.isDirectory()) walk(p);
      else if (p.endsWith('.ts') && statSync(p).mtimeMs > builtAt) newer.push(p.slice(rootDir.length + 1));
    }
  };
  walk(join(rootDir, 'src'));
  if (newer.length) console.warn(`bench: warning: dist/ is older than ${newer.join(', ')}; run \`npm run build\` to measure the current code`);
}
