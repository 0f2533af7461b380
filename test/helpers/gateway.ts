/**
 * Starts a gateway in-process for a test, on a free port, with a schema given
 * as SDL text or a path, and a logger that records what was logged. `gql`
 * posts an operation over real HTTP.
 */
import { request } from 'node:http';
import type { Logger } from '../../src/log.js';
import { buildResourceSchema } from '../../src/schema/schema.js';
import { startGateway, type Gateway, type GatewayOptions } from '../../src/server.js';

export interface LogEntry {
  level: string;
  msg: string;
  fields?: Record<string, unknown>;
}

export function recordingLogger(entries: LogEntry[] = []): Logger & { entries: LogEntry[] } {
  const rec = (level: string) => (msg: string, fields?: Record<string, unknown>) => {
    entries.push({ level, msg, fields });
    if (process.env.RESGRAPH_TEST_LOG) console.error(level, msg, fields ?? '');
  };
  return { entries, debug: rec('debug'), info: rec('info'), warn: rec('warn'), error: rec('error') };
}

export type TestGateway = Gateway & { logs: LogEntry[] };

export async function startTestGateway(
  natsUrl: string,
  sdl: string,
  opts: Partial<GatewayOptions> = {},
): Promise<TestGateway> {
  const logger = recordingLogger();
  const gw = await startGateway({
    nats: natsUrl,
    schema: buildResourceSchema([{ name: 'test.graphql', body: sdl }]),
    port: 0,
    logger,
    ...opts,
  });
  if (opts.nats === undefined || opts.nats === natsUrl) await gw.natsReady;
  return Object.assign(gw, { logs: logger.entries });
}

export interface GqlResult<T = any> {
  data?: T;
  errors?: { message: string; path?: (string | number)[]; extensions?: { code?: string; data?: unknown } }[];
}

export async function gql<T = any>(
  url: string,
  query: string,
  variables?: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<GqlResult<T>> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as GqlResult<T>;
}

/** A query on a connection of its own (no keep-alive), so that connections go round a fleet's workers. */
export function queryOnNewConnection(url: string, query: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', connection: 'close' } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d));
      res.on('end', () => resolve(JSON.parse(body)));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ query }));
  });
}
