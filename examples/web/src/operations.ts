/**
 * The operations the page sends. `graphql()` comes from the code that
 * `npm run codegen` generates in ./gql from the client-facing schema: each
 * call returns a TypedDocumentNode, so urql knows the exact result and
 * variable types of every operation below.
 */
import { graphql } from './gql/index.js';

/** Every book with its author, streamed again whenever any of it changes. */
export const LiveBooks = graphql(`
  subscription LiveBooks {
    books {
      id
      title
      tags
      author {
        id
        name
      }
    }
  }
`);

export const SetBookTitle = graphql(`
  mutation SetBookTitle($id: ID!, $title: String!) {
    setBookTitle(id: $id, title: $title)
  }
`);

export const AddBook = graphql(`
  mutation AddBook($input: NewBook!) {
    addBook(input: $input) {
      id
      title
    }
  }
`);
