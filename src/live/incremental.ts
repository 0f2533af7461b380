/**
 * Incremental live results. A run records where its result shows each model
 * property it read (ResultReads, filled by the resolvers); a `change` event
 * on such a model is then applied to the last result directly: only the
 * fields that show a changed property are rewritten, with the value
 * execution would give them (the field type's serialization), and the JSON
 * Patch of the update comes from the same rewrite. A `remove` event takes
 * the item out of every list that shows the collection (the reads under
 * later items move up one index, the entries only the removed item showed
 * are handed back for release); an `add` inserts the item into each such
 * list. An added object, and a property shown as an object or a list (a
 * reference swapped, a data value), are completed on their own
 * (subtree.ts), with the selection of the field that shows them, and
 * fetch what they bring into view: such an update waits for the service
 * when the new resources are not cached. The operation is not run again,
 * so an update costs what the change costs, not what the result weighs.
 *
 * Anything it cannot apply exactly goes back to re-execution, with its
 * reason: deleted resources, a leaf property that becomes a reference or a
 * data value, resources shown whole, fields under an error of the result
 * (the errors under list items move with them), a subtree that completes
 * with an error, an added or swapped subtree that a later change of the
 * same batch edits (it already shows that change), and values a field
 * cannot show as they are (one its type rejects, or null for a non-null
 * field, where execution would propagate the null or report an error). The
 * live query adds one of its own: a change after the connection's access
 * verdicts were dropped, which only a run asks again (query.ts).
 */
import { GraphQLError, getNullableType, isLeafType, isNonNullType, type ExecutionResult, type GraphQLLeafType, type GraphQLOutputType, type GraphQLResolveInfo } from 'graphql';
import type { CacheEntry, EntryChange } from '../cache/cache.js';
import { isDeleteAction, type ChangeValues, type ResValue } from '../res/protocol.js';
import { leafListItem, ResourceNode, type Resolvers } from '../resolvers/resolvers.js';
import { segment, type PatchOperation } from './patch.js';
import type { Subtree, SubtreeResolve } from './subtree.js';

/** Why a change was left to re-execution (the `reason` label of resgraph_live_incremental_total). */
export type FallbackReason = 'add' | 'delete' | 'reference' | 'whole' | 'errors' | 'value' | 'access';

type ResponsePath = GraphQLResolveInfo['path'];

/** A field type as a leaf field: its named type and whether it is non-null; null for a field that is not a leaf. */
type LeafField = { type: GraphQLLeafType; nonNull: boolean } | null;

/** What resolves an item of a collection shown as a list of objects, as the run's resolvers did. */
export type ItemResolver = Pick<Resolvers, 'listItem'>;

/** Completes a subtree for an update (subtree.ts, with the live query's context): `resolve` gives a value of `type`, shown by `field`. */
export type SubtreeRunner = (field: GraphQLResolveInfo, type: GraphQLOutputType, resolve: SubtreeResolve) => Subtree | Promise<Subtree>;

/** Field types as leaf fields, worked out once per type (a run asks it for every field it resolves). */
const leafFields = new WeakMap<GraphQLOutputType, LeafField>();

function leafField(returnType: GraphQLOutputType): LeafField {
  let leaf = leafFields.get(returnType);
  if (leaf === undefined) {
    const type = getNullableType(returnType);
    leaf = isLeafType(type) ? { type, nonNull: isNonNullType(returnType) } : null;
    leafFields.set(returnType, leaf);
  }
  return leaf;
}

/** What a recorded read is: a model property shown in a field, a model shown as an object, a collection shown as a list. */
const enum ReadKind {
  property,
  node,
  list,
}

/**
 * Where one run's result shows what it read: each field that shows a model
 * property (the model's entry, the property, the field's path and, when it
 * shows a primitive value as a leaf, its leaf type), each place that shows
 * a model as an object, and each list that shows a collection. A run
 * records one of these for every such field (30,000 for a list of 10,000
 * items of three fields), so they go into parallel arrays without an object
 * each, and are indexed by entry only when a change first asks. A list, and
 * a field that shows a property as something other than a leaf, also keep
 * the field that shows them, from which a new item or value is completed
 * (subtree.ts). A removal applied to the result moves the reads under the
 * removed item's followers and forgets those under the item; an added or
 * swapped subtree brings its own reads, moved to where it goes.
 */
export class ResultReads {
  /** the entry read; undefined once a removal took what showed it out of the result */
  private readonly entries: (CacheEntry | undefined)[] = [];
  private readonly kinds: ReadKind[] = [];
  private readonly props: string[] = [];
  private readonly paths: ResponsePath[] = [];
  /** the field as a leaf, or null when it shows the property as something else (a reference followed, a data value) */
  private readonly leaves: LeafField[] = [];
  /** the field that shows a list or a property that is not a leaf (a list's own item type with it) */
  private readonly fields: (ShownBy | undefined)[] = [];
  private byEntry: Map<CacheEntry, number[]> | undefined;
  /** resources the result shows whole (a model or collection as a JSON value) */
  private readonly whole = new Set<CacheEntry>();
  /** the resolvers that recorded the lists, which resolve an added item the same way */
  private items: ItemResolver | undefined;

  private add(entry: CacheEntry, kind: ReadKind, prop: string, path: ResponsePath, leaf: LeafField, field: ShownBy | undefined): void {
    const i = this.entries.length;
    this.entries.push(entry);
    this.kinds.push(kind);
    this.props.push(prop);
    this.paths.push(path);
    this.leaves.push(leaf);
    this.fields.push(field);
    if (this.byEntry) {
      const list = this.byEntry.get(entry);
      if (list) list.push(i);
      else this.byEntry.set(entry, [i]);
    }
  }

  /** A resolver read `prop` of the model in `entry` for the field at `info.path`; `value` is what the model holds. */
  property(entry: CacheEntry, prop: string, value: unknown, info: GraphQLResolveInfo): void {
    const leaf = leafField(info.returnType);
    if (leaf && isPrimitive(value)) this.add(entry, ReadKind.property, prop, info.path, leaf, undefined);
    else this.add(entry, ReadKind.property, prop, info.path, null, { field: info, type: info.returnType });
  }

  /** The model in `entry` is shown as an object at `path`. */
  node(entry: CacheEntry, path: ResponsePath): void {
    this.add(entry, ReadKind.node, '', path, null, undefined);
  }

  /** The collection in `entry` is shown as a list at `path` by `field`, an item of `itemType` at each index resolved by `items`. */
  list(entry: CacheEntry, path: ResponsePath, itemType: GraphQLOutputType, field: GraphQLResolveInfo, items: ItemResolver): void {
    this.items ??= items;
    this.add(entry, ReadKind.list, '', path, leafField(itemType), { field, type: itemType });
  }

  /** A resolver showed the resource in `entry` as a whole JSON value. */
  wholeResource(entry: CacheEntry): void {
    this.whole.add(entry);
  }

  showsWhole(entry: CacheEntry): boolean {
    return this.whole.has(entry);
  }

  /**
   * The fields that show a property of the entry's model that `hasProp`
   * picks, as they are when the walk starts: a subtree adopted meanwhile
   * (which shows the model as it is now) is not walked.
   */
  *propertiesShowing(entry: CacheEntry, hasProp: (prop: string) => boolean): Generator<{ prop: string; leaf: LeafField; path: ResponsePath; shownBy: ShownBy | undefined }> {
    const end = this.entries.length;
    for (const i of this.index().get(entry) ?? noReads) {
      if (i >= end) break;
      if (this.kinds[i] !== ReadKind.property || this.entries[i] !== entry || !hasProp(this.props[i]!)) continue;
      yield { prop: this.props[i]!, leaf: this.leaves[i]!, path: this.paths[i]!, shownBy: this.fields[i] };
    }
  }

  /**
   * The lists that show the entry's collection: each list's path, and its
   * items as leaf values (their type) or null when they are objects. Each
   * path comes once (a list is recorded twice when graphql-js runs the
   * operation again, compiled.ts), and is read as the walk reaches it, so
   * an edit made for one list moves or drops those after it; the lists of a
   * subtree adopted meanwhile are not walked (it shows the collection as it
   * is now). `items`: the resolvers that resolve an added object item.
   */
  *listsShowing(entry: CacheEntry): Generator<{ keys: (string | number)[]; leaf: LeafField; shownBy: ShownBy | undefined; items: ItemResolver | undefined }> {
    const seen = new Set<string>();
    const end = this.entries.length;
    for (const i of this.index().get(entry) ?? noReads) {
      if (i >= end) break;
      // gone: under an item a removal took out
      if (this.kinds[i] !== ReadKind.list || this.entries[i] !== entry) continue;
      const keys = pathKeys(this.paths[i]!);
      const at = pointer(keys);
      if (seen.has(at)) continue;
      seen.add(at);
      yield { keys, leaf: this.leaves[i]!, shownBy: this.fields[i], items: this.items };
    }
  }

  /** Whether anything the result still shows reads the entry. */
  shows(entry: CacheEntry): boolean {
    return (this.index().get(entry) ?? noReads).some((i) => this.entries[i] === entry);
  }

  /**
   * Item `idx` of the list at `list` was removed (`by` -1) or one was
   * inserted there (`by` 1): the reads under a removed item are forgotten,
   * those under the items after it move. Returns the entries of the
   * forgotten reads. Each read's item index is read off its path without
   * building its keys; only the reads that move get a new path (a path
   * node may be shared by several reads, so none is changed in place).
   */
  moveItems(list: readonly (string | number)[], idx: number, by: 1 | -1): Set<CacheEntry> {
    const gone = new Set<CacheEntry>();
    const depth = list.length;
    for (let i = 0; i < this.entries.length; i++) {
      const entry = this.entries[i];
      if (!entry) continue;
      // the path node of the item the read is under, if it is under an item of this list at or after idx
      const item = nodeAt(this.paths[i]!, depth + 1);
      if (!item || typeof item.key !== 'number' || item.key < idx || !endsWith(item.prev!, list)) continue;
      const k = item.key;
      if (k === idx && by < 0) {
        this.entries[i] = undefined;
        gone.add(entry);
      } else {
        const keys = pathKeys(this.paths[i]!);
        keys[depth] = k + by;
        this.paths[i] = toPath(keys);
      }
    }
    return gone;
  }

  /** Forgets the reads at the path and under it (a value replaced there); returns their entries. */
  forgetUnder(keys: readonly (string | number)[]): Set<CacheEntry> {
    const gone = new Set<CacheEntry>();
    for (let i = 0; i < this.entries.length; i++) {
      const entry = this.entries[i];
      if (!entry || !isUnder(this.paths[i]!, keys)) continue;
      this.entries[i] = undefined;
      gone.add(entry);
    }
    return gone;
  }

  /** Takes in the reads of a subtree (paths from its root field, subtree.ts), at `at`. */
  adopt(sub: ResultReads, at: readonly (string | number)[]): void {
    for (let i = 0; i < sub.entries.length; i++) {
      const entry = sub.entries[i];
      if (!entry) continue;
      const keys = pathKeys(sub.paths[i]!);
      keys.splice(0, 1, ...at);
      this.add(entry, sub.kinds[i]!, sub.props[i]!, toPath(keys), sub.leaves[i]!, sub.fields[i]);
    }
    for (const entry of sub.whole) this.whole.add(entry);
    this.items ??= sub.items;
  }

  private index(): Map<CacheEntry, number[]> {
    if (this.byEntry) return this.byEntry;
    const index = new Map<CacheEntry, number[]>();
    this.entries.forEach((e, i) => {
      if (!e) return;
      const list = index.get(e);
      if (list) list.push(i);
      else index.set(e, [i]);
    });
    return (this.byEntry = index);
  }
}

const noReads: readonly number[] = [];

/** The field that shows a read, and the type of what it shows there (a list's item type, a field's own type). */
interface ShownBy {
  field: GraphQLResolveInfo;
  type: GraphQLOutputType;
}

/** A change heard by a live result, in order. */
export interface HeardChange {
  entry: CacheEntry;
  change: EntryChange;
}

/** The result after the changes, and the JSON Patch from the one before; `ops` is empty when nothing shown changed. */
export interface AppliedChanges {
  result: ExecutionResult;
  ops: PatchOperation[];
  /** entries a removal or a replaced subtree took out of the result that nothing in it shows any more: their holds can go */
  unshown: CacheEntry[];
}

/** What applying changes came to: the result after them, or why the operation must run. */
export type ChangesOutcome = AppliedChanges | FallbackReason;

/** A step of applying changes: a subtree to complete (maybe waiting for the service) before going on. */
type SubtreeStep = Subtree | Promise<Subtree>;

/**
 * Applies changes, in order, to a result whose reads were recorded; the
 * result itself is not modified (the objects on the way to a rewritten
 * field are copied, the rest is shared). Returns why not when it cannot;
 * a promise when a subtree it completes waits for the service (it never
 * rejects). Without `subtrees`, what needs one is left to a run.
 */
export function applyChanges(result: ExecutionResult, reads: ResultReads, changes: readonly HeardChange[], subtrees?: SubtreeRunner): ChangesOutcome | Promise<ChangesOutcome> {
  if (!result.data) return 'errors';
  return drive(changesApplied(result, result.data, reads, changes, subtrees));
}

/** Runs the steps, synchronously while each subtree is, else from the promise of the one that waits. */
function drive(steps: Generator<SubtreeStep, ChangesOutcome, Subtree>, sent?: Subtree): ChangesOutcome | Promise<ChangesOutcome> {
  for (;;) {
    const next = steps.next(sent as Subtree);
    if (next.done) return next.value;
    if (next.value instanceof Promise) return next.value.then((s) => drive(steps, s), () => 'errors' as const);
    sent = next.value;
  }
}

/** What the steps of one batch share. */
interface Batch {
  edit: TreeEdit;
  reads: ResultReads;
  /** the result's errors, moved with the list items they sit under */
  errors: readonly GraphQLError[];
  subtrees: SubtreeRunner | undefined;
  /** entries a removal or a replaced subtree took out of the result: released unless something still shows them */
  removed: Set<CacheEntry>;
  changes: readonly HeardChange[];
  /** the index of the change being applied */
  at: number;
}

function* changesApplied(
  result: ExecutionResult,
  data: Record<string, unknown>,
  reads: ResultReads,
  changes: readonly HeardChange[],
  subtrees: SubtreeRunner | undefined,
): Generator<SubtreeStep, ChangesOutcome, Subtree> {
  const batch: Batch = {
    edit: new TreeEdit(data),
    reads,
    errors: result.errors ?? [],
    subtrees,
    removed: new Set(),
    changes,
    at: 0,
  };
  for (; batch.at < changes.length; batch.at++) {
    const { entry, change } = changes[batch.at]!;
    let stopped: FallbackReason | undefined;
    if (change.type === 'remove') stopped = applyRemove(batch, entry, change.idx);
    else if (change.type === 'add') stopped = yield* applyAdd(batch, entry, change.idx, change.value);
    else if (change.type === 'change') stopped = yield* applyValues(batch, entry, change.values);
    else return change.type;
    if (stopped) return stopped;
  }
  const { edit } = batch;
  const unshown = [...batch.removed].filter((e) => !reads.shows(e));
  if (edit.ops.length === 0) return { result, ops: edit.ops, unshown };
  // the errors stay as they were, but for those under list items that moved or left
  return { result: batch.errors.length > 0 ? { errors: batch.errors, data: edit.root } : { data: edit.root }, ops: edit.ops, unshown };
}

/**
 * Rewrites the fields that show the changed properties: a leaf with the
 * value as its type serializes it; a field that shows a reference or a
 * data value (or a leaf that held one) with the subtree of its new value.
 */
function* applyValues(batch: Batch, entry: CacheEntry, values: ChangeValues): Generator<SubtreeStep, FallbackReason | undefined, Subtree> {
  // no values: an entry whose get had failed was fetched again (a reset): the result shows its error
  if (isEmpty(values)) return 'errors';
  const { edit, reads } = batch;
  if (reads.showsWhole(entry)) return 'whole';
  const changed = (prop: string) => Object.prototype.hasOwnProperty.call(values, prop);
  for (const { prop, leaf, path, shownBy } of reads.propertiesShowing(entry, changed)) {
    const keys = pathKeys(path);
    // an error on the field or above it (a null that propagated) is execution's to undo
    if (batch.errors.some((e) => isPrefix(e.path ?? [], keys))) return 'errors';
    const raw = values[prop];
    const value = isDeleteAction(raw) ? null : raw;
    if (leaf && isPrimitive(value)) {
      const shown = leafValue(leaf.type, leaf.nonNull, value);
      if (shown === undefined) return 'value';
      if (!edit.set(keys, shown)) return 'errors';
      continue;
    }
    // a leaf that becomes a reference or a data value: its field was not kept
    if (!shownBy || !batch.subtrees) return 'reference';
    const resolve = shownBy.field.parentType.getFields()[shownBy.field.fieldName]?.resolve;
    if (!resolve) return 'reference';
    // the field's own resolver, on the model as the cache holds it now
    const parent = new ResourceNode(entry.rid, entry);
    const sub = yield batch.subtrees(shownBy.field, shownBy.type, (ctx, info) => resolve(parent, {}, ctx, info));
    if (typeof sub === 'string') return sub;
    if (editedLater(batch, sub.reads)) return 'reference';
    if (!edit.set(keys, sub.value)) return 'errors';
    for (const e of reads.forgetUnder(keys)) batch.removed.add(e);
    reads.adopt(sub.reads, keys);
  }
  return undefined;
}

/**
 * Inserts an added item into every list that shows the collection: a leaf
 * value as execution would show it, an object (or a list) completed with
 * the list field's selection; the reads under later items move.
 */
function* applyAdd(batch: Batch, entry: CacheEntry, idx: number, value: ResValue): Generator<SubtreeStep, FallbackReason | undefined, Subtree> {
  const { reads } = batch;
  if (reads.showsWhole(entry)) return 'whole';
  for (const { keys, leaf, shownBy, items } of reads.listsShowing(entry)) {
    if (leaf) {
      const item = leafListItem(value, leaf.type.name === 'JSON');
      const shown = isPrimitive(item) ? leafValue(leaf.type, leaf.nonNull, item) : item;
      if (shown === undefined) return 'value';
      if (!insertItem(batch, keys, idx, shown)) return 'errors';
      continue;
    }
    if (!shownBy || !items || !batch.subtrees) return 'add';
    const type = shownBy.type;
    const sub = yield batch.subtrees(shownBy.field, type, (ctx, info) => items.listItem(value, type, ctx, info.path, info));
    if (typeof sub === 'string') return sub;
    if (editedLater(batch, sub.reads)) return 'add';
    if (!insertItem(batch, keys, idx, sub.value)) return 'errors';
    reads.adopt(sub.reads, [...keys, idx]);
  }
  return undefined;
}

/** Inserts an item into the list at `keys`; the reads and errors of the items after it move (an item added last moves none). False when the list is not there. */
function insertItem(batch: Batch, keys: (string | number)[], idx: number, value: unknown): boolean {
  const inserted = batch.edit.insertAt(keys, idx, value);
  if (!inserted) return false;
  if (inserted.followed) {
    batch.reads.moveItems(keys, idx, 1);
    moveErrors(batch, keys, idx, 1);
  }
  return true;
}

/**
 * Whether a later change of the batch adds to or removes from a collection
 * the subtree shows: the subtree was completed from the cache as it is now,
 * so it shows that change already, and applying it again would repeat it.
 * (A later change of values only rewrites what the subtree already shows.)
 */
function editedLater(batch: Batch, sub: ResultReads): boolean {
  for (let i = batch.at + 1; i < batch.changes.length; i++) {
    const { entry, change } = batch.changes[i]!;
    if ((change.type === 'add' || change.type === 'remove') && (sub.shows(entry) || sub.showsWhole(entry))) return true;
  }
  return false;
}

/**
 * Takes item `idx` out of every list that shows the collection, moves the
 * reads under the later items, and notes the entries the removed items
 * showed. The reads are changed in place: when a later change of the same
 * batch cannot be applied, the operation runs and records them afresh.
 */
function applyRemove(batch: Batch, entry: CacheEntry, idx: number): FallbackReason | undefined {
  const { edit, reads } = batch;
  if (reads.showsWhole(entry)) return 'whole';
  for (const { keys } of reads.listsShowing(entry)) {
    if (!edit.removeAt(keys, idx)) return 'errors';
    for (const e of reads.moveItems(keys, idx, -1)) batch.removed.add(e);
    moveErrors(batch, keys, idx, -1);
  }
  return undefined;
}

/**
 * Item `idx` of the list at `list` was removed (`by` -1) or one was
 * inserted there (`by` 1): the errors under a removed item go, those under
 * the items after it move with them (their order stays: execution reports
 * them in the order of the items).
 */
function moveErrors(batch: Batch, list: readonly (string | number)[], idx: number, by: 1 | -1): void {
  const depth = list.length;
  const under = (p: readonly (string | number)[] | undefined): p is readonly (string | number)[] => p !== undefined && p.length > depth && isPrefix(list, p);
  if (!batch.errors.some((e) => under(e.path))) return;
  const moved: GraphQLError[] = [];
  for (const e of batch.errors) {
    const p = e.path;
    if (!under(p)) {
      moved.push(e);
      continue;
    }
    const k = p[depth] as number;
    if (k === idx && by < 0) continue;
    if (k < idx) moved.push(e);
    else moved.push(withPath(e, [...p.slice(0, depth), k + by, ...p.slice(depth + 1)]));
  }
  batch.errors = moved;
}

/** The same error at another path (its locations kept: graphql-jit gives them without the nodes they come from). */
function withPath(e: GraphQLError, path: (string | number)[]): GraphQLError {
  const moved = new GraphQLError(e.message, { nodes: e.nodes, source: e.source, positions: e.positions, path, originalError: e.originalError, extensions: e.extensions });
  if (e.locations && !moved.locations) (moved as { locations: GraphQLError['locations'] }).locations = e.locations;
  return moved;
}

/** What execution would show in a leaf field for a model value; undefined when it would not show it as is. */
function leafValue(type: GraphQLLeafType, nonNull: boolean, value: string | number | boolean | null | undefined): unknown {
  if (value === null || value === undefined) return nonNull ? undefined : null;
  let serialized: unknown;
  try {
    serialized = type.serialize(value);
  } catch {
    return undefined; // execution reports a field error here
  }
  return serialized === null || serialized === undefined ? undefined : serialized;
}

/** Copy-on-write edits of a result tree, recording the JSON Patch as it goes. */
class TreeEdit {
  readonly root: Record<string, unknown>;
  readonly ops: PatchOperation[] = [];
  /** containers already copied for this edit: written in place */
  private readonly copies = new Set<object>();

  constructor(data: Record<string, unknown>) {
    this.root = { ...data };
    this.copies.add(this.root);
  }

  /** The container at the path, copied (with those on the way) unless this edit copied it already; undefined when it is not there. */
  private writable(keys: readonly (string | number)[], depth: number): Record<string | number, unknown> | undefined {
    let node = this.root as Record<string | number, unknown>;
    for (let i = 0; i < depth; i++) {
      const key = keys[i]!;
      let child = node[key] as Record<string | number, unknown>;
      if (typeof child !== 'object' || child === null) return undefined;
      if (!this.copies.has(child)) {
        child = (Array.isArray(child) ? child.slice() : { ...child }) as Record<string | number, unknown>;
        this.copies.add(child);
        node[key] = child;
      }
      node = child;
    }
    return node;
  }

  /** Inserts a value at `idx` of the list at the path; returns whether items followed it, or undefined when the list is not there or too short. */
  insertAt(keys: readonly (string | number)[], idx: number, value: unknown): { followed: boolean } | undefined {
    const list = this.writable(keys, keys.length);
    if (!Array.isArray(list) || idx < 0 || idx > list.length) return undefined;
    const followed = idx < list.length;
    list.splice(idx, 0, value);
    this.ops.push({ op: 'add', path: `${pointer(keys)}/${idx}`, value });
    return { followed };
  }

  /** Takes item `idx` out of the list at the path; false when the list or the item is not there. */
  removeAt(keys: readonly (string | number)[], idx: number): boolean {
    const list = this.writable(keys, keys.length);
    if (!Array.isArray(list) || idx < 0 || idx >= list.length) return false;
    list.splice(idx, 1);
    this.ops.push({ op: 'remove', path: `${pointer(keys)}/${idx}` });
    return true;
  }

  /** Writes the value at the path; false when the path is not there (a container on it is null). */
  set(keys: (string | number)[], value: unknown): boolean {
    const node = this.writable(keys, keys.length - 1);
    if (!node) return false;
    const last = keys[keys.length - 1]!;
    if (!(last in node)) return false;
    if (node[last] === value) return true;
    node[last] = value;
    this.ops.push({ op: 'replace', path: pointer(keys), value });
    return true;
  }
}

function pointer(keys: readonly (string | number)[]): string {
  return keys.map((k) => `/${segment(k)}`).join('');
}

function toPath(keys: readonly (string | number)[]): ResponsePath {
  let path: ResponsePath | undefined;
  for (const key of keys) path = { prev: path, key, typename: undefined };
  return path!;
}

function pathKeys(path: ResponsePath): (string | number)[] {
  const keys: (string | number)[] = [];
  for (let p: ResponsePath | undefined = path; p; p = p.prev) keys.push(p.key);
  return keys.reverse();
}

function isEmpty(values: object): boolean {
  for (const _ in values) return false;
  return true;
}

/** The node of the path that has `depth` keys (an ancestor, or the path itself); undefined when the path is shorter. */
function nodeAt(path: ResponsePath, depth: number): ResponsePath | undefined {
  let n = 0;
  for (let p: ResponsePath | undefined = path; p; p = p.prev) n++;
  if (n < depth) return undefined;
  let p: ResponsePath | undefined = path;
  for (; n > depth; n--) p = p!.prev;
  return p;
}

/** Whether the path is at `keys` or under it (walked without building its keys: a removal asks it of every read). */
function isUnder(path: ResponsePath, keys: readonly (string | number)[]): boolean {
  const node = nodeAt(path, keys.length);
  return node !== undefined && endsWith(node, keys);
}

/** Whether a path of exactly `keys.length` keys is `keys`. */
function endsWith(path: ResponsePath, keys: readonly (string | number)[]): boolean {
  let p: ResponsePath | undefined = path;
  for (let i = keys.length - 1; i >= 0; i--, p = p!.prev) if (p!.key !== keys[i]) return false;
  return true;
}

function isPrefix(prefix: readonly (string | number)[], keys: readonly (string | number)[]): boolean {
  if (prefix.length > keys.length) return false;
  for (let i = 0; i < prefix.length; i++) if (prefix[i] !== keys[i]) return false;
  return true;
}

function isPrimitive(value: unknown): value is string | number | boolean | null | undefined {
  return value === null || (typeof value !== 'object' && typeof value !== 'function');
}

