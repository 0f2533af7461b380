/**
 * Real GraphQL clients against the gateway and the example library service:
 * Apollo Client 4 (HttpLink for queries and mutations, GraphQLWsLink over
 * graphql-ws for subscriptions, joined by a split link) and urql
 * (fetchExchange, subscriptionExchange forwarding to graphql-ws). Each one
 * queries, mutates, and receives over a subscription a change the other
 * one made. Apollo's normalized cache keys objects by `id`, the resource ID
 * from `@rid`, so a subscription result updates `Book:library.book.1` and
 * every query watching it.
 */
import { ApolloClient, ApolloLink, CombinedGraphQLErrors, HttpLink, InMemoryCache, gql as apolloGql } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { Client as UrqlClient, cacheExchange, fetchExchange, gql as urqlGql, subscriptionExchange } from '@urql/core';
import { OperationTypeNode } from 'graphql';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startLibraryStack, type LibraryStack } from './helpers/library-stack.js';
import { ResultStream, wsUrl } from './helpers/live-client.js';

let stack: LibraryStack;
const cleanups: (() => void | Promise<void>)[] = [];

beforeAll(async () => {
  stack = await startLibraryStack();
}, 60_000);

afterAll(async () => {
  try {
    for (const c of cleanups.reverse()) await c();
  } finally {
    await stack?.close();
  }
}, 30_000);

function graphqlWs(url: string): WsClient {
  const ws = createWsClient({ url: wsUrl(url), webSocketImpl: WebSocket, retryAttempts: 0 });
  cleanups.push(() => ws.dispose());
  return ws;
}

/** Apollo Client 4 as a browser app would set it up: subscriptions over graphql-ws, the rest over HTTP. */
function apollo(url: string): ApolloClient {
  const link = ApolloLink.split(
    (operation) => operation.operationType === OperationTypeNode.SUBSCRIPTION,
    new GraphQLWsLink(graphqlWs(url)),
    new HttpLink({ uri: url }),
  );
  const client = new ApolloClient({ link, cache: new InMemoryCache() });
  cleanups.push(() => client.stop());
  return client;
}

/**
 * urql with its document cache, fetch for queries and mutations, graphql-ws
 * for subscriptions. urql sends queries as GET; outside a browser a GET must
 * carry a CSRF header (docs/security.md).
 */
function urql(url: string): UrqlClient {
  const ws = graphqlWs(url);
  return new UrqlClient({
    url,
    fetchOptions: { headers: { 'x-graphql-yoga-csrf': '1' } },
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription: (request) => ({
          subscribe: (sink) => ({ unsubscribe: ws.subscribe({ ...request, query: request.query ?? '' }, sink) }),
        }),
      }),
    ],
  });
}

/** Collects an observable's values so a test can await the next one (with a timeout). */
function collect<T>(source: { subscribe(o: { next(v: T): void; error(e: unknown): void; complete(): void }): { unsubscribe(): void } }): ResultStream {
  const s = new ResultStream();
  const sub = source.subscribe({ next: (v) => s.push(v as never), error: (e) => s.end(e), complete: () => s.end() });
  s.dispose = () => sub.unsubscribe();
  cleanups.push(() => s.dispose());
  return s;
}

/** The same for an urql result source, whose subscribe takes a callback. */
function collectUrql(source: { subscribe(onResult: (r: any) => void): { unsubscribe(): void } }): ResultStream {
  const s = new ResultStream();
  const sub = source.subscribe((r) => s.push(r));
  s.dispose = () => sub.unsubscribe();
  cleanups.push(() => s.dispose());
  return s;
}

/** The next value of a stream for which `pred` holds, skipping others (loading states, for one). */
async function nextWhere(s: ResultStream, pred: (v: any) => boolean, timeoutMs = 10_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await s.next(Math.max(1, deadline - Date.now()));
    if (pred(v)) return v;
  }
}

interface BookData {
  book: { __typename?: string; id: string; title: string; author: { id: string; name: string } } | null;
}
const BookQuery = apolloGql`
  query Book($id: ID!) {
    book(id: $id) { id title author { id name } }
  }
`;
const BookTitle = apolloGql`
  fragment BookTitle on Book { title }
`;
const SetTitle = apolloGql`
  mutation SetTitle($id: ID!, $title: String!) { setBookTitle(id: $id, title: $title) }
`;
const BookSubscription = apolloGql`
  subscription BookUpdates($id: ID!) { book(id: $id) { id title } }
`;
const urqlSetTitle = urqlGql`
  mutation SetTitle($id: ID!, $title: String!) { setBookTitle(id: $id, title: $title) }
`;

describe('Apollo Client 4', { timeout: 60_000 }, () => {
  it('queries, and normalizes objects under their resource ID', async () => {
    const client = apollo(stack.gw.url);
    const { data } = await client.query<BookData>({ query: BookQuery, variables: { id: '3' } });
    expect(data?.book).toEqual({
      __typename: 'Book',
      id: 'library.book.3',
      title: 'Dune',
      author: { __typename: 'Author', id: 'library.author.2', name: 'Frank Herbert' },
    });
    const cached = client.cache.extract() as Record<string, object>;
    expect(cached['Book:library.book.3']).toMatchObject({ title: 'Dune', author: { __ref: 'Author:library.author.2' } });
    expect(cached['Author:library.author.2']).toMatchObject({ name: 'Frank Herbert' });
  });

  it('sends mutations, and reports a service error with its RES code', async () => {
    const client = apollo(stack.gw.url);
    const { data } = await client.mutate({ mutation: SetTitle, variables: { id: '4', title: 'Kindred (2nd ed.)' } });
    expect(data).toEqual({ setBookTitle: null });
    const { data: after } = await client.query<BookData>({ query: BookQuery, variables: { id: '4' }, fetchPolicy: 'network-only' });
    expect(after?.book?.title).toBe('Kindred (2nd ed.)');

    const failed = await client.mutate({ mutation: SetTitle, variables: { id: '4', title: '' } }).catch((e: unknown) => e);
    expect(CombinedGraphQLErrors.is(failed)).toBe(true);
    expect((failed as CombinedGraphQLErrors).errors[0]?.extensions).toMatchObject({ code: 'library.invalidTitle' });
  });

  it('receives over a subscription a change made by another client, and updates its cache', async () => {
    const client = apollo(stack.gw.url);
    const other = urql(stack.gw.url);

    // a watched query: fed from the normalized cache, never refetched here
    const watched = collect(client.watchQuery<BookData>({ query: BookQuery, variables: { id: '1' } }));
    await nextWhere(watched, (r) => r.data?.book?.title === 'A Wizard of Earthsea');

    const updates = collect(client.subscribe({ query: BookSubscription, variables: { id: '1' } }));
    expect((await updates.next(10_000)).data).toEqual({ book: { __typename: 'Book', id: 'library.book.1', title: 'A Wizard of Earthsea' } });

    const r = await other.mutation(urqlSetTitle, { id: '1', title: 'The Farthest Shore' }).toPromise();
    expect(r.error).toBeUndefined();
    expect((await updates.next(10_000)).data).toEqual({ book: { __typename: 'Book', id: 'library.book.1', title: 'The Farthest Shore' } });

    expect(client.cache.readFragment({ id: 'Book:library.book.1', fragment: BookTitle })).toEqual({ __typename: 'Book', title: 'The Farthest Shore' });
    expect(client.cache.identify({ __typename: 'Book', id: 'library.book.1' })).toBe('Book:library.book.1');
    // the subscription's result reached the watched query through the cache
    const seen = await nextWhere(watched, (v) => v.data?.book?.title === 'The Farthest Shore');
    expect(seen.data.book.author).toMatchObject({ name: 'Ursula K. Le Guin' });
  });
});

describe('urql', { timeout: 60_000 }, () => {
  it('queries', async () => {
    const client = urql(stack.gw.url);
    const r = await client.query(urqlGql`{ books { id title author { name } } }`, {}).toPromise();
    expect(r.error).toBeUndefined();
    expect(r.data.books).toHaveLength(5);
    expect(r.data.books[2]).toEqual({ __typename: 'Book', id: 'library.book.3', title: 'Dune', author: { __typename: 'Author', name: 'Frank Herbert' } });
  });

  it('sends mutations, and reports a service error with its RES code', async () => {
    const client = urql(stack.gw.url);
    const added = await client
      .mutation(urqlGql`mutation Add($input: NewBook!) { addBook(input: $input) { id title author { name } } }`, {
        input: { title: 'Wild Seed', authorId: '3' },
      })
      .toPromise();
    expect(added.error).toBeUndefined();
    expect(added.data.addBook).toMatchObject({ id: 'library.book.6', title: 'Wild Seed', author: { name: 'Octavia E. Butler' } });

    const failed = await client.mutation(urqlSetTitle, { id: '2', title: ' ' }).toPromise();
    expect(failed.error?.graphQLErrors[0]?.extensions).toMatchObject({ code: 'library.invalidTitle', data: { title: ' ' } });
    expect(failed.data).toEqual({ setBookTitle: null });
  });

  it('receives over a subscription the changes made by another client', async () => {
    const client = urql(stack.gw.url);
    const other = apollo(stack.gw.url);

    const book = collectUrql(client.subscription(urqlGql`subscription ($id: ID!) { book(id: $id) { id title } }`, { id: '2' }));
    expect((await book.next(10_000)).data.book).toMatchObject({ id: 'library.book.2', title: 'The Left Hand of Darkness' });
    await other.mutate({ mutation: SetTitle, variables: { id: '2', title: 'The Word for World Is Forest' } });
    expect((await book.next(10_000)).data.book).toMatchObject({ id: 'library.book.2', title: 'The Word for World Is Forest' });

    const author = collectUrql(client.subscription(urqlGql`subscription { author(id: "1") { name books { title } } }`, {}));
    const before = (await author.next(10_000)).data.author.books.map((b: { title: string }) => b.title);
    await other.mutate({
      mutation: apolloGql`mutation Add($input: NewBook!) { addBook(input: $input) { id } }`,
      variables: { input: { title: 'Tehanu', authorId: '1' } },
    });
    const after = (await author.next(10_000)).data.author.books.map((b: { title: string }) => b.title);
    expect(after).toEqual([...before, 'Tehanu']);
  });
});
