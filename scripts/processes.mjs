/**
 * What `npm start` (scripts/start.mjs) and the cluster example
 * (examples/cluster/run.mjs) both need to run the project's pieces as child
 * processes: a current build, nats-server, free ports, stopping whole
 * process groups, and stopping them all on Ctrl-C.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The newest modification time of the files under a path. */
function newest(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newest(join(path, name))));
}

/**
 * Exits with a clear message when the dependencies (these node_modules/.bin
 * commands) are missing, and runs `npm run build` when dist/ is missing or
 * older than its sources.
 */
export function ensureBuilt(bins) {
  if (!bins.every((bin) => existsSync(join(root, 'node_modules', '.bin', bin)))) {
    console.error('The dependencies are not installed; run: npm install');
    process.exit(1);
  }
  const cli = join(root, 'dist', 'cli.js');
  const sources = Math.max(newest(join(root, 'src')), newest(join(root, 'tsconfig.json')), newest(join(root, 'tsconfig.build.json')));
  if (existsSync(cli) && statSync(cli).mtimeMs >= sources) return;
  console.log(existsSync(cli) ? 'src/ changed since the last build; running npm run build' : 'dist/ is missing; running npm run build');
  const r = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(r.error ? `cannot run npm: ${r.error.message}` : 'npm run build failed; fix the errors above and try again');
    process.exit(1);
  }
}

/** The nats-server executable on PATH, or in /usr/sbin where Debian puts it; undefined when there is none. */
export function findNatsServer() {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/sbin']) {
    const candidate = join(dir, 'nats-server');
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Signals a child's whole process group (tsx, for one, runs its program in a process of its own). */
export function signalGroup(child, signal) {
  try {
    process.kill(-child.proc.pid, signal);
  } catch {
    // the group is gone already
  }
}

/** Resolves true once the child has exited, false after `ms`. */
export function waitForExit(child, ms) {
  if (child.exited) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.proc.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * Ctrl-C, SIGTERM and SIGHUP call `stopAll(0)` once; a repeat more than
 * 500 ms later (npm forwards the first Ctrl-C too, so an immediate repeat is
 * the same keypress) exits at once. However this process ends, no child's
 * process group outlives it.
 */
export function stopOnSignals(children, stopAll, isStopping) {
  let firstSignalAt = 0;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      if (!isStopping()) {
        firstSignalAt = Date.now();
        console.log('\nstopping...');
        void stopAll(0);
      } else if (Date.now() - firstSignalAt > 500) {
        console.error('killing everything now');
        process.exit(1);
      }
    });
  }
  process.on('exit', () => {
    for (const child of children) signalGroup(child, 'SIGKILL');
  });
}
