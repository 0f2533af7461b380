/**
 * The processes most scenarios need, started in order: nats-server, the
 * fixture service, the gateway (node dist/ via bench/gateway.mjs), the NATS
 * floor subscriber and the WebSocket client processes.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Hist } from './hist.mjs';
import { Processes, benchDir, resultsDir } from './procs.mjs';
import { natsChildArgs } from './nats.mjs';

export const subscriptionQuery = 'subscription Item($id: ID!) { item(id: $id) { id seq ts } }';

export async function startStack(scenario, { clients = 0, clientProcs = 1, floor = false, profile = false, logLevel = 'warn' } = {}) {
  const procs = new Processes(scenario);
  try {
    const nats = await procs.startNats();
    const service = await procs.startNode('service', 'fixture RES service + event publisher', 'fixture/service.mjs', { args: [nats.url, ...natsChildArgs()] });
    const execArgv = ['--expose-gc'];
    let profileFile;
    if (profile) {
      mkdirSync(join(resultsDir, 'profiles'), { recursive: true });
      profileFile = join(resultsDir, 'profiles', `gateway-${scenario}-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
      execArgv.push('--cpu-prof', `--cpu-prof-dir=${join(resultsDir, 'profiles')}`, `--cpu-prof-name=${profileFile.split('/').pop()}`, `--cpu-prof-interval=${process.env.PROF_INTERVAL ?? 500}`);
    }
    const gateway = await procs.startNode('gateway', `resgraph gateway (node dist/server.js${profile ? ', --cpu-prof' : ''})`, 'gateway.mjs', {
      args: [nats.url, join(benchDir, 'fixture/bench.graphql'), logLevel, ...natsChildArgs()],
      execArgv,
      fds: clients + 1024,
      gateway: true,
    });
    const floorProc = floor ? await procs.startNode('floor', 'plain NATS subscriber (latency floor)', 'clients/floor.mjs', { args: [nats.url, ...natsChildArgs()] }) : undefined;
    const pool = [];
    if (clients > 0) {
      const per = Math.ceil(clients / clientProcs);
      for (let i = 0; i < clientProcs; i++) {
        pool.push(
          await procs.startNode(`clients${clientProcs > 1 ? i + 1 : ''}`, 'graphql-ws clients (ws, load generator)', 'clients/ws-clients.mjs', {
            fds: per + 1024,
          }),
        );
      }
    }
    return { profileFile, procs, nats, service: service.rpc, gateway: gateway.rpc, gatewayUrl: gateway.info.url, floor: floorProc?.rpc, clients: new ClientPool(pool.map((p) => p.rpc)) };
  } catch (e) {
    await procs.stopAll();
    throw e;
  }
}

/** Several client processes used as one: connections are split evenly, reports merged. */
export class ClientPool {
  constructor(list) {
    this.list = list;
  }

  get size() {
    return this.list.length;
  }

  all(cmd, argsFor, timeoutMs) {
    return Promise.all(this.list.map((c, i) => c.call(cmd, typeof argsFor === 'function' ? argsFor(i) : argsFor, timeoutMs)));
  }

  split(total) {
    const per = Math.ceil(total / this.list.length);
    return this.list.map((_, i) => Math.max(0, Math.min(per, total - i * per)));
  }

  /** extra: {protocol: 'graphql-ws' | 'resgate', transport: 'ws' | 'raw'} (see clients/ws-clients.mjs) */
  async connect(url, total, extra = {}) {
    const counts = this.split(total);
    const r = await this.all('connect', (i) => ({ url, count: counts[i], ...extra }), 600_000);
    return { connected: sum(r, 'connected'), failed: sum(r, 'failed'), failSample: r.find((x) => x.failSample)?.failSample, ms: Math.max(...r.map((x) => x.ms)) };
  }

  /** ids: one id for everybody, or a list spread over all clients in order */
  async subscribe(ids, total) {
    const counts = this.split(total);
    let offset = 0;
    const slices = counts.map((c) => {
      const s = Array.isArray(ids) ? ids.slice(offset, offset + c) : ids;
      offset += c;
      return s;
    });
    const r = await this.all('subscribe', (i) => ({ query: subscriptionQuery, ids: slices[i] }), 600_000);
    return { subscribed: sum(r, 'subscribed'), firstResults: sum(r, 'firstResults'), complete: r.every((x) => x.complete), ms: Math.max(...r.map((x) => x.ms)) };
  }

  async waitFor(expect, timeoutMs) {
    const r = await this.all('waitFor', { expect, timeoutMs }, timeoutMs + 10_000);
    return { done: r.every((x) => x.done), behind: sum(r, 'behind'), ms: Math.max(...r.map((x) => x.ms)) };
  }

  async report(expect) {
    const r = await this.all('report', { expect });
    const hist = new Hist();
    for (const x of r) hist.merge(x.hist);
    const out = { hist };
    for (const k of ['received', 'reordered', 'duplicates', 'coalesced', 'errors', 'unexpectedCloses', 'subscribed', 'lost', 'open', 'firstResults']) out[k] = sum(r, k);
    out.errorSample = r.find((x) => x.errorSample)?.errorSample;
    out.lostSample = r.find((x) => x.lostSample)?.lostSample;
    return out;
  }
}

const sum = (list, k) => list.reduce((a, x) => a + (x[k] ?? 0), 0);
