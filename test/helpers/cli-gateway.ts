/**
 * The `resgraph` command as a child process (`node dist/cli.js`), for tests
 * that need real processes: started with flags, ready once it has printed
 * its URL and /readyz answers 200, stopped with a signal. `ensureBuilt`
 * compiles dist/ first when it is missing or older than src/.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNatsServer, type NatsServer } from './nats-server.js';
import { TestService } from './res-service.js';
import { waitFor } from './wait.js';

export const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = join(root, 'dist', 'cli.js');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** Runs `tsc -p tsconfig.build.json` when dist/cli.js is missing or older than a file under src/. */
export async function ensureBuilt(): Promise<void> {
  if (existsSync(cli) && statSync(cli).mtimeMs >= newestMtime(join(root, 'src'))) return;
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const out = await new Promise<string>((resolve) => {
    const child = spawn(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d));
    child.stderr.on('data', (d: Buffer) => (text += d));
    child.once('exit', () => resolve(text));
  });
  // tsc writes its output even with type errors elsewhere; only a missing cli.js stops us
  if (!existsSync(cli)) throw new Error(`npm run build did not produce dist/cli.js:\n${out}`);
}

export interface GatewayProcess {
  url: string;
  port: number;
  /** printed when metrics have a port of their own, else /metrics on the gateway's port */
  metricsUrl: string;
  child: ChildProcess;
  /** stdout and stderr so far */
  output(): string;
  /** resolves when the process has exited */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL, unless it has exited already */
  kill(): Promise<void>;
}

/** Starts `node dist/cli.js <args>` (with `env` added to this process's environment) and resolves once it is listening and ready. */
export async function startGatewayProcess(args: string[], timeoutMs = 20_000, env: Record<string, string> = {}): Promise<GatewayProcess> {
  const child = spawn(process.execPath, [cli, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let gone = false;
  void exited.then(() => (gone = true));
  const kill = async () => {
    if (gone) return;
    child.kill('SIGKILL');
    await exited;
  };
  try {
    const url = (await waitFor(
      () => {
        if (gone) throw new Error(`resgraph exited before it was ready:\n${out}`);
        return /resgraph listening on (\S+)/.exec(out)?.[1];
      },
      timeoutMs,
      'resgraph to print its URL',
    )) as string;
    await waitFor(async () => (await fetch(new URL('/readyz', url))).status === 200, timeoutMs, `${url} to be ready`);
    // printed right after the URL, when metrics have a port of their own
    const metricsUrl = /resgraph metrics on (\S+)/.exec(out)?.[1] ?? new URL('/metrics', url).href;
    return { url, port: Number(new URL(url).port), metricsUrl, child, output: () => out, exited, kill };
  } catch (e) {
    await kill();
    throw e;
  }
}

export interface CliStack {
  nats: NatsServer;
  svc: TestService;
  gw: GatewayProcess;
  close(): Promise<void>;
}

/**
 * A nats-server, the TestService (set up by `prepare` before the gateway
 * starts) and `node dist/cli.js` with `args` (and `env`), serving `sdl`
 * from a temporary schema file; `close` stops them and removes the file.
 */
export async function startCliStack(
  sdl: string,
  args: string[],
  prepare: (svc: TestService) => void = () => undefined,
  timeoutMs?: number,
  env?: Record<string, string>,
): Promise<CliStack> {
  await ensureBuilt();
  const nats = await startNatsServer();
  const svc = await TestService.start(nats.url);
  prepare(svc);
  const dir = mkdtempSync(join(tmpdir(), 'resgraph-cli-'));
  const schema = join(dir, 'schema.graphql');
  writeFileSync(schema, sdl);
  const close = async () => {
    await svc.close();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  let gw: GatewayProcess;
  try {
    gw = await startGatewayProcess([...args, '--nats', nats.url, '--schema', schema], timeoutMs, env);
  } catch (e) {
    await close();
    throw e;
  }
  return {
    nats,
    svc,
    gw,
    async close() {
      await gw.kill();
      await close();
    },
  };
}
