/**
 * Turns the difference between two states of one resource into ordinary RES
 * events, so a reset (re-get after `system.reset` or a NATS reconnect) looks
 * to everyone downstream like the changes a service would have published
 * (see docs/protocol-notes.md#system-reset).
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
  const b = after.slice(start, endA);
  const edits: CollectionEdit[] = [];
  let j = 0;
  let pos = start; // index in the collection as edited so far
  for (const step of editScript(before.slice(start, endB), b, valuesEqual)) {
    if (step === 'add') edits.push({ op: 'add', idx: pos, value: b[j] });
    else if (step === 'remove') edits.push({ op: 'remove', idx: pos });
    if (step !== 'remove') {
      j++;
      pos++;
    }
  }
  return edits;
}

/** One step of an edit script: keep an item of both lists, remove one of the first, add one of the second. */
export type EditStep = 'keep' | 'remove' | 'add';

/**
 * The steps that turn list `a` into list `b` with the fewest additions and
 * removals, from a longest common subsequence of the two (items compared by
 * `equal`). Where an addition and a removal would do equally well, the
 * addition comes first.
 */
export function editScript<T>(a: readonly T[], b: readonly T[], equal: (x: T, y: T) => boolean): EditStep[] {
  if (a.length === 0) return b.map(() => 'add');
  if (b.length === 0) return a.map(() => 'remove');
  // lcs[i * width + j]: length of the longest common subsequence of a[i..] and b[j..]
  const width = b.length + 1;
  const lcs = new Uint32Array((a.length + 1) * width);
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i * width + j] = equal(a[i], b[j]) ? lcs[(i + 1) * width + j + 1] + 1 : Math.max(lcs[(i + 1) * width + j], lcs[i * width + j + 1]);
    }
  }
  const steps: EditStep[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && equal(a[i], b[j])) {
      steps.push('keep');
      i++;
      j++;
    } else if (j < b.length && (i === a.length || lcs[i * width + j + 1] >= lcs[(i + 1) * width + j])) {
      steps.push('add');
      j++;
    } else {
      steps.push('remove');
      i++;
    }
  }
  return steps;
}
