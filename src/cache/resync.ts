/**
 * Throttled resynchronization: after a `system.reset` or a NATS reconnect
 * the cache re-gets what it holds, and thousands of resources at once would
 * flood the services that own them (the re-get storms Resgate users met).
 * One queue per cache takes every entry due for a re-get, runs at most
 * `concurrency` of them at a time over every reset together, and runs the
 * entries that live results hold before the others: those are what clients
 * are looking at, while an unheld entry is on its way out of the cache.
 * An entry already waiting is not queued twice.
 */
export class ResyncQueue<T> {
  private readonly held: T[] = [];
  private readonly unheld: T[] = [];
  /** entries waiting or running, and who waits for them */
  private readonly due = new Map<T, { done: Promise<void>; resolve: () => void }>();
  private running = 0;

  /**
   * `resync` must not reject (it logs its own failures); `isHeld` says
   * whether a live result holds an entry when it is queued.
   */
  constructor(
    private readonly concurrency: number,
    private readonly resync: (item: T) => Promise<void>,
    private readonly isHeld: (item: T) => boolean,
  ) {}

  /** Queues the items; resolves once every one of them has been re-got. */
  add(items: readonly T[]): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const item of items) {
      let entry = this.due.get(item);
      if (!entry) {
        let resolve!: () => void;
        const done = new Promise<void>((r) => (resolve = r));
        entry = { done, resolve };
        this.due.set(item, entry);
        (this.isHeld(item) ? this.held : this.unheld).push(item);
      }
      waits.push(entry.done);
    }
    this.pump();
    return Promise.all(waits).then(() => undefined);
  }

  private pump(): void {
    while (this.running < this.concurrency) {
      const item = this.held.shift() ?? this.unheld.shift();
      if (item === undefined) return;
      this.running++;
      void this.resync(item).finally(() => {
        this.running--;
        this.due.get(item)?.resolve();
        this.due.delete(item);
        this.pump();
      });
    }
  }
}
