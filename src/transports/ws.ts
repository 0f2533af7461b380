/**
 * The WebSocket transport: the graphql-transport-ws protocol (graphql-ws's
 * message types and close codes) on the HTTP server's port and GraphQL path.
 * Each socket is one Connection (its own cid for access and call requests),
 * registered while the socket is open, and each operation runs with a
 * context of its own (lifecycle.ts).
 *
 * Operations are parsed and validated through Yoga's envelop pipeline, so
 * HTTP and WebSocket share plugins and limits. Live operations then take a
 * short path: a state shared by many subscribers is framed once and written
 * as is to each socket, so fan-out costs one socket write per subscriber,
 * and a socket that falls behind waits to drain and then takes only the
 * newest state, skipping states instead of queuing them. Everything else
 * (queries, mutations, `@event` streams, the parts of `@defer`/`@stream`)
 * runs through envelop's execute / subscribe as usual.
 *
 * The protocol loop is ours rather than graphql-ws's `useServer`: see
 * docs/architecture.md#why-our-own-websocket-loop.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ExecutionArgs, ExecutionResult, GraphQLFormattedError } from 'graphql';
import {
  CloseCode,
  GRAPHQL_TRANSPORT_WS_PROTOCOL,
  MessageType,
  handleProtocols,
  parseMessage,
  stringifyMessage,
  type Message,
  type SubscribePayload,
} from 'graphql-ws';
import { isAsyncIterable } from 'graphql-yoga';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Connection } from '../access/access.js';
import type { LivePayload, LiveStream } from '../live/stream.js';
import { liveRoute } from '../live/plugin.js';
import { errorText } from '../log.js';
import { internalGraphQLError, type GatewayContext } from '../resolvers/resolvers.js';
import { clientError, DocumentCache } from './documents.js';
import { sharedFrame, textFrame } from './frames.js';
import type { StreamTransportParts } from './http.js';
import type { OperationSpan } from '../telemetry/tracing.js';

export interface WebSocketTransportOptions extends StreamTransportParts {
  /** Whether the page that opens a socket may (its `Origin`); refused upgrades get 403. Default: every page. */
  acceptOrigin?: (req: IncomingMessage) => boolean;
  /** How long a socket may take to send connection_init, in ms. Default 3000. */
  connectionInitWaitTimeout?: number;
  /** How often dead sockets are looked for with a WebSocket ping, in ms. Default 12000. */
  keepAlive?: number;
  /** Bytes a message may have; a larger one closes its socket with 1009 (message too big). */
  maxMessageBytes: number;
}

/** WebSocket close code 1012: the server restarts; reconnect (RFC 6455 registry). */
export const serviceRestart = 1012;

/** The WebSocket server, and the drain: clients are told to reconnect elsewhere. */
export interface WebSocketTransport {
  readonly wss: WebSocketServer;
  /** Takes an upgrade request for the GraphQL path (the HTTP server routes upgrades by path). */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
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

type EnvelopedRoot = { execute: (a: ExecutionArgs) => unknown; subscribe: (a: ExecutionArgs) => unknown };

/** One running operation of a socket. */
interface Operation {
  /** ends it from our side (the client completed it, or the socket closed) */
  stop(): void;
  /** a query or mutation, not a stream: a drain waits for it */
  finite: boolean;
}

/** Keep-alive pings go out in this many slices per period. */
const keepAliveSlices = 48;

/** A live result's frame: subscribers of a shared state with the same operation id get the very same bytes. */
function nextFrame(id: string, payload: LivePayload): Buffer {
  const text = () => `{"id":${JSON.stringify(id)},"type":"next","payload":${payload.json}}`;
  return payload.cacheKey ? sharedFrame(payload.cacheKey, id, text) : textFrame(text());
}

class Session {
  readonly conn: Connection;
  private initReceived = false;
  private acknowledged = false;
  private closed = false;
  readonly ops = new Map<string, Operation>();
  /** live streams waiting for the socket to drain before their next frame */
  private readonly draining = new Set<() => void>();
  alive = true;
  /** the keep-alive slice this socket is pinged in */
  readonly slot: number;
  private readonly initTimer: NodeJS.Timeout;

  constructor(
    readonly socket: WebSocket,
    private readonly req: IncomingMessage,
    private readonly transport: WebSocketTransportImpl,
  ) {
    this.conn = transport.opts.lifecycle.connect('ws', req);
    this.slot = transport.nextSlot++ % keepAliveSlices;
    this.initTimer = setTimeout(() => {
      if (!this.initReceived) this.close(CloseCode.ConnectionInitialisationTimeout, 'Connection initialisation timeout');
    }, transport.opts.connectionInitWaitTimeout ?? 3000);
    socket.on('message', (data: RawData) => this.onMessage(data));
    socket.on('pong', () => (this.alive = true));
    socket.once('close', () => this.onClosed());
    socket.on('error', () => undefined); // a broken socket closes; nothing to add
    req.socket.on('drain', () => this.drained());
  }

  private send(message: Message): void {
    if (this.socket.readyState === this.socket.OPEN) this.socket.send(stringifyMessage(message));
  }

  close(code: number, reason: string): void {
    if (this.socket.readyState === this.socket.OPEN || this.socket.readyState === this.socket.CONNECTING) this.socket.close(code, reason);
  }

  private onMessage(data: RawData): void {
    let msg: Message;
    try {
      msg = parseMessage(data.toString());
    } catch (e) {
      this.close(CloseCode.BadRequest, (e as Error).message);
      return;
    }
    switch (msg.type) {
      case MessageType.ConnectionInit:
        if (this.initReceived) return this.close(CloseCode.TooManyInitialisationRequests, 'Too many initialisation requests');
        this.initReceived = true;
        clearTimeout(this.initTimer);
        void this.init(msg.payload);
        return;
      case MessageType.Ping:
        this.send(msg.payload ? { type: MessageType.Pong, payload: msg.payload } : { type: MessageType.Pong });
        return;
      case MessageType.Pong:
        return;
      case MessageType.Subscribe:
        if (!this.acknowledged) return this.close(CloseCode.Unauthorized, 'Unauthorized');
        if (this.ops.has(msg.id)) return this.close(CloseCode.SubscriberAlreadyExists, `Subscriber for ${msg.id} already exists`);
        void this.start(msg.id, msg.payload);
        return;
      case MessageType.Complete: {
        const op = this.ops.get(msg.id);
        this.ops.delete(msg.id);
        op?.stop();
        this.transport.closeIfIdle(this);
        return;
      }
      default:
        this.close(CloseCode.BadRequest, `Unexpected message of type ${msg.type} received`);
    }
  }

  /** Header auth runs before the connection is acknowledged, so no operation runs without its token. */
  private async init(params: Record<string, unknown> | undefined): Promise<void> {
    await this.transport.opts.lifecycle.authenticate(this.conn, params);
    if (this.closed) return;
    this.acknowledged = true;
    this.send({ type: MessageType.ConnectionAck });
  }

  private async start(id: string, payload: SubscribePayload): Promise<void> {
    const op: Operation = { stop: () => undefined, finite: true };
    this.ops.set(id, op);
    try {
      const trusted = this.transport.opts.trusted.resolve(payload);
      if ('error' in trusted) return this.fail(id, op, [clientError(trusted.error)]);
      const query = trusted.query ?? '';
      const initial = { req: this.req, socket: this.socket, params: { ...payload, query }, connection: this.conn };
      const prepared = this.transport.documents.prepare(query, payload.operationName, initial);
      if (!prepared.ok) return this.fail(id, op, prepared.errors);
      const { document, operation } = prepared;
      // the generation `prepare` validated against: nothing between them yields to a reload
      const { schema, mapping } = this.transport.opts.served.current;
      const args = { schema, document, operationName: payload.operationName, variableValues: payload.variables };
      const route = liveRoute(operation, payload.variables, mapping);
      if (route) {
        // live: no per-operation envelop; the engine runs it from the cache
        op.finite = false;
        this.transport.closeIfIdle(this);
        const contextValue = this.transport.opts.lifecycle.context(this.conn);
        const subscribe = () => this.transport.opts.live.subscribe({ ...args, contextValue }, route);
        // in its span, so the first run's requests and the stream's updates find it
        const span = this.transport.opts.tracing?.operation(operation, 'ws');
        this.pump(id, op, span ? span.run(subscribe) : subscribe(), contextValue, span);
        return;
      }
      const { execute, subscribe, contextFactory } = this.transport.opts.yoga.getEnveloped(initial);
      const root: EnvelopedRoot = { execute, subscribe };
      const full = { ...args, contextValue: await contextFactory() };
      const result = operation.operation === 'subscription' ? await root.subscribe(full) : await root.execute(full);
      if (this.ops.get(id) !== op) {
        // completed by the client (or its socket closed) while it ran
        if (isAsyncIterable(result)) void result[Symbol.asyncIterator]().return?.();
        return;
      }
      if (isAsyncIterable<ExecutionResult>(result)) {
        // an @event stream, or the parts of a query or mutation with @defer/@stream (which a drain waits for)
        if (operation.operation === 'subscription') {
          op.finite = false;
          this.transport.closeIfIdle(this);
        }
        await this.iterate(id, op, result);
      } else {
        this.send({ id, type: MessageType.Next, payload: result as ExecutionResult });
      }
      this.complete(id, op);
    } catch (e) {
      this.transport.opts.logger.error('WebSocket operation failed', { cid: this.conn.cid, operation: id, error: errorText(e) });
      this.fail(id, op, [clientError(internalGraphQLError())]);
    }
  }

  /**
   * Sends a live stream's results as they come, while the socket keeps up:
   * once its unsent bytes pass the socket's high-water mark (a client that
   * reads slower than the changes come), the stream waits for the socket to
   * drain and then takes only the newest state, so a slow socket skips
   * states instead of queuing a backlog.
   *
   * Frames go straight to the TCP socket, whole and shared by every
   * subscriber of a state (see frames.ts and
   * docs/architecture.md#why-our-own-websocket-loop).
   */
  private pump(id: string, op: Operation, stream: LiveStream, ctx: GatewayContext, span: OperationSpan | undefined): void {
    const { lifecycle } = this.transport.opts;
    const pull = () => {
      // until the stream has nothing new (a final result is followed by its end)
      while (!this.draining.has(pull)) {
        const next = stream.take();
        if (next === undefined) return;
        if (next === 'done') {
          stream.stopNotifying();
          lifecycle.release(ctx);
          span?.end();
          this.complete(id, op);
          return;
        }
        if (this.socket.readyState !== this.socket.OPEN) return;
        span?.result(next.value);
        if (!this.req.socket.write(nextFrame(id, next))) this.draining.add(pull);
      }
    };
    op.stop = () => {
      stream.stopNotifying();
      this.draining.delete(pull);
      lifecycle.release(ctx);
      span?.end();
      void stream.return();
    };
    stream.notifyWhenAvailable(pull);
    pull();
  }

  /** The socket has written what it buffered: streams that waited take their newest state. */
  private drained(): void {
    const waiting = [...this.draining];
    this.draining.clear();
    for (const pull of waiting) pull();
  }

  private async iterate(id: string, op: Operation, result: AsyncIterable<ExecutionResult>): Promise<void> {
    const iterator = result[Symbol.asyncIterator]();
    op.stop = () => void iterator.return?.();
    for (;;) {
      const { value, done } = await iterator.next();
      if (done || this.ops.get(id) !== op) return;
      this.send({ id, type: MessageType.Next, payload: value });
    }
  }

  /** Ends an operation with errors, unless the client ended it first (an id may be reused after that). */
  private fail(id: string, op: Operation, errors: readonly GraphQLFormattedError[]): void {
    if (this.ops.get(id) !== op) return;
    this.ops.delete(id);
    this.send({ id, type: MessageType.Error, payload: errors });
    this.transport.closeIfIdle(this);
  }

  /** Tells the client an operation is over, unless it ended it first. */
  private complete(id: string, op: Operation): void {
    if (this.ops.get(id) !== op) return;
    this.ops.delete(id);
    this.send({ id, type: MessageType.Complete });
    this.transport.closeIfIdle(this);
  }

  private onClosed(): void {
    this.closed = true;
    clearTimeout(this.initTimer);
    for (const op of this.ops.values()) op.stop();
    this.ops.clear();
    this.draining.clear();
    this.transport.opts.lifecycle.close(this.conn);
    this.transport.sessionClosed(this);
  }

  /** Whether a query or mutation is still running (a drain waits for it). */
  get busy(): boolean {
    for (const op of this.ops.values()) if (op.finite) return true;
    return false;
  }
}

class WebSocketTransportImpl implements WebSocketTransport {
  readonly wss: WebSocketServer;
  private readonly sessions = new Set<Session>();
  private restarting = false;
  private allClosed: (() => void) | undefined;
  private readonly keepAliveTimer: NodeJS.Timeout;
  readonly documents: DocumentCache;

  constructor(readonly opts: WebSocketTransportOptions) {
    this.documents = new DocumentCache(opts.yoga, opts.served);
    this.wss = new WebSocketServer({
      // the HTTP server routes upgrades by path: a WebSocketServer given the server would refuse every other path's
      noServer: true,
      path: opts.path,
      // off (ws's default too), and must stay so: live frames are written to the TCP socket directly
      perMessageDeflate: false,
      // ws stops reading a larger frame and closes its socket with 1009
      maxPayload: opts.maxMessageBytes,
      handleProtocols: (protocols) => handleProtocols(protocols),
      verifyClient: (info, accept) => {
        if (this.restarting) return accept(false, 503, 'Service restarting');
        // refused before the upgrade: no connection_init, so no auth request, for a page that may not
        if (opts.acceptOrigin && !opts.acceptOrigin(info.req)) return accept(false, 403, 'Forbidden origin');
        accept(true);
      },
    });
    this.wss.on('connection', (socket, req) => {
      if (socket.protocol !== GRAPHQL_TRANSPORT_WS_PROTOCOL) {
        socket.close(CloseCode.SubprotocolNotAcceptable, 'Subprotocol not acceptable');
        return;
      }
      const session = new Session(socket, req, this);
      this.sessions.add(session);
      // a socket whose upgrade was under way as the drain began
      this.closeIfIdle(session);
    });
    this.wss.on('error', (e) => opts.logger.error('WebSocket server error', { error: e.message }));
    // One timer for every socket, pinging a slice of them per tick so that
    // 10,000 sockets do not cost one long pause every period. A socket that
    // has not answered its last ping by its next turn is dead.
    const period = opts.keepAlive ?? 12_000;
    let tick = 0;
    this.keepAliveTimer = setInterval(() => {
      const slice = tick++ % keepAliveSlices;
      for (const s of this.sessions) {
        if (s.slot !== slice) continue;
        // no service input reaches a ping; the guard keeps one odd socket from ending the process
        try {
          if (!s.alive) {
            s.socket.terminate();
            continue;
          }
          s.alive = false;
          s.socket.ping();
        } catch (e) {
          opts.logger.warn('WebSocket keep-alive failed', { error: (e as Error).message });
        }
      }
    }, period / keepAliveSlices);
    this.keepAliveTimer.unref();
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => this.wss.emit('connection', ws, req));
  }

  /** Which keep-alive slice the next session pings in. */
  nextSlot = 0;

  closeIfIdle(session: Session): void {
    if (this.restarting && !session.busy) session.close(serviceRestart, 'Service restart');
  }

  sessionClosed(session: Session): void {
    this.sessions.delete(session);
    if (this.restarting && this.sessions.size === 0) this.allClosed?.();
  }

  closeForRestart(): Promise<void> {
    this.restarting = true;
    clearInterval(this.keepAliveTimer);
    for (const s of this.sessions) this.closeIfIdle(s);
    return new Promise<void>((resolve) => {
      this.allClosed = resolve;
      if (this.sessions.size === 0) resolve();
    });
  }

  terminate(): void {
    this.restarting = true;
    clearInterval(this.keepAliveTimer);
    for (const s of this.sessions) s.socket.terminate();
    this.wss.close();
  }
}

export function attachWebSocketTransport(opts: WebSocketTransportOptions): WebSocketTransport {
  return new WebSocketTransportImpl(opts);
}
