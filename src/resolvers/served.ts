/**
 * The schema being served, which a reload replaces. One generation is the
 * resource schema (SDL and mapping), the resolvers made for its mapping and
 * the executable schema built from both; transports read `current` for each
 * operation they prepare, and what depends on the schema (validated
 * documents, compiled plans) is kept per generation, so an operation is
 * never validated against one schema and run against another.
 *
 * It only builds and hands out generations: which streams survive a reload
 * is the live engine's business, when to reload the server's.
 */
import { validateSchema, type GraphQLSchema } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { SchemaError, type LoadedSchema, type ResourceMapping } from '../schema/schema.js';
import { buildExecutableSchema } from './executable.js';
import { Resolvers, type ResolverDeps } from './resolvers.js';

export interface SchemaGeneration {
  /** 1 for the schema the gateway started with, one more with each reload applied */
  readonly number: number;
  readonly loaded: LoadedSchema;
  readonly mapping: ResourceMapping;
  readonly resolvers: Resolvers;
  /** the executable schema */
  readonly schema: GraphQLSchema;
}

export class ServedSchema {
  current: SchemaGeneration;
  /** every schema object of a generation: the executable one, and those Yoga's plugins derive from it (adding @defer and @stream) */
  private readonly generations = new WeakMap<GraphQLSchema, number>();
  private setYogaSchema: ((schema: GraphQLSchema) => void) | undefined;

  /** Builds the first generation. Throws SchemaError when the schema cannot be served. */
  constructor(
    private readonly deps: Omit<ResolverDeps, 'mapping'>,
    loaded: LoadedSchema,
  ) {
    this.current = this.build(loaded, 1);
    this.generations.set(this.current.schema, 1);
  }

  /**
   * A generation to follow the current one. Throws SchemaError naming every
   * problem: the resource schema's own checks, then GraphQL's (unknown
   * directive arguments, types that do not fit their interfaces...).
   */
  next(loaded: LoadedSchema): SchemaGeneration {
    return this.build(loaded, this.current.number + 1);
  }

  /** Serves a generation from now on: Yoga switches to its schema too. */
  replace(generation: SchemaGeneration): void {
    this.current = generation;
    this.generations.set(generation.schema, generation.number);
    this.setYogaSchema?.(generation.schema);
  }

  /** Whether a schema object (executable, or derived by Yoga's plugins) belongs to the current generation. */
  isCurrent(schema: GraphQLSchema): boolean {
    return this.generations.get(schema) === this.current.number;
  }

  /**
   * The Yoga plugin through which `replace` reaches Yoga's pipeline (HTTP,
   * Yoga's SSE, and the validation every transport runs through it), and
   * which learns the schemas Yoga's plugins derive from each generation's.
   */
  yogaPlugin(): Plugin {
    return {
      onPluginInit: ({ setSchema }) => {
        this.setYogaSchema = setSchema;
      },
      onSchemaChange: ({ schema }) => {
        if (!this.generations.has(schema)) this.generations.set(schema, this.current.number);
      },
    };
  }

  private build(loaded: LoadedSchema, number: number): SchemaGeneration {
    const resolvers = new Resolvers({ ...this.deps, mapping: loaded.mapping });
    let schema: GraphQLSchema;
    try {
      schema = buildExecutableSchema(loaded, resolvers);
    } catch (e) {
      // graphql-tools reports the SDL's errors in one message, a blank line between them
      throw new SchemaError((e as Error).message.split('\n\n').map((m) => m.trim()).filter((m) => m !== ''));
    }
    const invalid = validateSchema(schema);
    if (invalid.length > 0) throw new SchemaError(invalid.map((e) => e.message));
    return { number, loaded, mapping: loaded.mapping, resolvers, schema };
  }
}
