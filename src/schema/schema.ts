/**
 * The resource schema: loads every `.graphql` file under the schema path,
 * reads the gateway's directives into a ResourceMapping (which field gets,
 * calls or authenticates what; which type is which resource), and refuses at
 * start-up a schema whose directives are inconsistent, naming the file, type
 * and field. It builds the SDL the executable schema is made from, but never
 * talks to NATS: resolvers are given to it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import {
  Kind,
  Source,
  parse,
  type ConstDirectiveNode,
  type DefinitionNode,
  type DocumentNode,
  type FieldDefinitionNode,
  type InterfaceTypeDefinitionNode,
  type InterfaceTypeExtensionNode,
  type ObjectTypeDefinitionNode,
  type ObjectTypeExtensionNode,
  type TypeNode,
} from 'graphql';
import { directiveTypeDefs, gatewayDirectiveNames, gatewayScalarNames } from './directives.js';
import { parseParamsTemplate, parseRidTemplate, type ParamsTemplate, type RidTemplate } from './template.js';

/** What a field's directives ask the gateway to do. */
export interface FieldMapping {
  get?: RidTemplate;
  call?: { rid: RidTemplate; method: string; params?: ParamsTemplate };
  auth?: { rid: RidTemplate; method: string; params?: ParamsTemplate };
  event?: { rid: RidTemplate; name: string };
  /** the field returns its object's rid */
  rid?: boolean;
  /** the model property the field reads, when it differs from the field name */
  property?: string;
  /** a Subscription field that streams the live result of the Query field of the same name */
  mirrorOf?: 'Query';
}

export interface ResourceType {
  typeName: string;
  pattern: RidTemplate;
  /** matches a resource name (without query) of this type */
  matcher: RegExp;
}

export interface ResourceMapping {
  /** "Type.field" → mapping, for fields that carry a gateway directive */
  fields: Map<string, FieldMapping>;
  resourceTypes: ResourceType[];
}

export interface LoadedSchema {
  /** the schema files' definitions plus the gateway's directive declarations */
  typeDefs: DocumentNode;
  mapping: ResourceMapping;
  files: string[];
}

/** A schema that cannot be served; `problems` name file, type and field. */
export class SchemaError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid resource schema:\n  ${problems.join('\n  ')}`);
    this.name = 'SchemaError';
  }
}

/** The names of schema files in a folder. */
export const schemaFilePattern = /\.(graphqls?|gql)$/;

/** Every `.graphql` / `.graphqls` / `.gql` file at a path (a file or a folder, searched recursively), sorted. */
export function findSchemaFiles(path: string): string[] {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    throw new SchemaError([`schema path ${path} does not exist`]);
  }
  if (stat.isFile()) return [path];
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (schemaFilePattern.test(name)) files.push(full);
    }
  };
  walk(path);
  if (files.length === 0) throw new SchemaError([`no .graphql files under ${path}`]);
  return files;
}

/** Loads and checks the resource schema at a path. Throws SchemaError. */
export function loadResourceSchema(path: string): LoadedSchema {
  const files = findSchemaFiles(path);
  const sources = files.map((f) => ({ name: relative(process.cwd(), f) || f, body: readFileSync(f, 'utf8') }));
  return buildResourceSchema(sources);
}

/** Checks schema sources given as text (name is used in error messages). */
export function buildResourceSchema(sources: { name: string; body: string }[]): LoadedSchema {
  const problems: string[] = [];
  const definitions: DefinitionNode[] = [];
  for (const { name, body } of sources) {
    try {
      const doc = parse(new Source(body, name));
      definitions.push(...doc.definitions.filter((d) => !isGatewayDeclaration(d)));
    } catch (e) {
      // a syntax error names its line like every other problem: file:line
      const line = (e as { locations?: readonly { line: number }[] }).locations?.[0]?.line;
      problems.push(`${name}${line ? `:${line}` : ''}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  if (problems.length > 0) throw new SchemaError(problems);
  const gateway = parse(new Source(directiveTypeDefs, 'resgraph directives'));
  const mapping = readMapping(definitions, problems);
  if (problems.length > 0) throw new SchemaError(problems);
  const mirrors = mirrorGetFieldsOnSubscription(definitions, mapping);
  const typeDefs: DocumentNode = { kind: Kind.DOCUMENT, definitions: [...gateway.definitions, ...definitions, ...mirrors] };
  return { typeDefs, mapping, files: sources.map((s) => s.name) };
}

/**
 * Every `@get` field of Query is offered on Subscription with the same name,
 * arguments and type, unless the schema defines that Subscription field
 * itself. Records the mirrored fields in the mapping and returns the
 * definitions that add them.
 */
function mirrorGetFieldsOnSubscription(definitions: DefinitionNode[], mapping: ResourceMapping): DefinitionNode[] {
  const fieldsOf = (typeName: string) =>
    definitions.flatMap((d) => (isFieldHost(d) && d.name.value === typeName ? (d.fields ?? []) : []));
  const defined = new Set(fieldsOf('Subscription').map((f) => f.name.value));
  const mirrored = fieldsOf('Query').filter((f) => mapping.fields.get(`Query.${f.name.value}`)?.get && !defined.has(f.name.value));
  if (mirrored.length === 0) return [];
  for (const f of mirrored) {
    mapping.fields.set(`Subscription.${f.name.value}`, { ...mapping.fields.get(`Query.${f.name.value}`)!, mirrorOf: 'Query' });
  }
  const hasSubscription = definitions.some((d) => d.kind === Kind.OBJECT_TYPE_DEFINITION && d.name.value === 'Subscription');
  const fields = mirrored.map((f) => ({ ...f, directives: [] }));
  const name = { kind: Kind.NAME, value: 'Subscription' } as const;
  return [
    hasSubscription
      ? { kind: Kind.OBJECT_TYPE_EXTENSION, name, fields }
      : { kind: Kind.OBJECT_TYPE_DEFINITION, name, fields, description: { kind: Kind.STRING, value: 'Live results: each @get field of Query, streamed again whenever its data changes.' } },
  ];
}

/** A schema file may declare the gateway's directives for its editor; the gateway's own declaration is used. */
function isGatewayDeclaration(d: DefinitionNode): boolean {
  if (d.kind === Kind.DIRECTIVE_DEFINITION) return gatewayDirectiveNames.has(d.name.value);
  if (d.kind === Kind.SCALAR_TYPE_DEFINITION) return gatewayScalarNames.has(d.name.value);
  return false;
}

const builtinTypes = new Set(['String', 'Int', 'Float', 'Boolean', 'ID', 'JSON']);

type FieldHost = ObjectTypeDefinitionNode | ObjectTypeExtensionNode | InterfaceTypeDefinitionNode | InterfaceTypeExtensionNode;

function where(node: { loc?: { source: { name: string }; startToken: { line: number } } }): string {
  return node.loc ? `${node.loc.source.name}:${node.loc.startToken.line}` : '<schema>';
}

function namedType(t: TypeNode): string {
  return t.kind === Kind.NAMED_TYPE ? t.name.value : namedType(t.type);
}

function stringArg(d: ConstDirectiveNode, name: string): string | undefined {
  const a = d.arguments?.find((x) => x.name.value === name);
  return a && a.value.kind === Kind.STRING ? a.value.value : undefined;
}

function readMapping(definitions: DefinitionNode[], problems: string[]): ResourceMapping {
  const fields = new Map<string, FieldMapping>();
  const resourceTypes: ResourceType[] = [];
  const known = new Set(builtinTypes);
  for (const d of definitions) {
    if ('name' in d && d.name && d.kind !== Kind.DIRECTIVE_DEFINITION) known.add(d.name.value);
  }

  for (const d of definitions) {
    if (d.kind === Kind.OBJECT_TYPE_DEFINITION) {
      const r = d.directives?.find((x) => x.name.value === 'resource');
      if (r) {
        const source = stringArg(r, 'rid');
        try {
          const pattern = parseRidTemplate(source ?? '');
          if (pattern.query.length > 0) throw new Error('a resource pattern names resources, not queries');
          resourceTypes.push({ typeName: d.name.value, pattern, matcher: patternMatcher(pattern) });
        } catch (e) {
          problems.push(`${where(r)}: type ${d.name.value}: @resource(rid: ${JSON.stringify(source)}): ${(e as Error).message}`);
        }
      }
    }
    if (!isFieldHost(d)) continue;
    for (const field of d.fields ?? []) {
      const label = `${where(field)}: ${d.name.value}.${field.name.value}`;
      const type = namedType(field.type);
      if (!known.has(type)) problems.push(`${label}: unknown type ${type}`);
      const m = readFieldMapping(d.name.value, field, label, problems);
      if (m) fields.set(`${d.name.value}.${field.name.value}`, m);
    }
  }
  checkOverlappingPatterns(resourceTypes, problems);
  return { fields, resourceTypes };
}

function isFieldHost(d: DefinitionNode): d is FieldHost {
  return (
    d.kind === Kind.OBJECT_TYPE_DEFINITION ||
    d.kind === Kind.OBJECT_TYPE_EXTENSION ||
    d.kind === Kind.INTERFACE_TYPE_DEFINITION ||
    d.kind === Kind.INTERFACE_TYPE_EXTENSION
  );
}

/** Where each directive may stand: the root type it belongs on. */
const rootOf: Record<string, string> = { get: 'Query', call: 'Mutation', auth: 'Mutation', event: 'Subscription' };

function readFieldMapping(
  typeName: string,
  field: FieldDefinitionNode,
  label: string,
  problems: string[],
): FieldMapping | undefined {
  const m: FieldMapping = {};
  let any = false;
  const argNames = new Set((field.arguments ?? []).map((a) => a.name.value));
  const template = (d: ConstDirectiveNode, arg = 'rid'): RidTemplate | undefined => {
    const source = stringArg(d, arg);
    try {
      const t = parseRidTemplate(source ?? '');
      for (const a of t.args) {
        if (!argNames.has(a) && a !== 'cid') problems.push(`${label}: @${d.name.value} rid "${source}" uses {${a}}, which is not an argument of the field`);
      }
      return t;
    } catch (e) {
      problems.push(`${label}: @${d.name.value}(rid: ${JSON.stringify(source)}): ${(e as Error).message}`);
      return undefined;
    }
  };
  const params = (d: ConstDirectiveNode): ParamsTemplate | undefined => {
    const source = stringArg(d, 'params');
    if (source === undefined) return undefined;
    try {
      const t = parseParamsTemplate(source);
      for (const [, a] of t.picks) {
        if (!argNames.has(a)) problems.push(`${label}: @${d.name.value} params "${source}" uses ${a}, which is not an argument of the field`);
      }
      return t;
    } catch (e) {
      problems.push(`${label}: @${d.name.value}(params: ${JSON.stringify(source)}): ${(e as Error).message}`);
      return undefined;
    }
  };

  for (const d of field.directives ?? []) {
    const name = d.name.value;
    if (!gatewayDirectiveNames.has(name)) continue;
    any = true;
    const root = rootOf[name];
    if (root && typeName !== root) {
      problems.push(`${label}: @${name} is only allowed on fields of ${root}`);
      continue;
    }
    switch (name) {
      case 'get':
        m.get = template(d);
        break;
      case 'call':
      case 'auth': {
        const method = stringArg(d, 'method') ?? '';
        if (!/^[^\s.*>?]+$/.test(method)) problems.push(`${label}: @${name} method ${JSON.stringify(method)} is not a valid method name`);
        const rid = template(d);
        if (rid) m[name] = { rid, method, params: params(d) };
        break;
      }
      case 'event': {
        const rid = template(d);
        const ev = stringArg(d, 'name') ?? '';
        if (!/^[^\s.*>?]+$/.test(ev)) problems.push(`${label}: @event name ${JSON.stringify(ev)} is not a valid event name`);
        if (rid) m.event = { rid, name: ev };
        break;
      }
      case 'rid': {
        const t = namedType(field.type);
        if (t !== 'ID' && t !== 'String') problems.push(`${label}: @rid fields must be of type ID or String, not ${t}`);
        m.rid = true;
        break;
      }
      case 'field': {
        const prop = stringArg(d, 'name');
        if (!prop) problems.push(`${label}: @field needs a non-empty name`);
        else m.property = prop;
        break;
      }
      default:
        problems.push(`${label}: @${name} does not belong on a field`);
    }
  }
  const kinds = ['get', 'call', 'auth', 'event', 'rid'].filter((k) => m[k as keyof FieldMapping]);
  if (kinds.length > 1) problems.push(`${label}: @${kinds.join(' and @')} cannot be combined`);
  return any ? m : undefined;
}

/** A regular expression matching resource names of a @resource pattern (each placeholder is one part or less). */
export function patternMatcher(t: RidTemplate): RegExp {
  const body = t.name
    .map((p) => ('literal' in p ? p.literal.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') : '[^.]+'))
    .join('');
  return new RegExp(`^${body}$`);
}

function checkOverlappingPatterns(types: ResourceType[], problems: string[]): void {
  const seen = new Map<string, string>();
  for (const t of types) {
    const key = t.pattern.name.map((p) => ('literal' in p ? p.literal : '{}')).join('');
    const other = seen.get(key);
    if (other) problems.push(`types ${other} and ${t.typeName} have the same @resource pattern "${t.pattern.source}"`);
    seen.set(key, t.typeName);
  }
}

/** The type a resource name belongs to, by the @resource patterns. */
export function typeForRid(mapping: ResourceMapping, name: string): string | undefined {
  return mapping.resourceTypes.find((t) => t.matcher.test(name))?.typeName;
}
