/**
 * Client-side views of `@live` results for tests: a LiveView follows any
 * async iterable of results (for a patch stream, the n1ru4l helper's output)
 * and lets a test await a condition on the newest result, woken by each
 * result rather than by polling. RawLiveSocket speaks graphql-transport-ws
 * over a bare `ws` socket, so a test can see the exact frames the gateway
 * sends and their sizes.
 */
import WebSocket from 'ws';
import { ResultStream, wsUrl, type StreamResult } from './live-client.js';

/** A deterministic PRNG (mulberry32): the same seed gives the same sequence, so failures reproduce. */
export function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Passes a source through unchanged, recording every item (the payloads as they came off the wire). */
export async function* tap<T>(source: AsyncIterable<T>, into: T[]): AsyncGenerator<T> {
  for await (const item of source) {
    into.push(item);
    yield item;
  }
}

/** A ResultStream as an async iterable that ends when the stream ends. */
export async function* iterateStream(s: ResultStream): AsyncGenerator<StreamResult> {
  for (;;) {
    if (s.pending === 0 && s.done) return;
    try {
      yield await s.next(60_000);
    } catch (e) {
      if (s.done && s.pending === 0) return;
      throw e;
    }
  }
}

/** The newest result of a stream, and a way to await a condition on it. */
export class LiveView {
  readonly results: StreamResult[] = [];
  done = false;
  error: unknown;
  private waiters = new Set<() => void>();

  constructor(source: AsyncIterable<StreamResult>) {
    void this.consume(source);
  }

  get last(): StreamResult | undefined {
    return this.results[this.results.length - 1];
  }

  get data(): any {
    return this.last?.data;
  }

  private async consume(source: AsyncIterable<StreamResult>): Promise<void> {
    try {
      for await (const r of source) {
        this.results.push(r);
        this.notify();
      }
    } catch (e) {
      this.error = e;
    } finally {
      this.done = true;
      this.notify();
    }
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves once `pred` holds for this view; rejects after `timeoutMs`, or if the stream ends or fails first. */
  until(pred: (v: LiveView) => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (pred(this)) finish();
        else if (this.error) finish(new Error(`stream failed while waiting for ${what}: ${String(this.error)}`));
        else if (this.done) finish(new Error(`stream ended while waiting for ${what}; last: ${JSON.stringify(this.last)}`));
      };
      const finish = (err?: Error) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(
        () => finish(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(this.last)}`)),
        timeoutMs,
      );
      this.waiters.add(check);
      check();
    });
  }
}

/** One received `next` frame: its exact text and parsed payload. */
export interface RawFrame {
  raw: string;
  bytes: number;
  payload: any;
}

/** A bare graphql-transport-ws socket running one operation, recording the raw `next` frames. */
export class RawLiveSocket {
  /** the frames as a queue: `next()` waits for the next one, and fails once the socket has closed */
  private readonly stream = new ResultStream<RawFrame>();
  private readonly ws: WebSocket;

  constructor(httpUrl: string, query: string, variables?: Record<string, unknown>) {
    this.ws = new WebSocket(wsUrl(httpUrl), 'graphql-transport-ws');
    this.ws.on('open', () => this.ws.send(JSON.stringify({ type: 'connection_init' })));
    this.ws.on('message', (data: Buffer) => {
      const raw = data.toString('utf8');
      const msg = JSON.parse(raw);
      if (msg.type === 'connection_ack') this.ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query, variables } }));
      else if (msg.type === 'ping') this.ws.send(JSON.stringify({ type: 'pong' }));
      else if (msg.type === 'next') this.stream.push({ raw, bytes: data.byteLength, payload: msg.payload });
    });
    this.ws.on('close', () => this.stream.end());
  }

  get frames(): RawFrame[] {
    return this.stream.results;
  }

  /** The next `next` frame not yet taken; rejects after `timeoutMs` or if the socket closes first. */
  next(timeoutMs = 3000): Promise<RawFrame> {
    return this.stream.next(timeoutMs);
  }

  get pending(): number {
    return this.stream.pending;
  }

  /** Stops reading the socket (the gateway's writes pile up in the kernel, then in its own buffer). */
  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  dispose(): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ id: '1', type: 'complete' }));
    this.ws.close(1000);
  }
}
