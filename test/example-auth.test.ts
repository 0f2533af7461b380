/**
 * The example service's sessions, through the gateway as `npm start` runs it
 * (header auth on library.session.header): password login, the JWT from it
 * used as a cookie, a Bearer header and graphql-ws connectionParams, logout.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import type { Client } from 'graphql-ws';
import { startLibraryService, type LibraryService } from '../examples/library/service.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { gql, startTestGateway, type TestGateway } from './helpers/gateway.js';
import { subscribeWs, wsClient } from './helpers/live-client.js';

let nats: NatsServer;
let library: LibraryService;
let gw: TestGateway;
const clients: Client[] = [];
const secret = '{ secret { title } }';
const denied = (r: { errors?: { extensions?: { code?: string } }[] }) => r.errors?.[0]?.extensions?.code === 'system.accessDenied';

async function wsRequest(c: Client, query: string) {
  const s = subscribeWs(c, query);
  const r = await s.next();
  s.dispose();
  return r;
}

function client(params?: Record<string, unknown>): Client {
  const c = wsClient(gw.url, params);
  clients.push(c);
  return c;
}

beforeAll(async () => {
  nats = await startNatsServer();
  library = await startLibraryService(nats.url);
  gw = await startTestGateway(nats.url, readFileSync('schema/library.graphql', 'utf8'), { headerAuth: 'library.session.header' });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.dispose()));
  await gw?.close();
  await library?.close();
  await nats?.stop();
});

describe('example sessions', () => {
  it('password login signs in the connection; logout signs it out', async () => {
    const c = client();
    expect(denied(await wsRequest(c, secret))).toBe(true);
    const login = await wsRequest(c, 'mutation { login(name: "alice", password: "wonderland") { user role } }');
    expect(login).toEqual({ data: { login: { user: 'alice', role: 'admin' } } });
    expect(await wsRequest(c, secret)).toEqual({ data: { secret: { title: 'The location of the hidden shelf' } } });
    await wsRequest(c, 'mutation { logout }');
    expect(denied(await wsRequest(c, secret))).toBe(true);
  });

  it('a reader is signed in but may not read the secret; a wrong password is refused', async () => {
    const c = client();
    expect((await wsRequest(c, 'mutation { login(name: "bob", password: "builder") { role } }')).data).toEqual({ login: { role: 'reader' } });
    expect(denied(await wsRequest(c, secret))).toBe(true);
    const bad = await gql(gw.url, 'mutation { login(name: "alice", password: "guess") { user } }');
    expect(bad.errors?.[0].extensions?.code).toBe('library.badLogin');
  });

  it('the JWT from a login works as a session cookie, a Bearer header and connectionParams', async () => {
    const r = await gql(gw.url, 'mutation { login(name: "alice", password: "wonderland") { jwt } }');
    const jwt = r.data.login.jwt as string;
    expect(await gql(gw.url, secret, undefined, { cookie: `theme=dark; session=${jwt}` })).toEqual({ data: { secret: { title: expect.any(String) } } });
    expect(await gql(gw.url, secret, undefined, { authorization: `Bearer ${jwt}` })).toEqual({ data: { secret: { title: expect.any(String) } } });
    expect(await wsRequest(client({ jwt }), secret)).toEqual({ data: { secret: { title: expect.any(String) } } });
    // each HTTP request is its own connection: without the cookie, no session
    expect(denied(await gql(gw.url, secret))).toBe(true);
  });

  it('a forged JWT signs in no one', async () => {
    const r = await gql(gw.url, 'mutation { login(name: "bob", password: "builder") { jwt } }');
    const [header, , signature] = (r.data.login.jwt as string).split('.');
    const forged = Buffer.from(JSON.stringify({ sub: 'alice', role: 'admin' })).toString('base64url');
    expect(denied(await gql(gw.url, secret, undefined, { authorization: `Bearer ${header}.${forged}.${signature}` }))).toBe(true);
  });
});
