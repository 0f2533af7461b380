/**
 * A LiveQuery owns one distinct live operation (same document, variables
 * and token): its runs (one at a time; the changes that arrive together are
 * coalesced into one run in a microtask), the lease of its last run, which
 * holds and hears every rid that run read, and its last state, serialized
 * once and offered to all its subscribers. A change reaches it in one
 * place, `entryChanged`; the changes that arrive together are applied to
 * the last state when they can be (incremental.ts: the fields that show
 * them rewritten, no run), else they make one run. A root's delete ends its streams with
 * `system.notFound`; a root error that ends a live result ends them too.
 * Who subscribes, and their access, is the registry's (engine.ts).
 */
import { GraphQLError, type ExecutionArgs, type ExecutionResult, type DocumentNode } from 'graphql';
import type { Connection } from '../access/access.js';
import type { CacheEntry, EntryChange, Lease, LeaseListener, ResourceCache } from '../cache/cache.js';
import { errorText, type Logger } from '../log.js';
import { ErrorCode } from '../res/protocol.js';
import { run as runOperation } from '../resolvers/compiled.js';
import { internalGraphQLError, type GatewayContext } from '../resolvers/resolvers.js';
import { applyChanges, ResultReads, type ChangesOutcome, type HeardChange, type SubtreeRunner } from './incremental.js';
import { runSubtree } from './subtree.js';
import { LiveState, type LiveObserver, type LiveStream } from './stream.js';

/** What a LiveQuery needs from the registry that made it (engine.ts). */
export interface LiveQueryHost {
  readonly cache: ResourceCache;
  readonly log: Logger;
  /** executions run, for tests and metrics */
  executions: number;
  /** gives a subscriber that joined before the first result that result, after its own access check */
  joinInBackground(sub: LiveStream, q: LiveQuery): void;
  /** told how changes were taken: applied to the last result, or left to a run (metrics) */
  readonly observer: LiveObserver | undefined;
}

/** What one execution of a LiveQuery read, and the event it answers. */
interface Run {
  lease: Lease;
  accessed: Set<string>;
  roots: Set<string>;
  reads: ResultReads;
  /** when the earliest event it reflects arrived (performance.now()) */
  eventAt: number | undefined;
  /** the connection whose verdicts it used, and how often they had changed when it started */
  conn: Connection;
  accessChangesAtStart: number;
}

/** Root errors that end a live result: the resource is gone, or the client may no longer see it. */
const terminalCodes = new Set<string>([ErrorCode.notFound, ErrorCode.accessDenied]);

/** A distinct live operation: one execution and one serialization per change, for all its subscribers. */
export class LiveQuery {
  readonly subscribers = new Set<LiveStream>();
  /** the last finished run's lease: it holds and hears what that run read */
  private lease: Lease | undefined;
  /** rids whose access was checked in the last run: roots and soft references */
  accessed = new Set<string>();
  /** the root rids of the last run: their deletion or lost access ends the stream */
  roots = new Set<string>();
  last: LiveState | undefined;
  /** where the last state's result shows what its run read (incremental.ts); a run whose equal result was not sent replaces it */
  private reads: ResultReads | undefined;
  private running: Promise<void> | undefined;
  private dirty = false;
  private scheduled = false;
  disposed = false;
  /** when the earliest event not yet reflected in a run arrived (performance.now()), for push latency */
  private eventAt: number | undefined;
  /** changes heard since the last state, to apply to it; undefined once the next update must run the operation */
  private heardChanges: HeardChange[] | undefined;
  /** the next update runs the operation (a change it cannot apply, a re-check, a reload, a change during a run) */
  private mustRun = false;
  /** the connection whose verdicts the last state's run used, and how often they had changed when it started */
  private verdictsOf: { conn: Connection; changes: number } | undefined;

  constructor(
    readonly key: string,
    private readonly engine: LiveQueryHost,
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
    // a change heard during a run, or before the first result, is in no state to apply it to
    if (this.mustRun || this.running || !this.reads) this.mustRun = true;
    else (this.heardChanges ??= []).push({ entry, change });
    this.update();
  }

  /** Runs the operation again soon (not from the changes heard). */
  schedule(): void {
    this.mustRun = true;
    this.update();
  }

  /**
   * Updates soon. nats.js hands over every message of one socket read in
   * one synchronous loop, so a microtask runs after all the events that
   * arrived together: they make one update, without waiting for the next
   * turn of the event loop.
   */
  private update(): void {
    if (this.scheduled || this.disposed) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.guarded(() => this.updateNow());
    });
  }

  /**
   * Applies the changes heard, else runs. An update that completes a new
   * subtree from the service is in flight as a run would be: the changes
   * heard meanwhile make one run after it.
   */
  private updateNow(): void {
    const applied = this.applyHeard();
    if (applied === false) return this.run();
    if (applied === true) return;
    this.running = applied.then((ok) => {
      this.running = undefined;
      if (this.disposed) return;
      if (!ok || this.dirty) {
        this.dirty = false;
        this.schedule();
      }
    });
  }

  /**
   * Applies the changes heard to the last state (incremental.ts); false when
   * the operation must run instead, a promise of that when a subtree waits
   * for the service.
   */
  private applyHeard(): boolean | Promise<boolean> {
    const heard = this.heardChanges;
    const last = this.last;
    const reads = this.reads;
    this.heardChanges = undefined;
    if (this.mustRun || this.running || !heard || !last || !reads) return false;
    if (!this.verdictsHold()) {
      // verdicts were dropped since the last run (a reaccess, a reset, a new
      // token): only a run asks them again, so nothing is shown before it
      this.engine.observer?.incremental('fallback', 'access');
      return false;
    }
    const eventAt = this.eventAt;
    this.eventAt = undefined;
    const leases: Lease[] = [];
    const applied = applyChanges(last.result, reads, heard, this.subtreeRunner(leases));
    if (!(applied instanceof Promise)) return this.take(applied, last, eventAt, leases);
    return applied.then((a) => {
      // the verdicts the subtree's access checks used may have been dropped while it waited
      const outcome = !this.disposed && !this.verdictsHold() ? 'access' : a;
      try {
        return this.take(outcome, last, eventAt, leases);
      } catch (e) {
        this.engine.log.error('live query update failed', { error: errorText(e) });
        for (const lease of leases) lease.release();
        return false;
      }
    });
  }

  /** Whether the verdicts the last run used still stand. */
  private verdictsHold(): boolean {
    return this.verdictsOf?.conn === this.conn && this.conn.accessChanges === this.verdictsOf.changes;
  }

  /**
   * Completes subtrees for an update with the query's identity (subtree.ts),
   * each holding what it reads through a lease of its own (in `leases`),
   * which hears its changes as the query's would: the update hands them to
   * the query's lease when it is taken, and lets them go when it is not (or
   * when the query ended meanwhile).
   */
  private subtreeRunner(leases: Lease[]): SubtreeRunner {
    return (field, type, resolve) => {
      const lease = this.engine.cache.newLease(this.heard);
      leases.push(lease);
      const ctx: GatewayContext = {
        ...(this.args.contextValue as GatewayContext),
        conn: this.conn,
        lease,
        accessed: this.accessed,
        roots: new Set(),
      };
      return runSubtree(field, type, resolve, ctx, this.args.variableValues);
    };
  }

  /** Offers the state the changes made, if they made one; false when they are left to a run. `leases`: its subtrees'. */
  private take(applied: ChangesOutcome, last: LiveState, eventAt: number | undefined, leases: Lease[]): boolean {
    const taken = !this.disposed && typeof applied !== 'string';
    for (const lease of leases) {
      if (taken) lease.handOver(this.lease!);
      else lease.release();
    }
    if (this.disposed) return true;
    if (typeof applied === 'string') {
      this.engine.observer?.incremental('fallback', applied);
      // the run reflects these events: their arrival is its latency's start
      if (eventAt !== undefined) this.eventAt = Math.min(eventAt, this.eventAt ?? eventAt);
      return false;
    }
    this.engine.observer?.incremental('applied');
    // what a removed item showed, and nothing else shows, is no longer held (as a run would have left it)
    for (const entry of applied.unshown) this.lease?.drop(entry.rid);
    if (applied.ops.length === 0) return true; // nothing the result shows changed
    const state = new LiveState(applied.result, undefined, { state: last, ops: applied.ops });
    last.from = undefined;
    this.last = state;
    for (const sub of [...this.subscribers]) if (sub.access === 'checked') sub.offer(state, eventAt);
    return true;
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
    this.mustRun = false;
    this.heardChanges = undefined;
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
    const reads = new ResultReads();
    const contextValue: GatewayContext = { ...(this.args.contextValue as GatewayContext), conn: this.conn, lease, accessed, roots, reads };
    const run: Run = {
      lease,
      accessed,
      roots,
      reads,
      eventAt: this.eventAt,
      conn: this.conn,
      accessChangesAtStart: this.conn.accessChanges,
    };
    this.eventAt = undefined;
    this.engine.executions++;
    let result: ExecutionResult | Promise<ExecutionResult>;
    try {
      result = runOperation({ ...this.args, contextValue }, { repeats: true });
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
    this.verdictsOf = { conn: run.conn, changes: run.accessChangesAtStart };
    // also for a result equal to the last one: it may come from other resources (a reference moved to an equal model)
    this.reads = run.reads;
    if (this.last?.json === json) return;
    const state = new LiveState(result, json);
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
export function terminalError(result: ExecutionResult): GraphQLError | undefined {
  return result.errors?.find(
    (e) => e.path?.length === 1 && terminalCodes.has(String(e.extensions?.code)),
  ) as GraphQLError | undefined;
}

export function errorResult(code: string, message: string): ExecutionResult {
  return { errors: [new GraphQLError(message, { extensions: { code } })] };
}
