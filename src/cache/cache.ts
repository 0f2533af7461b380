/**
 * ResourceCache owns the gateway's synchronized copy of every resource a
 * client looks at: one entry per rid (state, value, holders), one NATS event
 * subscription per resource name, event application in arrival order, resets
 * (re-get and diff, on `system.reset`) and delayed eviction. It never
 * decides access; it only tells listeners that a `reaccess` arrived or a
 * `system.reset` named access patterns. It is the only owner of who hears
 * about which rid: a Lease made with a listener is told of every change to
 * each rid it holds, from its hold until its release.
 *
 * Rules it implements (see docs/protocol-notes.md#events-between-get-and-subscribe):
 * - subscribe to a name's events before sending its first `get`;
 * - events that arrive while a `get` is pending are already in its response:
 *   drop them (a `reaccess` is passed on after the response);
 * - concurrent loads of one rid share one pending `get`;
 * - an event that does not fit the cached state is a service bug: log it and
 *   re-get the resource rather than corrupt the cache; a fresh value of the
 *   other kind (a collection for a cached model) is logged and dropped;
 * - a service's system.notFound for a query request or a reset get means the
 *   resource is gone, as a `delete` event would; no responder does not.
 *
 * Its timers and the promises it starts on its own (resets, query
 * requests) log their failures: none may reject unheard or throw out of a
 * timer, where it would end the process.
 */
import type { Subscription } from 'nats';
import { errorText, type Logger } from '../log.js';
import { ResyncQueue } from './resync.js';
import type { ResClient } from '../res/client.js';
import {
  ErrorCode,
  internalError,
  NoRespondersError,
  ResError,
  isValidResourceName,
  joinRid,
  matchesPattern,
  notFound,
  parseAddEvent,
  parseChangeEvent,
  parseQueryEvent,
  parseQueryReply,
  parseRemoveEvent,
  parseSystemReset,
  reservedEvents,
  splitRid,
  subjects,
  valuesEqual,
  type ChangeValues,
  type Collection,
  type GetResult,
  type Model,
  type ResValue,
} from '../res/protocol.js';
import { diffCollection, diffModel } from './diff.js';
import { defaults } from '../config/defaults.js';

export type EntryState = 'loading' | 'ready' | 'error' | 'deleted';

/** What happened to an entry, as told to the leases that hold it. */
export type EntryChange =
  | { type: 'change'; values: ChangeValues }
  | { type: 'add'; idx: number; value: ResValue }
  | { type: 'remove'; idx: number }
  | { type: 'delete' };

/**
 * Told of a change to an entry a lease holds. `eventAt` is performance.now()
 * when the NATS message behind the change arrived (for a change a reset's or
 * a query request's reply brought: when that reply was applied).
 */
export type LeaseListener = (entry: CacheEntry, change: EntryChange, eventAt: number) => void;

export class CacheEntry {
  state: EntryState = 'loading';
  kind: 'model' | 'collection' | undefined;
  model: Model | undefined;
  collection: Collection | undefined;
  error: ResError | undefined;
  /** a get in flight (first load or reset); events meanwhile are dropped */
  inFlightGet: Promise<void> | undefined;
  /** a `reaccess` that arrived while a get was pending */
  reaccessAfterGet = false;
  /** a reset that arrived while a get was pending: that get's reply may predate what the reset announces */
  resetAfterGet = false;
  /**
   * Events that arrived after the pending get's reply but before its value was
   * stored (the reply's promise settles microtasks after NATS delivered it, and
   * NATS delivers every message of one read first). They are not in the reply,
   * so they are applied after it; undefined until the reply arrives.
   */
  deferred: (() => void)[] | undefined;
  evictTimer: NodeJS.Timeout | undefined;

  constructor(
    /** changes only when the service normalizes a query (see ResourceCache.rekey) */
    public rid: string,
    readonly name: string,
    public query: string | undefined,
  ) {}

  /** The value as the service would send it: for tests and diagnostics. */
  get value(): Model | Collection | undefined {
    return this.kind === 'model' ? this.model : this.collection;
  }
}

/** One NATS subscription per resource name, shared by the plain rid and all its query variants. */
interface NameGroup {
  sub: Subscription;
  /** entries by query ('' for the resource without a query) */
  entries: Map<string, CacheEntry>;
  /**
   * rids whose `reaccess` someone must hear though they may not be cached
   * (a soft reference a live result was denied), with how many watch each
   */
  accessWatches: Map<string, number>;
}

export interface ResourceCacheOptions {
  res: ResClient;
  logger: Logger;
  /** How long an entry nobody holds stays cached, in ms. Default: `defaults.evictDelay`. */
  evictDelay?: number;
  /** told about every resource event that arrives (metrics) */
  observer?: EventObserver;
  /** Re-gets a reset or reconnect may have in flight at once (see resync.ts). Default: `defaults.resyncConcurrency`. */
  resyncConcurrency?: number;
}

/** Hears a custom event: the resource name, the event name and its payload. */
export type CustomEventListener = (name: string, event: string, payload: unknown) => void;

/** Hears each resource event as it arrives: its name (`change`, `add`, ...; `custom` for the others). */
export interface EventObserver {
  event(type: string): void;
}

/**
 * A set of rids one holder (an execution, a subscription) keeps in the cache,
 * and the holder's watch on them: its listener, if it has one, hears every
 * change to a rid from the moment `hold` returns (also while the rid is still
 * loading) until `release` or `retainOnly` lets go of it. Holding twice
 * through one lease counts once; `release` lets go of all.
 */
export class Lease {
  readonly rids = new Set<string>();
  /** rids whose `reaccess` events this lease listens for (see ResourceCache.watchAccess) */
  private readonly accessRids = new Set<string>();
  constructor(
    private readonly cache: ResourceCache,
    readonly onChange: LeaseListener | undefined,
  ) {}

  /** Listens for the rid's `reaccess` until released, whether or not the resource gets cached. */
  watchAccess(rid: string): void {
    if (this.accessRids.has(rid)) return;
    this.accessRids.add(rid);
    this.cache.watchAccess(rid);
  }

  hold(rid: string): void {
    if (this.rids.has(rid)) return;
    this.rids.add(rid);
    this.cache.hold(rid, this);
  }

  /** Lets go of one rid (one a live result no longer shows). */
  drop(rid: string): void {
    if (this.rids.delete(rid)) this.cache.release(rid, this);
  }

  /** Keeps only the rids in `keep`, releasing the others. */
  retainOnly(keep: Set<string>): void {
    for (const rid of this.rids) {
      if (!keep.has(rid)) {
        this.rids.delete(rid);
        this.cache.release(rid, this);
      }
    }
  }

  release(): void {
    for (const rid of this.rids) this.cache.release(rid, this);
    this.rids.clear();
    for (const rid of this.accessRids) this.cache.unwatchAccess(rid);
    this.accessRids.clear();
  }

  /** Passes what this lease holds and watches to `to` (held there first, so nothing is let go between), then releases it. */
  handOver(to: Lease): void {
    for (const rid of this.rids) to.hold(rid);
    for (const rid of this.accessRids) to.watchAccess(rid);
    this.release();
  }
}

export class ResourceCache {
  readonly evictDelay: number;
  private readonly res: ResClient;
  private readonly log: Logger;
  private readonly groups = new Map<string, NameGroup>();
  /** every entry by rid */
  private readonly entries = new Map<string, CacheEntry>();
  /** requested query rids that the service normalized to another rid */
  private readonly aliases = new Map<string, string>();
  /**
   * The leases that hold each rid, with how many of each lease's rids name it
   * (two query strings a service normalizes to one); kept apart from entries
   * so a hold can precede the load. A change is told to these leases only.
   */
  private readonly holders = new Map<string, Map<Lease, number>>();
  private readonly reaccessListeners = new Set<(rid: string) => void>();
  private readonly unheardListeners = new Set<(rid: string) => void>();
  private readonly accessResetListeners = new Set<(patterns: string[]) => void>();
  private readonly customEventListeners = new Set<CustomEventListener>();
  private readonly observer: EventObserver | undefined;
  private readonly resync: ResyncQueue<CacheEntry>;

  constructor(opts: ResourceCacheOptions) {
    this.res = opts.res;
    this.log = opts.logger;
    this.evictDelay = opts.evictDelay ?? defaults.evictDelay;
    this.observer = opts.observer;
    this.resync = new ResyncQueue(opts.resyncConcurrency ?? defaults.resyncConcurrency, (e) => this.resyncEntry(e), (e) => this.isHeld(e.rid));
  }

  /** Number of cached entries and NATS event subscriptions (for metrics and leak tests). */
  get stats(): { entries: number; subscriptions: number; held: number } {
    return { entries: this.entries.size, subscriptions: this.groups.size, held: this.holders.size };
  }

  /** How many custom event listeners are subscribed (for leak tests). */
  get customEventListenerCount(): number {
    return this.customEventListeners.size;
  }

  /** A lease; with `onChange`, it hears every change to the rids it holds (see Lease). */
  newLease(onChange?: LeaseListener): Lease {
    return new Lease(this, onChange);
  }

  /** Hears each `reaccess` event for a cached rid, or one a lease watches (Lease.watchAccess). */
  onReaccess(listener: (rid: string) => void): () => void {
    return subscribe(this.reaccessListeners, listener);
  }

  /**
   * Hears when the cache stops hearing a rid's events (evicted, and no lease
   * watches its access): a verdict kept for it could no longer be withdrawn
   * by a `reaccess`, so it must be forgotten.
   */
  onUnheard(listener: (rid: string) => void): () => void {
    return subscribe(this.unheardListeners, listener);
  }

  /** Hears the resource name patterns of a `system.reset`'s `access`: verdicts for them must be asked again. */
  onAccessReset(listener: (patterns: string[]) => void): () => void {
    return subscribe(this.accessResetListeners, listener);
  }

  /** Hears every custom event (resource name, event name, payload) of a resource name the cache subscribes to. */
  onCustomEvent(listener: CustomEventListener): () => void {
    return subscribe(this.customEventListeners, listener);
  }

  /** The entry for a rid if it is loaded and current; no request is sent. */
  peek(rid: string): CacheEntry | undefined {
    const e = this.entries.get(this.aliases.get(rid) ?? rid);
    return e && e.state === 'ready' && e.inFlightGet === undefined ? e : undefined;
  }

  /**
   * The ready entry for a rid, loading it when needed; concurrent calls share
   * one `get`. Rejects with the service's ResError (e.g. system.notFound).
   */
  async load(rid: string): Promise<CacheEntry> {
    const known = this.entries.get(this.aliases.get(rid) ?? rid);
    if (known) {
      if (known.inFlightGet) await known.inFlightGet;
      if (known.state === 'ready') return this.entries.get(known.rid) ?? known;
      if (known.state === 'error') return this.resultOf(known);
      // deleted meanwhile: ask again
      return this.load(rid);
    }
    const { name, query } = splitRid(rid);
    if (!isValidResourceName(name)) throw new ResError(ErrorCode.invalidParams, `Invalid resource ID: ${rid}`);
    const entry = new CacheEntry(rid, name, query);
    this.insert(entry);
    entry.inFlightGet = this.fetchInto(entry);
    await entry.inFlightGet;
    return this.resultOf(entry);
  }

  /** Called by Lease.hold only: the lease hears the rid's changes from now on. */
  hold(rid: string, lease: Lease): void {
    const key = this.aliases.get(rid) ?? rid;
    let leases = this.holders.get(key);
    if (!leases) this.holders.set(key, (leases = new Map()));
    leases.set(lease, (leases.get(lease) ?? 0) + 1);
    const e = this.entries.get(key);
    if (e?.evictTimer) {
      clearTimeout(e.evictTimer);
      e.evictTimer = undefined;
    }
  }

  /** Called by Lease only: the lease no longer hears the rid. */
  release(rid: string, lease: Lease): void {
    const key = this.aliases.get(rid) ?? rid;
    const leases = this.holders.get(key);
    const n = leases?.get(lease);
    if (!leases || n === undefined) return;
    if (n > 1) leases.set(lease, n - 1);
    else leases.delete(lease);
    if (leases.size > 0) return;
    this.holders.delete(key);
    const e = this.entries.get(key);
    if (e) this.scheduleEviction(e);
    else this.dropAliasesOf(key);
  }

  /**
   * Keeps the rid's event subscription while its verdicts matter: a
   * `reaccess` for it reaches the reaccess listeners even when the resource
   * is not cached (denied, so never loaded) or not yet (its access request
   * is in flight). The subscription is made before the caller asks for
   * access, so a reaccess published after the service answered is heard.
   * A failure to subscribe (NATS down) is logged: a reconnect re-checks
   * access anyway.
   */
  watchAccess(rid: string): void {
    const { name } = splitRid(rid);
    let group: NameGroup;
    try {
      group = this.groupFor(name);
    } catch (e) {
      this.log.warn('cannot watch access events', { rid, error: errorText(e) });
      return;
    }
    group.accessWatches.set(rid, (group.accessWatches.get(rid) ?? 0) + 1);
  }

  unwatchAccess(rid: string): void {
    const { name } = splitRid(rid);
    const group = this.groups.get(name);
    const n = group?.accessWatches.get(rid);
    if (!group || n === undefined) return;
    if (n > 1) {
      group.accessWatches.set(rid, n - 1);
      return;
    }
    group.accessWatches.delete(rid);
    this.dropGroupIfUnused(name, group);
    if (!this.entries.has(rid)) this.tellUnheard(rid);
  }

  private tellUnheard(rid: string): void {
    for (const l of this.unheardListeners) l(rid);
  }

  private dropGroupIfUnused(name: string, group: NameGroup): void {
    if (group.entries.size > 0 || group.accessWatches.size > 0) return;
    group.sub.unsubscribe();
    this.groups.delete(name);
  }

  /** Whether any lease holds a rid (a rid's holders are dropped with its last hold). */
  isHeld(rid: string): boolean {
    return this.holders.has(rid);
  }

  /** How many holds leases have on a rid (for tests and diagnostics: it walks the rid's leases). */
  holdsOf(rid: string): number {
    let n = 0;
    for (const holds of this.holders.get(rid)?.values() ?? []) n += holds;
    return n;
  }

  /**
   * Subscribes to `system.reset` (docs/protocol-notes.md#system-reset): its
   * `access` patterns go to the access reset listeners first, then the
   * matching cached resources are re-got. To be called once the ResClient
   * is attached, before any request; nats.js renews it after a reconnect.
   */
  listenForResets(): void {
    this.res.subscribe(subjects.systemReset, (subject, payload) => {
      const reset = this.res.parseMessage(subject, payload, parseSystemReset);
      if (!reset) return;
      if (reset.access.length > 0) for (const l of this.accessResetListeners) l(reset.access);
      if (reset.resources.length > 0) void this.resetMatching(reset.resources); // never rejects
    });
  }

  /** Re-gets every cached resource whose name matches one of the patterns, and applies the difference; never rejects. */
  resetMatching(patterns: string[]): Promise<void> {
    const matching = [...this.entries.values()].filter((e) => patterns.some((p) => matchesPattern(p, e.name)));
    return this.resetEntries(matching);
  }

  /** Re-gets every cached resource (after a NATS reconnect, events may have been lost); never rejects. */
  resetAll(): Promise<void> {
    return this.resetEntries([...this.entries.values()]);
  }

  /** Names of cached resources, for re-checking access by pattern. */
  cachedRids(): string[] {
    return [...this.entries.keys()];
  }

  /** Drops every entry and subscription (shutdown). */
  clear(): void {
    for (const e of this.entries.values()) if (e.evictTimer) clearTimeout(e.evictTimer);
    for (const g of this.groups.values()) g.sub.unsubscribe();
    this.groups.clear();
    this.entries.clear();
    this.aliases.clear();
  }

  // --- entries -------------------------------------------------------------

  /** The entry a finished load ended in (a normalized query may have moved it), or its error. */
  private resultOf(entry: CacheEntry): CacheEntry {
    if (entry.state === 'ready') return this.entries.get(entry.rid) ?? entry;
    // A failed get is kept only while someone holds the rid: a live result
    // re-running then sees the same error without asking again (as Resgate
    // keeps it for a subscription's life; a reset asks again). Unheld, the
    // next load asks the service again.
    if (this.entries.get(entry.rid) === entry && !this.isHeld(entry.rid)) this.remove(entry);
    throw entry.error ?? notFound();
  }

  private insert(entry: CacheEntry): void {
    // subscribe first: it throws while NATS is down, and must not leave behind
    // an entry that is 'loading' with no get pending (every later load of the
    // rid would then loop on it)
    const group = this.groupFor(entry.name);
    this.entries.set(entry.rid, entry);
    group.entries.set(entry.query ?? '', entry);
    if (!this.isHeld(entry.rid)) this.scheduleEviction(entry);
  }

  private remove(entry: CacheEntry): void {
    if (entry.evictTimer) clearTimeout(entry.evictTimer);
    entry.evictTimer = undefined;
    if (this.entries.get(entry.rid) === entry) this.entries.delete(entry.rid);
    // leases that still hold the rid release it through its aliases later
    if (!this.isHeld(entry.rid)) this.dropAliasesOf(entry.rid);
    const group = this.groups.get(entry.name);
    if (!group) return;
    if (group.entries.get(entry.query ?? '') === entry) group.entries.delete(entry.query ?? '');
    this.dropGroupIfUnused(entry.name, group);
    if (!group.accessWatches.has(entry.rid)) this.tellUnheard(entry.rid);
  }

  private dropAliasesOf(rid: string): void {
    for (const [alias, target] of this.aliases) if (target === rid) this.aliases.delete(alias);
  }

  private scheduleEviction(entry: CacheEntry): void {
    if (entry.evictTimer) clearTimeout(entry.evictTimer);
    if (entry.state === 'error' && entry.inFlightGet === undefined) {
      // an error is not worth keeping once nobody holds it (see docs/protocol-notes.md#get-errors-are-not-cached)
      this.remove(entry);
      return;
    }
    entry.evictTimer = setTimeout(() => {
      entry.evictTimer = undefined;
      if (this.isHeld(entry.rid)) return;
      try {
        if (entry.inFlightGet === undefined) this.remove(entry);
        else this.scheduleEviction(entry);
      } catch (e) {
        // no service input reaches here; an unsubscribe on a closing NATS connection might
        this.log.error('evicting a resource failed', { rid: entry.rid, error: errorText(e) });
      }
    }, this.evictDelay);
    entry.evictTimer.unref?.();
  }

  private groupFor(name: string): NameGroup {
    let group = this.groups.get(name);
    if (!group) {
      const sub = this.res.subscribe(subjects.events(name), (subject, payload) => {
        const event = subject.slice(subjects.eventPrefix.length + name.length + 1);
        this.observer?.event(reservedEvents.has(event) ? event : 'custom');
        this.onEvent(name, event, payload, performance.now());
      });
      group = { sub, entries: new Map(), accessWatches: new Map() };
      this.groups.set(name, group);
    }
    return group;
  }

  /** Sends the first get for an entry and stores its value (or error). */
  private async fetchInto(entry: CacheEntry): Promise<void> {
    try {
      const result = await this.getFor(entry);
      this.store(entry, result);
    } catch (e) {
      entry.state = 'error';
      entry.error = ResError.is(e) ? e : internalError();
    } finally {
      entry.inFlightGet = undefined;
    }
    this.runDeferred(entry);
    this.afterGet(entry);
  }

  /** Sends a get for an entry, marking synchronously when its reply arrives (see CacheEntry.deferred). */
  private getFor(entry: CacheEntry): Promise<GetResult> {
    entry.deferred = undefined;
    return this.res.get(entry.name, entry.query, { onAnswer: () => (entry.deferred = []) });
  }

  /** Applies the events that arrived after a get's reply, in order, once its value is stored. */
  private runDeferred(entry: CacheEntry): void {
    const deferred = entry.deferred ?? [];
    entry.deferred = undefined;
    for (const apply of deferred) {
      // stop once the entry is gone or re-getting (a later reply holds the rest)
      if (entry.state !== 'ready' || entry.inFlightGet || this.entries.get(entry.rid) !== entry) return;
      apply();
    }
  }

  private store(entry: CacheEntry, result: GetResult): void {
    entry.kind = result.kind;
    if (result.kind === 'model') entry.model = result.value;
    else entry.collection = result.value;
    entry.state = 'ready';
    // Two query strings can name one resource: the normalized query from the
    // service decides the entry (see docs/protocol-notes.md#normalized-queries).
    if (entry.query !== undefined && result.query !== undefined && result.query !== entry.query) {
      this.rekey(entry, result.query);
    }
  }

  /** Moves an entry to the rid of its normalized query, or merges it into an entry already there. */
  private rekey(entry: CacheEntry, normalized: string): void {
    const requested = entry.rid;
    const canonical = joinRid(entry.name, normalized);
    const group = this.groups.get(entry.name)!;
    this.entries.delete(requested);
    group.entries.delete(entry.query ?? '');
    this.aliases.set(requested, canonical);
    // the leases holding the requested rid hear the canonical one's changes from now on
    const moved = this.holders.get(requested);
    const held = moved !== undefined;
    if (moved) {
      this.holders.delete(requested);
      const leases = this.holders.get(canonical);
      if (!leases) this.holders.set(canonical, moved);
      else for (const [lease, n] of moved) leases.set(lease, (leases.get(lease) ?? 0) + n);
    }
    const existing = this.entries.get(canonical);
    if (existing) {
      // keep the entry that is already there; this one was only a second name for it
      if (entry.evictTimer) clearTimeout(entry.evictTimer);
      entry.evictTimer = undefined;
      if (held && existing.evictTimer) {
        clearTimeout(existing.evictTimer);
        existing.evictTimer = undefined;
      }
      entry.rid = canonical;
      return;
    }
    entry.rid = canonical;
    entry.query = normalized;
    this.entries.set(canonical, entry);
    group.entries.set(normalized, entry);
  }

  private afterGet(entry: CacheEntry): void {
    if (entry.reaccessAfterGet) {
      entry.reaccessAfterGet = false;
      for (const l of this.reaccessListeners) l(entry.rid);
    }
    if (entry.resetAfterGet) {
      entry.resetAfterGet = false;
      void this.resetEntries([entry]); // never rejects
    }
  }

  // --- events --------------------------------------------------------------

  private onEvent(name: string, event: string, payload: unknown, eventAt: number): void {
    const group = this.groups.get(name);
    if (!group) return;
    if (event === 'reaccess') {
      for (const entry of group.entries.values()) {
        if (entry.inFlightGet) entry.reaccessAfterGet = true;
        else for (const l of this.reaccessListeners) l(entry.rid);
      }
      for (const rid of group.accessWatches.keys()) {
        if (this.entries.get(rid)?.name === name) continue; // told above, or after its get
        for (const l of this.reaccessListeners) l(rid);
      }
      return;
    }
    if (event === 'query') {
      this.onQueryEvent(name, group, payload);
      return;
    }
    if (!reservedEvents.has(event)) {
      for (const l of this.customEventListeners) l(name, event, payload);
      return;
    }
    const entry = group.entries.get('');
    if (!entry) return;
    if (entry.inFlightGet) {
      // events racing a pending get are already in its response: dropped; those
      // after the response are not, and wait until it is stored (see
      // docs/protocol-notes.md#events-between-get-and-subscribe)
      entry.deferred?.push(() => this.applyEvent(entry, event, payload, eventAt));
      return;
    }
    if (entry.state !== 'ready') return;
    this.applyEvent(entry, event, payload, eventAt);
  }

  /** Applies one model or collection event; returns false when it did not fit. */
  private applyEvent(entry: CacheEntry, event: string, payload: unknown, eventAt: number): boolean {
    try {
      switch (event) {
        case 'change':
          return this.applyChange(entry, parseChangeEvent(payload), eventAt);
        case 'add': {
          const { value, idx } = parseAddEvent(payload);
          return this.applyAdd(entry, idx, value, eventAt);
        }
        case 'remove':
          return this.applyRemove(entry, parseRemoveEvent(payload).idx, eventAt);
        case 'delete':
          this.applyDelete(entry, eventAt);
          return true;
        default:
          return true; // create, unsubscribe and the like carry no state
      }
    } catch (e) {
      this.log.warn('malformed event ignored', { rid: entry.rid, event, reason: (e as Error).message });
      return false;
    }
  }

  private misfit(entry: CacheEntry, event: string, reason: string): false {
    this.log.warn('event does not fit the cached resource; re-getting it', { rid: entry.rid, event, reason });
    void this.resetEntries([entry]); // never rejects
    return false;
  }

  private applyChange(entry: CacheEntry, values: ChangeValues, eventAt: number): boolean {
    const model = entry.model;
    if (entry.kind !== 'model' || !model) return this.misfit(entry, 'change', 'change event on a collection');
    // only properties whose value really changed are reported (see docs/protocol-notes.md#unchanged-values-are-not-changes)
    const changed: ChangeValues = {};
    let any = false;
    for (const [key, value] of Object.entries(values)) {
      if (typeof value === 'object' && value !== null && 'action' in value) {
        if (!(key in model)) continue;
        delete model[key];
      } else {
        if (key in model && valuesEqual(model[key], value)) continue;
        model[key] = value;
      }
      changed[key] = value;
      any = true;
    }
    if (any) this.notify(entry, { type: 'change', values: changed }, eventAt);
    return true;
  }

  private applyAdd(entry: CacheEntry, idx: number, value: ResValue, eventAt: number): boolean {
    const list = entry.collection;
    if (entry.kind !== 'collection' || !list) return this.misfit(entry, 'add', 'add event on a model');
    if (idx < 0 || idx > list.length) return this.misfit(entry, 'add', `idx ${idx} out of range 0..${list.length}`);
    list.splice(idx, 0, value);
    this.notify(entry, { type: 'add', idx, value }, eventAt);
    return true;
  }

  private applyRemove(entry: CacheEntry, idx: number, eventAt: number): boolean {
    const list = entry.collection;
    if (entry.kind !== 'collection' || !list) return this.misfit(entry, 'remove', 'remove event on a model');
    if (idx < 0 || idx >= list.length) return this.misfit(entry, 'remove', `idx ${idx} out of range 0..${list.length - 1}`);
    list.splice(idx, 1);
    this.notify(entry, { type: 'remove', idx }, eventAt);
    return true;
  }

  private applyDelete(entry: CacheEntry, eventAt: number): void {
    entry.state = 'deleted';
    entry.error = notFound();
    this.notify(entry, { type: 'delete' }, eventAt);
    // the next load asks the service again; holders heard it through their lease
    this.remove(entry);
  }

  /**
   * Tells the leases holding the entry's rid of a change: the hot path of
   * every fan-out, so it walks that rid's holders only, without copying
   * them. A lease released by a listener meanwhile is not told (a Map
   * iteration skips deleted keys); one a listener adds is (it holds the
   * rid by then).
   */
  private notify(entry: CacheEntry, change: EntryChange, eventAt: number): void {
    const leases = this.holders.get(entry.rid);
    if (!leases) return;
    for (const lease of leases.keys()) {
      if (!lease.onChange) continue;
      try {
        lease.onChange(entry, change, eventAt);
      } catch (e) {
        this.log.error('lease listener failed', { rid: entry.rid, error: (e as Error).message });
      }
    }
  }

  // --- query resources -----------------------------------------------------

  /**
   * A query resource may have changed: ask the service, per cached query of
   * this name, what changed (see docs/protocol-notes.md#query-events).
   */
  private onQueryEvent(name: string, group: NameGroup, payload: unknown): void {
    let subject: string;
    try {
      subject = parseQueryEvent(payload).subject;
    } catch (e) {
      this.log.warn('malformed event ignored', { rid: name, event: 'query', reason: (e as Error).message });
      return;
    }
    for (const entry of group.entries.values()) {
      if (entry.query === undefined) continue;
      if (entry.inFlightGet) {
        // as in onEvent: only a query event after the get's reply is news to it
        entry.deferred?.push(() => this.runInBackground(this.requestQueryUpdate(entry, subject), entry.rid, 'query request'));
        continue;
      }
      if (entry.state !== 'ready') continue;
      this.runInBackground(this.requestQueryUpdate(entry, subject), entry.rid, 'query request');
    }
  }

  /**
   * Asks what changed in a query resource and applies it. A service's
   * system.notFound means the query resource is gone: it is deleted, which
   * ends the streams that show it (Resgate sends it a `delete`).
   */
  private async requestQueryUpdate(entry: CacheEntry, subject: string): Promise<void> {
    let reply;
    try {
      reply = parseQueryReply(await this.res.queryRequest(subject, entry.query!));
    } catch (e) {
      if (isServiceNotFound(e) && entry.state === 'ready' && !entry.inFlightGet) {
        this.applyDelete(entry, performance.now());
        return;
      }
      this.log.warn('query request failed', { rid: entry.rid, subject, reason: (e as Error).message });
      return;
    }
    if (entry.state !== 'ready') return;
    const appliedAt = performance.now();
    if (reply.kind === 'events') {
      for (const { event, data } of reply.events) {
        if (!this.applyEvent(entry, event, data, appliedAt)) return;
      }
    } else if (reply.kind === 'value') {
      this.applyDifference(entry, reply.value, appliedAt);
    }
  }

  /** Lets a promise run on its own; a failure is logged, never left to reject unheard. */
  private runInBackground(work: Promise<unknown>, rid: string, what: string): void {
    work.catch((e: unknown) => this.log.error(`${what} failed`, { rid, error: errorText(e) }));
  }

  // --- resets --------------------------------------------------------------

  /**
   * Re-gets the entries through the throttled queue (resync.ts); never
   * rejects. An entry whose get is in flight is re-got once that get is
   * done: the service may have answered it before the change the reset
   * announces (a reply and a reset race on separate subjects).
   */
  private resetEntries(entries: CacheEntry[]): Promise<void> {
    const due: CacheEntry[] = [];
    for (const e of entries) {
      if (e.inFlightGet) e.resetAfterGet = true;
      else if (e.state === 'ready' || e.state === 'error') due.push(e);
    }
    return this.resync.add(due);
  }

  /** One queued re-get: skipped if the entry left the cache while it waited; a failure is logged. */
  private async resyncEntry(entry: CacheEntry): Promise<void> {
    if (this.entries.get(entry.rid) !== entry) return;
    try {
      await this.resetEntry(entry);
    } catch (e) {
      this.log.error('resetting a resource failed', { rid: entry.rid, error: errorText(e) });
    }
  }

  private async resetEntry(entry: CacheEntry): Promise<void> {
    if (entry.inFlightGet) return entry.inFlightGet;
    if (entry.state === 'error') return this.retryFailed(entry);
    const reget = (async () => {
      let result: GetResult | undefined;
      try {
        result = await this.getFor(entry);
      } catch (e) {
        if (isServiceNotFound(e)) {
          entry.inFlightGet = undefined;
          this.applyDelete(entry, performance.now());
          return;
        }
        this.log.warn('reset get failed; keeping the cached value', { rid: entry.rid, reason: (e as Error).message });
      } finally {
        entry.inFlightGet = undefined;
      }
      if (result) this.applyDifference(entry, result, performance.now());
      this.runDeferred(entry);
      this.afterGet(entry);
    })();
    entry.inFlightGet = reget;
    return reget;
  }

  /** Asks again for a held resource whose get failed; its holders hear when it is there now. */
  private retryFailed(entry: CacheEntry): Promise<void> {
    const retry = (async () => {
      try {
        this.store(entry, await this.getFor(entry));
        entry.error = undefined;
      } catch (e) {
        entry.error = ResError.is(e) ? e : entry.error;
        return;
      } finally {
        entry.inFlightGet = undefined;
      }
      this.notify(entry, { type: 'change', values: {} }, performance.now());
      this.runDeferred(entry);
      this.afterGet(entry);
    })();
    entry.inFlightGet = retry;
    return retry;
  }

  /** Applies the difference between the cached value and a fresh one as events. */
  private applyDifference(entry: CacheEntry, fresh: GetResult, eventAt: number): void {
    if (entry.state !== 'ready') return;
    if (fresh.kind !== entry.kind) {
      // A resource never changes kind: a service that says so is broken.
      // Keep what clients have and send nothing, as Resgate does.
      this.log.warn('fresh value of another kind ignored; keeping the cached value', {
        rid: entry.rid,
        cached: entry.kind,
        got: fresh.kind,
      });
      return;
    }
    if (fresh.kind === 'model') {
      const values = diffModel(entry.model ?? {}, fresh.value);
      if (values) this.applyChange(entry, values, eventAt);
      return;
    }
    for (const edit of diffCollection(entry.collection ?? [], fresh.value)) {
      if (edit.op === 'add') this.applyAdd(entry, edit.idx, edit.value, eventAt);
      else this.applyRemove(entry, edit.idx, eventAt);
    }
  }
}

/** Adds a listener to a set; the function returned removes it. */
function subscribe<L>(listeners: Set<L>, listener: L): () => void {
  listeners.add(listener);
  return () => void listeners.delete(listener);
}

/** A service's own system.notFound, as opposed to no service answering (see NoRespondersError). */
function isServiceNotFound(e: unknown): boolean {
  return ResError.is(e) && e.code === ErrorCode.notFound && !(e instanceof NoRespondersError);
}
