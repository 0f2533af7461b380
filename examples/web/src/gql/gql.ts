/* eslint-disable */
import * as types from './graphql.js';
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';

/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "\n  subscription LiveBooks {\n    books {\n      id\n      title\n      tags\n      author {\n        id\n        name\n      }\n    }\n  }\n": typeof types.LiveBooksDocument,
    "\n  mutation SetBookTitle($id: ID!, $title: String!) {\n    setBookTitle(id: $id, title: $title)\n  }\n": typeof types.SetBookTitleDocument,
    "\n  mutation AddBook($input: NewBook!) {\n    addBook(input: $input) {\n      id\n      title\n    }\n  }\n": typeof types.AddBookDocument,
};
const documents: Documents = {
    "\n  subscription LiveBooks {\n    books {\n      id\n      title\n      tags\n      author {\n        id\n        name\n      }\n    }\n  }\n": types.LiveBooksDocument,
    "\n  mutation SetBookTitle($id: ID!, $title: String!) {\n    setBookTitle(id: $id, title: $title)\n  }\n": types.SetBookTitleDocument,
    "\n  mutation AddBook($input: NewBook!) {\n    addBook(input: $input) {\n      id\n      title\n    }\n  }\n": types.AddBookDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 *
 *
 * @example
 * ```ts
 * const query = graphql(`query GetUser($id: ID!) { user(id: $id) { name } }`);
 * ```
 *
 * The query argument is unknown!
 * Please regenerate the types.
 */
export function graphql(source: string): unknown;

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription LiveBooks {\n    books {\n      id\n      title\n      tags\n      author {\n        id\n        name\n      }\n    }\n  }\n"): (typeof documents)["\n  subscription LiveBooks {\n    books {\n      id\n      title\n      tags\n      author {\n        id\n        name\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation SetBookTitle($id: ID!, $title: String!) {\n    setBookTitle(id: $id, title: $title)\n  }\n"): (typeof documents)["\n  mutation SetBookTitle($id: ID!, $title: String!) {\n    setBookTitle(id: $id, title: $title)\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation AddBook($input: NewBook!) {\n    addBook(input: $input) {\n      id\n      title\n    }\n  }\n"): (typeof documents)["\n  mutation AddBook($input: NewBook!) {\n    addBook(input: $input) {\n      id\n      title\n    }\n  }\n"];

export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}

export type DocumentType<TDocumentNode extends DocumentNode<any, any>> = TDocumentNode extends DocumentNode<  infer TType,  any>  ? TType  : never;