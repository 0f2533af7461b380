/**
 * The live engine owns live results: a subscription to a mirrored `@get`
 * field runs once, holds every rid it read, and runs again from the cache
 * whenever an event changes one of them. Events that arrive together are
 * coalesced into one run; identical operations (same document, variables
 * and token) share one LiveQuery, so one execution and one serialization
 * serve all their subscribers. Streams end with `system.accessDenied` when a
 * subscriber loses access, with `system.notFound` when the root resource
 * is deleted, and with `system.schemaChanged` when a schema reload leaves
 * their operation invalid; the others move to the new schema unbroken.
 * `@event` streams, which graphql-js runs, are followed across reloads too
 * (`followEventStream`).
 *
 * It does not know transports: subscribers are async iterables of
 * ExecutionResults, consumed by graphql-ws, SSE or a test alike. A live
 * result is a state, not an event log: a stream hands its consumer the
 * newest state each time it asks, so a consumer slower than the changes
 * skips intermediate states but always ends at the latest one.
 */
import {
  GraphQLError,
  print,
  validate,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';
import type { AccessChecker, Connection } from '../access/access.js';
import type { CacheEntry, EntryChange, Lease, LeaseListener, ResourceCache } from '../cache/cache.js';
import { errorText, type Logger } from '../log.js';
import { ErrorCode } from '../res/protocol.js';
import { run as runOperation } from '../resolvers/compiled.js';
import { internalGraphQLError, toGraphQLError, type GatewayContext } from '../resolvers/resolvers.js';
import type { ServedSchema } from '../resolvers/served.js';
import { diff, type PatchOperation } from './patch.js';
import { defaults } from '../config/defaults.js';

export interface LiveEngineOptions {
  cache: ResourceCache;
  access: AccessChecker;
  logger: Logger;
  /** the schema being served: a stream whose operation was validated against an older one is checked again */
  served: ServedSchema;
  /** Live subscriptions one connection may hold. Default: `defaults.maxSubscriptionsPerConnection`. */
  maxSubscriptionsPerConnection?: number;
  /** told what each stream does with the results offered to it (metrics) */
  observer?: LiveObserver;
  /** traces each update a stream pushes (telemetry/tracing.ts); undefined when tracing is off */
  tracer?: LiveTracer;
}

/**
 * Traces live updates. `stream` is called as a stream starts, in its
 * operation's trace context, and returns what the stream tells of each
 * update it pushes (or undefined for a stream it does not trace).
 */
export interface LiveTracer {
  stream(args: ExecutionArgs): PushTracer | undefined;
}

export interface PushTracer {
  /** a result went to the transport; the event behind it arrived at `eventAt` (performance.now()) */
  pushed(eventAt: number): void;
}

/** Hears what streams do with results: hand them to the transport, or replace or drop them unsent. */
export interface LiveObserver {
  /** a result handed to the transport; `latencyMs` since the event behind it, when one is */
  pushed(latencyMs: number | undefined): void;
  /** a newer state replaced one the consumer had not pulled yet */
  coalesced(): void;
  /** a state the consumer had not pulled was discarded: the result went back to what it has, or the stream ended */
  dropped(): void;
}

/** A result as delivered: serialized once, shared by every stream of a LiveQuery. */
interface LiveState {
  result: ExecutionResult;
  json: string;
  /** patches from earlier states to this one, computed and serialized once for all patch streams (see LiveStream.payload) */
  patchesFrom?: Map<LiveState, { ops: PatchOperation[]; json: string }>;
}

/** One payload for a consumer: the result and its JSON. */
export interface LivePayload {
  value: ExecutionResult;
  json: string;
  /**
   * The same object in every subscriber's payload of one state (full results
   * only): what a transport makes of the payload, such as its frame, can be
   * cached by it.
   */
  cacheKey?: object;
}

/** How a stream sends updates: whole results, or JSON Patch from the previous result (`@live`). */
export type LiveMode = 'full' | 'patch';

/** One client's stream of a LiveQuery: an async iterator that always yields the newest state. */
export class LiveStream implements AsyncIterableIterator<ExecutionResult> {
  /**
   * Whether this stream's own access was checked. The stream that starts a
   * LiveQuery is checked by its executions; one that joins is checked before
   * it receives anything, also when it joins before the first result (then
   * against what that first run read).
   */
  access: 'unchecked' | 'checking' | 'checked' = 'unchecked';
  /** the last state handed to the consumer */
  private delivered: LiveState | undefined;
  /** a newer state the consumer has not asked for yet */
  private undelivered: LiveState | undefined;
  private final: ExecutionResult | undefined;
  private ending = false;
  private closed = false;
  private wake: (() => void) | undefined;
  private revision = 0;
  /** called once when the stream closes, whoever closes it */
  onClose: () => void = () => undefined;
  /** called when `take` has something new: see `notifyWhenAvailable` */
  private onAvailable: (() => void) | undefined;
  /** told when `onAvailable` throws (the engine logs it) */
  onAvailableFailed: (e: unknown) => void = () => undefined;
  observer: LiveObserver | undefined;
  tracer: PushTracer | undefined;
  /** when the earliest event behind the undelivered state arrived (performance.now()) */
  private undeliveredEventAt: number | undefined;

  constructor(
    readonly conn: Connection,
    readonly mode: LiveMode,
    /** the operation reads a per-connection (`{cid}`) resource: shared only within its connection */
    readonly perConnection: boolean,
  ) {}

  /** Offers a new state; dropped when the stream already has (or is about to get) the same result. */
  offer(state: LiveState, eventAt?: number): void {
    if (this.ending || this.closed) return;
    if ((this.undelivered ?? this.delivered)?.json === state.json) return;
    if (this.delivered?.json === state.json) {
      // back to what the consumer has (A → B → A before it pulled B): nothing to send
      if (this.undelivered) this.observer?.dropped();
      this.undelivered = undefined;
      this.undeliveredEventAt = undefined;
      return;
    }
    if (this.undelivered) this.observer?.coalesced();
    // a state that replaces an undelivered one answers the earliest event still waiting too
    const earlier = this.undelivered ? this.undeliveredEventAt : undefined;
    this.undeliveredEventAt = earlier === undefined ? eventAt : eventAt === undefined ? earlier : Math.min(earlier, eventAt);
    this.undelivered = state;
    this.wakeUp();
  }

  /** Ends the stream, after a final result if given (an error that ends it). */
  end(final?: ExecutionResult): void {
    if (this.ending || this.closed) return;
    this.ending = true;
    if (this.undelivered) this.observer?.dropped();
    this.undelivered = undefined;
    this.final = final;
    this.wakeUp();
  }

  /**
   * What the consumer gets now, without waiting: the next payload (with its
   * JSON, serialized once and shared when the payload is a shared state),
   * `'done'` once the stream has ended, or undefined when nothing is new.
   * A transport that writes to sockets calls this whenever the socket can
   * take a frame, so a slow socket skips states instead of queuing them.
   */
  take(): LivePayload | 'done' | undefined {
    if (this.undelivered) {
      const state = this.undelivered;
      this.undelivered = undefined;
      const payload = this.payload(state);
      this.delivered = state;
      const eventAt = this.undeliveredEventAt;
      this.undeliveredEventAt = undefined;
      this.observer?.pushed(eventAt === undefined ? undefined : performance.now() - eventAt);
      // an update caused by an event; the first result and a joiner's copy answer none
      if (this.tracer && eventAt !== undefined) this.tracer.pushed(eventAt);
      return payload;
    }
    if (this.ending && this.final) {
      const value = this.final;
      this.final = undefined;
      this.observer?.pushed(undefined);
      return { value, json: JSON.stringify(value) };
    }
    if (this.ending || this.closed) {
      this.close();
      return 'done';
    }
    return undefined;
  }

  async next(): Promise<IteratorResult<ExecutionResult>> {
    for (;;) {
      const t = this.take();
      if (t === 'done') return { value: undefined, done: true };
      if (t) return { value: t.value, done: false };
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  async return(): Promise<IteratorResult<ExecutionResult>> {
    this.close();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.ending = true;
    if (this.undelivered) this.observer?.dropped();
    this.undelivered = undefined;
    this.wakeUp();
    this.onClose();
  }

  /**
   * Calls `pull` whenever `take` has something new, until `stopNotifying`:
   * for transports that pull without awaiting. It runs inside the engine's
   * run; what it throws is logged, and the stream goes on.
   */
  notifyWhenAvailable(pull: () => void): void {
    this.onAvailable = pull;
  }

  /** The transport takes no more from this stream. */
  stopNotifying(): void {
    this.onAvailable = undefined;
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
    try {
      this.onAvailable?.();
    } catch (e) {
      // the transport's callback runs inside the engine's run (a microtask, a
      // NATS callback): its failure must stay with this stream
      this.onAvailableFailed(e);
    }
  }

  /**
   * The payload for a state: the result itself, or for a patch stream the
   * first result with `revision: 1` and then `{patch, revision}` from what
   * this stream last delivered (the format @n1ru4l/graphql-live-query-patch
   * applies on the client).
   */
  private payload(state: LiveState): LivePayload {
    if (this.mode === 'full') return { value: state.result, json: state.json, cacheKey: state };
    const from = this.delivered;
    this.revision++;
    if (!from || this.revision === 1) {
      const value = { ...state.result, revision: 1 } as ExecutionResult;
      return { value, json: JSON.stringify(value) };
    }
    state.patchesFrom ??= new Map();
    let patch = state.patchesFrom.get(from);
    if (!patch) {
      const ops = diff(from.result.data ?? null, state.result.data ?? null);
      patch = { ops, json: JSON.stringify(ops) };
      state.patchesFrom.set(from, patch);
    }
    const value: Record<string, unknown> = { patch: patch.ops, revision: this.revision };
    let json = `{"patch":${patch.json},"revision":${this.revision}`;
    if (state.result.errors) {
      value.errors = state.result.errors;
      json += `,"errors":${JSON.stringify(state.result.errors)}`;
    }
    return { value: value as ExecutionResult, json: json + '}' };
  }
}

/** What one execution of a LiveQuery read, and the event it answers. */
interface Run {
  lease: Lease;
  accessed: Set<string>;
  roots: Set<string>;
  /** when the earliest event it reflects arrived (performance.now()) */
  eventAt: number | undefined;
  /** the connection whose verdicts it used, and how often they had changed when it started */
  conn: Connection;
  accessChangesAtStart: number;
}

/** Root errors that end a live result: the resource is gone, or the client may no longer see it. */
const terminalCodes = new Set<string>([ErrorCode.notFound, ErrorCode.accessDenied]);

/** A distinct live operation: one execution and one serialization per change, for all its subscribers. */
class LiveQuery {
  readonly subscribers = new Set<LiveStream>();
  /** the last finished run's lease: it holds and hears what that run read */
  private lease: Lease | undefined;
  /** rids whose access was checked in the last run: roots and soft references */
  accessed = new Set<string>();
  /** the root rids of the last run: their deletion or lost access ends the stream */
  roots = new Set<string>();
  last: LiveState | undefined;
  private running: Promise<void> | undefined;
  private dirty = false;
  private scheduled = false;
  disposed = false;
  /** when the earliest event not yet reflected in a run arrived (performance.now()), for push latency */
  private eventAt: number | undefined;

  constructor(
    readonly key: string,
    private readonly engine: LiveEngine,
    /** what runs: the operation as a query, on the schema it last validated against (a reload moves it to the new one) */
    public args: ExecutionArgs,
    /** the document as the client sent it (a subscription, or a `@live` query), which a reload validates again */
    readonly source: DocumentNode,
    /** the connection whose identity runs the query (any subscriber's: they share one token) */
    public conn: Connection,
  ) {}

  /** every run's lease tells entryChanged: one listener for the query's life */
  private readonly heard: LeaseListener = (entry, change, eventAt) => this.entryChanged(entry, change, eventAt);

  /**
   * The query's reaction to a change of a resource it read, heard by the
   * last run's lease or by the lease of a run in flight (which may have
   * read the resource before it changed: its result is then followed by
   * one more run, see `run`).
   */
  entryChanged(entry: CacheEntry, change: EntryChange, eventAt: number): void {
    if (this.disposed) return;
    if (change.type === 'delete' && this.roots.has(entry.rid)) {
      // the resource the client asked for is gone: end the stream rather than ask the service again
      const gone = errorResult(ErrorCode.notFound, 'Not found');
      for (const sub of [...this.subscribers]) sub.end(gone);
      return;
    }
    this.eventAt ??= eventAt;
    this.schedule();
  }

  /**
   * Runs again soon. nats.js hands over every message of one socket read in
   * one synchronous loop, so a microtask runs after all the events that
   * arrived together: they make one run, without waiting for the next turn
   * of the event loop.
   */
  schedule(): void {
    if (this.scheduled || this.disposed) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.guarded(() => this.run());
    });
  }

  /**
   * Runs work that no caller waits for (a microtask, a promise's callback):
   * a throw there would end the process, so it is logged instead, and the
   * subscribers keep their last result until the next change runs again.
   */
  private guarded(work: () => void): void {
    try {
      work();
    } catch (e) {
      this.engine.log.error('live query run failed', { error: errorText(e) });
    }
  }

  /**
   * Runs the operation. A run served from the cache finishes synchronously,
   * without a promise; one that waits for the service is followed by one
   * more run if changes arrived meanwhile: its own lease hears a change to
   * what it read already, so a resource that changed after the run read it
   * is read again.
   */
  run(): void {
    if (this.running) {
      this.dirty = true;
      return;
    }
    const waiting = this.start();
    if (!waiting) return;
    this.running = waiting.finally(() => {
      this.running = undefined;
      if (this.dirty && !this.disposed) {
        this.dirty = false;
        this.schedule();
      }
    });
  }

  /** Executes; finishes at once when the execution is synchronous, else returns the promise of finishing. */
  private start(): Promise<void> | undefined {
    const lease = this.engine.cache.newLease(this.heard);
    const accessed = new Set<string>();
    const roots = new Set<string>();
    const contextValue: GatewayContext = { ...(this.args.contextValue as GatewayContext), conn: this.conn, lease, accessed, roots };
    const run: Run = {
      lease,
      accessed,
      roots,
      eventAt: this.eventAt,
      conn: this.conn,
      accessChangesAtStart: this.conn.accessChanges,
    };
    this.eventAt = undefined;
    this.engine.executions++;
    let result: ExecutionResult | Promise<ExecutionResult>;
    try {
      result = runOperation({ ...this.args, contextValue });
    } catch (e) {
      result = this.failed(e);
    }
    if (!(result instanceof Promise)) {
      this.finish(result, run);
      return undefined;
    }
    return result.catch((e: unknown) => this.failed(e)).then((r) => this.guarded(() => this.finish(r, run)));
  }

  private failed(e: unknown): ExecutionResult {
    this.engine.log.error('live query execution failed', { error: errorText(e) });
    return { errors: [internalGraphQLError()] };
  }

  /** Takes a run's dependencies and hands its result, serialized once, to every subscriber. */
  private finish(result: ExecutionResult, run: Run): void {
    const { lease, eventAt } = run;
    if (this.disposed) {
      lease.release();
      return;
    }
    // hold the new dependency set before letting go of the old one, so shared entries are never evicted
    this.lease?.release();
    this.lease = lease;
    this.accessed = run.accessed;
    this.roots = run.roots;
    if (run.conn.accessChanges !== run.accessChangesAtStart) {
      // the token changed or verdicts were dropped while the run waited for
      // the service: it may have used a stale verdict, so it shows nothing;
      // a new run asks again
      this.eventAt ??= eventAt;
      this.schedule();
      return;
    }
    const json = JSON.stringify(result);
    if (this.last?.json === json) return;
    const state: LiveState = { result, json };
    this.last = state;
    const terminal = terminalError(result);
    for (const sub of [...this.subscribers]) {
      if (sub.access !== 'checked') {
        // joined before this first result: its access check comes first
        if (sub.access === 'unchecked') this.engine.joinInBackground(sub, this);
      } else if (terminal) sub.end(result);
      else sub.offer(state, eventAt);
    }
  }

  dispose(): void {
    this.disposed = true;
    this.lease?.release();
    this.lease = undefined;
  }
}

/** The first error on a root field whose code ends a live result, if any. */
function terminalError(result: ExecutionResult): GraphQLError | undefined {
  return result.errors?.find(
    (e) => e.path?.length === 1 && terminalCodes.has(String(e.extensions?.code)),
  ) as GraphQLError | undefined;
}

function errorResult(code: string, message: string): ExecutionResult {
  return { errors: [new GraphQLError(message, { extensions: { code } })] };
}

/**
 * What keeps an operation from running on a schema: the client's document
 * validated, and for a subscription also the query form that runs
 * (asQuery, which shares every other definition with the document).
 */
function validationProblems(schema: GraphQLSchema, source: DocumentNode, runs: DocumentNode = source): string[] {
  const problems = validate(schema, source).map((e) => e.message);
  const rewritten = runs.definitions.some((d, i) => d !== source.definitions[i]);
  if (problems.length === 0 && rewritten) problems.push(...validate(schema, runs).map((e) => e.message));
  return problems;
}

function schemaChangedResult(problems: string[]): ExecutionResult {
  return errorResult(ErrorCode.schemaChanged, `The operation no longer validates against the reloaded schema: ${problems.join(' ')}`);
}

/** How a schema reload went for the streams (live results and `@event` streams): how many go on, how many end. */
export interface SchemaSwitch {
  continued: number;
  ended: number;
}

/**
 * An `@event` stream as graphql-js runs it, which a schema reload may end
 * with a final result: a `next` waiting for the next event gets that result
 * instead, and then the stream is done.
 */
class SchemaBoundStream implements AsyncIterableIterator<ExecutionResult> {
  private ended = false;
  private final: ExecutionResult | undefined;

  constructor(
    private readonly source: AsyncIterator<ExecutionResult>,
    readonly document: DocumentNode,
    private readonly untrack: (s: SchemaBoundStream) => void,
    private readonly log: Logger,
  ) {}

  async next(): Promise<IteratorResult<ExecutionResult>> {
    if (!this.ended) {
      const r = await this.source.next();
      if (!this.ended) {
        if (r.done) this.untrack(this);
        return r;
      }
    }
    const value = this.final;
    this.final = undefined;
    return value ? { value, done: false } : { value: undefined, done: true };
  }

  async return(): Promise<IteratorResult<ExecutionResult>> {
    this.ended = true;
    this.final = undefined;
    this.untrack(this);
    await this.source.return?.();
    return { value: undefined, done: true };
  }

  /** Ends the stream after `final`; the source stops (its pending `next` settles as done). */
  end(final: ExecutionResult): void {
    if (this.ended) return;
    this.ended = true;
    this.final = final;
    this.untrack(this);
    this.source.return?.().catch((e: unknown) => this.log.error('ending an event stream failed', { error: errorText(e) }));
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

export class LiveEngine {
  readonly cache: ResourceCache;
  readonly log: Logger;
  private readonly access: AccessChecker;
  private readonly served: ServedSchema;
  private readonly maxPerConnection: number;
  private readonly observer: LiveObserver | undefined;
  private readonly tracer: LiveTracer | undefined;
  private readonly queries = new Map<string, LiveQuery>();
  private readonly eventStreams = new Set<SchemaBoundStream>();
  private readonly byConnection = new Map<Connection, Map<LiveStream, LiveQuery>>();
  /** per connection with live results: the unsubscribe of its access listener */
  private readonly stopRechecking = new Map<Connection, () => void>();
  /** executions run, for tests and metrics */
  executions = 0;

  constructor(opts: LiveEngineOptions) {
    this.cache = opts.cache;
    this.access = opts.access;
    this.log = opts.logger;
    this.served = opts.served;
    this.maxPerConnection = opts.maxSubscriptionsPerConnection ?? defaults.maxSubscriptionsPerConnection;
    this.observer = opts.observer;
    this.tracer = opts.tracer;
  }

  get stats(): { liveQueries: number; subscribers: number } {
    let subscribers = 0;
    for (const q of this.queries.values()) subscribers += q.subscribers.size;
    return { liveQueries: this.queries.size, subscribers };
  }

  /**
   * Streams the live result of a query-shaped operation (a subscription to
   * mirrored fields is run as the query of the same fields): full results,
   * or JSON Patches after the first (`mode: 'patch'`, for `@live`).
   */
  subscribe(args: ExecutionArgs, opts: { perConnection?: boolean; mode?: LiveMode } = {}): LiveStream {
    const conn = (args.contextValue as GatewayContext).conn;
    const stream = new LiveStream(conn, opts.mode ?? 'full', opts.perConnection ?? false);
    stream.observer = this.observer;
    stream.tracer = this.tracer?.stream(args);
    stream.onAvailableFailed = (e) => this.log.error('sending a live result failed', { error: errorText(e) });
    const subs = this.byConnection.get(conn);
    if (subs && subs.size >= this.maxPerConnection) {
      stream.end(errorResult(ErrorCode.limitExceeded, `A connection may hold at most ${this.maxPerConnection} live subscriptions`));
      return stream;
    }
    const runs = { ...args, document: asQuery(args.document, args.operationName) };
    if (!this.served.isCurrent(args.schema)) {
      // validated against a schema a reload has replaced since (Yoga's path
      // authenticates between validation and execution): checked again
      const schema = this.served.current.schema;
      const problems = validationProblems(schema, args.document, runs.document);
      if (problems.length > 0) {
        stream.end(schemaChangedResult(problems));
        return stream;
      }
      runs.schema = schema;
    }
    stream.onClose = () => this.detach(stream);
    this.attach(stream, runs, args.document);
    return stream;
  }

  /**
   * An `@event` stream, as graphql-js's subscribe returned it, followed
   * across schema reloads (see switchSchema). `document` is the operation it
   * was validated as.
   */
  followEventStream(document: DocumentNode, stream: AsyncIterable<ExecutionResult>): AsyncIterableIterator<ExecutionResult> {
    const followed = new SchemaBoundStream(stream[Symbol.asyncIterator](), document, (s) => this.eventStreams.delete(s), this.log);
    this.eventStreams.add(followed);
    return followed;
  }

  /**
   * The schema was reloaded. A live operation whose document still
   * validates against the new schema runs on it from now on, starting with
   * a run at once: its subscribers see a new result only if the new schema
   * changes it (an equal one is not sent again). One that no longer
   * validates ends each of its streams with `system.schemaChanged`, naming
   * the validation errors. An `@event` stream is kept or ended alike; one
   * that is kept goes on listening to the event it was started for.
   */
  switchSchema(schema: GraphQLSchema): SchemaSwitch {
    const outcome: SchemaSwitch = { continued: 0, ended: 0 };
    // parsed documents are shared: streams of one document with other variables or tokens are validated once
    const verdicts = new Map<DocumentNode, string[]>();
    const problemsOf = (source: DocumentNode, runs: DocumentNode = source) => {
      let problems = verdicts.get(runs);
      if (!problems) verdicts.set(runs, (problems = validationProblems(schema, source, runs)));
      return problems;
    };
    for (const s of [...this.eventStreams]) {
      const problems = problemsOf(s.document);
      if (problems.length === 0) {
        outcome.continued++;
        continue;
      }
      outcome.ended++;
      s.end(schemaChangedResult(problems));
    }
    for (const q of [...this.queries.values()]) {
      const problems = problemsOf(q.source, q.args.document);
      if (problems.length === 0) {
        q.args = { ...q.args, schema };
        outcome.continued += q.subscribers.size;
        q.schedule();
        continue;
      }
      outcome.ended += q.subscribers.size;
      // out of the map at once: a later subscribe of the same key starts afresh on the new schema
      this.queries.delete(q.key);
      q.dispose();
      const ended = schemaChangedResult(problems);
      for (const sub of [...q.subscribers]) sub.end(ended);
      // nothing may move an ended stream to another query (see recheck)
      q.subscribers.clear();
    }
    return outcome;
  }

  private keyOf(args: ExecutionArgs, sub: LiveStream): string {
    return JSON.stringify([
      printed(args.document),
      args.operationName ?? null,
      args.variableValues ?? null,
      sub.conn.token ?? null,
      sub.perConnection ? sub.conn.cid : null,
    ]);
  }

  private attach(sub: LiveStream, args: ExecutionArgs, source: DocumentNode): void {
    const key = this.keyOf(args, sub);
    let q = this.queries.get(key);
    const joining = q !== undefined;
    if (!q) {
      q = new LiveQuery(key, this, args, source, sub.conn);
      this.queries.set(key, q);
    }
    q.subscribers.add(sub);
    sub.access = joining ? 'unchecked' : 'checked';
    let subs = this.byConnection.get(sub.conn);
    if (!subs) {
      subs = new Map();
      this.byConnection.set(sub.conn, subs);
      const conn = sub.conn;
      this.stopRechecking.set(conn, conn.onAccessChanged(() => this.accessChanged(conn)));
    }
    subs.set(sub, q);
    if (!joining) {
      q.run();
    } else if (q.last) {
      this.joinInBackground(sub, q);
    }
  }

  /** joinWithLast, from a caller that does not wait for it: a failure is logged. */
  joinInBackground(sub: LiveStream, q: LiveQuery): void {
    this.joinWithLast(sub, q).catch((e: unknown) => this.log.error('joining a live query failed', { error: errorText(e) }));
  }

  /** A subscriber joining a running LiveQuery gets its current result, after its own access check. */
  async joinWithLast(sub: LiveStream, q: LiveQuery): Promise<void> {
    sub.access = 'checking';
    if (!(await this.mayStillSee(sub, q))) return;
    if (sub.access !== 'checking') return; // moved to another LiveQuery meanwhile
    sub.access = 'checked';
    const last = q.last;
    if (!last || !q.subscribers.has(sub)) return;
    if (terminalError(last.result)) sub.end(last.result);
    else sub.offer(last);
  }

  private detach(sub: LiveStream): void {
    const subs = this.byConnection.get(sub.conn);
    const q = subs?.get(sub);
    if (!subs || !q) return;
    subs.delete(sub);
    if (subs.size === 0) {
      this.byConnection.delete(sub.conn);
      this.stopRechecking.get(sub.conn)?.();
      this.stopRechecking.delete(sub.conn);
    }
    q.subscribers.delete(sub);
    if (q.subscribers.size === 0) {
      q.dispose();
      // a query a schema reload ended has left the map already, perhaps for a new one of its key
      if (this.queries.get(q.key) === q) this.queries.delete(q.key);
    } else if (q.conn === sub.conn) {
      q.conn = q.subscribers.values().next().value!.conn;
    }
  }

  /**
   * Checks a subscriber's access to the roots its query read; ends it with
   * system.accessDenied when denied, or with the access handler's error when
   * it gave no verdict (as Resgate unsubscribes with that error): nothing
   * more reaches a client whose access is unknown. A denied soft reference
   * is an error on its field only, which a run shows (see recheck).
   */
  private async mayStillSee(sub: LiveStream, q: LiveQuery): Promise<boolean> {
    for (const rid of q.roots) {
      const denial = await this.access.getDenial(sub.conn, rid);
      if (denial) {
        sub.end({ errors: [toGraphQLError(denial)] });
        return false;
      }
    }
    return true;
  }

  /**
   * A connection's token changed or some of its verdicts were dropped
   * (reaccess, system.reset): re-check each of its live results; a changed
   * token moves a stream to the LiveQuery of its new identity.
   */
  private accessChanged(conn: Connection): void {
    const subs = this.byConnection.get(conn);
    if (!subs) return;
    for (const [sub, q] of subs) {
      this.recheck(sub, q).catch((e: unknown) => this.log.error('re-checking access failed', { error: errorText(e) }));
    }
  }

  private async recheck(sub: LiveStream, q: LiveQuery): Promise<void> {
    if (!(await this.mayStillSee(sub, q))) return;
    if (!q.subscribers.has(sub)) return;
    if (q.key === this.keyOf(q.args, sub)) {
      // a soft reference's verdict may have changed either way: a run shows it on its field
      if (q.accessed.size > q.roots.size) q.schedule();
      return;
    }
    // same stream, new identity: move it to the LiveQuery of the new token
    this.detach(sub);
    this.attach(sub, q.args, q.source);
  }
}

const printedDocuments = new WeakMap<DocumentNode, string>();

/** A document's text, printed once: parsed documents are cached and shared, so one print serves every subscribe. */
function printed(document: DocumentNode): string {
  let text = printedDocuments.get(document);
  if (text === undefined) {
    text = print(document);
    printedDocuments.set(document, text);
  }
  return text;
}

const queryDocuments = new WeakMap<DocumentNode, Map<string, DocumentNode>>();

/**
 * The same operation as a query: mirrored Subscription fields exist on Query
 * with the same arguments. Made once per parsed document, so identical
 * subscriptions share one document (and one printed key).
 */
function asQuery(document: DocumentNode, operationName?: string | null): DocumentNode {
  let byName = queryDocuments.get(document);
  if (!byName) {
    byName = new Map();
    queryDocuments.set(document, byName);
  }
  const name = operationName ?? '';
  let query = byName.get(name);
  if (!query) {
    query = {
      ...document,
      definitions: document.definitions.map((d) =>
        d.kind === 'OperationDefinition' && d.operation === 'subscription' && (!operationName || d.name?.value === operationName)
          ? ({ ...d, operation: 'query' } as OperationDefinitionNode)
          : d,
      ),
    };
    byName.set(name, query);
  }
  return query;
}
