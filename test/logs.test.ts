/**
 * `--log-format json`, from the real command's stderr: one JSON object a
 * line with time, level and message, fields beside them, the connection's
 * id on lines about a connection, and no secret a client sent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCliStack, type CliStack, type GatewayProcess } from './helpers/cli-gateway.js';
import { waitFor } from './helpers/wait.js';

const secret = 's3cret-bearer-token';
let stack: CliStack;
let gw: GatewayProcess;

beforeAll(async () => {
  stack = await startCliStack(
    'type Book { title: String }\ntype Query { book(id: ID!): Book @get(rid: "library.book.{id}") }\n',
    ['--port', '0', '--log-format', 'json', '--log-level', 'debug', '--header-auth', 'session.header'],
    (svc) => {
      svc.model('library.book.1', { title: 'Dune' });
      // header auth that fails: the gateway logs it (at debug level) with the connection's id
      svc.handle('auth.session.header', () => ({ error: { code: 'session.invalid', message: `bad token ${secret}` } }));
    },
  );
  gw = stack.gw;
}, 60_000);

afterAll(async () => {
  await stack?.close();
});

/** The stderr lines that are log entries (stdout carries the URL line). */
const entries = () =>
  gw
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('--log-format json', () => {
  it('writes one object a line: time, level, msg and the fields', () => {
    const connected = entries().find((e) => e.msg === 'connected to NATS');
    expect(connected).toMatchObject({ level: 'info', server: expect.stringContaining('127.0.0.1') });
    expect(new Date(connected!.time as string).toISOString()).toBe(connected!.time);
    // every line of the log is JSON, none of it text
    const lines = gw.output().split('\n').filter((l) => l !== '' && !l.startsWith('resgraph listening'));
    expect(lines.every((l) => l.startsWith('{'))).toBe(true);
  });

  it('names the connection on a line about it, and logs no secret the client sent', async () => {
    const res = await fetch(gw.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}`, cookie: `session=${secret}` },
      body: JSON.stringify({ query: '{ book(id: 1) { title } }' }),
    });
    expect(res.status).toBe(200);
    const failed = await waitFor(() => entries().find((e) => e.msg === 'header auth failed'), 5000, 'the header auth line');
    expect(failed).toMatchObject({ level: 'debug', code: 'session.invalid', cid: expect.stringMatching(/^[\w-]{20,}$/) });
    expect(gw.output()).not.toContain(secret);
  });
});
