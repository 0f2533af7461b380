/**
 * OpenTelemetry traces: a span per GraphQL operation on every transport,
 * a child span per RES request whose trace context reaches the service in
 * the NATS headers, and a span per live update linked to its
 * subscription's span. Checked with an in-memory exporter in-process, and
 * with the `resgraph` command (`--otel on`) sending OTLP/HTTP to a receiver
 * this file starts. With tracing off the service gets no trace context.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { createClient as createSseClient } from 'graphql-sse';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startCliStack, type CliStack } from './helpers/cli-gateway.js';
import { startTestEnv, type TestEnv } from './helpers/env.js';
import { gql } from './helpers/gateway.js';
import { closeClients } from './helpers/live-fixture.js';
import { ResultStream, subscribeSse, subscribeWs, wsClient, type StreamResult } from './helpers/live-client.js';
import type { TestService } from './helpers/res-service.js';
import { librarySdl } from './helpers/sdl.js';
import { waitFor, withTimeout } from './helpers/wait.js';

/** A `traceparent` header's trace id and parent span id (W3C Trace Context, version 00). */
function parseTraceparent(header: string | undefined): { traceId: string; spanId: string } {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/.exec(header ?? '');
  if (!m) throw new Error(`not a traceparent: ${header}`);
  return { traceId: m[1], spanId: m[2] };
}

function addBooks(svc: TestService, ...ids: number[]): void {
  for (const id of ids) svc.model(`library.book.${id}`, { id, title: `Book ${id}` });
}

describe('traces (in-memory exporter)', () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  let env: TestEnv;

  beforeAll(async () => {
    env = await startTestEnv(librarySdl, { tracing: { tracerProvider: provider } });
    addBooks(env.svc, 1, 2, 3, 4, 6, 7);
  });
  afterAll(async () => {
    await env?.close();
    await provider.shutdown();
  });
  beforeEach(() => exporter.reset());

  /** The first finished span that matches, waited for. */
  const span = (what: string, match: (s: ReadableSpan) => boolean): Promise<ReadableSpan> =>
    waitFor(() => exporter.getFinishedSpans().find(match), 3000, what) as Promise<ReadableSpan>;
  const named = (name: string, subject?: string) =>
    span(`a ${name} span${subject ? ` for ${subject}` : ''}`, (s) => s.name === name && (subject === undefined || s.attributes['messaging.destination.name'] === subject));
  const childOf = (child: ReadableSpan, parent: ReadableSpan) => {
    expect(child.spanContext().traceId).toBe(parent.spanContext().traceId);
    expect(child.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
  };

  it('gives a query over HTTP one span, with a child span per RES request carrying its subject and outcome', async () => {
    const r = await gql(env.gw.url, 'query Title($id: ID!) { book(id: $id) { title } }', { id: 1 });
    expect(r).toEqual({ data: { book: { title: 'Book 1' } } });
    const op = await named('query.Title');
    expect(op.kind).toBe(SpanKind.SERVER);
    expect(op.attributes).toMatchObject({
      'graphql.operation.name': 'Title',
      'graphql.operation.type': 'query',
      'resgraph.transport': 'http',
    });
    for (const [name, subject] of [['res.access', 'access.library.book.1'], ['res.get', 'get.library.book.1']]) {
      const req = await named(name, subject);
      childOf(req, op);
      expect(req.kind).toBe(SpanKind.CLIENT);
      expect(req.attributes).toMatchObject({
        'messaging.system': 'nats',
        'messaging.destination.name': subject,
        'messaging.operation.name': name.slice('res.'.length),
        'resgraph.res.outcome': 'ok',
      });
      expect(req.status.code).not.toBe(SpanStatusCode.ERROR);
    }
  });

  it('names a query that Yoga runs (GET) the same way, with the same attributes', async () => {
    const url = new URL(env.gw.url);
    url.searchParams.set('query', 'query Title($id: ID!) { book(id: $id) { title } }');
    url.searchParams.set('variables', JSON.stringify({ id: 2 }));
    const r = await fetch(url, { headers: { accept: 'application/json', 'x-graphql-yoga-csrf': '1' } });
    expect(await r.json()).toEqual({ data: { book: { title: 'Book 2' } } });
    const op = await named('query.Title');
    expect(op.kind).toBe(SpanKind.SERVER);
    expect(op.attributes).toMatchObject({
      'graphql.operation.name': 'Title',
      'graphql.operation.type': 'query',
      'graphql.execute.operationName': 'Title',
      'graphql.execute.operationType': 'query',
      'resgraph.transport': 'http',
    });
    childOf(await named('res.get', 'get.library.book.2'), op);
  });

  it('records the error code of a failing RES request, and marks the operation failed', async () => {
    const r = await gql(env.gw.url, 'query Missing { book(id: 404) { title } }');
    expect(r.errors?.[0].extensions?.code).toBe('system.notFound');
    const op = await named('query.Missing');
    const get = await named('res.get', 'get.library.book.404');
    childOf(get, op);
    expect(get.attributes).toMatchObject({ 'resgraph.res.outcome': 'system.notFound', 'error.type': 'system.notFound' });
    expect(get.status.code).toBe(SpanStatusCode.ERROR);
    expect(op.status.code).toBe(SpanStatusCode.ERROR);
    expect(op.events.map((e) => e.name)).toEqual(['exception']);
    expect(op.events[0].attributes).toMatchObject({ 'exception.type': 'graphql.execute.error' });
    expect(String(op.events[0].attributes?.['exception.message'])).toContain('system.notFound');
  });

  it('gives a graphql-ws subscription one span for its life, and each update a span of its own linked to it', async () => {
    const client = wsClient(env.gw.url);
    const s = subscribeWs(client, 'subscription Watch { book(id: 3) { title } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 3' } } });
    await env.svc.change('library.book.3', { title: 'Changed' });
    expect(await s.next()).toEqual({ data: { book: { title: 'Changed' } } });
    const update = await named('live.update');
    await closeClients(env.gw, client);
    const sub = await named('subscription.Watch');
    expect(sub.attributes).toMatchObject({ 'graphql.operation.name': 'Watch', 'graphql.operation.type': 'subscription', 'resgraph.transport': 'ws' });
    childOf(await named('res.get', 'get.library.book.3'), sub);
    // a trace of its own, linked to the subscription's
    expect(update.parentSpanContext).toBeUndefined();
    expect(update.spanContext().traceId).not.toBe(sub.spanContext().traceId);
    expect(update.links.map((l) => l.context.spanId)).toEqual([sub.spanContext().spanId]);
    expect(update.attributes).toMatchObject({ 'graphql.operation.name': 'Watch', 'graphql.operation.type': 'subscription' });
    // from the event's arrival to the push: within the subscription's life
    expect(hrMs(update.startTime)).toBeGreaterThanOrEqual(hrMs(sub.startTime));
    expect(hrMs(update.endTime)).toBeGreaterThanOrEqual(hrMs(update.startTime));
    // one update pushed, one span
    expect(exporter.getFinishedSpans().filter((x) => x.name === 'live.update')).toHaveLength(1);
  });

  it('marks a graphql-ws subscription failed when its stream ends with an error', async () => {
    const client = wsClient(env.gw.url);
    const s = subscribeWs(client, 'subscription Gone { book(id: 404) { title } }');
    expect((await s.next()).errors?.[0].extensions?.code).toBe('system.notFound');
    await withTimeout(s.completed, 3000, 'the stream to end');
    const sub = await named('subscription.Gone');
    expect(sub.status.code).toBe(SpanStatusCode.ERROR);
    expect(sub.events.map((e) => e.attributes?.['exception.type'])).toEqual(['graphql.execute.error']);
    await client.dispose();
  });

  it('links the updates of a subscription that Yoga serves (SSE) to the span its plugin made', async () => {
    const s = subscribeSse(env.gw.url, 'subscription WatchSse { book(id: 4) { title } }');
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 4' } } });
    await env.svc.change('library.book.4', { title: 'Changed' });
    expect(await s.next()).toEqual({ data: { book: { title: 'Changed' } } });
    const update = await named('live.update');
    await closeClients(env.gw, s);
    const sub = await named('subscription.WatchSse');
    expect(sub.attributes).toMatchObject({ 'graphql.operation.name': 'WatchSse', 'resgraph.transport': 'sse' });
    childOf(await named('res.get', 'get.library.book.4'), sub);
    expect(update.links.map((l) => l.context.spanId)).toEqual([sub.spanContext().spanId]);
  });

  it("traces graphql-sse's single connection mode: its live subscriptions and its queries", async () => {
    const client = createSseClient({ url: env.gw.url, singleConnection: true, retryAttempts: 0 });
    const s = new ResultStream();
    s.dispose = client.subscribe(
      { query: 'subscription WatchOne { book(id: 6) { title } }' },
      { next: (r) => s.push(r as StreamResult), error: (e) => s.end(e), complete: () => s.end() },
    );
    expect(await s.next()).toEqual({ data: { book: { title: 'Book 6' } } });
    await env.svc.change('library.book.6', { title: 'Changed' });
    expect(await s.next()).toEqual({ data: { book: { title: 'Changed' } } });
    const update = await named('live.update');
    const query = new ResultStream();
    query.dispose = client.subscribe(
      { query: 'query OnStream { book(id: 6) { title } }' },
      { next: (r) => query.push(r as StreamResult), error: (e) => query.end(e), complete: () => query.end() },
    );
    expect(await query.next()).toEqual({ data: { book: { title: 'Changed' } } });
    expect((await named('query.OnStream')).attributes).toMatchObject({ 'graphql.operation.name': 'OnStream', 'resgraph.transport': 'sse' });
    await closeClients(env.gw, s, query);
    client.dispose();
    const sub = await named('subscription.WatchOne');
    expect(sub.attributes).toMatchObject({ 'graphql.operation.name': 'WatchOne', 'graphql.operation.type': 'subscription', 'resgraph.transport': 'sse' });
    childOf(await named('res.get', 'get.library.book.6'), sub);
    expect(update.links.map((l) => l.context.spanId)).toEqual([sub.spanContext().spanId]);
  });

  it("hands the service the trace context of its request's span in the traceparent header (get and call)", async () => {
    env.svc.handle('call.library.book.7.set', () => ({ result: null }));
    const got = env.svc.nextRequest('get.library.book.7');
    await gql(env.gw.url, 'query Seven { book(id: 7) { title } }');
    const getContext = parseTraceparent((await got).traceparent);
    const op = await named('query.Seven');
    const get = await named('res.get', 'get.library.book.7');
    expect(getContext).toEqual({ traceId: op.spanContext().traceId, spanId: get.spanContext().spanId });

    const called = env.svc.nextRequest('call.library.book.7.set');
    await gql(env.gw.url, 'mutation Rename { setBookTitle(id: 7, title: "New") }');
    const callContext = parseTraceparent((await called).traceparent);
    const mutation = await named('mutation.Rename');
    const call = await named('res.call', 'call.library.book.7.set');
    childOf(call, mutation);
    expect(callContext).toEqual({ traceId: mutation.spanContext().traceId, spanId: call.spanContext().spanId });
  });
});

describe('tracing off (the default)', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await startTestEnv(librarySdl);
    addBooks(env.svc, 1);
    env.svc.handle('call.library.book.1.set', () => ({ result: null }));
  });
  afterAll(async () => {
    await env?.close();
  });

  it('sends services no trace context', async () => {
    const seen = [env.svc.nextRequest('access.library.book.1'), env.svc.nextRequest('get.library.book.1')];
    await gql(env.gw.url, '{ book(id: 1) { title } }');
    const called = env.svc.nextRequest('call.library.book.1.set');
    await gql(env.gw.url, 'mutation { setBookTitle(id: 1, title: "New") }');
    for (const r of await Promise.all([...seen, called])) expect(r.traceparent, r.subject).toBeUndefined();
  });
});

describe('--otel on: the resgraph command sends its spans by OTLP/HTTP', () => {
  /** what the receiver was sent: each POST to /v1/traces, parsed */
  const exports: OtlpExport[] = [];
  let receiver: Server;
  let stack: CliStack;

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        if (req.method === 'POST' && req.url === '/v1/traces' && /json/.test(req.headers['content-type'] ?? '')) exports.push(JSON.parse(body) as OtlpExport);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    stack = await startCliStack(librarySdl, ['--otel', 'on', '--port', '0', '--metrics', 'off'], (svc) => addBooks(svc, 1), 40_000, {
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test',
    });
  }, 90_000);
  afterAll(async () => {
    await stack?.close();
    await new Promise((resolve) => receiver?.close(resolve));
  });

  it('exports the operation and RES request spans, flushed when it drains; the service continues the same trace', async () => {
    const got = stack.svc.nextRequest('get.library.book.1');
    expect(await gql(stack.gw.url, 'query Title { book(id: 1) { title } }')).toEqual({ data: { book: { title: 'Book 1' } } });
    const serviceContext = parseTraceparent((await got).traceparent);
    // the batch processor waits 5 s before it sends; the drain sends at once
    stack.gw.child.kill('SIGTERM');
    expect((await withTimeout(stack.gw.exited, 10_000, 'the gateway to exit')).code).toBe(0);

    const resourceSpans = exports.flatMap((e) => e.resourceSpans);
    const spans = resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans));
    const op = spans.find((s) => s.name === 'query.Title');
    const get = spans.find((s) => s.name === 'res.get');
    expect(op, stack.gw.output()).toBeDefined();
    expect(get).toBeDefined();
    expect(get!.traceId).toBe(op!.traceId);
    expect(get!.parentSpanId).toBe(op!.spanId);
    expect(serviceContext).toEqual({ traceId: op!.traceId, spanId: get!.spanId });
    const resource = Object.fromEntries(resourceSpans[0].resource.attributes.map((a) => [a.key, Object.values(a.value)[0]]));
    expect(resource).toMatchObject({ 'service.name': 'resgraph', 'deployment.environment.name': 'test' });
  });
});

interface OtlpExport {
  resourceSpans: {
    resource: { attributes: { key: string; value: Record<string, unknown> }[] };
    scopeSpans: { spans: { name: string; traceId: string; spanId: string; parentSpanId?: string }[] }[];
  }[];
}

function hrMs([s, ns]: [number, number]): number {
  return s * 1000 + ns / 1e6;
}
