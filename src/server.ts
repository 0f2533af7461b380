/**
 * Wiring: configuration → parts → a listening server, and a clean shutdown.
 * The NATS connection is made in the background and retried forever, so a
 * gateway started before its broker stays up, answers with clear errors and
 * reports itself not ready until NATS is reachable.
 *
 * Shutdown is a drain (see `Gateway.drain` and drain.ts): new work is
 * refused, live clients are told to reconnect elsewhere, work in flight
 * finishes, then the NATS connection drains.
 *
 * A schema reload (see `Gateway.reloadSchema`) swaps the served schema
 * generation under running streams: nothing reconnects.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ConnectionOptions, NatsConnection } from 'nats';
import type { TracerProvider } from '@opentelemetry/api';
import { AccessChecker, ConnectionRegistry } from './access/access.js';
import { RequestTracker, drainGateway, type DrainResult } from './drain.js';
import { ResourceCache } from './cache/cache.js';
import { defaults } from './config/defaults.js';
import { consoleLogger, errorText, type Logger } from './log.js';
import { ResClient } from './res/client.js';
import { ConnectAttempts, connectWithRetry, followConnection, reconnectingOptions } from './res/nats-connection.js';
import { natsConnectOptions, redactServers, type NatsClientOptions } from './res/nats-options.js';
import { Authenticator, parseHeaderAuth } from './access/auth.js';
import { ServedSchema, type SchemaGeneration } from './resolvers/served.js';
import { SchemaError, loadResourceSchema, type LoadedSchema } from './schema/schema.js';
import { watchSchemaFiles } from './schema/watch.js';
import { createHttpTransport, type GatewayYoga, type StreamTransportParts } from './transports/http.js';
import { createQueryFastPath } from './transports/fast-http.js';
import { ClientLifecycle } from './transports/lifecycle.js';
import { createResApi } from './transports/res-api.js';
import { attachResWebSocket } from './transports/res-ws.js';
import { documentLimitPlugins, limitsWithDefaults } from './transports/limits.js';
import { TrustedDocuments, loadPersistedDocuments } from './transports/trusted-documents.js';
import { attachWebSocketTransport } from './transports/ws.js';
import { MultipartSubscriptions } from './transports/multipart.js';
import { SingleConnectionSse } from './transports/sse.js';
import { useIncrementalAsJson } from './transports/incremental.js';
import { LiveEngine } from './live/engine.js';
import { GatewayMetrics, startMetricsServer } from './metrics/metrics.js';
import { useLiveResults } from './live/plugin.js';
import type { FleetHooks } from './fleet/workers.js';
import { originVerdict, parseAllowOrigin } from './transports/origin.js';
import { routeRequests, routeUpgrades } from './transports/router.js';
import { useDeferStream } from '@graphql-yoga/plugin-defer-stream';
import type { GatewayTracing } from './telemetry/tracing.js';

/**
 * How to run a gateway. Every field is optional; an unset one takes its value
 * from `defaults` (config/defaults.ts), which each comment states
 * (test/docs.test.ts checks that they agree).
 */
export interface GatewayOptions {
  /**
   * NATS server URL(s), `nats://` or `tls://` (TLS required), optionally with
   * `user:password@` or `token@`. Default nats://127.0.0.1:4222.
   */
  nats?: string | string[];
  /**
   * How to connect to a secured NATS: TLS files, one way to authenticate
   * (creds file, NKey seed, token, user and password), the client name
   * (default `resgraph`). Checked before the gateway listens: a bad option
   * throws NatsOptionsError. Default: none (plain, unauthenticated).
   */
  natsClient?: NatsClientOptions;
  /** A schema file or a folder of `.graphql` files. Default ./schema. */
  schema?: string | LoadedSchema;
  /**
   * Reload the schema (see `Gateway.reloadSchema`) whenever its files
   * change, once the writes have settled (schema/watch.ts). Needs `schema`
   * as a path. Default false.
   */
  watchSchema?: boolean;
  /** HTTP port; 0 picks a free one. Default 4000. */
  port?: number;
  /** Address to listen on. Default 127.0.0.1. */
  host?: string;
  /** RES request timeout in ms. Default 3000. */
  requestTimeout?: number;
  /** How long an unused resource stays cached, in ms. Default 5000. */
  evictDelay?: number;
  /** Re-gets a `system.reset` or NATS reconnect may have in flight at once; held resources go first. Default 64. */
  resyncConcurrency?: number;
  /** GraphQL endpoint path (HTTP, SSE and WebSocket). Default /graphql. */
  graphqlPath?: string;
  /** Live subscriptions one connection may hold. Default 200. */
  maxSubscriptionsPerConnection?: number;
  /** Deepest selection an operation may have. Default 15. */
  maxDepth?: number;
  /**
   * Web pages on other origins that may use the gateway from a browser:
   * `'*'` (any origin, without credentials), or a list of origins
   * (`scheme://host[:port]`, a string separated by commas or an array), each
   * allowed with credentials. Default: none; same-origin pages and clients
   * that send no `Origin` are always served. See transports/origin.ts.
   */
  allowOrigin?: string | readonly string[];
  /**
   * Resgate's HTTP API (transports/res-api.ts): `GET <apiPath>/<rid as path>`
   * and `POST <apiPath>/<rid as path>/<method>`. Default true.
   */
  resgateApi?: boolean;
  /** Where Resgate's HTTP API is served. Default /api. */
  apiPath?: string;
  /**
   * Where the RES client protocol (Resgate's WebSocket protocol, for
   * ResClient; transports/res-ws.ts) is served, or false for nowhere.
   * Default /.
   */
  resWsPath?: string | false;
  /** Aliased fields an operation may have. Default 30. */
  maxAliases?: number;
  /** Tokens a document may have. Default 5000. */
  maxTokens?: number;
  /** Directives an operation may use. Default 50. */
  maxDirectives?: number;
  /** Bytes (UTF-8) a document may have. Default 102400 (100 KB). */
  maxDocumentBytes?: number;
  /**
   * Bytes a request body may have: HTTP answers 413 above it, and a larger
   * WebSocket message closes its socket with 1009. Default 1048576 (1 MB).
   */
  maxBodyBytes?: number;
  /**
   * Trusted documents: a manifest of hash → document (or the path of its
   * JSON file, as graphql-codegen's client preset writes it with
   * `persistedDocuments: true`) that clients name by `documentId` or
   * `extensions.persistedQuery.sha256Hash`. Default none: automatic
   * persisted queries (Apollo's protocol) instead.
   */
  persistedDocuments?: string | Record<string, string>;
  /** Refuse every document that is not in `persistedDocuments` (which it needs). Default false. */
  persistedOnly?: boolean;
  /** `<rid>.<method>` of an auth method called with each connection's HTTP headers before anything else. Default: none. */
  headerAuth?: string;
  /**
   * Prometheus metrics: `true` for `/metrics` on the gateway's port, `false`
   * for none, or `{ port }` for `/metrics` on a port of its own (0 picks a
   * free one). `processMetrics` adds the process's CPU, memory and event
   * loop metrics (once per process: the CLI turns it on). Default true.
   */
  metrics?: boolean | { port?: number; host?: string; processMetrics?: boolean };
  /**
   * Set in each worker of `--workers`: `/metrics` and `/readyz` answer for
   * the whole fleet (see fleet/workers.ts). Default: a gateway on its own.
   */
  fleet?: FleetHooks;
  /** GraphiQL for browsers at the GraphQL path, served from the gateway's bundled copy. Default true. */
  graphiql?: boolean;
  /** How often an idle multipart subscription (Apollo's HTTP protocol) gets a heartbeat, in ms. Default 5000. */
  multipartHeartbeat?: number;
  /** How long a graphql-sse single-connection reservation (`PUT`) waits for its stream to be opened, in ms. Default 30000. */
  sseReservationTimeout?: number;
  /** How long `drain()` and `close()` wait for work in flight before closing it, in ms. Default 10000. */
  drainTimeout?: number;
  /**
   * OpenTelemetry traces (telemetry/tracing.ts, docs/tracing.md): a span per
   * GraphQL operation, per get / access / call / auth request (whose W3C
   * trace context goes to the service in the request's NATS headers) and
   * per live update. Spans go to `tracerProvider`, default the provider
   * registered with @opentelemetry/api. The drain flushes it; shutting it
   * down is its owner's. Default: off (no spans, no headers, nothing loaded).
   */
  tracing?: { tracerProvider?: TracerProvider };
  /** Where log lines go. Default: `consoleLogger()`, info and above as text on stderr. */
  logger?: Logger;
}

/**
 * How a schema reload went: applied (with how many open streams, live
 * results and `@event` streams, go on and how many ended), or refused with
 * every problem (the schema served before is still served).
 */
export type SchemaReload =
  | { ok: true; generation: number; streamsContinued: number; streamsEnded: number }
  | { ok: false; errors: string[] };

export type { DrainResult } from './drain.js';

export interface Gateway {
  /** the GraphQL endpoint's URL */
  url: string;
  port: number;
  res: ResClient;
  cache: ResourceCache;
  connections: ConnectionRegistry;
  live: LiveEngine;
  yoga: GatewayYoga;
  /** resolves once the NATS connection is established (retried for ever); rejects if the gateway closes first */
  natsReady: Promise<NatsConnection>;
  /** the gateway's metrics, unless turned off */
  metrics: GatewayMetrics | undefined;
  /** where the metrics are served, unless turned off */
  metricsUrl: string | undefined;
  /** whether a drain has begun */
  readonly draining: boolean;
  /**
   * Shuts down gracefully: refuses new connections and GraphQL requests
   * (503; /healthz, /readyz and /metrics still answer, /readyz with 503),
   * closes WebSockets with 1012 "service restart" (a socket running a query
   * or mutation once it is answered) and ends SSE streams so their clients
   * reconnect elsewhere, waits for HTTP queries and mutations in flight, then
   * drains the NATS connection. What is still open after `timeoutMs`
   * (default: the drainTimeout option) is closed. Calling it again returns
   * the same drain.
   */
  drain(timeoutMs?: number): Promise<DrainResult>;
  /** `drain()` with the configured timeout. */
  close(): Promise<void>;
  /**
   * Loads the schema again from its path and, when it is valid, serves it
   * at once: new operations are validated and run against it, and each live
   * stream whose operation still validates goes on (a result the new schema
   * does not change is not sent again), while one that no longer validates
   * ends with `system.schemaChanged`. An invalid schema is refused and every
   * problem logged; the schema served before stays. SIGHUP and
   * `watchSchema` call it.
   */
  reloadSchema(): SchemaReload;
}

export async function startGateway(opts: GatewayOptions = {}): Promise<Gateway> {
  const log = opts.logger ?? consoleLogger();
  const schemaPath = typeof opts.schema === 'object' ? undefined : (opts.schema ?? defaults.schema);
  if (opts.watchSchema && schemaPath === undefined) throw new Error('watchSchema needs the schema as a path, to watch its files');
  const loaded = schemaPath === undefined ? (opts.schema as LoadedSchema) : loadResourceSchema(schemaPath);
  const natsOptions = natsConnectOptions(opts.nats ?? defaults.nats, opts.natsClient ?? {}, defaults.natsName);
  const origins = parseAllowOrigin(typeof opts.allowOrigin === 'string' ? opts.allowOrigin : (opts.allowOrigin ?? []).join(','));

  const metricsOpt = opts.metrics ?? defaults.metrics;
  const metrics =
    metricsOpt === false
      ? undefined
      : new GatewayMetrics({ processMetrics: typeof metricsOpt === 'object' && metricsOpt.processMetrics, fleetText: opts.fleet?.metrics });
  const tracing = opts.tracing ? await startTracing(opts.tracing) : undefined;
  const res = new ResClient({ requestTimeout: opts.requestTimeout, logger: log, observer: metrics, tracer: tracing });
  const cache = new ResourceCache({ res, logger: log, evictDelay: opts.evictDelay, observer: metrics, resyncConcurrency: opts.resyncConcurrency });
  const connections = new ConnectionRegistry();
  const access = new AccessChecker(res);
  const authenticator = new Authenticator(res, log, opts.headerAuth ? parseHeaderAuth(opts.headerAuth) : undefined);
  const lifecycle = new ClientLifecycle({ cache, connections, authenticator });
  const served = new ServedSchema({ cache, access, res, logger: log }, loaded);
  const live = new LiveEngine({
    cache,
    access,
    served,
    logger: log,
    maxSubscriptionsPerConnection: opts.maxSubscriptionsPerConnection,
    observer: metrics,
    tracer: tracing,
  });
  /** set when a drain begins */
  let draining = false;
  /** why the NATS connection is not up, as NATS said it (for /readyz); undefined while connected or not yet tried */
  const nats: NatsState = { problem: undefined };
  metrics?.watch({ connections, cache, live, natsConnected: () => res.connected, ready: () => res.connected && !draining });

  cache.onReaccess((rid) => connections.reaccess(rid));
  cache.onAccessReset((patterns) => connections.resetAccess(patterns));
  cache.onUnheard((rid) => connections.forgetUnheard(rid));

  const graphqlPath = opts.graphqlPath ?? defaults.graphqlPath;
  const multipart = new MultipartSubscriptions({ heartbeatMs: opts.multipartHeartbeat, logger: log });
  const limits = limitsWithDefaults(opts);
  const trusted = new TrustedDocuments({
    manifest: typeof opts.persistedDocuments === 'string' ? loadPersistedDocuments(opts.persistedDocuments) : opts.persistedDocuments,
    persistedOnly: opts.persistedOnly,
    maxDocumentBytes: limits.maxDocumentBytes,
  });
  const yoga = createHttpTransport({
    schema: served.current.schema,
    lifecycle,
    logger: log,
    graphqlEndpoint: graphqlPath,
    natsConnected: () => res.connected,
    natsError: () => nats.problem,
    draining: () => draining,
    fleet: opts.fleet,
    graphiql: opts.graphiql ?? defaults.graphiql,
    maxBodyBytes: limits.maxBodyBytes,
    plugins: [
      served.yogaPlugin(),
      trusted.yogaPlugin(),
      ...documentLimitPlugins(limits),
      useDeferStream(),
      useIncrementalAsJson(),
      useLiveResults(live, served),
      multipart.plugin,
      // last: its span then wraps the live engine's execute and subscribe
      ...(tracing?.yogaPlugins() ?? []),
    ],
  });
  const separateMetrics = metrics !== undefined && typeof metricsOpt === 'object' && metricsOpt.port !== undefined;
  const requests = new RequestTracker();
  const fastPath = createQueryFastPath({
    yoga,
    served,
    lifecycle,
    graphqlPath,
    logger: log,
    maxBodyBytes: limits.maxBodyBytes,
    trusted,
    tracing,
  });
  const streamParts: StreamTransportParts = {
    yoga,
    path: graphqlPath,
    lifecycle,
    live,
    served,
    logger: log,
    trusted,
    tracing,
  };
  const singleConnectionSse = new SingleConnectionSse({
    ...streamParts,
    reservationTimeout: opts.sseReservationTimeout,
    maxBodyBytes: limits.maxBodyBytes,
  });
  const resApi =
    !(opts.resgateApi ?? defaults.resgateApi)
      ? undefined
      : createResApi({ path: opts.apiPath ?? defaults.apiPath, cache, access, res, lifecycle, logger: log, maxBodyBytes: limits.maxBodyBytes });
  const server = createServer(
    routeRequests({
      yoga,
      origins,
      metrics: separateMetrics ? undefined : metrics,
      resApi,
      singleConnectionSse,
      fastPath,
      track: (req, response) => requests.track(req, response),
      draining: () => draining,
    }),
  );
  const host = opts.host ?? defaults.host;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  // a failed listen (a port in use) rejects: once() also takes the server's 'error'
  await once(server.listen(opts.port ?? defaults.port, host), 'listening');
  let metricsServer: Awaited<ReturnType<typeof startMetricsServer>> | undefined;
  if (separateMetrics && typeof metricsOpt === 'object') {
    try {
      metricsServer = await startMetricsServer(metrics!, metricsOpt.port!, metricsOpt.host ?? host);
    } catch (e) {
      server.close();
      throw e;
    }
  }
  // attached once listening: a failed listen then leaves nothing running behind it
  const acceptOrigin = (req: IncomingMessage) => originVerdict(origins, req) !== 'forbidden';
  const ws = attachWebSocketTransport({ ...streamParts, acceptOrigin, maxMessageBytes: limits.maxBodyBytes });
  const resWsPath = opts.resWsPath ?? defaults.resWsPath;
  const resWs =
    resWsPath === false
      ? undefined
      : attachResWebSocket({
          path: resWsPath,
          cache,
          access,
          res,
          lifecycle,
          logger: log,
          acceptOrigin,
          maxSubscriptionsPerConnection: opts.maxSubscriptionsPerConnection ?? defaults.maxSubscriptionsPerConnection,
          maxMessageBytes: limits.maxBodyBytes,
        });
  server.on('upgrade', routeUpgrades({ graphqlPath, ws, resWs, resWsPath }));
  let closing: Promise<DrainResult> | undefined;
  let natsConn: NatsConnection | undefined;

  const natsReady = connectNats(natsOptions, nats, log, () => closing !== undefined).then(async (nc) => {
    if (!nc) throw new Error('the gateway closed before NATS was connected');
    if (closing) {
      // closed before NATS came up: do not start serving on it
      await nc.close();
      return nc;
    }
    natsConn = nc;
    res.attach(nc);
    // in the same tick as attach: subscribed before any request is sent
    connections.listenForTokens(res);
    authenticator.listenForTokenResets(connections);
    cache.listenForResets();
    watchConnection(nc, nats, res, cache, connections, log);
    return nc;
  });
  natsReady.catch((e: unknown) => {
    if (!closing) log.error('cannot connect to NATS', { error: (e as Error).message });
  });

  const reloadSchema = (): SchemaReload => {
    const outcome = reloadServedSchema(schemaPath, served, live, log);
    metrics?.schemaReload(outcome.ok ? 'applied' : 'refused');
    return outcome;
  };
  const schemaWatcher =
    opts.watchSchema && schemaPath !== undefined
      ? watchSchemaFiles(schemaPath, reloadSchema, (e) => log.error('watching the schema files stopped', { path: schemaPath, error: e.message }))
      : undefined;
  if (schemaWatcher) log.info('watching the schema files; a change reloads the schema', { path: schemaPath });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${urlHost}:${port}${graphqlPath}`;
  const metricsUrl = metricsServer?.url ?? (metrics ? `http://${urlHost}:${port}/metrics` : undefined);

  const drain = (timeoutMs = opts.drainTimeout ?? defaults.drainTimeout): Promise<DrainResult> => {
    if (closing) return closing;
    draining = true;
    const parts = { server, ws, resWs, requests, multipart, cache, res, natsConnection: () => natsConn, metricsServer, tracing, schemaWatcher, logger: log };
    return (closing = drainGateway(parts, timeoutMs));
  };

  return {
    url,
    port,
    res,
    cache,
    connections,
    live,
    yoga,
    natsReady,
    metrics,
    metricsUrl,
    get draining() {
      return draining;
    },
    drain,
    close: () => drain().then(() => undefined),
    reloadSchema,
  };
}

/** Tracing, loaded only when it is on: off, none of OpenTelemetry is imported. */
async function startTracing(opts: NonNullable<GatewayOptions['tracing']>): Promise<GatewayTracing> {
  const { GatewayTracing } = await import('./telemetry/tracing.js');
  return new GatewayTracing(opts.tracerProvider);
}

/**
 * Loads the schema at `path` and, when it can be served, makes it the
 * served generation and moves the live streams to it; otherwise logs each
 * problem and keeps the generation served before.
 */
function reloadServedSchema(path: string | undefined, served: ServedSchema, live: LiveEngine, log: Logger): SchemaReload {
  let next: SchemaGeneration;
  try {
    if (path === undefined) throw new SchemaError(['the schema was given as an object, not read from files: there is nothing to reload']);
    next = served.next(loadResourceSchema(path));
  } catch (e) {
    // a file removed or unreadable between the listing and the read fails like a schema problem
    const errors = e instanceof SchemaError ? e.problems : [(e as Error).message ?? String(e)];
    for (const problem of errors) log.error('schema problem', { problem });
    log.error('schema reload refused; still serving the schema loaded before', { problems: errors.length, generation: served.current.number });
    return { ok: false, errors };
  }
  served.replace(next);
  const streams = live.switchSchema(next.schema);
  log.info('schema reloaded', {
    generation: next.number,
    files: next.loaded.files,
    streamsContinued: streams.continued,
    streamsEnded: streams.ended,
  });
  return { ok: true, generation: next.number, streamsContinued: streams.continued, streamsEnded: streams.ended };
}

/** The NATS connection's trouble, shared by the connecting code and the probes. */
interface NatsState {
  problem: string | undefined;
  attempts?: ConnectAttempts;
}

/**
 * Connects to NATS, retrying for ever (also for the first connection) with
 * back-off; each failed attempt is logged with NATS's reason, which /readyz
 * shows until the connection is up. Resolves undefined if `stopped()` first.
 */
async function connectNats(
  base: ConnectionOptions,
  state: NatsState,
  log: Logger,
  stopped: () => boolean,
): Promise<NatsConnection | undefined> {
  const attempts = (state.attempts = new ConnectAttempts());
  const servers = redactServers(base.servers ?? []);
  const nc = await connectWithRetry(reconnectingOptions(base, attempts), attempts, {
    stopped,
    failed(reason, retryInMs) {
      state.problem = reason;
      log.warn('cannot connect to NATS', { servers, reason, retryInMs });
    },
  });
  if (nc) {
    state.problem = undefined;
    log.info('connected to NATS', { server: nc.getServer() });
  }
  return nc;
}

/**
 * Follows the NATS connection's state. Events may have been missed while it
 * was down, so after a reconnect every cached resource is re-fetched and
 * diffed and every access verdict is asked again (see
 * docs/protocol-notes.md#lost-nats-connection). Each failed reconnect attempt
 * is logged once.
 */
function watchConnection(
  nc: NatsConnection,
  state: NatsState,
  res: ResClient,
  cache: ResourceCache,
  connections: ConnectionRegistry,
  log: Logger,
): void {
  followConnection(nc, state.attempts!, {
    lost(reason) {
      res.connectionLost();
      state.problem = reason ?? 'lost the connection; reconnecting';
      log.warn('lost the NATS connection; reconnecting', reason ? { reason } : {});
    },
    attemptFailed(server, reason, retryInMs) {
      state.problem = reason;
      log.warn('cannot reconnect to NATS', { server, reason, retryInMs });
    },
    rejected(reason) {
      state.problem = reason;
      log.warn('NATS rejected the connection', { reason });
    },
    reconnected() {
      state.problem = undefined;
      res.connectionRestored();
      log.info('reconnected to NATS; resynchronizing the cache', { server: nc.getServer() });
      connections.resetAccess(['>']);
      void cache.resetAll(); // never rejects
    },
  }).catch((e: unknown) => log.error('following the NATS connection failed', { error: errorText(e) }));
}
