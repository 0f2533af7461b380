/**
 * Yoga/envelop plugin that hands live operations to the live engine:
 * subscriptions to mirrored `@get` fields (full results), and queries marked
 * `@live` (JSON Patch updates unless `@live(patch: false)`). Other
 * subscriptions (`@event` streams) run through graphql-js as usual.
 */
import { Kind, getOperationAST, valueFromASTUntyped, type OperationDefinitionNode, type SelectionNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { ResourceMapping } from '../schema/schema.js';
import { cidPlaceholder, type RidTemplate } from '../schema/template.js';
import type { LiveEngine } from './engine.js';

export function useLiveResults(engine: LiveEngine, mapping: ResourceMapping): Plugin {
  const perConnection = (fields: readonly SelectionNode[], root: string) =>
    fields.some((s) => s.kind === Kind.FIELD && usesConnectionId(mapping.fields.get(`${root}.${s.name.value}`)?.get));
  return {
    onExecute({ args, setExecuteFn }) {
      const op = getOperationAST(args.document, args.operationName);
      if (!op || op.operation !== 'query') return;
      const live = liveDirective(op, args.variableValues);
      if (!live) return;
      const mode = live.patch ? 'patch' : 'full';
      const options = { perConnection: perConnection(op.selectionSet.selections, 'Query'), mode } as const;
      setExecuteFn((a) => engine.subscribe(a, options));
    },
    onSubscribe({ args, setSubscribeFn }) {
      const op = getOperationAST(args.document, args.operationName);
      if (!op || op.operation !== 'subscription') return;
      const fields = op.selectionSet.selections;
      const live = fields.every(
        (s) => s.kind === Kind.FIELD && (s.name.value === '__typename' || mapping.fields.get(`Subscription.${s.name.value}`)?.mirrorOf),
      );
      if (!live) return;
      // a root whose rid names the connection (`session.{cid}`) is another
      // resource for every connection, whatever their tokens: never shared
      const options = { perConnection: perConnection(fields, 'Subscription') };
      setSubscribeFn((a) => engine.subscribe(a, options));
    },
  };
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
