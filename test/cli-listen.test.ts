/**
 * The command's error when it cannot listen: one line naming the address
 * it could not take, the gateway's or the metrics' own (`--metrics <port>`),
 * and exit code 1.
 */
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCliStack } from './helpers/cli-gateway.js';

const sdl = 'type Book { title: String }\ntype Query { book(id: ID!): Book @get(rid: "library.book.{id}") }\n';
let taken: Server;
let port: number;

beforeAll(async () => {
  taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  port = (taken.address() as { port: number }).port;
});

afterAll(async () => {
  await new Promise((resolve) => taken?.close(resolve));
});

async function refusal(args: string[]): Promise<string> {
  const started = startCliStack(sdl, ['--host', '127.0.0.1', ...args]);
  const e = await started.then(
    async (stack) => {
      await stack.close();
      throw new Error('the gateway started on a port in use');
    },
    (err: Error) => err,
  );
  return e.message;
}

describe('a port in use', () => {
  it("for the gateway: the error names the gateway's address", async () => {
    const message = await refusal(['--port', String(port)]);
    expect(message).toContain(`cannot listen on 127.0.0.1:${port}: the port is in use`);
  }, 60_000);

  it('for --metrics <port>: the error names the metrics port, not the gateway\'s', async () => {
    const message = await refusal(['--port', '0', '--metrics', String(port)]);
    expect(message).toContain(`cannot listen on 127.0.0.1:${port}: the port is in use`);
    expect(message).not.toContain('127.0.0.1:0');
  }, 60_000);
});
