/**
 * Real graphql-ws and SSE clients for tests, wrapped so a test can await the
 * next result of a stream (with a timeout) and assert that nothing else came.
 */
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

export interface StreamResult {
  data?: any;
  errors?: { message: string; path?: (string | number)[]; extensions?: { code?: string; data?: unknown } }[];
}

/** A stream's results as a queue: `next()` waits for the next one, `completed` resolves at the end. */
export class ResultStream<T = StreamResult> {
  readonly results: T[] = [];
  private taken = 0;
  private waiter: (() => void) | undefined;
  done = false;
  error: unknown;
  readonly completed: Promise<void>;
  private complete!: () => void;
  dispose: () => void = () => undefined;

  constructor() {
    this.completed = new Promise((r) => (this.complete = r));
  }

  push(r: T): void {
    this.results.push(r);
    this.waiter?.();
  }

  end(error?: unknown): void {
    this.done = true;
    this.error = error;
    this.complete();
    this.waiter?.();
  }

  /** The next result not yet taken; rejects after timeoutMs or when the stream ends first. */
  async next(timeoutMs = 3000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (this.taken >= this.results.length) {
      if (this.done) throw new Error(`stream ended${this.error ? `: ${JSON.stringify(this.error)}` : ''} while waiting for a result`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no result within ${timeoutMs} ms (got ${this.results.length})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.results[this.taken++];
  }

  /** Results received but not yet taken. */
  get pending(): number {
    return this.results.length - this.taken;
  }
}

export function wsUrl(httpUrl: string): string {
  return httpUrl.replace(/^http/, 'ws');
}

/** A graphql-ws client whose one socket stays open until dispose: one client is one connection (one cid). */
export function wsClient(httpUrl: string, connectionParams?: Record<string, unknown>): Client {
  return createClient({ url: wsUrl(httpUrl), webSocketImpl: WebSocket, connectionParams, retryAttempts: 0, lazy: false, onNonLazyError: () => undefined });
}

export function subscribeWs(client: Client, query: string, variables?: Record<string, unknown>): ResultStream {
  const s = new ResultStream();
  s.dispose = client.subscribe(
    { query, variables },
    { next: (r) => s.push(r as StreamResult), error: (e) => s.end(e), complete: () => s.end() },
  );
  return s;
}

/**
 * Subscribes over SSE (graphql-yoga's "distinct connections" mode) with fetch, parsing `event: next` frames.
 * `body` replaces the request body `{ query, variables }` (for requests that name their document by hash).
 */
export function subscribeSse(
  httpUrl: string,
  query: string,
  variables?: Record<string, unknown>,
  headers: Record<string, string> = {},
  body: Record<string, unknown> = { query, variables },
): ResultStream {
  const s = new ResultStream();
  const ac = new AbortController();
  s.dispose = () => ac.abort();
  void (async () => {
    try {
      const res = await fetch(httpUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers },
        body: JSON.stringify(body),
        signal: ac.signal,
      });
      const decoder = new TextDecoder();
      let buf = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const event = /^event: (.*)$/m.exec(frame)?.[1];
          const data = frame.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
          if (event === 'next' && data) s.push(JSON.parse(data));
          if (event === 'complete') {
            s.end();
            ac.abort();
            return;
          }
        }
      }
      s.end();
    } catch (e) {
      if (!s.done) s.end((e as Error).name === 'AbortError' ? undefined : e);
    }
  })();
  return s;
}
