/**
 * Incremental live results. A run records where its result shows each model
 * property it read (ResultReads, filled by the resolvers); a `change` event
 * on such a model is then applied to the last result directly: only the
 * fields that show a changed property are rewritten, with the value
 * execution would give them (the field type's serialization), and the JSON
 * Patch of the update comes from the same rewrite. A `remove` event takes
 * the item out of every list that shows the collection (the reads under
 * later items move up one index, the entries only the removed item showed
 * are handed back for release). The operation is not run again, so an
 * update costs what the change costs, not what the result weighs.
 *
 * Anything it cannot apply exactly goes back to re-execution, with its
 * reason: an object added to a collection (a collection of leaf values
 * takes its added item in place), deleted resources, properties shown as
 * something other than a leaf (references, data values), resources shown
 * whole, fields under an error of the result and lists holding one, and
 * values a field cannot show as they are (one its type rejects, or null for
 * a non-null field, where execution would propagate the null or report an
 * error). The
 * live query adds one of its own: a change after the connection's access
 * verdicts were dropped, which only a run asks again (query.ts).
 */
import { getNullableType, isLeafType, isNonNullType, type ExecutionResult, type GraphQLLeafType, type GraphQLOutputType, type GraphQLResolveInfo } from 'graphql';
import type { CacheEntry, EntryChange } from '../cache/cache.js';
import { isDeleteAction, type ResValue } from '../res/protocol.js';
import { leafListItem } from '../resolvers/resolvers.js';
import { segment, type PatchOperation } from './patch.js';

/** Why a change was left to re-execution (the `reason` label of resgraph_live_incremental_total). */
export type FallbackReason = 'add' | 'delete' | 'reference' | 'whole' | 'errors' | 'value' | 'access';

type ResponsePath = GraphQLResolveInfo['path'];

/** A field type as a leaf field: its named type and whether it is non-null; null for a field that is not a leaf. */
type LeafField = { type: GraphQLLeafType; nonNull: boolean } | null;

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
 * each, and are indexed by entry only when a change first asks. A removal
 * applied to the result moves the reads under the removed item's followers
 * and forgets those under the item.
 */
export class ResultReads {
  /** the entry read; undefined once a removal took what showed it out of the result */
  private readonly entries: (CacheEntry | undefined)[] = [];
  private readonly kinds: ReadKind[] = [];
  private readonly props: string[] = [];
  private readonly paths: ResponsePath[] = [];
  /** the field as a leaf, or null when it shows the property as something else (a reference followed, a data value) */
  private readonly leaves: LeafField[] = [];
  private byEntry: Map<CacheEntry, number[]> | undefined;
  /** resources the result shows whole (a model or collection as a JSON value) */
  private readonly whole = new Set<CacheEntry>();

  private add(entry: CacheEntry, kind: ReadKind, prop: string, path: ResponsePath, leaf: LeafField): void {
    this.entries.push(entry);
    this.kinds.push(kind);
    this.props.push(prop);
    this.paths.push(path);
    this.leaves.push(leaf);
    this.byEntry = undefined;
  }

  /** A resolver read `prop` of the model in `entry` for the field at `info.path`; `value` is what the model holds. */
  property(entry: CacheEntry, prop: string, value: unknown, info: GraphQLResolveInfo): void {
    const leaf = leafField(info.returnType);
    this.add(entry, ReadKind.property, prop, info.path, leaf && isPrimitive(value) ? leaf : null);
  }

  /** The model in `entry` is shown as an object at `path`. */
  node(entry: CacheEntry, path: ResponsePath): void {
    this.add(entry, ReadKind.node, '', path, null);
  }

  /** The collection in `entry` is shown as a list at `path`, an item of `itemType` at each index. */
  list(entry: CacheEntry, path: ResponsePath, itemType: GraphQLOutputType): void {
    this.add(entry, ReadKind.list, '', path, leafField(itemType));
  }

  /** A resolver showed the resource in `entry` as a whole JSON value. */
  wholeResource(entry: CacheEntry): void {
    this.whole.add(entry);
  }

  showsWhole(entry: CacheEntry): boolean {
    return this.whole.has(entry);
  }

  /** Calls `visit` for every field that shows `prop` of the entry's model; stops with what it returns when not undefined. */
  eachRead<T>(entry: CacheEntry, hasProp: (prop: string) => boolean, visit: (prop: string, leaf: LeafField, path: ResponsePath) => T | undefined): T | undefined {
    for (const i of this.index().get(entry) ?? noReads) {
      if (this.kinds[i] !== ReadKind.property || this.entries[i] !== entry || !hasProp(this.props[i]!)) continue;
      const stop = visit(this.props[i]!, this.leaves[i]!, this.paths[i]!);
      if (stop !== undefined) return stop;
    }
    return undefined;
  }

  /**
   * The lists that show the entry's collection: each list's path, and its
   * items as leaf values (their type) or null when they are objects. Each
   * path comes once (a list is recorded twice when graphql-js runs the
   * operation again, compiled.ts), and is read as the walk reaches it, so
   * an edit made for one list moves or drops those after it.
   */
  *listsShowing(entry: CacheEntry): Generator<{ keys: (string | number)[]; items: LeafField }> {
    const seen = new Set<string>();
    for (const i of this.index().get(entry) ?? noReads) {
      // gone: under an item a removal took out
      if (this.kinds[i] !== ReadKind.list || this.entries[i] !== entry) continue;
      const keys = pathKeys(this.paths[i]!);
      const at = pointer(keys);
      if (seen.has(at)) continue;
      seen.add(at);
      yield { keys, items: this.leaves[i]! };
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
   * forgotten reads.
   */
  moveItems(list: readonly (string | number)[], idx: number, by: 1 | -1): Set<CacheEntry> {
    const gone = new Set<CacheEntry>();
    const depth = list.length;
    for (let i = 0; i < this.entries.length; i++) {
      const entry = this.entries[i];
      if (!entry) continue;
      const keys = pathKeys(this.paths[i]!);
      if (keys.length <= depth || !isPrefix(list, keys)) continue;
      const k = keys[depth] as number;
      if (k === idx && by < 0) {
        this.entries[i] = undefined;
        gone.add(entry);
      } else if (k > idx || (k === idx && by > 0)) {
        keys[depth] = k + by;
        this.paths[i] = toPath(keys);
      }
    }
    return gone;
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

/** A change heard by a live result, in order. */
export interface HeardChange {
  entry: CacheEntry;
  change: EntryChange;
}

/** The result after the changes, and the JSON Patch from the one before; `ops` is empty when nothing shown changed. */
export interface AppliedChanges {
  result: ExecutionResult;
  ops: PatchOperation[];
  /** entries a removal took out of the result that nothing in it shows any more: their holds can go */
  unshown: CacheEntry[];
}

/**
 * Applies changes, in order, to a result whose reads were recorded; the
 * result itself is not modified (the objects on the way to a rewritten
 * field are copied, the rest is shared). Returns why not when it cannot.
 */
export function applyChanges(result: ExecutionResult, reads: ResultReads, changes: readonly HeardChange[]): AppliedChanges | FallbackReason {
  if (!result.data) return 'errors';
  const errorPaths = result.errors?.map((e) => e.path ?? []) ?? [];
  const edit = new TreeEdit(result.data);
  const removed = new Set<CacheEntry>();
  for (const { entry, change } of changes) {
    if (change.type === 'remove') {
      const stopped = applyRemove(edit, reads, entry, change.idx, errorPaths, removed);
      if (stopped) return stopped;
      continue;
    }
    if (change.type === 'add') {
      const stopped = applyAdd(edit, reads, entry, change.idx, change.value, errorPaths);
      if (stopped) return stopped;
      continue;
    }
    if (change.type !== 'change') return change.type;
    // no values: an entry whose get had failed was fetched again (a reset): the result shows its error
    if (isEmpty(change.values)) return 'errors';
    if (reads.showsWhole(entry)) return 'whole';
    const values = change.values;
    const stopped = reads.eachRead<FallbackReason>(
      entry,
      (prop) => Object.prototype.hasOwnProperty.call(values, prop),
      (prop, leaf, path) => {
        if (!leaf) return 'reference';
        const raw = values[prop];
        const value = isDeleteAction(raw) ? null : raw;
        if (!isPrimitive(value)) return 'reference';
        const shown = leafValue(leaf.type, leaf.nonNull, value);
        if (shown === undefined) return 'value';
        const keys = pathKeys(path);
        // an error on the field or above it (a null that propagated) is execution's to undo
        if (errorPaths.some((p) => isPrefix(p, keys)) || !edit.set(keys, shown)) return 'errors';
        return undefined;
      },
    );
    if (stopped) return stopped;
  }
  const unshown = [...removed].filter((e) => !reads.shows(e));
  if (edit.ops.length === 0) return { result, ops: edit.ops, unshown };
  // errors elsewhere stay as they were: no change applied here reaches them
  return { result: result.errors ? { data: edit.root, errors: result.errors } : { data: edit.root }, ops: edit.ops, unshown };
}

/**
 * Inserts an added item into every list that shows the collection, when
 * its items are leaf values (a collection of strings, numbers...): the
 * value as execution would show it, and the reads under later items move.
 * An item that is an object (a reference to a model) needs its selection
 * resolved: left to a run.
 */
function applyAdd(edit: TreeEdit, reads: ResultReads, entry: CacheEntry, idx: number, value: ResValue, errorPaths: readonly (readonly (string | number)[])[]): FallbackReason | undefined {
  if (reads.showsWhole(entry)) return 'whole';
  for (const { keys, items: leaf } of reads.listsShowing(entry)) {
    if (!leaf) return 'add';
    const item = leafListItem(value, leaf.type.name === 'JSON');
    if (!isPrimitive(item)) return 'add';
    const shown = leafValue(leaf.type, leaf.nonNull, item);
    if (shown === undefined) return 'value';
    if (errorPaths.some((p) => isPrefix(keys, p))) return 'errors';
    if (!edit.insertAt(keys, idx, shown)) return 'errors';
    reads.moveItems(keys, idx, 1);
  }
  return undefined;
}

/**
 * Takes item `idx` out of every list that shows the collection, moves the
 * reads under the later items, and notes the entries the removed items
 * showed. The reads are changed in place: when a later change of the same
 * batch cannot be applied, the operation runs and records them afresh.
 */
function applyRemove(edit: TreeEdit, reads: ResultReads, entry: CacheEntry, idx: number, errorPaths: readonly (readonly (string | number)[])[], removed: Set<CacheEntry>): FallbackReason | undefined {
  if (reads.showsWhole(entry)) return 'whole';
  for (const { keys } of reads.listsShowing(entry)) {
    // an error under the list sits at an index that would move: execution's to place
    if (errorPaths.some((p) => isPrefix(keys, p))) return 'errors';
    if (!edit.removeAt(keys, idx)) return 'errors';
    for (const e of reads.moveItems(keys, idx, -1)) removed.add(e);
  }
  return undefined;
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

  /** Inserts a value at `idx` of the list at the path; false when the list is not there or too short. */
  insertAt(keys: readonly (string | number)[], idx: number, value: unknown): boolean {
    const list = this.writable(keys, keys.length);
    if (!Array.isArray(list) || idx < 0 || idx > list.length) return false;
    list.splice(idx, 0, value);
    this.ops.push({ op: 'add', path: `${pointer(keys)}/${idx}`, value });
    return true;
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

function isPrefix(prefix: readonly (string | number)[], keys: readonly (string | number)[]): boolean {
  if (prefix.length > keys.length) return false;
  for (let i = 0; i < prefix.length; i++) if (prefix[i] !== keys[i]) return false;
  return true;
}

function isPrimitive(value: unknown): value is string | number | boolean | null | undefined {
  return value === null || (typeof value !== 'object' && typeof value !== 'function');
}

