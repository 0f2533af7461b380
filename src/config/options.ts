/**
 * The `resgraph` command's options, one entry each: flag, environment
 * variable, default, help line, how its text is read, and what it sets in
 * GatewayOptions. The parser's `parseArgs` options, `--help`, the RESGRAPH_*
 * variables and the values handed to `startGateway` all come from this
 * table, and test/docs.test.ts holds docs/configuration.md's option
 * table to it. The default values themselves live in config/defaults.ts,
 * which startGateway applies for library users too.
 *
 * Adding an option is one entry here (plus its GatewayOptions field, when it
 * configures the gateway). The `--nats-*` options are res/nats-options.ts's,
 * shared with the example service and the bench; they are shown and parsed
 * with these.
 */
import { availableParallelism } from 'node:os';
import { parseHeaderAuth } from '../access/auth.js';
import type { LogFormat, LogLevel } from '../log.js';
import { natsOptionSettings, readNatsClientOptions, type NatsClientOptions } from '../res/nats-options.js';
import type { GatewayOptions } from '../server.js';
import { parseAllowOrigin } from '../transports/origin.js';
import { defaults } from './defaults.js';

/** Invalid command-line input: reported in one line, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** An option's text that cannot be used; `expected` says what can. */
class InvalidValue extends Error {
  constructor(readonly expected: string) {
    super(expected);
  }
}

export interface Option<T> {
  env: string;
  /** what the value looks like in `--help` (`<ms>`); '' for a flag that takes no value (given, it reads as `true`) */
  value: string;
  /** the default, as it would be written on the command line */
  default: string;
  help: string;
  /** reads the text of the flag, the variable or the default; throws InvalidValue */
  read(text: string): T;
  /** the GatewayOptions it sets; none for the command's own options (logging, workers) */
  gateway?: (value: T) => GatewayOptions;
}

/** An entry, with its value's type inferred from `read`. */
const option = <T>(o: Option<T>): Option<T> => o;

/** The value passes to the GatewayOptions field `key` as it is. */
const to =
  <K extends keyof GatewayOptions>(key: K) =>
  (value: GatewayOptions[K]): GatewayOptions => ({ [key]: value });

const wholeNumber =
  (min: number, max: number, expected: string) =>
  (text: string): number => {
    const n = /^\d+$/.test(text.trim()) ? Number(text.trim()) : NaN;
    if (Number.isSafeInteger(n) && n >= min && n <= max) return n;
    throw new InvalidValue(expected);
  };
const milliseconds = wholeNumber(0, 2 ** 31 - 1, 'a number of milliseconds');
const positiveMilliseconds = wholeNumber(1, 2 ** 31 - 1, 'a number of milliseconds above 0');
const limit = wholeNumber(1, 2 ** 31 - 1, 'a whole number above 0');

const onOff = (text: string): boolean => {
  const t = text.trim().toLowerCase();
  if (t === 'on' || t === 'off') return t === 'on';
  throw new InvalidValue('on or off');
};
const onOffText = (on: boolean) => (on ? 'on' : 'off');

/** A flag without a value: given, it reads as `true`; its variable says true or false. */
const trueOrFalse = (text: string): boolean => {
  const t = text.trim().toLowerCase();
  if (t !== 'true' && t !== 'false') throw new InvalidValue('true or false');
  return t === 'true';
};

const nonEmpty =
  (expected: string) =>
  (text: string): string => {
    if (text.trim() === '') throw new InvalidValue(expected);
    return text;
  };

const logLevels: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

/** The options in `--help` order, the `--nats-*` ones after `--nats`. */
export const options = {
  nats: option({
    env: 'RESGRAPH_NATS',
    value: '<url[,url...]>',
    default: defaults.nats,
    help: 'NATS server URL(s), comma-separated',
    read(text) {
      const urls = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
      if (urls.length === 0 || urls.some((u) => /\s/.test(u))) throw new InvalidValue('one or more comma-separated URLs');
      return urls;
    },
    gateway: to('nats'),
  }),
  schema: option({
    env: 'RESGRAPH_SCHEMA',
    value: '<path>',
    default: defaults.schema,
    help: 'a .graphql file, or a folder searched for .graphql files (SIGHUP loads it again)',
    read: nonEmpty('a path'),
    gateway: to('schema'),
  }),
  'watch-schema': option({
    env: 'RESGRAPH_WATCH_SCHEMA',
    value: '',
    default: String(defaults.watchSchema),
    help: 'reload the schema whenever its files change (once the writes settle), as SIGHUP does',
    read: trueOrFalse,
    gateway: to('watchSchema'),
  }),
  port: option({
    env: 'RESGRAPH_PORT',
    value: '<n>',
    default: String(defaults.port),
    help: 'HTTP port (0 picks a free one)',
    read: wholeNumber(0, 65535, 'a port number from 0 to 65535'),
    gateway: to('port'),
  }),
  host: option({
    env: 'RESGRAPH_HOST',
    value: '<addr>',
    default: defaults.host,
    help: 'address to listen on',
    read: (text) => nonEmpty('an address')(text).trim(),
    gateway: to('host'),
  }),
  'request-timeout': option({
    env: 'RESGRAPH_REQUEST_TIMEOUT',
    value: '<ms>',
    default: String(defaults.requestTimeout),
    help: 'how long to wait for a service to answer',
    read: positiveMilliseconds,
    gateway: to('requestTimeout'),
  }),
  'evict-delay': option({
    env: 'RESGRAPH_EVICT_DELAY',
    value: '<ms>',
    default: String(defaults.evictDelay),
    help: 'how long an unused resource stays cached',
    read: milliseconds,
    gateway: to('evictDelay'),
  }),
  'resync-concurrency': option({
    env: 'RESGRAPH_RESYNC_CONCURRENCY',
    value: '<n>',
    default: String(defaults.resyncConcurrency),
    help: 'after a system.reset or NATS reconnect, re-gets in flight at once (held resources first)',
    read: wholeNumber(1, 100_000, 'a whole number from 1 to 100000'),
    gateway: to('resyncConcurrency'),
  }),
  'header-auth': option({
    env: 'RESGRAPH_HEADER_AUTH',
    value: '<rid.method>',
    default: 'none',
    help: 'auth method called with the HTTP headers of each connection',
    read(text) {
      const t = text.trim();
      if (t === 'none') return undefined;
      try {
        parseHeaderAuth(t);
      } catch {
        throw new InvalidValue('a resource name and a method, like session.header (sent as auth.session.header)');
      }
      return t;
    },
    gateway: to('headerAuth'),
  }),
  'allow-origin': option({
    env: 'RESGRAPH_ALLOW_ORIGIN',
    value: '<origin[,origin...]|*>',
    default: 'none',
    help: 'pages on other origins that may use the gateway from a browser (listed: with cookies; *: any, without)',
    read(text) {
      const t = text.trim();
      if (t === 'none') return '';
      try {
        parseAllowOrigin(t);
      } catch (e) {
        throw new InvalidValue(`none, *, or comma-separated origins such as https://app.example.com (${(e as Error).message})`);
      }
      return t;
    },
    gateway: to('allowOrigin'),
  }),
  'resgate-api': option({
    env: 'RESGRAPH_RESGATE_API',
    value: '<on|off>',
    default: onOffText(defaults.resgateApi),
    help: "Resgate's HTTP API: GET <api-path>/<rid as path>, POST <api-path>/<rid as path>/<method>",
    read: onOff,
    gateway: to('resgateApi'),
  }),
  'api-path': option({
    env: 'RESGRAPH_API_PATH',
    value: '<path>',
    default: defaults.apiPath,
    help: "where Resgate's HTTP API is served",
    read(text) {
      const t = text.trim();
      if (!/^\/[^\s?#]*[^\s?#/]\/?$/.test(t)) throw new InvalidValue('a path such as /api');
      return t;
    },
    gateway: to('apiPath'),
  }),
  'res-ws-path': option({
    env: 'RESGRAPH_RES_WS_PATH',
    value: '<path|off>',
    default: defaults.resWsPath,
    help: "where ResClient connects: Resgate's WebSocket protocol (off: nowhere)",
    read(text): string | false {
      const t = text.trim();
      if (t === 'off') return false;
      if (!/^\/[^\s?#]*$/.test(t)) throw new InvalidValue('a path such as /, or off');
      return t;
    },
    gateway: to('resWsPath'),
  }),
  'log-level': option({
    env: 'RESGRAPH_LOG_LEVEL',
    value: '<level>',
    default: defaults.logLevel,
    help: logLevels.join('|'),
    read(text) {
      const t = text.trim().toLowerCase() as LogLevel;
      if (!logLevels.includes(t)) throw new InvalidValue(`one of ${logLevels.join(', ')}`);
      return t;
    },
  }),
  'log-format': option({
    env: 'RESGRAPH_LOG_FORMAT',
    value: '<text|json>',
    default: defaults.logFormat,
    help: 'log lines as text, or as one JSON object each',
    read(text): LogFormat {
      const t = text.trim().toLowerCase();
      if (t !== 'text' && t !== 'json') throw new InvalidValue('text or json');
      return t;
    },
  }),
  metrics: option({
    env: 'RESGRAPH_METRICS',
    value: '<on|off|port>',
    default: onOffText(defaults.metrics),
    help: 'Prometheus /metrics: on the HTTP port, off, or on a port of its own',
    read(text): 'on' | 'off' | number {
      const t = text.trim().toLowerCase();
      if (t === 'on' || t === 'off') return t;
      const n = /^\d+$/.test(t) ? Number(t) : NaN;
      if (Number.isSafeInteger(n) && n <= 65535) return n;
      throw new InvalidValue('on, off, or a port number from 0 to 65535');
    },
    // the process's own metrics once per process: the command is one
    gateway: (m) => ({ metrics: m === 'off' ? false : { port: m === 'on' ? undefined : m, processMetrics: true } }),
  }),
  'drain-timeout': option({
    env: 'RESGRAPH_DRAIN_TIMEOUT',
    value: '<ms>',
    default: String(defaults.drainTimeout),
    help: 'on SIGTERM/SIGINT, how long to wait for work in flight before closing it',
    read: milliseconds,
    gateway: to('drainTimeout'),
  }),
  otel: option({
    env: 'RESGRAPH_OTEL',
    value: '<on|off>',
    default: 'off',
    help: 'OpenTelemetry traces over OTLP/HTTP, configured by the OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT ...)',
    // the command starts the SDK itself (one per process) and hands its provider to the gateway
    read: onOff,
  }),
  'max-subscriptions': option({
    env: 'RESGRAPH_MAX_SUBSCRIPTIONS',
    value: '<n>',
    default: String(defaults.maxSubscriptionsPerConnection),
    help: 'live subscriptions one connection may hold',
    read: limit,
    gateway: to('maxSubscriptionsPerConnection'),
  }),
  'max-depth': option({
    env: 'RESGRAPH_MAX_DEPTH',
    value: '<n>',
    default: String(defaults.maxDepth),
    help: 'deepest selection an operation may have',
    read: wholeNumber(1, 1000, 'a whole number from 1 to 1000'),
    gateway: to('maxDepth'),
  }),
  workers: option({
    env: 'RESGRAPH_WORKERS',
    value: '<n|auto|off>',
    default: 'off',
    help: 'gateway processes sharing the port, each with its own cache (auto: one per core)',
    read(text): number | undefined {
      const t = text.trim().toLowerCase();
      if (t === 'off') return undefined;
      if (t === 'auto') return availableParallelism();
      return wholeNumber(1, 256, 'off, auto, or a whole number from 1 to 256')(t);
    },
  }),
  graphiql: option({
    env: 'RESGRAPH_GRAPHIQL',
    value: '<on|off>',
    default: onOffText(defaults.graphiql),
    help: 'GraphiQL for browsers at the GraphQL path (bundled: loads nothing from other hosts)',
    read: onOff,
    gateway: to('graphiql'),
  }),
  'multipart-heartbeat': option({
    env: 'RESGRAPH_MULTIPART_HEARTBEAT',
    value: '<ms>',
    default: String(defaults.multipartHeartbeat),
    help: "how often an idle multipart HTTP subscription (Apollo's protocol) gets a heartbeat",
    read: positiveMilliseconds,
    gateway: to('multipartHeartbeat'),
  }),
  'max-aliases': option({
    env: 'RESGRAPH_MAX_ALIASES',
    value: '<n>',
    default: String(defaults.maxAliases),
    help: 'aliased fields an operation may have',
    read: limit,
    gateway: to('maxAliases'),
  }),
  'max-tokens': option({
    env: 'RESGRAPH_MAX_TOKENS',
    value: '<n>',
    default: String(defaults.maxTokens),
    help: 'tokens a document may have',
    read: limit,
    gateway: to('maxTokens'),
  }),
  'max-directives': option({
    env: 'RESGRAPH_MAX_DIRECTIVES',
    value: '<n>',
    default: String(defaults.maxDirectives),
    help: 'directives an operation may use',
    read: limit,
    gateway: to('maxDirectives'),
  }),
  'max-document-bytes': option({
    env: 'RESGRAPH_MAX_DOCUMENT_BYTES',
    value: '<n>',
    default: String(defaults.maxDocumentBytes),
    help: 'bytes a GraphQL document may have',
    read: limit,
    gateway: to('maxDocumentBytes'),
  }),
  'max-body-bytes': option({
    env: 'RESGRAPH_MAX_BODY_BYTES',
    value: '<n>',
    default: String(defaults.maxBodyBytes),
    help: 'bytes a request body or WebSocket message may have (HTTP 413, WebSocket close 1009)',
    read: limit,
    gateway: to('maxBodyBytes'),
  }),
  'persisted-documents': option({
    env: 'RESGRAPH_PERSISTED_DOCUMENTS',
    value: '<file.json>',
    default: 'none',
    help: 'trusted documents, a JSON object of hash → document (codegen persistedDocuments); none: automatic persisted queries',
    read: (text) => (text.trim() === 'none' ? undefined : text.trim()),
    gateway: to('persistedDocuments'),
  }),
  'persisted-only': option({
    env: 'RESGRAPH_PERSISTED_ONLY',
    value: '',
    default: String(defaults.persistedOnly),
    help: 'refuse every document that is not in --persisted-documents',
    read: trueOrFalse,
    gateway: to('persistedOnly'),
  }),
};

type Flag = keyof typeof options;

/** `request-timeout` → `requestTimeout` */
type Camel<S extends string> = S extends `${infer Head}-${infer Tail}` ? `${Head}${Capitalize<Camel<Tail>>}` : S;
const camel = <S extends string>(flag: S) => flag.replace(/-(\w)/g, (_, c: string) => c.toUpperCase()) as Camel<S>;

type ValueOf<O> = O extends Option<infer T> ? T : never;

/** What the command line and the environment say, each option by the camel-cased name of its flag. */
export type CliOptions = { [F in Flag as Camel<F>]: ValueOf<(typeof options)[F]> } & {
  /** TLS, authentication and client name for NATS (--nats-*), checked when the gateway starts */
  natsClient: NatsClientOptions;
};

/** One row of `--help` and of the docs' option table. */
export interface OptionRow {
  flag: string;
  env: string;
  value: string;
  default: string;
  help: string;
}

/** Every option the command takes, in `--help` order. */
export function optionRows(): OptionRow[] {
  const row = ([flag, o]: [string, Omit<OptionRow, 'flag'>]): OptionRow => ({ flag, env: o.env, value: o.value, default: o.default, help: o.help });
  const [nats, ...rest] = Object.entries(options);
  return [row(nats), ...Object.entries(natsOptionSettings).map(row), ...rest.map(row)];
}

/** The `options` of node's `parseArgs` for every option of the table and the `--nats-*` ones. */
export function parseArgsOptions(): Record<string, { type: 'string' | 'boolean' }> {
  return Object.fromEntries(optionRows().map((r) => [r.flag, { type: r.value === '' ? ('boolean' as const) : ('string' as const) }]));
}

type Values = Readonly<Record<string, string | boolean | undefined>>;
type Env = Readonly<Record<string, string | undefined>>;

/** The flag's value, else the environment's (an empty variable counts as unset), else the default. */
function lookup(flag: Flag, values: Values, env: Env): { text: string; source: string } {
  const given = values[flag];
  if (typeof given === 'string') return { text: given, source: `--${flag}` };
  if (given === true) return { text: 'true', source: `--${flag}` };
  const o = options[flag];
  const fromEnv = env[o.env];
  if (fromEnv !== undefined && fromEnv !== '') return { text: fromEnv, source: o.env };
  return { text: o.default, source: `default of --${flag}` };
}

/** One option's value; throws UsageError naming where an unusable text came from. */
export function readOption<F extends Flag>(flag: F, values: Values, env: Env): ValueOf<(typeof options)[F]> {
  const { text, source } = lookup(flag, values, env);
  try {
    return (options[flag] as Option<unknown>).read(text) as ValueOf<(typeof options)[F]>;
  } catch (e) {
    if (e instanceof InvalidValue) throw new UsageError(`invalid ${source} ${JSON.stringify(text)}: expected ${e.expected}`);
    throw e;
  }
}

/** Every option's value (parseArgs `values` over `env` over the defaults); throws UsageError. */
export function readOptions(values: Values, env: Env): CliOptions {
  const out: Record<string, unknown> = {};
  for (const flag of Object.keys(options) as Flag[]) out[camel(flag)] = readOption(flag, values, env);
  out.natsClient = readNatsClientOptions(values, env);
  const read = out as CliOptions;
  if (read.persistedOnly && read.persistedDocuments === undefined) {
    throw new UsageError('--persisted-only needs --persisted-documents <file.json>: the documents it lets through');
  }
  return read;
}

/** The GatewayOptions the command's options set (the caller adds its logger and fleet hooks). */
export function gatewayOptions(cli: CliOptions): GatewayOptions {
  const out: GatewayOptions = { natsClient: cli.natsClient };
  for (const flag of Object.keys(options) as Flag[]) {
    const o = options[flag] as Option<unknown>;
    if (o.gateway) Object.assign(out, o.gateway(cli[camel(flag)]));
  }
  return out;
}
