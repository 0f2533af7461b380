/**
 * Query resources (`library.books?text=x&limit=20`) change when the service
 * says so with a `query` event: the gateway asks the event's subject, per
 * cached query, what changed, and the subscription updates whether the
 * service answers with events or with the whole collection.
 */
import type { Msg } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAuthor, addBook, closeClients, ref, startLiveEnv, type LiveEnv } from './helpers/live-fixture.js';
import { subscribeWs, wsClient } from './helpers/live-client.js';

let env: LiveEnv;
const enc = new TextEncoder();
const dec = new TextDecoder();

beforeAll(async () => {
  env = await startLiveEnv();
  addAuthor(env.svc, 1, 'Herbert');
  for (let id = 1; id <= 6; id++) addBook(env.svc, id, `Book ${id}`, 1);
});

afterAll(async () => {
  await env?.close();
});

/** Answers query requests on `subject` with `reply(query)`, recording the queries asked. */
async function answerQueries(subject: string, reply: (query: string) => unknown): Promise<{ asked: string[]; stop(): void }> {
  const asked: string[] = [];
  const sub = env.svc.nc.subscribe(subject, {
    callback: (_e, msg: Msg) => {
      const { query } = JSON.parse(dec.decode(msg.data)) as { query: string };
      asked.push(query);
      msg.respond(enc.encode(JSON.stringify({ result: reply(query) })));
    },
  });
  await env.svc.nc.flush();
  return { asked, stop: () => sub.unsubscribe() };
}

const searchQuery = 'subscription ($text: String!) { search(text: $text) { title } }';

describe('query resources', () => {
  it('updates a search when the query request answers with events', async () => {
    const { svc, gw } = env;
    svc.collection('library.books?text=x&limit=20', [ref('library.book.1')]);
    const client = wsClient(gw.url);
    const s = subscribeWs(client, searchQuery, { text: 'x' });
    expect(await s.next()).toEqual({ data: { search: [{ title: 'Book 1' }] } });

    const q = await answerQueries('_q.1', () => ({ events: [{ event: 'add', data: { value: ref('library.book.2'), idx: 0 } }] }));
    await svc.publish('event.library.books.query', { subject: '_q.1' });
    expect(await s.next()).toEqual({ data: { search: [{ title: 'Book 2' }, { title: 'Book 1' }] } });
    expect(q.asked).toEqual(['text=x&limit=20']);
    q.stop();

    // the added item is followed like any other
    await svc.change('library.book.2', { title: 'Found' });
    expect(await s.next()).toEqual({ data: { search: [{ title: 'Found' }, { title: 'Book 1' }] } });
    await closeClients(gw, client);
  });

  it('updates a search when the query request answers with the whole collection', async () => {
    const { svc, gw } = env;
    svc.collection('library.books?text=y&limit=20', [ref('library.book.3'), ref('library.book.4')]);
    const client = wsClient(gw.url);
    const s = subscribeWs(client, searchQuery, { text: 'y' });
    expect(await s.next()).toEqual({ data: { search: [{ title: 'Book 3' }, { title: 'Book 4' }] } });

    const q = await answerQueries('_q.2', () => ({ collection: [ref('library.book.4'), ref('library.book.5')] }));
    await svc.publish('event.library.books.query', { subject: '_q.2' });
    expect(await s.next()).toEqual({ data: { search: [{ title: 'Book 4' }, { title: 'Book 5' }] } });
    q.stop();
    await closeClients(gw, client);
  });

  it('asks once per cached query and applies each answer to its own query', async () => {
    const { svc, gw } = env;
    svc.collection('library.books?text=a&limit=20', [ref('library.book.1')]);
    svc.collection('library.books?text=b&limit=20', [ref('library.book.3')]);
    const client = wsClient(gw.url);
    const a = subscribeWs(client, searchQuery, { text: 'a' });
    const b = subscribeWs(client, searchQuery, { text: 'b' });
    expect(await a.next()).toEqual({ data: { search: [{ title: 'Book 1' }] } });
    expect(await b.next()).toEqual({ data: { search: [{ title: 'Book 3' }] } });

    const q = await answerQueries('_q.3', (query) =>
      query === 'text=a&limit=20' ? { events: [{ event: 'remove', data: { idx: 0 } }] } : query === 'text=b&limit=20' ? { collection: [ref('library.book.6')] } : {},
    );
    await svc.publish('event.library.books.query', { subject: '_q.3' });
    expect(await a.next()).toEqual({ data: { search: [] } });
    expect(await b.next()).toEqual({ data: { search: [{ title: 'Book 6' }] } });
    // every cached query of the name is asked once (earlier tests' searches are still cached)
    expect(q.asked.filter((x) => x === 'text=a&limit=20')).toHaveLength(1);
    expect(q.asked.filter((x) => x === 'text=b&limit=20')).toHaveLength(1);
    q.stop();
    await closeClients(gw, client);
  });
});
