/**
 * Trusted documents: which GraphQL documents a client may name by hash, and
 * which it may send at all. One store for every transport: Yoga's requests
 * (HTTP, SSE) go through `yogaPlugin()`, the fast HTTP path and the WebSocket
 * loop call `resolve` themselves, so a `documentId` or an
 * `extensions.persistedQuery` means the same document everywhere.
 *
 * Two modes:
 * - a manifest (hash → document, as graphql-codegen's client preset writes it
 *   with `persistedDocuments: true`): clients send `documentId` or
 *   `extensions.persistedQuery.sha256Hash`; with `persistedOnly`, any other
 *   document is refused;
 * - no manifest: automatic persisted queries (Apollo's protocol). An unknown
 *   hash answers `PersistedQueryNotFound`; the client's retry with the
 *   document stores it, once its SHA-256 is checked against the hash. The
 *   store is bounded in documents and bytes, the oldest unused going first.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { ErrorCode } from '../res/protocol.js';

export interface TrustedDocumentsOptions {
  /** hash → document: the documents clients may name (and, with `persistedOnly`, the only ones) */
  manifest?: Readonly<Record<string, string>>;
  /** refuse every document not in the manifest */
  persistedOnly?: boolean;
  /** a document above this size is never stored (it would be refused anyway) */
  maxDocumentBytes: number;
  /** documents the automatic persisted queries store keeps. Default 1000. */
  maxStoredDocuments?: number;
  /** total bytes of documents that store keeps. Default 10 MB. */
  maxStoredBytes?: number;
}

/** The parts of a GraphQL request that name its document. */
export interface DocumentRequest {
  query?: unknown;
  documentId?: unknown;
  extensions?: unknown;
}

/** The document to run, or why there is none. `query` undefined: the request named no document. */
export type DocumentResolution = { query: string | undefined } | { error: GraphQLError };

/** Reads a manifest file: a JSON object of hash → document. Throws with a clear message otherwise. */
export function loadPersistedDocuments(file: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`cannot read the persisted documents ${file}: ${(e as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`the persisted documents ${file} are not a JSON object of hash → document`);
  }
  const entries = Object.entries(parsed);
  const bad = entries.find(([, v]) => typeof v !== 'string');
  if (bad) throw new Error(`the persisted documents ${file}: the value of ${JSON.stringify(bad[0])} is not a document string`);
  return Object.fromEntries(entries) as Record<string, string>;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

function error(message: string, code: string, status: number): GraphQLError {
  return new GraphQLError(message, { extensions: { code, http: { status } } });
}

/** The hash a request names its document by: `documentId`, else APQ's `extensions.persistedQuery.sha256Hash`. */
function requestedHash(req: DocumentRequest): string | undefined {
  if (typeof req.documentId === 'string' && req.documentId !== '') return req.documentId;
  const ext = req.extensions;
  if (typeof ext !== 'object' || ext === null) return undefined;
  const pq = (ext as Record<string, unknown>).persistedQuery;
  if (typeof pq !== 'object' || pq === null) return undefined;
  const { version, sha256Hash } = pq as Record<string, unknown>;
  return version === 1 && typeof sha256Hash === 'string' ? sha256Hash : undefined;
}

export class TrustedDocuments {
  private readonly manifest: ReadonlyMap<string, string> | undefined;
  readonly persistedOnly: boolean;
  /** automatic persisted queries, least recently used first */
  private readonly stored = new Map<string, string>();
  private storedBytes = 0;

  constructor(private readonly opts: TrustedDocumentsOptions) {
    this.manifest = opts.manifest ? new Map(Object.entries(opts.manifest)) : undefined;
    this.persistedOnly = opts.persistedOnly ?? false;
    if (this.persistedOnly && !this.manifest) throw new Error('persistedOnly needs a manifest of persisted documents');
  }

  /**
   * The document a request runs. Clients that send a hash may also send
   * `query` empty (graphql-ws requires the field), which counts as absent.
   */
  resolve(req: DocumentRequest): DocumentResolution {
    const query = typeof req.query === 'string' && req.query !== '' ? req.query : undefined;
    const hash = requestedHash(req);
    return this.manifest ? this.fromManifest(this.manifest, hash, query) : this.automatic(hash, query);
  }

  private fromManifest(manifest: ReadonlyMap<string, string>, hash: string | undefined, query: string | undefined): DocumentResolution {
    if (hash !== undefined) {
      const known = manifest.get(hash) ?? manifest.get(hash.replace(/^sha256:/, ''));
      if (known !== undefined) return { query: known };
      if (query === undefined || this.persistedOnly) return { error: notFound() };
    }
    if (query !== undefined && this.persistedOnly) {
      return {
        error: error(
          'Only trusted documents are accepted here: send the documentId (or extensions.persistedQuery) of a document the gateway knows',
          ErrorCode.untrustedDocument,
          400,
        ),
      };
    }
    return { query };
  }

  private automatic(hash: string | undefined, query: string | undefined): DocumentResolution {
    if (hash === undefined) return { query };
    if (query === undefined) {
      const known = this.stored.get(hash);
      if (known === undefined) return { error: notFound() };
      // most recently used last
      this.stored.delete(hash);
      this.stored.set(hash, known);
      return { query: known };
    }
    if (sha256(query) !== hash) {
      return { error: error('PersistedQueryMismatch', ErrorCode.persistedQueryMismatch, 400) };
    }
    this.store(hash, query);
    return { query };
  }

  private store(hash: string, query: string): void {
    const bytes = Buffer.byteLength(query);
    if (bytes > this.opts.maxDocumentBytes || this.stored.has(hash)) return;
    const maxDocs = this.opts.maxStoredDocuments ?? 1000;
    const maxBytes = this.opts.maxStoredBytes ?? 10 * 1024 * 1024;
    for (const [oldHash, old] of this.stored) {
      if (this.stored.size < maxDocs && this.storedBytes + bytes <= maxBytes) break;
      this.stored.delete(oldHash);
      this.storedBytes -= Buffer.byteLength(old);
    }
    this.stored.set(hash, query);
    this.storedBytes += bytes;
  }

  /** The Yoga plugin: resolves each request's document before Yoga checks its parameters. */
  yogaPlugin(): Plugin {
    return {
      onParams: ({ params, setParams }) => {
        const request = params as DocumentRequest & typeof params;
        if (request.documentId === undefined && requestedHash(request) === undefined && !this.persistedOnly) return;
        const r = this.resolve(request);
        if ('error' in r) throw r.error;
        const { documentId: _documentId, ...rest } = request;
        setParams({ ...rest, query: r.query });
      },
    };
  }
}

/** Apollo's and urql's persisted-query links retry with the document when they see this message or code. */
function notFound(): GraphQLError {
  return error('PersistedQueryNotFound', ErrorCode.persistedQueryNotFound, 404);
}
