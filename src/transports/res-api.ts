/**
 * Resgate's HTTP API, served from the gateway's cache and access layer, so
 * REST callers written for Resgate keep working: `GET <api>/<rid as path>[?query]`
 * answers the resource in Resgate's default JSON encoding (hard references
 * nested as `{"href", "model"|"collection"|"error"}`, soft references as
 * `{"href"}`), `POST <api>/<rid as path>/<method>` calls the method with the
 * body as params. Status codes, error bodies, the `isHttp` access request
 * and reply meta follow Resgate (https://resgate.io/docs/specification/res-http-protocol/
 * and its server/apiHandler.go): an error body is the RES error object itself,
 * a call's resource reply is 200 with its `Location`, a null result is 204.
 *
 * Each request is a connection of its own (transport `res`), like a GraphQL
 * HTTP request (lifecycle.ts): header auth runs first, then one access
 * request per rid.
 * It owns no resource state: what it reads is held by a lease until the
 * response is written.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Connection } from '../access/access.js';
import type { CacheEntry, Lease } from '../cache/cache.js';
import { errorText, type Logger } from '../log.js';
import { isDirectStatus, mergeHeader, statusError, type ResponseMeta } from '../res/meta.js';
import {
  ErrorCode,
  ResError,
  accessDenied,
  errorObject,
  internalError,
  notFound,
  isData,
  isRef,
  isValidClientRid,
  isValidMethodName,
  splitRid,
  type ResValue,
} from '../res/protocol.js';
import { mayBeForged } from './csrf.js';
import { readBodyWithin } from './limits.js';
import { defaults } from '../config/defaults.js';
import { headersOf, type ResTransportParts } from './http.js';

/** `path`: the API's root path: `/api` serves `/api/<rid as path>`. */
export interface ResApiOptions extends ResTransportParts {
  /** Bytes a request body may have (Resgate sets no limit; a gateway must). Default: `defaults.maxBodyBytes`. */
  maxBodyBytes?: number;
}

export interface ResApi {
  /** whether a request path is the API's */
  owns(path: string): boolean;
  /** answers a request whose path the API owns */
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** answers a request that arrives while the gateway drains: 503, go elsewhere */
  refuseWhileDraining(res: ServerResponse): void;
}

const contentType = 'application/json; charset=utf-8';
/** How many levels of references a GET follows before giving up (a chain that keeps growing while it is read). */
const maxDepth = 64;

// --- rids and paths (Resgate's PathToRID, PathToRIDAction, RIDToPath) -------

/** Go's url.PathEscape: everything but unreserved characters and `$&+:=@` is %-escaped. */
function pathEscape(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%(24|26|2B|3A|3D|40)/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** The API path of a rid: `library.book.1` → `/api/library/book/1`. */
export function ridToPath(rid: string, prefix: string): string {
  return prefix + pathEscape(rid).replace(/\./g, '/');
}

/** The path's parts after the prefix, unescaped; undefined when it names no rid (a dot in the path, a bad escape). */
function pathParts(rawPath: string, prefix: string): string[] | undefined {
  if (rawPath.length === prefix.length || !rawPath.startsWith(prefix)) return undefined;
  const rest = rawPath.slice(prefix.length);
  if (rest.includes('.')) return undefined;
  try {
    return rest.split('/').map((p) => decodeURIComponent(p));
  } catch {
    return undefined;
  }
}

function withQuery(name: string, rawQuery: string): string {
  return rawQuery === '' ? name : `${name}?${rawQuery}`;
}

// --- errors ------------------------------------------------------------------

/** The HTTP status Resgate answers an error with. */
export function errorStatus(code: string): number {
  switch (code) {
    case ErrorCode.notFound:
    case ErrorCode.methodNotFound:
    case ErrorCode.timeout:
      return 404;
    case ErrorCode.accessDenied:
      return 401;
    case ErrorCode.methodNotAllowed:
      return 405;
    case ErrorCode.internalError:
      return 500;
    case ErrorCode.serviceUnavailable:
      return 503;
    case ErrorCode.forbidden:
      return 403;
    case ErrorCode.subjectTooLong:
      return 414;
    default:
      return 400;
  }
}

function errorJson(e: ResError): string {
  return JSON.stringify(errorObject(e));
}

function asResError(e: unknown, log: Logger): ResError {
  if (ResError.is(e)) return e;
  log.error('HTTP API request failed', { error: errorText(e) });
  return internalError();
}

const methodNotAllowed = () => new ResError(ErrorCode.methodNotAllowed, 'Method not allowed');
const badRequest = (message: string) => new ResError(ErrorCode.badRequest, message);

// --- encoding ----------------------------------------------------------------

/** A cached resource, a resource that failed to load, or undefined for one not loaded yet. */
type Lookup = (rid: string) => CacheEntry | ResError | undefined;

/**
 * Resgate's default ("json") encoding of a resource and the resources its
 * hard references reach; a reference back to a resource being encoded is
 * only its `href`. Returns the rids met but not loaded yet, instead of a body,
 * when there are any.
 */
function encodeTree(root: CacheEntry, rootRid: string, prefix: string, lookup: Lookup): { body: string } | { missing: string[] } {
  const missing: string[] = [];
  const path: string[] = [];
  const entry = (e: CacheEntry, rid: string): string => {
    path.push(rid);
    const out =
      e.kind === 'collection'
        ? `[${e.collection!.map(value).join(',')}]`
        : `{${Object.entries(e.model!).map(([k, v]) => `${JSON.stringify(k)}:${value(v)}`).join(',')}}`;
    path.pop();
    return out;
  };
  const value = (v: ResValue): string => {
    if (isRef(v)) {
      const href = `{"href":${JSON.stringify(ridToPath(v.rid, prefix))}`;
      if (v.soft || path.includes(v.rid)) return `${href}}`;
      const ref = lookup(v.rid);
      if (ref === undefined) {
        missing.push(v.rid);
        return 'null';
      }
      if (ResError.is(ref)) return `${href},"error":${errorJson(ref)}}`;
      return `${href},"${ref.kind}":${entry(ref, v.rid)}}`;
    }
    return JSON.stringify(isData(v) ? v.data : v);
  };
  const body = entry(root, rootRid);
  return missing.length > 0 ? { missing } : { body };
}

// --- the exchange ------------------------------------------------------------

/** What a request comes to before meta has its say: a body, a Location, nothing (204), or an error. */
type Outcome = { body: string } | { href: string } | { none: true } | { error: ResError };

export function createResApi(opts: ResApiOptions): ResApi {
  const prefix = opts.path.endsWith('/') ? opts.path : `${opts.path}/`;
  const { cache, access } = opts;
  const log = opts.logger;

  /** Loads a resource and everything its hard references reach (held by the lease), and encodes it. */
  async function readResource(rid: string, lease: Lease): Promise<string> {
    lease.hold(rid);
    const root = await cache.load(rid);
    const failed = new Map<string, ResError>();
    const lookup: Lookup = (r) => failed.get(r) ?? cache.peek(r);
    for (let depth = 0; depth < maxDepth; depth++) {
      const current = cache.peek(rid) ?? root;
      const encoded = encodeTree(current, rid, prefix, lookup);
      if ('body' in encoded) return encoded.body;
      await Promise.all(
        [...new Set(encoded.missing)].map(async (r) => {
          lease.hold(r);
          await cache.load(r).catch((e: unknown) => failed.set(r, asResError(e, log)));
        }),
      );
    }
    throw internalError('References too deep to follow');
  }

  /** A stop set by a reply's 3XX/4XX/5XX meta status: the exchange ends here (access/meta.ts). */
  function stopped(conn: Connection): Outcome | undefined {
    const stop = conn.meta?.stopped;
    return stop ? { error: stop } : undefined;
  }

  async function get(conn: Connection, rid: string, lease: Lease): Promise<Outcome> {
    const verdict = await access.verdict(conn, rid);
    const stop = stopped(conn);
    if (stop) return stop;
    if (!verdict.get) throw accessDenied();
    return { body: await readResource(rid, lease) };
  }

  async function call(conn: Connection, rid: string, method: string, params: unknown): Promise<Outcome> {
    await access.assertCall(conn, rid, method).catch((e: unknown) => {
      // a 3XX meta status on the access reply answers before a denial does
      if (!stopped(conn)) throw e;
    });
    const stop = stopped(conn);
    if (stop) return stop;
    const { name, query } = splitRid(rid);
    const payload = conn.basePayload(query);
    if (params !== undefined) payload.params = params;
    let reply;
    try {
      reply = await opts.res.call(name, method, payload);
    } catch (e) {
      conn.meta?.thrown('call', e);
      throw e;
    }
    conn.meta?.add('call', reply.meta);
    if (reply.kind === 'resource') return { href: ridToPath(reply.rid, prefix) };
    if (reply.kind === 'error') throw reply.error;
    return reply.result === null || reply.result === undefined ? { none: true } : { body: JSON.stringify(reply.result) };
  }

  /** Runs one request as a connection of its own: header auth, then `work`, then the answer with the replies' meta. */
  async function exchange(req: IncomingMessage, res: ServerResponse, work: (conn: Connection, lease: Lease) => Promise<Outcome>): Promise<void> {
    const ctx = opts.lifecycle.openRequest('res', req, true);
    const { conn } = ctx;
    try {
      await opts.lifecycle.authenticate(conn);
      let outcome: Outcome;
      try {
        outcome = stopped(conn) ?? (await work(conn, ctx.lease));
      } catch (e) {
        outcome = { error: asResError(e, log) };
      }
      answer(res, outcome, conn.meta?.merged);
    } finally {
      opts.lifecycle.finish(ctx);
    }
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const rawPath = q < 0 ? url : url.slice(0, q);
    const rawQuery = q < 0 ? '' : url.slice(q + 1);
    const fail = (e: ResError) => answer(res, { error: e }, undefined);
    if (req.method === 'OPTIONS') {
      res.writeHead(200, { 'access-control-allow-methods': 'GET, HEAD, OPTIONS, POST', 'content-length': '0' });
      return void res.end();
    }
    if (rawPath.length > prefix.length && rawPath.endsWith('/')) return fail(notFound());
    const parts = pathParts(rawPath, prefix);
    const done = (p: Promise<void>) =>
      void p.catch((e: unknown) => {
        log.error('HTTP API request failed', { error: errorText(e) });
        if (!res.headersSent) answer(res, { error: internalError() }, undefined);
        else res.end();
      });
    if (req.method === 'GET' || req.method === 'HEAD') {
      const rid = parts ? withQuery(parts.join('.'), rawQuery) : '';
      if (!isValidClientRid(rid, true)) return fail(notFound());
      return done(exchange(req, res, (conn, lease) => get(conn, rid, lease)));
    }
    if (req.method !== 'POST') return fail(methodNotAllowed());
    const method = parts && parts.length >= 2 ? parts[parts.length - 1] : '';
    const rid = parts && parts.length >= 2 ? withQuery(parts.slice(0, -1).join('.'), rawQuery) : '';
    if (!isValidClientRid(rid, true) || !isValidMethodName(method)) return fail(notFound());
    // a browser may post a form or text to any site, with the user's cookies (transports/csrf.ts)
    if (mayBeForged(headersOf(req))) {
      return fail(new ResError(ErrorCode.forbidden, 'This request could have been sent by another site; send it as JSON, or with a CSRF header'));
    }
    done(
      readBodyWithin(req, opts.maxBodyBytes ?? defaults.maxBodyBytes).then((raw) => {
        let params: unknown;
        if (raw === undefined) return fail(badRequest('Request body too large'));
        if (raw.trim() !== '') {
          try {
            params = JSON.parse(raw);
          } catch (e) {
            return fail(badRequest(`Error decoding request body: ${(e as Error).message}`));
          }
        }
        return exchange(req, res, (conn) => call(conn, rid, method, params));
      }),
    );
  }

  const refuseWhileDraining = (res: ServerResponse) => {
    res.setHeader('Retry-After', '0');
    answer(res, { error: new ResError(ErrorCode.serviceUnavailable, 'The gateway is shutting down; send the request to another instance') }, undefined);
  };
  return { owns: (path) => path.startsWith(prefix), handle, refuseWhileDraining };
}


/**
 * Writes the answer as Resgate does: a 3XX/4XX/5XX meta status answers with
 * that status (a redirect without content, its Location the call's resource
 * unless meta gives one; an error body from the reply's error or one matching
 * the status); otherwise meta's headers are merged into the outcome's answer.
 */
function answer(res: ServerResponse, outcome: Outcome, meta: ResponseMeta | undefined): void {
  const header = mergeHeader({}, meta?.header);
  const write = (status: number, extra: Record<string, string>, body?: string) => {
    const head: Record<string, string | string[]> = { ...header, ...extra };
    if (body !== undefined) head['Content-Length'] = String(Buffer.byteLength(body));
    res.writeHead(status, head);
    res.end(body);
  };
  if (isDirectStatus(meta)) {
    if (meta.status < 400) {
      const href = 'href' in outcome ? outcome.href : undefined;
      return write(meta.status, href !== undefined && !('Location' in header) ? { Location: href } : {});
    }
    const error = 'error' in outcome ? outcome.error : statusError(meta.status);
    return write(meta.status, { 'Content-Type': contentType }, errorJson(error));
  }
  if ('error' in outcome) return write(errorStatus(outcome.error.code), { 'Content-Type': contentType }, errorJson(outcome.error));
  if ('href' in outcome) return write(200, { Location: outcome.href });
  if ('body' in outcome) return write(200, { 'Content-Type': contentType }, outcome.body);
  write(204, {});
}
