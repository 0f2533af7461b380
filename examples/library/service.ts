/**
 * The example library service: a RES service written by hand with the `nats`
 * package, serving the resources schema/library.graphql describes.
 *
 *   library.books                      collection: references to every book
 *   library.books?text=..&limit=..     query collection: books whose title contains text
 *   library.book.<id>                  model: id, title, author (ref), tags (ref), meta (data value)
 *   library.book.<id>.tags             collection of strings
 *   library.author.<id>                model: id, name, books (ref)
 *   library.author.<id>.books          collection: references to the author's books
 *   library.secret                     model only an admin may read (see session.ts)
 *
 * Methods: library.book.<id>.set {title}, library.books.add {title, authorId},
 * library.books.remove {id}; sessions: auth.library.session.login / logout /
 * header (session.ts). As the protocol requires, every event a call
 * causes is published before the call is answered.
 *
 * Run it:  npx tsx examples/library/service.ts [--nats nats://127.0.0.1:4222]
 * (or set NATS_URL), with the gateway's --nats-* options (or RESGRAPH_NATS_*
 * variables) for a secured NATS: TLS, creds file, NKey, token, user and
 * password. Data lives in memory and starts from the seed below.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { connect, createInbox, type Msg, type NatsConnection } from 'nats';
import { describeNatsError } from '../../src/res/nats-connection.js';
import {
  NatsOptionsError,
  natsConnectOptions,
  natsParseArgsOptions,
  readNatsClientOptions,
  redactServers,
  type NatsClientOptions,
} from '../../src/res/nats-options.js';
import { AuthError, handleSessionAuth, isSessionToken } from './session.js';

interface Book {
  id: number;
  title: string;
  authorId: number;
  tags: string[];
  meta: Record<string, unknown>;
}

interface Author {
  id: number;
  name: string;
}

type Reply =
  | { result: unknown }
  | { resource: { rid: string } }
  | { error: { code: string; message: string; data?: unknown } };

/** An error reply: a RES code (system.* or this service's own library.*), a message, optional data. */
class ServiceError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

const notFound = () => new ServiceError('system.notFound', 'Not found');
const invalidParams = (message: string) => new ServiceError('system.invalidParams', message);

const seedAuthors: Author[] = [
  { id: 1, name: 'Ursula K. Le Guin' },
  { id: 2, name: 'Frank Herbert' },
  { id: 3, name: 'Octavia E. Butler' },
];

const seedBooks: Book[] = [
  { id: 1, title: 'A Wizard of Earthsea', authorId: 1, tags: ['fantasy', 'classic'], meta: { year: 1968, pages: 183 } },
  { id: 2, title: 'The Left Hand of Darkness', authorId: 1, tags: ['science fiction'], meta: { year: 1969, pages: 286 } },
  { id: 3, title: 'Dune', authorId: 2, tags: ['science fiction', 'classic'], meta: { year: 1965, pages: 412 } },
  { id: 4, title: 'Kindred', authorId: 3, tags: ['fiction'], meta: { year: 1979, pages: 264 } },
  { id: 5, title: 'Parable of the Sower', authorId: 3, tags: ['science fiction', 'dystopia'], meta: { year: 1993, pages: 345 } },
];

const ref = (rid: string) => ({ rid });
const bookRid = (id: number) => `library.book.${id}`;

/** The library's state and the RES view of it. */
class Library {
  /** by id; a Map keeps insertion order, which is the order of every book collection */
  readonly books = new Map<number, Book>(seedBooks.map((b) => [b.id, { ...b, tags: [...b.tags], meta: { ...b.meta } }]));
  readonly authors = new Map<number, Author>(seedAuthors.map((a) => [a.id, { ...a }]));
  private nextBookId = Math.max(...seedBooks.map((b) => b.id)) + 1;

  bookModel(b: Book) {
    return {
      id: b.id,
      title: b.title,
      author: ref(`library.author.${b.authorId}`),
      tags: ref(`library.book.${b.id}.tags`),
      meta: { data: b.meta },
    };
  }

  authorModel(a: Author) {
    return { id: a.id, name: a.name, books: ref(`library.author.${a.id}.books`) };
  }

  allBooks(): Book[] {
    return [...this.books.values()];
  }

  booksBy(authorId: number): Book[] {
    return this.allBooks().filter((b) => b.authorId === authorId);
  }

  /** Books matching a search, as references. */
  search(q: SearchQuery): { rid: string }[] {
    return this.allBooks()
      .filter((b) => q.text === '' || b.title.toLowerCase().includes(q.text))
      .slice(0, q.limit)
      .map((b) => ref(bookRid(b.id)));
  }

  book(id: unknown): Book {
    const b = this.books.get(toId(id));
    if (!b) throw notFound();
    return b;
  }

  author(id: unknown): Author {
    const a = this.authors.get(toId(id));
    if (!a) throw notFound();
    return a;
  }

  addBook(title: string, authorId: number): Book {
    const b: Book = { id: this.nextBookId++, title, authorId, tags: [], meta: { added: new Date().toISOString() } };
    this.books.set(b.id, b);
    return b;
  }
}

/** A GraphQL ID arrives as a string ("3"); RES ids here are numbers. Anything else matches no resource. */
function toId(v: unknown): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  return Number.isSafeInteger(n) ? n : -1;
}

function validTitle(title: unknown): string {
  if (typeof title !== 'string' || title.trim() === '') {
    throw new ServiceError('library.invalidTitle', 'A title must be a non-empty string', { title: title ?? null });
  }
  return title.trim();
}

interface SearchQuery {
  text: string;
  limit: number;
}

/**
 * Reads a search query (`text=dune&limit=5`) and gives it in normalized form:
 * keys sorted, text lower-cased, default limit filled in, unknown keys
 * dropped. Two queries that mean the same search normalize to one string,
 * so the gateway keeps one cache entry for both.
 */
function parseSearch(query: string): { search: SearchQuery; normalized: string } {
  const params = new URLSearchParams(query);
  const text = (params.get('text') ?? '').trim().toLowerCase();
  const limitText = params.get('limit') ?? '20';
  const limit = /^\d+$/.test(limitText) ? Number(limitText) : NaN;
  if (!(limit >= 1 && limit <= 100)) {
    throw new ServiceError('system.invalidQuery', 'limit must be a whole number from 1 to 100');
  }
  const normalized = `limit=${limit}` + (text === '' ? '' : `&text=${encodeURIComponent(text)}`);
  return { search: { text, limit }, normalized };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface LibraryService {
  close(): Promise<void>;
}

export interface LibraryServiceOptions {
  /** told one line per request handled; silent by default */
  log?: (line: string) => void;
  /** TLS, credentials and client name for a secured NATS (default name: library-service) */
  natsClient?: NatsClientOptions;
}

/** Connects to NATS (one URL, or several separated by commas) and serves the library until closed. */
export async function startLibraryService(natsUrl: string, opts: LibraryServiceOptions = {}): Promise<LibraryService> {
  const log = opts.log ?? (() => {});
  const servers = natsUrl.split(',').map((u) => u.trim()).filter((u) => u !== '');
  const nc = await connect(natsConnectOptions(servers, opts.natsClient ?? {}, 'library-service'));
  const lib = new Library();

  const publish = (subject: string, payload?: unknown) =>
    nc.publish(subject, payload === undefined ? new Uint8Array() : encoder.encode(JSON.stringify(payload)));

  // Query resources: one subject the gateways ask "what is in this query now?".
  const querySubject = createInbox('library.query');
  const queriesMayHaveChanged = () => publish('event.library.books.query', { subject: querySubject });

  /** Answers every request on a subject pattern with what the handler returns or throws. */
  const serve = (pattern: string, handler: (name: string, payload: Record<string, unknown>) => Reply) => {
    const prefixLength = pattern.indexOf('.') + 1; // "get." / "access." / "call."
    nc.subscribe(pattern, {
      callback: (_err, msg: Msg) => {
        if (!msg.reply) return;
        let reply: Reply;
        try {
          reply = handler(msg.subject.slice(prefixLength), parsePayload(msg));
        } catch (e) {
          reply =
            e instanceof ServiceError
              ? { error: { code: e.code, message: e.message, ...(e.data === undefined ? {} : { data: e.data }) } }
              : { error: { code: 'system.internalError', message: 'Internal error' } };
          if (!(e instanceof ServiceError)) console.error('library service:', e);
        }
        msg.respond(encoder.encode(JSON.stringify(reply)));
      },
    });
  };

  // access: everyone may read and call everything; only an admin may read the secret.
  serve('access.library.>', (name, payload) => {
    if (name !== 'library.secret') return { result: { get: true, call: '*' } };
    return { result: { get: isSessionToken(payload.token) && payload.token.role === 'admin' } };
  });

  // sessions: password login, logout and header auth (see session.ts)
  nc.subscribe('auth.library.session.*', {
    callback: (_err, msg: Msg) => {
      const method = msg.subject.slice('auth.library.session.'.length);
      const answer = async (): Promise<Reply> => {
        try {
          return { result: await handleSessionAuth(nc, method, parsePayload(msg)) };
        } catch (e) {
          if (e instanceof AuthError || e instanceof ServiceError) return { error: { code: e.code, message: e.message } };
          console.error('library service:', e);
          return { error: { code: 'system.internalError', message: 'Internal error' } };
        }
      };
      void answer().then((reply) => msg.reply && msg.respond(encoder.encode(JSON.stringify(reply))));
    },
  });

  serve('get.library.>', (name, payload) => {
    log(`get ${name}${typeof payload.query === 'string' ? `?${payload.query}` : ''}`);
    return { result: getResource(name, payload.query) };
  });

  serve('call.library.>', (subject, payload) => {
    const dot = subject.lastIndexOf('.');
    const name = subject.slice(0, dot);
    const method = subject.slice(dot + 1);
    const params = (payload.params ?? {}) as Record<string, unknown>;
    if (typeof params !== 'object' || params === null || Array.isArray(params)) throw invalidParams('params must be an object');
    log(`call ${name}.${method} ${JSON.stringify(params)}`);
    return callMethod(name, method, params);
  });

  // What a query collection holds now (asked after an event.library.books.query).
  nc.subscribe(querySubject, {
    callback: (_err, msg) => {
      let reply: Reply;
      try {
        const query = parsePayload(msg).query;
        reply = { result: { collection: lib.search(parseSearch(typeof query === 'string' ? query : '').search) } };
      } catch (e) {
        const err = e instanceof ServiceError ? e : new ServiceError('system.internalError', 'Internal error');
        reply = { error: { code: err.code, message: err.message } };
      }
      msg.respond(encoder.encode(JSON.stringify(reply)));
    },
  });

  function getResource(name: string, query: unknown): unknown {
    if (name === 'library.books') {
      if (typeof query !== 'string') return { collection: lib.allBooks().map((b) => ref(bookRid(b.id))) };
      const { search, normalized } = parseSearch(query);
      return { collection: lib.search(search), query: normalized };
    }
    if (name === 'library.secret') return { model: { id: 'secret', title: 'The location of the hidden shelf' } };
    let m: RegExpExecArray | null;
    if ((m = /^library\.book\.([^.]+)$/.exec(name))) return { model: lib.bookModel(lib.book(m[1])) };
    if ((m = /^library\.book\.([^.]+)\.tags$/.exec(name))) return { collection: [...lib.book(m[1]).tags] };
    if ((m = /^library\.author\.([^.]+)$/.exec(name))) return { model: lib.authorModel(lib.author(m[1])) };
    if ((m = /^library\.author\.([^.]+)\.books$/.exec(name))) {
      return { collection: lib.booksBy(lib.author(m[1]).id).map((b) => ref(bookRid(b.id))) };
    }
    throw notFound();
  }

  function callMethod(name: string, method: string, params: Record<string, unknown>): Reply {
    const bookMatch = /^library\.book\.([^.]+)$/.exec(name);
    if (bookMatch) {
      const book = lib.book(bookMatch[1]);
      if (method !== 'set') throw new ServiceError('system.methodNotFound', 'Method not found');
      return setBook(book, params);
    }
    if (name === 'library.books') {
      if (method === 'add') return addBook(params);
      if (method === 'remove') return removeBook(params);
      throw new ServiceError('system.methodNotFound', 'Method not found');
    }
    getResource(name, undefined); // a known resource without methods, or not found
    throw new ServiceError('system.methodNotFound', 'Method not found');
  }

  function setBook(book: Book, params: Record<string, unknown>): Reply {
    const unknown = Object.keys(params).filter((k) => k !== 'title');
    if (unknown.length > 0) throw invalidParams(`Cannot set ${unknown.join(', ')}`);
    if (!('title' in params)) return { result: null };
    const title = validTitle(params.title);
    if (title !== book.title) {
      book.title = title;
      // the change event goes out before the reply (protocol rule)
      publish(`event.${bookRid(book.id)}.change`, { values: { title } });
      queriesMayHaveChanged();
    }
    return { result: null };
  }

  function addBook(params: Record<string, unknown>): Reply {
    const title = validTitle(params.title);
    const author = lib.authors.get(toId(params.authorId));
    if (!author) throw invalidParams(`No author with id ${JSON.stringify(params.authorId ?? null)}`);
    const book = lib.addBook(title, author.id);
    const value = ref(bookRid(book.id));
    publish('event.library.books.add', { value, idx: lib.allBooks().length - 1 });
    publish(`event.library.author.${author.id}.books.add`, { value, idx: lib.booksBy(author.id).length - 1 });
    queriesMayHaveChanged();
    return { resource: value };
  }

  function removeBook(params: Record<string, unknown>): Reply {
    const book = lib.book(params.id);
    const idx = lib.allBooks().indexOf(book);
    const authorIdx = lib.booksBy(book.authorId).indexOf(book);
    lib.books.delete(book.id);
    publish('event.library.books.remove', { idx });
    publish(`event.library.author.${book.authorId}.books.remove`, { idx: authorIdx });
    queriesMayHaveChanged();
    publish(`event.${bookRid(book.id)}.delete`);
    publish(`event.${bookRid(book.id)}.tags.delete`);
    return { result: null };
  }

  await nc.flush(); // the subscriptions are in place before anyone is told we are up
  return {
    async close() {
      if (nc.isClosed()) return;
      // drain lets requests in progress finish; without a broker it could wait for ever
      const giveUp = setTimeout(() => void nc.close(), 2000);
      await Promise.race([nc.drain().catch(() => nc.close()), nc.closed()]);
      clearTimeout(giveUp);
    },
  };
}

function parsePayload(msg: Msg): Record<string, unknown> {
  if (msg.data.length === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(decoder.decode(msg.data));
  } catch {
    throw invalidParams('request payload is not JSON');
  }
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

// --- run directly ------------------------------------------------------------

async function runFromCommandLine(): Promise<void> {
  let values: Record<string, string | undefined>;
  try {
    ({ values } = parseArgs({ options: { nats: { type: 'string' }, ...natsParseArgsOptions } }));
  } catch (e) {
    console.error(`library service: ${(e as Error).message.split('\n')[0]}`);
    process.exit(2);
  }
  const url = values.nats ?? process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
  const shown = redactServers(url).join(',');
  let service: LibraryService;
  try {
    service = await startLibraryService(url, { log: (line) => console.log(line), natsClient: readNatsClientOptions(values, process.env) });
  } catch (e) {
    if (e instanceof NatsOptionsError) {
      console.error(`library service: ${e.message}`);
      process.exit(2);
    }
    console.error(`library service: cannot connect to NATS at ${shown}: ${describeNatsError(e)}`);
    process.exit(1);
  }
  console.log(`library service ready on ${shown}`);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    service.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

function isEntryPoint(): boolean {
  try {
    return !!process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) void runFromCommandLine();
