/**
 * Conformance: the resource schema. Invalid schemas are refused at start-up
 * with a SchemaError naming file, type and field; a folder of several files
 * loads as one schema. No NATS is involved.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildASTSchema } from 'graphql';
import { SchemaError, buildResourceSchema, loadResourceSchema, typeForRid } from '../src/schema/schema.js';

const file = 'schema/library.graphql';
const book = 'type Book @resource(rid: "library.book.{id}") { id: ID! @rid title: String }\n';

/** The SchemaError a schema text is refused with. */
function refusal(body: string, name = file): SchemaError {
  try {
    buildResourceSchema([{ name, body }]);
  } catch (e) {
    expect(e).toBeInstanceOf(SchemaError);
    return e as SchemaError;
  }
  throw new Error('the schema was accepted');
}

const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

function tempFolder(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'resgraph-schema-'));
  tmpDirs.push(dir);
  for (const [name, body] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), body);
  }
  return dir;
}

describe('schema validation', () => {
  it('refuses a rid template that uses an unknown argument, naming file, type and field', () => {
    const e = refusal(book + 'type Query { book(id: ID!): Book @get(rid: "library.book.{bookId}") }');
    expect(e.problems).toHaveLength(1);
    expect(e.problems[0]).toContain(`${file}:2`);
    expect(e.problems[0]).toContain('Query.book');
    expect(e.problems[0]).toContain('{bookId}');
    expect(e.message).toContain(e.problems[0]);
  });

  it('refuses a params template that uses an unknown argument', () => {
    const e = refusal(
      book + 'type Query { book(id: ID!): Book @get(rid: "library.book.{id}") }\n' +
        'type Mutation { rename(id: ID!, title: String): Boolean @call(rid: "library.book.{id}", method: "set", params: "{ name }") }',
    );
    expect(e.problems[0]).toMatch(new RegExp(`^${file}:3: Mutation\\.rename: .*name`));
  });

  it('refuses @get outside Query', () => {
    const e = refusal('type Book { title: String other: Book @get(rid: "library.book.1") }\ntype Query { x: Book @get(rid: "library.book.1") }');
    expect(e.problems).toEqual([expect.stringMatching(new RegExp(`^${file}:1: Book\\.other: @get is only allowed on fields of Query`))]);
  });

  it('refuses @call outside Mutation', () => {
    const e = refusal('type Query { setTitle(id: ID!): Boolean @call(rid: "library.book.{id}", method: "set") }');
    expect(e.problems).toEqual([expect.stringMatching(new RegExp(`^${file}:1: Query\\.setTitle: @call is only allowed on fields of Mutation`))]);
  });

  it('refuses a field of an unknown type', () => {
    const e = refusal(book.replace('title: String', 'title: String\n author: Writer') + 'type Query { book(id: ID!): Book @get(rid: "library.book.{id}") }');
    expect(e.problems).toEqual([expect.stringMatching(new RegExp(`^${file}:2: Book\\.author: unknown type Writer`))]);
  });

  it('refuses an unknown type behind list and non-null wrappers', () => {
    const e = refusal('type Query { books: [Bok!]! @get(rid: "library.books") }');
    expect(e.problems[0]).toContain('Query.books: unknown type Bok');
  });

  it('refuses @rid on a field that is not ID or String', () => {
    const e = refusal(book.replace('id: ID! @rid', 'id: Int @rid') + 'type Query { book(id: ID!): Book @get(rid: "library.book.{id}") }');
    expect(e.problems).toEqual([expect.stringMatching(new RegExp(`^${file}:1: Book\\.id: @rid fields must be of type ID or String, not Int`))]);
  });

  it('refuses a rid template that is not a valid resource name pattern', () => {
    const e = refusal('type Query { x: JSON @get(rid: "library..x") }');
    expect(e.problems[0]).toMatch(/Query\.x: @get\(rid: "library\.\.x"\)/);
  });

  it('refuses a @call method that is not a single token', () => {
    const e = refusal('type Query { x: JSON @get(rid: "a.b") }\ntype Mutation { m: JSON @call(rid: "a.b", method: "do.it") }');
    expect(e.problems[0]).toMatch(/Mutation\.m: @call method "do\.it"/);
  });

  it('refuses two @resource types with the same pattern', () => {
    const e = refusal(book + book.replace('type Book', 'type Volume') + 'type Query { x: Book @get(rid: "library.book.1") }');
    expect(e.problems[0]).toMatch(/Book and Volume/);
  });

  it('names the file and line of a syntax error', () => {
    const e = refusal('type Query {\n  book(id: ID!: Book\n}', 'schema/broken.graphql');
    expect(e.problems).toEqual([expect.stringMatching(/^schema\/broken\.graphql:2: Syntax Error/)]);
  });

  it('reports every problem at once', () => {
    const e = refusal('type Query { a: Bok b(id: ID): JSON @get(rid: "x.{y}") c: JSON @call(rid: "x", method: "m") }');
    expect(e.problems).toHaveLength(3);
  });
});

describe('schema loading', () => {
  it('loads a folder of several .graphql files as one schema, recursively and in order', () => {
    const dir = tempFolder({
      'types.graphql': book + 'type Author @resource(rid: "library.author.{id}") { id: ID! @rid name: String books: [Book!] }',
      'query.graphql': 'type Query { book(id: ID!): Book @get(rid: "library.book.{id}") }',
      'more/author.gql': 'extend type Query { author(id: ID!): Author @get(rid: "library.author.{id}") }',
      'mutation.graphqls': 'type Mutation { setTitle(id: ID!, title: String!): Boolean @call(rid: "library.book.{id}", method: "set", params: "{ title }") }',
      'README.md': 'not a schema',
    });
    const loaded = loadResourceSchema(dir);
    expect(loaded.files.map((f) => f.slice(f.lastIndexOf('resgraph-schema-')).replace(/^[^/]+\//, ''))).toEqual([
      'more/author.gql',
      'mutation.graphqls',
      'query.graphql',
      'types.graphql',
    ]);
    expect([...loaded.mapping.fields.keys()]).toEqual(
      expect.arrayContaining(['Author.id', 'Book.id', 'Mutation.setTitle', 'Query.author', 'Query.book']),
    );
    expect(loaded.mapping.fields.get('Mutation.setTitle')?.call?.method).toBe('set');
    expect(typeForRid(loaded.mapping, 'library.author.7')).toBe('Author');
    expect(typeForRid(loaded.mapping, 'library.author.7.books')).toBeUndefined();
    // the merged definitions, with the gateway's directives, make a valid GraphQL schema
    const schema = buildASTSchema(loaded.typeDefs);
    expect(Object.keys(schema.getQueryType()!.getFields()).sort()).toEqual(['author', 'book']);
  });

  it('names the file a problem is in when loading a folder', () => {
    const dir = tempFolder({
      'a.graphql': book,
      'b.graphql': '\n\ntype Query { book(id: ID!): Book @get(rid: "library.book.{nope}") }',
    });
    try {
      loadResourceSchema(dir);
      throw new Error('the schema was accepted');
    } catch (e) {
      expect(e).toBeInstanceOf(SchemaError);
      expect((e as SchemaError).problems).toEqual([expect.stringMatching(/b\.graphql:3: Query\.book: .*\{nope\}/)]);
    }
  });

  it('accepts schema files that declare the gateway directives for their editor', () => {
    const dir = tempFolder({
      'directives.graphql': 'directive @get(rid: String!) on FIELD_DEFINITION\nscalar JSON',
      'query.graphql': 'type Query { x: JSON @get(rid: "a.b") }',
    });
    const loaded = loadResourceSchema(dir);
    expect(() => buildASTSchema(loaded.typeDefs)).not.toThrow();
  });

  it('refuses a path that does not exist and a folder without schema files', () => {
    expect(() => loadResourceSchema(join(tmpdir(), 'resgraph-no-such-dir-' + process.pid))).toThrow(SchemaError);
    const empty = tempFolder({ 'notes.txt': 'nothing here' });
    expect(() => loadResourceSchema(empty)).toThrow(/no \.graphql files/);
  });
});
