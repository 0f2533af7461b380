/**
 * A SchemaBoundStream owns an `@event` stream as graphql-js runs it, across
 * schema reloads: a reload that leaves its operation invalid ends it with a
 * final result (the registry, engine.ts, decides which). Event streams are
 * logs: it passes on every result of its source, nothing coalesced.
 */
import type { DocumentNode, ExecutionResult } from 'graphql';
import { errorText, type Logger } from '../log.js';

/**
 * An `@event` stream as graphql-js runs it, which a schema reload may end
 * with a final result: a `next` waiting for the next event gets that result
 * instead, and then the stream is done.
 */
export class SchemaBoundStream implements AsyncIterableIterator<ExecutionResult> {
  private ended = false;
  private final: ExecutionResult | undefined;

  constructor(
    private readonly source: AsyncIterator<ExecutionResult>,
    readonly document: DocumentNode,
    private readonly untrack: (s: SchemaBoundStream) => void,
    private readonly log: Logger,
  ) {}

  async next(): Promise<IteratorResult<ExecutionResult>> {
    if (!this.ended) {
      const r = await this.source.next();
      if (!this.ended) {
        if (r.done) this.untrack(this);
        return r;
      }
    }
    const value = this.final;
    this.final = undefined;
    return value ? { value, done: false } : { value: undefined, done: true };
  }

  async return(): Promise<IteratorResult<ExecutionResult>> {
    this.ended = true;
    this.final = undefined;
    this.untrack(this);
    await this.source.return?.();
    return { value: undefined, done: true };
  }

  /** Ends the stream after `final`; the source stops (its pending `next` settles as done). */
  end(final: ExecutionResult): void {
    if (this.ended) return;
    this.ended = true;
    this.final = final;
    this.untrack(this);
    this.source.return?.().catch((e: unknown) => this.log.error('ending an event stream failed', { error: errorText(e) }));
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
