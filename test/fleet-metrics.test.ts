/**
 * Metrics for running a fleet: the real /metrics endpoint, in the Prometheus
 * text format, and its values moving as clients subscribe, services answer
 * and events arrive. Each gateway has a registry of its own.
 */
import { parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Connection } from '../src/access/access.js';
import type { GatewayContext } from '../src/resolvers/resolvers.js';
import { startTestGateway, gql } from './helpers/gateway.js';
import { addAuthor, addBook, closeClients, liveSdl, startLiveEnv, type LiveEnv } from './helpers/live-fixture.js';
import { subscribeSse, subscribeWs, wsClient } from './helpers/live-client.js';
import { scrape, type Scrape } from './helpers/metrics.js';
import { waitFor } from './helpers/wait.js';

let env: LiveEnv;
const metricsUrl = () => env.gw.metricsUrl!;

beforeAll(async () => {
  env = await startLiveEnv({ requestTimeout: 500 });
  addAuthor(env.svc, 1, 'Herbert');
  for (let id = 1; id <= 9; id++) addBook(env.svc, id, `Book ${id}`, 1);
});

afterAll(async () => {
  await env?.close();
});

const names = [
  'resgraph_connections',
  'resgraph_live_subscriptions',
  'resgraph_live_operations',
  'resgraph_live_executions_total',
  'resgraph_live_incremental_total',
  'resgraph_cache_entries',
  'resgraph_cache_subscriptions',
  'resgraph_nats_connected',
  'resgraph_ready',
  'resgraph_res_requests_total',
  'resgraph_res_events_total',
  'resgraph_live_results_pushed_total',
  'resgraph_live_results_coalesced_total',
  'resgraph_live_results_dropped_total',
  'resgraph_live_push_latency_seconds',
];

describe('/metrics', () => {
  it('serves every metric in the Prometheus text format on the gateway port', async () => {
    expect(metricsUrl()).toBe(`http://127.0.0.1:${env.gw.port}/metrics`);
    const m = await scrape(metricsUrl());
    for (const name of names) expect(m.names, name).toContain(name);
    expect(m.text).toContain('# HELP resgraph_live_push_latency_seconds ');
    expect(m.value('resgraph_nats_connected')).toBe(1);
    expect(m.value('resgraph_ready')).toBe(1);
    // the common series exist before anything happened
    expect(m.text).toMatch(/^resgraph_res_requests_total\{type="call",outcome="ok"\} 0$/m);
    expect(m.text).toMatch(/^resgraph_res_events_total\{type="change"\} 0$/m);
  });

  it('counts live subscriptions, distinct live operations and connections by transport', async () => {
    const before = await scrape(metricsUrl());
    const a = wsClient(env.gw.url);
    const b = wsClient(env.gw.url);
    const query = 'subscription { book(id: 1) { title } }';
    const s1 = subscribeWs(a, query);
    const s2 = subscribeWs(b, query);
    const s3 = subscribeSse(env.gw.url, query);
    for (const s of [s1, s2, s3]) expect(await s.next()).toEqual({ data: { book: { title: 'Book 1' } } });

    const during = await scrape(metricsUrl());
    expect(during.value('resgraph_live_subscriptions') - before.value('resgraph_live_subscriptions')).toBe(3);
    // three streams of one operation: one LiveQuery
    expect(during.value('resgraph_live_operations') - before.value('resgraph_live_operations')).toBe(1);
    expect(during.value('resgraph_connections', { transport: 'ws' }) - before.value('resgraph_connections', { transport: 'ws' })).toBe(2);
    expect(during.value('resgraph_connections', { transport: 'sse' }) - before.value('resgraph_connections', { transport: 'sse' })).toBe(1);
    expect(during.value('resgraph_cache_entries')).toBeGreaterThanOrEqual(1);
    expect(during.value('resgraph_cache_subscriptions')).toBeGreaterThanOrEqual(1);

    s3.dispose();
    await closeClients(env.gw, a, b);
    await waitFor(async () => (await scrape(metricsUrl())).sum('resgraph_connections') === 0, 3000, 'the connections to close');
    const after = await scrape(metricsUrl());
    expect(after.value('resgraph_live_subscriptions')).toBe(0);
    expect(after.value('resgraph_live_operations')).toBe(0);
    for (const transport of ['http', 'sse', 'ws']) expect(after.value('resgraph_connections', { transport })).toBe(0);
  });

  it('counts RES requests by type and outcome: ok, an error code, timeout', async () => {
    const before = await scrape(metricsUrl());
    expect(await gql(env.gw.url, '{ book(id: 2) { title } }')).toEqual({ data: { book: { title: 'Book 2' } } });
    const notFound = await gql(env.gw.url, '{ book(id: 404) { title } }');
    expect(notFound.errors?.[0].extensions?.code).toBe('system.notFound');
    env.svc.handle('get.library.book.408', () => undefined); // never answers
    const timedOut = await gql(env.gw.url, '{ book(id: 408) { title } }');
    expect(timedOut.errors?.[0].extensions?.code).toBe('system.timeout');

    const after = await scrape(metricsUrl());
    const delta = (labels: Record<string, string>) =>
      after.value('resgraph_res_requests_total', labels) - before.value('resgraph_res_requests_total', labels);
    expect(delta({ type: 'get', outcome: 'ok' })).toBe(1);
    expect(delta({ type: 'get', outcome: 'system.notFound' })).toBe(1);
    expect(delta({ type: 'get', outcome: 'timeout' })).toBe(1);
    expect(delta({ type: 'access', outcome: 'ok' })).toBe(3);
  });

  it('counts events received and results pushed, and times event to push', async () => {
    const client = wsClient(env.gw.url);
    const s = subscribeWs(client, 'subscription { book(id: 3) { title } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 3' } } });
    const before = await scrape(metricsUrl());

    await env.svc.change('library.book.3', { title: 'Changed' });
    expect(await s.next()).toEqual({ data: { book: { title: 'Changed' } } });
    await env.svc.event('library.book.3', 'somethingCustom', { x: 1 });
    const after = (await waitFor(async () => {
      const m = await scrape(metricsUrl());
      return m.value('resgraph_res_events_total', { type: 'custom' }) > before.value('resgraph_res_events_total', { type: 'custom' }) && m;
    }, 3000, 'the custom event to be counted')) as Scrape;

    const delta = (name: string, labels?: Record<string, string>) => after.value(name, labels) - before.value(name, labels);
    expect(delta('resgraph_res_events_total', { type: 'change' })).toBe(1);
    expect(delta('resgraph_res_events_total', { type: 'custom' })).toBe(1);
    expect(delta('resgraph_live_results_pushed_total')).toBe(1);
    // the changed title was applied to the last result: no execution
    expect(delta('resgraph_live_incremental_total', { outcome: 'applied', reason: '' })).toBe(1);
    expect(delta('resgraph_live_executions_total')).toBe(0);
    expect(delta('resgraph_live_push_latency_seconds_count')).toBe(1);
    const latency = delta('resgraph_live_push_latency_seconds_sum');
    expect(latency).toBeGreaterThan(0);
    expect(latency).toBeLessThan(2);
    expect(delta('resgraph_live_push_latency_seconds_bucket', { le: '+Inf' })).toBe(1);
    await closeClients(env.gw, client);
  });

  it('counts results coalesced (a newer state replaced an unsent one) and dropped (back to what the client has)', async () => {
    // a consumer that does not pull: the engine's own stream, as a transport sees it (internal on purpose:
    // every real transport pulls as soon as it can, so no client can leave states unsent on demand)
    const { schema } = env.gw.yoga.getEnveloped({} as never);
    const conn = new Connection('ws');
    const contextValue: GatewayContext = { conn, lease: env.gw.cache.newLease() };
    const stream = env.gw.live.subscribe({ schema, document: parse('query { book(id: 4) { title } }'), contextValue });
    expect((await stream.next()).value).toEqual({ data: { book: { title: 'Book 4' } } });
    const before = await scrape(metricsUrl());

    /** changes the title and waits for the live query to have applied it */
    const applied = async () => (await scrape(metricsUrl())).value('resgraph_live_incremental_total', { outcome: 'applied', reason: '' });
    const change = async (title: string) => {
      const updates = await applied();
      await env.svc.change('library.book.4', { title });
      await waitFor(async () => (await applied()) > updates, 3000, `an update after the change to ${title}`);
    };
    await change('A'); // pending: A
    await change('B'); // B replaces A: coalesced
    await change('Book 4'); // back to what the consumer has: B dropped
    await change('C'); // pending: C
    const mid = await scrape(metricsUrl());
    expect(mid.value('resgraph_live_results_coalesced_total') - before.value('resgraph_live_results_coalesced_total')).toBe(1);
    expect(mid.value('resgraph_live_results_dropped_total') - before.value('resgraph_live_results_dropped_total')).toBe(1);
    expect(mid.value('resgraph_live_results_pushed_total') - before.value('resgraph_live_results_pushed_total')).toBe(0);

    expect((await stream.next()).value).toEqual({ data: { book: { title: 'C' } } });
    const after = await scrape(metricsUrl());
    expect(after.value('resgraph_live_results_pushed_total') - before.value('resgraph_live_results_pushed_total')).toBe(1);
    expect(after.value('resgraph_live_push_latency_seconds_count') - before.value('resgraph_live_push_latency_seconds_count')).toBe(1);
    await stream.return!();
    contextValue.lease.release();
  });

  it('keeps each gateway in a registry of its own', async () => {
    const other = await startTestGateway(env.nats.url, liveSdl);
    try {
      const before = await scrape(metricsUrl());
      expect(await gql(other.url, '{ book(id: 5) { title } }')).toEqual({ data: { book: { title: 'Book 5' } } });
      const mine = await scrape(metricsUrl());
      const theirs = await scrape(other.metricsUrl!);
      expect(theirs.value('resgraph_res_requests_total', { type: 'get', outcome: 'ok' })).toBe(1);
      expect(mine.value('resgraph_res_requests_total', { type: 'get', outcome: 'ok' })).toBe(
        before.value('resgraph_res_requests_total', { type: 'get', outcome: 'ok' }),
      );
    } finally {
      await other.close();
    }
  });
});

describe('metrics options', () => {
  it('serves /metrics on a port of its own, and not on the GraphQL port', async () => {
    const gw = await startTestGateway(env.nats.url, liveSdl, { metrics: { port: 0 } });
    try {
      const url = new URL(gw.metricsUrl!);
      expect(Number(url.port)).not.toBe(gw.port);
      expect((await scrape(gw.metricsUrl!)).value('resgraph_nats_connected')).toBe(1);
      expect((await fetch(`http://127.0.0.1:${gw.port}/metrics`)).status).toBe(404);
      expect((await fetch(new URL('/other', url))).status).toBe(404);
    } finally {
      await gw.close();
    }
    // closed with the gateway
    await expect(fetch(gw.metricsUrl!)).rejects.toThrow();
  });

  it('serves no metrics when turned off', async () => {
    const gw = await startTestGateway(env.nats.url, liveSdl, { metrics: false });
    try {
      expect(gw.metrics).toBeUndefined();
      expect(gw.metricsUrl).toBeUndefined();
      expect((await fetch(`http://127.0.0.1:${gw.port}/metrics`)).status).toBe(404);
      expect(await gql(gw.url, '{ book(id: 6) { title } }')).toEqual({ data: { book: { title: 'Book 6' } } });
    } finally {
      await gw.close();
    }
  });
});
