/**
 * Every core: `--workers <n>` runs n gateway processes on one port
 * (node:cluster). Each worker is a whole gateway, with its own NATS
 * connection and cache, exactly as n gateways on n machines would be; the
 * primary serves nothing itself. This module owns the primary's side
 * (forking, restarting a worker that dies, forwarding a shutdown as a drain
 * of every worker and a SIGHUP as a schema reload of every worker) and the
 * few questions a worker asks it: the fleet's metrics, summed over workers
 * by prom-client's cluster aggregator, and the fleet's readiness (ready
 * while any worker is).
 *
 * Workers talk to the primary over node's IPC channel in messages whose
 * `type` starts with `resgraph:`; prom-client's own messages use that
 * channel too.
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { Logger } from '../log.js';

/** What a worker's gateway asks of the fleet, for `/metrics` and `/readyz`. */
export interface FleetHooks {
  /** every worker's metrics, aggregated (counters and gauges summed), in the Prometheus text format */
  metrics(): Promise<string>;
  /** how many workers are ready (NATS connected, not draining), of how many */
  readiness(): Promise<{ ready: number; workers: number }>;
}

type FleetMessage =
  | { type: 'resgraph:listening'; url: string; metricsUrl?: string }
  | { type: 'resgraph:ask'; id: number; question: 'metrics' | 'readiness' }
  | { type: 'resgraph:answer'; id: number; answer: unknown }
  | { type: 'resgraph:ready?'; id: number }
  | { type: 'resgraph:ready'; id: number; ready: boolean };

const isFleetMessage = (m: unknown): m is FleetMessage =>
  typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string' && (m as { type: string }).type.startsWith('resgraph:');

/** How long the primary waits for a worker's readiness answer, in ms: a busy or stuck worker counts as not ready. */
const readinessTimeout = 1000;
/** Restart back-off: the first delay, the longest, and how long a worker must live for its crash count to start over. */
const restartDelay = { first: 500, max: 30_000, stableAfter: 30_000 };

// --- in a worker --------------------------------------------------------------

export const isWorker = () => cluster.isWorker;

/** The hooks of a worker's gateway; `ready` says whether this worker is ready. */
export function workerHooks(ready: () => boolean): FleetHooks {
  let nextId = 0;
  const waiting = new Map<number, (answer: unknown) => void>();
  process.on('message', (m: unknown) => {
    if (!isFleetMessage(m)) return;
    if (m.type === 'resgraph:answer') {
      waiting.get(m.id)?.(m.answer);
      waiting.delete(m.id);
    } else if (m.type === 'resgraph:ready?') {
      process.send?.({ type: 'resgraph:ready', id: m.id, ready: ready() } satisfies FleetMessage);
    }
  });
  const ask = (question: 'metrics' | 'readiness') =>
    new Promise<unknown>((resolve) => {
      const id = nextId++;
      waiting.set(id, resolve);
      process.send?.({ type: 'resgraph:ask', id, question } satisfies FleetMessage);
    });
  return {
    metrics: async () => String(await ask('metrics')),
    readiness: async () => (await ask('readiness')) as { ready: number; workers: number },
  };
}

/** Makes this worker answer the aggregator's requests, with its gateway's registry (instead of prom-client's global one). */
export function shareMetrics(registry: Registry): void {
  // constructing one is what installs prom-client's listener in a worker
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
}

/** Tells the primary this worker is listening (it prints the URL once for the fleet). */
export function reportListening(url: string, metricsUrl?: string): void {
  process.send?.({ type: 'resgraph:listening', url, metricsUrl } satisfies FleetMessage);
}

// --- in the primary -----------------------------------------------------------

export interface PrimaryOptions {
  workers: number;
  logger: Logger;
  /** how long a worker's drain may take before the primary kills it, in ms */
  drainTimeout: number;
  /** called once every worker has started listening */
  onListening(url: string, metricsUrl: string | undefined): void;
}

/**
 * Forks the workers and keeps them running until a SIGINT or SIGTERM, then
 * drains them all and exits: 0 when every worker drained, 1 otherwise. A
 * worker that dies is started again after a back-off that doubles with each
 * crash in a row; one that dies before the fleet first listened (a bad
 * option, a bad schema, a port in use) stops the fleet with that worker's
 * exit code, since its replacement would fail the same way.
 */
export function runPrimary(opts: PrimaryOptions): void {
  const log = opts.logger;
  const aggregator = new AggregatorRegistry();
  let started = false;
  let stopping = false;
  let crashes = 0;
  let nextAsk = 0;
  const listening = new Set<Worker>();
  const readinessAsks = new Map<number, { answers: boolean[]; expected: number; done: () => void }>();

  const fork = () => {
    const worker = cluster.fork();
    const bornAt = Date.now();
    log.info('worker started', { worker: worker.id, pid: worker.process.pid });
    worker.on('message', (m: unknown) => {
      if (!isFleetMessage(m)) return;
      if (m.type === 'resgraph:listening') {
        listening.add(worker);
        if (!started && listening.size === opts.workers) {
          started = true;
          opts.onListening(m.url, m.metricsUrl);
        }
      } else if (m.type === 'resgraph:ask') {
        void answer(m.question).then((a) => {
          if (worker.isConnected()) worker.send({ type: 'resgraph:answer', id: m.id, answer: a } satisfies FleetMessage);
        });
      } else if (m.type === 'resgraph:ready') {
        const asked = readinessAsks.get(m.id);
        if (!asked) return;
        asked.answers.push(m.ready);
        if (asked.answers.length === asked.expected) asked.done();
      }
    });
    worker.once('exit', (code, signal) => {
      listening.delete(worker);
      if (stopping) return;
      if (!started) {
        // its own message says why (a bad option exits 2, a bad schema 1): the fleet ends the same way
        log.error('a worker exited while starting; stopping', { worker: worker.id, code, signal });
        return void stopAll(code || 1);
      }
      if (Date.now() - bornAt > restartDelay.stableAfter) crashes = 0;
      const delay = Math.min(restartDelay.first * 2 ** crashes++, restartDelay.max);
      log.error('worker exited; starting another', { worker: worker.id, pid: worker.process.pid, code, signal, inMs: delay });
      setTimeout(() => {
        if (!stopping) fork();
      }, delay).unref();
    });
  };

  const answer = async (question: 'metrics' | 'readiness'): Promise<unknown> => {
    if (question === 'metrics') return aggregator.clusterMetrics().catch((e: unknown) => `# cannot aggregate: ${(e as Error).message}\n`);
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected());
    const id = nextAsk++;
    const answers: boolean[] = [];
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, readinessTimeout);
      readinessAsks.set(id, { answers, expected: workers.length, done: () => (clearTimeout(timer), resolve()) });
      for (const w of workers) w.send({ type: 'resgraph:ready?', id } satisfies FleetMessage);
      if (workers.length === 0) resolve();
    });
    readinessAsks.delete(id);
    return { ready: answers.filter(Boolean).length, workers: opts.workers };
  };

  const stopAll = (code: number) => {
    if (stopping) return;
    stopping = true;
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    log.info('stopping: draining every worker', { workers: workers.length });
    let exitCode = code;
    let left = workers.length;
    const finish = () => process.exit(exitCode);
    if (left === 0) return finish();
    const killer = setTimeout(() => {
      log.error('workers still running after the drain timeout; killing them');
      for (const w of workers) w.process.kill('SIGKILL');
    }, opts.drainTimeout + 5000);
    for (const w of workers) {
      w.once('exit', (workerCode) => {
        if (workerCode !== 0 && exitCode === 0) exitCode = 1;
        if (--left === 0) {
          clearTimeout(killer);
          finish();
        }
      });
      // the worker's own signal handler drains it (see cli.ts)
      w.process.kill('SIGTERM');
    }
  };

  let firstSignalAt = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    const now = Date.now();
    // a terminal's Ctrl-C reaches the workers too, and npm may forward it once more: one keypress
    if (firstSignalAt !== 0) {
      if (now - firstSignalAt < 500) return;
      log.warn(`${signal} again; killing the workers`);
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
      process.exit(1);
    }
    firstSignalAt = now;
    log.info(`${signal} received; shutting down`);
    stopAll(0);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // each worker loads the schema itself and logs how its reload went (see cli.ts)
  process.on('SIGHUP', () => {
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    log.info('SIGHUP received; every worker reloads the schema', { workers: workers.length });
    for (const w of workers) w.process.kill('SIGHUP');
  });

  for (let i = 0; i < opts.workers; i++) fork();
}
