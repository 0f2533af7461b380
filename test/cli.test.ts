/** The command line: flags, environment variables, defaults, and clear errors for bad input. */
import { describe, expect, it } from 'vitest';
import { parseCliArgs, UsageError } from '../src/cli.js';

const run = (argv: string[], env: Record<string, string> = {}) => {
  const cmd = parseCliArgs(argv, env);
  if (cmd.command !== 'run') throw new Error(`not a run: ${cmd.command}`);
  return cmd.options;
};

describe('resgraph command line', () => {
  it('has sensible defaults', () => {
    expect(run([])).toMatchObject({ nats: ['nats://127.0.0.1:4222'], schema: './schema', port: 4000, host: '127.0.0.1', requestTimeout: 3000, maxSubscriptions: 200, maxDepth: 15 });
  });

  it('reads flags and environment variables, a flag winning', () => {
    const opts = run(['--port', '5000', '--max-subscriptions', '10', '--nats', 'nats://a:1,nats://b:2'], { RESGRAPH_PORT: '6000', RESGRAPH_MAX_DEPTH: '7' });
    expect(opts).toMatchObject({ port: 5000, maxSubscriptions: 10, maxDepth: 7, nats: ['nats://a:1', 'nats://b:2'] });
  });

  it('refuses bad input with a one-line reason', () => {
    expect(() => run(['--port', 'abc'])).toThrow(UsageError);
    expect(() => run(['--max-depth', '0'])).toThrow(/max-depth/);
    expect(() => run(['--nope'])).toThrow(/unknown option --nope/);
    expect(() => run([], { RESGRAPH_MAX_SUBSCRIPTIONS: '-1' })).toThrow(/RESGRAPH_MAX_SUBSCRIPTIONS/);
  });

  it("reads --resgate-api and --api-path: Resgate's HTTP API on at /api by default", () => {
    expect(run([])).toMatchObject({ resgateApi: true, apiPath: '/api' });
    expect(run(['--resgate-api', 'off', '--api-path', '/res/'])).toMatchObject({ resgateApi: false, apiPath: '/res/' });
    expect(run([], { RESGRAPH_RESGATE_API: 'OFF' }).resgateApi).toBe(false);
    expect(() => run(['--resgate-api', 'yes'])).toThrow(/invalid --resgate-api "yes": expected on or off/);
    expect(() => run(['--api-path', 'api'])).toThrow(/invalid --api-path "api"/);
    expect(() => run(['--api-path', '/'])).toThrow(/invalid --api-path/);
  });

  it('reads --res-ws-path: the RES WebSocket protocol at / by default, or off', () => {
    expect(run([]).resWsPath).toBe('/');
    expect(run(['--res-ws-path', '/res']).resWsPath).toBe('/res');
    expect(run(['--res-ws-path', 'off']).resWsPath).toBe(false);
    expect(() => run(['--res-ws-path', 'ws'])).toThrow(/invalid --res-ws-path "ws"/);
  });

  it('reads --allow-origin: none by default, *, or a list of origins', () => {
    expect(run([]).allowOrigin).toBe('');
    expect(run(['--allow-origin', '*']).allowOrigin).toBe('*');
    expect(run([], { RESGRAPH_ALLOW_ORIGIN: 'https://app.example.com,http://localhost:5173' }).allowOrigin).toBe('https://app.example.com,http://localhost:5173');
    expect(() => run(['--allow-origin', 'app.example.com'])).toThrow(/invalid --allow-origin "app.example.com".*is not an origin/);
    expect(() => run(['--allow-origin', 'https://a.example/path'])).toThrow(/is not an origin/);
    expect(() => run(['--allow-origin', '*,https://a.example'])).toThrow(/must not be combined/);
  });

  it('reads --workers: off by default, a number, or auto for one per core', () => {
    expect(run([]).workers).toBeUndefined();
    expect(run(['--workers', '2']).workers).toBe(2);
    expect(run([], { RESGRAPH_WORKERS: 'auto' }).workers).toBeGreaterThanOrEqual(1);
    expect(() => run(['--workers', '0'])).toThrow(/invalid --workers "0": expected off, auto, or a whole number/);
  });

  it('reads --graphiql on|off and --multipart-heartbeat', () => {
    expect(run([])).toMatchObject({ graphiql: true, multipartHeartbeat: 5000 });
    expect(run(['--graphiql', 'off'], { RESGRAPH_MULTIPART_HEARTBEAT: '250' })).toMatchObject({ graphiql: false, multipartHeartbeat: 250 });
    expect(run(['--graphiql', 'ON'], { RESGRAPH_GRAPHIQL: 'off' })).toMatchObject({ graphiql: true });
    expect(() => run(['--graphiql', 'maybe'])).toThrow(/invalid --graphiql "maybe": expected on or off/);
    expect(() => run(['--multipart-heartbeat', '0'])).toThrow(/multipart-heartbeat/);
  });

  it('reads --otel on|off: off by default', () => {
    expect(run([]).otel).toBe(false);
    expect(run(['--otel', 'on']).otel).toBe(true);
    expect(run([], { RESGRAPH_OTEL: 'ON' }).otel).toBe(true);
    expect(run(['--otel', 'off'], { RESGRAPH_OTEL: 'on' }).otel).toBe(false);
    expect(() => run([], { RESGRAPH_OTEL: 'yes' })).toThrow(/invalid RESGRAPH_OTEL "yes": expected on or off/);
  });

  it('reads the operation limits and the trusted documents, with their defaults', () => {
    expect(run([])).toMatchObject({
      maxAliases: 30,
      maxTokens: 5000,
      maxDirectives: 50,
      maxDocumentBytes: 102400,
      maxBodyBytes: 1048576,
      persistedDocuments: undefined,
      persistedOnly: false,
    });
    const opts = run(['--max-aliases', '5', '--max-body-bytes', '2000', '--persisted-documents', 'docs.json', '--persisted-only'], {
      RESGRAPH_MAX_TOKENS: '100',
      RESGRAPH_MAX_DIRECTIVES: '3',
      RESGRAPH_MAX_DOCUMENT_BYTES: '999',
    });
    expect(opts).toMatchObject({ maxAliases: 5, maxTokens: 100, maxDirectives: 3, maxDocumentBytes: 999, maxBodyBytes: 2000, persistedDocuments: 'docs.json', persistedOnly: true });
    expect(run([], { RESGRAPH_PERSISTED_DOCUMENTS: 'a.json', RESGRAPH_PERSISTED_ONLY: 'true' })).toMatchObject({ persistedOnly: true });
    expect(() => run(['--max-tokens', '0'])).toThrow(/max-tokens/);
    expect(() => run(['--persisted-only'])).toThrow(/--persisted-only needs --persisted-documents/);
    expect(() => run([], { RESGRAPH_PERSISTED_DOCUMENTS: 'a.json', RESGRAPH_PERSISTED_ONLY: 'yes' })).toThrow(/RESGRAPH_PERSISTED_ONLY/);
  });

  it('reads --watch-schema', () => {
    expect(run([])).toMatchObject({ watchSchema: false });
    expect(run(['--watch-schema'])).toMatchObject({ watchSchema: true });
    expect(run([], { RESGRAPH_WATCH_SCHEMA: 'true' })).toMatchObject({ watchSchema: true });
    expect(() => run([], { RESGRAPH_WATCH_SCHEMA: 'yes' })).toThrow(/invalid RESGRAPH_WATCH_SCHEMA "yes": expected true or false/);
  });

  it('has a print-schema command', () => {
    expect(parseCliArgs(['print-schema', '--schema', 'schema'], {})).toEqual({ command: 'print-schema', schema: 'schema' });
    expect(() => parseCliArgs(['serve'], {})).toThrow(/unknown command "serve"/);
  });
});
