/**
 * The docs hold to the code: the option table in docs/configuration.md to the
 * command's options table, the defaults GatewayOptions' comments state to
 * `defaults`, and the module table in docs/architecture.md to the files in
 * src/. Each fails naming the row that is missing or different.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaults } from '../src/config/defaults.js';
import { optionRows } from '../src/config/options.js';

const root = join(import.meta.dirname, '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');

/** The rows of the first Markdown table after `heading`, as cells with backticks and `\|` escapes undone. */
function tableAfter(markdown: string, heading: string): string[][] {
  const start = markdown.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`no heading "${heading}"`);
  const lines = markdown.slice(start).split('\n');
  const first = lines.findIndex((l) => l.startsWith('|'));
  const rows: string[][] = [];
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith('|')) break;
    const cells = line
      .slice(1, -1)
      .split(/(?<!\\)\|/)
      .map((c) => c.trim().replace(/\\\|/g, '|').replace(/`/g, ''));
    rows.push(cells);
  }
  return rows;
}

describe('docs/configuration.md', () => {
  it("lists every option of the command, each with the table's flag, value, environment variable and default", () => {
    const documented = tableAfter(read('docs/configuration.md'), '## Command line')
      .filter(([option]) => !option.startsWith('--help'))
      .map(([option, env, dflt]) => ({ option, env, default: dflt }));
    const table = optionRows().map((o) => ({ option: `--${o.flag} ${o.value}`.trim(), env: o.env, default: o.default }));
    expect(documented).toEqual(table);
  });
});

describe('GatewayOptions', () => {
  it('states in each comment the default that `defaults` holds', () => {
    const source = read('src/server.ts');
    const body = source.slice(source.indexOf('export interface GatewayOptions {'), source.indexOf('\n}\n', source.indexOf('export interface GatewayOptions {')));
    const stated: Record<string, string> = {};
    for (const m of body.matchAll(/\/\*\*([\s\S]*?)\*\/\s*(\w+)\?:/g)) {
      const said = /Default (\S+?)\.?(?:\s|$)/.exec(m[1].replace(/\n\s*\*/g, ' '));
      // `Default: none` (or `Default none: ...`) is an unset option, which has no entry in `defaults`
      if (said && !said[1].startsWith('none')) stated[m[2]] = said[1];
    }
    const expected = Object.fromEntries(
      Object.entries(defaults)
        .filter(([field]) => new RegExp(`\\n  ${field}\\?:`).test(body))
        .map(([field, value]) => [field, String(value)]),
    );
    expect(stated).toEqual(expected);
  });
});

describe('docs/architecture.md', () => {
  it('lists every module in src/', () => {
    const files = (dir: string): string[] =>
      readdirSync(join(root, dir), { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? files(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : []));
    const listed = tableAfter(read('docs/architecture.md'), '## Modules').map(([module]) => module);
    expect([...listed].sort()).toEqual(files('src').map((f) => relative(root, join(root, f))).sort());
  });
});
