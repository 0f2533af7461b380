/**
 * Operation limits: what one request may cost the gateway before anything
 * runs. Request bodies and documents are bounded in bytes, documents in
 * tokens (while parsing), and operations in depth, aliases and directives
 * (while validating), so a hostile document is refused before it is
 * executed or remembered. The document limits are envelop plugins (the
 * graphql-armor ones where they exist) and apply wherever a document is
 * prepared through Yoga's envelop: HTTP, SSE, the fast HTTP path and the
 * WebSocket loop alike. The body limit is applied by each transport where
 * it reads bytes (Yoga, the fast path, ws's `maxPayload`).
 *
 * Every refusal is a GraphQL error with `extensions.code`
 * `system.limitExceeded` and `extensions.limit` naming the limit.
 */
import { maxAliasesPlugin } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthPlugin } from '@escape.tech/graphql-armor-max-depth';
import { maxDirectivesPlugin } from '@escape.tech/graphql-armor-max-directives';
import { maxTokensPlugin } from '@escape.tech/graphql-armor-max-tokens';
import type { IncomingMessage } from 'node:http';
import { GraphQLError, type ValidationContext } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { defaults } from '../config/defaults.js';
import { ErrorCode } from '../res/protocol.js';

export interface OperationLimits {
  /** Deepest selection an operation may have. */
  maxDepth: number;
  /** Aliased fields an operation may have. */
  maxAliases: number;
  /** Tokens a document may have. */
  maxTokens: number;
  /** Directives an operation may use. */
  maxDirectives: number;
  /** Bytes (UTF-8) a document may have. */
  maxDocumentBytes: number;
  /** Bytes a request body (HTTP) or a message (WebSocket) may have. */
  maxBodyBytes: number;
}

/** Each limit's default (config/defaults.ts). */
export const defaultLimits: Readonly<OperationLimits> = {
  maxDepth: defaults.maxDepth,
  maxAliases: defaults.maxAliases,
  maxTokens: defaults.maxTokens,
  maxDirectives: defaults.maxDirectives,
  maxDocumentBytes: defaults.maxDocumentBytes,
  maxBodyBytes: defaults.maxBodyBytes,
};

/** The limits with every unset one at its default. */
export function limitsWithDefaults(limits: Partial<OperationLimits>): OperationLimits {
  const out = { ...defaultLimits };
  for (const key of Object.keys(defaultLimits) as (keyof OperationLimits)[]) {
    const v = limits[key];
    if (v !== undefined) out[key] = v;
  }
  return out;
}

/** Which limit refused a request, as `extensions.limit` says it. */
export type LimitName = 'depth' | 'aliases' | 'tokens' | 'directives' | 'documentBytes' | 'bodyBytes';

/**
 * The error of every refusal. `status` is the HTTP status Yoga answers it
 * with (a document refused is a bad request; a body too large, 413), also to
 * `Accept: application/json`, where Yoga would answer a spec validation
 * error with 200 (`spec: false`).
 */
export function limitExceeded(limit: LimitName, message: string, status = 400): GraphQLError {
  return new GraphQLError(message, { extensions: { code: ErrorCode.limitExceeded, limit, http: { status, spec: false } } });
}

export function bodyTooLarge(maxBodyBytes: number): GraphQLError {
  return limitExceeded('bodyBytes', `Request body limit of ${maxBodyBytes} bytes exceeded.`, 413);
}

/**
 * graphql-armor reports its refusals as "Syntax Error: ..." without a code;
 * this turns one into the gateway's error: reported to validation when there
 * is a validation context, thrown from the parser otherwise (the token limit).
 */
function refuseAs(limit: LimitName) {
  return (context: ValidationContext | null, err: GraphQLError): void => {
    const error = limitExceeded(limit, err.message.replace(/^Syntax Error: /, ''));
    if (context) context.reportError(error);
    else throw error;
  };
}

/** The envelop plugins that bound a document and its operations. */
export function documentLimitPlugins(limits: OperationLimits): Plugin[] {
  const armor = (limit: LimitName, n: number) => ({ n, exposeLimits: true, propagateOnRejection: false, onReject: [refuseAs(limit)] });
  return [
    maxTokensPlugin(armor('tokens', limits.maxTokens)) as Plugin,
    documentGuard(limits.maxDocumentBytes),
    maxDepthPlugin(armor('depth', limits.maxDepth)) as Plugin,
    maxAliasesPlugin(armor('aliases', limits.maxAliases)) as Plugin,
    maxDirectivesPlugin(armor('directives', limits.maxDirectives)) as Plugin,
  ];
}

/**
 * Refuses a document above the byte limit before it is parsed (and so before
 * Yoga's parser cache keeps it), and turns a parser that ran out of stack (a
 * deeply nested document) into a refusal instead of an unexpected error.
 * Listed after the token limit, whose parser it wraps.
 */
function documentGuard(maxDocumentBytes: number): Plugin {
  return {
    onParse({ params }) {
      const source = typeof params.source === 'string' ? params.source : params.source.body;
      // a string's UTF-8 size is at most 3 bytes per UTF-16 unit: measure only when it could be over
      if (source.length * 3 > maxDocumentBytes && Buffer.byteLength(source) > maxDocumentBytes) {
        throw limitExceeded('documentBytes', `Document size limit of ${maxDocumentBytes} bytes exceeded.`);
      }
      return ({ result, replaceParseResult }) => {
        if (result instanceof RangeError) replaceParseResult(limitExceeded('depth', 'Document nesting is too deep to parse.'));
      };
    },
  };
}

/**
 * The body limit for Yoga's requests: a declared Content-Length over the
 * limit is refused before the body is read. Yoga's own `maxRequestBodySize`,
 * set to the same limit, stops a body without a declared length as it
 * streams in (answered 413 with Yoga's code, `REQUEST_ENTITY_TOO_LARGE`).
 */
export function requestBodyLimit(maxBodyBytes: number): Plugin {
  return {
    onRequestParse({ request }) {
      if (Number(request.headers.get('content-length')) > maxBodyBytes) throw bodyTooLarge(maxBodyBytes);
    },
  };
}

/**
 * A request's body as text, or undefined once it passes `maxBytes` (what was
 * read so far is dropped then, and the rest is read and thrown away), for
 * the transports that read bodies themselves (graphql-sse's single
 * connection, Resgate's HTTP API).
 */
export function readBodyWithin(req: IncomingMessage, maxBytes: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    let chunks: Buffer[] | undefined = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) chunks = undefined;
      else chunks?.push(c);
    });
    req.once('error', reject);
    req.once('end', () => resolve(chunks ? Buffer.concat(chunks).toString('utf8') : undefined));
  });
}
