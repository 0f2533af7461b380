/**
 * Parsed and validated documents, remembered by their text: clients send few
 * distinct documents, many times. Parsing and validation run through Yoga's
 * envelop (its parser cache, the spec's rules and our plugins' rules, such as
 * the operation limits) once per document; later requests reuse the outcome.
 *
 * What is remembered is bounded: a number of documents and a total of their
 * text, and a refused document is remembered by its errors alone (an error's
 * nodes would keep the whole parsed document alive). It is forgotten when
 * the schema is reloaded: validation depends on the schema.
 */
import { BREAK, GraphQLError, getOperationAST, visit, type DocumentNode, type GraphQLFormattedError, type OperationDefinitionNode } from 'graphql';
import { ErrorCode } from '../res/protocol.js';
import type { ServedSchema } from '../resolvers/served.js';
import type { GatewayYoga } from './http.js';

export type PreparedDocument =
  | {
      ok: true;
      document: DocumentNode;
      operation: OperationDefinitionNode;
      /** it uses `@defer` or `@stream`: its result comes in parts, which graphql-jit cannot run */
      incremental: boolean;
    }
  | { ok: false; errors: readonly GraphQLFormattedError[] };

/** Distinct documents remembered; beyond it the memory starts over. */
const maxDocuments = 1000;
/** Characters of document text remembered in all; beyond it the memory starts over. */
const maxRememberedText = 16 * 1024 * 1024;

export class DocumentCache {
  private readonly prepared = new Map<string, PreparedDocument>();
  private rememberedText = 0;
  /** the schema generation the remembered outcomes were validated against */
  private generation: number;

  constructor(
    private readonly yoga: GatewayYoga,
    private readonly served: ServedSchema,
  ) {
    this.generation = served.current.number;
  }

  /**
   * The outcome of parsing and validating a document for an operation name.
   * `initialContext` is what Yoga's plugins see while validating (the first
   * request's; validation rules do not depend on who asks).
   */
  prepare(query: string, operationName: string | null | undefined, initialContext: object): PreparedDocument {
    if (this.generation !== this.served.current.number) this.forget();
    const key = `${operationName ?? ''}\n${query}`;
    let p = this.prepared.get(key);
    if (p) return p;
    p = this.run(query, operationName, initialContext);
    this.remember(key, p);
    return p;
  }

  private remember(key: string, p: PreparedDocument): void {
    // a document refused for its size is not worth its memory: it is refused again before it is parsed
    if (!p.ok && p.errors.some((e) => e.extensions?.limit === 'documentBytes')) return;
    if (this.prepared.size >= maxDocuments || this.rememberedText + key.length > maxRememberedText) this.forget();
    this.prepared.set(key, p);
    this.rememberedText += key.length;
  }

  private forget(): void {
    this.prepared.clear();
    this.rememberedText = 0;
    this.generation = this.served.current.number;
  }

  private run(query: string, operationName: string | null | undefined, initialContext: object): PreparedDocument {
    const { parse, validate, schema } = this.yoga.getEnveloped(initialContext as never);
    let document: DocumentNode;
    try {
      document = parseMarked(parse, query);
      const errors = validate(schema, document);
      if (errors.length > 0) return { ok: false, errors: errors.map(clientError) };
    } catch (e) {
      // parse errors, and validation plugins that reject by throwing
      if (e instanceof GraphQLError) return { ok: false, errors: [clientError(e)] };
      throw e;
    }
    const operation = getOperationAST(document, operationName);
    if (!operation) return { ok: false, errors: [{ message: 'Unable to identify the operation' }] };
    return { ok: true, document, operation, incremental: usesIncrementalDelivery(document) };
  }
}

/**
 * An error as a client receives it: message, locations, path and extensions,
 * without what only Yoga reads (`extensions.http`, the HTTP status) and
 * without references to the document.
 */
export function clientError(e: GraphQLError): GraphQLFormattedError {
  const { http: _http, ...extensions } = e.extensions ?? {};
  const out: { -readonly [K in keyof GraphQLFormattedError]: GraphQLFormattedError[K] } = { message: e.message };
  if (e.locations) out.locations = e.locations;
  if (e.path) out.path = e.path;
  if (Object.keys(extensions).length > 0) out.extensions = extensions;
  return out;
}

/**
 * Parses, marking a syntax error the way Yoga marks it for its own HTTP
 * requests (a code, and HTTP status 400 under the GraphQL-over-HTTP
 * spec). Yoga's parser cache keeps the error object it first saw and throws
 * that same object for the same text later, before its own marking runs:
 * unmarked here, a later Yoga request for the text would be answered 200
 * under application/graphql-response+json, and without a code.
 */
function parseMarked(parse: (source: string) => DocumentNode, query: string): DocumentNode {
  try {
    return parse(query);
  } catch (e) {
    if (e instanceof GraphQLError) {
      const extensions = e.extensions as Record<string, unknown>;
      extensions.code ??= ErrorCode.parseFailed;
      const http = ((extensions.http ??= {}) as Record<string, unknown>);
      http.spec ??= true;
      http.status ??= 400;
    }
    throw e;
  }
}

const incrementalDocuments = new WeakMap<DocumentNode, boolean>();

/** Whether a document uses `@defer` or `@stream` anywhere (looked for once per parsed document: they are cached and shared). */
export function usesIncrementalDelivery(document: DocumentNode): boolean {
  let found = incrementalDocuments.get(document);
  if (found !== undefined) return found;
  found = false;
  visit(document, {
    Directive(d) {
      if (d.name.value !== 'defer' && d.name.value !== 'stream') return undefined;
      found = true;
      return BREAK;
    },
  });
  incrementalDocuments.set(document, found);
  return found;
}
