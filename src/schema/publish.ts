/**
 * The client-facing schema: what frontends and codegen see. The gateway's
 * directives are implementation details (which rid, which method), so they
 * and their declarations are left out; `@live` stays, because clients write
 * it in their operations.
 */
import { buildASTSchema, printSchema, visit, type DocumentNode } from 'graphql';
import { gatewayDirectiveNames } from './directives.js';
import type { LoadedSchema } from './schema.js';

const clientDirectives = new Set(['live']);

/** The resource schema without its mapping directives, as a document. */
export function clientSchemaDocument(loaded: LoadedSchema): DocumentNode {
  return visit(loaded.typeDefs, {
    Directive(node) {
      return gatewayDirectiveNames.has(node.name.value) ? null : undefined;
    },
    DirectiveDefinition(node) {
      return gatewayDirectiveNames.has(node.name.value) && !clientDirectives.has(node.name.value) ? null : undefined;
    },
  });
}

/** The client-facing schema as SDL, for `resgraph print-schema` and codegen. */
export function printClientSchema(loaded: LoadedSchema): string {
  return printSchema(buildASTSchema(clientSchemaDocument(loaded)));
}
