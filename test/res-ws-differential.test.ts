/**
 * The RES client protocol, differentially: one scripted sequence of
 * requests and service events runs through resgraph and through Resgate
 * 1.8.0 (one fixture service, one nats-server), each with its own raw
 * protocol client (helpers/resgate.ts ResgateClient), and after every step
 * the request's result or error and the events pushed since the last step
 * must be equal, message for message. The service must see no more get or
 * access requests from resgraph than from Resgate. Header auth at the
 * upgrade (Resgate's --wsheadauth) is compared by the upgrade's answer:
 * status, Set-Cookie and other meta headers, a refusal's body.
 *
 * As in differential.test.ts, the two runs use disjoint rids (every rid holds
 * the run's key, `$K` in the script), so neither gateway's cache answers
 * for the other; messages are compared after mapping the key back.
 *
 * Skipped, with a printed reason, when no Resgate binary is found.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { ResgateClient, ResgateRequestError, findResgate, startResgate, type ResgateServer } from './helpers/resgate.js';
import { TestService } from './helpers/res-service.js';
import WebSocket from 'ws';

const found = findResgate();
const resgateBin = 'bin' in found ? found.bin : undefined;
if (!resgateBin) console.warn(`res-ws-differential.test.ts skipped: ${'reason' in found ? found.reason : ''}`);

const sdl = /* GraphQL */ `
  type Query {
    nothing: String @get(rid: "rd.nothing")
  }
`;

const enc = new TextEncoder();
const ours = 'xG9';
const theirs = 'xR9';
let nats: NatsServer;
let svc: TestService;
let gw: TestGateway;
let resgate: ResgateServer | undefined;
/** set by the reaccess step: the service withdraws alice's access to the private model */
let withdrawn = false;

function addFixture(s: TestService, k: string): void {
  s.model(`rd.book.${k}1`, { title: 'Dune', author: { rid: `rd.author.${k}1` }, related: { rid: `rd.book.${k}2`, soft: true }, extra: { data: [1, 2] } });
  s.model(`rd.book.${k}2`, { title: 'Emma', author: { rid: `rd.author.${k}2` } });
  s.model(`rd.book.${k}3`, { title: 'Kindred' });
  s.model(`rd.book.${k}4`, { title: 'Beloved', author: { rid: `rd.author.${k}2` } });
  s.model(`rd.author.${k}1`, { name: 'Frank', books: { rid: `rd.books.${k}` } });
  s.model(`rd.author.${k}2`, { name: 'Jane' });
  s.collection(`rd.books.${k}`, [{ rid: `rd.book.${k}1` }, { rid: `rd.book.${k}gone` }, 'loose']);
  s.model(`rd.secret.${k}`, { text: 'hidden' });
  s.model(`rd.private.${k}`, { who: 'alice' });
  s.model(`rd.broken.${k}`, { n: 0 });
  s.model(`rd.pair.${k}`, { a: { rid: `rd.author.${k}2` }, b: { rid: `rd.author.${k}2` } });
  s.accessRules.set(`rd.secret.${k}`, { get: false });
}

/** One step: a request (its result or error is compared) or a service action; then the events pushed are compared. */
interface Step {
  name: string;
  request?: (k: string) => [method: string, params?: unknown];
  act?: (k: string) => Promise<void>;
  /** frames sent as they are; then a call is the barrier behind them, and what they caused is compared */
  raw?: (k: string) => string[];
  /** how many events the step pushes (Resgate's count; the test waits for it on both) */
  events?: number;
  /** events for different rids, whose order Resgate does not keep (it walks a Go map): compared as a set */
  anyOrder?: boolean;
}

/** What the query requests of rd.search.<k> are answered with: a change of `hits` to this (TestService answers get, access, call and auth only). */
const queryHits = new Map<string, number>();

/** Tells the gateways that rd.search.<k> changed, its `hits` now `hits`. */
async function queryEvent(k: string, hits: number): Promise<void> {
  if (!queryHits.has(k)) {
    svc.nc.subscribe(`query.rd.search.${k}`, {
      callback: (_e, msg) => msg.respond(enc.encode(JSON.stringify({ result: { events: [{ event: 'change', data: { values: { hits: queryHits.get(k) } } }] } }))),
    });
    await svc.nc.flush();
  }
  queryHits.set(k, hits);
  await svc.publish(`event.rd.search.${k}.query`, { subject: `query.rd.search.${k}` });
}

const steps: Step[] = [
  { name: 'the version request', request: () => ['version', { protocol: '1.2.3' }] },
  { name: 'subscribe a model with references, a soft reference, a cycle and a failing reference', request: (k) => [`subscribe.rd.book.${k}1`] },
  { name: 'subscribe the same again: nothing new', request: (k) => [`subscribe.rd.book.${k}1`] },
  {
    // neither tells the client: the reference stays an error in its view until it is subscribed again
    name: 'a system.reset of a reference whose get failed, now there',
    act: async (k) => {
      svc.model(`rd.book.${k}gone`, { title: 'Found' });
      await svc.publish('system.reset', { resources: [`rd.book.${k}gone`] });
    },
  },
  { name: 'get a model not in view', request: (k) => [`get.rd.book.${k}3`] },
  { name: 'get a model in view', request: (k) => [`get.rd.author.${k}1`] },
  { name: 'subscribe not found', request: (k) => [`subscribe.rd.book.${k}missing`] },
  { name: 'subscribe a query resource the service normalizes', request: (k) => [`subscribe.rd.search.${k}?b=2&a=1`] },
  { name: 'subscribe the same query resource under its normalized query', request: (k) => [`subscribe.rd.search.${k}?a=1&b=2`] },
  { name: 'get the query resource under a third spelling', request: (k) => [`get.rd.search.${k}?a=1&b=2&`] },
  {
    name: 'a query event: the change reaches the client under both names it subscribed',
    act: (k) => queryEvent(k, 99),
    events: 2,
    anyOrder: true,
  },
  { name: 'unsubscribe one of the two names', request: (k) => [`unsubscribe.rd.search.${k}?b=2&a=1`] },
  { name: 'a query event: the change reaches the name still subscribed', act: (k) => queryEvent(k, 100), events: 1 },
  { name: 'subscribe without access', request: (k) => [`subscribe.rd.secret.${k}`] },
  { name: 'get without access', request: (k) => [`get.rd.secret.${k}`] },
  { name: 'subscribe where the access request fails', request: (k) => [`subscribe.rd.broken.${k}`] },
  { name: 'a call where the access request fails', request: (k) => [`call.rd.broken.${k}.set`] },
  { name: 'get not found', request: (k) => [`get.rd.book.${k}missing`] },
  { name: 'a change event', act: (k) => svc.change(`rd.book.${k}1`, { title: 'Dune Messiah' }), events: 1 },
  { name: 'subscribe a resource already in view through a reference', request: (k) => [`subscribe.rd.author.${k}1`] },
  { name: 'unsubscribe it: it stays in view through the reference', request: (k) => [`unsubscribe.rd.author.${k}1`] },
  { name: 'a change to it still reaches the client', act: (k) => svc.change(`rd.author.${k}1`, { name: 'Frank H.' }), events: 1 },
  { name: 'subscribe a model that references one resource twice', request: (k) => [`subscribe.rd.pair.${k}`] },
  { name: 'one of the two references replaced', act: (k) => svc.change(`rd.pair.${k}`, { a: 'plain' }), events: 1 },
  { name: 'a change to the resource still referenced once reaches the client', act: (k) => svc.change(`rd.author.${k}2`, { name: 'Jane A.' }), events: 1 },
  { name: 'the other reference replaced too', act: (k) => svc.change(`rd.pair.${k}`, { b: 'plain' }), events: 1 },
  { name: 'a change to the resource out of view: no event', act: (k) => svc.change(`rd.author.${k}2`, { name: 'Jane Austen' }) },
  { name: 'unsubscribe the pair', request: (k) => [`unsubscribe.rd.pair.${k}`] },
  { name: 'a change to a new reference brings it into view', act: (k) => svc.change(`rd.book.${k}1`, { author: { rid: `rd.author.${k}2` } }), events: 1 },
  { name: 'a change back: the old reference is in view through the collection', act: (k) => svc.change(`rd.book.${k}1`, { author: { rid: `rd.author.${k}1` } }), events: 1 },
  { name: 'a property deleted', act: (k) => svc.change(`rd.book.${k}1`, { extra: { action: 'delete' } }), events: 1 },
  { name: 'an add event with a new reference', act: (k) => svc.add(`rd.books.${k}`, { rid: `rd.book.${k}2` }, 1), events: 1 },
  { name: 'a remove event', act: (k) => svc.remove(`rd.books.${k}`, 2), events: 1 },
  { name: 'a custom event', act: (k) => svc.event(`rd.book.${k}1`, 'ping', { n: 1 }), events: 1 },
  { name: 'a custom event on a resource out of view', act: (k) => svc.event(`rd.book.${k}3`, 'ping', { n: 2 }) },
  { name: 'a custom event whose name has a dot: no event', act: (k) => svc.event(`rd.book.${k}1`, 'a.b', { n: 3 }) },
  { name: 'a custom event without a payload', act: (k) => svc.event(`rd.book.${k}1`, 'bare'), events: 1 },
  { name: 'a custom event with a payload that is not an object', act: (k) => svc.event(`rd.book.${k}1`, 'num', 42), events: 1 },
  { name: 'a call with a result', request: (k) => [`call.rd.book.${k}1.set`, { title: 'x' }] },
  { name: 'a call with a null result', request: (k) => [`call.rd.book.${k}1.none`] },
  { name: 'a call with a resource reply', request: (k) => [`call.rd.book.${k}1.make`] },
  { name: 'a call with an error', request: (k) => [`call.rd.book.${k}1.fail`] },
  { name: 'a call nobody answers', request: (k) => [`call.rd.book.${k}1.nothing`] },
  { name: 'an auth request nobody answers', request: (k) => [`auth.rd.nobody.${k}.login`] },
  { name: 'a call with params that are not an object', request: (k) => [`call.rd.book.${k}1.set`, [1, 2]] },
  { name: 'a call without access', request: (k) => [`call.rd.secret.${k}.set`] },
  { name: 'a call whose resource reply the client may not get: the error beside the rid', request: (k) => [`call.rd.book.${k}1.reveal`] },
  { name: 'an auth request with a resource reply', request: (k) => [`auth.rd.user.${k}.whoami`] },
  { name: 'an auth request whose reply has meta (no HTTP response here: ignored)', request: (k) => [`auth.rd.user.${k}.cookie`] },
  { name: 'a call whose reply has a meta status (ignored)', request: (k) => [`call.rd.book.${k}1.teapot`] },
  { name: 'new with a resource reply: subscribed to it, with its references', request: (k) => [`new.rd.books.${k}`, { title: 'Beloved' }] },
  { name: 'new with a result instead of a resource', request: (k) => [`new.rd.book.${k}1`] },
  { name: 'new answered the old way, with {rid} as its result', request: (k) => [`new.rd.author.${k}2`] },
  { name: 'unsubscribe twice at once', request: (k) => [`unsubscribe.rd.book.${k}1`, { count: 2 }] },
  { name: 'unsubscribe once more: no subscription', request: (k) => [`unsubscribe.rd.book.${k}1`] },
  { name: 'unsubscribe with a count of 0', request: (k) => [`unsubscribe.rd.book.${k}1`, { count: 0 }] },
  { name: 'unsubscribe with a count that is not a number', request: (k) => [`unsubscribe.rd.book.${k}1`, { count: 'two' }] },
  { name: 'unsubscribe with params that are not an object', request: (k) => [`unsubscribe.rd.book.${k}1`, [1]] },
  // the resources the replies above subscribed to are let go before the login: after a first login resgraph
  // asks access for each direct subscription again and Resgate does not (docs/resgate-migration.md), so
  // the request counts below compare the rest
  { name: 'unsubscribe the resource of the call reply', request: (k) => [`unsubscribe.rd.book.${k}3`] },
  { name: 'unsubscribe the resource of the auth reply', request: (k) => [`unsubscribe.rd.author.${k}1`] },
  { name: 'unsubscribe the resource of the new reply', request: (k) => [`unsubscribe.rd.book.${k}4`] },
  { name: 'subscribe before login: denied', request: (k) => [`subscribe.rd.private.${k}`] },
  { name: 'login', request: (k) => [`auth.rd.user.${k}.login`, { name: 'alice' }] },
  { name: 'subscribe after login', request: (k) => [`subscribe.rd.private.${k}`] },
  {
    name: 'reaccess after access is withdrawn: an unsubscribe event',
    act: async (k) => {
      withdrawn = true;
      await svc.event(`rd.private.${k}`, 'reaccess');
    },
    events: 1,
  },
  { name: 'subscribe the collection: its references come along', request: (k) => [`subscribe.rd.books.${k}`] },
  {
    name: 'a system.reset: the difference as events',
    act: async (k) => {
      svc.model(`rd.book.${k}2`, { title: 'Emma', author: { rid: `rd.author.${k}2` }, year: 1815 });
      await svc.publish('system.reset', { resources: [`rd.book.${k}2`] });
    },
    events: 1,
  },
  {
    // (a pattern that only held resources match: resgraph re-gets the unheld ones it still caches too)
    name: 'a system.reset naming resources by a wildcard',
    act: async (k) => {
      const books = svc.resources.get(`rd.books.${k}`) as { collection: unknown[] };
      books.collection.push('appended');
      await svc.publish('system.reset', { resources: ['rd.books.*'] });
    },
    events: 1,
  },
  {
    name: 'a delete event',
    act: async (k) => {
      // as a service deletes: gone from its store before the event
      svc.resources.delete(`rd.book.${k}2`);
      await svc.event(`rd.book.${k}2`, 'delete');
    },
    events: 1,
  },
  {
    // without a reaccess: both gateways ask again on the next subscribe
    name: 'the service gives access back',
    act: async () => {
      withdrawn = false;
    },
  },
  { name: 'subscribe after access is back', request: (k) => [`subscribe.rd.private.${k}`] },
  {
    name: 'a system.reset of access that withdraws it: an unsubscribe event',
    act: async (k) => {
      withdrawn = true;
      await svc.publish('system.reset', { access: [`rd.private.${k}`] });
    },
    events: 1,
  },
  { name: 'an unknown request type', request: (k) => [`nonsense.rd.book.${k}1`] },
  {
    // Resgate reads the id as an unsigned integer and drops a request whose id is not one, or whose method is not a string
    name: 'requests without a valid id, or with a method that is not a string, are dropped unanswered; one without a method is invalid',
    raw: (k) => [
      ...[undefined, null, 'x', -1, 1.5].map((id) => JSON.stringify({ id, method: `call.rd.book.${k}1.set`, params: { title: 'dropped' } })),
      JSON.stringify({ id: 900, method: 5 }),
      'not JSON',
      // answered: system.invalidRequest
      JSON.stringify({ id: 901 }),
    ],
  },
  // version requests with params Resgate refuses (a good one would set the protocol for the steps after it)
  ...[[1], 'x', { protocol: 1 }, { protocol: '1.2' }, { protocol: '1.2.x' }, { protocol: '1.2.1000' }, { protocol: '2.0.0' }, { protocol: '0.9.0' }].map(
    (params): Step => ({ name: `a version request with ${JSON.stringify(params)}`, request: () => ['version', params] }),
  ),
  // malformed requests (Resgate's own list, on these rids): every one is system.invalidRequest on both
  ...['', 'version.rd', 'new', 'call.rd', 'call.rd.bööks', 'call.rd?x', 'call.rd.set?x', 'auth.rd', 'subscribe..rd.book', 'subscribe.rd..book',
    'subscribe.rd.book.', '.subscribe.rd.book', 'subscribe?x=1', 'subscribe.rd\tbook', 'subscribe.rd book', 'subscribe.rd\ufffdbook',
    'subscribe.räd.book', 'subscribe.rd.*.book', 'subscribe.rd.>.book', 'subscribe.rd.book.>'].map((method): Step => ({
    name: `a malformed request: ${JSON.stringify(method)}`,
    request: () => [method],
  })),
];

function installService(s: TestService): void {
  const second = (subject: string) => `rd.book.${subject.split('.')[3].replace(/1$/, '')}3`;
  s.handle('call.rd.book.*.set', (p) => ({ result: { ok: true, got: p.params } }));
  s.handle('call.rd.book.*.none', () => ({ result: null }));
  s.handle('call.rd.book.*.make', (_p, subject) => ({ resource: { rid: second(subject) } }));
  s.handle('call.rd.books.*.new', (_p, subject) => ({ resource: { rid: `rd.book.${subject.split('.')[3]}4` } }));
  s.handle('call.rd.book.*.new', () => ({ result: { made: false } }));
  // a query resource: the reply names the normalized query (its parameters sorted, empty ones dropped)
  s.handle('get.rd.search.*', (p: { query?: string }) => {
    const query = (p.query ?? '').split('&').filter(Boolean).sort().join('&');
    return { result: { model: { hits: query.length }, query } };
  });
  s.handle('auth.rd.user.*.cookie', () => ({ result: { ok: 1 }, meta: { status: 302, header: { 'Set-Cookie': ['s=1'], Location: ['/x'] } } }));
  s.handle('call.rd.book.*.teapot', () => ({ result: { tea: true }, meta: { status: 418 } }));
  s.handle('access.rd.broken.*', () => ({ error: { code: 'rd.oops', message: 'Oops', data: { n: 1 } } }));
  s.handle('call.rd.book.*.reveal', (_p, subject) => ({ resource: { rid: `rd.secret.${subject.split('.')[3].replace(/1$/, '')}` } }));
  s.handle('auth.rd.user.*.whoami', (_p, subject) => ({ resource: { rid: `rd.author.${subject.split('.')[3]}1` } }));
  s.handle('call.rd.author.*.new', (_p, subject) => ({ result: { rid: `rd.book.${subject.split('.')[3].replace(/2$/, '')}3` } }));
  s.handle('call.rd.book.*.fail', () => ({ error: { code: 'rd.bad', message: 'Bad', data: { why: 1 } } }));
  s.handle('access.rd.private.*', (p) => ({ result: { get: p.token?.user === 'alice' && !withdrawn, call: '*' } }));
  s.handle('auth.rd.user.*.login', (p) => {
    s.nc.publish(`conn.${p.cid}.token`, enc.encode(JSON.stringify({ token: { user: p.params.name } })));
    return { result: { user: p.params.name } };
  });
}

beforeAll(async () => {
  if (!resgateBin) return;
  nats = await startNatsServer();
  svc = await TestService.start(nats.url);
  installService(svc);
  addFixture(svc, ours);
  addFixture(svc, theirs);
  gw = await startTestGateway(nats.url, sdl);
  resgate = await startResgate(resgateBin, nats.url);
});

afterAll(async () => {
  await gw?.close();
  await resgate?.stop();
  await svc?.close();
  await nats?.stop();
});

const normalize = (v: unknown, key: string): unknown => JSON.parse(JSON.stringify(v ?? null).replaceAll(key, '$K'));

async function outcome(c: ResgateClient, method: string, params: unknown): Promise<unknown> {
  try {
    return { result: await c.request(method, params) };
  } catch (e) {
    if (e instanceof ResgateRequestError) return { error: e.error };
    throw e;
  }
}

describe.skipIf(!resgateBin)('the RES client protocol against Resgate', () => {
  let a: ResgateClient;
  let b: ResgateClient;
  let seenA = 0;
  let seenB = 0;

  beforeAll(async () => {
    a = await ResgateClient.connect(gw.url.replace(/^http/, 'ws').replace(/\/graphql$/, '/'));
    b = await ResgateClient.connect(resgate!.wsUrl);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  it.each(steps.map((s) => [s.name, s] as const))('%s', async (_name, step) => {
    if (step.request) {
      const [mA, pA] = step.request(ours);
      const [mB, pB] = step.request(theirs);
      const [rA, rB] = await Promise.all([outcome(a, mA, pA), outcome(b, mB, pB)]);
      expect(normalize(rA, ours)).toEqual(normalize(rB, theirs));
    }
    if (step.raw) {
      const dropped = (k: string) => svc.requests.filter((r) => r.subject === `call.rd.book.${k}1.set` && r.payload?.params?.title === 'dropped').length;
      const strays = [a.stray.length, b.stray.length];
      for (const [c, k] of [[a, ours], [b, theirs]] as const) for (const frame of step.raw(k)) c.sendRaw(frame);
      // the service answers calls in order: once the barrier's is back, every call sent before it was seen
      await Promise.all([a.request(`call.rd.book.${ours}1.set`, { title: 'barrier' }), b.request(`call.rd.book.${theirs}1.set`, { title: 'barrier' })]);
      expect([dropped(ours), normalize(a.stray.slice(strays[0]), ours)]).toEqual([dropped(theirs), normalize(b.stray.slice(strays[1]), theirs)]);
    }
    if (step.act) await Promise.all([step.act(ours), step.act(theirs)]);
    const n = step.events ?? 0;
    await b.waitFor(() => b.events.length >= seenB + n, 5000, `Resgate's ${n} events`);
    await a.waitFor(() => a.events.length >= seenA + n, 5000, `resgraph's ${n} events`);
    // a step announced to push nothing: a later step would show a stray event of it
    const evA = a.events.slice(seenA);
    const evB = b.events.slice(seenB);
    seenA = a.events.length;
    seenB = b.events.length;
    const inOrder = (events: unknown) => (step.anyOrder ? (events as unknown[]).map((e) => JSON.stringify(e)).sort() : events);
    expect(inOrder(normalize(evA, ours))).toEqual(inOrder(normalize(evB, theirs)));
  });

  it('the service saw no more get or access requests from resgraph than from Resgate', () => {
    const count = (prefix: string, key: string) => svc.requests.filter((r) => r.subject.startsWith(prefix) && r.subject.includes(key)).length;
    for (const type of ['get.', 'access.']) expect(count(type, ours)).toBeLessThanOrEqual(count(type, theirs));
  });
});

describe.skipIf(!resgateBin)('header auth at the upgrade against Resgate (--wsheadauth)', () => {
  let authed: TestGateway;
  let authedResgate: ResgateServer;

  beforeAll(async () => {
    svc.handle('auth.wsh.cookie', (p) => {
      const cookie = p.header?.Cookie?.[0];
      if (cookie === 'session=expired') {
        return { error: { code: 'session.expired', message: 'Expired' }, meta: { status: 401, header: { 'Set-Cookie': ['session=; Max-Age=0'] } } };
      }
      if (cookie === 'session=moved') return { result: null, meta: { status: 302, header: { Location: ['/login'] } } };
      return { result: null, meta: { header: { 'Set-Cookie': ['seen=1'], 'X-Extra': ['1'] } } };
    });
    authed = await startTestGateway(nats.url, sdl, { headerAuth: 'wsh.cookie' });
    authedResgate = await startResgate(resgateBin!, nats.url, { args: ['-t', 'wsh.cookie'] });
  });
  afterAll(async () => {
    await authed?.close();
    await authedResgate?.stop();
  });

  /** The upgrade's answer: status, the headers a service may set, the body of a refusal. */
  function upgrade(url: string, cookie: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers: { cookie } });
      const seen = (status: number | undefined, h: Record<string, string | string[] | undefined>, body: string) => ({
        status,
        setCookie: h['set-cookie'] ?? [],
        extra: h['x-extra'] ?? null,
        location: h.location ?? null,
        body: body === '' ? '' : JSON.parse(body),
      });
      ws.once('upgrade', (res) => {
        resolve(seen(res.statusCode, res.headers, ''));
        ws.terminate();
      });
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve(seen(res.statusCode, res.headers, body)));
      });
      ws.once('error', reject);
    });
  }

  it.each([
    ['meta headers on the upgrade response', 'session=alice'],
    ['a 4XX status with an error refuses the upgrade', 'session=expired'],
    ['a 3XX status redirects', 'session=moved'],
  ])('%s', async (_name, cookie) => {
    const ourUrl = authed.url.replace(/^http/, 'ws').replace(/\/graphql$/, '/');
    expect(await upgrade(ourUrl, cookie)).toEqual(await upgrade(authedResgate.wsUrl, cookie));
  });
});
