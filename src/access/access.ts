/**
 * Access owns who a client is and what it may do: one Connection per
 * WebSocket connection or HTTP request (an unguessable cid, the token a
 * service set for it) and `access` verdicts cached per (connection, rid).
 * The gateway never decides access itself: it asks the owning service and
 * forgets the answer when the token changes, a `reaccess` arrives, a
 * `system.reset` names the resource (see
 * docs/protocol-notes.md#access-is-per-token-and-resource), or the cache
 * stops listening to the resource's events, after which a `reaccess` would
 * go unheard. The token comes from `conn.<cid>.token`, which the registry
 * listens to.
 */
import { randomBytes } from 'node:crypto';
import type { ResClient } from '../res/client.js';
import { ResponseMetaCollector } from './meta.js';
import {
  ResError,
  accessDenied,
  canCall,
  internalError,
  matchesPattern,
  parseTokenEvent,
  splitRid,
  subjects,
  type AccessVerdict,
  type RequestPayload,
} from '../res/protocol.js';

/** HTTP details of the request that opened a connection, sent with auth requests. */
export interface HttpInfo {
  header: Record<string, string[]>;
  host?: string;
  remoteAddr?: string;
  uri?: string;
}

export type ConnectionTransport = 'http' | 'ws' | 'sse' | 'res';

/** Random bytes drawn a page at a time: one system call per 256 cids, not one per request. */
const cidPool = { bytes: Buffer.alloc(0), at: 0 };

/** 128 random bits, base64url: a connection id no client can choose or guess. */
function newCid(): string {
  if (cidPool.at + 16 > cidPool.bytes.length) {
    cidPool.bytes = randomBytes(4096);
    cidPool.at = 0;
  }
  const cid = cidPool.bytes.toString('base64url', cidPool.at, cidPool.at + 16);
  cidPool.at += 16;
  return cid;
}

/** A client connection as the services see it. */
export class Connection {
  /** 128 random bits: a client can neither choose nor guess another connection's cid */
  readonly cid = newCid();
  token: unknown = null;
  tid: string | undefined;
  /** access verdicts by rid; a pending promise is shared by concurrent checks */
  readonly verdicts = new Map<string, Promise<AccessVerdict>>();
  /** the verdicts that have arrived, readable without waiting (a re-run from the cache then runs synchronously) */
  readonly known = new Map<string, AccessVerdict>();
  private readonly accessListeners = new Set<() => void>();
  /** how many times the token changed or verdicts were dropped: work that began before then may hold a stale verdict */
  accessChanges = 0;

  /** the meta of the replies to this connection's requests, for its HTTP response: only an HTTP request's connection has one */
  readonly meta: ResponseMetaCollector | undefined;

  private httpInfo: HttpInfo | (() => HttpInfo) | undefined;

  constructor(
    /** how the client came: GraphQL over HTTP, SSE or graphql-ws, or Resgate's own protocols (`res`: its HTTP API and WebSocket) */
    readonly transport: ConnectionTransport,
    /** the HTTP details, or a function making them when first needed (most connections never need them) */
    http?: HttpInfo | (() => HttpInfo),
    /** whether the connection is one HTTP request with a response of its own (its requests say `isHttp`); default: an `http` one */
    readonly isHttp = transport === 'http',
  ) {
    this.httpInfo = http;
    this.meta = isHttp ? new ResponseMetaCollector() : undefined;
  }

  /** HTTP details of the request that opened the connection, sent with auth requests. */
  get http(): HttpInfo | undefined {
    if (typeof this.httpInfo === 'function') this.httpInfo = this.httpInfo();
    return this.httpInfo;
  }

  /** The fields every access, call and auth request carries. */
  basePayload(query?: string): RequestPayload {
    const p: RequestPayload = { cid: this.cid };
    if (this.token !== null && this.token !== undefined) p.token = this.token;
    if (query !== undefined) p.query = query;
    if (this.isHttp) p.isHttp = true;
    return p;
  }

  /** Hears when the token changes or verdicts are dropped, so live results can re-check; returns the unsubscribe. */
  onAccessChanged(listener: () => void): () => void {
    this.accessListeners.add(listener);
    return () => void this.accessListeners.delete(listener);
  }

  setToken(token: unknown, tid?: string): void {
    this.token = token ?? null;
    this.tid = token === null || token === undefined ? undefined : tid;
    // a new identity: every verdict is stale, and live results must re-check
    this.verdicts.clear();
    this.known.clear();
    this.notifyAccessChanged();
  }

  /** Drops cached verdicts for the rids `which` selects and tells listeners if any went. */
  forgetVerdicts(which: (rid: string) => boolean): void {
    let dropped = false;
    for (const rid of this.verdicts.keys()) {
      if (which(rid)) {
        this.verdicts.delete(rid);
        this.known.delete(rid);
        dropped = true;
      }
    }
    if (dropped) this.notifyAccessChanged();
  }

  private notifyAccessChanged(): void {
    this.accessChanges++;
    for (const l of this.accessListeners) l();
  }
}

/** Every open connection by cid, so service messages addressed by cid find theirs. */
export class ConnectionRegistry {
  private readonly byCid = new Map<string, Connection>();

  add(conn: Connection): void {
    this.byCid.set(conn.cid, conn);
  }

  delete(conn: Connection): void {
    this.byCid.delete(conn.cid);
  }

  get(cid: string): Connection | undefined {
    return this.byCid.get(cid);
  }

  get size(): number {
    return this.byCid.size;
  }

  all(): IterableIterator<Connection> {
    return this.byCid.values();
  }

  /**
   * Subscribes to `conn.<cid>.token`: a service sets a connection's token
   * (docs/protocol-notes.md#auth-requests-need-no-access). To be called once
   * the ResClient is attached, before any request, so the token a service
   * publishes before its auth reply is already heard; nats.js renews the
   * subscription after a reconnect.
   */
  listenForTokens(res: ResClient): void {
    res.subscribe(subjects.connAll, (subject, payload) => {
      const [, cid, event] = subject.split('.');
      if (event !== 'token') return;
      const conn = this.byCid.get(cid);
      if (!conn) return;
      const token = res.parseMessage(subject, payload, parseTokenEvent);
      if (token) conn.setToken(token.token, token.tid);
    });
  }

  /** A `reaccess` event: every connection forgets its verdict for this rid. */
  reaccess(rid: string): void {
    for (const c of this.byCid.values()) if (c.verdicts.has(rid)) c.forgetVerdicts((r) => r === rid);
  }

  /**
   * The cache no longer hears the rid's events: every connection forgets its
   * verdict quietly (nothing changed; the next check asks the service).
   */
  forgetUnheard(rid: string): void {
    for (const c of this.byCid.values()) {
      c.verdicts.delete(rid);
      c.known.delete(rid);
    }
  }

  /** `system.reset` access patterns: forget verdicts for matching resource names. */
  resetAccess(patterns: string[]): void {
    const matches = (rid: string) => patterns.some((p) => matchesPattern(p, splitRid(rid).name));
    for (const c of this.byCid.values()) c.forgetVerdicts(matches);
  }
}

export class AccessChecker {
  constructor(private readonly res: ResClient) {}

  /** The cached or freshly asked verdict of a connection for a rid. */
  verdict(conn: Connection, rid: string): Promise<AccessVerdict> {
    let v = conn.verdicts.get(rid);
    if (!v) {
      // a 3XX/4XX/5XX meta status ended the exchange: no further requests (access/meta.ts)
      if (conn.meta?.stopped) return Promise.reject(conn.meta.stopped);
      const { name, query } = splitRid(rid);
      const asked = this.askAccess(conn, name, query);
      v = asked;
      conn.verdicts.set(rid, asked);
      asked.then(
        (verdict) => {
          // only if it was not forgotten meanwhile (a new token, a reaccess)
          if (conn.verdicts.get(rid) === asked) conn.known.set(rid, verdict);
        },
        // an error (a timeout, an error reply other than system.accessDenied,
        // an invalid verdict, no responder) is not a verdict: ask again next
        // time, as Resgate keeps only verdicts and denials; an HTTP
        // connection lives for one request, which asks once per rid
        () => {
          if (conn.verdicts.get(rid) === asked && !conn.isHttp) conn.verdicts.delete(rid);
        },
      );
    }
    return v;
  }

  /** An access request; for an HTTP request's connection, its reply's meta is noted and a 4XX/5XX status fails it. */
  private askAccess(conn: Connection, name: string, query: string | undefined): Promise<AccessVerdict> {
    const meta = conn.meta;
    if (!meta) return this.res.access(name, conn.basePayload(query));
    let failed: ResError | undefined;
    return this.res
      .access(name, conn.basePayload(query), (reply) => void (failed = meta.add('access', reply.meta, reply.kind === 'error' ? reply.error : undefined)))
      .then((verdict) => {
        if (failed) throw failed;
        return verdict;
      });
  }

  /** The verdict a connection already holds for a rid, if it has arrived; no request is sent. */
  known(conn: Connection, rid: string): AccessVerdict | undefined {
    return conn.known.get(rid);
  }

  /** Throws system.accessDenied unless the connection may get the rid. */
  async assertGet(conn: Connection, rid: string): Promise<void> {
    if (!(await this.verdict(conn, rid)).get) throw accessDenied();
  }

  /** Throws system.accessDenied unless the connection may call the method. */
  async assertCall(conn: Connection, rid: string, method: string): Promise<void> {
    if (!canCall(await this.verdict(conn, rid), method)) throw accessDenied();
  }

  /**
   * Why the connection may not get the rid now, or undefined when it may:
   * system.accessDenied for a denial, else the error that kept the access
   * handler from giving a verdict (its own code, system.internalError,
   * system.notFound, system.timeout). Never rejects.
   */
  async getDenial(conn: Connection, rid: string): Promise<ResError | undefined> {
    try {
      return (await this.verdict(conn, rid)).get ? undefined : accessDenied();
    } catch (e) {
      return ResError.is(e) ? e : internalError();
    }
  }
}
