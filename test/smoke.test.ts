import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { TestService } from './helpers/res-service.js';
import { gql, startTestGateway, type TestGateway } from './helpers/gateway.js';
import { readFileSync } from 'node:fs';

let nats: NatsServer;
let svc: TestService;
let gw: TestGateway;

beforeAll(async () => {
  nats = await startNatsServer();
  svc = await TestService.start(nats.url);
  svc.model('library.book.1', { id: 1, title: 'Dune', author: { rid: 'library.author.1' }, tags: { rid: 'library.book.1.tags' } })
    .collection('library.book.1.tags', ['scifi', 'classic'])
    .model('library.author.1', { name: 'Herbert', books: { rid: 'library.author.1.books' } })
    .collection('library.author.1.books', [{ rid: 'library.book.1' }]);
  gw = await startTestGateway(nats.url, readFileSync('schema/library.graphql', 'utf8'));
});

afterAll(async () => {
  await gw?.close();
  await svc?.close();
  await nats?.stop();
});

describe('smoke', () => {
  it('gets a book with its author', async () => {
    const r = await gql(gw.url, '{ book(id: 1) { id title tags author { name books { title } } } }');
    expect(r).toEqual({ data: { book: { id: 'library.book.1', title: 'Dune', tags: ['scifi', 'classic'], author: { name: 'Herbert', books: [{ title: 'Dune' }] } } } });
  });
});
