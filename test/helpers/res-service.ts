/**
 * A small RES service for tests, on its own real NATS connection: it holds
 * models and collections in memory, answers `get` and `access` requests from
 * them (access: everything allowed unless a test says otherwise), records
 * every request it sees, and publishes events. Tests override any subject
 * with `handle`, and await requests with `nextRequest`.
 */
import { connect, type ConnectionOptions, type Msg, type NatsConnection } from 'nats';

export type Json = unknown;
export type Reply = ({ result: Json } | { resource: { rid: string } } | { error: { code: string; message: string; data?: Json } }) & { meta?: Json };
/** what a handler returns: a reply object, a raw string sent as is, or undefined for no reply */
export type HandlerResult = Reply | string | undefined | void;
export type Handler = (payload: any, subject: string, msg: Msg) => HandlerResult | Promise<HandlerResult>;

export interface SeenRequest {
  subject: string;
  payload: any;
  /** the W3C trace context the gateway sent in the request's NATS headers, if any */
  traceparent?: string;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export class TestService {
  readonly requests: SeenRequest[] = [];
  readonly resources = new Map<string, { model: Record<string, Json> } | { collection: Json[] }>();
  /** access verdicts by rid; `default` is used for the others */
  readonly accessRules = new Map<string, Json>();
  defaultAccess: Json = { get: true, call: '*' };
  private readonly handlers: { pattern: RegExp; handler: Handler }[] = [];
  private readonly waiters: { match: (r: SeenRequest) => boolean; resolve: (r: SeenRequest) => void }[] = [];

  private constructor(readonly nc: NatsConnection) {}

  /**
   * Connects and answers `<type>.<prefix>.>` requests for each type (default
   * prefix: everything). `connectOptions` add to the connection's (TLS, credentials).
   */
  static async start(url: string, prefixes: string[] = ['>'], connectOptions: ConnectionOptions = {}): Promise<TestService> {
    // reconnects for as long as the test runs, quickly, so tests can restart nats-server under it
    const nc = await connect({ servers: url, name: 'test-service', maxReconnectAttempts: -1, reconnectTimeWait: 100, ...connectOptions });
    const svc = new TestService(nc);
    for (const type of ['get', 'access', 'call', 'auth']) {
      for (const prefix of prefixes) {
        nc.subscribe(prefix === '>' ? `${type}.>` : `${type}.${prefix}.>`, { callback: (_e, m) => void svc.onRequest(m) });
        if (prefix !== '>') nc.subscribe(`${type}.${prefix}`, { callback: (_e, m) => void svc.onRequest(m) });
      }
    }
    await nc.flush();
    return svc;
  }

  model(rid: string, model: Record<string, Json>): this {
    this.resources.set(rid, { model });
    return this;
  }

  collection(rid: string, collection: Json[]): this {
    this.resources.set(rid, { collection });
    return this;
  }

  /** Overrides the answer for subjects matching a pattern (`*` one token, `>` the rest). */
  handle(subjectPattern: string, handler: Handler): this {
    const re = new RegExp(
      '^' + subjectPattern.split('.').map((t) => (t === '*' ? '[^.]+' : t === '>' ? '.+' : t.replace(/[$^()[\]\\|+?]/g, '\\$&'))).join('\\.') + '$',
    );
    this.handlers.unshift({ pattern: re, handler });
    return this;
  }

  /** Requests seen whose subject equals (or starts with, given a trailing `*`) the argument. */
  seen(subject: string): SeenRequest[] {
    return this.requests.filter((r) => (subject.endsWith('*') ? r.subject.startsWith(subject.slice(0, -1)) : r.subject === subject));
  }

  count(subject: string): number {
    return this.seen(subject).length;
  }

  /** Resolves with the next request matching `subject` (exact) or a predicate, or rejects after a timeout. */
  nextRequest(subject: string | ((r: SeenRequest) => boolean), timeoutMs = 3000): Promise<SeenRequest> {
    const match = typeof subject === 'string' ? (r: SeenRequest) => r.subject === subject : subject;
    return new Promise((resolve, reject) => {
      const w = {
        match,
        resolve: (r: SeenRequest) => {
          clearTimeout(timer);
          resolve(r);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no request ${typeof subject === 'string' ? subject : 'matching'} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Publishes `event.<rid>.<event>` and flushes, so it is on the wire when this resolves. */
  async event(rid: string, event: string, payload?: Json): Promise<void> {
    this.nc.publish(`event.${rid}.${event}`, payload === undefined ? new Uint8Array() : enc.encode(JSON.stringify(payload)));
    await this.nc.flush();
  }

  /** Changes a model's properties in the store and publishes the change event. */
  async change(rid: string, values: Record<string, Json>): Promise<void> {
    const r = this.resources.get(rid);
    if (!r || !('model' in r)) throw new Error(`no model ${rid}`);
    for (const [k, v] of Object.entries(values)) {
      if (v && typeof v === 'object' && (v as { action?: string }).action === 'delete') delete r.model[k];
      else r.model[k] = v;
    }
    await this.event(rid, 'change', { values });
  }

  async add(rid: string, value: Json, idx: number): Promise<void> {
    const r = this.resources.get(rid);
    if (!r || !('collection' in r)) throw new Error(`no collection ${rid}`);
    r.collection.splice(idx, 0, value);
    await this.event(rid, 'add', { value, idx });
  }

  async remove(rid: string, idx: number): Promise<void> {
    const r = this.resources.get(rid);
    if (!r || !('collection' in r)) throw new Error(`no collection ${rid}`);
    r.collection.splice(idx, 1);
    await this.event(rid, 'remove', { idx });
  }

  async publish(subject: string, payload: Json): Promise<void> {
    this.nc.publish(subject, enc.encode(JSON.stringify(payload)));
    await this.nc.flush();
  }

  async close(): Promise<void> {
    if (!this.nc.isClosed()) await this.nc.close();
  }

  private async onRequest(msg: Msg): Promise<void> {
    const text = dec.decode(msg.data);
    let payload: any;
    try {
      payload = text === '' ? undefined : JSON.parse(text);
    } catch {
      payload = text;
    }
    const traceparent = msg.headers?.get('traceparent');
    const req: SeenRequest = { subject: msg.subject, payload, ...(traceparent ? { traceparent } : {}) };
    this.requests.push(req);
    for (const w of [...this.waiters]) {
      if (w.match(req)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(req);
      }
    }
    const custom = this.handlers.find((h) => h.pattern.test(msg.subject));
    let reply: HandlerResult;
    try {
      reply = custom ? await custom.handler(payload, msg.subject, msg) : this.defaultReply(msg.subject, payload);
    } catch (e) {
      reply = { error: { code: 'system.internalError', message: (e as Error).message } };
    }
    if (reply === undefined || !msg.reply) return;
    msg.respond(enc.encode(typeof reply === 'string' ? reply : JSON.stringify(reply)));
  }

  private defaultReply(subject: string, payload: any): HandlerResult {
    const [type, ...rest] = subject.split('.');
    const name = type === 'call' || type === 'auth' ? rest.slice(0, -1).join('.') : rest.join('.');
    const rid = payload && typeof payload === 'object' && payload.query ? `${name}?${payload.query}` : name;
    if (type === 'get') {
      const r = this.resources.get(rid);
      return r ? { result: structuredClone(r) } : { error: { code: 'system.notFound', message: 'Not found' } };
    }
    if (type === 'access') return { result: this.accessRules.get(rid) ?? this.defaultAccess };
    return { error: { code: 'system.methodNotFound', message: 'Method not found' } };
  }
}
