/**
 * One value of a live result resolved on its own, for an update that brings
 * a new subtree into the result (live/incremental.ts): an item added to a
 * collection a list shows, or a property whose new value is a reference or
 * a data value. The selection of the field that shows the value runs as an
 * operation of its own, `{ node { <the field's selections> } }`, on a
 * schema derived once from the executing one: its only root field, `node`,
 * has the type of the value and resolves it as the list or the field would
 * have. The value is completed by graphql-js exactly as in a run (aliases,
 * fragments, `@include`, abstract types, serialization), and the reads the
 * resolvers record under it are rooted at `node`, for the caller to move to
 * where the value goes.
 */
import {
  execute,
  GraphQLObjectType,
  GraphQLSchema,
  Kind,
  OperationTypeNode,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type FieldNode,
  type GraphQLOutputType,
  type GraphQLResolveInfo,
  type OperationDefinitionNode,
  type SelectionNode,
} from 'graphql';
import type { GatewayContext } from '../resolvers/resolvers.js';
import { ResultReads, type FallbackReason } from './incremental.js';

/** Resolves the value of `node` as the original field (or list) would: `info` is the subtree run's, with the original field's name, parent type and schema. */
export type SubtreeResolve = (ctx: GatewayContext, info: GraphQLResolveInfo) => unknown;

/** A subtree's completed value and the reads under it (paths from `node`), or why it cannot be used. */
export type Subtree = { value: unknown; reads: ResultReads } | FallbackReason;

const rootField = 'node';

/** The root value of a subtree run: how its one field resolves, and the field of the result it stands for. */
interface SubtreeRoot {
  resolve: SubtreeResolve;
  field: GraphQLResolveInfo;
}

/** Derived schemas, per executing schema and per type of the value. */
const derived = new WeakMap<GraphQLSchema, Map<GraphQLOutputType, GraphQLSchema>>();

/**
 * Completes the value `resolve` gives, of `type`, with the selections of
 * the field `field` shows it in. `ctx`: the live query's context (its
 * connection, its lease, which holds what the subtree reads); `variables`:
 * the operation's variables as the client sent them. Synchronous when every
 * resource it reads is cached with known verdicts; never rejects.
 */
export function runSubtree(
  field: GraphQLResolveInfo,
  type: GraphQLOutputType,
  resolve: SubtreeResolve,
  ctx: GatewayContext,
  variables: ExecutionArgs['variableValues'],
): Subtree | Promise<Subtree> {
  const reads = new ResultReads();
  let result: ExecutionResult | Promise<ExecutionResult>;
  try {
    result = execute({
      schema: subtreeSchema(field.schema, type),
      document: subtreeDocument(field),
      rootValue: { resolve, field } satisfies SubtreeRoot,
      contextValue: { ...ctx, reads },
      variableValues: variables,
    }) as ExecutionResult | Promise<ExecutionResult>;
  } catch {
    return 'errors';
  }
  const completed = (r: ExecutionResult): Subtree => {
    // an error inside the subtree (a denied soft reference, a failed get) sits at a path execution places
    if (r.errors?.length || !r.data) return 'errors';
    return { value: r.data[rootField], reads };
  };
  return result instanceof Promise ? result.then(completed, () => 'errors' as const) : completed(result);
}

/** The executing schema with one more root type, whose field `node` is of `type`. */
function subtreeSchema(schema: GraphQLSchema, type: GraphQLOutputType): GraphQLSchema {
  let byType = derived.get(schema);
  if (!byType) derived.set(schema, (byType = new Map()));
  let s = byType.get(type);
  if (!s) {
    const root = new GraphQLObjectType<SubtreeRoot, GatewayContext>({
      name: unusedTypeName(schema),
      // resolved as the field it stands for: the reads recorded under it name that field, on the executing schema
      fields: { [rootField]: { type, resolve: (r, _args, ctx, info) => r.resolve(ctx, { ...info, parentType: r.field.parentType, fieldName: r.field.fieldName, schema: r.field.schema }) } },
    });
    const types = Object.values(schema.getTypeMap()).filter((t) => !t.name.startsWith('__'));
    s = new GraphQLSchema({ query: root, types, directives: schema.getDirectives() });
    byType.set(type, s);
  }
  return s;
}

function unusedTypeName(schema: GraphQLSchema): string {
  let name = 'LiveSubtree';
  while (schema.getType(name)) name += '_';
  return name;
}

/** `{ node { ... } }` with the field's selections, its operation's variable definitions and the document's fragments. */
function subtreeDocument(field: GraphQLResolveInfo): DocumentNode {
  const selections: SelectionNode[] = [];
  for (const f of field.fieldNodes) if (f.selectionSet) selections.push(...f.selectionSet.selections);
  const node: FieldNode = {
    kind: Kind.FIELD,
    name: { kind: Kind.NAME, value: rootField },
    selectionSet: selections.length > 0 ? { kind: Kind.SELECTION_SET, selections } : undefined,
  };
  const operation: OperationDefinitionNode = {
    kind: Kind.OPERATION_DEFINITION,
    operation: OperationTypeNode.QUERY,
    variableDefinitions: field.operation.variableDefinitions,
    selectionSet: { kind: Kind.SELECTION_SET, selections: [node] },
  };
  return { kind: Kind.DOCUMENT, definitions: [operation, ...Object.values(field.fragments)] };
}
