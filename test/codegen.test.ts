/**
 * The typed frontend stays in step with the schema: `npm run codegen` prints
 * the client-facing schema and regenerates examples/web/src/gql from it and
 * the page's operations, and the page then type-checks against the result.
 * A schema change that breaks the example frontend fails here.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parse, visit } from 'graphql';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

/** Runs a command in the project folder; resolves with its exit code and everything it printed. */
function run(command: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

describe('codegen for the web example', () => {
  it('generates typed documents from the client-facing schema, and the page type-checks with them', async () => {
    const codegen = await run('npm', ['run', '--silent', 'codegen']);
    expect(codegen.code, `npm run codegen failed:\n${codegen.output}`).toBe(0);

    // the schema codegen read is the one clients see: no gateway directives, the generated Subscription type
    const schema = readFileSync(new URL('../examples/web/schema.graphql', import.meta.url), 'utf8');
    expect(schema).toMatch(/^type Subscription \{$/m);
    const applied: string[] = [];
    visit(parse(schema), { Directive: (node) => void applied.push(node.name.value) });
    expect(applied).toEqual([]);
    const generated = readFileSync(new URL('../examples/web/src/gql/graphql.ts', import.meta.url), 'utf8');
    expect(generated).toContain('export const LiveBooksDocument');

    const check = await run(process.execPath, [tsc, '--noEmit', '-p', 'examples/web/tsconfig.json']);
    expect(check.code, `tsc -p examples/web found errors:\n${check.output}`).toBe(0);
  }, 180_000);
});
