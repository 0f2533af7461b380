/**
 * The `meta` object of service replies (RES service protocol, "Meta object":
 * https://resgate.io/docs/specification/res-service-protocol/#meta-object):
 * how a reply to an access, call or auth request sets the status and headers
 * of the client's HTTP response. This module parses, merges and interprets
 * meta as values; it writes no response (access/meta.ts collects a
 * connection's meta, the transports apply it).
 */
import { ErrorCode, ResError, accessDenied, internalError, isPlainObject, notFound, timeoutError } from './protocol.js';

/** A parsed meta object: a status in 300–599 (others are ignored) and headers by canonical name. */
export interface ResponseMeta {
  status?: number;
  header?: Record<string, string[]>;
}

/**
 * Headers a service may not set: the gateway owns the body's type and
 * framing, the WebSocket handshake and CORS. The first five are the ones the
 * protocol's reference gateway protects; the framing headers are ours too,
 * since a service-set length or encoding would corrupt the response.
 */
const protectedHeaders = new Set([
  'Sec-Websocket-Extensions',
  'Sec-Websocket-Protocol',
  'Access-Control-Allow-Credentials',
  'Access-Control-Allow-Origin',
  'Content-Type',
  'Content-Length',
  'Transfer-Encoding',
  'Connection',
]);

/** A header name in canonical MIME form: `set-cookie` → `Set-Cookie`. Names with characters outside a token are kept as they are. */
export function canonicalHeaderName(name: string): string {
  if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) return name;
  return name.toLowerCase().replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}

/**
 * Parses a reply's `meta` member; undefined when absent or empty. A status
 * outside 3XX–5XX has no defined behaviour and is dropped; header values
 * that are not lists of strings are dropped.
 */
export function parseMeta(v: unknown): ResponseMeta | undefined {
  if (!isPlainObject(v)) return undefined;
  const meta: ResponseMeta = {};
  if (typeof v.status === 'number' && Number.isInteger(v.status) && v.status >= 300 && v.status < 600) meta.status = v.status;
  if (isPlainObject(v.header)) {
    const header: Record<string, string[]> = {};
    for (const [k, values] of Object.entries(v.header)) {
      if (!Array.isArray(values) || !values.every((x) => typeof x === 'string')) continue;
      const name = canonicalHeaderName(k);
      (header[name] ??= []).push(...(values as string[]));
    }
    if (Object.keys(header).length > 0) meta.header = header;
  }
  return meta.status === undefined && meta.header === undefined ? undefined : meta;
}

/**
 * Adds `b`'s headers to `a`: `Set-Cookie` values are appended, any other
 * header is replaced, protected headers are skipped (protocol: "If the
 * header key is Set-Cookie, the value will be added to any existing values").
 */
export function mergeHeader(a: Record<string, string[]>, b: Record<string, string[]> | undefined): Record<string, string[]> {
  if (!b) return a;
  for (const [k, v] of Object.entries(b)) {
    if (protectedHeaders.has(k)) continue;
    a[k] = k === 'Set-Cookie' ? [...(a[k] ?? []), ...v] : [...v];
  }
  return a;
}

/** `a` then `b`: `b`'s status wins, headers merge as `mergeHeader`. Neither argument is changed. */
export function mergeMeta(a: ResponseMeta | undefined, b: ResponseMeta | undefined): ResponseMeta | undefined {
  if (!a) return b && { status: b.status, header: b.header && mergeHeader({}, b.header) };
  if (!b) return a;
  const status = b.status ?? a.status;
  const header = mergeHeader(mergeHeader({}, a.header), b.header);
  return { ...(status !== undefined && { status }), ...(Object.keys(header).length > 0 && { header }) };
}

/** Whether the meta's status asks for an immediate answer, with no further service requests (3XX, 4XX, 5XX). */
export function isDirectStatus(meta: ResponseMeta | undefined): meta is ResponseMeta & { status: number } {
  return meta?.status !== undefined && meta.status >= 300 && meta.status < 600;
}

/** The RES error a 4XX/5XX status stands for when the reply carried none (the protocol's "error matching the code"). */
export function statusError(status: number): ResError {
  const e = (code: string, message: string) => new ResError(code, message);
  switch (status) {
    case 401:
    case 402:
    case 407:
      return accessDenied();
    case 403:
    case 451:
      return e(ErrorCode.forbidden, 'Forbidden');
    case 404:
    case 410:
      return notFound();
    case 405:
      return e(ErrorCode.methodNotAllowed, 'Method not allowed');
    case 408:
    case 504:
      return timeoutError();
    case 501:
      return e(ErrorCode.notImplemented, 'Not implemented');
    case 503:
      return e(ErrorCode.serviceUnavailable, 'Service unavailable');
  }
  if (status >= 400 && status < 500) return e(ErrorCode.badRequest, 'Bad request');
  return internalError();
}
