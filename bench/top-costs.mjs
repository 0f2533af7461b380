#!/usr/bin/env node
/**
 * Reads a V8 .cpuprofile (node --cpu-prof) and prints where the time went:
 *   1. the top functions by self time, with file:line;
 *   2. self time summed by file (src/ files, npm packages, node internals);
 *   3. the gateway's own (src/) functions by total time (self + callees).
 * Locations in dist/*.js are mapped back to src/*.ts through the source maps
 * tsc wrote next to them.
 *
 *   node bench/top-costs.mjs [profile.cpuprofile | folder] [--top 15] [--total <location text>]
 * Without a path: the newest profile in bench/results/profiles.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const benchDir = dirname(fileURLToPath(import.meta.url));
const rootDir = resolve(benchDir, '..');

const args = process.argv.slice(2);
let top = 15;
const ti = args.indexOf('--top');
if (ti >= 0) {
  top = Number(args[ti + 1]) || top;
  args.splice(ti, 2);
}
/** --total <text>: also list, by total time, the functions whose location contains text (e.g. graphql-ws) */
let totalFilter;
const fi = args.indexOf('--total');
if (fi >= 0) {
  totalFilter = args[fi + 1] ?? '';
  args.splice(fi, 2);
}
let file = args[0] ?? join(benchDir, 'results/profiles');
if (existsSync(file) && statSync(file).isDirectory()) {
  const newest = readdirSync(file)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(file, f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
  if (!newest) {
    console.error(`no .cpuprofile in ${file}; run npm run bench:profile first`);
    process.exit(2);
  }
  file = newest;
}
const profile = JSON.parse(readFileSync(file, 'utf8'));

// --- source maps (dist/*.js → src/*.ts) ---------------------------------------

const b64 = new Map([...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'].map((c, i) => [c, i]));

/** Decodes one mappings segment of base64 VLQs into numbers. */
function decodeVlq(seg) {
  const out = [];
  let value = 0;
  let shift = 0;
  for (const ch of seg) {
    const d = b64.get(ch);
    value += (d & 31) << shift;
    if (d & 32) shift += 5;
    else {
      out.push(value & 1 ? -(value >>> 1) : value >>> 1);
      value = 0;
      shift = 0;
    }
  }
  return out;
}

const maps = new Map();
/** For a generated file: per generated line, sorted [column, source, line] segments. */
function sourceMap(jsPath) {
  if (maps.has(jsPath)) return maps.get(jsPath);
  let map;
  try {
    const raw = JSON.parse(readFileSync(`${jsPath}.map`, 'utf8'));
    const lines = [];
    let src = 0;
    let srcLine = 0;
    let srcCol = 0;
    for (const lineText of raw.mappings.split(';')) {
      const segs = [];
      let col = 0;
      if (lineText) {
        for (const seg of lineText.split(',')) {
          const v = decodeVlq(seg);
          col += v[0];
          if (v.length >= 4) {
            src += v[1];
            srcLine += v[2];
            srcCol += v[3];
            segs.push([col, src, srcLine]);
          }
        }
      }
      lines.push(segs);
    }
    const base = dirname(jsPath);
    map = { lines, sources: raw.sources.map((s) => resolve(base, raw.sourceRoot ?? '', s)) };
  } catch {
    map = null;
  }
  maps.set(jsPath, map);
  return map;
}

/** A readable location: src/x.ts:line for our code, package/file:line for dependencies. */
function location(cf) {
  let url = cf.url;
  if (!url) return '';
  let line = cf.lineNumber + 1;
  let path = url.startsWith('file://') ? fileURLToPath(url) : url;
  if (path.startsWith(join(rootDir, 'dist') + '/')) {
    const m = sourceMap(path);
    const segs = m?.lines[cf.lineNumber];
    if (segs && segs.length) {
      let best = segs[0];
      for (const s of segs) if (s[0] <= cf.columnNumber) best = s;
      path = m.sources[best[1]];
      line = best[2] + 1;
    }
  }
  if (path.startsWith(rootDir + '/')) path = relative(rootDir, path);
  return `${path}:${line}`;
}

/** What a location belongs to, for the by-file summary. */
function owner(loc) {
  if (!loc) return '(native / VM)';
  const nm = loc.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = loc.slice(nm + 'node_modules/'.length).split('/');
    return `npm:${rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (loc.startsWith('node:')) return 'node:' + loc.slice(5).split(':')[0];
  return loc.replace(/:\d+$/, '');
}

// --- self and total time ----------------------------------------------------------

const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const keyOf = new Map();
const info = new Map();
for (const n of profile.nodes) {
  const cf = n.callFrame;
  const loc = location(cf);
  const name = cf.functionName || (cf.url ? '(anonymous)' : '(native)');
  const key = `${name}\t${loc}`;
  keyOf.set(n.id, key);
  if (!info.has(key)) info.set(key, { name, loc, self: 0, total: 0 });
}

const samples = profile.samples ?? [];
const deltas = profile.timeDeltas ?? [];
const span = profile.endTime - profile.startTime;
const fallback = samples.length ? span / samples.length : 0;
let idle = 0;
let all = 0;
for (let i = 0; i < samples.length; i++) {
  // a sample's time lasts until the next sample
  const dt = Math.max(0, i + 1 < deltas.length ? deltas[i + 1] : fallback);
  const id = samples[i];
  const key = keyOf.get(id);
  const rec = info.get(key);
  all += dt;
  if (rec.name === '(idle)') {
    idle += dt;
    continue;
  }
  rec.self += dt;
  const seen = new Set();
  for (let n = id; n !== undefined; n = parent.get(n)) {
    const k = keyOf.get(n);
    if (seen.has(k)) continue;
    seen.add(k);
    info.get(k).total += dt;
  }
}
const busy = all - idle;
const ms = (us) => (us / 1000).toFixed(1);
const pct = (us) => ((100 * us) / busy).toFixed(1) + '%';

function table(title, header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  console.log(`\n${title}`);
  console.log(header.map((h, i) => h.padEnd(widths[i])).join('  '));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(r.map((c, i) => (i < 2 ? String(c).padStart(widths[i]) : String(c).padEnd(widths[i]))).join('  '));
}

console.log(`profile: ${relative(process.cwd(), file)}`);
console.log(`sampled ${ms(all)} ms: busy ${ms(busy)} ms, idle ${ms(idle)} ms (${samples.length} samples); percentages are of busy time`);

const recs = [...info.values()].filter((r) => r.name !== '(root)' && r.name !== '(idle)');
table(
  `Top ${top} functions by self time`,
  ['self ms', 'self %', 'function', 'location'],
  recs
    .sort((a, b) => b.self - a.self)
    .slice(0, top)
    .map((r) => [ms(r.self), pct(r.self), r.name, r.loc || '-']),
);

const byOwner = new Map();
for (const r of recs) byOwner.set(owner(r.loc), (byOwner.get(owner(r.loc)) ?? 0) + r.self);
table(
  'Self time by file / package',
  ['self ms', 'self %', 'file or package'],
  [...byOwner.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, v]) => [ms(v), pct(v), k]),
);

table(
  `Gateway code (src/) by total time (self + what it calls)`,
  ['total ms', 'total %', 'function', 'location'],
  recs
    .filter((r) => r.loc.startsWith('src/'))
    .sort((a, b) => b.total - a.total)
    .slice(0, top)
    .map((r) => [ms(r.total), pct(r.total), r.name, r.loc]),
);

if (totalFilter !== undefined) {
  table(
    `Functions in "${totalFilter}" by total time`,
    ['total ms', 'total %', 'function', 'location'],
    recs
      .filter((r) => r.loc.includes(totalFilter))
      .sort((a, b) => b.total - a.total)
      .slice(0, top)
      .map((r) => [ms(r.total), pct(r.total), r.name, r.loc]),
  );
}

// a source map points at the src/ file as it was built: say so when src/ changed since
const stale = new Set();
for (const [js, m] of maps) {
  if (!m) continue;
  for (const src of m.sources) if (existsSync(src) && statSync(src).mtimeMs > statSync(js).mtimeMs) stale.add(relative(rootDir, src));
}
if (stale.size) console.log(`\nnote: ${[...stale].join(', ')} changed after dist/ was built: its line numbers above refer to the built version`);
