/** The resource schema the core conformance tests run against (the library example plus test-only fields). */
export const librarySdl = /* GraphQL */ `
type Book @resource(rid: "library.book.{id}") {
  id: ID! @rid
  title: String
  author: Author
  tags: [String!]
  meta: JSON
  related: Book
}

type Author @resource(rid: "library.author.{id}") {
  id: ID! @rid
  name: String
  books: [Book!]
}

type Query {
  book(id: ID!): Book @get(rid: "library.book.{id}")
  author(id: ID!): Author @get(rid: "library.author.{id}")
  books: [Book!]! @get(rid: "library.books")
  list(id: ID!): [JSON] @get(rid: "library.list.{id}")
  search(text: String, limit: Int = 20): [Book!]! @get(rid: "library.books?text={text}&limit={limit}")
  searchNormalized(text: String, limit: Int = 20): [Book!]! @get(rid: "library.books?limit={limit}&text={text}")
  raw(name: String!): JSON @get(rid: "{name}.thing")
  session: JSON @get(rid: "library.session.{cid}")
}

input NewBook {
  title: String!
  authorId: ID!
}

type Mutation {
  setBookTitle(id: ID!, title: String!): Boolean @call(rid: "library.book.{id}", method: "set", params: "{ title }")
  setBookTitleRaw(id: ID!, title: JSON): Boolean @call(rid: "library.book.{id}", method: "set", params: "{ title }")
  renameBook(id: ID!, newTitle: String!): JSON @call(rid: "library.book.{id}", method: "rename", params: "{ title: newTitle }")
  addBook(input: NewBook!): Book @call(rid: "library.books", method: "add")
  newBook(input: NewBook!): Book @call(rid: "library.books", method: "new")
  removeBook(id: ID!): Boolean @call(rid: "library.books", method: "remove")
  ping(id: ID!, n: Int, note: String): JSON @call(rid: "library.book.{id}", method: "ping")
  poke(name: String!): JSON @call(rid: "{name}.thing", method: "poke")
  login(name: String!, password: String!): Boolean @auth(rid: "auth.user", method: "login")
}
`;

/** The schema of the `@live` tests: rated books, one at a time or in lists. */
export const ratedBooksSdl = /* GraphQL */ `
type Book @resource(rid: "library.book.{id}") {
  id: ID! @rid
  title: String
  rating: Int
  tags: [String!]
}

type Query {
  book(id: ID!): Book @get(rid: "library.book.{id}")
  books: [Book!]! @get(rid: "library.books")
  shelf(id: ID!): [Book!]! @get(rid: "library.shelf.{id}")
}
`;
