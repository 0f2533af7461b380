/**
 * The urql client: queries and mutations over HTTP (fetchExchange),
 * subscriptions over one graphql-ws WebSocket (subscriptionExchange).
 * Every operation is sent as a trusted document, by the hash codegen put on
 * it (`document.__meta__.hash`; persisted-documents.json beside it is the
 * gateway's manifest), never as a document text: a gateway run with
 * --persisted-only accepts nothing else.
 *
 * The gateway is found, in this order, at: the page's `?gateway=` parameter
 * (an absolute URL, or a path such as `/graphql` on the page's own origin),
 * VITE_RESGRAPH_URL at build time, or http://127.0.0.1:4000/graphql.
 */
import { Client, cacheExchange, fetchExchange, subscriptionExchange } from '@urql/core';
import { persistedExchange } from '@urql/exchange-persisted';
import { createClient as createWsClient } from 'graphql-ws';

export const gatewayUrl = new URL(
  new URLSearchParams(location.search).get('gateway') ?? import.meta.env.VITE_RESGRAPH_URL ?? 'http://127.0.0.1:4000/graphql',
  location.href,
);

const wsUrl = new URL(gatewayUrl);
wsUrl.protocol = gatewayUrl.protocol === 'https:' ? 'wss:' : 'ws:';

export type ConnectionState = 'connecting' | 'live' | 'offline';

/** Told when the WebSocket connects or drops; graphql-ws reconnects and resubscribes by itself. */
export const connectionListeners = new Set<(state: ConnectionState) => void>();
const tell = (state: ConnectionState) => connectionListeners.forEach((l) => l(state));

export const ws = createWsClient({
  url: wsUrl.href,
  lazy: false,
  retryAttempts: Infinity,
  shouldRetry: () => true,
  on: {
    connecting: () => tell('connecting'),
    connected: () => tell('live'),
    closed: () => tell('offline'),
  },
});

export const client = new Client({
  url: gatewayUrl.href,
  exchanges: [
    cacheExchange,
    persistedExchange({
      enforcePersistedQueries: true,
      enableForMutation: true,
      enableForSubscriptions: true,
      generateHash: (_query, document) => Promise.resolve((document as { __meta__?: { hash?: string } }).__meta__?.hash ?? ''),
    }),
    fetchExchange,
    subscriptionExchange({
      forwardSubscription(request) {
        // a persisted operation has no query text: graphql-ws wants the field, the hash is in extensions
        const operation = { ...request, query: request.query ?? '' };
        return {
          subscribe(sink) {
            return { unsubscribe: ws.subscribe(operation, sink) };
          },
        };
      },
    }),
  ],
});
