/**
 * Parsed and validated documents, remembered by their text: clients send few
 * distinct documents, many times. Parsing and validation run through Yoga's
 * envelop (its parser cache, the spec's rules and our plugins' rules, such as
 * the depth limit) once per document; later requests reuse the outcome.
 */
import { GraphQLError, BREAK, getOperationAST, visit, type DocumentNode, type OperationDefinitionNode } from 'graphql';
import { ErrorCode } from '../res/protocol.js';
import type { GatewayYoga } from './http.js';

export type PreparedDocument =
  | {
      ok: true;
      document: DocumentNode;
      operation: OperationDefinitionNode;
      /** it uses `@defer` or `@stream`: its result comes in parts, which graphql-jit cannot run */
      incremental: boolean;
    }
  | { ok: false; errors: readonly GraphQLError[] };

/** Distinct documents remembered; beyond it the memory starts over. */
const maxDocuments = 1000;

export class DocumentCache {
  private readonly prepared = new Map<string, PreparedDocument>();

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
    if (this.prepared.size >= maxDocuments) this.prepared.clear();
    this.prepared.set(key, p);
    return p;
  }

  private run(query: string, operationName: string | null | undefined, initialContext: object): PreparedDocument {
    const { parse, validate, schema } = this.yoga.getEnveloped(initialContext as never);
    let document: DocumentNode;
    try {
      document = parseMarked(parse, query);
      const errors = validate(schema, document);
      if (errors.length > 0) return { ok: false, errors };
    } catch (e) {
      // parse errors, and validation plugins that reject by throwing (the depth limit)
      if (e instanceof GraphQLError) return { ok: false, errors: [e] };
      throw e;
    }
    const operation = getOperationAST(document, operationName);
    if (!operation) return { ok: false, errors: [new GraphQLError('Unable to identify the operation')] };
    return { ok: true, document, operation, incremental: usesIncrementalDelivery(document) };
  }
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
