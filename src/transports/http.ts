/**
 * The HTTP transport: graphql-yoga serving `POST`/`GET` /graphql, SSE and
 * GraphiQL (graphiql.ts), plus the `/healthz` and `/readyz` probes. Cross-cutting work is done in Yoga
 * plugins around the one execution pipeline: a Connection per HTTP request,
 * and the execution's context released when the execution ends, both through
 * the client lifecycle (lifecycle.ts). No business rules live here.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createYoga, isAsyncIterable, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import type { GraphQLSchema } from 'graphql';
import type { AccessChecker, Connection, HttpInfo } from '../access/access.js';
import type { ResourceCache } from '../cache/cache.js';
import type { Logger } from '../log.js';
import type { ResClient } from '../res/client.js';
import type { LiveEngine } from '../live/engine.js';
import type { GatewayContext } from '../resolvers/resolvers.js';
import type { ServedSchema } from '../resolvers/served.js';
import type { FleetHooks } from '../fleet/workers.js';
import { csrfPrevention } from './csrf.js';
import { graphiqlPage, useGraphiQLAssets } from './graphiql.js';
import type { ClientLifecycle } from './lifecycle.js';
import { rememberConnection, responseMeta } from './response-meta.js';
import { requestBodyLimit } from './limits.js';
import type { TrustedDocuments } from './trusted-documents.js';
import type { OperationTracer } from '../telemetry/tracing.js';

export interface ServerContext {
  req: IncomingMessage;
  res: ServerResponse;
  /** set by the WebSocket transport: the socket's connection */
  connection?: Connection;
}

export interface HttpTransportOptions {
  schema: GraphQLSchema;
  /** each HTTP request's connection (header auth run for it before the operation) and each execution's context */
  lifecycle: ClientLifecycle;
  logger: Logger;
  graphqlEndpoint: string;
  /** whether the NATS connection is up, for /readyz */
  natsConnected: () => boolean;
  /** why NATS is not connected, as NATS said it, for /readyz */
  natsError?: () => string | undefined;
  /** whether the gateway is draining (shutting down), for /readyz */
  draining?: () => boolean;
  /** one worker of several (`--workers`): /readyz answers for the whole fleet */
  fleet?: Pick<FleetHooks, 'readiness'>;
  /** extra envelop plugins (limits, live results) */
  plugins?: Plugin[];
  /** GraphiQL (from the bundled copy) at the GraphQL path for browsers. Default true. */
  graphiql?: boolean;
  /** Bytes a request body may have (413 above it). */
  maxBodyBytes: number;
}

export type GatewayYoga = YogaServerInstance<ServerContext, GatewayContext>;

/** What the transports for clients written for Resgate (its HTTP API, its WebSocket protocol) are built from. */
export interface ResTransportParts {
  /** where the transport is served (the HTTP API's root path, the WebSocket's path) */
  path: string;
  cache: ResourceCache;
  access: AccessChecker;
  res: ResClient;
  /** each client's connection, header auth and the lease of what it reads */
  lifecycle: ClientLifecycle;
  logger: Logger;
}

/** What the streaming transports of the GraphQL path (graphql-ws, graphql-sse's single connection) are built from. */
export interface StreamTransportParts {
  yoga: GatewayYoga;
  path: string;
  /** each client's connection, header auth and the context of each operation */
  lifecycle: ClientLifecycle;
  live: LiveEngine;
  /** the schema being served (its current generation: the mapping, and the executable schema Yoga serves) */
  served: ServedSchema;
  logger: Logger;
  /** the trusted documents: an operation naming its document by hash runs the known one; `--persisted-only` refuses the others */
  trusted: TrustedDocuments;
  /** a span per live operation (the others run through Yoga's envelop, whose plugin traces them); undefined when tracing is off */
  tracing?: OperationTracer;
}

/** Header names in canonical MIME form (`content-type` → `Content-Type`), values as arrays, as auth requests carry them. */
export function canonicalHeaders(headers: Headers): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  headers.forEach((value, key) => {
    const name = key.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
    (out[name] ??= []).push(value);
  });
  return out;
}

/** A Node request's headers as fetch Headers (repeated headers kept). */
export function headersOf(req: IncomingMessage): Headers {
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (Array.isArray(v)) v.forEach((x) => headers.append(k, x));
    else if (v !== undefined) headers.set(k, v);
  }
  return headers;
}

/** The HTTP details auth requests carry, read from a Node request. */
export function httpInfoOf(req: IncomingMessage): HttpInfo {
  return { header: canonicalHeaders(headersOf(req)), host: req.headers.host, remoteAddr: req.socket.remoteAddress, uri: req.url };
}

export function httpInfo(request: Request, remoteAddr?: string): HttpInfo {
  const url = new URL(request.url);
  return {
    header: canonicalHeaders(request.headers),
    host: request.headers.get('host') ?? url.host,
    remoteAddr,
    uri: url.pathname + url.search,
  };
}

export function createHttpTransport(opts: HttpTransportOptions): GatewayYoga {
  const { lifecycle } = opts;
  return createYoga<ServerContext, GatewayContext>({
    schema: opts.schema,
    graphqlEndpoint: opts.graphqlEndpoint,
    graphiql: (opts.graphiql ?? true) && { title: 'resgraph' },
    renderGraphiQL: (options) => graphiqlPage(opts.graphqlEndpoint, { ...options }),
    // the gateway's origin policy (transports/origin.ts) answers for every path, before Yoga
    cors: false,
    landingPage: false,
    maxRequestBodySize: opts.maxBodyBytes,
    healthCheckEndpoint: '/health',
    logging: {
      debug: (...a: unknown[]) => opts.logger.debug(a.map(String).join(' ')),
      info: (...a: unknown[]) => opts.logger.info(a.map(String).join(' ')),
      warn: (...a: unknown[]) => opts.logger.warn(a.map(String).join(' ')),
      error: (...a: unknown[]) => opts.logger.error(a.map(String).join(' ')),
    },
    context: async ({ request, connection, req }) => {
      // a WebSocket operation runs as its socket's connection; an HTTP request is a connection of its own
      if (connection) return lifecycle.context(connection);
      const sse = request.headers.get('accept')?.includes('text/event-stream') ?? false;
      const ctx = lifecycle.openRequest(sse ? 'sse' : 'http', () => httpInfo(request, req?.socket?.remoteAddress));
      rememberConnection(request, ctx.conn);
      await lifecycle.authenticate(ctx.conn);
      return ctx;
    },
    plugins: [
      probes(opts.natsConnected, opts.draining ?? (() => false), opts.natsError ?? (() => undefined), opts.fleet),
      csrfPrevention(),
      (opts.graphiql ?? true) && useGraphiQLAssets(opts.graphqlEndpoint),
      responseMeta(),
      releaseAfterExecution(lifecycle),
      requestBodyLimit(opts.maxBodyBytes),
      ...(opts.plugins ?? []),
    ],
  });
}

/**
 * The probes, for load balancers and Kubernetes. `/healthz` (liveness): 200
 * while the process serves. `/readyz` (readiness): 200 when the NATS
 * connection is up and the gateway is not draining (the schema is loaded
 * before the gateway listens), 503 otherwise; the body says which, and why
 * NATS is not connected when NATS said why (`natsError`). One worker of a
 * fleet (`--workers`) answers for the fleet: 200 while any worker is ready,
 * since the port reaches them all.
 */
function probes(
  natsConnected: () => boolean,
  draining: () => boolean,
  natsError: () => string | undefined,
  fleet?: Pick<FleetHooks, 'readiness'>,
): Plugin {
  return {
    async onRequest({ url, endResponse, fetchAPI }) {
      if (url.pathname !== '/healthz' && url.pathname !== '/readyz') return;
      const json = (status: number, body: unknown) =>
        endResponse(new fetchAPI.Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } }));
      if (url.pathname === '/healthz') return json(200, { status: 'ok' });
      const up = natsConnected();
      const why = up ? undefined : natsError();
      const here = { nats: up ? 'connected' : 'disconnected', ...(why === undefined ? {} : { natsError: why }), draining: draining() };
      if (fleet) {
        const workers = await fleet.readiness();
        const ready = workers.ready > 0;
        return json(ready ? 200 : 503, { status: ready ? 'ok' : 'unavailable', workers, ...here });
      }
      const ready = up && !here.draining;
      json(ready ? 200 : 503, { status: ready ? 'ok' : 'unavailable', ...here });
    },
  };
}

/**
 * A query or mutation holds what it read only while it runs: afterwards the
 * entries may be evicted (after the cache's delay). An HTTP request's
 * connection ends with it.
 */
function releaseAfterExecution(lifecycle: ClientLifecycle): Plugin<GatewayContext & ServerContext> {
  const release = (ctx: GatewayContext & ServerContext) => {
    if (ctx.connection) lifecycle.release(ctx);
    else lifecycle.finish(ctx);
  };
  return {
    onExecute({ args }) {
      return {
        // a `@live` query streams: its context lives until the stream ends
        onExecuteDone: ({ result }) => {
          if (isAsyncIterable(result)) return { onEnd: () => release(args.contextValue) };
          release(args.contextValue);
          return undefined;
        },
      };
    },
    // a stream (SSE or WebSocket) holds its context until it ends
    onSubscribe({ args }) {
      return {
        onSubscribeResult: ({ result }) => {
          if (isAsyncIterable(result)) return { onEnd: () => release(args.contextValue) };
          release(args.contextValue);
          return undefined;
        },
        onSubscribeError: () => release(args.contextValue),
      };
    },
  };
}
