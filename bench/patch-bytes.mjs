#!/usr/bin/env node
/**
 * Bytes per update, full results vs JSON Patch (`@live`): one client of each
 * kind watches a 100-book list (id, title, rating per book) while the service
 * changes one title, adds a book and removes one. Reports the size of each
 * WebSocket frame as the client received it. Bytes do not depend on load,
 * so this runs in one process: nats-server, a small RES service, the gateway
 * (dist/server.js) and two raw graphql-transport-ws clients.
 *
 *   node bench/patch-bytes.mjs        (npm run bench:patch)
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'nats';
import WebSocket from 'ws';
import { findNatsServer, freePort } from '../scripts/processes.mjs';
import { benchDir, rootDir } from './lib/procs.mjs';

const { startGateway, buildResourceSchema } = await import(join(rootDir, 'dist', 'index.js'));

const sdl = `
type Book @resource(rid: "shelf.book.{id}") { id: ID! @rid  title: String!  rating: Int! }
type Query { books: [Book!]! @get(rid: "shelf.books") }
`;
const enc = new TextEncoder();
const dec = new TextDecoder();

async function startNats() {
  const port = await freePort();
  const bin = findNatsServer();
  if (!bin) throw new Error('nats-server is not installed (on PATH or in /usr/sbin): apt-get install -y nats-server');
  const child = spawn(bin, ['-a', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise((resolve, reject) => {
    let out = '';
    child.stderr.on('data', (d) => (out += d) && out.includes('Server is ready') && resolve());
    child.once('exit', (code) => reject(new Error(`nats-server exited ${code}: ${out}`)));
  });
  return { url: `nats://127.0.0.1:${port}`, stop: () => child.kill('SIGKILL') };
}

/** The shelf service: 100 books in a collection, answering get and access. */
async function startService(url) {
  const nc = await connect({ servers: url });
  const books = new Map();
  const list = [];
  for (let i = 1; i <= 100; i++) {
    books.set(String(i), { id: i, title: `Book number ${i}`, rating: i % 5 });
    list.push(String(i));
  }
  const reply = (m, body) => m.respond(enc.encode(JSON.stringify(body)));
  nc.subscribe('access.shelf.>', { callback: (_e, m) => reply(m, { result: { get: true } }) });
  nc.subscribe('get.shelf.>', {
    callback: (_e, m) => {
      const name = m.subject.slice(4);
      if (name === 'shelf.books') return reply(m, { result: { collection: list.map((id) => ({ rid: `shelf.book.${id}` })) } });
      const b = books.get(name.slice('shelf.book.'.length));
      reply(m, b ? { result: { model: b } } : { error: { code: 'system.notFound', message: 'Not found' } });
    },
  });
  await nc.flush();
  const publish = (subject, payload) => nc.publish(subject, enc.encode(JSON.stringify(payload)));
  return {
    changeTitle(id, title) {
      books.get(id).title = title;
      publish(`event.shelf.book.${id}.change`, { values: { title } });
    },
    add(id, idx) {
      books.set(id, { id: Number(id), title: `Book number ${id}`, rating: 3 });
      list.splice(idx, 0, id);
      publish('event.shelf.books.add', { value: { rid: `shelf.book.${id}` }, idx });
    },
    remove(idx) {
      list.splice(idx, 1);
      publish('event.shelf.books.remove', { idx });
    },
    close: () => nc.close(),
  };
}

/** A raw graphql-transport-ws client recording the byte size of every `next` frame. */
function rawClient(url, query) {
  const ws = new WebSocket(url, 'graphql-transport-ws');
  const frames = [];
  let waiter;
  ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init' })));
  ws.on('message', (data) => {
    const msg = JSON.parse(dec.decode(data));
    if (msg.type === 'connection_ack') ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query } }));
    if (msg.type === 'next') {
      frames.push({ bytes: data.length, payload: msg.payload });
      waiter?.();
    }
  });
  return {
    frames,
    async nextFrame(timeoutMs = 5000) {
      const have = frames.length;
      const deadline = Date.now() + timeoutMs;
      while (frames.length === have) {
        if (Date.now() > deadline) throw new Error(`no frame within ${timeoutMs} ms`);
        await new Promise((resolve) => {
          waiter = resolve;
          setTimeout(resolve, 50);
        });
      }
      return frames[frames.length - 1];
    },
    close: () => ws.close(),
  };
}

const nats = await startNats();
const service = await startService(nats.url);
const gw = await startGateway({
  nats: nats.url,
  schema: buildResourceSchema([{ name: 'bench.graphql', body: sdl }]),
  port: 0,
  metrics: false,
  logger: { debug() {}, info() {}, warn() {}, error: console.error },
});
await gw.natsReady;
const wsUrl = gw.url.replace(/^http/, 'ws');
const selection = '{ books { id title rating } }';
const full = rawClient(wsUrl, `subscription ${selection}`);
const patch = rawClient(wsUrl, `query @live ${selection}`);

const rows = [];
const first = [await full.nextFrame(), await patch.nextFrame()];
rows.push({ update: 'first result (100 books)', full: first[0].bytes, patch: first[1].bytes, patchOps: '-' });
const steps = [
  ['one title changed', () => service.changeTitle('57', 'A changed title')],
  ['one book added', () => service.add('101', 10)],
  ['one book removed', () => service.remove(0)],
];
for (const [update, act] of steps) {
  act();
  const [f, p] = await Promise.all([full.nextFrame(), patch.nextFrame()]);
  rows.push({ update, full: f.bytes, patch: p.bytes, patchOps: p.payload.patch?.length ?? '-' });
}
full.close();
patch.close();
await gw.close();
await service.close();
nats.stop();

console.log('\nBytes per update, 100-item list: full result (subscription) vs JSON Patch (query @live); whole WebSocket `next` frames');
console.log(['update'.padEnd(26), 'full B'.padStart(8), 'patch B'.padStart(8), 'patch/full'.padStart(11), 'ops'.padStart(4)].join('  '));
for (const r of rows) {
  const ratio = `${((100 * r.patch) / r.full).toFixed(1)}%`;
  console.log([r.update.padEnd(26), String(r.full).padStart(8), String(r.patch).padStart(8), ratio.padStart(11), String(r.patchOps).padStart(4)].join('  '));
}
mkdirSync(join(benchDir, 'results'), { recursive: true });
writeFileSync(join(benchDir, 'results', 'patch.json'), JSON.stringify({ scenario: 'patch', date: new Date().toISOString(), rows }, null, 2));
console.log('\npatch: results in bench/results/patch.json');
process.exit(0);
