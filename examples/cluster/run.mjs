#!/usr/bin/env node
/**
 * A resgraph fleet on one machine: a 3-node NATS cluster, the example
 * library service, and three gateways, each connected to its own NATS node
 * with the other two as fallbacks. Prints the three GraphQL URLs.
 *
 *   node examples/cluster/run.mjs [--base-port 4001]
 *
 * Gateways listen on base-port, base-port+1 and base-port+2; the NATS nodes
 * take free ports (client, cluster route and monitoring ports each).
 *
 * Ctrl-C (or SIGTERM) stops the gateways first (each drains: WebSocket
 * clients get close code 1012 and reconnect elsewhere), then the service,
 * then the NATS nodes. Every child runs in a process group of its own, which
 * is killed at the end, so nothing is left behind; a second Ctrl-C kills
 * everything at once.
 */
import { spawn } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { ensureBuilt, findNatsServer, freePort, root, signalGroup, stopOnSignals, waitForExit } from '../../scripts/processes.mjs';

const size = 3;
/** the web example's origins when it runs on Vite's dev server (`npm run dev:web`) */
const webOrigins = 'http://127.0.0.1:5173,http://localhost:5173';

let args;
try {
  args = parseArgs({ options: { 'base-port': { type: 'string', default: '4001' }, help: { type: 'boolean', short: 'h' } } }).values;
} catch (e) {
  console.error(`cluster: ${e.message.split('\n')[0]}`);
  process.exit(2);
}
if (args.help) {
  console.log(`Usage: node examples/cluster/run.mjs [--base-port <n>]

Starts 3 NATS nodes (clustered), the example library service and 3 resgraph
gateways on ports n, n+1, n+2 (default 4001-4003). Ctrl-C stops them all.`);
  process.exit(0);
}
const basePort = Number(args['base-port']);
if (!Number.isInteger(basePort) || basePort < 1 || basePort > 65535 - size) {
  console.error(`cluster: --base-port must be a port number, not ${JSON.stringify(args['base-port'])}`);
  process.exit(2);
}

// --- children ----------------------------------------------------------------------

const children = [];
let stopping = false;

/** Starts a child in its own process group; its output lines are prefixed with its name (quiet: errors only). */
function launch(name, command, argv, { quiet = false } = {}) {
  const proc = spawn(command, argv, { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const child = { name, proc, exited: false, waiters: new Set() };
  children.push(child);
  const onLine = (line, out) => {
    for (const w of child.waiters) w(line);
    // nodes starting together fail to reach each other's routes at first: expected, not worth showing
    if (quiet && (!/\[(ERR|FTL)\]/.test(line) || /Error trying to connect to route/.test(line))) return;
    out.write(`[${name}] ${line}\n`);
  };
  createInterface({ input: proc.stdout }).on('line', (l) => onLine(l, process.stdout));
  createInterface({ input: proc.stderr }).on('line', (l) => onLine(l, process.stderr));
  proc.once('error', (e) => {
    child.exited = true;
    fatal(`cannot start ${name}: ${e.message}`);
  });
  proc.once('exit', (code, signal) => {
    child.exited = true;
    if (stopping) return;
    const how = signal ?? `code ${code}`;
    // a gateway or a NATS node going away is what a fleet is for: the others carry on
    if (name.startsWith('gateway') || name.startsWith('nats')) console.log(`[${name}] exited (${how}); the others carry on`);
    else fatal(`${name} exited unexpectedly (${how}); stopping everything`);
  });
  /** the match of the first output line that matches re */
  child.waitFor = (re, ms) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.waiters.delete(w);
        reject(new Error(`${name} was not ready within ${ms / 1000} s`));
      }, ms);
      const w = (line) => {
        const m = re.exec(line);
        if (!m) return;
        clearTimeout(timer);
        child.waiters.delete(w);
        resolve(m);
      };
      child.waiters.add(w);
    });
  return child;
}

/** Gateways first (they drain), then the service, then the NATS nodes; each group is killed after. */
async function stopAll(code) {
  if (stopping) return;
  stopping = true;
  const order = ['gateway', 'library', 'nats'];
  for (const kind of order) {
    const group = children.filter((c) => c.name.startsWith(kind));
    await Promise.all(
      group.map(async (child) => {
        if (!child.exited) {
          child.proc.kill('SIGTERM');
          if (!(await waitForExit(child, 12_000))) console.error(`${child.name} did not stop within 12 s; killing it`);
        }
        signalGroup(child, 'SIGKILL');
      }),
    );
  }
  if (children.length > 0) console.log('stopped');
  process.exit(code);
}

function fatal(message) {
  console.error(message);
  void stopAll(1);
}

stopOnSignals(children, stopAll, () => stopping);

// --- set-up ------------------------------------------------------------------------

async function poll(fn, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch {
      // not answering yet
    }
    if (stopping) throw new Error('stopping');
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function main() {
  ensureBuilt(['tsx']);
  const natsBin = findNatsServer();
  if (!natsBin) {
    console.error('nats-server is not installed; run: sudo apt-get install -y nats-server');
    process.exit(1);
  }

  // --- the NATS cluster: every node routes to the other two
  const nodes = [];
  for (let i = 0; i < size; i++) nodes.push({ client: await freePort(), cluster: await freePort(), monitor: await freePort() });
  const procs = nodes.map((n, i) =>
    launch(`nats-${i + 1}`, natsBin, [
      '-a', '127.0.0.1',
      '-p', String(n.client),
      '-m', String(n.monitor),
      '--cluster_name', 'resgraph-example',
      '--cluster', `nats://127.0.0.1:${n.cluster}`,
      '--routes', nodes.filter((_, j) => j !== i).map((o) => `nats://127.0.0.1:${o.cluster}`).join(','),
    ], { quiet: true }),
  );
  await Promise.all(procs.map((p) => p.waitFor(/Server is ready/, 10_000)));
  await poll(
    async () => {
      const routes = await Promise.all(nodes.map(async (n) => (await (await fetch(`http://127.0.0.1:${n.monitor}/routez`)).json()).num_routes));
      return routes.every((r) => r >= size - 1);
    },
    10_000,
    'the NATS routes',
  );
  const natsUrls = nodes.map((n) => `nats://127.0.0.1:${n.client}`);
  console.log(`NATS cluster up: ${natsUrls.join(' ')}`);

  // --- the example service, given every node (it connects to one and fails over to the others)
  const tsx = realpathSync(join(root, 'node_modules', '.bin', 'tsx'));
  const service = launch('library', process.execPath, [tsx, 'examples/library/service.ts', '--nats', natsUrls.join(',')]);
  await service.waitFor(/library service ready/, 30_000);

  // --- three gateways, each with its own node first
  const gateways = [];
  const urls = await Promise.all(
    [0, 1, 2].map(async (i) => {
      const servers = [0, 1, 2].map((k) => natsUrls[(i + k) % size]).join(',');
      const gw = launch(`gateway-${i + 1}`, process.execPath, [
        'dist/cli.js', '--nats', servers, '--schema', 'schema', '--port', String(basePort + i), '--header-auth', 'library.session.header',
        // the web example on Vite's dev server (npm run dev:web) may use any of them
        '--allow-origin', webOrigins,
      ]);
      gateways[i] = gw;
      const [, url] = await gw.waitFor(/resgraph listening on (\S+)/, 15_000);
      await poll(async () => (await fetch(new URL('/readyz', url))).ok, 15_000, `gateway ${i + 1} to be ready`);
      return url;
    }),
  );
  if (stopping) return;
  console.log(`
resgraph fleet is up: 3 gateways, one NATS cluster.
${urls.map((u, i) => `  gateway ${i + 1}: ${u}   (pid ${gateways[i].proc.pid}; metrics: ${new URL('/metrics', u)}; probes: /healthz, /readyz)`).join('\n')}

Subscribe on one gateway and change the data through another:
  curl -sN ${urls[2]} -H 'accept: text/event-stream' -H 'content-type: application/json' \\
    -d '{"query":"subscription { book(id: \\"3\\") { title } }"}'
  curl -s ${urls[0]} -H 'content-type: application/json' \\
    -d '{"query":"mutation { setBookTitle(id: \\"3\\", title: \\"Dune Messiah\\") }"}'
The web page against one of them: npm run dev:web, then open
  http://127.0.0.1:5173/?gateway=${encodeURIComponent(urls[0])}
Drain one gateway (its WebSocket clients reconnect to another): kill -TERM <pid>
Press Ctrl-C to stop everything.
`);
}

main().catch((e) => {
  if (!stopping) fatal(`cluster: ${e.message}`);
});
