/**
 * Apollo's multipart HTTP protocol for subscriptions: what Apollo Client's
 * plain HttpLink speaks for a subscription (and Apollo Router, Cosmo, Hive
 * Router and async-graphql), by the published spec
 * (https://www.apollographql.com/docs/graphos/routing/operations/subscriptions/multipart-protocol).
 * A request whose Accept names `multipart/mixed` with a `subscriptionSpec`
 * gets its stream (a subscription, an `@event` stream or a `@live` query) as
 * parts of one `multipart/mixed;boundary="graphql"` response: each result as
 * `{"payload": <result>}`, a heartbeat `{}` while idle, and a transport error
 * as `{"payload": null, "errors": [...]}` followed by the end.
 *
 * Parsing, validation, context and the live engine are Yoga's pipeline, as
 * for SSE; this module only owns the response format. The body is pulled:
 * the next result is asked of the stream only once the socket took the
 * previous one, so a live stream (which always hands over its newest state)
 * makes a slow reader skip states rather than queue them.
 */
import type { ServerResponse } from 'node:http';
import { GraphQLError, type ExecutionResult } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import { errorText, type Logger } from '../log.js';
import { ErrorCode } from '../res/protocol.js';
import { internalGraphQLError } from '../resolvers/resolvers.js';
import type { ServerContext } from './http.js';
import { defaults } from '../config/defaults.js';

export interface MultipartSubscriptionOptions {
  /** How often a stream with nothing to send gets a heartbeat part, in ms. Default: `defaults.multipartHeartbeat`. */
  heartbeatMs?: number;
  logger: Logger;
}

/** The boundary Apollo's clients and routers use. */
const boundary = 'graphql';
const multipartSubscriptionContentType = `multipart/mixed;boundary="${boundary}";subscriptionSpec="1.0"`;

/** Whether the request's Accept asks for Apollo's multipart subscription protocol. */
function acceptsMultipartSubscription(accept: string | null | undefined): boolean {
  return (accept ?? '').split(',').some((entry) => {
    const [type, ...params] = entry.split(';').map((x) => x.trim().toLowerCase());
    return type === 'multipart/mixed' && params.some((p) => p.startsWith('subscriptionspec='));
  });
}

/** One part: its headers, a blank line, the JSON, then the delimiter that closes it. */
function part(json: string): string {
  return `\r\ncontent-type: application/json; charset=utf-8\r\n\r\n${json}\r\n--${boundary}`;
}

/** The delimiter that ends the body: `--graphql--` (the last part's delimiter already wrote `--graphql`). */
const closeDelimiter = '--\r\n';

function transportError(error: GraphQLError): string {
  return JSON.stringify({ payload: null, errors: [error] });
}

/** A result without Yoga's internal `extensions.http` on its errors. */
function resultJson(result: ExecutionResult): string {
  if (!result.errors?.length) return JSON.stringify(result);
  const errors = result.errors.map((e) => {
    const { http: _internal, ...extensions } = (e.extensions ?? {}) as Record<string, unknown>;
    return { ...e.toJSON(), extensions };
  });
  return JSON.stringify({ ...result, errors });
}

/** The multipart streams that are open, and the Yoga plugin that opens them. */
export class MultipartSubscriptions {
  /** each open stream's response, and how to end it for a restart */
  private readonly open = new Map<ServerResponse, () => void>();
  readonly plugin: Plugin;

  constructor(private readonly opts: MultipartSubscriptionOptions) {
    this.plugin = {
      onResultProcess: ({ request, result, setResultProcessor, serverContext }) => {
        if (!isAsyncIterable(result) || !acceptsMultipartSubscription(request.headers.get('accept'))) return;
        const res = (serverContext as Partial<ServerContext> | undefined)?.res;
        setResultProcessor((r, fetchAPI) => this.respond(r as AsyncIterable<ExecutionResult>, fetchAPI, res), multipartSubscriptionContentType);
      },
    };
  }

  /**
   * The drain: every stream gets a transport error saying the gateway is
   * going away (system.unavailable), then its response ends without the
   * closing delimiter, so the client sees a lost connection, not a finished
   * subscription. Returns the responses it ends: the server need not cut
   * their sockets.
   */
  endForRestart(): Set<ServerResponse> {
    const ending = new Set(this.open.keys());
    for (const end of [...this.open.values()]) end();
    return ending;
  }

  private respond(
    result: AsyncIterable<ExecutionResult>,
    fetchAPI: { ReadableStream: typeof ReadableStream; Response: typeof Response; TextEncoder: typeof TextEncoder },
    res: ServerResponse | undefined,
  ): Response {
    const iterator = result[Symbol.asyncIterator]();
    const encoder = new fetchAPI.TextEncoder();
    const heartbeatMs = this.opts.heartbeatMs ?? defaults.multipartHeartbeat;
    let heartbeat: NodeJS.Timeout | undefined;
    let finished = false;
    const finish = () => {
      if (finished) return false;
      finished = true;
      clearInterval(heartbeat);
      if (res) this.open.delete(res);
      return true;
    };
    const stopIterator = () => void Promise.resolve(iterator.return?.()).catch(() => undefined);
    const body = new fetchAPI.ReadableStream<Uint8Array>({
      start: (controller) => {
        controller.enqueue(encoder.encode(`\r\n--${boundary}`));
        heartbeat = setInterval(() => {
          // a reader that has not taken the last part needs no heartbeat
          if ((controller.desiredSize ?? 0) > 0) controller.enqueue(encoder.encode(part('{}')));
        }, heartbeatMs);
        heartbeat.unref();
        if (!res) return;
        this.open.set(res, () => {
          if (!finish()) return;
          controller.enqueue(encoder.encode(part(transportError(new GraphQLError('The gateway is shutting down; subscribe again', { extensions: { code: ErrorCode.unavailable } })))));
          controller.close();
          stopIterator();
        });
      },
      pull: async (controller) => {
        let next: IteratorResult<ExecutionResult>;
        try {
          next = await iterator.next();
        } catch (e) {
          this.opts.logger.error('multipart subscription failed', { error: errorText(e) });
          if (!finish()) return;
          controller.enqueue(encoder.encode(part(transportError(internalGraphQLError())) + closeDelimiter));
          controller.close();
          return;
        }
        if (finished) return;
        if (!next.done) {
          controller.enqueue(encoder.encode(part(`{"payload":${resultJson(next.value)}}`)));
          return;
        }
        finish();
        controller.enqueue(encoder.encode(closeDelimiter));
        controller.close();
      },
      // the client went away (Yoga's server adapter cancels the body): the live subscription ends now
      cancel: () => {
        if (finish()) stopIterator();
      },
    });
    return new fetchAPI.Response(body, {
      status: 200,
      headers: { 'content-type': multipartSubscriptionContentType, 'cache-control': 'no-cache', connection: 'keep-alive' },
    });
  }
}
