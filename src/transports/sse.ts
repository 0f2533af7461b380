/**
 * graphql-sse's "single connection mode"
 * (https://github.com/enisdenjo/graphql-sse/blob/master/PROTOCOL.md), on the
 * GraphQL path beside the distinct-connection SSE that Yoga serves: a client
 * reserves a stream with `PUT` (answered 201 with a token), opens it with
 * `GET` (or `POST`) and `Accept: text/event-stream`, sends operations with
 * `POST` (`extensions.operationId`, answered 202; their results come on the
 * stream as `next` / `complete` events carrying the id) and stops one with
 * `DELETE ?operationId=`. Every request names its stream by the token, in
 * the `x-graphql-event-stream-token` header or the `token` query parameter.
 *
 * One reservation is one Connection (one cid, one token for access), from
 * the `PUT` until its stream closes, and each operation runs with a context
 * of its own (lifecycle.ts). Operations are parsed and validated
 * through Yoga's envelop, as on WebSockets; live operations come from the
 * live engine and are written only when the stream's socket can take them,
 * so a slow reader gets the newest state rather than a backlog. Everything
 * else (queries, mutations, `@event` streams, `@defer` parts) runs through
 * envelop's execute / subscribe.
 *
 * The handler is ours rather than graphql-sse's `createHandler`, which reads
 * every result of every operation into an unbounded queue (a slow reader of
 * a live result would hold all its states) and keeps a reservation whose
 * stream is never opened for ever.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ExecutionArgs, ExecutionResult, GraphQLError } from 'graphql';
import { TOKEN_HEADER_KEY, TOKEN_QUERY_KEY } from 'graphql-sse';
import { isAsyncIterable } from 'graphql-yoga';
import type { Connection } from '../access/access.js';
import type { LiveStream } from '../live/stream.js';
import { liveRoute } from '../live/plugin.js';
import { errorText } from '../log.js';
import { internalGraphQLError, type GatewayContext } from '../resolvers/resolvers.js';
import { ErrorCode } from '../res/protocol.js';
import { clientError, DocumentCache } from './documents.js';
import type { StreamTransportParts } from './http.js';
import { readBodyWithin } from './limits.js';
import { defaults } from '../config/defaults.js';
import type { OperationSpan } from '../telemetry/tracing.js';

export interface SingleConnectionSseOptions extends StreamTransportParts {
  /** Bytes an operation's body may have (413 above it). */
  maxBodyBytes: number;
  /** How long a reservation waits for its stream to be opened, in ms. Default: `defaults.sseReservationTimeout`. */
  reservationTimeout?: number;
  /** How often an open stream gets a keep-alive comment, in ms. Default 12000. */
  keepAlive?: number;
}

/** One running operation of a stream. */
interface Operation {
  stop(): void;
}

/** A reserved stream: its connection, its operations, and (once opened) its response. */
class Reservation {
  readonly ops = new Map<string, Operation>();
  stream: ServerResponse | undefined;
  /** events written before the stream was opened, sent when it opens */
  private backlog: string[] = [];
  /** live operations waiting for the stream's socket to drain */
  readonly waiting = new Set<() => void>();
  closed = false;

  constructor(
    readonly token: string,
    readonly conn: Connection,
  ) {}

  /** Writes an event; false when the socket's buffer is full (write again after `drain`). */
  send(event: string): boolean {
    if (this.closed) return true;
    if (!this.stream) {
      this.backlog.push(event);
      return true;
    }
    return this.stream.write(event);
  }

  open(res: ServerResponse): void {
    this.stream = res;
    const backlog = this.backlog;
    this.backlog = [];
    for (const event of backlog) res.write(event);
    res.on('drain', () => this.resume());
    this.resume();
  }

  /** Live operations that waited for the stream to open or drain take their newest state. */
  private resume(): void {
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const pull of waiting) pull();
  }

  /** Whether live operations may write now: the stream is open and its socket takes more. */
  get writable(): boolean {
    return this.stream !== undefined && !this.stream.writableNeedDrain;
  }
}

const nextEvent = (id: string, payloadJson: string) => `event: next\ndata: {"id":${JSON.stringify(id)},"payload":${payloadJson}}\n\n`;
const completeEvent = (id: string) => `event: complete\ndata: {"id":${JSON.stringify(id)}}\n\n`;

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function error(res: ServerResponse, status: number, message: string, code: string = ErrorCode.invalidParams): void {
  json(res, status, { errors: [{ message, extensions: { code } }] });
}

/** The HTTP status a GraphQL error asks for (`extensions.http.status`), else 400. */
function httpStatusOf(e: GraphQLError): number {
  const status = (e.extensions?.http as { status?: unknown } | undefined)?.status;
  return typeof status === 'number' ? status : 400;
}

interface OperationBody {
  /** absent, or empty, when the document is named by `documentId` or `extensions.persistedQuery` */
  query?: string;
  documentId?: string;
  variables?: Record<string, unknown>;
  operationName?: string;
  extensions?: { operationId?: unknown };
}

function isOperationBody(v: unknown): v is OperationBody {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const b = v as Record<string, unknown>;
  return (
    (b.query === undefined || typeof b.query === 'string') &&
    (b.documentId === undefined || typeof b.documentId === 'string') &&
    (b.variables == null || (typeof b.variables === 'object' && !Array.isArray(b.variables))) &&
    (b.operationName == null || typeof b.operationName === 'string') &&
    (b.extensions == null || typeof b.extensions === 'object')
  );
}

export class SingleConnectionSse {
  private readonly reservations = new Map<string, Reservation>();
  private readonly documents: DocumentCache;

  constructor(private readonly opts: SingleConnectionSseOptions) {
    this.documents = new DocumentCache(opts.yoga, opts.served);
  }

  /** Whether a request is this mode's: a reservation (`PUT`), or any request naming a stream token. */
  handles(req: IncomingMessage, path: string): boolean {
    if (path !== this.opts.path) return false;
    return req.method === 'PUT' || this.tokenOf(req) !== undefined;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    this.route(req, res).catch((e: unknown) => {
      this.opts.logger.error('graphql-sse request failed', { error: errorText(e) });
      if (!res.headersSent) json(res, 500, { errors: [clientError(internalGraphQLError())] });
      else res.end();
    });
  }

  private tokenOf(req: IncomingMessage): string | undefined {
    const header = req.headers[TOKEN_HEADER_KEY];
    if (typeof header === 'string' && header !== '') return header;
    const q = (req.url ?? '').indexOf('?');
    if (q < 0) return undefined;
    return new URLSearchParams(req.url!.slice(q + 1)).get(TOKEN_QUERY_KEY) ?? undefined;
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'PUT') return this.reserve(req, res);
    const token = this.tokenOf(req)!;
    const reservation = this.reservations.get(token);
    if (!reservation) return error(res, 404, 'Stream not found');
    const streamRequest = (req.headers.accept ?? '').includes('text/event-stream');
    if (streamRequest && (req.method === 'GET' || req.method === 'POST')) return this.open(reservation, res);
    if (req.method === 'POST') return this.operation(reservation, req, res);
    if (req.method === 'DELETE') return this.stopOperation(reservation, req, res);
    res.writeHead(405, { allow: 'GET, POST, PUT, DELETE' });
    res.end();
  }

  /** `PUT`: a new stream's token. Its connection authenticates with this request's headers (header auth). */
  private async reserve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const token = randomUUID();
    const conn = this.opts.lifecycle.connect('sse', req);
    const reservation = new Reservation(token, conn);
    this.reservations.set(token, reservation);
    const timer = setTimeout(() => {
      if (!reservation.stream) this.close(reservation);
    }, this.opts.reservationTimeout ?? defaults.sseReservationTimeout);
    timer.unref();
    await this.opts.lifecycle.authenticate(conn);
    res.writeHead(201, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(token);
  }

  /** Opens the reserved stream; it lives until the client closes it (or a drain cuts it, without `complete`). */
  private open(reservation: Reservation, res: ServerResponse): void {
    if (reservation.stream) return error(res, 409, 'Stream already open');
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'content-encoding': 'none',
    });
    // a comment first: some clients wait for a byte of the body before they count the stream open
    res.write(':\n\n');
    reservation.open(res);
    const keepAlive = setInterval(() => res.write(':\n\n'), this.opts.keepAlive ?? 12_000);
    keepAlive.unref();
    res.once('close', () => {
      clearInterval(keepAlive);
      this.close(reservation);
    });
  }

  private close(reservation: Reservation): void {
    if (reservation.closed) return;
    reservation.closed = true;
    for (const op of reservation.ops.values()) op.stop();
    reservation.ops.clear();
    reservation.waiting.clear();
    this.reservations.delete(reservation.token);
    this.opts.lifecycle.close(reservation.conn);
  }

  private async operation(reservation: Reservation, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) return error(res, 415, 'Operations are sent as application/json');
    const raw = await readBodyWithin(req, this.opts.maxBodyBytes);
    if (raw === undefined) return error(res, 413, 'Request body too large');
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      return error(res, 400, 'Unparsable JSON body');
    }
    if (!isOperationBody(body)) return error(res, 400, 'Invalid GraphQL request parameters');
    const id = body.extensions?.operationId;
    if (typeof id !== 'string' || id === '') return error(res, 400, 'Operation ID is missing');
    if (reservation.closed) return error(res, 404, 'Stream not found');
    if (reservation.ops.has(id)) return error(res, 409, 'Operation with ID already exists');
    // the same trusted-document rules as every other transport
    const trusted = this.opts.trusted.resolve(body);
    if ('error' in trusted) return json(res, httpStatusOf(trusted.error), { errors: [clientError(trusted.error)] });
    if (trusted.query === undefined) return error(res, 400, 'The operation names no document (query or documentId)');
    const initial = { req, params: { ...body, query: trusted.query }, connection: reservation.conn };
    const prepared = this.documents.prepare(trusted.query, body.operationName, initial);
    // errors are answered at once, as graphql-sse's own handler answers them
    if (!prepared.ok) return json(res, 400, { errors: prepared.errors });
    const op: Operation = { stop: () => undefined };
    reservation.ops.set(id, op);
    res.writeHead(202);
    res.end();
    // the generation `prepare` validated against: nothing between them yields to a reload
    const { schema, mapping } = this.opts.served.current;
    const args = { schema, document: prepared.document, operationName: body.operationName, variableValues: body.variables };
    const route = liveRoute(prepared.operation, body.variables, mapping);
    if (route) {
      const contextValue = this.opts.lifecycle.context(reservation.conn);
      const subscribe = () => this.opts.live.subscribe({ ...args, contextValue }, route);
      // in its span, so the first run's requests and the stream's updates find it
      const span = this.opts.tracing?.operation(prepared.operation, 'sse');
      return this.pump(reservation, id, op, span ? span.run(subscribe) : subscribe(), contextValue, span);
    }
    try {
      const { execute, subscribe, contextFactory } = this.opts.yoga.getEnveloped(initial);
      const full: ExecutionArgs = { ...args, contextValue: await contextFactory() };
      const result = (await (prepared.operation.operation === 'subscription' ? subscribe(full) : execute(full))) as
        | ExecutionResult
        | AsyncIterable<ExecutionResult>;
      if (reservation.ops.get(id) !== op) {
        if (isAsyncIterable(result)) void result[Symbol.asyncIterator]().return?.();
        return;
      }
      if (isAsyncIterable(result)) await this.iterate(reservation, id, op, result);
      else reservation.send(nextEvent(id, JSON.stringify(result)));
    } catch (e) {
      this.opts.logger.error('graphql-sse operation failed', { error: errorText(e) });
      reservation.send(nextEvent(id, JSON.stringify({ errors: [clientError(internalGraphQLError())] })));
    }
    this.complete(reservation, id, op);
  }

  /**
   * Writes a live stream's states while the socket takes them; once its
   * buffer is full, waits for it to drain and then takes only the newest
   * state (LiveStream.take), as the WebSocket transport does.
   */
  private pump(reservation: Reservation, id: string, op: Operation, stream: LiveStream, ctx: GatewayContext, span: OperationSpan | undefined): void {
    const { lifecycle } = this.opts;
    const pull = () => {
      while (!reservation.waiting.has(pull)) {
        if (!reservation.writable) {
          reservation.waiting.add(pull);
          return;
        }
        const next = stream.take();
        if (next === undefined) return;
        if (next === 'done') {
          stream.stopNotifying();
          lifecycle.release(ctx);
          span?.end();
          this.complete(reservation, id, op);
          return;
        }
        span?.result(next.value);
        if (!reservation.send(nextEvent(id, next.json))) reservation.waiting.add(pull);
      }
    };
    op.stop = () => {
      stream.stopNotifying();
      reservation.waiting.delete(pull);
      lifecycle.release(ctx);
      span?.end();
      void stream.return();
    };
    stream.notifyWhenAvailable(pull);
    pull();
  }

  /** Every result of a stream that is not a live state (`@event` payloads, `@defer` parts): none skipped. */
  private async iterate(reservation: Reservation, id: string, op: Operation, result: AsyncIterable<ExecutionResult>): Promise<void> {
    const iterator = result[Symbol.asyncIterator]();
    op.stop = () => void iterator.return?.();
    for (;;) {
      const { value, done } = await iterator.next();
      if (done || reservation.ops.get(id) !== op) return;
      reservation.send(nextEvent(id, JSON.stringify(value)));
    }
  }

  /** Tells the client an operation is over, unless it stopped it first. */
  private complete(reservation: Reservation, id: string, op: Operation): void {
    if (reservation.ops.get(id) !== op) return;
    reservation.ops.delete(id);
    reservation.send(completeEvent(id));
  }

  /** `DELETE ?operationId=`: the client stops an operation; no `complete` follows. */
  private stopOperation(reservation: Reservation, req: IncomingMessage, res: ServerResponse): void {
    const q = (req.url ?? '').indexOf('?');
    const id = q < 0 ? null : new URLSearchParams(req.url!.slice(q + 1)).get('operationId');
    if (!id) return error(res, 400, 'Operation ID is missing');
    const op = reservation.ops.get(id);
    reservation.ops.delete(id);
    op?.stop();
    res.writeHead(200);
    res.end();
  }
}

