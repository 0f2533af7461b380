/**
 * JSON Patch generation for @live queries: every patch applies (validated by
 * fast-json-patch, the library the n1ru4l client helper uses) and turns the
 * old result into the new one; list changes stay proportional.
 * A unit test of the algorithm on purpose: random results by the thousand are
 * out of reach through a service and a socket (test/live-query-patch.test.ts
 * checks the patches clients receive).
 */
import { describe, expect, it } from 'vitest';
import fastJsonPatch from 'fast-json-patch';
import { diff } from '../src/live/patch.js';

/** A small deterministic PRNG (mulberry32), so failures reproduce. */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function applies(from: unknown, to: unknown) {
  const ops = diff(from, to);
  const out = fastJsonPatch.applyPatch(structuredClone(from), ops as fastJsonPatch.Operation[], true, false).newDocument;
  expect(out).toEqual(to);
  return ops;
}

describe('JSON Patch between results', () => {
  it('is empty for equal results', () => {
    expect(diff({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] })).toEqual([]);
  });

  it('changes one property of one item in a 100-item list with one replace', () => {
    const books = Array.from({ length: 100 }, (_, i) => ({ id: `b${i}`, title: `Title ${i}`, author: { name: 'X' } }));
    const next = structuredClone(books);
    next[57].title = 'Changed';
    expect(applies({ books }, { books: next })).toEqual([{ op: 'replace', path: '/books/57/title', value: 'Changed' }]);
  });

  it('adds or removes one item with one op', () => {
    const books = Array.from({ length: 100 }, (_, i) => ({ id: `b${i}`, title: `Title ${i}` }));
    const added = [...books.slice(0, 10), { id: 'new', title: 'New' }, ...books.slice(10)];
    expect(applies({ books }, { books: added })).toEqual([{ op: 'add', path: '/books/10', value: { id: 'new', title: 'New' } }]);
    const removed = books.filter((_, i) => i !== 0);
    expect(applies({ books }, { books: removed })).toEqual([{ op: 'remove', path: '/books/0' }]);
  });

  it('changes one item of a list without ids in place', () => {
    expect(applies({ tags: [{ n: 'a' }, { n: 'b' }, { n: 'c' }] }, { tags: [{ n: 'a' }, { n: 'B' }, { n: 'c' }] })).toEqual([
      { op: 'replace', path: '/tags/1/n', value: 'B' },
    ]);
  });

  it('escapes keys in paths', () => {
    applies({ 'a/b': 1, 'c~d': 2 }, { 'a/b': 2, 'c~d': 3 });
  });

  it('turns any result into any other (random lists, fixed seed)', () => {
    const rand = rng(42);
    const item = () => ({ id: `i${Math.floor(rand() * 30)}`, v: Math.floor(rand() * 3), tags: Array.from({ length: Math.floor(rand() * 3) }, () => Math.floor(rand() * 4)) });
    const list = () => {
      const seen = new Set<string>();
      return Array.from({ length: Math.floor(rand() * 12) }, item).filter((x) => !seen.has(x.id) && seen.add(x.id));
    };
    for (let n = 0; n < 500; n++) {
      applies({ data: { list: list(), x: rand() > 0.5 ? null : { y: rand() } } }, { data: { list: list(), x: rand() > 0.5 ? null : { y: rand() } } });
    }
  });
});
