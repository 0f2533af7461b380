/**
 * A LiveStream owns one client's view of a live result: the state it last
 * handed its consumer, the newer one waiting, and how it ends. A live result
 * is a state, not an event log: a stream hands its consumer the newest state
 * each time it asks, so a consumer slower than the changes skips
 * intermediate states but always ends at the latest one. It does not know
 * transports: a stream is an async iterable of ExecutionResults, consumed by
 * graphql-ws, SSE or a test alike, or pulled with `take` by a transport that
 * writes to sockets. It runs nothing; its LiveQuery offers it states.
 */
import type { ExecutionResult } from 'graphql';
import type { Connection } from '../access/access.js';
import { jsonEqual } from '../res/protocol.js';
import type { FallbackReason } from './incremental.js';
import { diff, type PatchOperation } from './patch.js';

/** What a traced stream tells of each update it pushes (see LiveTracer in engine.ts). */
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
  /** changes heard by a live result were applied to its last result, or left to a run of the operation (incremental.ts) */
  incremental(outcome: 'applied' | 'fallback', reason?: FallbackReason): void;
}

/**
 * A result as delivered, shared by every stream of a LiveQuery: serialized
 * at most once, when a stream needs its JSON (a state made by applying a
 * change to the one before, for patch streams only, may never be).
 */
export class LiveState {
  private serialized: string | undefined;
  /** patches from earlier states to this one, computed and serialized once for all patch streams (see LiveStream.payload) */
  patchesFrom?: Map<LiveState, { ops: PatchOperation[]; json: string }>;

  constructor(
    readonly result: ExecutionResult,
    json?: string,
    /**
     * the state this one was made from by applying changes, with the patch
     * that did it (never empty); forgotten once a newer state is made from
     * this one, so that a chain of updates does not keep every old result
     */
    public from?: { state: LiveState; ops: PatchOperation[] },
  ) {
    this.serialized = json;
  }

  get json(): string {
    return (this.serialized ??= JSON.stringify(this.result));
  }

  /** Whether both show the same result, serializing only when neither comparison by derivation nor by data settles it. */
  sameAs(other: LiveState): boolean {
    if (other === this) return true;
    if (this.from?.state === other || other.from?.state === this) return false;
    if ((this.serialized !== undefined && other.serialized !== undefined) || this.result.errors || other.result.errors) return this.json === other.json;
    return jsonEqual(this.result.data, other.result.data);
  }
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
    if ((this.undelivered ?? this.delivered)?.sameAs(state)) return;
    if (this.delivered?.sameAs(state)) {
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
      const ops = state.from?.state === from ? state.from.ops : diff(from.result.data ?? null, state.result.data ?? null);
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
