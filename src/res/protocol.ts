/**
 * RES service protocol facts, in one place: subjects, payload shapes, error
 * codes and the guards that turn untrusted service payloads into typed values.
 * Nothing here talks to NATS or knows about GraphQL. The rules the gateway
 * follows are in docs/protocol-notes.md, the specification at
 * https://resgate.io/docs/specification/res-service-protocol/.
 */
import { parseMeta, type ResponseMeta } from './meta.js';

/** Every error code the gateway sends, its own included (see docs/protocol-notes.md#error-codes). */
export const ErrorCode = {
  notFound: 'system.notFound',
  invalidParams: 'system.invalidParams',
  invalidQuery: 'system.invalidQuery',
  internalError: 'system.internalError',
  methodNotFound: 'system.methodNotFound',
  accessDenied: 'system.accessDenied',
  timeout: 'system.timeout',
  /** refused at the edge, before any service is asked (a cross-site origin) */
  forbidden: 'system.forbidden',
  /** the gateway is shutting down: send the request to another instance */
  unavailable: 'system.unavailable',
  /** not RES: a GraphQL document that does not parse (the code Yoga gives it) */
  parseFailed: 'GRAPHQL_PARSE_FAILED',
  /** what a reply's meta status stands for when it carries no error (res/meta.ts statusError), and HTTP API errors */
  badRequest: 'system.badRequest',
  methodNotAllowed: 'system.methodNotAllowed',
  notImplemented: 'system.notImplemented',
  serviceUnavailable: 'system.serviceUnavailable',
  /** RES client protocol errors (transports/res-ws.ts) */
  invalidRequest: 'system.invalidRequest',
  noSubscription: 'system.noSubscription',
  unsupportedProtocol: 'system.unsupportedProtocol',
  subjectTooLong: 'system.subjectTooLong',
  /** the gateway's own: a request over one of its limits (operation limits, live and RES subscriptions per connection) */
  limitExceeded: 'system.limitExceeded',
  /** the gateway's own: a document that is not among the trusted documents, where only those are accepted */
  untrustedDocument: 'system.untrustedDocument',
  /** persisted queries (Apollo's protocol, which clients branch on): no document is known by that hash */
  persistedQueryNotFound: 'PERSISTED_QUERY_NOT_FOUND',
  /** persisted queries: the document sent does not have the hash sent with it */
  persistedQueryMismatch: 'PERSISTED_QUERY_MISMATCH',
  /** the gateway's own: a stream (live result or `@event`) whose operation no longer validates against the schema a reload put in place */
  schemaChanged: 'system.schemaChanged',
} as const;

/** A RES error: a code, a message and optional data, as services send them. */
export class ResError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'ResError';
  }

  /** the error reply's `meta` (res/meta.ts), if it had one */
  meta?: ResponseMeta;

  static is(err: unknown): err is ResError {
    return err instanceof ResError;
  }
}

/** An error as clients of Resgate's protocols receive it: `{code, message, data?}`. */
export function errorObject(e: ResError): { code: string; message: string; data?: unknown } {
  return e.data === undefined ? { code: e.code, message: e.message } : { code: e.code, message: e.message, data: e.data };
}

export const notFound = () => new ResError(ErrorCode.notFound, 'Not found');
export const accessDenied = () => new ResError(ErrorCode.accessDenied, 'Access denied');
export const timeoutError = () => new ResError(ErrorCode.timeout, 'Request timeout');
export const internalError = (message = 'Internal error') =>
  new ResError(ErrorCode.internalError, message);
export const invalidParams = (message = 'Invalid parameters') =>
  new ResError(ErrorCode.invalidParams, message);

/**
 * NATS answered that no service subscribes to a request's subject. Resgate
 * 1.8.0 answers system.notFound for it (get, access and call alike), and so
 * does the gateway: nothing serves that resource name, and asking again at
 * once will not change that, which a system.timeout would suggest. It is a
 * class of its own so a reset can tell it from a service's own "not found":
 * a service that is away for a moment has not deleted its resources.
 */
export class NoRespondersError extends ResError {
  constructor() {
    super(ErrorCode.notFound, 'Not found');
  }
}

/**
 * The deepest nesting of arrays and objects a service payload may have
 * (envelope included). Deeper input is refused as malformed where it enters
 * (the RES client), because JSON.stringify and the gateway's own recursive
 * walks (value equality, patch diffs, structuredClone) overflow the stack at
 * 2,400 to 4,100 levels on Node 20's default stack, and an overflow thrown
 * from a NATS callback or a microtask would end the process. Resgate refuses
 * more than 10,000 levels (Go's JSON limit); 1,000 keeps a wide margin below
 * where our walks fail, and no RES resource nests anywhere near it.
 */
export const maxJsonDepth = 1000;

/**
 * Whether JSON text nests arrays and objects deeper than `max`. It scans the
 * bytes before they are parsed, without recursion: brackets inside strings
 * do not count, and UTF-8 continuation bytes never look like ASCII, so the
 * raw message can be scanned undecoded. Invalid JSON is left to JSON.parse.
 */
export function jsonDepthExceeds(bytes: Uint8Array, max = maxJsonDepth): boolean {
  // nesting deeper than max takes more than max bytes: most events are shorter
  if (bytes.length <= max) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (inString) {
      if (b === 0x5c) i++; // backslash: the next byte is escaped
      else if (b === 0x22) inString = false;
    } else if (b === 0x22) {
      inString = true;
    } else if (b === 0x7b || b === 0x5b) {
      if (++depth > max) return true;
    } else if (b === 0x7d || b === 0x5d) {
      depth--;
    }
  }
  return false;
}

/** Event names the protocol reserves; any other event name is a custom event. */
export const reservedEvents = new Set([
  'add', 'change', 'create', 'delete', 'patch', 'reset', 'reaccess', 'remove', 'unsubscribe', 'query',
]);

// --- subjects --------------------------------------------------------------

export const subjects = {
  get: (name: string) => `get.${name}`,
  access: (name: string) => `access.${name}`,
  call: (name: string, method: string) => `call.${name}.${method}`,
  auth: (name: string, method: string) => `auth.${name}.${method}`,
  /**
   * Every event of a resource name, on one subscription. Event names are
   * single tokens: `.*` keeps the events of `a.b.c` out of the one for `a.b`
   * (see docs/protocol-notes.md#event-subjects).
   */
  events: (name: string) => `event.${name}.*`,
  eventPrefix: 'event.',
  connAll: 'conn.>',
  systemReset: 'system.reset',
  systemTokenReset: 'system.tokenReset',
};

/** Splits a rid into its resource name and query (without the `?`). */
export function splitRid(rid: string): { name: string; query?: string } {
  const i = rid.indexOf('?');
  if (i < 0) return { name: rid };
  const query = rid.slice(i + 1);
  return query === '' ? { name: rid.slice(0, i) } : { name: rid.slice(0, i), query };
}

export function joinRid(name: string, query?: string): string {
  return query ? `${name}?${query}` : name;
}

/**
 * Whether a rid is valid as clients may send it (Resgate's rule): printable
 * ASCII without `*` and `>`, no empty part, a query only after a name.
 */
export function isValidClientRid(rid: string, allowQuery: boolean): boolean {
  let start = true;
  for (const ch of rid) {
    if (ch === '?') return allowQuery && !start;
    const c = ch.charCodeAt(0);
    if (c < 33 || c > 126 || ch === '*' || ch === '>') return false;
    if (ch === '.') {
      if (start) return false;
      start = true;
    } else start = false;
  }
  return !start;
}

/** Whether a method name from a client is valid: printable ASCII without `.`, `*`, `>` or `?`. */
export function isValidMethodName(part: string): boolean {
  return part.length > 0 && /^[!-~]+$/.test(part) && !/[.*>?]/.test(part);
}

/** Whether a string is a valid resource name: dot-separated, non-empty parts, no wildcards or whitespace. */
export function isValidResourceName(name: string): boolean {
  if (name === '') return false;
  for (const part of name.split('.')) {
    if (part === '' || /[\s?*>]/.test(part)) return false;
  }
  return true;
}

/**
 * Matches a resource name against a `system.reset` pattern: `*` stands for
 * exactly one part, a trailing `>` for one or more parts.
 */
export function matchesPattern(pattern: string, name: string): boolean {
  const p = pattern.split('.');
  const n = name.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return i === p.length - 1 && n.length > i;
    if (i >= n.length) return false;
    if (p[i] !== '*' && p[i] !== n[i]) return false;
  }
  return p.length === n.length;
}

// --- values ----------------------------------------------------------------

/** A resource reference; `soft` references are not followed on their own. */
export interface ResourceRef {
  rid: string;
  soft?: boolean;
}

/** A stored value: a primitive, a resource reference, or a data value (kept as `{data}`). */
export type Primitive = string | number | boolean | null;
export interface DataValue {
  data: unknown;
}
export type ResValue = Primitive | ResourceRef | DataValue;

export type Model = Record<string, ResValue>;
export type Collection = ResValue[];

export function isRef(v: ResValue | undefined): v is ResourceRef {
  return typeof v === 'object' && v !== null && 'rid' in v;
}

export function isData(v: ResValue | undefined): v is DataValue {
  return typeof v === 'object' && v !== null && 'data' in v;
}

/** A JSON object (not an array, not null). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses one value as the protocol defines it. A data value holding a
 * primitive is the primitive itself (`{"data": 42}` equals `42`). Throws on
 * anything else (nested objects outside `data`, arrays).
 */
export function parseValue(v: unknown): ResValue {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error('non-finite number');
    return v;
  }
  if (isPlainObject(v)) {
    if ('rid' in v) {
      if (typeof v.rid !== 'string' || !isValidResourceName(splitRid(v.rid).name)) {
        throw new Error(`invalid resource reference ${JSON.stringify(v.rid)}`);
      }
      return v.soft === true ? { rid: v.rid, soft: true } : { rid: v.rid };
    }
    if ('data' in v) {
      const d = v.data;
      if (d === null || typeof d === 'string' || typeof d === 'number' || typeof d === 'boolean') return d;
      return { data: d };
    }
  }
  throw new Error(`invalid value ${JSON.stringify(v)}`);
}

export function parseModel(v: unknown): Model {
  if (!isPlainObject(v)) throw new Error('model is not an object');
  const model: Model = {};
  for (const [k, val] of Object.entries(v)) model[k] = parseValue(val);
  return model;
}

export function parseCollection(v: unknown): Collection {
  if (!Array.isArray(v)) throw new Error('collection is not an array');
  return v.map(parseValue);
}

/** Deep equality of two stored values (data values compared structurally). */
export function valuesEqual(a: ResValue | undefined, b: ResValue | undefined): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (isRef(a) || isRef(b)) {
    return isRef(a) && isRef(b) && a.rid === b.rid && !!a.soft === !!b.soft;
  }
  return jsonEqual((a as DataValue).data, (b as DataValue).data);
}

/** Deep equality of two JSON values; the order of object keys does not matter. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k) || !jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}

// --- request and response payloads ---------------------------------------

/** What the gateway sends with access, call and auth requests. */
export interface RequestPayload {
  cid?: string;
  token?: unknown;
  query?: string;
  params?: unknown;
  isHttp?: boolean;
  header?: Record<string, string[]>;
  host?: string;
  remoteAddr?: string;
  uri?: string;
}

/** A parsed service response: exactly one of result, resource or error, and the reply's meta. */
export type Response = (
  | { kind: 'result'; result: unknown }
  | { kind: 'resource'; rid: string }
  | { kind: 'error'; error: ResError }
) & { meta?: ResponseMeta };

/** Parses a response body; throws with a reason on a malformed one. */
export function parseResponse(body: unknown): Response {
  if (!isPlainObject(body)) throw new Error('response is not a JSON object');
  const meta = parseMeta(body.meta);
  if ('error' in body) {
    const e = body.error;
    if (!isPlainObject(e) || typeof e.code !== 'string') throw new Error('error without a string code');
    const message = typeof e.message === 'string' ? e.message : e.code;
    const error = new ResError(e.code, message, e.data);
    if (meta) error.meta = meta;
    return { kind: 'error', error, meta };
  }
  if ('resource' in body) return { kind: 'resource', rid: resourceRid(body.resource), meta };
  if ('result' in body) return { kind: 'result', result: body.result, meta };
  throw new Error('response has neither result, resource nor error');
}

/**
 * A reply to the deprecated `new` method whose result is `{"rid": "..."}`
 * and nothing else is a resource reply: services answered `new` so before
 * the RES protocol had resource replies, and Resgate still reads it so.
 * Throws with a reason when that rid is not a valid one.
 */
export function legacyNewReply(reply: Response): Response {
  if (reply.kind !== 'result' || !isPlainObject(reply.result)) return reply;
  if (typeof reply.result.rid !== 'string' || Object.keys(reply.result).length !== 1) return reply;
  return { kind: 'resource', rid: resourceRid(reply.result), meta: reply.meta };
}

/** The rid of a resource reply's `{rid}`; throws with a reason when it is not a valid one. */
function resourceRid(resource: unknown): string {
  if (!isPlainObject(resource) || typeof resource.rid !== 'string' || !isValidResourceName(splitRid(resource.rid).name)) {
    throw new Error('resource response without a valid rid');
  }
  return resource.rid;
}

/** The result of a get request: a model or a collection, and the normalized query. */
export type GetResult =
  | { kind: 'model'; value: Model; query?: string }
  | { kind: 'collection'; value: Collection; query?: string };

export function parseGetResult(result: unknown): GetResult {
  if (!isPlainObject(result)) throw new Error('get result is not an object');
  const query = typeof result.query === 'string' ? result.query : undefined;
  // Resgate answers both at once with "invalid service response": which one the service meant is anyone's guess
  if ('model' in result && 'collection' in result) throw new Error('get result has both model and collection');
  if ('model' in result) return { kind: 'model', value: parseModel(result.model), query };
  if ('collection' in result) return { kind: 'collection', value: parseCollection(result.collection), query };
  throw new Error('get result has neither model nor collection');
}

/** An access verdict: whether get is allowed and which methods may be called. */
export interface AccessVerdict {
  get: boolean;
  /** `*` for all methods, else the allowed method names */
  call: '*' | Set<string>;
}

export const noAccess: AccessVerdict = { get: false, call: new Set() };

/**
 * Parses an access verdict. A missing field grants nothing; a field of the
 * wrong type (`{"get": "foo"}`) or a result that is no object is a broken
 * access handler, not a denial: it throws, as Resgate answers
 * system.internalError for it.
 */
export function parseAccessResult(result: unknown): AccessVerdict {
  if (!isPlainObject(result)) throw new Error('access result is not an object');
  if (result.get !== undefined && result.get !== null && typeof result.get !== 'boolean') {
    throw new Error('access result get is not a boolean');
  }
  if (result.call !== undefined && result.call !== null && typeof result.call !== 'string') {
    throw new Error('access result call is not a string');
  }
  const get = result.get === true;
  let call: AccessVerdict['call'] = new Set();
  if (typeof result.call === 'string') {
    const methods = result.call.split(',').map((m) => m.trim()).filter(Boolean);
    call = methods.includes('*') ? '*' : new Set(methods);
  }
  return { get, call };
}

export function canCall(verdict: AccessVerdict, method: string): boolean {
  return verdict.call === '*' || verdict.call.has(method);
}

// --- events ----------------------------------------------------------------

export type ChangeValues = Record<string, ResValue | { action: 'delete' }>;

export function isDeleteAction(v: unknown): v is { action: 'delete' } {
  return isPlainObject(v) && v.action === 'delete' && Object.keys(v).length === 1;
}

export function parseChangeEvent(payload: unknown): ChangeValues {
  if (!isPlainObject(payload) || !isPlainObject(payload.values)) throw new Error('change event without values');
  const values: ChangeValues = {};
  for (const [k, v] of Object.entries(payload.values)) {
    values[k] = isDeleteAction(v) ? { action: 'delete' } : parseValue(v);
  }
  return values;
}

export function parseAddEvent(payload: unknown): { value: ResValue; idx: number } {
  if (!isPlainObject(payload) || !Number.isInteger(payload.idx)) throw new Error('add event without integer idx');
  if (!('value' in payload)) throw new Error('add event without value');
  return { value: parseValue(payload.value), idx: payload.idx as number };
}

export function parseRemoveEvent(payload: unknown): { idx: number } {
  if (!isPlainObject(payload) || !Number.isInteger(payload.idx)) throw new Error('remove event without integer idx');
  return { idx: payload.idx as number };
}

export function parseQueryEvent(payload: unknown): { subject: string } {
  if (!isPlainObject(payload) || typeof payload.subject !== 'string' || payload.subject === '') {
    throw new Error('query event without subject');
  }
  return { subject: payload.subject };
}

/** A query request's reply: events to apply, a full value, or nothing. */
export type QueryReply =
  | { kind: 'events'; events: { event: string; data: unknown }[] }
  | { kind: 'value'; value: GetResult }
  | { kind: 'none' };

export function parseQueryReply(result: unknown): QueryReply {
  if (!isPlainObject(result)) throw new Error('query reply is not an object');
  if (Array.isArray(result.events)) {
    const events = result.events.map((e) => {
      if (!isPlainObject(e) || typeof e.event !== 'string') throw new Error('query reply event without name');
      return { event: e.event, data: e.data };
    });
    return { kind: 'events', events };
  }
  if ('model' in result || 'collection' in result) return { kind: 'value', value: parseGetResult(result) };
  return { kind: 'none' };
}

export interface SystemReset {
  resources: string[];
  access: string[];
}

export function parseSystemReset(payload: unknown): SystemReset {
  if (!isPlainObject(payload)) throw new Error('system.reset payload is not an object');
  const list = (v: unknown, field: string): string[] => {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new Error(`system.reset ${field} is not a string list`);
    return v as string[];
  };
  return { resources: list(payload.resources, 'resources'), access: list(payload.access, 'access') };
}

export interface TokenEvent {
  token: unknown;
  tid?: string;
}

export function parseTokenEvent(payload: unknown): TokenEvent {
  if (!isPlainObject(payload) || !('token' in payload)) throw new Error('token event without token');
  return { token: payload.token ?? null, tid: typeof payload.tid === 'string' ? payload.tid : undefined };
}

export function parseTokenReset(payload: unknown): { tids: string[]; subject: string } {
  if (!isPlainObject(payload) || !Array.isArray(payload.tids) || typeof payload.subject !== 'string') {
    throw new Error('system.tokenReset without tids and subject');
  }
  return { tids: payload.tids.filter((t): t is string => typeof t === 'string'), subject: payload.subject };
}
