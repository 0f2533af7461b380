/**
 * WebSocket load generator: many clients in one process, each holding at
 * most one subscription to one model, tracking the `seq` of what it receives:
 *   - latency: receive time − the event's `ts` (same monotonic clock as the publisher);
 *   - a seq lower than one already seen: reordered; equal: duplicate;
 *   - a jump over seqs: those were coalesced by the gateway (not lost: the newer state arrived);
 *   - a client whose last seq is not the model's last published one: lost;
 *   - staleness (when a phase asks for it): for every published event, the time
 *     from its publish until the client holds a result that reflects it or a
 *     later state. Events skipped by a jump are resolved after the phase, from
 *     the publisher's seq → ts list.
 *
 * Two protocols (per connection, chosen in `connect`):
 *   - `graphql-ws`: graphql-transport-ws (connection_init → connection_ack,
 *     subscribe, next), for resgraph;
 *   - `resgate`: Resgate's own WebSocket protocol (version request, then
 *     `subscribe.<rid>`; the subscribe result holds the model, `<rid>.change`
 *     events carry the changed values), for the comparison with Resgate.
 * Two transports:
 *   - `ws`: the `ws` package (the default, used by the single-gateway scenarios);
 *   - `raw`: a minimal WebSocket client on net sockets with `onread` (one shared
 *     read buffer, no stream machinery, frames parsed in place), several times
 *     cheaper per received message, so a gateway that sends every event
 *     (Resgate) is not held back by the load generator. Used by `compare`.
 * Controlled by the orchestrator over IPC.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { Hist, nowMs } from '../lib/hist.mjs';
import { exitAfterReply, ready, serve } from '../lib/ipc.mjs';

/**
 * @typedef {{ idx: number, protocol: string, send: (s: string) => void, kill: () => void, model?: string, rid?: string,
 *   last: number, first: boolean, onFirst?: () => void, onAck?: () => void, acked: boolean, closed: boolean, stale?: Uint32Array }} Client
 */
/** @type {Client[]} */
const clients = [];
let stats = newStats();
/** staleness tracking of the current phase, or undefined */
let track;

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
    /** socket reads (raw transport): reads per result show how the gateway's writes arrive */
    reads: 0,
  };
}

// ---- staleness -------------------------------------------------------------

/** staleness histograms by publish time: key floor(ts / BUCKET_MS) → Hist, so the start and the end of a phase can be told apart */
const BUCKET_MS = 100;
/** per-client coarse histogram: 5 % log buckets over µs (enough for a per-client p99) */
const CK = 1 / Math.log(1.05);
const CSIZE = 480;
const cidx = (ms) => {
  const us = ms * 1000;
  return us < 1 ? 0 : Math.min(CSIZE - 1, 1 + Math.floor(Math.log(us) * CK));
};
const cval = (i) => (i === 0 ? 0 : Math.exp((i - 1 + 0.5) / CK) / 1000);

function newTrack(perEvent) {
  return { byBucket: new Map(), gaps: [], maxBySeq: perEvent ? new Map() : undefined };
}

function recordStale(c, seq, ts, ms) {
  const key = Math.floor(ts / BUCKET_MS);
  let h = track.byBucket.get(key);
  if (!h) track.byBucket.set(key, (h = new Hist()));
  h.record(ms);
  (c.stale ??= new Uint32Array(CSIZE))[cidx(ms)]++;
  if (track.maxBySeq) {
    // per event: how long until the last client held it
    const k = `${c.model}:${seq}`;
    const m = track.maxBySeq.get(k);
    if (m === undefined || ms > m) track.maxBySeq.set(k, ms);
  }
}

// ---- results ---------------------------------------------------------------

/** A result showing state `seq` (sent at `ts`) reached client c at `now`. */
function onResult(c, seq, ts, now) {
  if (!c.first) {
    c.first = true;
    c.last = seq;
    stats.firstResults++;
    c.onFirst?.();
    return;
  }
  stats.received++;
  if (seq <= c.last) {
    if (seq === c.last) stats.duplicates++;
    else stats.reordered++;
  } else {
    const gap = seq - c.last - 1;
    if (gap > 0) {
      stats.coalesced += gap;
      // the events skipped over are reflected by this result too: resolved in report(), when their send times are known
      if (track) track.gaps.push(c.idx, c.last + 1, seq - 1, now);
    }
    if (track) recordStale(c, seq, ts, now - ts);
    c.last = seq;
  }
  stats.hist.record(now - ts);
}

function fail(sample) {
  stats.errors++;
  stats.errorSample ??= String(sample).slice(0, 300);
}

/** Reads `"<name>":<number>` from a JSON text without parsing all of it (the hot path: one call per received result). */
function numberAfter(s, key) {
  const i = s.indexOf(key);
  return i < 0 ? NaN : parseFloat(s.slice(i + key.length, i + key.length + 32));
}

/** Takes a result's `seq` and `ts` without parsing the whole frame; false when they are not both there. */
function tookResult(c, s, now) {
  const seq = numberAfter(s, '"seq":');
  const ts = numberAfter(s, '"ts":');
  if (!Number.isFinite(seq) || !Number.isFinite(ts)) return false;
  onResult(c, seq, ts, now);
  return true;
}

function onGraphqlWs(c, s, now) {
  // hot path: a result without errors
  if (s.includes('"type":"next"') && !s.includes('"errors"') && tookResult(c, s, now)) return;
  let msg;
  try {
    msg = JSON.parse(s);
  } catch {
    return fail(s);
  }
  if (msg.type === 'next') {
    const item = msg.payload?.data?.item;
    if (!item || msg.payload.errors) return fail(JSON.stringify(msg.payload));
    onResult(c, item.seq, item.ts, now);
  } else if (msg.type === 'connection_ack') {
    c.acked = true;
    c.onAck?.();
  } else if (msg.type === 'error' || msg.type === 'complete') {
    fail(s);
  } else if (msg.type === 'ping') {
    c.send('{"type":"pong"}');
  }
}

function onResgate(c, s, now) {
  // hot path: `{"event":"<rid>.change","data":{"values":{...}}}`
  if (s.startsWith('{"event":"') && s.includes('.change"') && tookResult(c, s, now)) return;
  let msg;
  try {
    msg = JSON.parse(s);
  } catch {
    return fail(s);
  }
  if (msg.id === 1) {
    if (msg.error) return fail(s);
    c.acked = true;
    c.onAck?.();
  } else if (msg.id === 2) {
    const m = msg.result?.models?.[c.rid];
    if (!m || msg.error) return fail(s);
    onResult(c, m.seq, m.ts, now);
  } else if (typeof msg.event === 'string') {
    // another event (unsubscribe, a change without seq): not expected here
    fail(s);
  } else if (msg.error) {
    fail(s);
  }
}

function onMessage(c, s) {
  const now = nowMs();
  if (c.protocol === 'resgate') onResgate(c, s, now);
  else onGraphqlWs(c, s, now);
}

function hello(c) {
  if (c.protocol === 'resgate') c.send('{"id":1,"method":"version","params":{"protocol":"1.2.3"}}');
  else c.send('{"type":"connection_init"}');
}

function newClient(protocol) {
  return { idx: -1, protocol, send: () => undefined, kill: () => undefined, last: -1, first: false, acked: false, closed: false };
}

// ---- transport: the ws package ---------------------------------------------

function openWs(url, protocol) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, protocol === 'resgate' ? undefined : 'graphql-transport-ws', { perMessageDeflate: false });
    const c = newClient(protocol);
    c.send = (s) => ws.send(s);
    c.kill = () => ws.terminate();
    let settled = false;
    const done = (ok, why) => {
      if (settled) return;
      settled = true;
      resolve(ok ? c : { failed: why });
    };
    ws.on('open', () => hello(c));
    ws.on('message', (data) => onMessage(c, data.toString()));
    ws.on('error', (e) => done(false, e.message));
    ws.on('close', (code) => {
      if (!c.closed && c.acked) stats.unexpectedCloses++;
      c.closed = true;
      done(false, `closed ${code}`);
    });
    c.onAck = () => done(true);
  });
}

// ---- transport: raw WebSocket on net sockets ---------------------------------

/** one read buffer for every socket: onread callbacks run one at a time, and whatever must outlive one is copied */
const readBuffer = Buffer.allocUnsafe(256 * 1024);
const zeroMask = Buffer.alloc(4);

/** A client frame (FIN, opcode), masked with a zero key (valid, and the payload stays as it is). */
function frame(opcode, payload) {
  const len = payload.length;
  let head;
  if (len < 126) {
    head = Buffer.from([0x80 | opcode, 0x80 | len]);
  } else if (len < 65536) {
    head = Buffer.alloc(4);
    head[0] = 0x80 | opcode;
    head[1] = 0x80 | 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = 0x80 | opcode;
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([head, zeroMask, payload]);
}

function openRaw(url, protocol) {
  const u = new URL(url);
  return new Promise((resolve) => {
    const c = newClient(protocol);
    let upgraded = false;
    let head = '';
    /** @type {Buffer | undefined} bytes of an incomplete frame, copied out of the shared buffer */
    let pending;
    /** @type {Buffer[] | undefined} fragments of a message */
    let fragments;
    let settled = false;
    const done = (ok, why) => {
      if (settled) return;
      settled = true;
      if (!ok) sock.destroy();
      resolve(ok ? c : { failed: why });
    };
    const onFrame = (opcode, fin, buf, s, e) => {
      if (opcode === 0 || !fin) {
        // fragmented message (servers rarely send them for small messages)
        if (opcode !== 0) fragments = [];
        fragments?.push(Buffer.from(buf.subarray(s, e)));
        if (fin && fragments) {
          const whole = Buffer.concat(fragments);
          fragments = undefined;
          onMessage(c, whole.toString('utf8'));
        }
        return;
      }
      if (opcode === 1 || opcode === 2) onMessage(c, buf.utf8Slice(s, e));
      else if (opcode === 9) sock.write(frame(10, Buffer.from(buf.subarray(s, e))));
      else if (opcode === 8) {
        if (!c.closed && c.acked) stats.unexpectedCloses++;
        c.closed = true;
        sock.destroy();
      }
    };
    const onFrames = (buf, pos, end) => {
      if (pending) {
        buf = Buffer.concat([pending, buf.subarray(pos, end)]);
        pending = undefined;
        pos = 0;
        end = buf.length;
      }
      while (end - pos >= 2 && !c.closed) {
        const b0 = buf[pos];
        const b1 = buf[pos + 1];
        let len = b1 & 0x7f;
        let hdr = 2;
        if (len === 126) {
          if (end - pos < 4) break;
          len = buf.readUInt16BE(pos + 2);
          hdr = 4;
        } else if (len === 127) {
          if (end - pos < 10) break;
          len = Number(buf.readBigUInt64BE(pos + 2));
          hdr = 10;
        }
        const masked = (b1 & 0x80) !== 0;
        if (masked) hdr += 4;
        if (end - pos < hdr + len) break;
        const s = pos + hdr;
        if (masked) for (let i = 0; i < len; i++) buf[s + i] ^= buf[s - 4 + (i & 3)];
        onFrame(b0 & 0x0f, (b0 & 0x80) !== 0, buf, s, s + len);
        pos = s + len;
      }
      if (pos < end && !c.closed) pending = Buffer.from(buf.subarray(pos, end));
    };
    const sock = net.connect({
      host: u.hostname,
      port: Number(u.port),
      noDelay: true,
      onread: {
        buffer: readBuffer,
        callback: (n, buf) => {
          stats.reads++;
          if (upgraded) return onFrames(buf, 0, n);
          head += buf.latin1Slice(0, n);
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return;
          if (!/^HTTP\/1\.1 101/.test(head)) return done(false, head.split('\r\n')[0]);
          upgraded = true;
          const rest = Buffer.from(head.slice(end + 4), 'latin1');
          head = '';
          hello(c);
          if (rest.length) onFrames(rest, 0, rest.length);
        },
      },
    });
    c.send = (s) => {
      if (!c.closed) sock.write(frame(1, Buffer.from(s)));
    };
    c.kill = () => sock.destroy();
    sock.on('connect', () => {
      const key = randomBytes(16).toString('base64');
      sock.write(
        `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
          (protocol === 'resgate' ? '' : 'Sec-WebSocket-Protocol: graphql-transport-ws\r\n') +
          '\r\n',
      );
    });
    sock.on('error', (e) => done(false, e.message));
    sock.on('close', () => {
      if (!c.closed && c.acked) stats.unexpectedCloses++;
      c.closed = true;
      done(false, 'closed');
    });
    c.onAck = () => done(true);
  });
}

// ---- commands ----------------------------------------------------------------

/**
 * Opens `count` connections, `concurrency` handshakes at a time; resolves when
 * all are acknowledged (connection_ack, or the answer to Resgate's version request) or failed.
 */
async function connect({ url, count, concurrency = 256, protocol = 'graphql-ws', transport = 'ws' }) {
  const t0 = nowMs();
  let failed = 0;
  let failSample;
  let started = 0;
  const open = transport === 'raw' ? openRaw : openWs;
  const worker = async () => {
    while (started < count) {
      started++;
      const c = await open(url, protocol);
      if (c.failed) {
        failed++;
        failSample ??= c.failed;
      } else {
        c.idx = clients.length;
        clients.push(c);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { connected: clients.length, failed, failSample, ms: nowMs() - t0 };
}

/**
 * Subscribes clients [from, to) to `item(id)` (graphql-ws: `query`; Resgate:
 * `subscribe.<ridPrefix><id>`): `ids` is one id for all or a list (client i
 * gets ids[i % length]). Resolves when each has its first result (or after timeoutMs).
 */
async function subscribe({ query, ids, from = 0, to = clients.length, batch = 500, timeoutMs = 60_000, ridPrefix = 'bench.item.' }) {
  const t0 = nowMs();
  const list = Array.isArray(ids) ? ids : [ids];
  const waits = [];
  for (let i = from; i < to; i++) {
    const c = clients[i];
    c.model = String(list[i % list.length]);
    waits.push(new Promise((r) => (c.onFirst = r)));
    if (c.protocol === 'resgate') {
      c.rid = ridPrefix + c.model;
      c.send(`{"id":2,"method":"subscribe.${c.rid}"}`);
    } else {
      c.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query, variables: { id: c.model } } }));
    }
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
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * The phase's counters. With `sent` ({model: {first, ts: [...]}}: the publish
 * time of every event of the phase by seq), also staleness: skipped events
 * are resolved now, and events a client has not got yet count as stale
 * until now (a lower bound, reported as `censored`).
 */
function report({ expect, sent }) {
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
  const out = { ...rest, hist: hist.toJSON(), subscribed, lost, lostSample, open: clients.filter((c) => !c.closed).length };
  if (track && sent) out.staleness = staleness(sent, expect);
  return out;
}

function staleness(sent, expect) {
  const tsOf = (model, seq) => {
    const s = sent[model];
    return s ? s.ts[seq - s.first] : undefined;
  };
  const g = track.gaps;
  for (let i = 0; i < g.length; i += 4) {
    const c = clients[g[i]];
    for (let seq = g[i + 1]; seq <= g[i + 2]; seq++) {
      const ts = tsOf(c.model, seq);
      if (ts !== undefined) recordStale(c, seq, ts, g[i + 3] - ts);
    }
  }
  track.gaps = [];
  // not reflected yet: stale at least until now
  const now = nowMs();
  let censored = 0;
  for (const c of clients) {
    if (c.model === undefined || !expect || !sent[c.model]) continue;
    for (let seq = Math.max(c.last + 1, sent[c.model].first); seq <= expect[c.model]; seq++) {
      const ts = tsOf(c.model, seq);
      if (ts === undefined) continue;
      recordStale(c, seq, ts, now - ts);
      censored++;
    }
  }
  // the whole phase, its first second and its last second (by publish time)
  let t0 = Infinity;
  let t1 = -Infinity;
  for (const s of Object.values(sent)) {
    if (!s.ts.length) continue;
    t0 = Math.min(t0, s.ts[0]);
    t1 = Math.max(t1, s.ts[s.ts.length - 1]);
  }
  const all = new Hist();
  const first = new Hist();
  const last = new Hist();
  for (const [key, h] of track.byBucket) {
    const start = key * BUCKET_MS;
    if (start + BUCKET_MS <= t0 || start > t1) continue; // results of earlier phases' events
    all.merge(h);
    if (start < t0 + 1000) first.merge(h);
    if (start + BUCKET_MS > t1 - 1000) last.merge(h);
  }
  // per client p99 (coarse: 5 % buckets)
  const perClientP99 = [];
  for (const c of clients) {
    if (!c.stale) continue;
    let n = 0;
    for (let i = 0; i < CSIZE; i++) n += c.stale[i];
    const target = Math.ceil(0.99 * n);
    let seen = 0;
    for (let i = 0; i < CSIZE; i++) {
      seen += c.stale[i];
      if (seen >= target) {
        perClientP99.push(Math.round(cval(i) * 100) / 100);
        break;
      }
    }
  }
  const out = { all: all.toJSON(), first: first.toJSON(), last: last.toJSON(), censored, perClientP99 };
  if (track.maxBySeq) out.maxBySeq = Object.fromEntries(track.maxBySeq);
  return out;
}

function closeAll() {
  for (const c of clients) {
    c.closed = true;
    c.kill();
  }
  clients.length = 0;
}

serve({
  connect,
  subscribe,
  waitFor,
  /** resets the counters; `staleness`: track staleness in this phase; `perEvent`: also its maximum over clients per event */
  phase: ({ staleness: withStaleness = false, perEvent = false } = {}) => {
    stats = newStats();
    track = withStaleness ? newTrack(perEvent) : undefined;
    for (const c of clients) c.stale = undefined;
    return true;
  },
  report,
  close: async () => {
    closeAll();
    return true;
  },
  stop: exitAfterReply(closeAll),
});
ready();
