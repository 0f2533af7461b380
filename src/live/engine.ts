/**
 * The live engine is the registry of live results: a subscription to a
 * mirrored `@get` field (or a `@live` query) becomes a LiveStream of the
 * LiveQuery for its operation; identical operations (same document,
 * variables and token) share one LiveQuery, so one execution and one
 * serialization serve all their subscribers. It owns subscribe, attach and
 * detach, the per-connection limit, access re-checks (a stream ends with
 * `system.accessDenied` when its subscriber loses access; a new token moves
 * it to the LiveQuery of its new identity) and schema switches (a stream
 * whose operation a reload leaves invalid ends with `system.schemaChanged`;
 * the others move to the new schema unbroken). `@event` streams, which
 * graphql-js runs, are followed across reloads too (`followEventStream`).
 *
 * Runs and their coalescing are the LiveQuery's (query.ts); what a client
 * is handed, and when, is the LiveStream's (stream.ts).
 */
import {
  print,
  validate,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';
import type { AccessChecker, Connection } from '../access/access.js';
import type { ResourceCache } from '../cache/cache.js';
import { errorText, type Logger } from '../log.js';
import { ErrorCode } from '../res/protocol.js';
import { toGraphQLError, type GatewayContext } from '../resolvers/resolvers.js';
import type { ServedSchema } from '../resolvers/served.js';
import { defaults } from '../config/defaults.js';
import { SchemaBoundStream } from './event-stream.js';
import { errorResult, LiveQuery, terminalError } from './query.js';
import { LiveStream, type LiveMode, type LiveObserver, type PushTracer } from './stream.js';

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

export class LiveEngine {
  readonly cache: ResourceCache;
  readonly log: Logger;
  private readonly access: AccessChecker;
  private readonly served: ServedSchema;
  private readonly maxPerConnection: number;
  readonly observer: LiveObserver | undefined;
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
