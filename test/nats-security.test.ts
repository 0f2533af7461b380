/**
 * A secured NATS: for each way to connect (TLS, mutual TLS, user and
 * password, token, NKey, operator mode with a `.creds` file), real
 * nats-server processes configured here: the gateway connects and serves a
 * query, a subscription and a change event; against a server that rejects
 * it, it logs NATS's reason for each attempt, /readyz answers 503 with that
 * reason and resgraph_nats_connected stays 0; once the server is fixed (a
 * restart on the same port) it becomes ready without a restart of its own.
 * Bad options fail at start-up naming the option, and no secret appears in
 * logs, metrics, /readyz, --help or error messages.
 *
 * Certificates (openssl) and keys (the nats package's NKeys, @nats-io/jwt)
 * are made once for the file.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAccount, createOperator, createUser, encodeAccount, encodeOperator, encodeUser, fmtCreds } from '@nats-io/jwt';
import { nkeys } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLibraryService } from '../examples/library/service.js';
import { helpText } from '../src/cli.js';
import { natsConnectOptions, NatsOptionsError, type NatsClientOptions } from '../src/res/nats-options.js';
import { startGateway, type Gateway } from '../src/server.js';
import { buildResourceSchema } from '../src/schema/schema.js';
import { ensureBuilt, root, startGatewayProcess } from './helpers/cli-gateway.js';
import { gql, recordingLogger, type LogEntry } from './helpers/gateway.js';
import { subscribeWs, wsClient } from './helpers/live-client.js';
import { scrape } from './helpers/metrics.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { TestService } from './helpers/res-service.js';
import { waitFor, withTimeout } from './helpers/wait.js';

const sdl = /* GraphQL */ `
  type Item @resource(rid: "test.item.{id}") {
    id: ID! @rid
    name: String
  }
  type Query {
    item(id: ID!): Item @get(rid: "test.item.{id}")
  }
`;

const password = 'pw-Secret-7f3a91';
const token = 'tok-Secret-c04e2b';
const dir = mkdtempSync(join(tmpdir(), 'resgraph-nats-security-'));
const file = (name: string, text: string | Uint8Array) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const decoder = new TextDecoder();

/** Everything a secret must never appear in: logs, /readyz bodies, metrics, error messages. */
const seenOutput: string[] = [];
/** The seeds made below, searched for with the password and the token. */
const seeds: string[] = [];
/** every log entry recorded by the gateways of this file */
const allLogs: LogEntry[][] = [];

// --- certificates and keys, once for the file ------------------------------------

const openssl = (...args: string[]) => execFileSync('/usr/bin/openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });

/** A CA, and certificates it signs: one for the server (127.0.0.1), one for a client. */
function makeCa(name: string) {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${name} CA`, '-keyout', `${name}-ca-key.pem`, '-out', `${name}-ca.pem`);
  const sign = (leaf: string, ext: string) => {
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${leaf}`, '-keyout', `${name}-${leaf}-key.pem`, '-out', `${name}-${leaf}.csr`);
    const extFile = file(`${name}-${leaf}.ext`, ext);
    openssl('x509', '-req', '-in', `${name}-${leaf}.csr`, '-CA', `${name}-ca.pem`, '-CAkey', `${name}-ca-key.pem`, '-set_serial', String(Date.now()), '-days', '2', '-extfile', extFile, '-out', `${name}-${leaf}.pem`);
    return { cert: join(dir, `${name}-${leaf}.pem`), key: join(dir, `${name}-${leaf}-key.pem`) };
  };
  return {
    ca: join(dir, `${name}-ca.pem`),
    server: sign('server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n'),
    client: sign('client', 'extendedKeyUsage=clientAuth\n'),
  };
}

let good: ReturnType<typeof makeCa>;
let rogue: ReturnType<typeof makeCa>;
let nkeyUser: { seedFile: string; publicKey: string };
let otherNkey: string;
let operator: { config: string; otherConfig: string; creds: string; expiredCreds: string };

function userSeed() {
  const kp = nkeys.createUser();
  const seed = decoder.decode(kp.getSeed());
  seeds.push(seed);
  return { seed, publicKey: kp.getPublicKey() as string };
}

/** An operator, an account it signs and a user of that account, as a server configuration and a `.creds` file. */
async function makeOperator(name: string, userExp?: number) {
  const okp = createOperator();
  const akp = createAccount();
  const ukp = createUser();
  seeds.push(decoder.decode(ukp.getSeed()));
  const operatorJwt = await encodeOperator(name, okp);
  // an account JWT without limits allows no connections at all
  const limits = { conn: -1, subs: -1, data: -1, payload: -1, imports: -1, exports: -1, leaf: -1, wildcards: true };
  const accountJwt = await encodeAccount(`${name}-account`, akp, { limits }, { signer: okp });
  const userJwt = await encodeUser(`${name}-user`, ukp, akp, {}, userExp === undefined ? {} : { exp: userExp });
  const config = `operator: ${operatorJwt}\nresolver: MEMORY\nresolver_preload: {\n  ${akp.getPublicKey()}: ${accountJwt}\n}\n`;
  return { config, creds: fmtCreds(userJwt, ukp), akp, okp };
}

beforeAll(async () => {
  good = makeCa('good');
  rogue = makeCa('rogue');
  const u = userSeed();
  nkeyUser = { seedFile: file('user.nk', u.seed + '\n'), publicKey: u.publicKey };
  otherNkey = userSeed().publicKey;
  const op = await makeOperator('test-operator');
  const other = await makeOperator('other-operator');
  // the same account, a user whose JWT expired a minute ago
  const ukp = createUser();
  seeds.push(decoder.decode(ukp.getSeed()));
  const expiredJwt = await encodeUser('expired-user', ukp, op.akp, {}, { exp: Math.floor(Date.now() / 1000) - 60 });
  operator = {
    config: op.config,
    otherConfig: other.config,
    creds: file('user.creds', op.creds),
    expiredCreds: file('expired.creds', fmtCreds(expiredJwt, ukp)),
  };
});

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
});

// --- the methods ----------------------------------------------------------------

const tlsConfig = (certs: { cert: string; key: string }, extra = '') =>
  `tls {\n  cert_file: "${certs.cert}"\n  key_file: "${certs.key}"\n${extra}}\n`;

interface Method {
  name: string;
  /** the server's configuration that accepts the gateway, and one that rejects it */
  right: () => string;
  wrong: () => string;
  scheme: 'nats' | 'tls';
  client: () => NatsClientOptions;
  /** what /readyz and the log say against the wrong server */
  reason: RegExp;
}

const methods: Method[] = [
  {
    name: 'TLS with a CA of our own',
    right: () => tlsConfig(good.server),
    wrong: () => tlsConfig(rogue.server), // a certificate our CA did not sign
    scheme: 'tls',
    client: () => ({ tlsCa: good.ca }),
    reason: /^TLS: .*certificate/,
  },
  {
    name: 'mutual TLS (verify: true)',
    right: () => tlsConfig(good.server, `  ca_file: "${good.ca}"\n  verify: true\n`),
    // the server does not trust the CA of our client certificate
    wrong: () => tlsConfig(good.server, `  ca_file: "${rogue.ca}"\n  verify: true\n`),
    scheme: 'tls',
    client: () => ({ tlsCa: good.ca, tlsCert: good.client.cert, tlsKey: good.client.key }),
    reason: /^TLS: |certificate|alert/i,
  },
  {
    name: 'user and password',
    right: () => `authorization {\n  user: resgraph\n  password: "${password}"\n}\n`,
    wrong: () => `authorization {\n  user: resgraph\n  password: "another-password"\n}\n`,
    scheme: 'nats',
    client: () => ({ user: 'resgraph', passwordFile: file('password', password + '\n') }),
    reason: /^Authorization Violation$/,
  },
  {
    name: 'token',
    right: () => `authorization {\n  token: "${token}"\n}\n`,
    wrong: () => `authorization {\n  token: "another-token"\n}\n`,
    scheme: 'nats',
    client: () => ({ token }),
    reason: /^Authorization Violation$/,
  },
  {
    name: 'NKey user',
    right: () => `authorization {\n  users: [ { nkey: ${nkeyUser.publicKey} } ]\n}\n`,
    wrong: () => `authorization {\n  users: [ { nkey: ${otherNkey} } ]\n}\n`,
    scheme: 'nats',
    client: () => ({ nkey: nkeyUser.seedFile }),
    reason: /^Authorization Violation$/,
  },
  {
    name: 'operator mode with a .creds file',
    right: () => operator.config,
    wrong: () => operator.otherConfig, // another operator: our account is not trusted
    scheme: 'nats',
    client: () => ({ creds: operator.creds }),
    reason: /^Authorization Violation$/,
  },
];

const schema = () => buildResourceSchema([{ name: 'test.graphql', body: sdl }]);

async function gatewayFor(url: string, natsClient: NatsClientOptions): Promise<Gateway & { logs: LogEntry[] }> {
  const logger = recordingLogger();
  const gw = await startGateway({ nats: url, natsClient, schema: schema(), port: 0, logger });
  cleanup.push(() => gw.close());
  allLogs.push(logger.entries);
  return Object.assign(gw, { logs: logger.entries });
}

async function readyz(gw: Gateway): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`http://127.0.0.1:${gw.port}/readyz`);
  const text = await r.text();
  seenOutput.push(text);
  return { status: r.status, body: JSON.parse(text) as Record<string, unknown> };
}

async function natsConnectedMetric(gw: Gateway): Promise<number> {
  const s = await scrape(gw.metricsUrl!);
  seenOutput.push(s.text);
  return s.value('resgraph_nats_connected');
}

/** A query, a subscription and a change event through the gateway, served by a TestService on the same secured server. */
async function queryAndSubscribe(gw: Gateway, url: string, natsClient: NatsClientOptions): Promise<void> {
  const { servers: _servers, ...connectOptions } = natsConnectOptions(url, natsClient, 'test-service');
  const svc = await TestService.start(url, ['test'], connectOptions);
  cleanup.push(() => svc.close());
  svc.model('test.item.1', { id: '1', name: 'first' });
  expect(await gql(gw.url, '{ item(id: "1") { name } }')).toEqual({ data: { item: { name: 'first' } } });
  const client = wsClient(gw.url);
  cleanup.push(async () => client.dispose());
  const stream = subscribeWs(client, 'subscription { item(id: "1") { name } }');
  expect(await stream.next()).toEqual({ data: { item: { name: 'first' } } });
  await svc.change('test.item.1', { name: 'second' });
  expect(await stream.next()).toEqual({ data: { item: { name: 'second' } } });
  stream.dispose();
}

describe.each(methods)('$name', (m) => {
  let nats: NatsServer;
  let gw: Gateway & { logs: LogEntry[] };
  let url: string;

  it('is rejected by a server that does not accept it: NATS reason logged, /readyz 503 with it, nats_connected 0', async () => {
    nats = await startNatsServer({ config: m.wrong() });
    cleanup.push(() => nats.stop());
    url = `${m.scheme}://127.0.0.1:${nats.port}`;
    gw = await gatewayFor(url, m.client());
    const failures = () => gw.logs.filter((e) => e.msg === 'cannot connect to NATS');
    // mutual TLS: an attempt ends at the 3 s connection timeout (see describeNatsError)
    await waitFor(() => failures().length > 0, 10_000, 'a failed connection attempt to be logged');
    const failure = failures()[0];
    expect(failure.level).toBe('warn');
    expect(failure.fields).toMatchObject({ servers: [url], reason: expect.stringMatching(m.reason), retryInMs: expect.any(Number) });
    const probe = await readyz(gw);
    expect(probe.status).toBe(503);
    expect(probe.body).toMatchObject({ status: 'unavailable', nats: 'disconnected', natsError: expect.stringMatching(m.reason) });
    expect(await natsConnectedMetric(gw)).toBe(0);
    expect(await gql(gw.url, '{ item(id: "1") { name } }')).toMatchObject({ data: { item: null }, errors: [{ extensions: { code: 'system.timeout' } }] });
  });

  it('becomes ready once the server is fixed, without a restart, and serves queries, subscriptions and events', async () => {
    await nats.stop();
    await nats.start(m.right());
    await withTimeout(gw.natsReady, 10_000, 'the gateway to connect');
    expect((await readyz(gw)).status).toBe(200);
    expect(await natsConnectedMetric(gw)).toBe(1);
    await queryAndSubscribe(gw, url, m.client());
  });
});

describe('a server that starts rejecting a connected gateway', () => {
  it('logs each refused reconnect with the reason, answers 503 with it, and resynchronizes once the server accepts it again', async () => {
    const right = methods.find((m) => m.name === 'user and password')!;
    const nats = await startNatsServer({ config: right.right() });
    cleanup.push(() => nats.stop());
    const gw = await gatewayFor(nats.url, right.client());
    await withTimeout(gw.natsReady, 5000, 'the gateway to connect');
    const { servers: _s, ...svcOptions } = natsConnectOptions(nats.url, right.client(), 'test-service');
    // the service, too, must keep reconnecting through the refusals
    const svc = await TestService.start(nats.url, ['test'], { ...svcOptions, ignoreAuthErrorAbort: true });
    cleanup.push(() => svc.close());
    svc.model('test.item.1', { id: '1', name: 'before' });
    const client = wsClient(gw.url);
    cleanup.push(async () => client.dispose());
    const stream = subscribeWs(client, 'subscription { item(id: "1") { name } }');
    expect(await stream.next()).toEqual({ data: { item: { name: 'before' } } });

    await nats.stop();
    await nats.start(right.wrong());
    const refused = () => gw.logs.filter((e) => e.msg === 'cannot reconnect to NATS' && e.fields?.reason === 'Authorization Violation');
    await waitFor(() => refused().length >= 2, 8000, 'two refused reconnect attempts to be logged');
    const probe = await readyz(gw);
    expect(probe).toMatchObject({ status: 503, body: { nats: 'disconnected', natsError: 'Authorization Violation' } });
    expect(await natsConnectedMetric(gw)).toBe(0);
    // one line per attempt, and attempts spaced by the back-off (no spinning)
    expect(refused().length).toBeLessThan(8);

    svc.model('test.item.1', { id: '1', name: 'changed while we were out' });
    await nats.stop();
    await nats.start(right.right());
    // missed while disconnected: the resynchronization after the reconnect brings it
    expect(await stream.next(10_000)).toEqual({ data: { item: { name: 'changed while we were out' } } });
    expect((await readyz(gw)).status).toBe(200);
    stream.dispose();
  });
});

describe('credentials in the URL', () => {
  it('authenticate, and are left out of the log', async () => {
    const nats = await startNatsServer({ config: methods.find((m) => m.name === 'user and password')!.right() });
    cleanup.push(() => nats.stop());
    const wrong = await gatewayFor(`nats://resgraph:${encodeURIComponent(password)}-not@127.0.0.1:${nats.port}`, {});
    await waitFor(() => wrong.logs.some((e) => e.msg === 'cannot connect to NATS'), 5000, 'a failed attempt');
    expect(wrong.logs.find((e) => e.msg === 'cannot connect to NATS')!.fields).toMatchObject({
      servers: [`nats://127.0.0.1:${nats.port}`],
      reason: 'Authorization Violation',
    });
    const right = await gatewayFor(`nats://resgraph:${encodeURIComponent(password)}@127.0.0.1:${nats.port}`, {});
    await withTimeout(right.natsReady, 5000, 'the gateway to connect');
  });
});

describe('operator mode: an expired user JWT', () => {
  it('is logged with the server reason and shown on /readyz', async () => {
    const nats = await startNatsServer({ config: operator.config });
    cleanup.push(() => nats.stop());
    const gw = await gatewayFor(nats.url, { creds: operator.expiredCreds });
    await waitFor(() => gw.logs.some((e) => e.msg === 'cannot connect to NATS'), 5000, 'a failed attempt');
    const probe = await readyz(gw);
    expect(probe.status).toBe(503);
    expect(probe.body.natsError).toMatch(/Authorization Violation|expired/i);
  });
});

describe('bad options fail at start-up with the option named', () => {
  const fails = (opts: NatsClientOptions, message: RegExp, url = 'nats://127.0.0.1:4222') => {
    let error: unknown;
    try {
      natsConnectOptions(url, opts, 'resgraph');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(NatsOptionsError);
    seenOutput.push((error as Error).message);
    expect((error as Error).message).toMatch(message);
  };

  it('an unreadable or malformed file', () => {
    fails({ creds: join(dir, 'missing.creds') }, /^--nats-creds .*missing\.creds: cannot read it \(no such file\)$/);
    fails({ creds: file('bad.creds', `-----BEGIN USER NKEY SEED-----\n${seeds[0]}\n------END USER NKEY SEED------\n`) }, /^--nats-creds .*: not a NATS credentials file/);
    fails({ nkey: file('bad.nk', seeds[0].slice(0, -3) + 'AAA') }, /^--nats-nkey .*: not a valid NKey seed$/);
    fails({ tlsCa: file('not-a-cert.pem', 'hello') }, /^--nats-tls-ca .*: not a PEM certificate$/);
    fails({ tlsCert: good.client.cert, tlsKey: file('bad-key.pem', 'not a key') }, /^--nats-tls-key .*: not a PEM private key$/);
    fails({ passwordFile: file('empty-password', '\n'), user: 'u' }, /^--nats-password-file .*: the file is empty$/);
    fails({ tokenFile: dir }, /^--nats-token-file .*: cannot read it \(a folder, not a file\)$/);
  });

  it('a certificate without its key, or with another key', () => {
    fails({ tlsCert: good.client.cert }, /^--nats-tls-cert needs --nats-tls-key$/);
    fails({ tlsKey: good.client.key }, /^--nats-tls-key needs --nats-tls-cert$/);
    fails({ tlsCert: good.client.cert, tlsKey: good.server.key }, /is not the key of --nats-tls-cert/);
  });

  it('two ways to authenticate, or a half of one', () => {
    fails({ token, user: 'u', password }, /^--nats-token and --nats-user are two ways to authenticate to NATS; give only one$/);
    fails({ creds: operator.creds, nkey: nkeyUser.seedFile }, /^--nats-creds and --nats-nkey are two ways/);
    fails({ token }, /^--nats-token and credentials in the --nats URL are two ways/, `nats://u:${password}@127.0.0.1:4222`);
    fails({ token, tokenFile: file('token', token) }, /^--nats-token and --nats-token-file both give the same secret/);
    fails({ password }, /^--nats-password needs --nats-user$/);
    fails({ user: 'u' }, /^--nats-user needs --nats-password or --nats-password-file$/);
    fails({}, /^--nats: "ws:\/\/127.0.0.1:4222" has scheme ws:\/\/; expected nats:\/\/ or tls:\/\/$/, 'ws://127.0.0.1:4222');
  });

});

describe('the resgraph command (dist/cli.js)', () => {
  // compiles dist/ when it is older than src/
  beforeAll(() => ensureBuilt(), 120_000);

  it('exits 2 with the message for bad --nats-* options', { timeout: 60_000 }, async () => {
    const run = (args: string[], env: Record<string, string> = {}) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [join(root, 'dist', 'cli.js'), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => (stderr += d));
        child.once('exit', (code) => resolve({ code, stderr }));
      });
    const conflict = await run(['--port', '0', '--schema', 'schema', '--nats-user', 'u'], { RESGRAPH_NATS_PASSWORD: password, RESGRAPH_NATS_TOKEN: token });
    seenOutput.push(conflict.stderr);
    expect(conflict).toMatchObject({ code: 2 });
    expect(conflict.stderr).toMatch(/^resgraph: --nats-token and --nats-user are two ways to authenticate to NATS; give only one\n/);
    const noKey = await run(['--port', '0', '--schema', 'schema', '--nats-tls-cert', good.client.cert]);
    expect(noKey).toMatchObject({ code: 2, stderr: expect.stringMatching(/^resgraph: --nats-tls-cert needs --nats-tls-key\n/) });
  });

  it('and the example service serve the library on a secured server (TLS + operator mode) with the same --nats-* options', { timeout: 60_000 }, async () => {
    const nats = await startNatsServer({ config: operator.config + tlsConfig(good.server) });
    cleanup.push(() => nats.stop());
    const url = `tls://127.0.0.1:${nats.port}`;
    const natsClient = { creds: operator.creds, tlsCa: good.ca, name: 'library-under-test' };
    const library = await startLibraryService(url, { natsClient });
    cleanup.push(() => library.close());
    const gw = await startGatewayProcess(['--nats', url, '--nats-creds', operator.creds, '--nats-tls-ca', good.ca, '--schema', 'schema', '--port', '0']);
    cleanup.push(() => gw.kill());
    const books = await gql(gw.url, '{ books { title } }');
    expect(books.data?.books?.[0]).toEqual({ title: 'A Wizard of Earthsea' });
    seenOutput.push(gw.output());
  });
});

describe('secrets', () => {
  it('appear in no log, metric, /readyz body, error message or --help', () => {
    seenOutput.push(helpText());
    const secrets = [password, token, ...seeds];
    expect(seeds.length).toBeGreaterThan(3);
    const haystack = seenOutput.join('\n') + JSON.stringify(allLogs);
    for (const s of secrets) expect(haystack.includes(s), `a secret (${s.slice(0, 4)}...) leaked`).toBe(false);
  });
});
