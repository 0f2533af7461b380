/**
 * Starts a real nats-server on a free loopback port for one test file, and
 * stops or restarts it, optionally with a configuration (TLS, authorization,
 * operator mode) that a restart may change. Waits for the server's "ready"
 * line, never a sleep. The one place tests spawn nats-server.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NatsServer {
  url: string;
  port: number;
  stop(): Promise<void>;
  /** starts it again on the same port (after stop), with a new configuration when one is given */
  start(config?: string): Promise<void>;
}

/**
 * `config`: the text of a nats-server configuration file (no `listen`: the
 * address and port are given on the command line, which wins).
 */
export interface NatsServerOptions {
  port?: number;
  config?: string;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Spawns nats-server with these arguments and resolves once it says it is ready. */
export function spawnNatsServer(args: string[]): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    // Debian installs nats-server in /usr/sbin, which is not on every user's PATH
    const child = spawn('nats-server', args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin` },
    });
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`nats-server did not start within 10 s:\n${out}`));
    }, 10_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run nats-server (${e.message}); install it: apt-get install -y nats-server`));
    });
    child.stderr!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Server is ready')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited with ${code}:\n${out}`));
    });
  });
}

export async function startNatsServer(portOrOptions?: number | NatsServerOptions): Promise<NatsServer> {
  const opts = typeof portOrOptions === 'number' ? { port: portOrOptions } : (portOrOptions ?? {});
  const p = opts.port ?? (await freePort());
  let configDir: string | undefined;
  const argsFor = (config: string | undefined) => {
    const args = ['-a', '127.0.0.1', '-p', String(p)];
    if (config === undefined) return args;
    configDir ??= mkdtempSync(join(tmpdir(), 'resgraph-nats-'));
    const file = join(configDir, 'nats-server.conf');
    writeFileSync(file, config);
    return ['-c', file, ...args];
  };
  let args = argsFor(opts.config);
  let child: ChildProcess | undefined = await spawnNatsServer(args);
  return {
    url: `nats://127.0.0.1:${p}`,
    port: p,
    async stop() {
      const c = child;
      child = undefined;
      if (!c || c.exitCode !== null) return;
      await new Promise<void>((resolve) => {
        c.once('exit', () => resolve());
        c.kill('SIGKILL');
      });
    },
    async start(config?: string) {
      if (child) return;
      if (config !== undefined) args = argsFor(config);
      child = await spawnNatsServer(args);
    },
  };
}
