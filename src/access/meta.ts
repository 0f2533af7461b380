/**
 * The meta of one HTTP exchange: what the replies to a connection's access,
 * call and auth requests said about its HTTP response (res/meta.ts), kept
 * until the response is written. Only connections with an HTTP response of
 * their own collect it, and only their requests say `isHttp` (the protocol
 * tells services and gateways to ignore meta otherwise).
 *
 * When several replies carry meta, call outranks access, which outranks auth
 * (RES service protocol, "Meta object"). The first 3XX/4XX/5XX status stops
 * the exchange: later requests are not sent, they fail with its error.
 */
import { isDirectStatus, mergeMeta, statusError, type ResponseMeta } from '../res/meta.js';
import { ResError, type Response } from '../res/protocol.js';

export type MetaSource = 'auth' | 'access' | 'call';

/** What a response must become: its status and the headers to merge into it. */
export interface MetaAnswer {
  /** the status to answer with, when meta overrides the default */
  status?: number;
  /** a 3XX: the response is sent without content */
  redirect: boolean;
  header: Record<string, string[]>;
}

export class ResponseMetaCollector {
  private readonly bySource: Record<MetaSource, ResponseMeta | undefined> = { auth: undefined, access: undefined, call: undefined };
  /** set by the first reply with a 3XX/4XX/5XX status: the error every later request of the exchange fails with */
  stopped: ResError | undefined;

  /** Notes a reply's meta; returns the error the reply stands for if its status is 4XX/5XX (the reply's own error, else one matching the status). */
  add(source: MetaSource, meta: ResponseMeta | undefined, error?: ResError): ResError | undefined {
    if (!meta) return undefined;
    this.bySource[source] = mergeMeta(this.bySource[source], meta);
    if (!isDirectStatus(meta)) return undefined;
    const stop = error ?? statusError(meta.status);
    this.stopped ??= stop;
    return meta.status >= 400 ? stop : undefined;
  }

  /** Notes a reply's meta and returns the reply, or throws the error its 4XX/5XX status stands for. */
  reply<R extends Response>(source: MetaSource, reply: R): R {
    const error = this.add(source, reply.meta, reply.kind === 'error' ? reply.error : undefined);
    if (error) throw error;
    return reply;
  }

  /** Notes the meta of an error reply thrown as a ResError. */
  thrown(source: MetaSource, e: unknown): void {
    if (ResError.is(e)) this.add(source, e.meta, e);
  }

  /** Everything collected, merged by priority; undefined when no reply had meta. */
  get merged(): ResponseMeta | undefined {
    return mergeMeta(mergeMeta(this.bySource.auth, this.bySource.access), this.bySource.call);
  }

  /** How the response must change, or undefined when it goes out as it is. */
  answer(): MetaAnswer | undefined {
    const meta = this.merged;
    if (!meta) return undefined;
    return { status: meta.status, redirect: isDirectStatus(meta) && meta.status < 400, header: meta.header ?? {} };
  }
}
