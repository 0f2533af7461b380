/**
 * RID and params templates of the resource schema language.
 *
 * A rid template is a resource name with `{arg}` placeholders, optionally
 * followed by `?` and a query of `key=value` pairs whose values may hold
 * placeholders: `library.books?text={text}&limit={limit}`. A query pair whose
 * argument is null is left out. Values in the name part must not contain
 * `.`, `?`, `*`, `>` or whitespace (they would change which resource is
 * named); values in the query part are URI-encoded. `{cid}` stands for the
 * connection id when the field has no argument of that name.
 *
 * A params template picks and renames arguments: `{ title }`,
 * `{ title, author: authorId }`.
 */
import { invalidParams } from '../res/protocol.js';

type Part = { literal: string } | { arg: string };

interface QueryPair {
  key: string;
  value: Part[];
}

export interface RidTemplate {
  source: string;
  name: Part[];
  query: QueryPair[];
  /** argument names used by the template (without the connection-id placeholder) */
  args: Set<string>;
}

export const cidPlaceholder = 'cid';

const placeholder = /\{([^{}]*)\}/g;

function parseParts(text: string): Part[] {
  const parts: Part[] = [];
  let last = 0;
  for (const m of text.matchAll(placeholder)) {
    if (m.index! > last) parts.push({ literal: text.slice(last, m.index) });
    const arg = m[1].trim();
    if (!/^[_A-Za-z][_0-9A-Za-z]*$/.test(arg)) throw new Error(`invalid placeholder {${m[1]}}`);
    parts.push({ arg });
    last = m.index! + m[0].length;
  }
  if (last < text.length) parts.push({ literal: text.slice(last) });
  for (const p of parts) {
    if ('literal' in p && /[{}]/.test(p.literal)) throw new Error(`unbalanced brace in "${text}"`);
  }
  return parts;
}

/** Parses a rid template; throws with a reason when it is malformed. */
export function parseRidTemplate(source: string): RidTemplate {
  const q = source.indexOf('?');
  const namePart = q < 0 ? source : source.slice(0, q);
  const name = parseParts(namePart);
  // literal parts of the name must form valid name tokens once filled
  const probe = name.map((p) => ('literal' in p ? p.literal : 'x')).join('');
  if (probe === '' || probe.split('.').some((t) => t === '' || /[\s?*>]/.test(t))) {
    throw new Error(`"${namePart}" is not a valid resource name pattern`);
  }
  const query: QueryPair[] = [];
  if (q >= 0) {
    for (const pair of source.slice(q + 1).split('&')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      const key = eq < 0 ? pair : pair.slice(0, eq);
      if (key === '' || /[{}]/.test(key)) throw new Error(`invalid query key in "${pair}"`);
      query.push({ key, value: parseParts(eq < 0 ? '' : pair.slice(eq + 1)) });
    }
  }
  const args = new Set<string>();
  for (const p of [...name, ...query.flatMap((x) => x.value)]) if ('arg' in p) args.add(p.arg);
  return { source, name, query, args };
}

function scalarText(v: unknown): string | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/**
 * Fills a rid template from field arguments. Throws system.invalidParams when
 * a name placeholder is null or would change the resource's name.
 */
export function fillRidTemplate(t: RidTemplate, args: Record<string, unknown>, cid?: string): string {
  const valueOf = (arg: string): unknown =>
    arg in args || arg !== cidPlaceholder ? args[arg] : cid;
  let name = '';
  for (const p of t.name) {
    if ('literal' in p) {
      name += p.literal;
      continue;
    }
    const text = scalarText(valueOf(p.arg));
    if (text === undefined || text === '') throw invalidParams(`Argument "${p.arg}" must not be empty`);
    if (/[.?*>\s]/.test(text)) throw invalidParams(`Argument "${p.arg}" must not contain ".", "?", "*", ">" or whitespace`);
    name += text;
  }
  const pairs: string[] = [];
  for (const { key, value } of t.query) {
    let text = '';
    let missing = false;
    for (const p of value) {
      if ('literal' in p) {
        text += p.literal;
        continue;
      }
      const v = scalarText(valueOf(p.arg));
      if (v === undefined) missing = true;
      else text += encodeURIComponent(v);
    }
    if (!missing) pairs.push(value.length === 0 ? key : `${key}=${text}`);
  }
  return pairs.length > 0 ? `${name}?${pairs.join('&')}` : name;
}

export interface ParamsTemplate {
  source: string;
  /** sent property name → argument name */
  picks: [string, string][];
}

/** Parses `{ a, b: c }`; throws with a reason when it is malformed. */
export function parseParamsTemplate(source: string): ParamsTemplate {
  const body = /^\s*\{(.*)\}\s*$/s.exec(source);
  if (!body) throw new Error('params template must be of the form "{ arg, name: arg }"');
  const picks: [string, string][] = [];
  for (const item of body[1].split(',')) {
    if (item.trim() === '') continue;
    const m = /^\s*([_A-Za-z][_0-9A-Za-z]*)\s*(?::\s*([_A-Za-z][_0-9A-Za-z]*)\s*)?$/.exec(item);
    if (!m) throw new Error(`invalid params entry "${item.trim()}"`);
    picks.push([m[1], m[2] ?? m[1]]);
  }
  return { source, picks };
}

/**
 * The params of a call: picked by the template when there is one; otherwise
 * the single `input` argument itself, or the object of all arguments.
 */
export function buildParams(t: ParamsTemplate | undefined, args: Record<string, unknown>): unknown {
  if (t) {
    const params: Record<string, unknown> = {};
    for (const [key, arg] of t.picks) if (args[arg] !== undefined) params[key] = args[arg];
    return params;
  }
  const keys = Object.keys(args);
  if (keys.length === 1 && keys[0] === 'input') return args.input;
  return keys.length === 0 ? undefined : { ...args };
}
