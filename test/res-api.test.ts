/**
 * Resgate's HTTP API under /api, differentially: the same fixture service
 * serves resgraph and Resgate 1.8.0 on one nats-server, every HTTP case is
 * sent to both, and status, Location, Set-Cookie, content type and body must
 * be equal (an error body's message only where it is the gateway's own text
 * for the same code). The service must see no more get or access requests
 * from resgraph than from Resgate.
 *
 * The two runs use disjoint rids (every rid holds the run's key, `xG9` or `xR9`,
 * where the cases say `$K`), so neither gateway's cache answers for the
 * other; hrefs and Locations are compared after mapping the key back.
 *
 * The cases that need no Resgate (CSRF, drain, the off switch) run always;
 * the differential ones are skipped, with a printed reason, without the binary.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { findResgate, startResgate, type ResgateServer } from './helpers/resgate.js';
import { TestService } from './helpers/res-service.js';
import { scrape } from './helpers/metrics.js';
import { gate, waitFor } from './helpers/wait.js';

const found = findResgate();
const resgateBin = 'bin' in found ? found.bin : undefined;
if (!resgateBin) console.warn(`res-api.test.ts differential cases skipped: ${'reason' in found ? found.reason : ''}`);

const sdl = /* GraphQL */ `
  type Book @resource(rid: "api.book.{id}") {
    id: ID! @rid
    title: String
  }
  type Query {
    book(id: ID!): Book @get(rid: "api.book.{id}")
  }
`;

const enc = new TextEncoder();
/** the run keys: text that appears in no gateway's own output */
const ours = 'xG9';
const theirs = 'xR9';
let nats: NatsServer;
let svc: TestService;
let gw: TestGateway;
let resgate: ResgateServer | undefined;

/** The fixture for one run key. */
function addFixture(s: TestService, k: string): void {
  s.model(`api.book.${k}1`, {
    title: 'Dune',
    year: 1965,
    author: { rid: `api.author.${k}1` },
    related: { rid: `api.book.${k}2`, soft: true },
    extra: { data: { a: [1, 2] } },
  });
  s.model(`api.book.${k}2`, { title: 'Emma', author: { rid: `api.author.${k}1` } });
  s.model(`api.author.${k}1`, { name: 'Frank', books: { rid: `api.books.${k}` } });
  s.collection(`api.books.${k}`, [{ rid: `api.book.${k}1` }, { rid: `api.book.${k}2` }, { rid: `api.book.${k}gone` }, 'loose', 42]);
  s.model(`api.search.${k}?tag=x`, { hits: 1 });
  s.model(`api.secret.${k}`, { x: 1 });
  s.model(`api.private.${k}`, { who: 'alice' });
  s.model(`api.odd.${k}`, { x: 1 });
  s.model(`api.moved.${k}`, { x: 1 });
  s.accessRules.set(`api.secret.${k}`, { get: false });
}

/** `call.api.book.<key>1.<method>` → `api.book.<key>2`: the run's other book */
const secondBook = (subject: string) => `api.book.${subject.split('.')[3].replace(/1$/, '')}2`;

function installService(s: TestService): void {
  s.handle('access.api.private.*', (p) => ({ result: { get: p.token?.user === 'alice', call: '*' } }));
  s.handle('access.api.broken.*', () => ({ error: { code: 'api.oops', message: 'Oops', data: { n: 1 } } }));
  s.handle('access.api.unknown.*', () => ({ error: { code: 'system.notFound', message: 'Not found' } }));
  s.handle('access.api.odd.*', () => ({ result: { get: true }, meta: { status: 401, header: { 'Www-Authenticate': ['Cookie'] } } }));
  s.handle('access.api.moved.*', () => ({ result: { get: true }, meta: { status: 302, header: { Location: ['/elsewhere'] } } }));
  s.handle('call.api.book.*.set', () => ({ result: { ok: true } }));
  s.handle('call.api.book.*.none', () => ({ result: null }));
  s.handle('call.api.book.*.make', (_p, subject) => ({ resource: { rid: secondBook(subject) } }));
  s.handle('call.api.book.*.new', (_p, subject) => ({ result: { rid: secondBook(subject) } }));
  s.handle('call.api.book.*.fail', () => ({ error: { code: 'api.bad', message: 'Bad', data: { why: 1 } } }));
  s.handle('call.api.book.*.teapot', () => ({ result: 1, meta: { status: 418 } }));
  s.handle('call.api.book.*.away', (_p, subject) => ({ resource: { rid: secondBook(subject) }, meta: { status: 303 } }));
  s.handle('call.api.book.*.login', () => ({
    result: true,
    meta: { header: { 'Set-Cookie': ['session=alice; Path=/'], 'X-Extra': ['1'] } },
  }));
  s.handle('call.api.book.*.echo', (p) => ({ result: { params: p.params ?? 'none', isHttp: p.isHttp ?? false } }));
  // header auth: a session cookie becomes a token; an expired one is refused with 401 and cleared
  s.handle('auth.session.cookie', (p) => {
    const session = /(?:^|;\s*)session=(\w+)/.exec(p.header?.Cookie?.[0] ?? '')?.[1];
    if (session === 'expired') {
      return { error: { code: 'session.expired', message: 'Expired' }, meta: { status: 401, header: { 'Set-Cookie': ['session=; Max-Age=0'] } } };
    }
    if (session) s.nc.publish(`conn.${p.cid}.token`, enc.encode(JSON.stringify({ token: { user: session } })));
    return { result: null };
  });
}

beforeAll(async () => {
  nats = await startNatsServer();
  svc = await TestService.start(nats.url);
  installService(svc);
  addFixture(svc, ours);
  addFixture(svc, theirs);
  gw = await startTestGateway(nats.url, sdl, { headerAuth: 'session.cookie' });
  if (resgateBin) resgate = await startResgate(resgateBin, nats.url, { args: ['-u', 'session.cookie'] });
});

afterAll(async () => {
  await gw?.close();
  await resgate?.stop();
  await svc?.close();
  await nats?.stop();
});

interface Case {
  name: string;
  method?: string;
  /** with `$K` for the run key */
  path: string;
  body?: string;
  headers?: Record<string, string>;
}

interface Seen {
  status: number;
  location: string | null;
  contentType: string | null;
  setCookie: string[];
  extra: string | null;
  body: unknown;
}

async function send(base: string, key: string, c: Case): Promise<Seen> {
  const response = await fetch(base + c.path.replaceAll('$K', key), {
    method: c.method ?? 'GET',
    redirect: 'manual',
    headers: { 'content-type': 'application/json', ...c.headers },
    body: c.body,
  });
  const text = (await response.text()).replaceAll(key, '$K');
  let body: unknown = text === '' ? '' : JSON.parse(text);
  // the gateways' own wording of a body that does not parse differs (Go's and V8's JSON errors)
  if (isError(body) && body.message.startsWith('Error decoding request body')) body = { code: body.code };
  return {
    status: response.status,
    location: response.headers.get('location')?.replaceAll(key, '$K') ?? null,
    contentType: response.status === 204 || text === '' ? null : response.headers.get('content-type'),
    setCookie: response.headers.getSetCookie(),
    extra: response.headers.get('x-extra') ?? response.headers.get('www-authenticate'),
    body,
  };
}

function isError(v: unknown): v is { code: string; message: string } {
  return typeof v === 'object' && v !== null && typeof (v as { code?: unknown }).code === 'string' && typeof (v as { message?: unknown }).message === 'string';
}

const cases: Case[] = [
  { name: 'a model: hard references nested, a cycle as an href, a soft reference, a data value', path: '/api/api/book/$K1' },
  { name: 'a collection, with a reference that fails', path: '/api/api/books/$K' },
  { name: 'a model reached through a collection', path: '/api/api/author/$K1' },
  { name: 'a query resource', path: '/api/api/search/$K?tag=x' },
  { name: 'an escaped path part', path: '/api/api/book/$K%31' },
  { name: 'not found', path: '/api/api/book/$Kmissing' },
  { name: 'access denied', path: '/api/api/secret/$K' },
  { name: 'an access request that fails', path: '/api/api/broken/$K' },
  { name: 'a call whose access request fails', method: 'POST', path: '/api/api/broken/$K/set' },
  { name: 'an access request answered system.notFound', path: '/api/api/unknown/$K' },
  { name: 'access through header auth, without the cookie', path: '/api/api/private/$K' },
  { name: 'access through header auth, with the cookie', path: '/api/api/private/$K', headers: { cookie: 'session=alice' } },
  { name: 'header auth refusing with a 401 meta status', path: '/api/api/book/$K1', headers: { cookie: 'session=expired' } },
  { name: 'an access reply with a 401 meta status and a header', path: '/api/api/odd/$K' },
  { name: 'an access reply redirecting', path: '/api/api/moved/$K' },
  { name: 'a trailing slash', path: '/api/api/book/$K1/' },
  { name: 'a dot in the path', path: '/api/api.book.$K1' },
  { name: 'an empty path part', path: '/api/api//book/$K1' },
  { name: 'a name that is not ASCII', path: '/api/api/bøøk/$K1' },
  { name: 'the API root', path: '/api/' },
  { name: 'HEAD', method: 'HEAD', path: '/api/api/book/$K2' },
  { name: 'PUT without a mapped method', method: 'PUT', path: '/api/api/book/$K1' },
  { name: 'a call with a result', method: 'POST', path: '/api/api/book/$K1/set', body: '{"title":"x"}' },
  { name: 'a call with a null result', method: 'POST', path: '/api/api/book/$K1/none' },
  { name: 'a call with a resource reply', method: 'POST', path: '/api/api/book/$K1/make' },
  { name: 'new answered the old way, with {rid} as its result', method: 'POST', path: '/api/api/book/$K1/new' },
  { name: 'a call with an error reply', method: 'POST', path: '/api/api/book/$K1/fail' },
  { name: 'a call with a 418 meta status and no error', method: 'POST', path: '/api/api/book/$K1/teapot' },
  { name: 'a call with a resource and a 303 meta status', method: 'POST', path: '/api/api/book/$K1/away' },
  { name: 'a call setting a cookie through meta', method: 'POST', path: '/api/api/book/$K1/login' },
  { name: 'a call gets the body as params', method: 'POST', path: '/api/api/book/$K1/echo', body: '{"a":[1,"b"]}' },
  { name: 'a call with an empty body has no params', method: 'POST', path: '/api/api/book/$K1/echo', body: '  ' },
  { name: 'a body that is not JSON', method: 'POST', path: '/api/api/book/$K1/echo', body: '{nope' },
  { name: 'a method nobody answers', method: 'POST', path: '/api/api/book/$K1/nothing' },
  { name: 'a call without access', method: 'POST', path: '/api/api/secret/$K/set' },
  { name: 'a call without a method', method: 'POST', path: '/api/api' },
  { name: 'a call with a trailing slash', method: 'POST', path: '/api/api/book/$K1/set/' },
  { name: 'a call with an empty path part', method: 'POST', path: '/api/api//book/$K1/set' },
  { name: 'a call of a method that is not ASCII', method: 'POST', path: '/api/api/book/$K1/sét' },
  { name: 'a call with a dot in the path', method: 'POST', path: '/api/api.book.$K1/set' },
  { name: 'a call with a query', method: 'POST', path: '/api/api/book/$K1/echo?x=1', body: '1' },
  { name: 'a call with null as its body', method: 'POST', path: '/api/api/book/$K1/echo', body: 'null' },
  { name: 'a call with an array as its body', method: 'POST', path: '/api/api/book/$K1/echo', body: '[1,"two"]' },
  { name: 'a call with a string as its body', method: 'POST', path: '/api/api/book/$K1/echo', body: '"text"' },
  { name: 'a query resource with an escaped value', path: '/api/api/search/$K?tag=a%20b&x=%2F' },
];

const apiBase = () => gw.url.replace(/\/graphql$/, '');

const countOf = (prefix: string, key: string) =>
  svc.requests.filter((r) => r.subject.startsWith(prefix) && r.subject.includes(`.${key}`)).length;

describe.skipIf(!resgateBin)('the HTTP API against Resgate', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    expect(await send(apiBase(), ours, c)).toEqual(await send(resgate!.url, theirs, c));
  });

  it('the service saw no more get or access requests from resgraph than from Resgate', () => {
    for (const type of ['get.', 'access.']) expect(countOf(type, ours)).toBeLessThanOrEqual(countOf(type, theirs));
    expect(countOf('get.', ours)).toBeGreaterThan(0);
  });
});

describe('the HTTP API in resgraph', () => {
  it('refuses a form or text POST that another site could have sent, before any service is asked', async () => {
    svc.requests.length = 0;
    const path = `${apiBase()}/api/api/book/${ours}1/set`;
    const forged = await fetch(path, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' });
    expect(forged.status).toBe(403);
    expect(await forged.json()).toMatchObject({ code: 'system.forbidden' });
    const form = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=1' });
    expect(form.status).toBe(403);
    expect(svc.requests).toEqual([]);
    // the same with a CSRF header, as a script of the page's own origin would send it
    const withHeader = await fetch(path, { method: 'POST', headers: { 'content-type': 'text/plain', 'x-graphql-yoga-csrf': '1' }, body: '{}' });
    expect(withHeader.status).toBe(200);
  });

  it('refuses a page of another origin before any service is asked', async () => {
    svc.requests.length = 0;
    const out = await fetch(`${apiBase()}/api/api/book/${ours}1`, { headers: { origin: 'https://evil.example' } });
    expect(out.status).toBe(403);
    expect(svc.requests).toEqual([]);
  });

  it('shares the cache with GraphQL: a query and a GET of one resource cost one get', async () => {
    svc.model(`api.book.${ours}shared`, { title: 'Shared' });
    const r = await fetch(gw.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: `{ book(id: "${ours}shared") { title } }` }),
    });
    expect(await r.json()).toEqual({ data: { book: { title: 'Shared' } } });
    const api = await fetch(`${apiBase()}/api/api/book/${ours}shared`);
    expect(await api.json()).toEqual({ title: 'Shared' });
    expect(svc.count(`get.api.book.${ours}shared`)).toBe(1);
  });

  it('counts a request in progress as a res connection, and a drain waits for it and refuses new ones', async () => {
    const own = await startTestGateway(nats.url, sdl);
    const base = own.url.replace(/\/graphql$/, '');
    const held = gate<void>();
    svc.handle(`call.api.book.${ours}1.slow`, async () => {
      await held.promise;
      return { result: 'done' };
    });
    const slow = fetch(`${base}/api/api/book/${ours}1/slow`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    await svc.nextRequest(`call.api.book.${ours}1.slow`);
    expect((await scrape(own.metricsUrl!)).value('resgraph_connections', { transport: 'res' })).toBe(1);
    const drained = own.drain();
    await waitFor(() => own.draining);
    const refused = await fetch(`${base}/api/api/book/${ours}1`);
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ code: 'system.serviceUnavailable' });
    held.open();
    const answered = await slow;
    expect(answered.status).toBe(200);
    expect(await answered.json()).toBe('done');
    expect((await drained).forced).toBe(false);
  });

  it('is off with resgateApi: false', async () => {
    const off = await startTestGateway(nats.url, sdl, { resgateApi: false });
    try {
      svc.requests.length = 0;
      const out = await fetch(`${off.url.replace(/\/graphql$/, '')}/api/api/book/${ours}1`);
      expect(out.status).toBe(404);
      expect(svc.requests).toEqual([]);
    } finally {
      await off.close();
    }
  });

  it('serves at another path with apiPath', async () => {
    const moved = await startTestGateway(nats.url, sdl, { apiPath: '/res/' });
    try {
      const out = await fetch(`${moved.url.replace(/\/graphql$/, '')}/res/api/book/${ours}2`);
      expect(await out.json()).toEqual({ title: 'Emma', author: { href: `/res/api/author/${ours}1`, model: { name: 'Frank', books: expect.anything() } } });
    } finally {
      await moved.close();
    }
  });
});
