/**
 * A short path for the most common HTTP request: a JSON `POST` of a query or
 * mutation from a non-browser client. Its document is parsed and validated
 * once (through Yoga's envelop, so the same rules and limits apply); the
 * root fields' access verdicts are asked first, all at once, and the
 * operation then runs compiled (resolvers/compiled.ts), synchronously when
 * the resources are cached, skipping the fetch-API layers and graphql-js's
 * promise bookkeeping that cost most of a cached query's time. Anything
 * else, and every document that does not parse and validate cleanly, is
 * handed to Yoga unchanged, so errors, CORS, SSE, `@live` and GraphiQL
 * behave exactly as Yoga makes them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DocumentNode, OperationDefinitionNode } from 'graphql';
import { liveRoute } from '../live/plugin.js';
import { errorText, type Logger } from '../log.js';
import { run as runOperation } from '../resolvers/compiled.js';
import { internalGraphQLError } from '../resolvers/resolvers.js';
import type { SchemaGeneration, ServedSchema } from '../resolvers/served.js';
import { clientError, DocumentCache } from './documents.js';
import { bodyTooLarge } from './limits.js';
import type { TrustedDocuments } from './trusted-documents.js';
import type { OperationSpan, OperationTracer } from '../telemetry/tracing.js';
import { headersOf, type GatewayYoga } from './http.js';
import type { ClientLifecycle } from './lifecycle.js';
import { nodeHeaders, writeHeadWithMeta } from './response-meta.js';

export interface QueryFastPathOptions {
  yoga: GatewayYoga;
  /** the schema being served: its current generation's executable schema, mapping and resolvers */
  served: ServedSchema;
  /** each request's connection, header auth and context */
  lifecycle: ClientLifecycle;
  graphqlPath: string;
  logger: Logger;
  /** Bytes a request body may have: a larger one is answered 413 without being read whole. */
  maxBodyBytes: number;
  /** the trusted documents: a request naming its document by hash runs the stored one */
  trusted: TrustedDocuments;
  /** a span per operation run here (Yoga's are its plugin's); undefined when tracing is off */
  tracing?: OperationTracer;
}

/** A document seen before: runnable on the short path (with the schema generation it was validated against), or not (Yoga answers it). */
type Prepared =
  | { document: DocumentNode; operation: OperationDefinitionNode; operationName: string | undefined; generation: SchemaGeneration }
  | 'yoga';

interface Body {
  /** the document, or (with `documentId` or `extensions.persistedQuery`) absent */
  query?: string;
  documentId?: string;
  variables?: Record<string, unknown> | null;
  operationName?: string | null;
  extensions?: { persistedQuery: unknown };
}

function isBody(v: unknown): v is Body {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const b = v as Record<string, unknown>;
  return (
    (typeof b.query === 'string' || typeof b.documentId === 'string' || isOnlyPersistedQuery(b.extensions)) &&
    (b.variables === undefined || b.variables === null || (typeof b.variables === 'object' && !Array.isArray(b.variables))) &&
    (b.operationName === undefined || b.operationName === null || typeof b.operationName === 'string') &&
    // the persisted-query extension is the only one this path knows
    (b.extensions === undefined || isOnlyPersistedQuery(b.extensions))
  );
}

function isOnlyPersistedQuery(ext: unknown): boolean {
  return typeof ext === 'object' && ext !== null && Object.keys(ext).length === 1 && 'persistedQuery' in ext;
}

/** Whether a request may take the short path, from its headers alone (the body is read only then). */
function eligible(req: IncomingMessage, path: string, graphqlPath: string): boolean {
  if (req.method !== 'POST' || path !== graphqlPath) return false;
  if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) return false;
  const accept = req.headers.accept;
  return accept === undefined || accept === '*/*' || /^application\/json\b/i.test(accept);
}

export function createQueryFastPath(opts: QueryFastPathOptions) {
  const documents = new DocumentCache(opts.yoga, opts.served);

  /**
   * The prepared document, when the short path may run it: it is trusted
   * (refusals are Yoga's to answer, which resolves the same way), it
   * validates and is not a stream.
   */
  const prepare = (req: IncomingMessage, body: Body): Prepared => {
    const trusted = opts.trusted.resolve(body);
    if ('error' in trusted || trusted.query === undefined) return 'yoga';
    const p = documents.prepare(trusted.query, body.operationName, { req, params: { ...body, query: trusted.query } });
    // errors are Yoga's to answer; streams, subscriptions and @defer/@stream parts need its response formats and executor
    const generation = opts.served.current;
    if (!p.ok || p.incremental || p.operation.operation === 'subscription' || liveRoute(p.operation, undefined, generation.mapping)) return 'yoga';
    return { document: p.document, operation: p.operation, operationName: body.operationName ?? undefined, generation };
  };

  /** Runs an operation and answers it, inside its span when tracing is on. */
  const run = (req: IncomingMessage, res: ServerResponse, body: Body, p: Exclude<Prepared, 'yoga'>): Promise<void> => {
    const span = opts.tracing?.operation(p.operation, 'http');
    if (!span) return execute(req, res, body, p, undefined);
    return span.run(() => execute(req, res, body, p, span)).finally(() => span.end());
  };

  const execute = async (req: IncomingMessage, res: ServerResponse, body: Body, p: Exclude<Prepared, 'yoga'>, span: OperationSpan | undefined) => {
    const contextValue = opts.lifecycle.openRequest('http', req);
    const { conn } = contextValue;
    try {
      await opts.lifecycle.authenticate(conn);
      // with the root verdicts known, a query of cached resources runs synchronously
      const { schema, resolvers } = p.generation;
      await resolvers.askRootAccess(schema, p.operation, body.variables ?? undefined, conn);
      const result = await runOperation({
        schema,
        document: p.document,
        operationName: p.operationName,
        variableValues: body.variables ?? undefined,
        contextValue,
      });
      span?.result(result);
      const json = JSON.stringify(result);
      const headers = { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json) };
      if (writeHeadWithMeta(res, 200, headers, conn.meta?.answer())) res.end(json);
      else res.end();
    } finally {
      opts.lifecycle.finish(contextValue);
    }
  };

  /** Hands a request whose body was already read to Yoga, and writes Yoga's response. */
  const toYoga = async (req: IncomingMessage, res: ServerResponse, raw: Buffer) => {
    const url = `http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`;
    const response = await opts.yoga.fetch(new Request(url, { method: 'POST', headers: headersOf(req), body: new Uint8Array(raw) }), { req, res });
    res.writeHead(response.status, nodeHeaders(response.headers));
    if (response.body) {
      // Yoga's body is its own stream type: read it as an async iterable
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve));
      }
    }
    res.end();
  };

  const internalError = (res: ServerResponse, e: unknown) => {
    opts.logger.error('HTTP request failed', { error: errorText(e) });
    if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: [clientError(internalGraphQLError())] }));
  };

  /** Answers the request with its body: on the short path, or by Yoga. Never throws: this runs in a request's event handler. */
  const answer = (req: IncomingMessage, res: ServerResponse, raw: Buffer) => {
    try {
      let body: unknown;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        body = undefined;
      }
      const p = isBody(body) ? prepare(req, body) : 'yoga';
      const answered = p === 'yoga' ? toYoga(req, res, raw) : run(req, res, body as Body, p);
      answered.catch((e: unknown) => internalError(res, e));
    } catch (e) {
      internalError(res, e);
    }
  };

  /**
   * A body over the limit is answered 413 as soon as it is known (from its
   * Content-Length, or once that many bytes have come), without reading the
   * rest: the connection is closed after the answer.
   */
  const tooLarge = (req: IncomingMessage, res: ServerResponse) => {
    req.removeAllListeners('data');
    req.removeAllListeners('end');
    const json = JSON.stringify({ errors: [clientError(bodyTooLarge(opts.maxBodyBytes))] });
    res.writeHead(413, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json), connection: 'close' });
    res.end(json, () => req.destroy());
  };

  /** Answers the request and returns true, or returns false when it is Yoga's from the start. */
  return function handle(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    if (!eligible(req, path, opts.graphqlPath)) return false;
    const max = opts.maxBodyBytes;
    if (Number(req.headers['content-length']) > max) {
      tooLarge(req, res);
      return true;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) return tooLarge(req, res);
      chunks.push(c);
    });
    req.on('end', () => answer(req, res, Buffer.concat(chunks, size)));
    // a client that goes away mid-body: nothing to answer
    req.on('error', () => undefined);
    return true;
  };
}
