/**
 * WebSocket load generator: many graphql-ws clients in one process, speaking
 * the graphql-transport-ws protocol directly over `ws` (connection_init →
 * connection_ack, subscribe, next), which is far cheaper per socket than
 * graphql-ws client objects. Each client holds at most one subscription and
 * tracks the `seq` of the results it receives:
 *   - latency: receive time − the event's `ts` (same monotonic clock as the publisher);
 *   - a seq lower than one already seen: reordered; equal: duplicate;
 *   - a jump over seqs: those were coalesced by the gateway (not lost: the newer state arrived);
 *   - a client whose last seq is not the model's last published one: lost.
 * Controlled by the orchestrator over IPC.
 */
import WebSocket from 'ws';
import { Hist, nowMs } from '../lib/hist.mjs';
import { serve, ready } from '../lib/ipc.mjs';

/** @type {{ws: WebSocket, model?: string, last: number, first: boolean, onFirst?: () => void, acked: boolean, closed: boolean}[]} */
const clients = [];
let stats = newStats();

function newStats() {
  return {
    hist: new Hist(),
    received: 0,
    reordered: 0,
    duplicates: 0,
    coalesced: 0,
    errors: 0,
    errorSample: undefined,
    unexpectedCloses: 0,
    firstResults: 0,
  };
}

function onMessage(c, data) {
  const now = nowMs();
  let msg;
  try {
    msg = JSON.parse(data.toString());
  } catch {
    stats.errors++;
    return;
  }
  if (msg.type === 'next') {
    const item = msg.payload?.data?.item;
    if (!item || msg.payload.errors) {
      stats.errors++;
      stats.errorSample ??= JSON.stringify(msg.payload).slice(0, 300);
      return;
    }
    if (!c.first) {
      c.first = true;
      c.last = item.seq;
      stats.firstResults++;
      c.onFirst?.();
      return;
    }
    stats.received++;
    const seq = item.seq;
    if (seq <= c.last) {
      if (seq === c.last) stats.duplicates++;
      else stats.reordered++;
    } else {
      stats.coalesced += seq - c.last - 1;
      c.last = seq;
    }
    stats.hist.record(now - item.ts);
  } else if (msg.type === 'connection_ack') {
    c.acked = true;
    c.onAck?.();
  } else if (msg.type === 'error' || msg.type === 'complete') {
    stats.errors++;
    stats.errorSample ??= JSON.stringify(msg).slice(0, 300);
  } else if (msg.type === 'ping') {
    c.ws.send('{"type":"pong"}');
  }
}

function open(url) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, 'graphql-transport-ws', { perMessageDeflate: false });
    const c = { ws, last: -1, first: false, acked: false, closed: false };
    let settled = false;
    const done = (ok, why) => {
      if (settled) return;
      settled = true;
      resolve(ok ? c : { failed: why });
    };
    ws.on('open', () => ws.send('{"type":"connection_init"}'));
    ws.on('message', (data) => onMessage(c, data));
    ws.on('error', (e) => done(false, e.message));
    ws.on('close', (code) => {
      if (!c.closed && c.acked) stats.unexpectedCloses++;
      c.closed = true;
      done(false, `closed ${code}`);
    });
    c.onAck = () => done(true);
  });
}

/** Opens `count` connections, `concurrency` handshakes at a time; resolves when all are acknowledged or failed. */
async function connect({ url, count, concurrency = 256 }) {
  const t0 = nowMs();
  let failed = 0;
  let failSample;
  let started = 0;
  const worker = async () => {
    while (started < count) {
      started++;
      const c = await open(url);
      if (c.failed) {
        failed++;
        failSample ??= c.failed;
      } else clients.push(c);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { connected: clients.length, failed, failSample, ms: nowMs() - t0 };
}

/**
 * Subscribes clients [from, to) to `item(id)`: `ids` is one id for all or a
 * list (client i gets ids[i % length]). Resolves when each has its first
 * result (or after timeoutMs).
 */
async function subscribe({ query, ids, from = 0, to = clients.length, batch = 500, timeoutMs = 60_000 }) {
  const t0 = nowMs();
  const list = Array.isArray(ids) ? ids : [ids];
  const waits = [];
  for (let i = from; i < to; i++) {
    const c = clients[i];
    c.model = String(list[i % list.length]);
    waits.push(new Promise((r) => (c.onFirst = r)));
    c.ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query, variables: { id: c.model } } }));
    // let the socket writes go out and answers come in between batches
    if ((i - from + 1) % batch === 0) await new Promise((r) => setImmediate(r));
  }
  const all = Promise.all(waits).then(() => true);
  const ok = await Promise.race([all, new Promise((r) => setTimeout(() => r(false), timeoutMs))]);
  const got = clients.slice(from, to).filter((c) => c.first).length;
  return { subscribed: to - from, firstResults: got, complete: ok, ms: nowMs() - t0 };
}

/** Waits until every subscribed client has seen its model's `expect` seq. */
async function waitFor({ expect, timeoutMs = 10_000 }) {
  const t0 = nowMs();
  for (;;) {
    let behind = 0;
    for (const c of clients) if (c.model !== undefined && c.last !== expect[c.model]) behind++;
    if (behind === 0) return { done: true, ms: nowMs() - t0, behind };
    if (nowMs() - t0 > timeoutMs) return { done: false, ms: nowMs() - t0, behind };
    await new Promise((r) => setTimeout(r, 20));
  }
}

function report({ expect }) {
  let lost = 0;
  let subscribed = 0;
  let lostSample;
  for (const c of clients) {
    if (c.model === undefined) continue;
    subscribed++;
    if (expect && c.last !== expect[c.model]) {
      lost++;
      lostSample ??= { model: c.model, last: c.last, expected: expect[c.model] };
    }
  }
  const { hist, ...rest } = stats;
  return { ...rest, hist: hist.toJSON(), subscribed, lost, lostSample, open: clients.filter((c) => !c.closed).length };
}

serve({
  connect,
  subscribe,
  waitFor,
  phase: () => {
    stats = newStats();
    return true;
  },
  report,
  close: async () => {
    for (const c of clients) {
      c.closed = true;
      c.ws.terminate();
    }
    clients.length = 0;
    return true;
  },
  stop: () => {
    for (const c of clients) {
      c.closed = true;
      c.ws.terminate();
    }
    setTimeout(() => process.exit(0), 10);
    return true;
  },
});
ready();
