/**
 * Making the NATS connection and keeping it: the first connection is retried
 * here, for ever, with back-off, each failed attempt told (with NATS's
 * reason) to the caller; once connected, nats.js reconnects by itself with
 * the same back-off. nats.js would give up after the same authentication
 * error twice in a row (and, with `waitOnFirstConnect`, never say why the
 * first connection fails), so it is not left to do the first connection,
 * and `ignoreAuthErrorAbort` keeps it reconnecting through a server that
 * rejects the credentials for a while (a rotated password, a JWT renewed late).
 */
import { DebugEvents, ErrorCode, Events, NatsError, connect, type ConnectionOptions, type NatsConnection } from 'nats';

/** The wait before attempt `failures + 1`: 250 ms doubling to 5 s, ±20 % so that many gateways do not retry in step. */
export function retryDelay(failures: number): number {
  const base = Math.min(5000, 250 * 2 ** Math.min(failures, 5));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

/** Counts failed attempts since the last good connection, for `retryDelay`. */
export class ConnectAttempts {
  failures = 0;

  /** nats.js asks for the wait before each reconnect attempt (and again while waiting): the same answer each time. */
  readonly reconnectDelayHandler = () => retryDelay(Math.max(0, this.failures - 1));
}

/** How long one connection attempt may take, handshakes included. */
const connectTimeoutMs = 3000;

/** nats.js options for a connection that never gives up (see the module comment). */
export function reconnectingOptions(base: ConnectionOptions, attempts: ConnectAttempts): ConnectionOptions {
  return {
    ...base,
    // the list's order is the operator's: the first server is this process's
    // own (nearest) node, the others are where it goes when that one fails
    noRandomize: true,
    waitOnFirstConnect: false,
    // a little more than the Go client's default (2 s); nats.js's own is 20 s
    timeout: connectTimeoutMs,
    maxReconnectAttempts: -1,
    ignoreAuthErrorAbort: true,
    reconnectDelayHandler: attempts.reconnectDelayHandler,
  };
}

/** What NATS (or the TLS layer) said when it refused or failed a connection, in words; never holds a secret. */
export function describeNatsError(e: unknown): string {
  if (e instanceof NatsError) {
    if (e.code === ErrorCode.ConnectionRefused) return 'connection refused';
    if (e.code === ErrorCode.ServerOptionNotAvailable && e.message === 'tls') {
      return 'the server does not offer TLS (asked for by a tls:// URL or a --nats-tls-* option)';
    }
    if (e.code === ErrorCode.Timeout || e.code === ErrorCode.ConnectionTimeout) {
      // TLS 1.3 ends the client's handshake before the server checks the client's certificate; a server
      // that refuses it just closes the connection, and nats.js then waits for an answer that never comes
      return 'the server did not complete the connection in time (with mutual TLS: it may not trust the client certificate)';
    }
    return e.message.replace(/^'(.*)'$/, '$1');
  }
  const err = e as NodeJS.ErrnoException | undefined;
  const message = err?.message ?? String(e);
  // node's TLS errors: the certificate check failed on our side, or the server refused our certificate
  if (err?.code && /^ERR_(SSL|TLS)_|CERT|ISSUER|SIGNATURE|^UNABLE_TO_/.test(err.code)) return `TLS: ${message}`;
  return message;
}

/** Reasons nats.js reports through a status `error` event (its code) when the server rejects the client. */
function describeStatusError(code: unknown): string | undefined {
  switch (code) {
    case ErrorCode.AuthorizationViolation:
      return 'Authorization Violation';
    case ErrorCode.AuthenticationExpired:
      return 'User Authentication Expired';
    case ErrorCode.AccountExpired:
      return 'Account Authentication Expired';
    case ErrorCode.AuthenticationTimeout:
      return 'Authentication Timeout';
    default:
      return undefined;
  }
}

export interface FirstConnectHooks {
  /** told of each failed attempt, with the reason and the wait before the next */
  failed(reason: string, retryInMs: number): void;
  /** whether to stop trying (the process is shutting down) */
  stopped(): boolean;
}

/**
 * Connects, retrying with back-off until it works or `stopped()`; resolves
 * undefined when stopped. Each attempt tries every server once.
 */
export async function connectWithRetry(
  opts: ConnectionOptions,
  attempts: ConnectAttempts,
  hooks: FirstConnectHooks,
): Promise<NatsConnection | undefined> {
  for (;;) {
    if (hooks.stopped()) return undefined;
    try {
      const nc = await connect(opts);
      attempts.failures = 0;
      return nc;
    } catch (e) {
      const wait = retryDelay(attempts.failures++);
      hooks.failed(describeNatsError(e), wait);
      await new Promise((resolve) => setTimeout(resolve, wait).unref());
    }
  }
}

/** What happens to a connection once made, each told once (see `followConnection`). */
export interface ConnectionEvents {
  /** the connection was lost; `reason` when the server said why (it rejected the client while connected) */
  lost(reason: string | undefined): void;
  /** a reconnect attempt failed */
  attemptFailed(server: string, reason: string, retryInMs: number): void;
  /** the server rejected the client while it was connected (an expired JWT); `lost` follows */
  rejected(reason: string): void;
  /** connected again after `lost` */
  reconnected(): void;
}

/**
 * Turns nats.js's status events into `ConnectionEvents` until the
 * connection closes. nats.js repeats `disconnect` and `reconnect` (one per
 * failed attempt whose socket had opened), so only the first of each counts.
 * A server rejecting the client says why in an `error` status; for other
 * failures (refused, TLS) nats.js gives no reason while reconnecting, and an
 * attempt is known to have failed only when the next one begins.
 */
export async function followConnection(nc: NatsConnection, attempts: ConnectAttempts, events: ConnectionEvents): Promise<void> {
  let down = false;
  let rejectedWith: string | undefined;
  /** the reconnect attempt under way, and whether its failure was told */
  let attempt: { server: string; told: boolean } | undefined;
  const failed = (reason: string) => {
    events.attemptFailed(attempt!.server, reason, attempts.reconnectDelayHandler());
    attempt!.told = true;
  };
  for await (const status of nc.status()) {
    if (status.type === Events.Disconnect) {
      if (down) continue;
      down = true;
      events.lost(rejectedWith);
      rejectedWith = undefined;
    } else if (status.type === DebugEvents.Reconnecting) {
      if (attempt && !attempt.told) failed('connection failed (refused, unreachable or TLS)');
      attempts.failures++;
      attempt = { server: String(status.data), told: false };
    } else if (status.type === Events.Error) {
      const reason = describeStatusError(status.data);
      if (!reason) continue;
      if (attempt && !attempt.told) failed(reason);
      else if (!down) {
        rejectedWith = reason;
        events.rejected(reason);
      }
    } else if (status.type === Events.Reconnect) {
      if (!down) continue;
      down = false;
      attempts.failures = 0;
      attempt = undefined;
      events.reconnected();
    }
  }
}
