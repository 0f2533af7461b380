/**
 * Schema reload, through `node dist/cli.js` and real clients: SIGHUP (and
 * `--watch-schema`) loads the schema again. A valid schema serves new
 * operations at once; each open stream whose operation still validates
 * goes on without a break or a repeated result (graphql-ws, Yoga's SSE,
 * graphql-sse's single connection), one that no longer validates ends with
 * `system.schemaChanged`; an invalid schema is refused, its problems
 * logged, and the schema before it is still served. With `--workers 2` the
 * primary's SIGHUP reloads every worker. In-process: a stream validated
 * against a schema that a reload replaced before the stream started (while
 * its header auth was answered) is checked against the new one.
 *
 * The tests of the first block run in order and share one gateway.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type Client as SseClient } from 'graphql-sse';
import type { Client as WsClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, startGatewayProcess, type GatewayProcess } from './helpers/cli-gateway.js';
import { gql, queryOnNewConnection, startTestGateway } from './helpers/gateway.js';
import { ResultStream, subscribeSse, subscribeWs, wsClient, type StreamResult } from './helpers/live-client.js';
import { scrape } from './helpers/metrics.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { TestService } from './helpers/res-service.js';
import { SchemaError } from '../src/schema/schema.js';
import { gate, waitFor } from './helpers/wait.js';

/** The schema the gateway starts with, and its versions, by Book's fields beside `title` and the `@event` streams on Subscription. */
const bookSchema = (fields: string, events: string) => /* GraphQL */ `
type Book @resource(rid: "library.book.{id}") {
  title: String
${fields}
}

type Query {
  book(id: ID!): Book @get(rid: "library.book.{id}")
}

type Subscription {
${events}
}
`;
const notes = '  notes(id: ID!): JSON @event(rid: "library.book.{id}", name: "note")';
const pings = '  pings(id: ID!): JSON @event(rid: "library.book.{id}", name: "ping")';
const v1 = bookSchema('  pages: Int', `${notes}\n${pings}`);
const v2 = bookSchema('  pages: Int\n  subtitle: String', `${notes}\n${pings}`);
/** v2 without `pages` and `notes` */
const v3 = bookSchema('  subtitle: String', pings);

let nats: NatsServer;
let svc: TestService;
const dirs: string[] = [];
const gateways: GatewayProcess[] = [];

/** A folder holding one schema file, for a gateway's `--schema`. */
function schemaFolder(sdl: string): { dir: string; file: string; write(sdl: string): void } {
  const dir = mkdtempSync(join(tmpdir(), 'resgraph-reload-'));
  dirs.push(dir);
  const file = join(dir, 'library.graphql');
  writeFileSync(file, sdl);
  return { dir, file, write: (text) => writeFileSync(file, text) };
}

async function startGateway(args: string[], timeoutMs?: number): Promise<GatewayProcess> {
  const gw = await startGatewayProcess(['--port', '0', '--nats', nats.url, ...args], timeoutMs);
  gateways.push(gw);
  return gw;
}

/** How often a log line matching `pattern` has been written so far. */
const count = (gw: GatewayProcess, pattern: RegExp) => gw.output().match(new RegExp(pattern.source, 'g'))?.length ?? 0;

/** Sends SIGHUP and resolves with the last log line of the reload's outcome (applied or refused), once `times` more were written. */
async function hangUp(gw: GatewayProcess, outcome: 'reloaded' | 'refused', times = 1): Promise<string> {
  const pattern = outcome === 'reloaded' ? /INFO schema reloaded .*/ : /ERROR schema reload refused.*/;
  const before = count(gw, pattern);
  gw.child.kill('SIGHUP');
  await waitFor(() => count(gw, pattern) >= before + times, 10_000, `the log line of the reload (${outcome})`);
  return gw.output().match(new RegExp(pattern.source, 'g'))!.at(-1)!;
}

/**
 * Resolves once an `@event` stream of library.book.1 gets its events (it
 * starts listening a few steps after the subscribe): publishes until one
 * comes, then a marker, and takes every result up to the marker.
 */
async function listening(stream: ResultStream, event: string): Promise<void> {
  await waitFor(
    async () => {
      await svc.event('library.book.1', event, { warmup: true });
      return stream.pending > 0;
    },
    5000,
    `the ${event} stream to listen`,
  );
  await svc.event('library.book.1', event, { marker: true });
  while (!JSON.stringify(await stream.next(5000)).includes('"marker":true'));
}

beforeAll(async () => {
  await ensureBuilt();
  nats = await startNatsServer();
  svc = await TestService.start(nats.url);
  svc.model('library.book.1', { title: 'Dune', pages: 412, subtitle: 'Book one' });
}, 60_000);

afterAll(async () => {
  for (const gw of gateways) await gw.kill();
  await svc?.close();
  await nats?.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}, 30_000);

describe('SIGHUP with streams open', { timeout: 30_000 }, () => {
  let gw: GatewayProcess;
  let schema: ReturnType<typeof schemaFolder>;
  let ws: WsClient;
  let sse: SseClient<true>;
  let wsTitle: ResultStream;
  let sseTitle: ResultStream;
  let ssePages: ResultStream;
  let wsNotes: ResultStream;
  let ssePings: ResultStream;

  beforeAll(async () => {
    schema = schemaFolder(v1);
    gw = await startGateway(['--schema', schema.dir]);
    ws = wsClient(gw.url);
    sse = createClient({ url: gw.url, singleConnection: true, retryAttempts: 0 });
  }, 30_000);

  afterAll(() => {
    ws?.dispose();
    sse?.dispose();
  });

  /** A graphql-sse single-connection subscription, as a ResultStream. */
  function subscribeSingleSse(query: string): ResultStream {
    const s = new ResultStream();
    s.dispose = sse.subscribe({ query }, { next: (r) => s.push(r as StreamResult), error: (e) => s.end(e), complete: () => s.end() });
    return s;
  }

  it('keeps the streams open across a reload that adds a field, with no repeated result, and serves the new field at once', async () => {
    wsTitle = subscribeWs(ws, 'subscription { book(id: "1") { title } }');
    sseTitle = subscribeSse(gw.url, 'subscription { book(id: "1") { title } }');
    ssePages = subscribeSingleSse('subscription { book(id: "1") { title pages } }');
    wsNotes = subscribeWs(ws, 'subscription { notes(id: "1") }');
    ssePings = subscribeSingleSse('subscription { pings(id: "1") }');
    expect((await wsTitle.next(5000)).data).toEqual({ book: { title: 'Dune' } });
    expect((await sseTitle.next(5000)).data).toEqual({ book: { title: 'Dune' } });
    expect((await ssePages.next(5000)).data).toEqual({ book: { title: 'Dune', pages: 412 } });
    await listening(wsNotes, 'note');
    await listening(ssePings, 'ping');
    await svc.event('library.book.1', 'note', { text: 'spice' });
    expect((await wsNotes.next(5000)).data).toEqual({ notes: { text: 'spice' } });
    await svc.event('library.book.1', 'ping', { n: 1 });
    expect((await ssePings.next(5000)).data).toEqual({ pings: { n: 1 } });

    // refused before the reload (and remembered so by the document caches of HTTP and WebSocket)
    const subtitleQuery = '{ book(id: "1") { subtitle } }';
    expect((await gql(gw.url, subtitleQuery)).errors?.[0].message).toMatch(/Cannot query field "subtitle"/);
    const early = subscribeWs(ws, 'subscription { book(id: "1") { subtitle } }');
    await early.completed;
    expect(early.error).toBeDefined();

    schema.write(v2);
    const line = await hangUp(gw, 'reloaded');
    expect(line).toContain('"generation":2');
    expect(line).toContain('"streamsContinued":5');
    expect(line).toContain('"streamsEnded":0');

    // the new field, at once: over HTTP and on a new WebSocket subscription
    expect(await gql(gw.url, subtitleQuery)).toEqual({ data: { book: { subtitle: 'Book one' } } });
    const subtitle = subscribeWs(ws, 'subscription { book(id: "1") { subtitle } }');
    expect((await subtitle.next(5000)).data).toEqual({ book: { subtitle: 'Book one' } });
    subtitle.dispose();

    // the next event arrives on every stream, and is the next result each gets: nothing was sent again at the reload
    await svc.change('library.book.1', { title: 'Dune Messiah' });
    expect((await wsTitle.next(5000)).data).toEqual({ book: { title: 'Dune Messiah' } });
    expect((await sseTitle.next(5000)).data).toEqual({ book: { title: 'Dune Messiah' } });
    expect((await ssePages.next(5000)).data).toEqual({ book: { title: 'Dune Messiah', pages: 412 } });
    await svc.event('library.book.1', 'note', { text: 'sandworm' });
    expect((await wsNotes.next(5000)).data).toEqual({ notes: { text: 'sandworm' } });
    for (const s of [wsTitle, sseTitle, ssePages, wsNotes, ssePings]) {
      expect(s.done).toBe(false);
      expect(s.pending).toBe(0);
    }
  });

  it('ends the streams whose operations use a field the reloaded schema removed, with system.schemaChanged; the others go on', async () => {
    schema.write(v3);
    const line = await hangUp(gw, 'reloaded');
    expect(line).toContain('"streamsContinued":3');
    expect(line).toContain('"streamsEnded":2');

    const ended = await ssePages.next(5000);
    expect(ended.data).toBeUndefined();
    expect(ended.errors).toEqual([
      {
        message: 'The operation no longer validates against the reloaded schema: Cannot query field "pages" on type "Book".',
        extensions: { code: 'system.schemaChanged' },
      },
    ]);
    await ssePages.completed;
    expect(ssePages.error).toBeUndefined();
    // an @event stream alike
    const notesEnded = await wsNotes.next(5000);
    expect(notesEnded.errors).toEqual([
      {
        message: 'The operation no longer validates against the reloaded schema: Cannot query field "notes" on type "Subscription".',
        extensions: { code: 'system.schemaChanged' },
      },
    ]);
    await wsNotes.completed;
    expect(wsNotes.error).toBeUndefined();
    await svc.event('library.book.1', 'ping', { n: 2 });
    expect((await ssePings.next(5000)).data).toEqual({ pings: { n: 2 } });

    await svc.change('library.book.1', { title: 'Children of Dune' });
    expect((await wsTitle.next(5000)).data).toEqual({ book: { title: 'Children of Dune' } });
    expect((await sseTitle.next(5000)).data).toEqual({ book: { title: 'Children of Dune' } });
    expect((await gql(gw.url, '{ book(id: "1") { pages } }')).errors?.[0].message).toMatch(/Cannot query field "pages"/);
  });

  it('refuses an invalid schema with every problem logged, and keeps serving the one before', async () => {
    const invalid = [
      // a syntax error: the file cut short
      { sdl: v2.slice(0, v2.indexOf('subtitle')), problem: /"problem":"[^"]*library\.graphql:5: Syntax Error: Expected Name, found <EOF>\."/ },
      { sdl: v3.replace('@get(rid: "library.book.{id}")', '@get(rid: "library.book.{id}", ttl: 5)'), problem: /"problem":"Unknown argument \\"ttl\\" on directive \\"@get\\"\."/ },
      {
        sdl: v3 + 'interface Named { name: String! }\ntype Author implements Named { name: Int }\n',
        problem: /"problem":"Interface field Named\.name expects type String! but Author\.name is type Int\."/,
      },
    ];
    for (const { sdl, problem } of invalid) {
      const before = count(gw, problem);
      schema.write(sdl);
      expect(await hangUp(gw, 'refused')).toContain('"generation":3');
      expect(count(gw, problem)).toBe(before + 1);
    }
    expect(count(gw, /ERROR schema problem/)).toBe(3);

    // still the schema of generation 3, and the streams go on
    expect(await gql(gw.url, '{ book(id: "1") { title subtitle } }')).toEqual({ data: { book: { title: 'Children of Dune', subtitle: 'Book one' } } });
    await svc.change('library.book.1', { title: 'God Emperor of Dune' });
    expect((await wsTitle.next(5000)).data).toEqual({ book: { title: 'God Emperor of Dune' } });
    expect((await sseTitle.next(5000)).data).toEqual({ book: { title: 'God Emperor of Dune' } });

    const m = await scrape(gw.metricsUrl);
    expect(m.value('resgraph_schema_reloads_total', { outcome: 'applied' })).toBe(2);
    expect(m.value('resgraph_schema_reloads_total', { outcome: 'refused' })).toBe(3);
  });
});

describe('--watch-schema', { timeout: 30_000 }, () => {
  it('reloads when the file is written: a half-written file is refused, the whole one then applied', async () => {
    svc.model('library.book.2', { title: 'Kindred', pages: 264, subtitle: 'A novel' });
    const schema = schemaFolder(v1);
    const gw = await startGateway(['--schema', schema.file, '--watch-schema']);
    const live = subscribeSse(gw.url, 'subscription { book(id: "2") { title } }');
    expect((await live.next(5000)).data).toEqual({ book: { title: 'Kindred' } });

    schema.write(v2.slice(0, v2.indexOf('subtitle')));
    await waitFor(() => count(gw, /ERROR schema reload refused/) === 1, 10_000, 'the half-written file to be refused');
    expect(gw.output()).toMatch(/ERROR schema problem \{"problem":"[^"]*Syntax Error/);
    schema.write(v2);
    await waitFor(() => count(gw, /INFO schema reloaded/) === 1, 10_000, 'the whole file to be applied');

    expect(await gql(gw.url, '{ book(id: "2") { subtitle } }')).toEqual({ data: { book: { subtitle: 'A novel' } } });
    await svc.change('library.book.2', { title: 'Parable of the Sower' });
    expect((await live.next(5000)).data).toEqual({ book: { title: 'Parable of the Sower' } });
    expect(live.pending).toBe(0);
    live.dispose();
  });
});

describe('--workers 2', { timeout: 60_000 }, () => {
  it("reloads every worker on the primary's SIGHUP", async () => {
    const schema = schemaFolder(v1);
    const fleet = await startGateway(['--schema', schema.dir, '--workers', '2'], 40_000);
    schema.write(v2);
    const before = count(fleet, /INFO schema reloaded/);
    await hangUp(fleet, 'reloaded', 2);
    expect(count(fleet, /INFO schema reloaded/)).toBe(before + 2);
    expect(fleet.output()).toMatch(/SIGHUP received; every worker reloads the schema \{"workers":2\}/);
    // every connection, whichever worker takes it, gets the new schema
    for (let i = 0; i < 6; i++) {
      expect(await queryOnNewConnection(fleet.url, '{ book(id: "1") { subtitle } }')).toEqual({ data: { book: { subtitle: 'Book one' } } });
    }
    fleet.child.kill('SIGTERM');
    expect((await fleet.exited).code).toBe(0);
  });
});

describe('a reload between validation and execution', { timeout: 30_000 }, () => {
  it("checks a stream validated against the schema before against the reloaded one: it ends when it no longer validates, else it runs", async () => {
    svc.model('library.book.3', { title: 'Solaris', pages: 204, subtitle: 'A novel' });
    const schema = schemaFolder(v2);
    const gw = await startTestGateway(nats.url, v2, { schema: schema.dir, headerAuth: 'session.header' });
    try {
      // Yoga validates a request, then authenticates its connection, then runs it: the auth reply is held
      const held = gate();
      svc.handle('auth.session.header', async () => {
        await held.promise;
        return { result: null };
      });
      const authAsked = svc.nextRequest((r) => r.subject === 'auth.session.header', 5000);
      const pages = subscribeSse(gw.url, 'subscription { book(id: "3") { pages } }');
      const title = subscribeSse(gw.url, 'subscription { book(id: "3") { title } }');
      await authAsked;
      await waitFor(() => svc.count('auth.session.header') === 2, 5000, 'both streams to be authenticating');

      schema.write(v3);
      expect(gw.reloadSchema()).toEqual({ ok: true, generation: 2, streamsContinued: 0, streamsEnded: 0 });
      held.open();

      const ended = await pages.next(5000);
      expect(ended.errors?.[0].extensions?.code).toBe('system.schemaChanged');
      expect(ended.errors?.[0].message).toContain('Cannot query field "pages" on type "Book".');
      await pages.completed;
      expect((await title.next(5000)).data).toEqual({ book: { title: 'Solaris' } });
      title.dispose();
    } finally {
      await gw.close();
    }
  });
});

describe('start-up', () => {
  it('refuses a schema that GraphQL finds invalid, as a reload does (it used to start, then fail every request)', async () => {
    const invalid = v3 + 'interface Named { name: String! }\ntype Author implements Named { name: Int }\n';
    const refused = startTestGateway(nats.url, invalid);
    await expect(refused).rejects.toThrow(SchemaError);
    await expect(refused).rejects.toThrow(/Interface field Named\.name expects type String! but Author\.name is type Int\./);
  });
});
