/**
 * Builds the executable GraphQL schema: the resource schema's SDL with a
 * resolver for every field of every object type, `resolveType` for
 * interfaces and unions, and the JSON scalar.
 */
import { makeExecutableSchema } from '@graphql-tools/schema';
import { GraphQLScalarType, Kind, type GraphQLSchema, type ValueNode } from 'graphql';
import type { LoadedSchema } from '../schema/schema.js';
import type { Resolvers } from './resolvers.js';

export function buildExecutableSchema(loaded: LoadedSchema, resolvers: Resolvers): GraphQLSchema {
  const roots = rootTypeNames(loaded);
  const map: Record<string, Record<string, unknown>> = {};
  for (const d of loaded.typeDefs.definitions) {
    if (d.kind === Kind.OBJECT_TYPE_DEFINITION || d.kind === Kind.OBJECT_TYPE_EXTENSION) {
      const typeMap = (map[d.name.value] ??= {});
      for (const f of d.fields ?? []) {
        const stream = resolvers.eventSubscription(d.name.value, f.name.value);
        const r = stream ?? resolvers.fieldResolver(d.name.value, f.name.value, roots);
        if (r) typeMap[f.name.value] = r;
      }
    } else if (
      d.kind === Kind.INTERFACE_TYPE_DEFINITION ||
      d.kind === Kind.UNION_TYPE_DEFINITION
    ) {
      map[d.name.value] = { __resolveType: resolvers.resolveType };
    }
  }
  return makeExecutableSchema({
    typeDefs: loaded.typeDefs,
    resolvers: { ...map, JSON: JSONScalar },
  });
}

function rootTypeNames(loaded: LoadedSchema): { query?: string; mutation?: string } {
  const roots: { query?: string; mutation?: string } = { query: 'Query', mutation: 'Mutation' };
  for (const d of loaded.typeDefs.definitions) {
    if (d.kind !== Kind.SCHEMA_DEFINITION) continue;
    for (const op of d.operationTypes) {
      if (op.operation === 'query') roots.query = op.type.name.value;
      if (op.operation === 'mutation') roots.mutation = op.type.name.value;
    }
  }
  return roots;
}

function literalValue(node: ValueNode, variables?: Record<string, unknown> | null): unknown {
  switch (node.kind) {
    case Kind.NULL:
      return null;
    case Kind.INT:
    case Kind.FLOAT:
      return Number(node.value);
    case Kind.STRING:
    case Kind.ENUM:
    case Kind.BOOLEAN:
      return node.value;
    case Kind.LIST:
      return node.values.map((v) => literalValue(v, variables));
    case Kind.OBJECT:
      return Object.fromEntries(node.fields.map((f) => [f.name.value, literalValue(f.value, variables)]));
    case Kind.VARIABLE:
      return variables?.[node.name.value];
  }
}

/** Any JSON value, passed through as it is. */
export const JSONScalar = new GraphQLScalarType({
  name: 'JSON',
  description: 'Any JSON value: RES data values and shapes the schema does not map.',
  serialize: (v) => v,
  parseValue: (v) => v,
  parseLiteral: (node, variables) => literalValue(node, variables),
});
