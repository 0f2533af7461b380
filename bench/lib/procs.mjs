/**
 * Starting, measuring and stopping the processes of one bench run:
 * nats-server, the fixture RES service, the gateway (compiled dist/) and the
 * load generators, each a separate OS process on 127.0.0.1. CPU seconds and
 * RSS come from /proc/<pid>/stat and /proc/<pid>/status, so a process is
 * measured from outside, the same way for node and nats-server.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { findNatsServer, freePort } from '../../scripts/processes.mjs';
import { rpc } from './ipc.mjs';
import { externalNats } from './nats.mjs';

export { freePort };

export const benchDir = join(dirname(fileURLToPath(import.meta.url)), '..');
export const rootDir = join(benchDir, '..');
export const resultsDir = join(benchDir, 'results');
export const logsDir = join(resultsDir, 'logs');

let clkTck = 100;
try {
  clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // 100 on every Linux we run on
}

/** Whether something accepts TCP connections on 127.0.0.1:port now. */
export function canConnect(port) {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** CPU seconds (user + system) and memory of a process, from /proc. */
export function procStat(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields after the command: [0] state ... [11] utime [12] stime (proc(5) fields 14, 15)
    const cpu = (Number(f[11]) + Number(f[12])) / clkTck;
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0) * 1024;
    // main thread (where JavaScript runs): ns on CPU, ns runnable but waiting for a CPU
    const [runNs, waitNs] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ').map(Number);
    return { cpu, rss: kb('VmRSS'), hwm: kb('VmHWM'), waitSec: waitNs / 1e9, runSec: runNs / 1e9 };
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds a process's threads have run, from /proc/<pid>/task/<tid>/schedstat
 * (nanoseconds): the same time as /proc/<pid>/stat's utime + stime, without
 * their 10 ms clock ticks, so a phase of a few tens of milliseconds of work can
 * be measured. Threads that ended are not counted (stat still counts them):
 * compare the two over a phase.
 */
export function threadsCpuSec(pid) {
  let ns = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        // the thread ended meanwhile
      }
    }
  } catch {
    return undefined;
  }
  return ns / 1e9;
}

/** The pids of a process's children, grandchildren and so on (a `--workers` gateway's workers). */
export function descendantsOf(pid) {
  const out = [];
  const walk = (p) => {
    let kids = [];
    try {
      for (const tid of readdirSync(`/proc/${p}/task`)) kids.push(...readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
    } catch {
      // gone meanwhile
    }
    for (const k of kids) {
      out.push(k);
      walk(k);
    }
  };
  walk(pid);
  return out;
}

/** procStat summed over a process and its descendants: the cost of a gateway that runs as several processes. */
export function procTreeStat(pid) {
  const own = procStat(pid);
  if (!own) return undefined;
  for (const d of descendantsOf(pid)) {
    const s = procStat(d);
    if (!s) continue;
    for (const k of ['cpu', 'rss', 'hwm', 'waitSec', 'runSec']) own[k] += s[k];
  }
  return own;
}

/** Our processes' pids, with the descendants of those that run as several. */
function ourPids(procs) {
  return new Set([process.pid, ...procs.list.flatMap((p) => (p.tree ? [p.pid, ...descendantsOf(p.pid)] : [p.pid]))]);
}

/** Whole-machine CPU time from /proc/stat, in seconds (all cores): busy in processes, and in interrupts (loopback networking runs there too). */
export function machineCpu() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal ...
  const total = v.reduce((a, b) => a + b, 0);
  return {
    process: (v[0] + v[1] + v[2]) / clkTck,
    irq: ((v[5] ?? 0) + (v[6] ?? 0)) / clkTck,
    // time the hypervisor ran something else while our virtual CPUs wanted to run
    steal: (v[7] ?? 0) / clkTck,
    busy: (total - v[3] - (v[4] ?? 0)) / clkTck,
    total: total / clkTck,
  };
}

/** CPU seconds of every process on the machine, by pid, with its command name. */
export function allProcesses() {
  const out = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(d), { comm, cpu: (Number(f[11]) + Number(f[12])) / clkTck });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The soft and hard limits on open files of this process. */
export function fdLimits() {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const [soft, hard] = line.replace('Max open files', '').trim().split(/\s+/);
  const n = (s) => (s === 'unlimited' ? Infinity : Number(s));
  return { soft: n(soft), hard: n(hard) };
}

/**
 * The processes of one run. Everything started here is stopped by stopAll,
 * also when the orchestrator fails or is interrupted.
 */
/**
 * CPU pinning (taskset). Mode `others` (default): every process of the bench
 * except the gateway shares the last core(s), so load generators and
 * broker stay off the gateway's core 0, while the gateway itself may still use
 * any core (V8 runs GC and compilation on helper threads: pinning the gateway
 * to one core would make them compete with its main thread). Mode `split`:
 * the gateway is also pinned, to core 0. Mode `none`: the OS places everything.
 */
const canPin = cpus().length > 1 && existsSync('/usr/bin/taskset');
const pinning = { mode: canPin ? 'others' : 'none' };
export function setPinning(mode) {
  pinning.mode = canPin ? mode : 'none';
}
export function pinFor(isGateway) {
  if (pinning.mode === 'none') return undefined;
  const n = cpus().length;
  if (isGateway) return pinning.mode === 'split' ? '0' : undefined;
  return n === 2 ? '1' : `1-${n - 1}`;
}
export function pinningMode() {
  return pinning.mode;
}
function pinned(argv, isGateway) {
  const cores = pinFor(isGateway);
  return cores ? ['taskset', '-c', cores, ...argv] : argv;
}

const live = new Set();
process.on('exit', () => {
  for (const p of live) p.killAllNow();
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    process.stderr.write(`bench: ${sig}; stopping everything\n`);
    process.exit(130);
  });
}

export class Processes {
  constructor(scenario) {
    live.add(this);
    this.scenario = scenario;
    /** {name, child, role, rpc?} in start order */
    this.list = [];
    mkdirSync(logsDir, { recursive: true });
  }

  logFile(name) {
    return join(logsDir, `${this.scenario}-${name}.log`);
  }

  track(name, role, child, logName = name) {
    const entry = { name, role, child, pid: child.pid, log: this.logFile(logName) };
    this.list.push(entry);
    const log = createWriteStream(entry.log);
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    child.once('exit', () => setTimeout(() => log.end(), 100));
    return entry;
  }

  /** Starts a plain nats-server on a free port, unless the run was given one (--nats): then that one, not measured. */
  async startNats() {
    const given = externalNats();
    if (given) return { name: 'nats-server', role: 'broker (given with --nats)', url: given.url, external: true };
    const bin = findNatsServer();
    if (!bin) throw new Error('nats-server is not installed (on PATH or in /usr/sbin): apt-get install -y nats-server');
    const port = await freePort();
    const argv = pinned([bin, '-a', '127.0.0.1', '-p', String(port)], false);
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    const entry = this.track('nats-server', 'broker', child);
    entry.cores = pinFor(false);
    const deadline = Date.now() + 10_000;
    while (!(await canConnect(port))) {
      if (child.exitCode !== null) throw new Error(`nats-server exited (${child.exitCode}); see ${this.logFile('nats-server')}`);
      if (Date.now() > deadline) throw new Error('nats-server did not start within 10 s');
      await sleep(20);
    }
    entry.url = `nats://127.0.0.1:${port}`;
    return entry;
  }

  /**
   * Starts a node script (an ES module under bench/) as a child with IPC.
   * `fds`: open files it needs; the soft limit is raised through bash's ulimit when lower.
   */
  async startNode(name, role, script, { args = [], execArgv = [], fds = 0, env = {}, gateway = false, logName } = {}) {
    const argv = withFds(name, fds, pinned([process.execPath, ...execArgv, join(benchDir, script), ...args], gateway));
    const stdio = ['ignore', 'pipe', 'pipe', 'ipc'];
    const opts = { stdio, cwd: rootDir, env: { ...process.env, ...env } };
    const child = spawn(argv[0], argv.slice(1), opts);
    const entry = this.track(name, role, child, logName);
    entry.cores = pinFor(gateway);
    entry.rpc = rpc(child, name);
    entry.info = await entry.rpc.ready(60_000).catch((e) => {
      throw new Error(`${e.message}; see ${entry.log}`);
    });
    return entry;
  }

  /**
   * Starts a program that is not one of ours (Resgate): no IPC; ready when its
   * output matches `readyWhen`. Stopped with SIGTERM.
   */
  async startProgram(name, role, argv, { fds = 0, gateway = false, logName, readyWhen, timeoutMs = 15_000 } = {}) {
    const full = withFds(name, fds, pinned(argv, gateway));
    const child = spawn(full[0], full.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], cwd: rootDir });
    const entry = this.track(name, role, child, logName);
    entry.cores = pinFor(gateway);
    let out = '';
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} not ready within ${timeoutMs} ms; see ${entry.log}`)), timeoutMs);
      const onData = (d) => {
        out += d.toString();
        if (readyWhen.test(out)) {
          clearTimeout(timer);
          child.stdout.off('data', onData);
          child.stderr.off('data', onData);
          resolve();
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot run ${argv[0]}: ${e.message}`));
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code}) before it was ready; see ${entry.log}`));
      });
    });
    entry.output = out;
    return entry;
  }

  /** CPU seconds and RSS of every tracked process, keyed by name. */
  sample() {
    const out = {};
    for (const p of this.list) if (p.child.exitCode === null && p.child.signalCode === null) out[p.name] = p.tree ? procTreeStat(p.pid) : procStat(p.pid);
    return out;
  }

  get(name) {
    return this.list.find((p) => p.name === name);
  }

  /** Stops everything, newest first: asks node children to stop, then kills what is left. */
  async stopAll() {
    for (const p of [...this.list].reverse()) await stopEntry(p);
  }

  /** Stops the named processes and forgets them (their names can be used again). */
  async stop(...names) {
    for (const p of [...this.list].reverse()) {
      if (!names.includes(p.name)) continue;
      await stopEntry(p);
      this.list.splice(this.list.indexOf(p), 1);
    }
  }

  /** Last resort on orchestrator exit: synchronous kill of anything still running. */
  killAllNow() {
    for (const p of this.list) {
      if (p.child.exitCode === null && p.child.signalCode === null) {
        try {
          p.child.kill('SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  }
}

async function stopEntry(p) {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = new Promise((r) => p.child.once('exit', r));
  if (p.rpc) {
    p.rpc.call('stop', {}, 10_000).catch(() => undefined);
  } else {
    p.child.kill('SIGTERM');
  }
  const done = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
  if (!done) {
    p.child.kill('SIGKILL');
    await Promise.race([exited, sleep(2000)]);
  }
}

/** argv run through bash's `ulimit -n` when the process needs more open files than our soft limit. */
function withFds(name, fds, argv) {
  const { soft, hard } = fdLimits();
  if (fds <= soft) return argv;
  const want = Math.min(hard === Infinity ? fds : hard, Math.max(fds, 1024));
  if (want < fds) process.stderr.write(`warning: ${name} needs ${fds} open files but the hard limit is ${hard}\n`);
  return ['bash', '-c', `ulimit -n ${want} && exec "$0" "$@"`, ...argv];
}

/**
 * Samples CPU/RSS of the processes periodically during a phase, and reports
 * per-process deltas and peaks, plus the CPU that other processes on the
 * machine used meanwhile (the noise in the numbers).
 */
export class PhaseMeter {
  constructor(procs, intervalMs = 200) {
    this.procs = procs;
    this.start = procs.sample();
    this.machineStart = machineCpu();
    this.allStart = allProcesses();
    this.selfStart = process.cpuUsage();
    this.t0 = performance.now();
    this.peak = {};
    const tick = () => {
      const s = procs.sample();
      for (const [k, v] of Object.entries(s)) if (v) this.peak[k] = Math.max(this.peak[k] ?? 0, v.rss);
    };
    tick();
    this.timer = setInterval(tick, intervalMs);
  }

  stop() {
    clearInterval(this.timer);
    const end = this.procs.sample();
    const wall = (performance.now() - this.t0) / 1000;
    const machine = machineCpu();
    const allEnd = allProcesses();
    const self = process.cpuUsage(this.selfStart);
    const perProcess = {};
    const ours = ourPids(this.procs);
    for (const [name, e] of Object.entries(end)) {
      const s = this.start[name];
      if (!e || !s) continue;
      const cpu = e.cpu - s.cpu;
      perProcess[name] = {
        cpuSec: round(cpu, 2),
        cpuPct: round((100 * cpu) / wall, 0),
        rssMB: mb(e.rss),
        peakRssMB: mb(Math.max(this.peak[name] ?? 0, e.rss)),
        // share of the phase its main thread was ready to run but had no CPU: starvation by other processes
        waitPct: round((100 * (e.waitSec - s.waitSec)) / wall, 0),
      };
    }
    perProcess.orchestrator = { cpuSec: round((self.user + self.system) / 1e6, 2), cpuPct: round((100 * (self.user + self.system)) / 1e6 / wall, 0) };
    // everybody else: processes that are not ours, by command name
    const others = new Map();
    for (const [pid, e] of allEnd) {
      if (ours.has(pid)) continue;
      const d = e.cpu - (this.allStart.get(pid)?.cpu ?? 0);
      if (d > 0) others.set(e.comm, (others.get(e.comm) ?? 0) + d);
    }
    // all process CPU on the machine (also of processes that ended during the phase, which a /proc scan misses) minus ours
    const oursCpu = Object.values(perProcess).reduce((a, v) => a + (v.cpuSec ?? 0), 0);
    const otherCpu = Math.max([...others.values()].reduce((a, b) => a + b, 0), machine.process - this.machineStart.process - oursCpu);
    const topOthers = [...others.entries()].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k, v]) => `${k} ${round(v, 1)}s`);
    const total = machine.total - this.machineStart.total || 1;
    return {
      wallSec: round(wall, 2),
      perProcess,
      /** CPU seconds that processes not started by this bench used during the phase (other engineers' tests) */
      otherCpuSec: round(otherCpu, 2),
      otherTop: topOthers.join(', '),
      /** interrupt time (loopback networking is largely here), not attributed to any process */
      irqCpuSec: round(machine.irq - this.machineStart.irq, 2),
      /** CPU time the hypervisor took from this VM's cores during the phase (all cores) */
      stealSec: round(machine.steal - this.machineStart.steal, 2),
      machineBusyPct: round((100 * (machine.busy - this.machineStart.busy)) / total, 0),
    };
  }
}

/**
 * Waits (at most maxMs) for a moment when processes that are not ours use
 * under `threshold` of a core, two half-second windows in a row: other
 * engineers' test runs on this machine otherwise land in the measurements.
 */
export async function waitQuiet(procs, { maxMs = 10_000, threshold = 0.25 } = {}) {
  const t0 = Date.now();
  const ours = ourPids(procs);
  const otherCpu = (a, b) => {
    let sum = 0;
    for (const [pid, e] of b) if (!ours.has(pid)) sum += e.cpu - (a.get(pid)?.cpu ?? e.cpu);
    return sum;
  };
  let calm = 0;
  let last = 0;
  while (Date.now() - t0 < maxMs) {
    const a = allProcesses();
    await sleep(500);
    last = otherCpu(a, allProcesses()) / 0.5;
    calm = last < threshold ? calm + 1 : 0;
    if (calm >= 2) return { quiet: true, waitedMs: Date.now() - t0, otherCores: round(last, 2) };
  }
  return { quiet: false, waitedMs: Date.now() - t0, otherCores: round(last, 2) };
}

export const mb = (bytes) => round(bytes / 1048576, 1);
export function round(x, d = 1) {
  if (x === null || x === undefined || Number.isNaN(x)) return null;
  const f = 10 ** d;
  return Math.round(x * f) / f;
}
