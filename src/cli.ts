#!/usr/bin/env node
/**
 * The `resgraph` command: reads options from flags and RESGRAPH_* environment
 * variables (a flag wins), starts the gateway, shuts it down cleanly on
 * SIGINT / SIGTERM, and reloads its schema on SIGHUP.
 *
 * Exit codes: 0 after a requested shutdown, 1 when the gateway cannot run
 * (an invalid schema, a busy port), 2 for invalid command-line input.
 *
 * Importing this module runs nothing: `main` starts only when the file is the
 * process's entry point, and `parseCliArgs` is pure, for tests.
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { availableParallelism, constants } from 'node:os';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { parseHeaderAuth } from './access/auth.js';
import { parseAllowOrigin } from './transports/origin.js';
import { consoleLogger, type LogFormat, type LogLevel, type Logger } from './log.js';
import { NatsOptionsError, natsOptionSettings, natsParseArgsOptions, readNatsClientOptions, redactServers, type NatsClientOptions } from './res/nats-options.js';
import { printClientSchema } from './schema/publish.js';
import { SchemaError, loadResourceSchema } from './schema/schema.js';
import { startGateway, type Gateway } from './server.js';
import { isWorker, reportListening, runPrimary, shareMetrics, workerHooks } from './fleet/workers.js';

export interface CliOptions {
  nats: string[];
  /** TLS, authentication and client name for NATS (--nats-*), checked when the gateway starts */
  natsClient: NatsClientOptions;
  schema: string;
  /** reload the schema when its files change */
  watchSchema: boolean;
  port: number;
  host: string;
  requestTimeout: number;
  evictDelay: number;
  resyncConcurrency: number;
  /** `<resource>.<method>` of an auth method called with each connection's HTTP headers */
  headerAuth: string | undefined;
  /** cross-origin pages allowed: `*`, comma-separated origins, or '' for none */
  allowOrigin: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** `on`: /metrics on the gateway's port; `off`: none; a number: /metrics on that port */
  metrics: 'on' | 'off' | number;
  /** how long a shutdown waits for work in flight before closing it, in ms */
  drainTimeout: number;
  maxSubscriptions: number;
  maxDepth: number;
  /** gateway processes on the port (node:cluster), or undefined for this process alone */
  workers: number | undefined;
  /** GraphiQL at the GraphQL path for browsers */
  graphiql: boolean;
  /** how often an idle multipart (Apollo HTTP) subscription gets a heartbeat, in ms */
  multipartHeartbeat: number;
  /** whether Resgate's HTTP API is served */
  resgateApi: boolean;
  /** where Resgate's HTTP API is served */
  apiPath: string;
  /** where the RES client protocol (WebSocket) is served, or false for nowhere */
  resWsPath: string | false;
  maxAliases: number;
  maxTokens: number;
  maxDirectives: number;
  maxDocumentBytes: number;
  maxBodyBytes: number;
  /** the trusted documents' manifest (hash → document JSON) */
  persistedDocuments: string | undefined;
  /** refuse any document that is not in the manifest */
  persistedOnly: boolean;
}

export type CliCommand =
  | { command: 'help' }
  | { command: 'version' }
  | { command: 'print-schema'; schema: string }
  | { command: 'run'; options: CliOptions };

/** Invalid command-line input: reported in one line, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

const logLevels: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

/** Each option: its flag, its environment variable, its default and how to read it. */
const settings = {
  nats: {
    env: 'RESGRAPH_NATS',
    value: '<url[,url...]>',
    default: 'nats://127.0.0.1:4222',
    help: 'NATS server URL(s), comma-separated',
  },
  ...natsOptionSettings,
  schema: {
    env: 'RESGRAPH_SCHEMA',
    value: '<path>',
    default: './schema',
    help: 'a .graphql file, or a folder searched for .graphql files (SIGHUP loads it again)',
  },
  'watch-schema': {
    env: 'RESGRAPH_WATCH_SCHEMA',
    value: '',
    default: 'false',
    help: 'reload the schema whenever its files change (once the writes settle), as SIGHUP does',
  },
  port: { env: 'RESGRAPH_PORT', value: '<n>', default: '4000', help: 'HTTP port (0 picks a free one)' },
  host: { env: 'RESGRAPH_HOST', value: '<addr>', default: '127.0.0.1', help: 'address to listen on' },
  'request-timeout': {
    env: 'RESGRAPH_REQUEST_TIMEOUT',
    value: '<ms>',
    default: '3000',
    help: 'how long to wait for a service to answer',
  },
  'evict-delay': {
    env: 'RESGRAPH_EVICT_DELAY',
    value: '<ms>',
    default: '5000',
    help: 'how long an unused resource stays cached',
  },
  'resync-concurrency': {
    env: 'RESGRAPH_RESYNC_CONCURRENCY',
    value: '<n>',
    default: '64',
    help: 'after a system.reset or NATS reconnect, re-gets in flight at once (held resources first)',
  },
  'header-auth': {
    env: 'RESGRAPH_HEADER_AUTH',
    value: '<rid.method>',
    default: 'none',
    help: 'auth method called with the HTTP headers of each connection',
  },
  'allow-origin': {
    env: 'RESGRAPH_ALLOW_ORIGIN',
    value: '<origin[,origin...]|*>',
    default: 'none',
    help: 'pages on other origins that may use the gateway from a browser (listed: with cookies; *: any, without)',
  },
  'resgate-api': {
    env: 'RESGRAPH_RESGATE_API',
    value: '<on|off>',
    default: 'on',
    help: "Resgate's HTTP API: GET <api-path>/<rid as path>, POST <api-path>/<rid as path>/<method>",
  },
  'api-path': {
    env: 'RESGRAPH_API_PATH',
    value: '<path>',
    default: '/api',
    help: "where Resgate's HTTP API is served",
  },
  'res-ws-path': {
    env: 'RESGRAPH_RES_WS_PATH',
    value: '<path|off>',
    default: '/',
    help: "where ResClient connects: Resgate's WebSocket protocol (off: nowhere)",
  },
  'log-level': {
    env: 'RESGRAPH_LOG_LEVEL',
    value: '<level>',
    default: 'info',
    help: logLevels.join('|'),
  },
  'log-format': {
    env: 'RESGRAPH_LOG_FORMAT',
    value: '<text|json>',
    default: 'text',
    help: 'log lines as text, or as one JSON object each',
  },
  metrics: {
    env: 'RESGRAPH_METRICS',
    value: '<on|off|port>',
    default: 'on',
    help: 'Prometheus /metrics: on the HTTP port, off, or on a port of its own',
  },
  'drain-timeout': {
    env: 'RESGRAPH_DRAIN_TIMEOUT',
    value: '<ms>',
    default: '10000',
    help: 'on SIGTERM/SIGINT, how long to wait for work in flight before closing it',
  },
  'max-subscriptions': {
    env: 'RESGRAPH_MAX_SUBSCRIPTIONS',
    value: '<n>',
    default: '200',
    help: 'live subscriptions one connection may hold',
  },
  'max-depth': {
    env: 'RESGRAPH_MAX_DEPTH',
    value: '<n>',
    default: '15',
    help: 'deepest selection an operation may have',
  },
  workers: {
    env: 'RESGRAPH_WORKERS',
    value: '<n|auto|off>',
    default: 'off',
    help: 'gateway processes sharing the port, each with its own cache (auto: one per core)',
  },
  graphiql: {
    env: 'RESGRAPH_GRAPHIQL',
    value: '<on|off>',
    default: 'on',
    help: 'GraphiQL for browsers at the GraphQL path (bundled: loads nothing from other hosts)',
  },
  'multipart-heartbeat': {
    env: 'RESGRAPH_MULTIPART_HEARTBEAT',
    value: '<ms>',
    default: '5000',
    help: 'how often an idle multipart HTTP subscription (Apollo\'s protocol) gets a heartbeat',
  },
  'max-aliases': { env: 'RESGRAPH_MAX_ALIASES', value: '<n>', default: '30', help: 'aliased fields an operation may have' },
  'max-tokens': { env: 'RESGRAPH_MAX_TOKENS', value: '<n>', default: '5000', help: 'tokens a document may have' },
  'max-directives': { env: 'RESGRAPH_MAX_DIRECTIVES', value: '<n>', default: '50', help: 'directives an operation may use' },
  'max-document-bytes': {
    env: 'RESGRAPH_MAX_DOCUMENT_BYTES',
    value: '<n>',
    default: '102400',
    help: 'bytes a GraphQL document may have',
  },
  'max-body-bytes': {
    env: 'RESGRAPH_MAX_BODY_BYTES',
    value: '<n>',
    default: '1048576',
    help: 'bytes a request body or WebSocket message may have (HTTP 413, WebSocket close 1009)',
  },
  'persisted-documents': {
    env: 'RESGRAPH_PERSISTED_DOCUMENTS',
    value: '<file.json>',
    default: 'none',
    help: 'trusted documents, a JSON object of hash → document (codegen persistedDocuments); none: automatic persisted queries',
  },
  'persisted-only': {
    env: 'RESGRAPH_PERSISTED_ONLY',
    value: '',
    default: 'false',
    help: 'refuse every document that is not in --persisted-documents',
  },
} as const;

type SettingName = keyof typeof settings;

export function helpText(): string {
  const rows: [string, string, string?][] = (Object.keys(settings) as SettingName[]).map((name) => {
    const s = settings[name];
    return [`  --${name} ${s.value}`.trimEnd(), s.help, `env ${s.env}, default ${s.default}`];
  });
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
    const stringOption = { type: 'string' } as const;
    ({ values, positionals } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: true,
      options: {
        nats: stringOption,
        ...natsParseArgsOptions,
        schema: stringOption,
        'watch-schema': { type: 'boolean' },
        port: stringOption,
        host: stringOption,
        'request-timeout': stringOption,
        'evict-delay': stringOption,
        'resync-concurrency': stringOption,
        'header-auth': stringOption,
        'allow-origin': stringOption,
        'resgate-api': stringOption,
        'api-path': stringOption,
        'res-ws-path': stringOption,
        'log-level': stringOption,
        'log-format': stringOption,
        metrics: stringOption,
        'drain-timeout': stringOption,
        'max-subscriptions': stringOption,
        'max-depth': stringOption,
        workers: stringOption,
        graphiql: stringOption,
        'multipart-heartbeat': stringOption,
        'max-aliases': stringOption,
        'max-tokens': stringOption,
        'max-directives': stringOption,
        'max-document-bytes': stringOption,
        'max-body-bytes': stringOption,
        'persisted-documents': stringOption,
        'persisted-only': { type: 'boolean' },
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

  /** The flag's value, else the environment's (an empty variable counts as unset), else the default. */
  const read = (name: SettingName): { text: string; source: string } => {
    const flag = values[name];
    if (typeof flag === 'string') return { text: flag, source: `--${name}` };
    if (flag === true) return { text: 'true', source: `--${name}` };
    const fromEnv = env[settings[name].env];
    if (fromEnv !== undefined && fromEnv !== '') return { text: fromEnv, source: settings[name].env };
    return { text: settings[name].default, source: `default of --${name}` };
  };
  const invalid = (name: SettingName, expected: string): never => {
    const { text, source } = read(name);
    throw new UsageError(`invalid ${source} ${JSON.stringify(text)}: expected ${expected}`);
  };
  const wholeNumber = (name: SettingName, min: number, max: number, expected: string): number => {
    const { text } = read(name);
    const n = /^\d+$/.test(text.trim()) ? Number(text.trim()) : NaN;
    return Number.isSafeInteger(n) && n >= min && n <= max ? n : invalid(name, expected);
  };

  if (subcommand === 'print-schema') {
    const path = read('schema').text;
    if (path.trim() === '') invalid('schema', 'a path');
    return { command: 'print-schema', schema: path };
  }

  const nats = read('nats').text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (nats.length === 0 || nats.some((u) => /\s/.test(u))) invalid('nats', 'one or more comma-separated URLs');
  const schema = read('schema').text;
  if (schema.trim() === '') invalid('schema', 'a path');
  const watchSchemaText = read('watch-schema').text.trim().toLowerCase();
  if (watchSchemaText !== 'true' && watchSchemaText !== 'false') invalid('watch-schema', 'true or false');
  const host = read('host').text.trim();
  if (host === '') invalid('host', 'an address');
  const logLevel = read('log-level').text.trim().toLowerCase() as LogLevel;
  if (!logLevels.includes(logLevel)) invalid('log-level', `one of ${logLevels.join(', ')}`);
  const logFormat = read('log-format').text.trim().toLowerCase() as LogFormat;
  if (logFormat !== 'text' && logFormat !== 'json') invalid('log-format', 'text or json');
  const graphiql = read('graphiql').text.trim().toLowerCase();
  if (graphiql !== 'on' && graphiql !== 'off') invalid('graphiql', 'on or off');
  const headerAuth = read('header-auth').text.trim();
  if (headerAuth !== 'none') {
    try {
      parseHeaderAuth(headerAuth);
    } catch {
      invalid('header-auth', 'a resource name and a method, like session.header (sent as auth.session.header)');
    }
  }
  const allowOrigin = read('allow-origin').text.trim();
  if (allowOrigin !== 'none') {
    try {
      parseAllowOrigin(allowOrigin);
    } catch (e) {
      invalid('allow-origin', `none, *, or comma-separated origins such as https://app.example.com (${(e as Error).message})`);
    }
  }

  const resgateApi = read('resgate-api').text.trim().toLowerCase();
  if (resgateApi !== 'on' && resgateApi !== 'off') invalid('resgate-api', 'on or off');
  const apiPath = read('api-path').text.trim();
  if (!/^\/[^\s?#]*[^\s?#/]\/?$/.test(apiPath)) invalid('api-path', 'a path such as /api');
  const resWsPath = read('res-ws-path').text.trim();
  if (resWsPath !== 'off' && !/^\/[^\s?#]*$/.test(resWsPath)) invalid('res-ws-path', 'a path such as /, or off');

  const persistedDocuments = read('persisted-documents').text.trim();
  const persistedOnlyText = read('persisted-only').text.trim().toLowerCase();
  if (persistedOnlyText !== 'true' && persistedOnlyText !== 'false') invalid('persisted-only', 'true or false');
  const persistedOnly = persistedOnlyText === 'true';
  if (persistedOnly && persistedDocuments === 'none') {
    throw new UsageError('--persisted-only needs --persisted-documents <file.json>: the documents it lets through');
  }
  const limit = (name: SettingName) => wholeNumber(name, 1, 2 ** 31 - 1, 'a whole number above 0');

  return {
    command: 'run',
    options: {
      nats,
      natsClient: readNatsClientOptions(values, env),
      schema,
      watchSchema: watchSchemaText === 'true',
      port: wholeNumber('port', 0, 65535, 'a port number from 0 to 65535'),
      host,
      requestTimeout: wholeNumber('request-timeout', 1, 2 ** 31 - 1, 'a number of milliseconds above 0'),
      evictDelay: wholeNumber('evict-delay', 0, 2 ** 31 - 1, 'a number of milliseconds'),
      resyncConcurrency: wholeNumber('resync-concurrency', 1, 100_000, 'a whole number from 1 to 100000'),
      headerAuth: headerAuth === 'none' ? undefined : headerAuth,
      allowOrigin: allowOrigin === 'none' ? '' : allowOrigin,
      logLevel,
      logFormat,
      metrics: metricsSetting(read('metrics').text) ?? invalid('metrics', 'on, off, or a port number from 0 to 65535'),
      drainTimeout: wholeNumber('drain-timeout', 0, 2 ** 31 - 1, 'a number of milliseconds'),
      maxSubscriptions: wholeNumber('max-subscriptions', 1, 2 ** 31 - 1, 'a whole number above 0'),
      maxDepth: wholeNumber('max-depth', 1, 1000, 'a whole number from 1 to 1000'),
      workers: workersSetting(read('workers').text, () => invalid('workers', 'off, auto, or a whole number from 1 to 256')),
      graphiql: graphiql === 'on',
      multipartHeartbeat: wholeNumber('multipart-heartbeat', 1, 2 ** 31 - 1, 'a number of milliseconds above 0'),
      resgateApi: resgateApi === 'on',
      apiPath,
      resWsPath: resWsPath === 'off' ? false : resWsPath,
      maxAliases: limit('max-aliases'),
      maxTokens: limit('max-tokens'),
      maxDirectives: limit('max-directives'),
      maxDocumentBytes: limit('max-document-bytes'),
      maxBodyBytes: limit('max-body-bytes'),
      persistedDocuments: persistedDocuments === 'none' ? undefined : persistedDocuments,
      persistedOnly,
    },
  };
}

function workersSetting(text: string, invalid: () => never): CliOptions['workers'] {
  const t = text.trim().toLowerCase();
  if (t === 'off') return undefined;
  if (t === 'auto') return availableParallelism();
  const n = /^\d+$/.test(t) ? Number(t) : NaN;
  return Number.isSafeInteger(n) && n >= 1 && n <= 256 ? n : invalid();
}

function metricsSetting(text: string): CliOptions['metrics'] | undefined {
  const t = text.trim().toLowerCase();
  if (t === 'on' || t === 'off') return t;
  const n = /^\d+$/.test(t) ? Number(t) : NaN;
  return Number.isSafeInteger(n) && n <= 65535 ? n : undefined;
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

  // a worker of a fleet answers /metrics and /readyz for the fleet
  let gw: Gateway | undefined;
  const fleet = isWorker() ? workerHooks(() => gw !== undefined && gw.res.connected && !gw.draining) : undefined;
  // from the start, so that a SIGHUP (which a fleet's primary forwards) never ends a gateway still loading its schema;
  // the outcome, and every problem of a refused schema, is logged by the reload
  process.on('SIGHUP', () => void gw?.reloadSchema());

  try {
    gw = await startGateway({
      nats: opts.nats,
      natsClient: opts.natsClient,
      schema: opts.schema,
      watchSchema: opts.watchSchema,
      port: opts.port,
      host: opts.host,
      requestTimeout: opts.requestTimeout,
      evictDelay: opts.evictDelay,
      resyncConcurrency: opts.resyncConcurrency,
      headerAuth: opts.headerAuth,
      allowOrigin: opts.allowOrigin,
      metrics: opts.metrics === 'off' ? false : { port: opts.metrics === 'on' ? undefined : opts.metrics, processMetrics: true },
      drainTimeout: opts.drainTimeout,
      maxSubscriptionsPerConnection: opts.maxSubscriptions,
      maxDepth: opts.maxDepth,
      fleet,
      graphiql: opts.graphiql,
      multipartHeartbeat: opts.multipartHeartbeat,
      resgateApi: opts.resgateApi,
      apiPath: opts.apiPath,
      resWsPath: opts.resWsPath,
      maxAliases: opts.maxAliases,
      maxTokens: opts.maxTokens,
      maxDirectives: opts.maxDirectives,
      maxDocumentBytes: opts.maxDocumentBytes,
      maxBodyBytes: opts.maxBodyBytes,
      persistedDocuments: opts.persistedDocuments,
      persistedOnly: opts.persistedOnly,
      logger: log,
    });
  } catch (e) {
    if (e instanceof SchemaError) fail(1, e.message);
    if (e instanceof NatsOptionsError) fail(2, e.message);
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE') fail(1, `cannot listen on ${opts.host}:${opts.port}: the port is in use`);
    if (err.code === 'EADDRNOTAVAIL' || err.code === 'EACCES') {
      fail(1, `cannot listen on ${opts.host}:${opts.port}: ${err.code === 'EACCES' ? 'permission denied' : 'no such address here'}`);
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
