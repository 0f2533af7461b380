/**
 * Runs query and mutation operations, compiled: graphql-jit turns a document
 * into a plain function once, so a live result's re-run from the cache and
 * a repeated HTTP query skip graphql-js's per-execution bookkeeping (most of
 * a cached re-run's cost). A document is compiled the second time it runs,
 * so a one-off document never pays for compiling; a live operation's from
 * its first run, since its result is kept and updated in place of runs
 * (live/incremental.ts): graphql-js builds result objects without a
 * prototype, which V8 keeps in dictionary mode and JSON.stringify serializes
 * about three times slower than graphql-jit's plain objects, on every
 * update of a subscription. One graphql-jit cannot compile runs through
 * graphql-js, as it did the first time.
 *
 * Two things stay with graphql-js. Mutations: their cost is the service's
 * round trip, and the re-run below must never call a service twice. And a
 * query result with a failed list item: graphql-jit 0.8 appends one extra
 * null to the list for each item whose promise rejected (a deleted item, a
 * denied soft reference), so such a run is done again by graphql-js, which
 * costs a second execution only while a list holds a failed item.
 */
import { execute, getOperationAST, type DocumentNode, type ExecutionArgs, type ExecutionResult, type GraphQLSchema } from 'graphql';
import { compileQuery, isCompiledQuery, type CompiledQuery } from 'graphql-jit';

/** How a document runs for an operation name: seen once (graphql-js), compiled, or not compilable. */
type Plan = 'once' | CompiledQuery | 'graphql-js';

const plans = new WeakMap<GraphQLSchema, WeakMap<DocumentNode, Map<string, Plan>>>();

function plansFor(schema: GraphQLSchema, document: DocumentNode): Map<string, Plan> {
  let byDocument = plans.get(schema);
  if (!byDocument) {
    byDocument = new WeakMap();
    plans.set(schema, byDocument);
  }
  let byName = byDocument.get(document);
  if (!byName) {
    byName = new Map();
    byDocument.set(document, byName);
  }
  return byName;
}

/** The compiled form of an operation from its second run on (`repeats`: from its first); undefined while graphql-js runs it. */
function compiled(args: ExecutionArgs, repeats: boolean): CompiledQuery | undefined {
  const byName = plansFor(args.schema, args.document);
  const name = args.operationName ?? '';
  const plan = byName.get(name);
  if (plan === undefined && !repeats) {
    byName.set(name, 'once');
    return undefined;
  }
  if (plan === undefined || plan === 'once') {
    const next = compile(args);
    byName.set(name, next);
    return typeof next === 'string' ? undefined : next;
  }
  return typeof plan === 'string' ? undefined : plan;
}

/** graphql-jit's function for an operation, or graphql-js when it reports (or throws) that it cannot compile it. */
function compile(args: ExecutionArgs): Plan {
  if (getOperationAST(args.document, args.operationName)?.operation !== 'query') return 'graphql-js';
  try {
    const c = compileQuery(args.schema, args.document, args.operationName ?? undefined);
    return isCompiledQuery(c) ? c : 'graphql-js';
  } catch {
    return 'graphql-js';
  }
}

/**
 * Executes a query or mutation; synchronously when every resolver answers
 * synchronously (cached resources with known verdicts), else a promise.
 */
export function run(args: ExecutionArgs, opts: { repeats?: boolean } = {}): ExecutionResult | Promise<ExecutionResult> {
  const c = compiled(args, opts.repeats ?? false);
  if (!c) return execute(args) as ExecutionResult | Promise<ExecutionResult>;
  const result = c.query(args.rootValue, args.contextValue, args.variableValues ?? {}) as ExecutionResult | Promise<ExecutionResult>;
  const checked = (r: ExecutionResult) => (hasFailedListItem(r) ? (execute(args) as ExecutionResult | Promise<ExecutionResult>) : inGraphqlJsOrder(r));
  return result instanceof Promise ? result.then(checked) : checked(result);
}

/** Whether an error of the result is a list item's own (its path ends in an index): see the top of this file. */
function hasFailedListItem(result: ExecutionResult): boolean {
  return result.errors?.some((e) => typeof e.path?.[e.path.length - 1] === 'number') ?? false;
}

/**
 * graphql-js puts `errors` before `data`; graphql-jit after. A live result
 * is compared by its JSON, so both paths must serialize alike.
 */
function inGraphqlJsOrder(result: ExecutionResult): ExecutionResult {
  if (!result.errors) return result;
  const { errors, data, ...rest } = result;
  return data === undefined ? { errors, ...rest } : { errors, data, ...rest };
}
