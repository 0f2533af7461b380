/**
 * The environment the live-result tests share: a real nats-server, the
 * in-memory test service and an in-process gateway, plus a small library
 * store where every test can add books and authors of its own (distinct ids
 * keep tests of one file independent of each other's changes).
 */
import type { GatewayOptions } from '../../src/server.js';
import { startTestEnv, type TestEnv } from './env.js';
import type { TestGateway } from './gateway.js';
import { liveCounts } from './metrics.js';
import type { TestService } from './res-service.js';
import { waitFor } from './wait.js';

/** The resource schema of the live tests. */
export const liveSdl = /* GraphQL */ `
type Book @resource(rid: "library.book.{id}") {
  id: ID! @rid
  title: String
  year: Int
  author: Author
  tags: [String!]
  "a soft reference"
  related: Book
}

type Author @resource(rid: "library.author.{id}") {
  id: ID! @rid
  name: String
  born: Int
  books: [Book!]
}

"a per-connection resource"
type Session @resource(rid: "session.{id}") {
  user: String
}

type Query {
  book(id: ID!): Book @get(rid: "library.book.{id}")
  author(id: ID!): Author @get(rid: "library.author.{id}")
  books: [Book!]! @get(rid: "library.books")
  shelf(id: ID!): [Book!]! @get(rid: "library.shelf.{id}")
  search(text: String!, limit: Int = 20): [Book!]! @get(rid: "library.books?text={text}&limit={limit}")
  session: Session @get(rid: "session.{cid}")
}
`;

/** Adds `library.book.<id>` of ratedBooksSdl (with its tags) to the service's store. */
export function putRatedBook(svc: TestService, id: number, title: string, rating: number, tags: string[] = []): void {
  svc.model(`library.book.${id}`, { title, rating, tags: ref(`library.book.${id}.tags`) });
  svc.collection(`library.book.${id}.tags`, tags);
}

export type LiveEnv = TestEnv;

export function startLiveEnv(opts: Partial<GatewayOptions> = {}, sdl = liveSdl): Promise<LiveEnv> {
  return startTestEnv(sdl, opts);
}

/** Adds `library.book.<id>` (by `library.author.<authorId>`, tagged) to the service's store. */
export function addBook(svc: TestService, id: number, title: string, authorId: number, extra: Record<string, unknown> = {}): void {
  svc.model(`library.book.${id}`, {
    title,
    year: 1965,
    author: { rid: `library.author.${authorId}` },
    tags: { rid: `library.book.${id}.tags` },
    ...extra,
  });
  svc.collection(`library.book.${id}.tags`, ['scifi']);
}

export function addAuthor(svc: TestService, id: number, name: string): void {
  svc.model(`library.author.${id}`, { name, born: 1920 });
}

/** A reference value, as services send it. */
export const ref = (rid: string) => ({ rid });

/**
 * Closes graphql-ws clients and waits (bounded) until the gateway has let go
 * of every live subscription, so the next test starts from zero.
 */
export async function closeClients(gw: TestGateway, ...clients: { dispose(): void | Promise<void> }[]): Promise<void> {
  for (const c of clients) await c.dispose();
  await waitFor(async () => (await liveCounts(gw)).subscribers === 0, 3000, 'the gateway to drop every live subscription');
}
