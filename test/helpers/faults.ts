/**
 * Tools for the fault tests (test/faults/): hostile payloads, and a watch
 * on the process for the exceptions and rejections nobody caught, which
 * would end a gateway in production.
 */

/** JSON text nesting objects and arrays `depth` levels deep, built without recursion. */
export function deepJson(depth: number): string {
  const half = Math.floor(depth / 2);
  return '{"a":['.repeat(half) + (depth % 2 ? '{}' : '1') + ']}'.repeat(half);
}

export interface CrashWatch {
  /** what reached the process uncaught, as messages */
  readonly seen: string[];
  stop(): void;
}

/**
 * Records every uncaught exception and unhandled rejection while it runs.
 * vitest reports them as errors too; the record lets a test say which
 * fault caused one.
 */
export function watchForCrashes(): CrashWatch {
  const seen: string[] = [];
  const onError = (e: unknown) => seen.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
  return {
    seen,
    stop() {
      process.off('uncaughtException', onError);
      process.off('unhandledRejection', onError);
    },
  };
}
