/**
 * A lost NATS connection may have lost events: after reconnecting, the
 * gateway re-gets and diffs everything it caches, so subscribers receive the
 * corrected result, and events flow again. nats-server is really restarted
 * (same port); the gateway and the test service reconnect on their own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAuthor, addBook, closeClients, startLiveEnv, type LiveEnv } from './helpers/live-fixture.js';
import { subscribeWs, wsClient } from './helpers/live-client.js';
import { metric } from './helpers/metrics.js';
import { TestService } from './helpers/res-service.js';
import { waitFor } from './helpers/wait.js';

let env: LiveEnv;
let extraService: TestService | undefined;

beforeAll(async () => {
  env = await startLiveEnv();
  addAuthor(env.svc, 1, 'Herbert');
  for (let id = 1; id <= 4; id++) addBook(env.svc, id, `Book ${id}`, 1);
});

afterAll(async () => {
  await extraService?.close();
  await env?.close();
});

/** Changes a model in the service's store without publishing (NATS is down anyway). */
function silently(svc: TestService, rid: string, values: Record<string, unknown>): void {
  Object.assign((svc.resources.get(rid) as { model: Record<string, unknown> }).model, values);
}

describe('NATS reconnect', () => {
  it('sends the corrected result after nats-server restarts mid-subscription', async () => {
    const { svc, gw, nats } = env;
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 1) { title author { name } } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 1', author: { name: 'Herbert' } } } });

    await nats.stop();
    silently(svc, 'library.book.1', { title: 'Changed while down' });
    silently(svc, 'library.author.1', { name: 'Frank Herbert' });
    await nats.start();

    const deadline = Date.now() + 10_000;
    let r = await s.next(10_000);
    // the book and its author are re-fetched separately: the last result is the whole correction
    while (r.data?.book?.author?.name !== 'Frank Herbert' || r.data?.book?.title !== 'Changed while down') {
      r = await s.next(Math.max(1, deadline - Date.now()));
    }
    expect(r).toEqual({ data: { book: { title: 'Changed while down', author: { name: 'Frank Herbert' } } } });

    // events flow again
    await waitFor(async () => !svc.nc.isClosed() && (await metric(gw, 'resgraph_nats_connected')) === 1, 10_000, 'both sides to be connected');
    await svc.change('library.book.1', { title: 'After the restart' });
    expect(await s.next(5000)).toEqual({ data: { book: { title: 'After the restart', author: { name: 'Frank Herbert' } } } });
    await closeClients(gw, client);
  }, 30_000);

  it('resynchronizes when the service comes back only after the gateway has reconnected', async () => {
    const { svc, gw, nats } = env;
    const client = wsClient(gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 2) { title } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 2' } } });

    // the service goes away with the broker and returns later, with changed data
    const store = svc.resources;
    const resyncs = () => gw.logs.filter((l) => l.msg.startsWith('reconnected to NATS')).length;
    const resyncsBefore = resyncs();
    await svc.close();
    await nats.stop();
    await nats.start();
    // the gateway's resynchronization starts while no service is there to answer
    await waitFor(async () => (await metric(gw, 'resgraph_nats_connected')) === 1 && resyncs() > resyncsBefore, 10_000, 'the gateway to reconnect');
    extraService = await TestService.start(nats.url);
    for (const [rid, value] of store) extraService.resources.set(rid, structuredClone(value));
    silently(extraService, 'library.book.2', { title: 'Back with the service' });

    expect(await s.next(10_000)).toEqual({ data: { book: { title: 'Back with the service' } } });
    await extraService.change('library.book.2', { title: 'Live again' });
    expect(await s.next(5000)).toEqual({ data: { book: { title: 'Live again' } } });
    await closeClients(gw, client);
  }, 30_000);
});
