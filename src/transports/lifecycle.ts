/**
 * The lifecycle of a client, the same on every transport: its Connection is
 * made and registered (a cid, the HTTP details of the request or upgrade
 * that opened it), header auth runs with those headers, each execution or
 * stream gets a context (the connection and a lease holding what it reads
 * in the cache), the lease is released when the execution or stream ends,
 * and the connection is closed when the client goes. Transports keep their
 * protocol (messages, framing, responses) and call these steps; none makes a
 * lease itself.
 *
 * Two shapes: a request that is a connection of its own (one GraphQL HTTP
 * request, one Resgate HTTP API request) opens with `openRequest` and ends
 * with `finish`; a long-lived connection (a WebSocket, a graphql-sse
 * reservation) is `connect`ed once, gives a `context` to each execution or
 * stream, `release`s each as it ends, and is `close`d with its socket.
 */
import type { IncomingMessage } from 'node:http';
import { Connection, type ConnectionRegistry, type ConnectionTransport, type HttpInfo } from '../access/access.js';
import type { Authenticator, HeaderAuthOutcome } from '../access/auth.js';
import type { LeaseListener, ResourceCache } from '../cache/cache.js';
import type { GatewayContext } from '../resolvers/resolvers.js';
import { httpInfoOf } from './http.js';

export interface ClientLifecycleParts {
  cache: ResourceCache;
  connections: ConnectionRegistry;
  authenticator: Authenticator;
}

export class ClientLifecycle {
  private readonly cache: ResourceCache;
  private readonly connections: ConnectionRegistry;
  private readonly authenticator: Authenticator;

  constructor(parts: ClientLifecycleParts) {
    this.cache = parts.cache;
    this.connections = parts.connections;
    this.authenticator = parts.authenticator;
  }

  /**
   * A new connection, registered at once: header auth comes after, so the
   * service's `conn.<cid>.token`, published before its auth reply, finds it.
   * `from` is the Node request (or upgrade) that opened it, or a function
   * making its HTTP details; either way they are read only if an auth
   * request needs them. `isHttp`: the connection is one HTTP exchange with a
   * response of its own, whose replies' meta it collects (default: an `http`
   * connection is).
   */
  connect(transport: ConnectionTransport, from: IncomingMessage | (() => HttpInfo), isHttp?: boolean): Connection {
    const http = typeof from === 'function' ? from : () => httpInfoOf(from);
    const conn = new Connection(transport, http, isHttp);
    this.connections.add(conn);
    return conn;
  }

  /**
   * Header auth for a connection (graphql-ws connectionParams as `params`),
   * before any of its operations runs. Never rejects: a failure only leaves
   * the connection without a token (access/auth.ts). `isHttp` marks the
   * request for a response the caller writes itself (a WebSocket upgrade's),
   * whose meta the outcome returns.
   */
  authenticate(conn: Connection, params?: unknown, opts?: { isHttp?: boolean }): Promise<HeaderAuthOutcome> {
    return this.authenticator.authenticate(conn, params, opts);
  }

  /**
   * The context of one execution or one stream of a connection: what it
   * reads is held until `release`; `onChange` hears every change to it
   * meanwhile (a view that pushes changes itself, as a ResClient socket's).
   */
  context(conn: Connection, onChange?: LeaseListener): GatewayContext {
    return { conn, lease: this.cache.newLease(onChange) };
  }

  /** The execution or stream has ended: what it read may be evicted (after the cache's delay). */
  release(ctx: GatewayContext): void {
    ctx.lease.release();
  }

  /**
   * The client has gone: messages addressed to its cid find no connection.
   * The contexts it gave out are released by their own ends, and whoever
   * listens for its access (its live streams, a ResClient socket's view)
   * stops with them: the transport stops its streams first.
   */
  close(conn: Connection): void {
    this.connections.delete(conn);
  }

  /** A request that is a connection of its own: connected and given its one context; header auth is the caller's next step. */
  openRequest(transport: ConnectionTransport, from: IncomingMessage | (() => HttpInfo), isHttp?: boolean): GatewayContext {
    return this.context(this.connect(transport, from, isHttp));
  }

  /** The context's execution has ended, and its connection with it (a request of its own, a ResClient socket's view). */
  finish(ctx: GatewayContext): void {
    this.release(ctx);
    this.close(ctx.conn);
  }
}
