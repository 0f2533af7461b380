/* eslint-disable */
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';
export type Maybe<T> = T | null;
export type InputMaybe<T> = Maybe<T>;
export type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
export type MakeOptional<T, K extends keyof T> = Omit<T, K> & { [SubKey in K]?: Maybe<T[SubKey]> };
export type MakeMaybe<T, K extends keyof T> = Omit<T, K> & { [SubKey in K]: Maybe<T[SubKey]> };
export type MakeEmpty<T extends { [key: string]: unknown }, K extends keyof T> = { [_ in K]?: never };
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
/** All built-in and custom scalars, mapped to their actual values */
export type Scalars = {
  ID: { input: string; output: string; }
  String: { input: string; output: string; }
  Boolean: { input: boolean; output: boolean; }
  Int: { input: number; output: number; }
  Float: { input: number; output: number; }
  /** Any JSON value: RES data values and shapes the schema does not map. */
  JSON: { input: unknown; output: unknown; }
};

/** Someone who wrote books. */
export type Author = {
  __typename?: 'Author';
  books: Array<Book>;
  id: Scalars['ID']['output'];
  name: Scalars['String']['output'];
};

/** A book in the library. */
export type Book = {
  __typename?: 'Book';
  author: Author;
  /** The resource ID, stable for client caches. */
  id: Scalars['ID']['output'];
  /** Free-form metadata: a RES data value. */
  meta?: Maybe<Scalars['JSON']['output']>;
  tags: Array<Scalars['String']['output']>;
  title: Scalars['String']['output'];
};

export type Mutation = {
  __typename?: 'Mutation';
  addBook?: Maybe<Book>;
  /** Password login (alice/wonderland is an admin, bob/builder a reader); the connection is signed in from now on. */
  login?: Maybe<Session>;
  /** Signs the connection out. */
  logout?: Maybe<Scalars['Boolean']['output']>;
  removeBook?: Maybe<Scalars['Boolean']['output']>;
  setBookTitle?: Maybe<Scalars['Boolean']['output']>;
};


export type MutationAddBookArgs = {
  input: NewBook;
};


export type MutationLoginArgs = {
  name: Scalars['String']['input'];
  password: Scalars['String']['input'];
};


export type MutationRemoveBookArgs = {
  id: Scalars['ID']['input'];
};


export type MutationSetBookTitleArgs = {
  id: Scalars['ID']['input'];
  title: Scalars['String']['input'];
};

export type NewBook = {
  authorId: Scalars['ID']['input'];
  title: Scalars['String']['input'];
};

export type Query = {
  __typename?: 'Query';
  author?: Maybe<Author>;
  book?: Maybe<Book>;
  books: Array<Book>;
  search: Array<Book>;
  /** Only an admin may read it (log in as alice): denied to everyone else. */
  secret?: Maybe<Book>;
};


export type QueryAuthorArgs = {
  id: Scalars['ID']['input'];
};


export type QueryBookArgs = {
  id: Scalars['ID']['input'];
};


export type QuerySearchArgs = {
  limit?: InputMaybe<Scalars['Int']['input']>;
  text?: InputMaybe<Scalars['String']['input']>;
};

/** A signed-in user, and a JWT to send back later (session cookie or Bearer header). */
export type Session = {
  __typename?: 'Session';
  jwt: Scalars['String']['output'];
  role: Scalars['String']['output'];
  user: Scalars['String']['output'];
};

/** Live results: each @get field of Query, streamed again whenever its data changes. */
export type Subscription = {
  __typename?: 'Subscription';
  author?: Maybe<Author>;
  book?: Maybe<Book>;
  books: Array<Book>;
  search: Array<Book>;
  /** Only an admin may read it (log in as alice): denied to everyone else. */
  secret?: Maybe<Book>;
};


/** Live results: each @get field of Query, streamed again whenever its data changes. */
export type SubscriptionAuthorArgs = {
  id: Scalars['ID']['input'];
};


/** Live results: each @get field of Query, streamed again whenever its data changes. */
export type SubscriptionBookArgs = {
  id: Scalars['ID']['input'];
};


/** Live results: each @get field of Query, streamed again whenever its data changes. */
export type SubscriptionSearchArgs = {
  limit?: InputMaybe<Scalars['Int']['input']>;
  text?: InputMaybe<Scalars['String']['input']>;
};

export type LiveBooksSubscriptionVariables = Exact<{ [key: string]: never; }>;


export type LiveBooksSubscription = { __typename?: 'Subscription', books: Array<{ __typename?: 'Book', id: string, title: string, tags: Array<string>, author: { __typename?: 'Author', id: string, name: string } }> };

export type SetBookTitleMutationVariables = Exact<{
  id: Scalars['ID']['input'];
  title: Scalars['String']['input'];
}>;


export type SetBookTitleMutation = { __typename?: 'Mutation', setBookTitle?: boolean | null };

export type AddBookMutationVariables = Exact<{
  input: NewBook;
}>;


export type AddBookMutation = { __typename?: 'Mutation', addBook?: { __typename?: 'Book', id: string, title: string } | null };


export const LiveBooksDocument = {"__meta__":{"hash":"08ba361f7312ae4ce00f05d41b13263cde481c08dff98695239ab1c1ba92cde4"},"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"subscription","name":{"kind":"Name","value":"LiveBooks"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"books"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"title"}},{"kind":"Field","name":{"kind":"Name","value":"tags"}},{"kind":"Field","name":{"kind":"Name","value":"author"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"name"}}]}}]}}]}}]} as unknown as DocumentNode<LiveBooksSubscription, LiveBooksSubscriptionVariables>;
export const SetBookTitleDocument = {"__meta__":{"hash":"3400707482f8869a5e91e333dc462a345ea7e783dfcc87c25d516a4241de60e4"},"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"SetBookTitle"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"id"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"ID"}}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"title"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"String"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"setBookTitle"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"id"},"value":{"kind":"Variable","name":{"kind":"Name","value":"id"}}},{"kind":"Argument","name":{"kind":"Name","value":"title"},"value":{"kind":"Variable","name":{"kind":"Name","value":"title"}}}]}]}}]} as unknown as DocumentNode<SetBookTitleMutation, SetBookTitleMutationVariables>;
export const AddBookDocument = {"__meta__":{"hash":"f174c89ce93161e936725ad9e8b039ed72193c670b80ac4545e8b84944888fa0"},"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"AddBook"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"input"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"NewBook"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"addBook"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"input"},"value":{"kind":"Variable","name":{"kind":"Name","value":"input"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"title"}}]}}]}}]} as unknown as DocumentNode<AddBookMutation, AddBookMutationVariables>;