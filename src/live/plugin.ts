/**
 * Yoga/envelop plugin that hands subscriptions to mirrored `@get` fields to
 * the live engine. Other subscriptions (`@event` streams) run through
 * graphql-js as usual.
 */
import { Kind, getOperationAST } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { ResourceMapping } from '../schema/schema.js';
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
      if (live) setSubscribeFn((a) => engine.subscribe(a));
    },
  };
}
