#!/usr/bin/env node
/**
 * Compares two V8 heap snapshots (bench/run.mjs memory --heap-snapshots) and
 * prints what grew between them, by object kind: count and self bytes, also
 * per unit (e.g. per subscription) when told how many units were added.
 *
 *   node bench/heap-diff.mjs before.heapsnapshot after.heapsnapshot [units] [--top 25]
 */
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
let top = 25;
const ti = args.indexOf('--top');
if (ti >= 0) {
  top = Number(args[ti + 1]) || top;
  args.splice(ti, 2);
}
const [beforeFile, afterFile, unitsArg] = args;
if (!beforeFile || !afterFile) {
  console.error('usage: node bench/heap-diff.mjs before.heapsnapshot after.heapsnapshot [units] [--top 25]');
  process.exit(2);
}
const units = Number(unitsArg) || 0;

/** Self size and count by "type name" of every node of a snapshot. */
function summarize(file) {
  const snap = JSON.parse(readFileSync(file, 'utf8'));
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const iSize = fields.indexOf('self_size');
  const out = new Map();
  let total = 0;
  const { nodes, strings } = snap;
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + iType]];
    let name = strings[nodes[i + iName]];
    // strings and code are many distinct names: group them by type
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string' || type === 'number' || type === 'code' || type === 'regexp') name = '';
    else if (name.length > 60) name = name.slice(0, 57) + '...';
    const key = `${type}${name ? ` ${name}` : ''}`;
    const size = nodes[i + iSize];
    total += size;
    const r = out.get(key);
    if (r) {
      r.count++;
      r.size += size;
    } else out.set(key, { count: 1, size });
  }
  return { byKind: out, total };
}

const a = summarize(beforeFile);
const b = summarize(afterFile);
const rows = [];
for (const [k, v] of b.byKind) {
  const o = a.byKind.get(k) ?? { count: 0, size: 0 };
  const dSize = v.size - o.size;
  const dCount = v.count - o.count;
  if (dSize !== 0 || dCount !== 0) rows.push({ k, dSize, dCount });
}
rows.sort((x, y) => y.dSize - x.dSize);
const dTotal = b.total - a.total;
console.log(`heap self size: ${(a.total / 1048576).toFixed(1)} MB → ${(b.total / 1048576).toFixed(1)} MB (+${(dTotal / 1048576).toFixed(1)} MB${units ? `, ${Math.round(dTotal / units)} bytes per unit over ${units} units` : ''})`);
const header = ['+bytes', '+count', ...(units ? ['bytes/unit', 'count/unit'] : []), 'kind'];
const lines = rows.slice(0, top).map((r) => [String(r.dSize), String(r.dCount), ...(units ? [(r.dSize / units).toFixed(0), (r.dCount / units).toFixed(2)] : []), r.k]);
const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
console.log(header.map((h, i) => h.padEnd(widths[i])).join('  '));
for (const l of lines) console.log(l.map((c, i) => (i < l.length - 1 ? c.padStart(widths[i]) : c)).join('  '));
