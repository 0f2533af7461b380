import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { TestService } from './helpers/res-service.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { subscribeSse, subscribeWs, wsClient } from './helpers/live-client.js';

let nats: NatsServer;
let svc: TestService;
let gw: TestGateway;

beforeAll(async () => {
  nats = await startNatsServer();
  svc = await TestService.start(nats.url);
  svc.model('library.book.1', { id: 1, title: 'Dune', author: { rid: 'library.author.1' }, tags: { rid: 'library.book.1.tags' } })
    .collection('library.book.1.tags', ['scifi'])
    .model('library.author.1', { name: 'Herbert', books: { rid: 'library.author.1.books' } })
    .collection('library.author.1.books', [{ rid: 'library.book.1' }]);
  gw = await startTestGateway(nats.url, readFileSync('schema/library.graphql', 'utf8'));
});

afterAll(async () => {
  await gw?.close();
  await svc?.close();
  await nats?.stop();
});

describe('live smoke', () => {
  it('streams a change over graphql-ws', async () => {
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 1) { title author { name } } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Dune', author: { name: 'Herbert' } } } });
    await svc.change('library.book.1', { title: 'Dune Messiah' });
    expect(await s.next()).toEqual({ data: { book: { title: 'Dune Messiah', author: { name: 'Herbert' } } } });
    await svc.change('library.author.1', { name: 'Frank Herbert' });
    expect(await s.next()).toEqual({ data: { book: { title: 'Dune Messiah', author: { name: 'Frank Herbert' } } } });
    s.dispose();
    await client.dispose();
  });

  it('streams a change over SSE', async () => {
    const s = subscribeSse(gw.url, 'subscription { book(id: 1) { title tags } }');
    const first = await s.next();
    expect(first.data.book.tags).toEqual(['scifi']);
    await svc.add('library.book.1.tags', 'classic', 1);
    expect((await s.next()).data.book.tags).toEqual(['scifi', 'classic']);
    s.dispose();
  });
});
