/**
 * Yoga/envelop plugin that hands live operations to the live engine:
 * subscriptions to mirrored `@get` fields (full results), and queries marked
 * `@live` (JSON Patch updates unless `@live(patch: false)`). Other
 * subscriptions (`@event` streams) run through graphql-js as usual; the
 * engine follows them across schema reloads.
 */
import {
  GraphQLError,
  Kind,
  getOperationAST,
  valueFromASTUntyped,
  visit,
  type ASTVisitor,
  type DocumentNode,
  type ExecutionResult,
  type OperationDefinitionNode,
  type ValidationContext,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { ServedSchema } from '../resolvers/served.js';
import type { ResourceMapping } from '../schema/schema.js';
import { cidPlaceholder, type RidTemplate } from '../schema/template.js';
import type { LiveEngine } from './engine.js';
import type { LiveMode } from './stream.js';

/** How a live operation streams: shared or per connection, full results or patches. */
export interface LiveRoute {
  perConnection: boolean;
  mode: LiveMode;
}

/**
 * Whether an operation is live, and how: a subscription whose root fields
 * are all mirrored `@get` fields, or a query marked `@live`. Undefined for
 * anything else (ordinary queries, mutations, `@event` streams).
 */
export function liveRoute(
  op: OperationDefinitionNode,
  variables: Record<string, unknown> | null | undefined,
  mapping: ResourceMapping,
): LiveRoute | undefined {
  const fields = op.selectionSet.selections;
  // a root whose rid names the connection (`session.{cid}`) is another
  // resource for every connection, whatever their tokens: never shared
  const perConnection = (root: string) =>
    fields.some((s) => s.kind === Kind.FIELD && usesConnectionId(mapping.fields.get(`${root}.${s.name.value}`)?.get));
  if (op.operation === 'query') {
    const live = liveDirective(op, variables);
    return live && { perConnection: perConnection('Query'), mode: live.patch ? 'patch' : 'full' };
  }
  if (op.operation !== 'subscription') return undefined;
  const mirrored = fields.every(
    (s) => s.kind === Kind.FIELD && (s.name.value === '__typename' || mapping.fields.get(`Subscription.${s.name.value}`)?.mirrorOf),
  );
  return mirrored ? { perConnection: perConnection('Subscription'), mode: 'full' } : undefined;
}

export function useLiveResults(engine: LiveEngine, served: ServedSchema): Plugin {
  const routeOf = (args: { document: DocumentNode; operationName?: string | null; variableValues?: Record<string, unknown> | null }) => {
    const op = getOperationAST(args.document, args.operationName);
    return op ? liveRoute(op, args.variableValues, served.current.mapping) : undefined;
  };
  return {
    onValidate({ addValidationRule }) {
      addValidationRule(noIncrementalDeliveryOnLive);
    },
    onExecute({ args, setExecuteFn }) {
      const route = routeOf(args);
      if (route) setExecuteFn((a) => engine.subscribe(a, route));
    },
    onSubscribe({ args, setSubscribeFn }) {
      const route = routeOf(args);
      if (route) return void setSubscribeFn((a) => engine.subscribe(a, route));
      // an `@event` stream: graphql-js runs it, the engine ends it if a schema reload leaves it invalid
      return {
        onSubscribeResult({ result, setResult }) {
          if (isAsyncIterable(result)) setResult(engine.followEventStream(args.document, result));
        },
      };
    },
  };
}

/**
 * `@defer` and `@stream` split one result into parts; a live result is a
 * state sent whole (or as a patch) each time it changes, and subscriptions
 * carry no incremental parts in the spec's proposal either. Refused up
 * front, with a message that says so, rather than silently ignored.
 */
function noIncrementalDeliveryOnLive(context: ValidationContext): ASTVisitor {
  return {
    OperationDefinition(op) {
      const live = op.operation === 'subscription' || op.directives?.some((d) => d.name.value === 'live');
      if (!live) return;
      const kind = op.operation === 'subscription' ? 'subscription' : '@live query';
      for (const node of [op, ...context.getRecursivelyReferencedFragments(op)]) {
        visit(node, {
          Directive(d) {
            if (d.name.value !== 'defer' && d.name.value !== 'stream') return;
            context.reportError(
              new GraphQLError(
                `@${d.name.value} cannot be used in a ${kind}: a live result is sent whole (or as a patch) each time it changes. Remove @${d.name.value}, or use it in a plain query.`,
                { nodes: d },
              ),
            );
          },
        });
      }
    },
  };
}

function isAsyncIterable(v: unknown): v is AsyncIterable<ExecutionResult> {
  return typeof v === 'object' && v !== null && Symbol.asyncIterator in v;
}

function usesConnectionId(t: RidTemplate | undefined): boolean {
  return !!t && [...t.name, ...t.query.flatMap((q) => q.value)].some((p) => 'arg' in p && p.arg === cidPlaceholder);
}

/** The `@live` directive's arguments on a query, or undefined when it is absent or `if: false`. */
function liveDirective(
  op: OperationDefinitionNode,
  variables: Record<string, unknown> | null | undefined,
): { patch: boolean } | undefined {
  const d = op.directives?.find((x) => x.name.value === 'live');
  if (!d) return undefined;
  const arg = (name: string): unknown => {
    const a = d.arguments?.find((x) => x.name.value === name);
    return a ? valueFromASTUntyped(a.value, variables ?? undefined) : undefined;
  };
  if (arg('if') === false) return undefined;
  return { patch: arg('patch') !== false };
}
