/**
 * Parsed and validated documents, remembered by their text: clients send few
 * distinct documents, many times. Parsing and validation run through Yoga's
 * envelop (its parser cache, the spec's rules and our plugins' rules, such as
 * the operation limits) once per document; later requests reuse the outcome.
 *
 * What is remembered is bounded: a number of documents and a total of their
 * text, and a refused document is remembered by its errors alone (an error's
 * nodes would keep the whole parsed document alive).
 */
import { GraphQLError, getOperationAST, type DocumentNode, type GraphQLFormattedError, type OperationDefinitionNode } from 'graphql';
import type { GatewayYoga } from './http.js';

export type PreparedDocument =
  | { ok: true; document: DocumentNode; operation: OperationDefinitionNode }
  | { ok: false; errors: readonly GraphQLFormattedError[] };

/** Distinct documents remembered; beyond it the memory starts over. */
const maxDocuments = 1000;
/** Characters of document text remembered in all; beyond it the memory starts over. */
const maxRememberedText = 16 * 1024 * 1024;

export class DocumentCache {
  private readonly prepared = new Map<string, PreparedDocument>();
  private rememberedText = 0;

  constructor(private readonly yoga: GatewayYoga) {}

  /**
   * The outcome of parsing and validating a document for an operation name.
   * `initialContext` is what Yoga's plugins see while validating (the first
   * request's; validation rules do not depend on who asks).
   */
  prepare(query: string, operationName: string | null | undefined, initialContext: object): PreparedDocument {
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
    if (this.prepared.size >= maxDocuments || this.rememberedText + key.length > maxRememberedText) {
      this.prepared.clear();
      this.rememberedText = 0;
    }
    this.prepared.set(key, p);
    this.rememberedText += key.length;
  }

  private run(query: string, operationName: string | null | undefined, initialContext: object): PreparedDocument {
    const { parse, validate, schema } = this.yoga.getEnveloped(initialContext as never);
    let document: DocumentNode;
    try {
      document = parse(query);
      const errors = validate(schema, document);
      if (errors.length > 0) return { ok: false, errors: errors.map(clientError) };
    } catch (e) {
      // parse errors, and validation plugins that reject by throwing
      if (e instanceof GraphQLError) return { ok: false, errors: [clientError(e)] };
      throw e;
    }
    const operation = getOperationAST(document, operationName);
    if (!operation) return { ok: false, errors: [{ message: 'Unable to identify the operation' }] };
    return { ok: true, document, operation };
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
