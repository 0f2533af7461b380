/**
 * One WebSocket client holding the whole `bench.items` list, for the size
 * scenario. It follows one watched item, whose `price` is the sequence
 * number of the event that set it, so it knows which state it holds after
 * every message. Three ways to hold the list:
 *   - `subscription`: graphql-transport-ws, `subscription { items { id name price } }`:
 *     a full result per change; the watched price is read from the text
 *     without parsing all of it (the last result is parsed in `report`, to check it);
 *   - `live`: graphql-transport-ws, `query @live { items { id name price } }`:
 *     the first result, then JSON Patches applied to it (revisions checked);
 *   - `resgate`: Resgate's WebSocket protocol, `subscribe.bench.items`: the
 *     collection and its models, then `<rid>.change` events applied to them.
 * Counted after the first result: messages, their WebSocket payload bytes
 * (keep-alive messages apart), and each state of the watched price with the
 * time the client held it. Controlled by the orchestrator over IPC.
 */
import WebSocket from 'ws';
import jsonpatch from 'fast-json-patch';
import { Hist, nowMs } from '../lib/hist.mjs';
import { exitAfterReply, ready, serve } from '../lib/ipc.mjs';

const selection = '{ items { id name price } }';
const queries = { subscription: `subscription ${selection}`, live: `query @live ${selection}` };
const collectionRid = 'bench.items';

/** the open connection and what it holds, or undefined */
let conn;
let stats = newStats();

function newStats() {
  return {
    /** result messages after the first (next frames, RES events) and their payload bytes */
    results: 0,
    bytes: 0,
    /** keep-alive messages (graphql-ws ping/pong) and their bytes: not results */
    other: 0,
    otherBytes: 0,
    /** results that left the watched price as it was */
    unchanged: 0,
    reordered: 0,
    errors: 0,
    errorSample: undefined,
    /** each new watched price and when the client held it */
    prices: [],
    heldAt: [],
  };
}

function fail(c, sample) {
  stats.errors++;
  stats.errorSample ??= String(sample).slice(0, 300);
  c.onFirst?.reject(new Error(`bad first result: ${String(sample).slice(0, 300)}`));
}

/** Counts a result message and records the watched price it left the client holding. */
function held(c, bytes) {
  const now = nowMs();
  stats.results++;
  stats.bytes += bytes;
  if (c.price === c.lastPrice) stats.unchanged++;
  else {
    if (c.price < c.lastPrice) stats.reordered++;
    stats.prices.push(c.price);
    stats.heldAt.push(now);
    c.lastPrice = c.price;
  }
}

function firstResult(c, bytes, count) {
  c.first = { ms: nowMs() - c.t0, bytes, items: count, price: c.price };
  c.lastPrice = c.price;
  c.onFirst?.resolve(c.first);
  c.onFirst = undefined;
}

/** `"price":<n>` of the watched item in a full result's text (the last item's when following adds), or NaN. */
function watchedPrice(c, s) {
  if (c.followLast) {
    const p = s.lastIndexOf('"price":');
    return p < 0 ? NaN : parseFloat(s.slice(p + 8, p + 40));
  }
  const at = s.indexOf(c.itemKey);
  if (at < 0) return NaN;
  const p = s.indexOf('"price":', at + c.itemKey.length);
  return p < 0 ? NaN : parseFloat(s.slice(p + 8, p + 40));
}

function watchedIndex(c, list) {
  const i = list.findIndex((x) => x?.id === c.watch);
  if (i < 0) fail(c, `item ${c.watch} not in the first result`);
  return i;
}

function onGraphqlWs(c, data) {
  const s = data.toString();
  if (c.first && c.mode === 'subscription' && s.startsWith('{"id":"1","type":"next"') && !s.includes('"errors"')) {
    // hot path: one full result of N items per change
    const price = watchedPrice(c, s);
    if (!Number.isFinite(price)) return fail(c, s);
    c.price = price;
    c.lastText = s;
    return held(c, data.length);
  }
  let msg;
  try {
    msg = JSON.parse(s);
  } catch {
    return fail(c, s);
  }
  if (msg.type === 'connection_ack') {
    c.ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: queries[c.mode] } }));
  } else if (msg.type === 'ping' || msg.type === 'pong') {
    if (msg.type === 'ping') c.ws.send('{"type":"pong"}');
    stats.other++;
    stats.otherBytes += data.length;
  } else if (msg.type === 'next' && !msg.payload?.errors) {
    const p = msg.payload;
    if (p.patch) {
      if (!c.doc || p.revision !== c.revision + 1) return fail(c, `patch of revision ${p.revision} after ${c.revision}`);
      jsonpatch.applyPatch(c.doc, p.patch, false, true);
      c.revision = p.revision;
    } else {
      if (!Array.isArray(p.data?.items)) return fail(c, s);
      c.doc = p.data;
      c.revision = p.revision;
      if (c.mode === 'subscription') c.lastText = s;
      c.watchIdx ??= watchedIndex(c, c.doc.items);
    }
    const item = c.followLast ? c.doc.items[c.doc.items.length - 1] : c.doc.items[c.watchIdx];
    if (!c.followLast && item?.id !== c.watch) return fail(c, `item ${c.watchIdx} is ${JSON.stringify(item)}, not ${c.watch}`);
    c.price = item?.price;
    if (!c.first) {
      c.payloadText = JSON.stringify(p);
      return firstResult(c, data.length, c.doc.items.length);
    }
    held(c, data.length);
  } else {
    fail(c, s);
  }
}

function onResgate(c, data) {
  const s = data.toString();
  let msg;
  try {
    msg = JSON.parse(s);
  } catch {
    return fail(c, s);
  }
  if (msg.id === 1) {
    if (msg.error) return fail(c, s);
    c.ws.send(`{"id":2,"method":"subscribe.${collectionRid}"}`);
  } else if (msg.id === 2) {
    const refs = msg.result?.collections?.[collectionRid];
    if (!Array.isArray(refs) || msg.error) return fail(c, s);
    c.models = msg.result.models ?? {};
    c.refs = refs;
    const m = c.models[c.watchRid];
    if (!m) return fail(c, `${c.watchRid} not in the subscribe result`);
    c.price = c.followLast ? c.models[refs[refs.length - 1]?.rid]?.price : m.price;
    firstResult(c, data.length, refs.length);
  } else if (msg.event === `${collectionRid}.add`) {
    // the added reference, and the models it brings into view
    const { value, idx, models } = msg.data ?? {};
    if (!value?.rid || typeof idx !== 'number') return fail(c, s);
    Object.assign(c.models, models);
    c.refs.splice(idx, 0, value);
    if (c.followLast) c.price = c.models[c.refs[c.refs.length - 1].rid]?.price;
    held(c, data.length);
  } else if (typeof msg.event === 'string' && msg.event.endsWith('.change')) {
    const rid = msg.event.slice(0, -'.change'.length);
    const m = c.models?.[rid];
    if (!m) return fail(c, s);
    Object.assign(m, msg.data?.values);
    if (rid === c.watchRid) c.price = m.price;
    held(c, data.length);
  } else {
    fail(c, s);
  }
}

/**
 * Opens the connection and subscribes (`mode`: subscription | live |
 * resgate), watching item `watch` (or, with `followLast`, the last item of
 * the list, whose price tells which add the client holds); resolves with
 * the first result's time, bytes and item count.
 */
function open({ url, mode, watch, followLast = false, timeoutMs = 120_000 }) {
  close();
  stats = newStats();
  const ws = new WebSocket(url, mode === 'resgate' ? undefined : 'graphql-transport-ws', { perMessageDeflate: false });
  const c = { ws, mode, followLast, watch: String(watch), watchRid: `${collectionRid}.${watch}`, itemKey: `{"id":"${watch}","name":`, t0: nowMs(), price: NaN, lastPrice: NaN };
  conn = c;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no first result within ${timeoutMs} ms`)), timeoutMs);
    c.onFirst = {
      resolve: (r) => {
        clearTimeout(timer);
        resolve(r);
      },
      reject: (e) => {
        clearTimeout(timer);
        reject(e);
      },
    };
    ws.on('open', () => ws.send(mode === 'resgate' ? '{"id":1,"method":"version","params":{"protocol":"1.2.3"}}' : '{"type":"connection_init"}'));
    ws.on('message', (data) => (mode === 'resgate' ? onResgate(c, data) : onGraphqlWs(c, data)));
    ws.on('error', (e) => c.onFirst?.reject(e));
    ws.on('close', (code) => {
      c.closed = true;
      if (c.onFirst) c.onFirst.reject(new Error(`closed (${code}) before the first result`));
      else if (!c.closing) fail(c, `connection closed (${code})`);
    });
  });
}

/** Waits until the client holds a price of at least `price`. */
async function waitFor({ price, timeoutMs = 10_000 }) {
  const t0 = nowMs();
  while (!(conn?.price >= price)) {
    if (nowMs() - t0 > timeoutMs || conn?.closed) return { done: false, ms: nowMs() - t0, price: conn?.price };
    await new Promise((r) => setTimeout(r, 2));
  }
  return { done: true, ms: nowMs() - t0, price: conn.price };
}

/**
 * The phase's counters and, from the publisher's send times (`ts[k - first]`
 * for price k): latency of every event = publish → the client holds that
 * price or a later one; `skipped` = prices it never held (coalesced into a
 * later state); events not reflected yet count until now (`censored`).
 * Also checks the list the client holds: every item there, the last price.
 */
function report({ first, ts }) {
  const { prices, heldAt, ...counts } = stats;
  const hist = new Hist();
  const now = nowMs();
  let j = 0;
  let skipped = 0;
  let censored = 0;
  for (let k = first; k < first + ts.length; k++) {
    while (j < prices.length && prices[j] < k) j++;
    if (j < prices.length) {
      hist.record(heldAt[j] - ts[k - first]);
      if (prices[j] !== k) skipped++;
    } else {
      hist.record(now - ts[k - first]);
      censored++;
      skipped++;
    }
  }
  return { ...counts, states: prices.length, skipped, censored, latency: hist.summary(), holds: holds() };
}

/** What the client holds now: item count and watched price, from its whole list. */
function holds() {
  const c = conn;
  if (!c) return undefined;
  if (c.mode === 'resgate') {
    const rid = c.followLast ? c.refs?.[c.refs.length - 1]?.rid : c.watchRid;
    return { items: c.refs?.filter((r) => c.models[r.rid]).length ?? 0, price: c.models?.[rid]?.price };
  }
  const list = c.mode === 'live' ? c.doc?.items : JSON.parse(c.lastText ?? '{}').payload?.data?.items;
  return { items: list?.length ?? 0, price: c.followLast ? list?.[list.length - 1]?.price : list?.find((x) => x.id === c.watch)?.price };
}

function close() {
  if (!conn) return true;
  conn.closing = true;
  conn.ws.terminate();
  conn = undefined;
  return true;
}

serve({
  open,
  /** resets the counters (the first result and the list held stay) */
  phase: () => {
    stats = newStats();
    return true;
  },
  waitFor,
  report,
  /** the first result's payload as JSON text (graphql-ws modes): what the gateway serialized */
  firstPayload: () => conn?.payloadText,
  close,
  stop: exitAfterReply(close),
});
ready();
