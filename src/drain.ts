/**
 * The drain owns a gateway's graceful shutdown, step by step: new work is
 * refused (the router's part, told by the caller before the drain starts),
 * the schema watcher stops, live clients are told to reconnect elsewhere
 * (WebSockets closed with 1012, SSE and multipart streams ended), HTTP
 * queries and mutations in flight are waited for (RequestTracker), then the
 * HTTP server closes, the cache empties and the NATS connection drains.
 * What is still open when the timeout runs out is closed.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { NatsConnection } from 'nats';
import type { ResourceCache } from './cache/cache.js';
import { errorText, type Logger } from './log.js';
import type { ResClient } from './res/client.js';
import type { GatewayTracing } from './telemetry/tracing.js';
import type { MultipartSubscriptions } from './transports/multipart.js';
import type { ResWebSocket } from './transports/res-ws.js';
import type { WebSocketTransport } from './transports/ws.js';

/** How a drain went. */
export interface DrainResult {
  /** the timeout ran out: connections still open and requests still running were closed */
  forced: boolean;
  /** how long it took, in ms */
  ms: number;
}

/** What the drain closes, in its order. */
export interface DrainParts {
  server: Server;
  ws: WebSocketTransport;
  resWs: ResWebSocket | undefined;
  requests: RequestTracker;
  multipart: MultipartSubscriptions;
  cache: ResourceCache;
  res: ResClient;
  /** the NATS connection, once there is one */
  natsConnection: () => NatsConnection | undefined;
  metricsServer: { close(): Promise<void> } | undefined;
  tracing: GatewayTracing | undefined;
  schemaWatcher: { close(): void } | undefined;
  logger: Logger;
}

/** Drains the parts (see `Gateway.drain`); what is left open after `timeoutMs` is closed, and the result says `forced`. */
export async function drainGateway(parts: DrainParts, timeoutMs: number): Promise<DrainResult> {
  const { server, ws, resWs, requests, multipart, cache, res, natsConnection, metricsServer, tracing, schemaWatcher, logger: log } = parts;
  const started = Date.now();
  const deadline = started + timeoutMs;
  schemaWatcher?.close();
  log.info('draining: refusing new work, asking live clients to reconnect elsewhere', {
    timeoutMs,
    webSockets: ws.wss.clients.size,
    sseStreams: requests.streams.size,
    requestsInFlight: requests.oneShot.size,
  });
  const wsClosed = Promise.all([ws.closeForRestart(), resWs?.closeForRestart()]);
  requests.endStreams(multipart.endForRestart());
  requests.closeAfterAnswer();
  server.closeIdleConnections();
  const finished = await within(Promise.all([wsClosed, requests.idle()]), deadline - Date.now());
  if (!finished) {
    log.warn('drain timed out; closing what is left', {
      timeoutMs,
      webSockets: ws.wss.clients.size,
      requestsInFlight: requests.oneShot.size + requests.streams.size,
    });
    ws.terminate();
    resWs?.terminate();
  }
  ws.wss.close();
  resWs?.wss.close();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  cache.clear();
  // draining NATS takes a moment when the broker is there; without one it could wait for ever
  const nc = natsConnection();
  const natsDrained = await within(res.drain(), Math.max(deadline - Date.now(), 1000));
  if (!natsDrained) {
    log.warn('NATS drain timed out; closing the connection');
    await nc?.close();
  }
  await metricsServer?.close();
  // the spans of the work the drain just ended, too
  await tracing?.flush().catch((e: unknown) => log.warn('flushing traces failed', { error: errorText(e) }));
  return { forced: !finished || !natsDrained, ms: Date.now() - started };
}

/** Resolves true when `p` settles within `ms`, false otherwise. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(ms, 0))));
  try {
    return await Promise.race([p.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The HTTP requests in flight, for the drain: one-shot GraphQL requests
 * (queries, mutations, GraphiQL) are waited for; streams (SSE, multipart
 * subscriptions and `@live`) are ended.
 */
export class RequestTracker {
  readonly oneShot = new Set<ServerResponse>();
  readonly streams = new Map<ServerResponse, IncomingMessage>();
  private waiters: (() => void)[] = [];

  track(req: IncomingMessage, response: ServerResponse): void {
    const accept = req.headers.accept ?? '';
    const stream = accept.includes('text/event-stream') || accept.includes('multipart/mixed');
    if (stream) this.streams.set(response, req);
    else this.oneShot.add(response);
    response.once('close', () => {
      this.oneShot.delete(response);
      this.streams.delete(response);
      this.check();
    });
  }

  /**
   * Ends every stream's connection without a `complete` event: to the
   * client it is a lost connection, which SSE clients answer by connecting
   * again (to another instance), not a finished subscription. Streams in
   * `endingThemselves` (multipart subscriptions, which first say why) are left to end.
   */
  endStreams(endingThemselves: ReadonlySet<ServerResponse> = new Set()): void {
    for (const [response, req] of this.streams) if (!endingThemselves.has(response)) req.socket.end();
  }

  /** Asks the clients of requests in flight not to reuse their connection: it closes after the answer. */
  closeAfterAnswer(): void {
    for (const response of this.oneShot) if (!response.headersSent) response.setHeader('connection', 'close');
  }

  /** Resolves when no request is in flight. */
  idle(): Promise<void> {
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.check();
    });
  }

  private check(): void {
    if (this.oneShot.size > 0 || this.streams.size > 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
