#!/usr/bin/env node
/**
 * The `resgraph` command: reads its options (config/options.ts's table) from
 * flags and RESGRAPH_* environment variables (a flag wins), starts the
 * gateway, shuts it down cleanly on SIGINT / SIGTERM, and reloads its schema
 * on SIGHUP.
 *
 * Exit codes: 0 after a requested shutdown, 1 when the gateway cannot run
 * (an invalid schema, a busy port), 2 for invalid command-line input.
 *
 * Importing this module runs nothing: `main` starts only when the file is the
 * process's entry point, and `parseCliArgs` is pure, for tests.
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { constants } from 'node:os';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { gatewayOptions, optionRows, parseArgsOptions, readOption, readOptions, UsageError, type CliOptions } from './config/options.js';
import { consoleLogger, type Logger } from './log.js';
import { NatsOptionsError, redactServers } from './res/nats-options.js';
import { printClientSchema } from './schema/publish.js';
import { SchemaError, loadResourceSchema } from './schema/schema.js';
import { startGateway, type Gateway } from './server.js';
import { isWorker, reportListening, runPrimary, shareMetrics, workerHooks } from './fleet/workers.js';

export { UsageError, type CliOptions } from './config/options.js';

export type CliCommand =
  | { command: 'help' }
  | { command: 'version' }
  | { command: 'print-schema'; schema: string }
  | { command: 'run'; options: CliOptions };

export function helpText(): string {
  const rows: [string, string, string?][] = optionRows().map((o) => [`  --${o.flag} ${o.value}`.trimEnd(), o.help, `env ${o.env}, default ${o.default}`]);
  rows.push(['  -h, --help', 'show this help'], ['  -v, --version', 'show the version']);
  const width = Math.max(...rows.map(([flag]) => flag.length)) + 2;
  return [
    'resgraph: a real-time GraphQL gateway for RES services over NATS',
    '',
    'Usage: resgraph [options]',
    '       resgraph print-schema [--schema <path>]   print the client-facing schema (for codegen)',
    '',
    'Options:',
    ...rows.flatMap(([flag, text, more]) => [flag.padEnd(width) + text, ...(more ? [' '.repeat(width) + more] : [])]),
    '',
    'A flag wins over its environment variable. Once started, open the printed',
    'URL in a browser for GraphiQL, or POST GraphQL requests to it.',
    '',
  ].join('\n');
}

/**
 * Reads the command line and environment. Throws UsageError for input that
 * cannot be used (unknown flag, missing value, a port that is not a number).
 * Does not touch the file system: whether the schema path exists is checked
 * by `main`.
 */
export function parseCliArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = {}): CliCommand {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: true,
      options: {
        ...parseArgsOptions(),
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    }));
  } catch (e) {
    const err = e as Error & { code?: string };
    const option = /--[\w-]+/.exec(err.message)?.[0] ?? /'(-\w)/.exec(err.message)?.[1];
    if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && option) {
      throw new UsageError(/does not take/.test(err.message) ? `${option} takes no value` : `${option} needs a value`);
    }
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && option) throw new UsageError(`unknown option ${option}`);
    // otherwise keep the first sentence of node's message (the rest are hints for another audience)
    const first = err.message.split(/\.\s|\n/)[0].replace(/\.$/, '');
    throw new UsageError(first.charAt(0).toLowerCase() + first.slice(1));
  }
  const subcommand = positionals[0] === 'print-schema' ? positionals.shift() : undefined;
  if (positionals.length > 0) throw new UsageError(`unknown command "${positionals[0]}"`);
  if (values.help) return { command: 'help' };
  if (values.version) return { command: 'version' };

  if (subcommand === 'print-schema') return { command: 'print-schema', schema: readOption('schema', values, env) };
  return { command: 'run', options: readOptions(values, env) };
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function fail(code: number, message: string): never {
  process.stderr.write(`resgraph: ${message}\n`);
  if (code === 2) process.stderr.write('see resgraph --help\n');
  process.exit(code);
}

/** Runs the command; resolves once the gateway is listening (it then runs until a signal). */
export async function main(argv: readonly string[] = process.argv.slice(2), env = process.env): Promise<void> {
  let cmd: CliCommand;
  try {
    cmd = parseCliArgs(argv, env);
  } catch (e) {
    if (e instanceof UsageError) fail(2, e.message);
    throw e;
  }
  if (cmd.command === 'help') {
    process.stdout.write(helpText());
    return;
  }
  if (cmd.command === 'version') {
    process.stdout.write(`${version()}\n`);
    return;
  }

  if (cmd.command === 'print-schema') {
    if (!existsSync(cmd.schema)) fail(2, `schema path ${cmd.schema} does not exist`);
    try {
      process.stdout.write(printClientSchema(loadResourceSchema(cmd.schema)) + '\n');
    } catch (e) {
      if (e instanceof SchemaError) fail(1, e.message);
      throw e;
    }
    return;
  }

  const opts = cmd.options;
  if (!existsSync(opts.schema)) fail(2, `schema path ${opts.schema} does not exist`);
  if (opts.persistedDocuments !== undefined && !existsSync(opts.persistedDocuments)) {
    fail(2, `persisted documents file ${opts.persistedDocuments} does not exist`);
  }
  const log = consoleLogger(opts.logLevel, opts.logFormat);
  if (opts.workers !== undefined && !isWorker()) return runFleet(opts, log);

  // each process exports its own spans: in a fleet, each worker (the primary serves no requests)
  const tracerProvider = opts.otel ? (await import('./telemetry/sdk.js')).startTracerProvider(version(), log) : undefined;

  // a worker of a fleet answers /metrics and /readyz for the fleet
  let gw: Gateway | undefined;
  const fleet = isWorker() ? workerHooks(() => gw !== undefined && gw.res.connected && !gw.draining) : undefined;
  // from the start, so that a SIGHUP (which a fleet's primary forwards) never ends a gateway still loading its schema;
  // the outcome, and every problem of a refused schema, is logged by the reload
  process.on('SIGHUP', () => void gw?.reloadSchema());

  try {
    gw = await startGateway({ ...gatewayOptions(opts), fleet, tracing: tracerProvider && { tracerProvider }, logger: log });
  } catch (e) {
    if (e instanceof SchemaError) fail(1, e.message);
    if (e instanceof NatsOptionsError) fail(2, e.message);
    const err = e as NodeJS.ErrnoException & { address?: string; port?: number };
    // the address of the listen that failed: the gateway's, or the metrics' own (--metrics <port>)
    const where = `${err.address ?? opts.host}:${err.port ?? opts.port}`;
    if (err.code === 'EADDRINUSE') fail(1, `cannot listen on ${where}: the port is in use`);
    if (err.code === 'EADDRNOTAVAIL' || err.code === 'EACCES') {
      fail(1, `cannot listen on ${where}: ${err.code === 'EACCES' ? 'permission denied' : 'no such address here'}`);
    }
    fail(1, err.message ?? String(e));
  }

  handleSignals(gw, log, opts.drainTimeout);
  watchNats(gw, redactServers(opts.nats), log);
  if (fleet) {
    if (gw.metrics) shareMetrics(gw.metrics.registry);
    // the primary says it once for the fleet
    return reportListening(gw.url, typeof opts.metrics === 'number' ? gw.metricsUrl : undefined);
  }
  process.stdout.write(`resgraph listening on ${gw.url}\n`);
  if (typeof opts.metrics === 'number') process.stdout.write(`resgraph metrics on ${gw.metricsUrl}\n`);
}

/** `--workers n`: this process forks n gateways on the port and looks after them (fleet/workers.ts). */
function runFleet(opts: CliOptions, log: Logger): void {
  runPrimary({
    workers: opts.workers!,
    logger: log,
    drainTimeout: opts.drainTimeout,
    onListening: (url, metricsUrl) => {
      process.stdout.write(`resgraph listening on ${url} (${opts.workers} workers)\n`);
      if (metricsUrl) process.stdout.write(`resgraph metrics on ${metricsUrl}\n`);
    },
  });
}

/** Says so when NATS is slow to come up; a connection that can never be made ends the process. */
function watchNats(gw: Gateway, servers: string[], log: Logger): void {
  const slow = setTimeout(() => log.warn('NATS is not reachable yet; still trying', { servers }), 3000);
  slow.unref();
  gw.natsReady.then(
    () => clearTimeout(slow),
    (e: unknown) => {
      clearTimeout(slow);
      if (gw.draining) return; // shut down before NATS came up: the drain exits
      log.error('cannot connect to NATS', { servers, error: (e as Error).message });
      void gw.close().finally(() => process.exit(1));
    },
  );
}

/**
 * The first SIGINT / SIGTERM drains the gateway (see Gateway.drain: new work
 * refused, WebSockets closed with 1012 and SSE streams ended so clients
 * reconnect elsewhere, queries and mutations in flight finish, NATS drains)
 * and exits 0. After `drainTimeout` ms what is left is closed and the exit
 * is still 0: the shutdown was asked for and done; the cut-off work is
 * logged. Only a shutdown that cannot finish at all (5 s past the timeout)
 * exits 1. A second signal exits at once. `npm run` forwards
 * Ctrl-C to its child while the terminal sends it too, so a repeat within a
 * moment of the first is the same keypress, not a second request.
 */
function handleSignals(gw: Gateway, log: Logger, drainTimeout: number): void {
  let firstAt = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    const now = Date.now();
    if (firstAt !== 0) {
      if (now - firstAt < 500) return;
      process.stderr.write(`resgraph: ${signal} again; exiting without waiting\n`);
      process.exit(128 + (constants.signals[signal] ?? 0));
    }
    firstAt = now;
    log.info(`${signal} received; shutting down`);
    // the drain bounds itself; this is a backstop should closing hang
    setTimeout(() => {
      log.error('shutdown is taking too long; exiting');
      process.exit(1);
    }, drainTimeout + 5000).unref();
    gw.drain(drainTimeout).then(
      ({ forced, ms }) => {
        if (forced) log.warn('drain timed out; work still in flight was closed', { ms });
        else log.info('drained; exiting', { ms });
        process.exit(0);
      },
      (e: unknown) => {
        log.error('shutdown failed', { error: (e as Error).message });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/** Whether this module is what node was asked to run (also through the npm bin symlink). */
function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main().catch((e: unknown) => fail(1, (e as Error).message ?? String(e)));
}
