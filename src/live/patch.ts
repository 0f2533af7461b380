/**
 * JSON Patch (RFC 6902) between two GraphQL results, for `@live` queries.
 * Patches are proportional to the change: objects are diffed property by
 * property, and lists by a longest common subsequence of item identities
 * (an object's `id`, else the item's JSON), so one added or removed item is
 * one `add` or `remove`, and one changed property of one item is one
 * `replace`, however long the list.
 */
import { editScript } from '../cache/diff.js';
import { isPlainObject, jsonEqual } from '../res/protocol.js';

export type PatchOperation =
  | { op: 'add'; path: string; value: unknown }
  | { op: 'remove'; path: string }
  | { op: 'replace'; path: string; value: unknown };

type Json = unknown;

/** A JSON Pointer segment (RFC 6901): `~` and `/` escaped. */
export function segment(key: string | number): string {
  return typeof key === 'number' ? String(key) : key.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** The operations that turn `from` into `to`, with paths under `base`. */
export function diff(from: Json, to: Json, base = ''): PatchOperation[] {
  const ops: PatchOperation[] = [];
  diffInto(from, to, base, ops);
  return ops;
}

function diffInto(from: Json, to: Json, path: string, ops: PatchOperation[]): void {
  if (from === to) return;
  if (isPlainObject(from) && isPlainObject(to)) {
    for (const key of Object.keys(from)) {
      if (!Object.prototype.hasOwnProperty.call(to, key)) ops.push({ op: 'remove', path: `${path}/${segment(key)}` });
    }
    for (const key of Object.keys(to)) {
      const p = `${path}/${segment(key)}`;
      if (!Object.prototype.hasOwnProperty.call(from, key)) ops.push({ op: 'add', path: p, value: to[key] });
      else diffInto(from[key], to[key], p, ops);
    }
    return;
  }
  if (Array.isArray(from) && Array.isArray(to)) {
    diffList(from, to, path, ops);
    return;
  }
  if (!jsonEqual(from, to)) ops.push({ op: 'replace', path, value: to });
}

const sameIdentity = (x: string, y: string) => x === y;

/** What makes two list items "the same item" across results. */
function identity(item: Json): string {
  if (isPlainObject(item) && (typeof item.id === 'string' || typeof item.id === 'number')) return `#${item.id}`;
  return JSON.stringify(item);
}

function diffList(from: Json[], to: Json[], path: string, ops: PatchOperation[]): void {
  // the shared head and tail are compared in place; only the middle needs a subsequence search
  let start = 0;
  while (start < from.length && start < to.length && identity(from[start]) === identity(to[start])) {
    diffInto(from[start], to[start], `${path}/${start}`, ops);
    start++;
  }
  let endFrom = from.length;
  let endTo = to.length;
  const tail: [number, number][] = [];
  while (endFrom > start && endTo > start && identity(from[endFrom - 1]) === identity(to[endTo - 1])) {
    endFrom--;
    endTo--;
    tail.push([endFrom, endTo]);
  }
  const a = from.slice(start, endFrom).map(identity);
  const b = to.slice(start, endTo).map(identity);
  const steps = editScript(a, b, sameIdentity);
  let pos = start; // index in the list as patched so far
  let i = start;
  let j = start;
  for (let s = 0; s < steps.length; ) {
    if (steps[s] === 'keep') {
      diffInto(from[i++], to[j++], `${path}/${pos++}`, ops);
      s++;
      continue;
    }
    // a run of removals and additions at one place: pair them up as in-place changes
    let removes = 0;
    let adds = 0;
    while (s < steps.length && steps[s] !== 'keep') {
      if (steps[s] === 'remove') removes++;
      else adds++;
      s++;
    }
    const paired = Math.min(removes, adds);
    for (let k = 0; k < paired; k++) diffInto(from[i++], to[j++], `${path}/${pos++}`, ops);
    for (let k = paired; k < removes; k++, i++) ops.push({ op: 'remove', path: `${path}/${pos}` });
    for (let k = paired; k < adds; k++) ops.push({ op: 'add', path: `${path}/${pos++}`, value: to[j++] });
  }
  // the tail's indexes are final now that the middle is patched
  for (let k = tail.length - 1; k >= 0; k--) {
    const [fi, ti] = tail[k];
    diffInto(from[fi], to[ti], `${path}/${ti}`, ops);
  }
}

