/**
 * Request/response over the Node IPC channel between the bench orchestrator
 * and its child processes (gateway launcher, fixture service, load
 * generators). A child calls `serve(handlers)` then `ready(info)`; the parent
 * wraps the ChildProcess with `rpc(child, name)`.
 */

/** Child side: answers {id, cmd, args} messages with {id, ok, result | error}. */
export function serve(handlers) {
  process.on('message', async (m) => {
    if (!m || typeof m.id !== 'number') return;
    const handler = handlers[m.cmd];
    try {
      if (!handler) throw new Error(`unknown command ${m.cmd}`);
      const result = await handler(m.args ?? {});
      process.send?.({ id: m.id, ok: true, result });
    } catch (e) {
      process.send?.({ id: m.id, ok: false, error: String(e?.stack ?? e) });
    }
  });
  // the orchestrator went away: never outlive it
  process.on('disconnect', () => process.exit(0));
}

/**
 * The `stop` handler of a child: answers, then (once the reply has gone out)
 * runs `cleanup` and exits, also when the cleanup fails.
 */
export function exitAfterReply(cleanup = async () => undefined) {
  return () => {
    setTimeout(async () => {
      await Promise.resolve()
        .then(cleanup)
        .catch(() => undefined);
      process.exit(0);
    }, 10);
    return true;
  };
}

export function ready(info = {}) {
  process.send?.({ ready: true, pid: process.pid, ...info });
}

/** Parent side. */
export function rpc(child, name) {
  let next = 1;
  const pending = new Map();
  let exited;
  let readyInfo;
  const readyWaiters = [];
  child.on('message', (m) => {
    if (m && m.ready) {
      readyInfo = m;
      for (const w of readyWaiters.splice(0)) w.resolve(m);
      return;
    }
    const p = m && pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.ok) p.resolve(m.result);
    else p.reject(new Error(`${name}: ${m.error}`));
  });
  child.on('exit', (code, signal) => {
    exited = `${name} exited (${signal ?? code})`;
    for (const p of pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error(exited));
    }
    pending.clear();
    for (const w of readyWaiters.splice(0)) w.reject(new Error(exited));
  });
  return {
    child,
    name,
    get pid() {
      return child.pid;
    },
    get exited() {
      return exited;
    },
    ready(timeoutMs = 30_000) {
      if (readyInfo) return Promise.resolve(readyInfo);
      if (exited) return Promise.reject(new Error(exited));
      return new Promise((resolve, reject) => {
        const w = { resolve, reject };
        readyWaiters.push(w);
        setTimeout(() => reject(new Error(`${name} not ready within ${timeoutMs} ms`)), timeoutMs).unref();
      });
    },
    call(cmd, args = {}, timeoutMs = 120_000) {
      if (exited) return Promise.reject(new Error(exited));
      const id = next++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${name}: ${cmd} timed out after ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, { resolve, reject, timer });
        child.send({ id, cmd, args });
      });
    },
  };
}
