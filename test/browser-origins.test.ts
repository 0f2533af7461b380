/**
 * The origin policy in a real browser: a page served from another origin
 * (another port of 127.0.0.1) with the user's session cookie set for the
 * gateway's host tries to read a query result and to open a graphql-ws
 * subscription. Against a gateway that does not allow its origin it can do
 * neither, and the service saw no request for it; against one that lists
 * its origin it can do both, cookie included.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { launchChromium, type Chromium } from './helpers/chromium.js';
import { startTestEnv, type TestEnv } from './helpers/env.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import type { TestService } from './helpers/res-service.js';
import { librarySdl } from './helpers/sdl.js';

let env: TestEnv;
let svc: TestService;
let closed: TestGateway;
let open: TestGateway;
let site: Server;
let siteOrigin: string;
let chromium: Chromium;
let page: Page;

beforeAll(async () => {
  // the other site: an empty page of its own origin
  site = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>another site</title>'));
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
  siteOrigin = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;

  env = await startTestEnv(librarySdl, { headerAuth: 'session.header' });
  ({ svc, gw: closed } = env);
  open = await startTestGateway(env.nats.url, librarySdl, { headerAuth: 'session.header', allowOrigin: siteOrigin });
  svc.model('library.book.1', { id: 1, title: 'Dune' });
  svc.handle('auth.session.header', () => ({ result: null }));

  chromium = await launchChromium();
  // the signed-in user's cookie, for the gateways' host (cookies do not tell ports apart)
  await chromium.browser.addCookies([{ name: 'session', value: 'alice', domain: '127.0.0.1', path: '/', sameSite: 'Lax' }]);
  page = await chromium.browser.newPage();
  await page.goto(siteOrigin);
}, 120_000);

afterAll(async () => {
  await chromium?.close();
  await open?.close();
  await env?.close();
  await new Promise((resolve) => site?.close(resolve));
}, 60_000);

beforeEach(() => {
  svc.requests.length = 0;
});

/** From the page: a JSON POST with credentials; what the page can read of the answer. */
const readQuery = (gatewayUrl: string) =>
  page.evaluate(async (url) => {
    try {
      const res = await fetch(url, {
        method: 'POST',
        credentials: 'include',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ book(id: 1) { title } }' }),
      });
      return { read: await res.json() };
    } catch (e) {
      return { failed: String(e) };
    }
  }, gatewayUrl);

/** From the page: a graphql-transport-ws subscription; its first result, or how the socket ended. */
const subscribe = (gatewayUrl: string) =>
  page.evaluate(
    (url) =>
      new Promise<{ first?: unknown; closed?: number }>((resolve) => {
        const ws = new WebSocket(url.replace(/^http/, 'ws'), 'graphql-transport-ws');
        const timer = setTimeout(() => resolve({ closed: -1 }), 10_000);
        ws.onopen = () => ws.send(JSON.stringify({ type: 'connection_init' }));
        ws.onmessage = (e) => {
          const msg = JSON.parse(String(e.data));
          if (msg.type === 'connection_ack') {
            ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: 'subscription { book(id: 1) { title } }' } }));
          } else if (msg.type === 'next') {
            clearTimeout(timer);
            resolve({ first: msg.payload });
            ws.close();
          }
        };
        ws.onclose = (e) => {
          clearTimeout(timer);
          resolve({ closed: e.code });
        };
      }),
    gatewayUrl,
  );

describe('a page on another origin, in Chromium', { timeout: 60_000 }, () => {
  it('can neither read a query result nor open a graphql-ws connection when its origin is not allowed', async () => {
    const query = await readQuery(closed.url);
    expect(query.failed).toMatch(/Failed to fetch/);
    // 1006: the upgrade was refused, the socket never opened
    expect(await subscribe(closed.url)).toEqual({ closed: 1006 });
    expect(svc.requests.map((r) => r.subject)).toEqual([]);
  });

  it('can do both, with the user’s cookie, when its origin is listed', async () => {
    expect(await readQuery(open.url)).toEqual({ read: { data: { book: { title: 'Dune' } } } });
    expect(await subscribe(open.url)).toEqual({ first: { data: { book: { title: 'Dune' } } } });
    const auths = svc.seen('auth.session.header');
    expect(auths).toHaveLength(2);
    for (const auth of auths) {
      expect(auth.payload.header.Cookie).toEqual(['session=alice']);
      expect(auth.payload.header.Origin).toEqual([siteOrigin]);
    }
  });
});
