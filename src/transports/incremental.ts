/**
 * `@defer` / `@stream` for a client that accepts only JSON: the parts of an
 * incremental result are merged into the one result the operation would
 * have given without the directives, and answered as a single JSON body.
 * Clients that accept `multipart/mixed` or `text/event-stream` get the parts
 * as they come (Yoga's processors); one that sends a document with @defer
 * written for another client (a shared fragment, generated code) still gets
 * its answer instead of a 406.
 */
import type { ExecutionResult, GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { usesIncrementalDelivery } from './documents.js';

/** One subsequent part's entries (the 2022 incremental delivery format that Yoga's executor emits). */
interface IncrementalEntry {
  path: (string | number)[];
  data?: Record<string, unknown> | null;
  items?: unknown[] | null;
  errors?: GraphQLError[];
}

interface IncrementalPart extends ExecutionResult {
  hasNext?: boolean;
  incremental?: IncrementalEntry[];
}

type Container = Record<string, unknown> | unknown[];

/** The object or list at `path` in `data`, if there is one (a null on the way means the part has nowhere to go). */
function at(data: unknown, path: readonly (string | number)[]): Container | undefined {
  let node = data;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string | number, unknown>)[key];
  }
  return node !== null && typeof node === 'object' ? (node as Container) : undefined;
}

/** Deep-merges deferred fields into an object: a fragment's fields may complete objects the initial part began. */
function mergeInto(target: Record<string, unknown>, source: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(source)) {
    const existing = target[key];
    if (existing && value && typeof existing === 'object' && typeof value === 'object' && !Array.isArray(value)) {
      mergeInto(existing as Record<string, unknown>, value as Record<string, unknown>);
    } else {
      target[key] = value;
    }
  }
}

/** Applies one part to the merged result. */
function apply(merged: { data?: Record<string, unknown> | null; errors: GraphQLError[] }, part: IncrementalPart): void {
  if (part.errors) merged.errors.push(...part.errors);
  for (const entry of part.incremental ?? []) {
    if (entry.errors) merged.errors.push(...entry.errors);
    if (entry.items) {
      // a streamed item's path ends with its index in the list
      const list = at(merged.data, entry.path.slice(0, -1));
      if (Array.isArray(list)) list.splice(Number(entry.path[entry.path.length - 1]), entry.items.length, ...entry.items);
    } else if (entry.data) {
      const target = at(merged.data, entry.path);
      if (target && !Array.isArray(target)) mergeInto(target, entry.data);
    }
  }
}

/** Reads every part of an incremental result and merges them into one result. */
async function mergeIncremental(parts: AsyncIterable<IncrementalPart>): Promise<ExecutionResult> {
  const merged: { data?: Record<string, unknown> | null; errors: GraphQLError[] } = { errors: [] };
  let first = true;
  for await (const part of parts) {
    if (first) {
      merged.data = part.data as Record<string, unknown> | null | undefined;
      if (part.errors) merged.errors.push(...part.errors);
      first = false;
    } else {
      apply(merged, part);
    }
    if (part.hasNext === false) break;
  }
  const { data, errors } = merged;
  return errors.length > 0 ? { data, errors } : { data };
}

/** The media type to answer a JSON-only client with, or undefined when it accepts no JSON. */
function jsonType(accept: string): string | undefined {
  if (/application\/graphql-response\+json/i.test(accept)) return 'application/graphql-response+json';
  if (/application\/json|\*\/\*/i.test(accept)) return 'application/json';
  return undefined;
}

export function useIncrementalAsJson(): Plugin {
  const incremental = new WeakSet<Request>();
  return {
    onExecute({ args }) {
      const request = (args.contextValue as { request?: Request }).request;
      if (request && usesIncrementalDelivery(args.document)) incremental.add(request);
    },
    onResultProcess({ request, result, resultProcessor, setResultProcessor }) {
      // only what no processor took: the client accepts neither multipart nor SSE
      if (resultProcessor || !incremental.has(request)) return;
      const type = jsonType(request.headers.get('accept') ?? '*/*');
      if (!type) return;
      setResultProcessor(async (r, fetchAPI) => {
        const merged = await mergeIncremental(r as AsyncIterable<IncrementalPart>);
        return new fetchAPI.Response(JSON.stringify(merged), { status: 200, headers: { 'content-type': `${type}; charset=utf-8` } });
      }, type);
    },
  };
}
