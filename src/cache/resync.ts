/**
 * Throttled resynchronization: after a `system.reset` or a NATS reconnect
 * the cache re-gets what it holds, and thousands of resources at once would
 * flood the services that own them (the re-get storms Resgate users met).
 * One queue per cache takes every entry due for a re-get, runs at most
 * `concurrency` of them at a time over every reset together, and runs the
 * entries that live results hold before the others: those are what clients
 * are looking at, while an unheld entry is on its way out of the cache.
 * An entry already waiting is not queued twice; one added while its re-get
 * runs is queued again after it, since that re-get may have been answered
 * before the change that made it due again.
 */
/** One queued re-get of an item, and who waits for it. */
interface Due {
  done: Promise<void>;
  resolve: () => void;
  running: boolean;
  /** added again while running: the re-get to do after this one */
  again?: Due;
}

function newDue(): Due {
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  return { done, resolve, running: false };
}

export class ResyncQueue<T> {
  private readonly held: T[] = [];
  private readonly unheld: T[] = [];
  /** items waiting or running */
  private readonly due = new Map<T, Due>();
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
      let due = this.due.get(item);
      if (due?.running) {
        due.again ??= newDue();
        due = due.again;
      } else if (!due) {
        due = newDue();
        this.enqueue(item, due);
      }
      waits.push(due.done);
    }
    this.pump();
    return Promise.all(waits).then(() => undefined);
  }

  private enqueue(item: T, due: Due): void {
    this.due.set(item, due);
    (this.isHeld(item) ? this.held : this.unheld).push(item);
  }

  private pump(): void {
    while (this.running < this.concurrency) {
      const item = this.held.shift() ?? this.unheld.shift();
      if (item === undefined) return;
      const due = this.due.get(item)!;
      due.running = true;
      this.running++;
      void this.resync(item).finally(() => {
        this.running--;
        this.due.delete(item);
        due.resolve();
        if (due.again) this.enqueue(item, due.again);
        this.pump();
      });
    }
  }
}
