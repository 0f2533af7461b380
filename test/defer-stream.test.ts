/**
 * `@defer` and `@stream` on queries: the initial result comes first, without
 * the deferred fields, and the rest follows in incremental parts, over HTTP
 * multipart (raw, and as Apollo Client 4 reads it), SSE and graphql-ws. The
 * test service holds the get of the deferred reference until the first
 * part has arrived, which proves the order. `@defer` in a subscription or a
 * `@live` query is refused with a message that says why.
 */
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { Defer20220824Handler } from '@apollo/client/incremental';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResultStream, subscribeWs, wsClient } from './helpers/live-client.js';
import { addAuthor, addBook, startLiveEnv, type LiveEnv } from './helpers/live-fixture.js';
import { deferAccept, postMultipart } from './helpers/multipart-client.js';

let env: LiveEnv;

beforeAll(async () => {
  env = await startLiveEnv();
  for (let id = 1; id <= 5; id++) addAuthor(env.svc, id, `Author ${id}`);
  for (let id = 1; id <= 5; id++) addBook(env.svc, id, `Book ${id}`, id);
  env.svc.collection('library.books', [1, 2, 3].map((id) => ({ rid: `library.book.${id}` })));
});

afterAll(async () => {
  await env?.close();
});

/**
 * Holds the service's answer to `get.<rid>` until `release` is called: the
 * part that needs it cannot be sent before.
 */
function holdGet(rid: string): { release(): void } {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  env.svc.handle(`get.${rid}`, async () => {
    await gate;
    const r = env.svc.resources.get(rid);
    return { result: structuredClone(r) };
  });
  return { release };
}

const deferredAuthor = (id: number) => `query { book(id: ${id}) { title ... @defer { author { name } } } }`;

describe('@defer', () => {
  it('over HTTP multipart: the initial part without the deferred fields, then the rest once its get is answered', async () => {
    const held = holdGet('library.author.1');
    const m = await postMultipart(env.gw.url, { query: deferredAuthor(1) }, deferAccept);
    expect(m.response.headers.get('content-type')).toMatch(/^multipart\/mixed/);
    expect(await m.parts.next(5000)).toEqual({ data: { book: { title: 'Book 1' } }, hasNext: true });
    held.release();
    expect(await m.parts.next(5000)).toEqual({ incremental: [{ data: { author: { name: 'Author 1' } }, path: ['book'] }], hasNext: false });
    expect(await m.closed).toBe(true);
  });

  it('in Apollo Client 4 (Defer20220824Handler, plain HttpLink): the partial result first, then the whole', async () => {
    const held = holdGet('library.author.2');
    const client = new ApolloClient({
      link: new HttpLink({ uri: env.gw.url }),
      cache: new InMemoryCache(),
      incrementalHandler: new Defer20220824Handler(),
    });
    try {
      const results = new ResultStream<any>();
      const sub = client.watchQuery({ query: gql(deferredAuthor(2)) }).subscribe({ next: (r) => results.push(r), error: (e) => results.end(e) });
      let r = await results.next(5000);
      while (r.loading && !r.data?.book) r = await results.next(5000);
      expect(r.dataState).toBe('streaming');
      expect(r.data.book).toEqual({ __typename: 'Book', title: 'Book 2' });
      held.release();
      r = await results.next(5000);
      expect(r.dataState).toBe('complete');
      expect(r.data.book).toEqual({ __typename: 'Book', title: 'Book 2', author: { __typename: 'Author', name: 'Author 2' } });
      sub.unsubscribe();
    } finally {
      client.stop();
    }
  });

  it('over graphql-ws: the same parts as next messages, then complete', async () => {
    const held = holdGet('library.author.3');
    const client = wsClient(env.gw.url);
    try {
      const s = subscribeWs(client, deferredAuthor(3));
      expect(await s.next(5000)).toEqual({ data: { book: { title: 'Book 3' } }, hasNext: true });
      held.release();
      expect(await s.next(5000)).toEqual({ incremental: [{ data: { author: { name: 'Author 3' } }, path: ['book'] }], hasNext: false });
      await s.completed;
    } finally {
      await client.dispose();
    }
  });

  it('over SSE: the same parts as next events, then complete', async () => {
    const held = holdGet('library.author.4');
    const r = await fetch(env.gw.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ query: deferredAuthor(4) }),
    });
    const events = new ResultStream<any>();
    void (async () => {
      let buffer = '';
      for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += Buffer.from(chunk).toString('utf8');
        let at: number;
        while ((at = buffer.indexOf('\n\n')) >= 0) {
          const event = buffer.slice(0, at);
          buffer = buffer.slice(at + 2);
          const data = /^data: (.+)$/m.exec(event)?.[1];
          if (/^event: next$/m.test(event) && data) events.push(JSON.parse(data));
          if (/^event: complete$/m.test(event)) events.end();
        }
      }
    })();
    expect(await events.next(5000)).toEqual({ data: { book: { title: 'Book 4' } }, hasNext: true });
    held.release();
    expect(await events.next(5000)).toEqual({ incremental: [{ data: { author: { name: 'Author 4' } }, path: ['book'] }], hasNext: false });
    await events.completed;
  });
});

describe('@stream', () => {
  it('sends the first items of a list at once and the others as incremental items', async () => {
    const m = await postMultipart(env.gw.url, { query: '{ books @stream(initialCount: 1) { title } }' }, deferAccept);
    const parts = [await m.parts.next(5000)];
    while (parts[parts.length - 1].hasNext) parts.push(await m.parts.next(5000));
    expect(parts[0]).toEqual({ data: { books: [{ title: 'Book 1' }] }, hasNext: true });
    const streamed = parts.slice(1).flatMap((p) => p.incremental ?? []).flatMap((i: { items: unknown[] }) => i.items);
    expect(streamed).toEqual([{ title: 'Book 2' }, { title: 'Book 3' }]);
  });
});

describe('@defer and @stream for a client that accepts only JSON', () => {
  it.each(['application/json', 'application/graphql-response+json'])('answers %s with the whole result, the parts merged', async (accept) => {
    const r = await fetch(env.gw.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept },
      body: JSON.stringify({ query: '{ book(id: 5) { title ... @defer { author { name } } } books @stream(initialCount: 1) { title } }' }),
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe(`${accept}; charset=utf-8`);
    expect(await r.json()).toEqual({
      data: {
        book: { title: 'Book 5', author: { name: 'Author 5' } },
        books: [{ title: 'Book 1' }, { title: 'Book 2' }, { title: 'Book 3' }],
      },
    });
  });
});

describe('@defer and @stream in live operations', () => {
  it.each([
    ['a subscription', 'subscription { book(id: 5) { title ... @defer { author { name } } } }', '@defer cannot be used in a subscription'],
    ['a @live query', 'query @live { books @stream { title } }', '@stream cannot be used in a @live query'],
  ])('are refused in %s, with a message that says why', async (_what, query, message) => {
    const r = await fetch(env.gw.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ query }),
    });
    const body = await r.json();
    expect(body.errors[0].message).toContain(message);
    expect(body.errors[0].extensions.code).toBe('GRAPHQL_VALIDATION_FAILED');
  });
});
