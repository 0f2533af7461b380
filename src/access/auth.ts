/**
 * Authentication requests the gateway makes on its own: header auth (the
 * configured `auth.<rid>.<method>` called with a connection's HTTP headers
 * before anything else runs, so a cookie or bearer token becomes a RES
 * token) and `system.tokenReset`, which it listens to (re-authenticate
 * every connection holding one of the reset token ids). Services answer by
 * publishing `conn.<cid>.token`, which the connections apply before the
 * auth reply arrives (see docs/protocol-notes.md#auth-requests-need-no-access).
 */
import type { Logger } from '../log.js';
import type { ResClient } from '../res/client.js';
import { ResError, isValidResourceName, parseTokenReset, subjects, type RequestPayload } from '../res/protocol.js';
import type { ResponseMeta } from '../res/meta.js';
import type { Connection, ConnectionRegistry } from './access.js';

export interface HeaderAuthMethod {
  name: string;
  method: string;
}

/** Parses `--header-auth <rid>.<method>`; throws with a reason on a malformed value. */
export function parseHeaderAuth(value: string): HeaderAuthMethod {
  const i = value.lastIndexOf('.');
  const name = value.slice(0, i);
  const method = value.slice(i + 1);
  if (i <= 0 || !method || !isValidResourceName(name) || /[\s?*>]/.test(method)) {
    throw new Error(`header auth must be <resource>.<method>, like session.jwt (sent as auth.session.jwt); got "${value}"`);
  }
  return { name, method };
}

function authPayload(conn: Connection, params?: unknown): RequestPayload {
  const payload: RequestPayload = { ...conn.basePayload(), ...conn.http };
  if (params !== undefined) payload.params = params;
  return payload;
}

/** What header auth came to: the reply's meta, and its error if it failed. */
export interface HeaderAuthOutcome {
  meta?: ResponseMeta;
  error?: ResError;
}

export class Authenticator {
  constructor(
    private readonly res: ResClient,
    private readonly log: Logger,
    private readonly headerAuth?: HeaderAuthMethod,
  ) {}

  get hasHeaderAuth(): boolean {
    return this.headerAuth !== undefined;
  }

  /**
   * Runs header auth for a new connection (with graphql-ws connectionParams
   * as params, if any). A failure only means the connection has no token: it
   * is logged at debug level and the connection goes on. The reply's meta
   * is noted for an HTTP request's response, and returned for a response
   * the caller writes (a WebSocket upgrade, with `isHttp`).
   */
  async authenticate(conn: Connection, params?: unknown, opts: { isHttp?: boolean } = {}): Promise<HeaderAuthOutcome> {
    if (!this.headerAuth) return {};
    const payload = authPayload(conn, params);
    if (opts.isHttp) payload.isHttp = true;
    try {
      const reply = await this.res.auth(this.headerAuth.name, this.headerAuth.method, payload);
      // a 4XX/5XX status ends the exchange (access/meta.ts); with no exchange to end, the connection goes on
      conn.meta?.add('auth', reply.meta);
      return { meta: reply.meta };
    } catch (e) {
      conn.meta?.thrown('auth', e);
      this.log.debug('header auth failed', { cid: conn.cid, code: ResError.is(e) ? e.code : String(e) });
      return ResError.is(e) ? { meta: e.meta, error: e } : {};
    }
  }

  /**
   * Subscribes to `system.tokenReset` for the connections of the registry.
   * To be called once the ResClient is attached; nats.js renews the
   * subscription after a reconnect.
   */
  listenForTokenResets(connections: ConnectionRegistry): void {
    this.res.subscribe(subjects.systemTokenReset, (subject, payload) => {
      const reset = this.res.parseMessage(subject, payload, parseTokenReset);
      if (reset) this.tokenReset(connections, reset.tids, reset.subject);
    });
  }

  /** `system.tokenReset`: one auth request to `subject` per connection whose token id is listed. */
  private tokenReset(connections: ConnectionRegistry, tids: string[], subject: string): void {
    const reset = new Set(tids);
    for (const conn of connections.all()) {
      if (conn.tid === undefined || !reset.has(conn.tid)) continue;
      this.res.authRequest(subject, authPayload(conn)).catch((e: unknown) => {
        this.log.debug('token reset auth failed', { cid: conn.cid, subject, code: ResError.is(e) ? e.code : String(e) });
      });
    }
  }
}
