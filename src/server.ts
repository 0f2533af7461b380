/**
 * Wiring: configuration → parts → a listening server, and a clean shutdown.
 * The NATS connection is made in the background and retried forever, so a
 * gateway started before its broker stays up, answers with clear errors and
 * reports itself unhealthy until NATS is reachable.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Events, connect, type NatsConnection } from 'nats';
import { AccessChecker, ConnectionRegistry } from './access/access.js';
import { ResourceCache } from './cache/cache.js';
import { consoleLogger, type Logger } from './log.js';
import { ResClient } from './res/client.js';
import { parseSystemReset, parseTokenEvent, parseTokenReset, subjects } from './res/protocol.js';
import { Authenticator, parseHeaderAuth } from './access/auth.js';
import { buildExecutableSchema } from './resolvers/executable.js';
import { Resolvers } from './resolvers/resolvers.js';
import { loadResourceSchema, type LoadedSchema } from './schema/schema.js';
import { createHttpTransport, type GatewayYoga } from './transports/http.js';
import { attachWebSocketTransport } from './transports/ws.js';
import { LiveEngine } from './live/engine.js';
import { useLiveResults } from './live/plugin.js';
import { maxDepthPlugin } from '@escape.tech/graphql-armor-max-depth';

export interface GatewayOptions {
  /** NATS server URL(s). Default nats://127.0.0.1:4222. */
  nats?: string | string[];
  /** A schema file or a folder of `.graphql` files. Default ./schema. */
  schema?: string | LoadedSchema;
  /** HTTP port; 0 picks a free one. Default 4000. */
  port?: number;
  /** Address to listen on. Default 127.0.0.1. */
  host?: string;
  /** RES request timeout in ms. Default 3000. */
  requestTimeout?: number;
  /** How long an unused resource stays cached, in ms. Default 5000. */
  evictDelay?: number;
  /** GraphQL endpoint path (HTTP, SSE and WebSocket). Default /graphql. */
  graphqlPath?: string;
  /** Live subscriptions one connection may hold. Default 200. */
  maxSubscriptionsPerConnection?: number;
  /** Deepest selection an operation may have. Default 15. */
  maxDepth?: number;
  /** `<rid>.<method>` of an auth method called with each connection's HTTP headers before anything else. */
  headerAuth?: string;
  logger?: Logger;
}

export interface Gateway {
  /** the GraphQL endpoint's URL */
  url: string;
  port: number;
  res: ResClient;
  cache: ResourceCache;
  connections: ConnectionRegistry;
  live: LiveEngine;
  yoga: GatewayYoga;
  /** resolves once the NATS connection is established */
  natsReady: Promise<NatsConnection>;
  close(): Promise<void>;
}

export async function startGateway(opts: GatewayOptions = {}): Promise<Gateway> {
  const log = opts.logger ?? consoleLogger();
  const loaded = typeof opts.schema === 'object' ? opts.schema : loadResourceSchema(opts.schema ?? 'schema');
  const servers = opts.nats ?? 'nats://127.0.0.1:4222';

  const res = new ResClient({ requestTimeout: opts.requestTimeout, logger: log });
  const cache = new ResourceCache({ res, logger: log, evictDelay: opts.evictDelay });
  const connections = new ConnectionRegistry();
  const access = new AccessChecker(res);
  const authenticator = new Authenticator(res, log, opts.headerAuth ? parseHeaderAuth(opts.headerAuth) : undefined);
  const resolvers = new Resolvers({ cache, access, res, mapping: loaded.mapping, logger: log });
  const schema = buildExecutableSchema(loaded, resolvers);
  const live = new LiveEngine({ cache, access, logger: log, maxSubscriptionsPerConnection: opts.maxSubscriptionsPerConnection });

  cache.reaccessListeners.add((rid) => connections.reaccess(rid));

  const graphqlPath = opts.graphqlPath ?? '/graphql';
  const yoga = createHttpTransport({
    schema,
    cache,
    connections,
    logger: log,
    graphqlEndpoint: graphqlPath,
    natsConnected: () => res.connected,
    authenticator,
    plugins: [maxDepthPlugin({ n: opts.maxDepth ?? 15, exposeLimits: true }), useLiveResults(live, loaded.mapping)],
  });
  const server = createServer(yoga);
  await listen(server, opts.port ?? 4000, opts.host ?? '127.0.0.1');
  // attached once listening: a failed listen then leaves nothing running behind it
  const wss = attachWebSocketTransport({ server, yoga, path: graphqlPath, connections, authenticator, logger: log });
  let closing: Promise<void> | undefined;

  const natsReady = connectNats(servers, log).then(async (nc) => {
    if (closing) {
      // closed before NATS came up: do not start serving on it
      await nc.close();
      return nc;
    }
    res.attach(nc);
    listenToSystemSubjects(res, cache, connections, authenticator, log);
    void watchConnection(nc, res, cache, connections, log);
    return nc;
  });
  natsReady.catch((e: unknown) => log.error('cannot connect to NATS', { error: (e as Error).message }));
  const port = (server.address() as AddressInfo).port;
  const host = opts.host ?? '127.0.0.1';
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}${graphqlPath}`;

  const close = () =>
    (closing ??= (async () => {
      for (const ws of wss.clients) ws.close(1001, 'Going away');
      wss.close();
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      cache.clear();
      await res.drain();
    })());

  return { url, port, res, cache, connections, live, yoga, natsReady, close };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Connects to NATS, retrying forever (also for the first connection). */
async function connectNats(servers: string | string[], log: Logger): Promise<NatsConnection> {
  const nc = await connect({
    servers,
    name: 'resgraph',
    waitOnFirstConnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
  });
  log.info('connected to NATS', { server: nc.getServer() });
  return nc;
}

/**
 * Follows the NATS connection's state. Events may have been missed while it
 * was down, so after a reconnect every cached resource is re-fetched and
 * diffed and every access verdict is asked again (res-protocol.md, "Lost
 * NATS connection").
 */
async function watchConnection(
  nc: NatsConnection,
  res: ResClient,
  cache: ResourceCache,
  connections: ConnectionRegistry,
  log: Logger,
): Promise<void> {
  for await (const status of nc.status()) {
    if (status.type === Events.Disconnect) {
      res.reconnecting = true;
      log.warn('lost the NATS connection; reconnecting');
    } else if (status.type === Events.Reconnect) {
      res.reconnected();
      log.info('reconnected to NATS; resynchronizing the cache', { server: nc.getServer() });
      connections.resetAccess(['>']);
      void cache.resetAll();
    }
  }
}

/** Service-wide messages: connection tokens and system resets. */
function listenToSystemSubjects(
  res: ResClient,
  cache: ResourceCache,
  connections: ConnectionRegistry,
  authenticator: Authenticator,
  log: Logger,
): void {
  res.subscribe(subjects.connAll, (subject, payload) => {
    const [, cid, event] = subject.split('.');
    if (event !== 'token') return;
    const conn = connections.get(cid);
    if (!conn) return;
    try {
      const { token, tid } = parseTokenEvent(payload);
      conn.setToken(token, tid);
    } catch (e) {
      log.warn('malformed token event ignored', { subject, reason: (e as Error).message });
    }
  });
  res.subscribe(subjects.systemTokenReset, (subject, payload) => {
    try {
      const { tids, subject: authSubject } = parseTokenReset(payload);
      authenticator.tokenReset(connections, tids, authSubject);
    } catch (e) {
      log.warn('malformed system.tokenReset ignored', { subject, reason: (e as Error).message });
    }
  });
  res.subscribe(subjects.systemReset, (subject, payload) => {
    try {
      const { resources, access } = parseSystemReset(payload);
      if (access.length > 0) connections.resetAccess(access);
      if (resources.length > 0) void cache.resetMatching(resources);
    } catch (e) {
      log.warn('malformed system.reset ignored', { subject, reason: (e as Error).message });
    }
  });
}
