#!/usr/bin/env node
/**
 * `npm start`: everything needed to try resgraph on one machine.
 *
 *   1. builds dist/ when it is missing or older than src/;
 *   2. unless a NATS URL is given (--nats or RESGRAPH_NATS), starts a local
 *      nats-server on 127.0.0.1:4222, or on a free port if 4222 is taken;
 *      the gateway's --nats-* options (TLS, creds, NKey, token, user and
 *      password: see docs/configuration.md, "Connecting to NATS") go, as given, to both the
 *      service and the gateway, which check them;
 *   3. starts the example library service (examples/library/service.ts, via tsx);
 *   4. starts the gateway (dist/cli.js) on port 4000 (--port or RESGRAPH_PORT
 *      to change it), accepting only the web example's trusted documents
 *      (--persisted-documents with its codegen manifest, --persisted-only;
 *      --allow-any-document accepts any document, for GraphiQL and curl),
 *      and prints the GraphiQL URL;
 *   5. starts the web example (examples/web) on Vite's dev server, port 5173
 *      or a free one if that is taken, and prints the page's URL.
 *
 * Ctrl-C stops the web server, the gateway, the service, then nats-server, in turn
 * so they can shut down cleanly; a second Ctrl-C kills them at once. Each
 * child runs in its own process group, so the terminal's Ctrl-C reaches only
 * this script, which decides the order.
 */
import { spawn, spawnSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { ensureBuilt as ensureBuiltWith, findNatsServer, freePort, root, signalGroup, stopOnSignals, waitForExit } from './processes.mjs';


/** Running children, in start order. */
const children = [];
let stopping = false;

function fatal(message) {
  console.error(message);
  void stopAll(1);
}

// --- options -------------------------------------------------------------------

/**
 * The --nats-* flags (and their values), passed through as given: the service
 * and the gateway read them with the gateway's own option table and say what
 * is wrong with them.
 */
function splitNatsFlags(argv) {
  const natsFlags = [];
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!/^--nats-[a-z-]+/.test(a)) rest.push(a);
    else if (a.includes('=') || i + 1 === argv.length) natsFlags.push(a);
    else natsFlags.push(a, argv[++i]);
  }
  return { natsFlags, rest };
}
const { natsFlags, rest } = splitNatsFlags(process.argv.slice(2));

let args;
try {
  args = parseArgs({
    args: rest,
    options: {
      nats: { type: 'string' },
      port: { type: 'string' },
      'allow-any-document': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  }).values;
} catch (e) {
  console.error(`start: ${e.message.split('\n')[0]}`);
  process.exit(2);
}
if (args.help) {
  console.log(`Usage: npm start [-- --nats <url> [--nats-creds <file> ...]] [-- --port <n>] [-- --allow-any-document]

Starts nats-server (unless --nats or RESGRAPH_NATS names one), the example
library service, the resgraph gateway and the web example (Vite's dev
server), and stops them all on Ctrl-C. The gateway's --nats-* options
(--nats-creds, --nats-nkey, --nats-token, --nats-user, --nats-password,
--nats-tls-ca, --nats-tls-cert, --nats-tls-key, ...; see resgraph --help)
go to both the service and the gateway, for a secured NATS. The gateway
accepts only the web example's trusted documents unless --allow-any-document
is given (for GraphiQL and curl).`);
  process.exit(0);
}
const configuredNats = args.nats || process.env.RESGRAPH_NATS || undefined;
if (natsFlags.length > 0 && !configuredNats) {
  console.error('start: the --nats-* options need --nats <url>: the local nats-server started otherwise is not secured');
  process.exit(2);
}
const port = args.port || process.env.RESGRAPH_PORT || '4000';
/** the web example's trusted documents (npm run codegen writes them) */
const webManifest = 'examples/web/src/gql/persisted-documents.json';
const trustedDocuments = args['allow-any-document']
  ? ['--persisted-documents', webManifest]
  : ['--persisted-documents', webManifest, '--persisted-only'];

// --- build -----------------------------------------------------------------------

const ensureBuilt = () => ensureBuiltWith(['tsx', 'vite']);

// --- nats-server -------------------------------------------------------------

function installNatsServer() {
  const missing = 'nats-server is not installed; run: sudo apt-get install -y nats-server';
  if (process.getuid?.() !== 0) {
    console.error(missing);
    process.exit(1);
  }
  console.log('nats-server is not installed; installing it with: apt-get update && apt-get install -y nats-server');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const step of [['update'], ['install', '-y', 'nats-server']]) {
    console.log(`$ apt-get ${step.join(' ')}`);
    const r = spawnSync('apt-get', step, { stdio: 'inherit', env });
    if (r.status !== 0) {
      console.error(r.error ? `cannot run apt-get: ${r.error.message}` : `apt-get ${step[0]} failed`);
      console.error('Install nats-server (https://docs.nats.io) and run npm start again, or pass --nats <url>.');
      process.exit(1);
    }
  }
  const bin = findNatsServer();
  if (!bin) {
    console.error('apt-get finished but nats-server is still not on PATH or in /usr/sbin');
    process.exit(1);
  }
  return bin;
}

function isPortFree(p) {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(p, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

async function startNatsServer() {
  const bin = findNatsServer() ?? installNatsServer();
  const natsPort = (await isPortFree(4222)) ? 4222 : await freePort();
  if (natsPort !== 4222) console.log(`port 4222 is taken; starting nats-server on ${natsPort}`);
  const child = launch('nats', bin, ['-a', '127.0.0.1', '-p', String(natsPort)], { quiet: true });
  await child.waitFor(/Server is ready/, 10_000);
  return `nats://127.0.0.1:${natsPort}`;
}

// --- children --------------------------------------------------------------------

/**
 * Starts a child in its own process group, prefixes its output with its name
 * (a quiet child shows only errors), and stops everything if it dies while
 * it is needed.
 */
function launch(name, command, argv, { quiet = false } = {}) {
  if (stopping) throw new Error('stopping');
  const proc = spawn(command, argv, { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const child = { name, proc, exited: false, lines: [], waiters: [] };
  children.push(child);
  const onLine = (line, stream) => {
    child.lines.push(line);
    if (child.lines.length > 50) child.lines.shift();
    for (const w of [...child.waiters]) w(line);
    if (!quiet || /\[(ERR|FTL)\]/.test(line)) stream.write(`[${name}] ${line}\n`);
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
    if (quiet) for (const l of child.lines) process.stderr.write(`[${name}] ${l}\n`);
    const portTaken = name === 'gateway' && child.lines.some((l) => l.includes('the port is in use'));
    const hint = portTaken ? ` (another program has port ${port}; try: npm start -- --port <n>)` : '';
    fatal(`${name} exited unexpectedly (${signal ?? `code ${code}`}); stopping${hint}`);
  });
  /** Resolves with the match of the first output line matching re. */
  child.waitFor = (re, ms) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} did not start within ${ms / 1000} s`)), ms);
      const w = (line) => {
        const m = re.exec(line);
        if (!m) return;
        clearTimeout(timer);
        child.waiters.splice(child.waiters.indexOf(w), 1);
        resolve(m);
      };
      child.waiters.push(w);
      proc.once('exit', () => {
        clearTimeout(timer);
        reject(new Error(`${name} exited before it was ready`));
      });
    });
  return child;
}

/** Stops the children in reverse start order (gateway, service, nats-server), then exits. */
async function stopAll(code) {
  if (stopping) return;
  stopping = true;
  for (const child of [...children].reverse()) {
    if (!child.exited) {
      child.proc.kill('SIGTERM');
      if (!(await waitForExit(child, 5000))) console.error(`${child.name} did not stop within 5 s; killing it`);
    }
    signalGroup(child, 'SIGKILL'); // whatever is left of it
  }
  if (children.length > 0) console.log('stopped');
  process.exit(code);
}

stopOnSignals(children, stopAll, () => stopping);

// --- main ------------------------------------------------------------------------

async function main() {
  ensureBuilt();
  const natsUrl = configuredNats ?? (await startNatsServer());
  if (stopping) return;
  const { redactServers } = await import(join(root, 'dist', 'res', 'nats-options.js'));
  console.log(configuredNats ? `using NATS at ${redactServers(natsUrl.split(',')).join(',')}` : `nats-server running at ${natsUrl}`);

  const tsx = realpathSync(join(root, 'node_modules', '.bin', 'tsx'));
  const service = launch('library', process.execPath, [tsx, 'examples/library/service.ts', '--nats', natsUrl, ...natsFlags]);
  await service.waitFor(/library service ready/, 30_000);
  if (stopping) return;

  // the web example's port is chosen first: the gateway must allow the page's origin (it allows none by default)
  const webPort = (await isPortFree(5173)) ? 5173 : await freePort();
  const webOrigins = `http://127.0.0.1:${webPort},http://localhost:${webPort}`;
  const gateway = launch('gateway', process.execPath, [
    'dist/cli.js', '--nats', natsUrl, ...natsFlags, '--schema', 'schema', '--port', port, '--header-auth', 'library.session.header',
    '--allow-origin', webOrigins, ...trustedDocuments,
  ]);
  const [, url] = await gateway.waitFor(/resgraph listening on (\S+)/, 15_000);
  await waitForHealth(new URL('/readyz', url), 10_000);
  if (stopping) return;

  // the web example, on Vite's dev server; the page finds the gateway through VITE_RESGRAPH_URL
  const vite = join(root, 'node_modules', 'vite', 'bin', 'vite.js');
  process.env.VITE_RESGRAPH_URL = url;
  const web = launch('web', process.execPath, [vite, 'examples/web', '--host', '127.0.0.1', '--port', String(webPort), '--strictPort', '--logLevel', 'warn']);
  await waitForHealth(new URL(`http://127.0.0.1:${webPort}/`), 30_000).catch(() => {
    throw new Error('the web example did not answer within 30 s');
  });
  if (stopping || web.exited) return;
  const mode = args['allow-any-document']
    ? `Try: curl -s ${url} -H 'content-type: application/json' -d '{"query":"{ books { title author { name } } }"}'`
    : 'The gateway accepts only the web example\'s trusted documents; for GraphiQL and curl run: npm start -- --allow-any-document';
  console.log(`
resgraph is up. GraphiQL: ${url}  (open it in a browser)
Web example, live in every tab: http://127.0.0.1:${webPort}/
${mode}
Press Ctrl-C to stop.
`);
}

/** Waits until the gateway reports its NATS connection healthy. */
async function waitForHealth(url, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !stopping) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not answering yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  if (!stopping) throw new Error(`the gateway did not report healthy within ${ms / 1000} s`);
}

main().catch((e) => {
  if (!stopping) fatal(`start: ${e.message}`);
});
