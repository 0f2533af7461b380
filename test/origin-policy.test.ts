/**
 * The origin policy and CSRF prevention, seen from outside: what a browser
 * page on another site gets over HTTP, SSE and WebSocket, what the fixture
 * service received for it (nothing, when refused), and which requests a
 * browser could send without a preflight are refused.
 *
 * Three gateways on one nats-server and one service: closed (the default),
 * one listed origin, and `*`. All use header auth, so a connection that got
 * past the edge would show up at the service as an `auth` request.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestEnv, type TestEnv } from './helpers/env.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { librarySdl } from './helpers/sdl.js';
import type { TestService } from './helpers/res-service.js';

const listed = 'http://app.example';
const foreign = 'http://evil.example';
const query = '{ book(id: 1) { title } }';

let env: TestEnv;
let svc: TestService;
let closed: TestGateway;
let list: TestGateway;
let any: TestGateway;

beforeAll(async () => {
  env = await startTestEnv(librarySdl, { headerAuth: 'session.header' });
  ({ svc, gw: closed } = env);
  list = await startTestGateway(env.nats.url, librarySdl, { headerAuth: 'session.header', allowOrigin: `${listed}, http://other.example:8080` });
  any = await startTestGateway(env.nats.url, librarySdl, { headerAuth: 'session.header', allowOrigin: '*' });
  svc.model('library.book.1', { id: 1, title: 'Dune' });
  svc.handle('auth.session.header', () => ({ result: null }));
  svc.handle('call.library.book.*.set', () => ({ result: null }));
});

afterAll(async () => {
  await list?.close();
  await any?.close();
  await env?.close();
});

beforeEach(() => {
  svc.requests.length = 0;
});

const post = (gw: TestGateway, headers: Record<string, string>, body = JSON.stringify({ query })) =>
  fetch(gw.url, { method: 'POST', headers: { 'content-type': 'application/json', cookie: 'session=alice', ...headers }, body });

/** The CORS headers of a response, absent ones left out. */
function cors(res: Response): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ['access-control-allow-origin', 'access-control-allow-credentials', 'vary', 'access-control-allow-methods', 'access-control-allow-headers']) {
    const v = res.headers.get(name);
    if (v !== null) out[name] = v;
  }
  return out;
}

/** Opens a graphql-transport-ws socket; resolves with the upgrade's refusal status, or 'acked' once connection_ack arrives. */
function openSocket(gw: TestGateway, headers: Record<string, string>): Promise<number | 'acked'> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(gw.url.replace(/^http/, 'ws'), 'graphql-transport-ws', { headers });
    const timer = setTimeout(() => reject(new Error('no answer to the upgrade within 5 s')), 5000);
    ws.on('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init' })));
    ws.on('message', (data) => {
      if (JSON.parse(String(data)).type !== 'connection_ack') return;
      clearTimeout(timer);
      resolve('acked');
      ws.close();
    });
    ws.on('error', () => undefined);
  });
}

/** Starts an SSE subscription; resolves with the status, and the first event's data when it is 200. */
async function openSse(gw: TestGateway, headers: Record<string, string>): Promise<{ status: number; first?: unknown }> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 5000);
  try {
    const res = await fetch(gw.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers },
      body: JSON.stringify({ query: `subscription ${query}` }),
      signal: ac.signal,
    });
    if (res.status !== 200) return { status: res.status };
    const reader = res.body!.getReader();
    let text = '';
    while (!/^data: .*$/m.test(text)) text += new TextDecoder().decode((await reader.read()).value);
    return { status: 200, first: JSON.parse(/^data: (.*)$/m.exec(text)![1]) };
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
}

const serviceSawNothing = () => expect(svc.requests.map((r) => r.subject)).toEqual([]);

describe('closed by default', () => {
  it('refuses another site’s page with 403 and no CORS headers, before any service is asked', async () => {
    const res = await post(closed, { origin: foreign });
    expect(res.status).toBe(403);
    expect(cors(res)).toEqual({});
    expect(await res.json()).toEqual({ errors: [{ message: 'Forbidden origin', extensions: { code: 'system.forbidden' } }] });
    serviceSawNothing();
  });

  it('answers no preflight for another site', async () => {
    const res = await fetch(closed.url, { method: 'OPTIONS', headers: { origin: foreign, 'access-control-request-method': 'POST' } });
    expect(res.status).toBe(403);
    expect(cors(res)).toEqual({});
  });

  it('refuses Origin: null (sandboxed frames, file: pages)', async () => {
    const res = await post(closed, { origin: 'null' });
    expect(res.status).toBe(403);
    expect(cors(res)).toEqual({});
    serviceSawNothing();
  });

  it('serves clients that send no Origin, and pages of its own origin, without CORS headers', async () => {
    for (const headers of [{}, { origin: new URL(closed.url).origin }] as Record<string, string>[]) {
      const res = await post(closed, headers);
      expect(res.status).toBe(200);
      expect(cors(res)).toEqual({});
      expect(await res.json()).toEqual({ data: { book: { title: 'Dune' } } });
    }
  });

  it('refuses a WebSocket from another site with 403 before its auth request; accepts one without Origin', async () => {
    expect(await openSocket(closed, { origin: foreign, cookie: 'session=alice' })).toBe(403);
    expect(await openSocket(closed, { origin: 'null' })).toBe(403);
    serviceSawNothing();
    expect(await openSocket(closed, {})).toBe('acked');
    expect(svc.count('auth.session.header')).toBe(1);
  });

  it('refuses SSE from another site with 403 before its auth request; serves it without Origin', async () => {
    expect((await openSse(closed, { origin: foreign, cookie: 'session=alice' })).status).toBe(403);
    serviceSawNothing();
    expect(await openSse(closed, {})).toEqual({ status: 200, first: { data: { book: { title: 'Dune' } } } });
  });
});

describe('listed origins', () => {
  it('get their own origin back, with credentials and Vary: Origin', async () => {
    for (const origin of [listed, 'http://other.example:8080']) {
      const res = await post(list, { origin });
      expect(res.status).toBe(200);
      expect(cors(res)).toEqual({ 'access-control-allow-origin': origin, 'access-control-allow-credentials': 'true', vary: 'Origin' });
      expect(await res.json()).toEqual({ data: { book: { title: 'Dune' } } });
    }
  });

  it('get their preflight answered', async () => {
    const res = await fetch(list.url, {
      method: 'OPTIONS',
      headers: { origin: listed, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, authorization' },
    });
    expect(res.status).toBe(204);
    expect(cors(res)).toEqual({
      'access-control-allow-origin': listed,
      'access-control-allow-credentials': 'true',
      vary: 'Origin',
      'access-control-allow-methods': 'GET, POST, PUT, DELETE, OPTIONS',
      'access-control-allow-headers': 'content-type, authorization',
    });
    serviceSawNothing();
  });

  it('open WebSockets and SSE streams; other origins are still refused', async () => {
    expect(await openSocket(list, { origin: listed })).toBe('acked');
    expect((await openSse(list, { origin: listed })).status).toBe(200);
    svc.requests.length = 0;
    expect((await post(list, { origin: foreign })).status).toBe(403);
    expect(await openSocket(list, { origin: foreign })).toBe(403);
    expect(await openSocket(list, { origin: 'http://app.example:81' })).toBe(403);
    serviceSawNothing();
  });
});

describe('allow-origin *', () => {
  it('lets every origin in, never with credentials', async () => {
    const res = await post(any, { origin: foreign });
    expect(res.status).toBe(200);
    expect(cors(res)).toEqual({ 'access-control-allow-origin': '*' });
    expect(await openSocket(any, { origin: foreign })).toBe('acked');
  });

  it('still gives Origin: null nothing', async () => {
    const res = await post(any, { origin: 'null' });
    expect(res.status).toBe(403);
    expect(cors(res)).toEqual({});
  });
});

describe('CSRF prevention', () => {
  const mutation = 'mutation { setBookTitle(id: 1, title: "pwned") }';
  const form = (body: string, contentType: string, headers: Record<string, string> = {}) =>
    fetch(closed.url, { method: 'POST', headers: { 'content-type': contentType, cookie: 'session=alice', ...headers }, body });

  it('refuses a form-encoded, multipart or text/plain POST with the session cookie; the service saw no call', async () => {
    const refused = [
      await form(new URLSearchParams({ query: mutation }).toString(), 'application/x-www-form-urlencoded'),
      await form(JSON.stringify({ query: mutation }), 'text/plain'),
      await form(`--b\r\ncontent-disposition: form-data; name="query"\r\n\r\n${mutation}\r\n--b--\r\n`, 'multipart/form-data; boundary=b'),
    ];
    for (const res of refused) {
      expect(res.status).toBe(403);
      expect((await res.json()).errors[0].extensions.code).toBe('system.forbidden');
    }
    serviceSawNothing();
  });

  it('lets the same mutation through as JSON', async () => {
    const res = await form(JSON.stringify({ query: mutation }), 'application/json');
    expect(res.status).toBe(200);
    expect((await res.json()).errors).toBeUndefined();
    expect(svc.count('call.library.book.1.set')).toBe(1);
  });

  it('refuses a GET query without a CSRF header, answers it with one', async () => {
    const url = `${closed.url}?query=${encodeURIComponent(query)}`;
    expect((await fetch(url, { headers: { cookie: 'session=alice' } })).status).toBe(403);
    serviceSawNothing();
    for (const header of ['x-graphql-yoga-csrf', 'apollo-require-preflight', 'x-apollo-operation-name']) {
      const res = await fetch(url, { headers: { [header]: '1' } });
      expect(await res.json()).toEqual({ data: { book: { title: 'Dune' } } });
    }
    // a same-origin page's GET (browsers send Sec-Fetch-Site, and no Origin, on those)
    expect((await fetch(url, { headers: { 'sec-fetch-site': 'same-origin' } })).status).toBe(200);
    expect((await fetch(url, { headers: { 'sec-fetch-site': 'cross-site' } })).status).toBe(403);
  });

  it('never runs a mutation sent as GET, whatever it carries', async () => {
    const res = await fetch(`${closed.url}?query=${encodeURIComponent(mutation)}`, { headers: { 'x-graphql-yoga-csrf': '1' } });
    expect(res.status).toBe(405);
    expect(svc.count('call.library.book.1.set')).toBe(0);
  });
});
