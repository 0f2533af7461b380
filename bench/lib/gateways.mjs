/**
 * The gateways of the `compare` and `size` scenarios, started the same way
 * on the same nats-server: resgraph (node dist/ through bench/gateway.mjs,
 * with its IPC hooks), Resgate (the Go binary, no hooks: measured from /proc
 * only) and the relay (bench/fixture/relay.mjs: the Node floor, the least a
 * gateway on nats.js and ws does per event). Each gets the gateway's place
 * in the CPU pinning (see procs.mjs).
 */
import { accessSync, constants, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { benchDir, canConnect, freePort, resultsDir, rootDir, sleep } from './procs.mjs';
import { externalNats, natsChildArgs } from './nats.mjs';

/** The Resgate binary: RESGATE_BIN, else ../shared/resgate/resgate beside the repository; or why there is none (or why it cannot join the run's NATS). */
export function findResgate() {
  const { nkey, token, tokenFile, user } = externalNats()?.natsClient ?? {};
  if (nkey || token || tokenFile || user) {
    return { reason: 'Resgate takes NATS credentials only as a creds file (--creds) or in the URL; run with --nats-creds, or with them in the --nats URL' };
  }
  const fromEnv = process.env.RESGATE_BIN;
  const bin = fromEnv || resolve(rootDir, '../shared/resgate/resgate');
  try {
    accessSync(bin, constants.X_OK);
    return { bin };
  } catch {
    return { reason: `no executable Resgate at ${bin}${fromEnv ? ' (RESGATE_BIN)' : ' (set RESGATE_BIN to point at one)'}` };
  }
}

/** Resgate's flags for the run's NATS options (see findResgate for the ones it lacks). */
function resgateNatsArgs() {
  const { creds, tlsCa, tlsCert, tlsKey } = externalNats()?.natsClient ?? {};
  return [
    ...(creds ? ['--creds', creds] : []),
    ...(tlsCa ? ['--natsrootca', tlsCa] : []),
    ...(tlsCert ? ['--natscert', tlsCert, '--natskey', tlsKey] : []),
  ];
}

/** `resgraph-w2` → 2: a resgraph started as the command with `--workers n`; undefined for the others. */
export const workersOf = (kind) => (/^resgraph-w(\d+)$/.exec(kind) ? Number(kind.slice('resgraph-w'.length)) : undefined);

/**
 * Starts a gateway as process `gateway` of `procs`. `kind`: `resgraph`
 * (bench/gateway.mjs, with IPC hooks), `resgraph-res` (the same, for
 * clients of Resgate's protocols: its RES WebSocket and `/api`),
 * `resgraph-w<n>` (`node dist/cli.js
 * --workers n`, measured from /proc over the primary and its workers),
 * `relay` (bench/fixture/relay.mjs, graphql-transport-ws only, IPC `stats`
 * and `stop`), or `resgate`. `requestTimeoutMs`: the NATS request timeout of
 * resgraph (not `resgraph-w<n>`), the relay and Resgate, when not their
 * default 3 s. Returns {kind, url (HTTP base for queries), wsUrl, rpc (node
 * kinds only), pid, profileFile}.
 */
export async function startGateway(procs, kind, natsUrl, { fds = 1024, profile = false, tag = '', resgateBin, requestTimeoutMs } = {}) {
  const workers = workersOf(kind);
  if (workers !== undefined) {
    const port = await freePort();
    const argv = [process.execPath, join(rootDir, 'dist/cli.js'), '--workers', String(workers), '--port', String(port), '--host', '127.0.0.1'];
    argv.push('--nats', natsUrl, ...natsChildArgs(), '--schema', join(benchDir, 'fixture/bench.graphql'), '--log-level', 'warn');
    const e = await procs.startProgram('gateway', `resgraph --workers ${workers} (node dist/cli.js)`, argv, {
      fds,
      gateway: true,
      logName: `resgraph-w${workers}${tag}`,
      readyWhen: /resgraph listening on/,
      timeoutMs: 30_000,
    });
    e.tree = true;
    const url = `http://127.0.0.1:${port}/graphql`;
    // listening is not ready: every worker's NATS connection must be up too
    const deadline = Date.now() + 30_000;
    for (;;) {
      const r = await fetch(`http://127.0.0.1:${port}/readyz`).then((res) => res.json(), () => undefined);
      if (r?.workers?.ready === workers) break;
      if (Date.now() > deadline) throw new Error(`resgraph --workers ${workers} not ready within 30 s: ${JSON.stringify(r)}`);
      await sleep(100);
    }
    return { kind, url, wsUrl: url, pid: e.pid };
  }
  if (kind === 'resgate') {
    const port = await freePort();
    const e = await procs.startProgram('gateway', 'Resgate 1.8 (Go binary)', [resgateBin, '-n', natsUrl, ...resgateNatsArgs(), '-i', '127.0.0.1', '-p', String(port), ...(requestTimeoutMs ? ['-r', String(requestTimeoutMs)] : [])], {
      fds,
      gateway: true,
      logName: `resgate${tag}`,
      readyWhen: /Listening on/,
    });
    // Resgate logs "Listening on" before its socket accepts (a client connecting at once was refused 5 times in 20 here)
    const deadline = Date.now() + 10_000;
    while (!(await canConnect(port))) {
      if (Date.now() > deadline) throw new Error(`Resgate logged "Listening on" but does not accept on port ${port} within 10 s; see ${e.log}`);
      await sleep(5);
    }
    return { kind, url: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}/`, pid: e.pid };
  }
  const relay = kind === 'relay';
  // BENCH_NODE_FLAGS: extra flags for the Node gateways (resgraph, the relay), e.g. --trace-gc
  const execArgv = [...(relay ? [] : ['--expose-gc']), ...(process.env.BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? [])];
  let profileFile;
  if (profile) {
    mkdirSync(join(resultsDir, 'profiles'), { recursive: true });
    profileFile = join(resultsDir, 'profiles', `${relay ? 'relay' : 'gateway'}-compare${tag}-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
    execArgv.push('--cpu-prof', `--cpu-prof-dir=${join(resultsDir, 'profiles')}`, `--cpu-prof-name=${profileFile.split('/').pop()}`, `--cpu-prof-interval=${process.env.PROF_INTERVAL ?? 500}`);
  }
  const env = requestTimeoutMs ? { BENCH_REQUEST_TIMEOUT_MS: String(requestTimeoutMs) } : {};
  const how = profile ? ', --cpu-prof' : '';
  if (relay) {
    const e = await procs.startNode('gateway', `relay: the Node floor, nats.js + ws, no GraphQL (bench/fixture/relay.mjs${how})`, 'fixture/relay.mjs', {
      args: [natsUrl, ...natsChildArgs()],
      execArgv,
      fds,
      gateway: true,
      logName: `relay${tag}`,
      env,
    });
    return { kind, url: e.info.url, wsUrl: e.info.url, rpc: e.rpc, pid: e.pid, profileFile };
  }
  const e = await procs.startNode('gateway', `resgraph gateway (node dist/server.js${how})`, 'gateway.mjs', {
    args: [natsUrl, join(benchDir, 'fixture/bench.graphql'), 'warn', ...natsChildArgs()],
    execArgv,
    fds,
    gateway: true,
    logName: `${kind}${tag}`,
    env,
  });
  // `resgraph-res`: the same gateway, its clients speaking Resgate's protocol on its RES WebSocket path (/)
  const wsUrl = kind === 'resgraph-res' ? new URL('/', e.info.url).href.replace(/^http/, 'ws') : e.info.url;
  return { kind, url: e.info.url, wsUrl, rpc: e.rpc, pid: e.pid, profileFile };
}
