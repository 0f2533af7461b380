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
import { WebSocketServer } from 'ws';
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

type EnvelopedRoot = { execute: (a: ExecutionArgs) => unknown; subscribe: (a: ExecutionArgs) => unknown };

export function attachWebSocketTransport(opts: WebSocketTransportOptions): WebSocketServer {
  const { yoga, connections } = opts;
  const wss = new WebSocketServer({ server: opts.server, path: opts.path });
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
        if (ctx.extra.connection) connections.delete(ctx.extra.connection);
      },
      execute: (args) => (args.rootValue as EnvelopedRoot).execute(args) as never,
      subscribe: (args) => (args.rootValue as EnvelopedRoot).subscribe(args) as never,
      async onSubscribe(ctx, _id, params) {
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
  return wss;
}
