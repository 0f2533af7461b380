/** Tables on stdout and JSON files in bench/results/. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { resultsDir, rootDir } from './procs.mjs';

export function fmt(v, digits = 1) {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return String(v);
    if (Number.isInteger(v)) return v.toLocaleString('en-US');
    return v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  }
  return String(v);
}

/** Prints rows (arrays of cells) under a header, columns padded; numbers right-aligned. */
export function printTable(title, header, rows) {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === 'string' ? c : fmt(c))))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  const line = (r, isHeader) =>
    r
      .map((c, i) => {
        const s = String(c ?? '');
        const numeric = !isHeader && /^[-+]?[\d,.]+( ?(ms|s|%|MB|KB|B))?$/.test(s);
        return numeric ? s.padStart(widths[i]) : s.padEnd(widths[i]);
      })
      .join('  ');
  const out = [`\n${title}`, line(header, true), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map((r) => line(r, false))];
  console.log(out.join('\n'));
}

export function machineInfo() {
  let commit;
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: rootDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    commit = undefined;
  }
  return {
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memGB: Math.round(totalmem() / 2 ** 30),
    loadavgAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
    commit,
  };
}

export function writeResult(name, data) {
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${name}.json`);
  writeFileSync(file, JSON.stringify(data, null, 2) + '\n');
  return file;
}

/** One line per target: measured value next to the target, and whether it is met. */
export function targetRow(name, target, measured, met) {
  return { name, target, measured, met };
}

export function printTargets(targets) {
  printTable(
    'Targets',
    ['target', 'wanted', 'measured', 'met'],
    targets.map((t) => [t.name, t.target, t.measured, t.met === null ? 'n/a' : t.met ? 'yes' : 'NO']),
  );
}

/** Which process ran what: printed with every scenario. */
export function printWhere(procs) {
  printTable(
    'What ran where (separate OS processes, all on 127.0.0.1, sharing this machine\'s cores)',
    ['process', 'pid', 'cores', 'role'],
    procs.list.map((p) => [p.name, String(p.pid), p.cores ?? 'any', p.role]),
  );
}
