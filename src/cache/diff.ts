/**
 * Turns the difference between two states of one resource into ordinary RES
 * events, so a reset (re-get after `system.reset` or a NATS reconnect) looks
 * to everyone downstream like the changes a service would have published
 * (res-protocol.md, "system.reset").
 */
import { valuesEqual, type ChangeValues, type Collection, type Model, type ResValue } from '../res/protocol.js';

/** Property changes that turn `before` into `after`; undefined when equal. */
export function diffModel(before: Model, after: Model): ChangeValues | undefined {
  const values: ChangeValues = {};
  let changed = false;
  for (const key of Object.keys(before)) {
    if (!(key in after)) {
      values[key] = { action: 'delete' };
      changed = true;
    }
  }
  for (const [key, value] of Object.entries(after)) {
    if (!(key in before) || !valuesEqual(before[key], value)) {
      values[key] = value;
      changed = true;
    }
  }
  return changed ? values : undefined;
}

export type CollectionEdit = { op: 'add'; idx: number; value: ResValue } | { op: 'remove'; idx: number };

/**
 * A short sequence of add/remove events turning `before` into `after`,
 * from a longest common subsequence after trimming the shared prefix and
 * suffix (which is all most resets need). Indexes are valid when the edits
 * are applied in order.
 */
export function diffCollection(before: Collection, after: Collection): CollectionEdit[] {
  let start = 0;
  while (start < before.length && start < after.length && valuesEqual(before[start], after[start])) start++;
  let endB = before.length;
  let endA = after.length;
  while (endB > start && endA > start && valuesEqual(before[endB - 1], after[endA - 1])) {
    endB--;
    endA--;
  }
  const a = before.slice(start, endB);
  const b = after.slice(start, endA);
  // lcs[i][j]: length of the LCS of a[i..] and b[j..]
  const lcs: number[][] = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i][j] = valuesEqual(a[i], b[j]) ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const edits: CollectionEdit[] = [];
  let i = 0;
  let j = 0;
  let pos = start; // index in the collection as edited so far
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && valuesEqual(a[i], b[j])) {
      i++;
      j++;
      pos++;
    } else if (j < b.length && (i === a.length || lcs[i][j + 1] >= lcs[i + 1][j])) {
      edits.push({ op: 'add', idx: pos, value: b[j] });
      j++;
      pos++;
    } else {
      edits.push({ op: 'remove', idx: pos });
      i++;
    }
  }
  return edits;
}
