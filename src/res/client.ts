/**
 * ResClient owns the gateway's side of the RES service protocol on a NATS
 * connection: get, access, call and auth requests (with timeouts and the
 * `timeout:"ms"` pre-response), mapping error replies to ResError, and event
 * subscriptions. It knows nothing about GraphQL or the cache.
 *
 * All replies arrive on one muxed inbox subscription: a request is a publish
 * with a reply subject under it, so a request may receive two messages (a
 * pre-response, then the answer), which nats.js `request()` cannot do.
 *
 * Every service payload enters the gateway here, so this is where hostile
 * input stops: a payload nested deeper than `maxJsonDepth` is refused as
 * malformed before it is parsed, and no exception from a handler leaves a
 * NATS callback (nats.js calls them from its socket reader, where a throw
 * would end the process).
 */
import { createInbox, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from 'nats';
import { errorText, type Logger } from '../log.js';
import {
  ErrorCode,
  NoRespondersError,
  ResError,
  internalError,
  jsonDepthExceeds,
  legacyNewReply,
  maxJsonDepth,
  noAccess,
  parseAccessResult,
  parseGetResult,
  parseResponse,
  subjects,
  timeoutError,
  type AccessVerdict,
  type GetResult,
  type RequestPayload,
  type Response,
} from './protocol.js';
import type { ResponseMeta } from './meta.js';
import { defaults } from '../config/defaults.js';

export interface ResClientOptions {
  /** How long to wait for a reply, in ms, unless a pre-response extends it. Default: `defaults.requestTimeout`. */
  requestTimeout?: number;
  logger: Logger;
  /** told how each request ended (metrics) */
  observer?: RequestObserver;
  /** traces get, access, call and auth requests (telemetry/tracing.ts); undefined when tracing is off */
  tracer?: RequestTracer;
}

/**
 * How a request ended: `ok` for a result or resource reply, `timeout` when no
 * answer came in time (also NATS down, or a service's own system.timeout),
 * else the error code of the reply (`system.notFound`, a service's own code).
 * No service subscribed to the subject counts as system.notFound (see
 * NoRespondersError).
 */
export interface RequestObserver {
  request(kind: RequestKind, outcome: string): void;
}

/** Outcome counters by request type, for metrics and tests. */
export type RequestKind = 'get' | 'access' | 'call' | 'auth' | 'query';

/**
 * Traces requests: `start` is called as a request is sent, in the caller's
 * trace context, and returns the NATS headers that carry the request's
 * trace context to the service (or undefined for a request it does not
 * trace); `end` is given the outcome (see RequestObserver).
 */
export interface RequestTracer {
  start(kind: RequestKind, subject: string): TracedRequest | undefined;
}

export interface TracedRequest {
  headers: MsgHdrs;
  end(outcome: string): void;
}

interface Pending {
  subject: string;
  resolve: (r: Response) => void;
  reject: (e: ResError) => void;
  /** called synchronously when the answer (not a pre-response) arrives, before the promise settles */
  onAnswer?: () => void;
  timer: NodeJS.Timeout;
  /** publishes the request (again) */
  send: () => void;
  /** until when a missing responder means "not yet" (right after a reconnect), as a Date.now() time */
  retryNoRespondersUntil: number;
}

/** How long to wait before asking again when no service answered right after a reconnect, in ms. */
const noRespondersRetryDelay = 50;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const preResponse = /^timeout:"(\d+)"$/;

export class ResClient {
  readonly requestTimeout: number;
  private readonly log: Logger;
  private readonly observer: RequestObserver | undefined;
  private readonly tracer: RequestTracer | undefined;
  private nc: NatsConnection | undefined;
  private inbox = '';
  private inboxSub: Subscription | undefined;
  private readonly pending = new Map<string, Pending>();
  /** resource names whose service answered `new` the old way: told once each (the first 100 names) */
  private readonly legacyNewNames = new Set<string>();
  private nextToken = 0;
  /** requests sent, by kind: a cheap way for tests and metrics to count traffic */
  readonly sent: Record<RequestKind, number> = { get: 0, access: 0, call: 0, auth: 0, query: 0 };

  constructor(opts: ResClientOptions) {
    this.requestTimeout = opts.requestTimeout ?? defaults.requestTimeout;
    this.log = opts.logger;
    this.observer = opts.observer;
    this.tracer = opts.tracer;
  }

  /** Starts using a NATS connection. Until then every request fails with system.timeout. */
  attach(nc: NatsConnection): void {
    this.nc = nc;
    this.inbox = createInbox();
    this.inboxSub = nc.subscribe(`${this.inbox}.*`, { callback: (_err, msg) => this.onReply(msg) });
  }

  /** Whether the NATS connection is up right now. */
  get connected(): boolean {
    return this.nc !== undefined && !this.nc.isClosed() && !this.reconnecting;
  }

  /** while nats.js is reconnecting: not `connected`, and a missing responder is retried (see `retryNoRespondersUntil`) */
  private reconnecting = false;
  private reconnectedAt = -Infinity;

  /** Tells the client NATS lost the connection and is reconnecting. */
  connectionLost(): void {
    this.reconnecting = true;
  }

  /** Tells the client NATS is back: see `retryNoRespondersUntil`. */
  connectionRestored(): void {
    this.reconnecting = false;
    this.reconnectedAt = Date.now();
  }

  /** The NATS connection, or a system.timeout error saying NATS is not reachable. */
  private connection(): NatsConnection {
    if (!this.nc || this.nc.isClosed()) throw new ResError(ErrorCode.timeout, 'NATS is not connected');
    return this.nc;
  }

  /**
   * Sends `get.<name>` and returns the model or collection. `onAnswer` runs
   * synchronously when the reply arrives: messages delivered after it (in the
   * same NATS read) are handled before the returned promise settles.
   */
  async get(name: string, query?: string, opts: { onAnswer?: () => void } = {}): Promise<GetResult> {
    this.sent.get++;
    const subject = subjects.get(name);
    const res = await this.request(subject, query === undefined ? {} : { query }, { ...opts, kind: 'get' });
    if (res.kind === 'error') throw res.error;
    if (res.kind !== 'result') throw this.malformed(subject, 'get answered with a resource');
    try {
      return parseGetResult(res.result);
    } catch (e) {
      throw this.malformed(subject, (e as Error).message);
    }
  }

  /**
   * Sends `access.<name>` and returns the verdict. Only a verdict, or a
   * system.accessDenied error reply, says "you may not"; any other error
   * reply (system.internalError, a service code such as `conf.banned`), an
   * invalid verdict (system.internalError), no responder (system.notFound)
   * and a timeout reject with their code, so a client can tell a refusal
   * from a broken access service, as Resgate does. `onMeta` is given a
   * reply that carries meta, before the verdict resolves.
   */
  async access(name: string, payload: RequestPayload, onMeta?: (reply: Response & { meta: ResponseMeta }) => void): Promise<AccessVerdict> {
    this.sent.access++;
    const subject = subjects.access(name);
    const res = await this.request(subject, payload, { kind: 'access' });
    // the verdict alone loses the reply's meta: the caller may want it (access/meta.ts)
    if (res.meta && onMeta) onMeta(res as Response & { meta: ResponseMeta });
    if (res.kind === 'error') {
      if (res.error.code === ErrorCode.accessDenied) return noAccess;
      throw res.error;
    }
    if (res.kind !== 'result') throw this.malformed(subject, 'access answered with a resource');
    try {
      return parseAccessResult(res.result);
    } catch (e) {
      throw this.malformed(subject, (e as Error).message);
    }
  }

  /**
   * Sends `call.<name>.<method>`; returns the result or resource reply, throws
   * a ResError for an error reply. A `new` call's `{"rid"}` result is its
   * resource reply (see legacyNewReply).
   */
  async call(name: string, method: string, payload: RequestPayload): Promise<Response> {
    this.sent.call++;
    const subject = subjects.call(name, method);
    const reply = this.throwOnError(await this.request(subject, payload, { kind: 'call' }));
    if (method !== 'new') return reply;
    let read: Response;
    try {
      read = legacyNewReply(reply);
    } catch (e) {
      throw this.malformed(subject, (e as Error).message);
    }
    if (read !== reply && this.legacyNewNames.size < 100 && !this.legacyNewNames.has(name)) {
      this.legacyNewNames.add(name);
      this.log.warn('service answered new with {"rid"} as its result; read as a resource reply (deprecated: reply with "resource")', { subject });
    }
    return read;
  }

  /** Sends `auth.<name>.<method>` (no access check: see docs/protocol-notes.md#auth-requests-need-no-access). */
  async auth(name: string, method: string, payload: RequestPayload): Promise<Response> {
    this.sent.auth++;
    return this.throwOnError(await this.request(subjects.auth(name, method), payload, { kind: 'auth' }));
  }

  /** Sends an auth request to a subject given by a service (`system.tokenReset`); the reply is not needed. */
  async authRequest(subject: string, payload: RequestPayload): Promise<Response> {
    this.sent.auth++;
    return this.throwOnError(await this.request(subject, payload, { kind: 'auth' }));
  }

  /** Sends a query request to the subject given by a `query` event. */
  async queryRequest(subject: string, query: string): Promise<unknown> {
    this.sent.query++;
    const res = await this.request(subject, { query }, { kind: 'query' });
    if (res.kind === 'error') throw res.error;
    if (res.kind !== 'result') throw this.malformed(subject, 'query request answered with a resource');
    return res.result;
  }

  /**
   * Subscribes to a subject; the handler gets the parsed JSON payload (or
   * undefined for an empty body). A payload that is not JSON or nests too
   * deep is logged and dropped; a handler that throws is logged, and the
   * next message is handled as usual.
   */
  subscribe(subject: string, handler: (subject: string, payload: unknown) => void): Subscription {
    return this.connection().subscribe(subject, {
      callback: (err, msg) => {
        if (err) {
          this.log.warn('subscription error', { subject, error: err.message });
          return;
        }
        if (jsonDepthExceeds(msg.data)) {
          this.log.warn('malformed message ignored', { subject: msg.subject, reason: `nested deeper than ${maxJsonDepth} levels` });
          return;
        }
        let payload: unknown;
        try {
          payload = msg.data.length === 0 ? undefined : JSON.parse(decoder.decode(msg.data));
        } catch {
          this.log.warn('malformed JSON in message; ignored', { subject: msg.subject });
          return;
        }
        try {
          handler(msg.subject, payload);
        } catch (e) {
          this.log.error('handling a message failed', { subject: msg.subject, error: errorText(e) });
        }
      },
    });
  }

  /**
   * A message's payload checked by `parse` (a parse helper of protocol.ts),
   * or undefined when it is malformed: that is logged with the subject, and
   * the caller ignores the message.
   */
  parseMessage<T>(subject: string, payload: unknown, parse: (payload: unknown) => T): T | undefined {
    try {
      return parse(payload);
    } catch (e) {
      this.log.warn('malformed message ignored', { subject, reason: (e as Error).message });
      return undefined;
    }
  }

  /** Publishes a message (tests and fixtures; the gateway itself only requests). */
  publish(subject: string, payload: unknown): void {
    this.connection().publish(subject, encoder.encode(JSON.stringify(payload)));
  }

  /** Fails every request still waiting and drains the NATS connection: used on shutdown. */
  async drain(): Promise<void> {
    for (const [token, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(token);
      p.reject(new ResError(ErrorCode.timeout, 'Gateway shutting down'));
    }
    const nc = this.nc;
    this.nc = undefined;
    if (nc && !nc.isClosed()) await nc.drain().catch(() => nc.close());
  }

  private throwOnError(res: Response): Response {
    if (res.kind === 'error') throw res.error;
    return res;
  }

  private malformed(subject: string, reason: string): ResError {
    this.log.warn('malformed service reply', { subject, reason });
    return internalError('Malformed reply from service');
  }

  /**
   * Publishes a request and waits for its reply. A `timeout:"ms"` pre-response
   * restarts the wait with the given duration; a NATS no-responders status is
   * a NoRespondersError (system.notFound).
   */
  request(
    subject: string,
    payload: unknown,
    opts: { onAnswer?: () => void; kind?: RequestKind } = {},
  ): Promise<Response> {
    const token = (this.nextToken++).toString(36);
    const data = encoder.encode(JSON.stringify(payload));
    const kind = opts.kind;
    // tracing off: no tracer, so no span and no headers
    const traced = kind && this.tracer ? this.tracer.start(kind, subject) : undefined;
    const headers = traced?.headers;
    const promise = new Promise<Response>((resolve, reject) => {
      const p: Pending = {
        subject,
        resolve,
        reject,
        onAnswer: opts.onAnswer,
        timer: setTimeout(() => this.expire(token), this.requestTimeout),
        send: () => this.connection().publish(subject, data, { reply: `${this.inbox}.${token}`, headers }),
        retryNoRespondersUntil:
          this.reconnecting || Date.now() - this.reconnectedAt < this.requestTimeout
            ? Date.now() + this.requestTimeout - noRespondersRetryDelay
            : 0,
      };
      this.pending.set(token, p);
      try {
        p.send();
      } catch (e) {
        this.settle(token);
        clearTimeout(p.timer);
        reject(ResError.is(e) ? e : new ResError(ErrorCode.timeout, `NATS unavailable: ${(e as Error).message}`));
      }
    });
    const { observer } = this;
    if (kind && (observer || traced)) {
      const ended = (outcome: string) => {
        observer?.request(kind, outcome);
        traced?.end(outcome);
      };
      promise.then(
        (r) => ended(r.kind === 'error' ? requestOutcome(r.error) : 'ok'),
        (e: unknown) => ended(requestOutcome(e)),
      );
    }
    return promise;
  }

  private expire(token: string): void {
    const p = this.settle(token);
    if (!p) return;
    this.log.debug('request timed out', { subject: p.subject });
    p.reject(timeoutError());
  }

  private settle(token: string): Pending | undefined {
    const p = this.pending.get(token);
    if (p) this.pending.delete(token);
    return p;
  }

  /** The inbox's NATS callback: nothing may throw out of it (see the top of this file). */
  private onReply(msg: Msg): void {
    try {
      this.handleReply(msg);
    } catch (e) {
      this.log.error('handling a reply failed', { subject: msg.subject, error: errorText(e) });
    }
  }

  private handleReply(msg: Msg): void {
    const token = msg.subject.slice(this.inbox.length + 1);
    const p = this.pending.get(token);
    if (!p) return; // late reply after a timeout
    if (msg.headers?.code === 503) {
      if (Date.now() < p.retryNoRespondersUntil) {
        // After a NATS reconnect every service resubscribes at its own pace: a
        // missing responder then means "not yet", not "none" (which would fail
        // the gateway's resync gets and deny every access re-check). Ask again
        // until the request's own timeout.
        setTimeout(() => {
          if (this.pending.get(token) !== p) return;
          try {
            p.send();
          } catch {
            // NATS went away again: the request's timer ends it
          }
        }, noRespondersRetryDelay).unref?.();
        return;
      }
      p.onAnswer?.();
      this.settle(token);
      clearTimeout(p.timer);
      p.reject(new NoRespondersError());
      return;
    }
    const text = decoder.decode(msg.data);
    const pre = preResponse.exec(text);
    if (pre) {
      // the service asks for more time, counted from now (see docs/protocol-notes.md#pre-response)
      clearTimeout(p.timer);
      p.timer = setTimeout(() => this.expire(token), Number(pre[1]));
      return;
    }
    p.onAnswer?.();
    this.settle(token);
    clearTimeout(p.timer);
    if (jsonDepthExceeds(msg.data)) {
      p.reject(this.malformed(p.subject, `reply nested deeper than ${maxJsonDepth} levels`));
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      p.reject(this.malformed(p.subject, 'reply is not JSON'));
      return;
    }
    try {
      p.resolve(parseResponse(body));
    } catch (e) {
      p.reject(this.malformed(p.subject, (e as Error).message));
    }
  }
}

/** A failed request's outcome label (see RequestObserver). */
function requestOutcome(e: unknown): string {
  if (!ResError.is(e)) return ErrorCode.internalError;
  return e.code === ErrorCode.timeout ? 'timeout' : e.code;
}
