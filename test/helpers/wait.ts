/**
 * Bounded waiting for tests: poll a condition, await a cache entry change,
 * or put a deadline on a promise. Never a fixed sleep.
 */
import type { EntryChange, Lease, ResourceCache } from '../../src/cache/cache.js';

/** Resolves with the first truthy value of `fn`, polled every few ms; rejects after `timeoutMs`. */
export async function waitFor<T>(fn: () => T | Promise<T>, timeoutMs = 2000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Rejects if `p` has not settled within `timeoutMs`. */
export function withTimeout<T>(p: Promise<T>, timeoutMs = 2000, what = 'promise'): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
    }),
  ]);
}

/**
 * Resolves with the next change the cache applies to a loaded rid, heard by
 * a lease that holds it until then (call it before publishing the event).
 * Rejects if the rid is not loaded or nothing changes within `timeoutMs`.
 */
export function nextEntryChange(cache: ResourceCache, rid: string, timeoutMs = 2000): Promise<EntryChange> {
  if (!cache.peek(rid)) return Promise.reject(new Error(`${rid} is not cached`));
  let lease: Lease | undefined;
  const changed = new Promise<EntryChange>((resolve) => {
    lease = cache.newLease((_e, change) => resolve(change));
    lease.hold(rid);
  });
  return withTimeout(changed, timeoutMs, `a change of ${rid}`).finally(() => lease?.release());
}

/** A promise with its resolve function, to hold a service handler until a test lets it go. */
export function gate<T = void>(): { promise: Promise<T>; open: (v: T) => void } {
  let open!: (v: T) => void;
  const promise = new Promise<T>((r) => (open = r));
  return { promise, open };
}
