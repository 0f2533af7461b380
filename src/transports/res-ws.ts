/**
 * The RES client protocol (https://resgate.io/docs/specification/res-client-protocol/)
 * over WebSocket, so ResClient frontends written for Resgate work against
 * resgraph: `version`, `subscribe`, `unsubscribe`, `get`, `call`, `auth` and
 * `new` requests, and the events on subscribed resources (`change`, `add`,
 * `remove`, `delete`, custom events, and `unsubscribe` when access is lost),
 * each carrying the resources it brings into view, as Resgate sends them.
 *
 * A session reads everything through the gateway's one cache and access
 * layer: a resource a ResClient and a GraphQL subscription both watch costs
 * one get and one NATS event subscription. What a session holds in view
 * (its direct subscriptions and every resource their hard references reach)
 * is held by its view's lease (lifecycle.ts) and watched in the cache; a
 * resource that falls out of view is let go without a word, as the client
 * drops it too.
 *
 * Every step that reads or changes a session's view (a request's answer, an
 * event) runs in order on one chain, so a resource is sent once, in the
 * state its later events start from.
 *
 * Fan-out: an event that brings nothing into a client's view that the client
 * lacks is the same message for every client of the resource, so it is
 * framed once and the same bytes are written to each socket (frames.ts),
 * at once when the session has no step under way, and the events a socket
 * gets in one tick leave in one write. Only an event that brings a resource
 * a client does not hold yet (a change to a new reference, an add of a new
 * item) is built for that client, with those resources in it.
 *
 * Events are deltas and cannot be skipped or merged, so a client that stops
 * reading has its events queued in its socket until the unsent bytes pass
 * 8 MiB; then it is disconnected (a ResClient reconnects and
 * subscribes again, getting the current state). Resgate queues without a
 * bound instead.
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Connection } from '../access/access.js';
import type { CacheEntry, EntryChange } from '../cache/cache.js';
import { errorText } from '../log.js';
import { textFrame, writeBatched } from './frames.js';
import { isDirectStatus, mergeHeader, statusError } from '../res/meta.js';
import {
  ErrorCode,
  ResError,
  accessDenied,
  canCall,
  errorObject,
  internalError,
  invalidParams,
  isRef,
  isValidClientRid,
  isValidMethodName,
  splitRid,
  type ResValue,
  type Response,
} from '../res/protocol.js';
import type { GatewayContext } from '../resolvers/resolvers.js';
import type { ResTransportParts } from './http.js';

export interface ResWebSocketOptions extends ResTransportParts {
  /** Whether the page that opens a socket may (its `Origin`); refused upgrades get 403. */
  acceptOrigin: (req: IncomingMessage) => boolean;
  /** How many resources one connection may subscribe to directly (the GraphQL live subscription limit). */
  maxSubscriptionsPerConnection: number;
  /** Bytes a client message may have; a larger one closes the socket with 1009 (ws's maxPayload). */
  maxMessageBytes?: number;
}

/** Bytes a socket may leave unread before its next message disconnects it instead (see the top comment). */
const maxUnsentBytes = 8 * 1024 * 1024;

/** What a request handler returns when it has sent its reply itself (see subscribe). */
const answered = Symbol('answered');

export interface ResWebSocket {
  readonly wss: WebSocketServer;
  /** takes an upgrade request for the protocol's path */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Refuses new sockets and closes every open one with 1012 "service restart"; resolves once all are closed. */
  closeForRestart(): Promise<void>;
  terminate(): void;
}

/** The protocol version this gateway speaks (as Resgate 1.8). */
const protocolVersion = '1.2.3';
const serviceRestart = 1012;

interface ClientRequest {
  id: unknown;
  method: string;
  params?: unknown;
}

/** A resource set: the resources a result or an event brings into the client's view. */
interface ResourceSet {
  models?: Record<string, unknown>;
  collections?: Record<string, unknown>;
  errors?: Record<string, unknown>;
}

const invalidRequest = () => new ResError(ErrorCode.invalidRequest, 'Invalid request');
const noSubscription = () => new ResError(ErrorCode.noSubscription, 'No subscription');

/**
 * A client's request, or undefined for a frame that is none: as Resgate
 * reads it, the id must be an unsigned integer and the method a string, if
 * any (a request without one is answered system.invalidRequest). A frame
 * that is no request is dropped unanswered, and nothing it asks is done.
 */
function parseRequest(text: string): ClientRequest | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const r = v as Record<string, unknown>;
  const method = r.method ?? '';
  if (typeof method !== 'string' || !Number.isSafeInteger(r.id) || (r.id as number) < 0) return undefined;
  return { id: r.id, method, params: r.params };
}

/** Splits `<type>.<rid>[.<method>]`: for call and auth the method is the last part (a query's dots come before it). */
function splitMethod(method: string): { type: string; rid: string; action?: string } | undefined {
  const i = method.indexOf('.');
  if (i < 0) return method === 'version' ? { type: 'version', rid: '' } : undefined;
  const type = method.slice(0, i);
  const rest = method.slice(i + 1);
  if (type === 'version') return undefined; // a version request names no resource
  if (type !== 'call' && type !== 'auth') return { type, rid: rest };
  const j = rest.lastIndexOf('.');
  if (j < 0) return undefined;
  return { type, rid: rest.slice(0, j), action: rest.slice(j + 1) };
}

/**
 * A field of a request's params, which must be an object when there are
 * any (Resgate reads them into a struct): system.invalidParams otherwise.
 */
function paramOf(params: unknown, key: string): unknown {
  if (params === undefined || params === null) return undefined;
  if (typeof params !== 'object' || Array.isArray(params)) throw invalidParams();
  return (params as Record<string, unknown>)[key];
}

/**
 * A version request's answer, with Resgate's checks of the client's
 * protocol: a version of three numbers under 1000, 1.x.x; none is fine.
 * Every 1.x client is then answered as a 1.2 client (see
 * docs/resgate-migration.md).
 */
function versionAnswer(params: unknown): { protocol: string } {
  const protocol = paramOf(params, 'protocol');
  if (protocol === undefined || protocol === null || protocol === '') return { protocol: protocolVersion };
  if (typeof protocol !== 'string') throw invalidParams();
  const parts = protocol.split('.');
  if (parts.length !== 3 || !parts.every((p) => /^[+-]?\d+$/.test(p) && Number(p) < 1000)) throw invalidParams();
  const [major, minor, patch] = parts.map(Number);
  const v = major * 1_000_000 + minor * 1000 + patch;
  if (v < 1_000_000 || v >= 2_000_000) throw new ResError(ErrorCode.unsupportedProtocol, 'Unsupported protocol');
  return { protocol: protocolVersion };
}

/** An unsubscribe request's count: 1 without one; anything but a positive integer is system.invalidParams, as in Resgate. */
function unsubscribeCount(params: unknown): number {
  const count = paramOf(params, 'count');
  if (count === undefined || count === null) return 1;
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1) throw invalidParams();
  return count;
}

function refsOf(entry: CacheEntry): string[] {
  const values: ResValue[] = entry.kind === 'model' ? Object.values(entry.model ?? {}) : (entry.collection ?? []);
  const out: string[] = [];
  for (const v of values) if (isRef(v) && !v.soft) out.push(v.rid);
  return out;
}

/** A cache change as the event clients get: what is the same for every client of the resource. */
interface ResEvent {
  name: EntryChange['type'];
  /** the event's data as an object, to which a client's resource set is added */
  data: Record<string, unknown> | null;
  /** the data's JSON, for the shared frame */
  json: string;
  /** the resources the event references (hard references): a client lacking one gets them with it */
  refs: string[];
}

/**
 * The last change made into an event, and its last frame: the cache tells
 * every watcher of an entry of one change in turn, so each is made once for
 * all (a client whose rid differs, a `{cid}`-tagged one, gets its own frame).
 */
let last: { change: EntryChange; event: ResEvent | undefined; rid: string; frame: Buffer | undefined } | undefined;

function resEventOf(change: EntryChange): ResEvent | undefined {
  if (last?.change !== change) last = { change, event: toResEvent(change), rid: '', frame: undefined };
  return last.event;
}

/** The event's frame for a client that needs nothing more with it, for the client's name of the resource. */
function sharedEventFrame(change: EntryChange, event: ResEvent, rid: string): Buffer {
  if (last?.change === change && last.rid === rid && last.frame) return last.frame;
  const frame = textFrame(`{"event":${JSON.stringify(`${rid}.${event.name}`)},"data":${event.json}}`);
  last = { change, event, rid, frame };
  return frame;
}

function toResEvent(change: EntryChange): ResEvent | undefined {
  const hardRef = (v: unknown): v is { rid: string } => isRef(v as ResValue) && !(v as { soft?: boolean }).soft;
  switch (change.type) {
    case 'change': {
      const values = Object.values(change.values);
      // an empty change is a repaired or replaced entry: nothing a change event can say
      if (values.length === 0) return undefined;
      const data = { values: change.values };
      return { name: 'change', data, json: JSON.stringify(data), refs: values.filter(hardRef).map((v) => v.rid) };
    }
    case 'add': {
      const data = { idx: change.idx, value: change.value };
      return { name: 'add', data, json: JSON.stringify(data), refs: hardRef(change.value) ? [change.value.rid] : [] };
    }
    case 'remove': {
      const data = { idx: change.idx };
      return { name: 'remove', data, json: JSON.stringify(data), refs: [] };
    }
    case 'delete':
      return { name: 'delete', data: null, json: 'null', refs: [] };
  }
}

/** Custom events: one frame per event and client rid, as they reach every session one after the other. */
let lastCustom: { rid: string; event: string; payload: unknown; frame: Buffer } | undefined;

function customEventFrame(rid: string, event: string, payload: unknown): Buffer {
  const last = lastCustom;
  if (last && last.rid === rid && last.event === event && last.payload === payload) return last.frame;
  const frame = textFrame(JSON.stringify({ event: `${rid}.${event}`, data: payload ?? null }));
  lastCustom = { rid, event, payload, frame };
  return frame;
}

class ResSession {
  readonly conn: Connection;
  /** direct subscriptions by rid (the service's rid: `{cid}` filled in) */
  private readonly direct = new Map<string, number>();
  /** what the client holds: every subscribed resource, loaded or failed */
  private readonly inView = new Map<string, CacheEntry | ResError>();
  /**
   * the rids each entry whose events the client gets is in view as: one,
   * or more for a query resource the client named in more than one way
   * (`?a=1&b=2` and `?b=2&a=1`), each of which hears its events
   */
  private readonly ridOf = new Map<CacheEntry, string[]>();
  /** the connection and the lease holding what is in view, for the socket's whole life; the lease hears its changes (those of entries not in ridOf are not the client's yet) */
  private readonly view: GatewayContext;
  private readonly stopListening: (() => void)[];
  private chain: Promise<void> = Promise.resolve();
  /** steps enqueued and not finished: while there are none, an event is sent at once */
  private steps = 0;
  private closed = false;
  private readonly onAccessChanged = () => this.enqueue(() => this.recheckAccess());

  constructor(
    readonly socket: WebSocket,
    /** the upgraded TCP socket under `socket`, which messages are written to (see frames.ts) */
    private readonly raw: Duplex,
    conn: Connection,
    private readonly t: ResWebSocketImpl,
  ) {
    this.conn = conn;
    this.view = t.opts.lifecycle.context(conn, (entry, change) => this.entryChanged(entry, change));
    this.stopListening = [conn.onAccessChanged(this.onAccessChanged), t.opts.cache.onCustomEvent(this.onCustomEvent)];
    socket.on('message', (data: RawData) => this.onMessage(data.toString()));
    socket.once('close', () => this.onClosed());
    socket.on('error', () => undefined);
  }

  // --- rids as the client writes them --------------------------------------

  /** rids the client wrote with the `{cid}` tag, by the rid the services know */
  private readonly tagged = new Map<string, string>();

  /** The rid for the services: the `{cid}` tag filled in (RES client protocol, "Connection ID tag"). */
  private toService(rid: string): string {
    if (!rid.includes('{cid}')) return rid;
    const filled = rid.split('{cid}').join(this.conn.cid);
    this.tagged.set(filled, rid);
    return filled;
  }

  /** The rid as the client wrote it: events and resource sets name a tagged resource with its tag, never the cid. */
  private toClient(rid: string): string {
    return this.tagged.get(rid) ?? rid;
  }

  // --- wire ----------------------------------------------------------------

  private send(message: unknown): void {
    this.write(textFrame(JSON.stringify(message)));
  }

  /**
   * Writes a whole frame (batched per tick, see frames.ts), unless the client
   * has left more than maxUnsentBytes of earlier ones unread: then it is
   * disconnected instead (a client that cannot keep up would otherwise hold
   * a growing backlog; a reconnect gets it the current state).
   */
  private write(frame: Buffer): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    // corked: written to already in this tick, whose frames are not counted
    if (!this.raw.writableCorked && this.raw.writableLength > maxUnsentBytes) {
      this.t.opts.logger.warn('RES WebSocket client does not read its events; disconnected', { cid: this.conn.cid, unsentBytes: this.raw.writableLength });
      this.socket.terminate();
      return;
    }
    writeBatched(this.raw, frame);
  }

  private enqueue(step: () => void | Promise<void>): Promise<void> {
    this.steps++;
    const run = this.chain.then(() => (this.closed ? undefined : step()));
    this.chain = run.then(
      () => void this.steps--,
      (e: unknown) => {
        this.steps--;
        this.t.opts.logger.error('RES WebSocket step failed', { cid: this.conn.cid, error: errorText(e) });
      },
    );
    return run;
  }

  private onMessage(text: string): void {
    const req = parseRequest(text);
    if (!req) return; // not a request: Resgate drops it too
    void this.answer(req).then(
      // a request without a result payload (unsubscribe) is answered without `result`, as Resgate does
      (result) => {
        if (result !== answered) this.send(result === undefined ? { id: req.id } : { id: req.id, result });
      },
      (e: unknown) => this.send({ id: req.id, error: errorObject(ResError.is(e) ? e : this.unexpected(e)) }),
    );
  }

  private unexpected(e: unknown): ResError {
    this.t.opts.logger.error('RES WebSocket request failed', { cid: this.conn.cid, error: errorText(e) });
    return internalError();
  }

  private async answer(req: ClientRequest): Promise<unknown> {
    const m = splitMethod(req.method);
    if (!m) throw invalidRequest();
    if (m.type === 'version') return versionAnswer(req.params);
    const rid = this.toService(m.rid);
    if (!isValidClientRid(rid, true) || (m.action !== undefined && !isValidMethodName(m.action))) throw invalidRequest();
    switch (m.type) {
      case 'subscribe':
        await this.subscribe(rid, (set) => this.send({ id: req.id, result: set }));
        return answered;
      case 'unsubscribe':
        return this.unsubscribe(rid, req.params);
      case 'get':
        return this.get(rid);
      case 'call':
        return this.call(rid, m.action!, req.params, false);
      case 'auth':
        return this.call(rid, m.action!, req.params, true);
      case 'new':
        return this.callNew(rid, req.params);
      default:
        throw invalidRequest();
    }
  }

  // --- requests --------------------------------------------------------------

  /**
   * `reply`, when given, is called with the set in the same step that starts
   * watching: an event after it is queued behind the reply, so a client never
   * gets a change before the state it applies to.
   */
  private async subscribe(rid: string, reply?: (set: ResourceSet) => void): Promise<ResourceSet> {
    const max = this.t.opts.maxSubscriptionsPerConnection;
    if (!this.direct.has(rid) && this.direct.size >= max) {
      throw new ResError(ErrorCode.limitExceeded, `A connection may hold at most ${max} subscriptions`);
    }
    await this.assertGet(rid);
    await this.loadRoot(rid);
    let set: ResourceSet = {};
    await this.enqueue(async () => {
      this.direct.set(rid, (this.direct.get(rid) ?? 0) + 1);
      set = await this.bringIntoView([rid]);
      reply?.(set);
    });
    return set;
  }

  private async unsubscribe(rid: string, params: unknown): Promise<undefined> {
    const count = unsubscribeCount(params);
    await this.enqueue(() => {
      const have = this.direct.get(rid) ?? 0;
      if (have < count) throw noSubscription();
      if (have === count) this.direct.delete(rid);
      else this.direct.set(rid, have - count);
      this.forgetVerdictUnlessSubscribed(rid);
      this.dropUnreachable();
    });
    return undefined;
  }

  private async get(rid: string): Promise<ResourceSet> {
    await this.assertGet(rid);
    await this.loadRoot(rid);
    let set: ResourceSet = {};
    // what the client holds already is not sent again; the rest is not kept
    await this.enqueue(async () => {
      set = this.encodeSet(await this.loadClosure([rid]));
      // what it loaded was held only while it loaded
      this.dropUnreachable();
    });
    return set;
  }

  private async call(rid: string, method: string, params: unknown, isAuth: boolean): Promise<unknown> {
    const reply = await this.methodRequest(rid, method, params, isAuth);
    if (reply.kind === 'result') return { payload: reply.result ?? null };
    return { rid: this.toClient(reply.rid), ...(await this.subscribeReferenced(reply.rid)) };
  }

  /** The deprecated `new`: a `new` call whose resource reply the client is subscribed to. */
  private async callNew(rid: string, params: unknown): Promise<unknown> {
    const reply = await this.methodRequest(rid, 'new', params, false);
    // Resgate's words for it, which a client may match on
    if (reply.kind !== 'resource') throw internalError('Internal error: non-resource response on new request');
    return { rid: this.toClient(reply.rid), ...(await this.subscribeReferenced(reply.rid)) };
  }

  /** A call (after its access check) or an auth request; an error reply is thrown. */
  private async methodRequest(rid: string, method: string, params: unknown, isAuth: boolean): Promise<Exclude<Response, { kind: 'error' }>> {
    const { name, query } = splitRid(rid);
    const payload = this.conn.basePayload(query);
    if (params !== undefined) payload.params = params;
    let reply: Response;
    if (isAuth) {
      if (this.conn.http) Object.assign(payload, this.conn.http);
      reply = await this.t.opts.res.auth(name, method, payload);
    } else {
      const verdict = await this.t.opts.access.verdict(this.conn, rid);
      if (!canCall(verdict, method)) throw accessDenied();
      reply = await this.t.opts.res.call(name, method, payload);
    }
    if (reply.kind === 'error') throw reply.error;
    return reply;
  }

  /** A call's resource reply: subscribed directly, or, without access, only its error (the call itself succeeded). */
  private async subscribeReferenced(rid: string): Promise<ResourceSet> {
    try {
      return await this.subscribe(rid);
    } catch (e) {
      const error = ResError.is(e) ? e : this.unexpected(e);
      return { errors: { [this.toClient(rid)]: errorObject(error) } };
    }
  }

  /**
   * The access check of a subscribe or get. A verdict is kept only while the
   * rid is subscribed directly: Resgate asks again on each request for a
   * resource the client does not hold, so a service that grants access
   * without a `reaccess` is asked again here too.
   */
  private async assertGet(rid: string): Promise<void> {
    try {
      await this.t.opts.access.assertGet(this.conn, rid);
    } catch (e) {
      this.forgetVerdictUnlessSubscribed(rid);
      throw e;
    }
  }

  private forgetVerdictUnlessSubscribed(rid: string): void {
    if (!this.direct.has(rid)) this.conn.forgetVerdicts((r) => r === rid);
  }

  /** Loads the requested resource: its failure is the request's error (a reference's failure is only in the set). */
  private async loadRoot(rid: string): Promise<void> {
    await this.t.opts.cache.load(rid);
  }

  // --- the view --------------------------------------------------------------

  /**
   * Loads every resource reachable from `roots` through hard references that
   * the client does not hold, and returns them (entries or errors) once all
   * are loaded at the same moment (a reference added meanwhile is loaded too).
   */
  private async loadClosure(roots: string[]): Promise<Map<string, CacheEntry | ResError>> {
    const failed = new Map<string, ResError>();
    for (;;) {
      const found = new Map<string, CacheEntry | ResError>();
      const missing: string[] = [];
      const visit = (rid: string) => {
        if (found.has(rid) || this.inView.has(rid)) return;
        const error = failed.get(rid);
        const entry = error ? undefined : this.t.opts.cache.peek(rid);
        if (!error && !entry) {
          missing.push(rid);
          return;
        }
        found.set(rid, error ?? entry!);
        if (entry) for (const r of refsOf(entry)) visit(r);
      };
      for (const r of roots) visit(r);
      if (missing.length === 0) return found;
      await Promise.all(
        missing.map(async (rid) => {
          this.view.lease.hold(rid);
          await this.t.opts.cache.load(rid).catch((e: unknown) => failed.set(rid, ResError.is(e) ? e : this.unexpected(e)));
        }),
      );
    }
  }

  /** Brings the resources `roots` reach into view: held, their events forwarded, and returned as the set to send. */
  private async bringIntoView(roots: string[]): Promise<ResourceSet> {
    const found = await this.loadClosure(roots);
    for (const [rid, v] of found) {
      this.inView.set(rid, v);
      this.view.lease.hold(rid);
      if (ResError.is(v)) continue;
      const names = this.ridOf.get(v);
      if (!names) this.ridOf.set(v, [rid]);
      else if (!names.includes(rid)) names.push(rid);
    }
    return this.encodeSet(found);
  }

  private encodeSet(found: Map<string, CacheEntry | ResError>): ResourceSet {
    const set: ResourceSet = {};
    for (const [serviceRid, v] of found) {
      const rid = this.toClient(serviceRid);
      if (ResError.is(v)) (set.errors ??= {})[rid] = errorObject(v);
      else if (v.kind === 'model') (set.models ??= {})[rid] = { ...v.model };
      else (set.collections ??= {})[rid] = [...(v.collection ?? [])];
    }
    return set;
  }

  /** Lets go of what no direct subscription reaches any more (the client drops it too). */
  private dropUnreachable(): void {
    const reachable = new Set<string>();
    const visit = (rid: string) => {
      if (reachable.has(rid)) return;
      reachable.add(rid);
      const v = this.inView.get(rid);
      if (v && !ResError.is(v)) for (const r of refsOf(v)) visit(r);
    };
    for (const rid of this.direct.keys()) visit(rid);
    for (const [rid, v] of this.inView) {
      if (reachable.has(rid)) continue;
      this.inView.delete(rid);
      if (ResError.is(v)) continue;
      const names = this.ridOf.get(v);
      const i = names?.indexOf(rid) ?? -1;
      if (i >= 0) names!.splice(i, 1);
      if (names?.length === 0) this.ridOf.delete(v);
    }
    this.view.lease.retainOnly(new Set([...reachable].filter((r) => this.inView.has(r))));
  }

  // --- events ----------------------------------------------------------------

  private entryChanged(entry: CacheEntry, change: EntryChange): void {
    const names = this.ridOf.get(entry);
    if (names === undefined) return;
    if (names.length === 1) this.forwardAs(entry, names[0], change);
    // (a copy: forwarding may let go of a name)
    else for (const rid of [...names]) this.forwardAs(entry, rid, change);
  }

  private forwardAs(entry: CacheEntry, rid: string, change: EntryChange): void {
    // behind a step under way (a subscribe's reply, say), in order; else at once when it needs nothing more
    if (this.steps > 0 || !this.forwardShared(entry, rid, change)) this.enqueue(() => this.forward(entry, rid, change));
  }

  /**
   * Sends the event as the frame shared by every client of the resource,
   * when it references nothing this client lacks; false when it does.
   */
  private forwardShared(entry: CacheEntry, rid: string, change: EntryChange): boolean {
    // out of view meanwhile, or nothing to tell
    if (this.inView.get(rid) !== entry) return true;
    const event = resEventOf(change);
    if (!event) return true;
    for (const r of event.refs) if (!this.inView.has(r)) return false;
    // still subscribed, but no more events come for it (the cache let go of the entry)
    if (event.name === 'delete') this.ridOf.delete(entry);
    this.write(sharedEventFrame(change, event, this.toClient(rid)));
    // a replaced or removed reference may leave resources no subscription reaches (none when all are direct)
    if ((event.name === 'change' || event.name === 'remove') && this.inView.size > this.direct.size) this.dropUnreachable();
    return true;
  }

  /** The event in its step: with the resources it brings that the client lacks, loaded first. */
  private async forward(entry: CacheEntry, rid: string, change: EntryChange): Promise<void> {
    if (this.forwardShared(entry, rid, change)) return;
    const event = resEventOf(change)!;
    const set = await this.bringIntoView(event.refs);
    this.send({ event: `${this.toClient(rid)}.${event.name}`, data: { ...event.data, ...set } });
    if (event.name === 'change') this.dropUnreachable();
  }

  private readonly onCustomEvent = (name: string, event: string, payload: unknown): void => {
    if (!this.inView.has(name)) return;
    const send = () => this.write(customEventFrame(this.toClient(name), event, payload));
    if (this.steps > 0) this.enqueue(send);
    else send();
  };

  /** A new token or a `reaccess`: each direct subscription the client may no longer get ends with an unsubscribe event. */
  private async recheckAccess(): Promise<void> {
    const lost = new Map<string, ResError>();
    await Promise.all(
      [...this.direct.keys()].map(async (rid) => {
        // a denial, or the error that kept the access handler from a verdict: the reason the client is told
        const denial = await this.t.opts.access.getDenial(this.conn, rid);
        if (denial) lost.set(rid, denial);
      }),
    );
    for (const [rid, reason] of lost) {
      if (!this.direct.delete(rid)) continue;
      // the client drops the direct subscription; what references still reach stays in view
      this.send({ event: `${this.toClient(rid)}.unsubscribe`, data: { reason: errorObject(reason) } });
    }
    if (lost.size === 0) return;
    this.dropUnreachable();
    // a later subscribe asks again (see assertGet); forgotten after the events, since forgetting re-runs this check
    this.conn.forgetVerdicts((r) => lost.has(r) && !this.direct.has(r));
  }

  close(code: number, reason: string): void {
    if (this.socket.readyState === this.socket.OPEN || this.socket.readyState === this.socket.CONNECTING) this.socket.close(code, reason);
  }

  private onClosed(): void {
    this.closed = true;
    for (const stop of this.stopListening) stop();
    this.ridOf.clear();
    this.inView.clear();
    // the view's lease, the connection's registration and its access listeners
    this.t.opts.lifecycle.finish(this.view);
    this.t.sessionClosed(this);
  }
}

class ResWebSocketImpl implements ResWebSocket {
  readonly wss: WebSocketServer;
  private readonly sessions = new Set<ResSession>();
  private restarting = false;
  private allClosed: (() => void) | undefined;

  constructor(readonly opts: ResWebSocketOptions) {
    // compression off, and must stay so: messages are written to the TCP socket directly (frames.ts)
    this.wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: opts.maxMessageBytes });
    this.wss.on('error', (e) => opts.logger.error('RES WebSocket server error', { error: e.message }));
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    void this.accept(req, socket, head).catch((e: unknown) => {
      this.opts.logger.error('RES WebSocket upgrade failed', { error: errorText(e) });
      refuseUpgrade(socket, 500, {});
    });
  }

  /**
   * Header auth runs before the upgrade, as in Resgate: its reply's meta
   * sets headers on the upgrade response, and a 3XX/4XX/5XX status answers
   * the upgrade request instead.
   */
  private async accept(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    if (this.restarting) return refuseUpgrade(socket, 503, {});
    // refused before anything reaches a service
    if (!this.opts.acceptOrigin(req)) return refuseUpgrade(socket, 403, {});
    const conn = this.opts.lifecycle.connect('res', req, false);
    const { meta, error } = await this.opts.lifecycle.authenticate(conn, undefined, { isHttp: true });
    const header = mergeHeader({}, meta?.header);
    if (isDirectStatus(meta) || socket.destroyed) {
      this.opts.lifecycle.close(conn);
      if (!isDirectStatus(meta)) return;
      const body = meta.status >= 400 ? JSON.stringify(errorObject(error ?? statusError(meta.status))) : undefined;
      return refuseUpgrade(socket, meta.status, header, body);
    }
    const addHeaders = (lines: string[]) => {
      for (const [k, vs] of Object.entries(header)) for (const v of vs) lines.push(`${k}: ${v}`);
    };
    this.wss.once('headers', addHeaders);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      if (this.restarting) {
        this.opts.lifecycle.close(conn);
        ws.close(serviceRestart, 'Service restart');
        return;
      }
      this.sessions.add(new ResSession(ws, socket, conn, this));
    });
    this.wss.off('headers', addHeaders);
  }

  sessionClosed(session: ResSession): void {
    this.sessions.delete(session);
    if (this.restarting && this.sessions.size === 0) this.allClosed?.();
  }

  closeForRestart(): Promise<void> {
    this.restarting = true;
    for (const s of this.sessions) s.close(serviceRestart, 'Service restart');
    return new Promise<void>((resolve) => {
      this.allClosed = resolve;
      if (this.sessions.size === 0) resolve();
    });
  }

  terminate(): void {
    this.restarting = true;
    for (const s of this.sessions) s.socket.terminate();
    this.wss.close();
  }
}

/** Answers an upgrade request with a plain HTTP response instead (a refused origin, a drain, header auth's meta status). */
function refuseUpgrade(socket: Duplex, status: number, header: Record<string, string[]>, body?: string): void {
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`, 'Connection: close', `Content-Length: ${body === undefined ? 0 : Buffer.byteLength(body)}`];
  if (body !== undefined) lines.push('Content-Type: application/json; charset=utf-8');
  for (const [k, vs] of Object.entries(header)) for (const v of vs) lines.push(`${k}: ${v}`);
  if (socket.writable) socket.end(`${lines.join('\r\n')}\r\n\r\n${body ?? ''}`);
  else socket.destroy();
}

export function attachResWebSocket(opts: ResWebSocketOptions): ResWebSocket {
  return new ResWebSocketImpl(opts);
}
