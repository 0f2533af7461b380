/**
 * The WebSocket transport: graphql-ws on the HTTP server's port and GraphQL
 * path, running every operation through Yoga's envelop pipeline so HTTP and
 * WebSocket share plugins, context and limits. Each socket is one
 * Connection (its own cid for access and call requests), registered while
 * the socket is open.
 */
import type { Server } from 'node:http';
import { GraphQLError, type ExecutionArgs } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer, type WebSocket } from 'ws';
import { Connection, type ConnectionRegistry } from '../access/access.js';
import type { Authenticator } from '../access/auth.js';
import type { Logger } from '../log.js';
import { canonicalHeaders, type GatewayYoga } from './http.js';

export interface WebSocketTransportOptions {
  server: Server;
  yoga: GatewayYoga;
  path: string;
  connections: ConnectionRegistry;
  authenticator: Authenticator;
  logger: Logger;
}

type SocketExtra = {
  connection?: Connection;
};

/** WebSocket close code 1012: the server restarts; reconnect (RFC 6455 registry). */
export const serviceRestart = 1012;

type EnvelopedRoot = { execute: (a: ExecutionArgs) => unknown; subscribe: (a: ExecutionArgs) => unknown };

/** The WebSocket server, and the drain: clients are told to reconnect elsewhere. */
export interface WebSocketTransport {
  readonly wss: WebSocketServer;
  /**
   * Refuses new sockets (HTTP 503 to the upgrade) and closes every open one
   * with 1012 "service restart", which graphql-ws clients answer by
   * reconnecting and subscribing again. A socket with a query or mutation
   * running is closed once its last one has been answered. Resolves when
   * every socket has closed.
   */
  closeForRestart(): Promise<void>;
  /** Closes every socket at once (the drain's timeout). */
  terminate(): void;
}

export function attachWebSocketTransport(opts: WebSocketTransportOptions): WebSocketTransport {
  const { yoga, connections } = opts;
  let restarting = false;
  /** ids of the operations running on each socket that are not streams (queries, mutations) */
  const running = new Map<WebSocket, Set<string>>();
  const closeIfIdle = (socket: WebSocket) => {
    if (restarting && !running.get(socket)?.size) socket.close(serviceRestart, 'Service restart');
  };
  const wss = new WebSocketServer({
    server: opts.server,
    path: opts.path,
    verifyClient: (_info, accept) => (restarting ? accept(false, 503, 'Service restarting') : accept(true)),
  });
  useServer<Record<string, unknown> | undefined, SocketExtra>(
    {
      async onConnect(ctx) {
        const req = ctx.extra.request;
        const headers = new Headers();
        for (const [k, v] of Object.entries(req.headers)) {
          if (Array.isArray(v)) v.forEach((x) => headers.append(k, x));
          else if (v !== undefined) headers.set(k, v);
        }
        const conn = new Connection('ws', {
          header: canonicalHeaders(headers),
          host: req.headers.host,
          remoteAddr: req.socket.remoteAddress,
          uri: req.url,
        });
        ctx.extra.connection = conn;
        connections.add(conn);
        // header auth runs before the connection is acknowledged, so no operation runs without its token
        await opts.authenticator.authenticate(conn, ctx.connectionParams);
        return true;
      },
      onClose(ctx) {
        running.delete(ctx.extra.socket);
        if (ctx.extra.connection) connections.delete(ctx.extra.connection);
      },
      // every operation counts as running until its result is known to be a stream
      onOperation(ctx, id, _payload, _args, result) {
        if (typeof result === 'object' && result !== null && Symbol.asyncIterator in result) {
          running.get(ctx.extra.socket)?.delete(id);
          closeIfIdle(ctx.extra.socket);
        }
        return undefined;
      },
      onComplete(ctx, id) {
        // graphql-ws sends `complete` right after this hook: close behind it, not before
        setImmediate(() => {
          running.get(ctx.extra.socket)?.delete(id);
          closeIfIdle(ctx.extra.socket);
        });
      },
      execute: (args) => (args.rootValue as EnvelopedRoot).execute(args) as never,
      subscribe: (args) => (args.rootValue as EnvelopedRoot).subscribe(args) as never,
      async onSubscribe(ctx, id, params) {
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params,
          connection: ctx.extra.connection,
        });
        let document;
        try {
          document = parse(params.query);
        } catch (e) {
          return [e as never];
        }
        let errors;
        try {
          errors = validate(schema, document);
        } catch (e) {
          // validation plugins (the depth limit) reject by throwing: answer this
          // operation with the error instead of letting graphql-ws close the
          // whole socket, and every other subscription on it, with 4500
          if (e instanceof GraphQLError) return [e as never];
          throw e;
        }
        if (errors.length > 0) return errors;
        const socketOps = running.get(ctx.extra.socket) ?? new Set<string>();
        running.set(ctx.extra.socket, socketOps);
        socketOps.add(id);
        return {
          schema,
          operationName: params.operationName,
          document,
          variableValues: params.variables,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe },
        };
      },
    },
    wss,
  );
  wss.on('error', (e) => opts.logger.error('WebSocket server error', { error: e.message }));
  let allClosed: (() => void) | undefined;
  wss.on('connection', (socket) => {
    socket.once('close', () =>
      setImmediate(() => {
        if (restarting && wss.clients.size === 0) allClosed?.();
      }),
    );
    // a socket whose upgrade was under way as the drain began
    closeIfIdle(socket);
  });
  return {
    wss,
    closeForRestart() {
      restarting = true;
      for (const socket of wss.clients) closeIfIdle(socket);
      return new Promise<void>((resolve) => {
        allClosed = resolve;
        if (wss.clients.size === 0) resolve();
      });
    },
    terminate() {
      restarting = true;
      for (const socket of wss.clients) socket.terminate();
      wss.close();
    },
  };
}
