/**
 * Yoga/envelop plugin that hands subscriptions to mirrored `@get` fields to
 * the live engine. Other subscriptions (`@event` streams) run through
 * graphql-js as usual.
 */
import { Kind, getOperationAST } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { ResourceMapping } from '../schema/schema.js';
import { cidPlaceholder, type RidTemplate } from '../schema/template.js';
import type { LiveEngine } from './engine.js';

export function useLiveResults(engine: LiveEngine, mapping: ResourceMapping): Plugin {
  return {
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
      const perConnection = fields.some(
        (s) => s.kind === Kind.FIELD && usesConnectionId(mapping.fields.get(`Subscription.${s.name.value}`)?.get),
      );
      setSubscribeFn((a) => engine.subscribe(a, { perConnection }));
    },
  };
}

function usesConnectionId(t: RidTemplate | undefined): boolean {
  return !!t && [...t.name, ...t.query.flatMap((q) => q.value)].some((p) => 'arg' in p && p.arg === cidPlaceholder);
}
