/**
 * Runs query and mutation operations, compiled: graphql-jit turns a document
 * into a plain function once, so a live result's re-run from the cache and
 * a repeated HTTP query skip graphql-js's per-execution bookkeeping (most of
 * a cached re-run's cost). A document is compiled the second time it runs,
 * so a one-off document never pays for compiling; one graphql-jit cannot
 * compile runs through graphql-js, as it did the first time.
 */
import { execute, type DocumentNode, type ExecutionArgs, type ExecutionResult, type GraphQLSchema } from 'graphql';
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

/** The compiled form of an operation from its second run on; undefined while graphql-js runs it. */
function compiled(args: ExecutionArgs): CompiledQuery | undefined {
  const byName = plansFor(args.schema, args.document);
  const name = args.operationName ?? '';
  const plan = byName.get(name);
  if (plan === undefined) {
    byName.set(name, 'once');
    return undefined;
  }
  if (plan === 'once') {
    const next = compile(args);
    byName.set(name, next);
    return typeof next === 'string' ? undefined : next;
  }
  return typeof plan === 'string' ? undefined : plan;
}

/** graphql-jit's function for an operation, or graphql-js when it reports (or throws) that it cannot compile it. */
function compile(args: ExecutionArgs): Plan {
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
export function run(args: ExecutionArgs): ExecutionResult | Promise<ExecutionResult> {
  const c = compiled(args);
  if (!c) return execute(args) as ExecutionResult | Promise<ExecutionResult>;
  const result = c.query(args.rootValue, args.contextValue, args.variableValues ?? {}) as ExecutionResult | Promise<ExecutionResult>;
  return result instanceof Promise ? result.then(inGraphqlJsOrder) : inGraphqlJsOrder(result);
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
