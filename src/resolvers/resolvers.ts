/**
 * Resolvers turn cache values into GraphQL values: `@get` roots (after an
 * access check), model properties, hard and soft references, collections of
 * references or primitives, data values, and `@call` / `@auth` mutations.
 * They hold no state beyond one execution: what an execution reads is held
 * through the execution's Lease, which the caller releases (a query) or keeps
 * (a live result).
 *
 * Only selected references are followed, so a query fetches exactly the
 * resources it shows. Hard references need no access check of their own
 * (`get` on the root covers what it reaches); soft references do
 * (see docs/protocol-notes.md#access-is-per-token-and-resource).
 */
import { FixedBuffer, Repeater } from '@repeaterjs/repeater';
import {
  GraphQLError,
  Kind,
  getArgumentValues,
  getNullableType,
  isAbstractType,
  isLeafType,
  isListType,
  isObjectType,
  getVariableValues,
  type GraphQLFieldResolver,
  type GraphQLOutputType,
  type GraphQLResolveInfo,
  type GraphQLSchema,
  type GraphQLTypeResolver,
  type OperationDefinitionNode,
} from 'graphql';
import type { AccessChecker, Connection } from '../access/access.js';
import type { MetaSource, ResponseMetaCollector } from '../access/meta.js';
import type { CacheEntry, Lease, ResourceCache } from '../cache/cache.js';
import { errorText, type Logger } from '../log.js';
import type { ResClient } from '../res/client.js';
import {
  ResError,
  accessDenied,
  internalError,
  isData,
  isRef,
  notFound,
  splitRid,
  type ResValue,
  type Response,
} from '../res/protocol.js';
import type { ResultReads } from '../live/incremental.js';
import { typeForRid, type FieldMapping, type ResourceMapping } from '../schema/schema.js';
import { buildParams, fillRidTemplate } from '../schema/template.js';

/** What every execution carries: who asks, and what the execution holds in the cache. */
export interface GatewayContext {
  conn: Connection;
  lease: Lease;
  /** rids whose access this execution checked (roots, soft references): live results re-check them */
  accessed?: Set<string>;
  /**
   * rids of the `@get` root fields (part of `accessed`): losing access to one,
   * or its deletion, ends a live result; a soft reference only shows it on its field
   */
  roots?: Set<string>;
  /** where a live run's result shows what it read, for applying later changes to it (live/incremental.ts) */
  reads?: ResultReads;
}

/** A model from the cache, as the parent of its fields. */
export class ResourceNode {
  constructor(
    readonly rid: string,
    readonly entry: CacheEntry,
  ) {}
}

export interface ResolverDeps {
  cache: ResourceCache;
  access: AccessChecker;
  res: ResClient;
  mapping: ResourceMapping;
  logger: Logger;
}

/** A GraphQL error carrying the RES code (and data) in its extensions; no internals leak. */
export function toGraphQLError(e: unknown, log?: Logger): GraphQLError {
  if (e instanceof GraphQLError) return e;
  if (ResError.is(e)) {
    const extensions: Record<string, unknown> = { code: e.code };
    if (e.data !== undefined) extensions.data = e.data;
    return new GraphQLError(e.message, { extensions });
  }
  log?.error('unexpected resolver error', { error: errorText(e) });
  return internalGraphQLError();
}

/** What a client sees of a failure inside the gateway: its cause goes to the log, never to the client. */
export function internalGraphQLError(): GraphQLError {
  return toGraphQLError(internalError());
}

type Resolver = GraphQLFieldResolver<unknown, GatewayContext>;
type ResponsePath = GraphQLResolveInfo['path'];

export class Resolvers {
  private readonly cache: ResourceCache;
  private readonly access: AccessChecker;
  private readonly res: ResClient;
  private readonly mapping: ResourceMapping;
  private readonly log: Logger;

  constructor(deps: ResolverDeps) {
    this.cache = deps.cache;
    this.access = deps.access;
    this.res = deps.res;
    this.mapping = deps.mapping;
    this.log = deps.logger;
  }

  /** The resolver for one field, chosen once at start-up from its mapping. */
  fieldResolver(typeName: string, fieldName: string, rootTypes: { query?: string; mutation?: string }): Resolver | undefined {
    const m = this.mapping.fields.get(`${typeName}.${fieldName}`);
    if (m?.get) return this.getRoot(m);
    if (m?.call) return this.callRoot(m.call, false);
    if (m?.auth) return this.callRoot(m.auth, true);
    if (typeName === rootTypes.query || typeName === rootTypes.mutation) return undefined;
    if (m?.rid) return (parent) => ridOf(parent);
    return this.property(m?.property ?? fieldName);
  }

  /**
   * Asks, all at once, the access verdicts that the `@get` root fields of a
   * query will need, so that the execution after it finds them known and
   * runs synchronously when the resources are cached. It asks exactly what
   * the resolvers would ask; fields it cannot read plainly (under a
   * directive or a fragment, or with arguments that do not fill the rid
   * template) are left to the resolvers, which ask and report errors.
   */
  askRootAccess(schema: GraphQLSchema, op: OperationDefinitionNode, variables: Record<string, unknown> | undefined, conn: Connection): Promise<unknown> | undefined {
    const root = op.operation === 'query' ? schema.getQueryType() : undefined;
    if (!root) return undefined;
    const coerced = getVariableValues(schema, op.variableDefinitions ?? [], variables ?? {});
    if (!coerced.coerced) return undefined;
    const asks: Promise<unknown>[] = [];
    for (const sel of op.selectionSet.selections) {
      if (sel.kind !== Kind.FIELD || sel.directives?.length) continue;
      const template = this.mapping.fields.get(`${root.name}.${sel.name.value}`)?.get;
      const def = root.getFields()[sel.name.value];
      if (!template || !def) continue;
      try {
        const rid = fillRidTemplate(template, getArgumentValues(def, sel, coerced.coerced), conn.cid);
        asks.push(this.access.verdict(conn, rid).catch(() => undefined));
      } catch {
        // the resolver reports it
      }
    }
    return asks.length > 0 ? Promise.all(asks) : undefined;
  }

  /**
   * A `@event` Subscription field: streams the payload of every
   * `event.<rid>.<name>` after a get access check. The resource is held in
   * the cache for the stream's life, which keeps its event subscription.
   * Event streams are logs: nothing is coalesced or dropped.
   */
  eventSubscription(typeName: string, fieldName: string): { subscribe: Resolver; resolve: Resolver } | undefined {
    const ev = this.mapping.fields.get(`${typeName}.${fieldName}`)?.event;
    if (!ev) return undefined;
    const subscribe: Resolver = async (_parent, args, ctx) => {
      try {
        const rid = fillRidTemplate(ev.rid, args, ctx.conn.cid);
        await this.checkGet(ctx, rid);
        ctx.lease.hold(rid);
        const entry = await this.cache.load(rid);
        const { name } = splitRid(rid);
        return new Repeater<Record<string, unknown>>(async (push, stop) => {
          // Lost access ends the stream, and events wait behind a pending
          // re-check: none reaches a client that may no longer get the
          // resource (see docs/protocol-notes.md#no-events-after-access-is-lost).
          // Each step runs after the one before; a step that fails ends the
          // stream, never the process.
          let allowed = Promise.resolve(true);
          const inTurn = (step: (ok: boolean) => boolean | Promise<boolean>) => {
            allowed = allowed.then(step).catch((e: unknown) => {
              this.log.error('event stream failed', { rid, error: errorText(e) });
              stop();
              return false;
            });
          };
          /** ends the stream with an error as the field's value (which becomes the field's error) */
          const endWith = (e: ResError) => {
            push({ [fieldName]: toGraphQLError(e) }).catch(() => undefined);
            stop();
            return false;
          };
          const listener = (resource: string, event: string, payload: unknown) => {
            if (resource !== name || event !== ev.name) return;
            inTurn((ok) => {
              if (ok) push({ [fieldName]: payload ?? null }).catch(() => stop());
              return ok;
            });
          };
          const recheck = () =>
            inTurn(async (ok) => {
              if (!ok) return ok;
              const denial = await this.access.getDenial(ctx.conn, rid);
              return denial ? endWith(denial) : ok;
            });
          // The resource's delete ends the stream, after the events before it:
          // events matched by name would otherwise flow on from whatever
          // resource takes the name next (Resgate unsubscribes on delete).
          const deletion = this.cache.newLease((_e, change) => {
            if (change.type === 'delete') inTurn((ok) => ok && endWith(notFound()));
          });
          const stopListening = this.cache.onCustomEvent(listener);
          const stopRechecking = ctx.conn.onAccessChanged(recheck);
          deletion.hold(rid);
          // deleted before the first pull started this executor
          if (entry.state === 'deleted') inTurn((ok) => ok && endWith(notFound()));
          await stop;
          stopListening();
          stopRechecking();
          deletion.release();
        }, new FixedBuffer(1000));
      } catch (e) {
        throw toGraphQLError(e, this.log);
      }
    };
    return { subscribe, resolve: (payload) => (payload as Record<string, unknown>)[fieldName] };
  }

  /** Resolves an interface or union member from the rid pattern, or a data object's `__typename`. */
  readonly resolveType: GraphQLTypeResolver<unknown, GatewayContext> = (value) => {
    if (value instanceof ResourceNode) return typeForRid(this.mapping, value.entry.name);
    if (value && typeof value === 'object' && typeof (value as { __typename?: unknown }).__typename === 'string') {
      return (value as { __typename: string }).__typename;
    }
    return undefined;
  };

  // --- roots -----------------------------------------------------------------

  private getRoot(m: FieldMapping): Resolver {
    const template = m.get!;
    return (_parent, args, ctx, info) => {
      try {
        const rid = fillRidTemplate(template, args, ctx.conn.cid);
        ctx.roots?.add(rid);
        const known = this.access.known(ctx.conn, rid);
        if (known) {
          // the verdict is in: with the resource cached too, this resolves
          // without a promise, and a re-run from the cache stays synchronous
          ctx.accessed?.add(rid);
          if (!known.get) throw accessDenied();
          return this.followCatching(rid, info.returnType, ctx, info.path, info);
        }
        return this.checkGet(ctx, rid).then(
          () => this.followCatching(rid, info.returnType, ctx, info.path, info),
          (e: unknown) => Promise.reject(toGraphQLError(e, this.log)),
        );
      } catch (e) {
        throw toGraphQLError(e, this.log);
      }
    };
  }

  private callRoot(c: NonNullable<FieldMapping['call']>, isAuth: boolean): Resolver {
    return async (_parent, args, ctx, info) => {
      try {
        const rid = fillRidTemplate(c.rid, args, ctx.conn.cid);
        const { name, query } = splitRid(rid);
        const payload = { ...ctx.conn.basePayload(query) };
        const params = buildParams(c.params, args);
        if (params !== undefined) payload.params = params;
        const meta = ctx.conn.meta;
        // an earlier reply's 3XX/4XX/5XX meta status ended the HTTP exchange: ask nothing more (access/meta.ts)
        if (meta?.stopped) throw meta.stopped;
        let reply: Response;
        if (isAuth) {
          if (ctx.conn.http) Object.assign(payload, ctx.conn.http);
          reply = await this.res.auth(name, c.method, payload).catch(recordThrown(meta, 'auth'));
        } else {
          await this.access.assertCall(ctx.conn, rid, c.method);
          reply = await this.res.call(name, c.method, payload).catch(recordThrown(meta, 'call'));
        }
        if (meta) meta.reply(isAuth ? 'auth' : 'call', reply);
        if (reply.kind === 'resource') {
          await this.checkGet(ctx, reply.rid);
          return await this.follow(reply.rid, info.returnType, ctx, info.path, info);
        }
        return reply.kind === 'result' ? this.plainValue(reply.result, info.returnType) : null;
      } catch (e) {
        throw toGraphQLError(e, this.log);
      }
    };
  }

  /** Asks (or recalls) get access, and notes the rid for live re-checks. */
  private checkGet(ctx: GatewayContext, rid: string): Promise<void> {
    if (ctx.accessed) {
      ctx.accessed.add(rid);
      // a live result must hear when this verdict changes, also for a resource it may never load
      ctx.lease.watchAccess(rid);
    }
    return this.access.assertGet(ctx.conn, rid);
  }

  // --- object fields ---------------------------------------------------------

  private property(prop: string): Resolver {
    return (parent, _args, ctx, info) => {
      if (parent instanceof ResourceNode) {
        const model = parent.entry.model;
        const value = model && Object.prototype.hasOwnProperty.call(model, prop) ? model[prop] : undefined;
        ctx.reads?.property(parent.entry, prop, value, info);
        return this.resolveValue(value, info, ctx);
      }
      // a data object (a data value or a call result): read it as it is
      const plain = (parent as Record<string, unknown> | null)?.[prop];
      return plain === undefined ? null : this.plainValue(plain, info.returnType);
    };
  }

  /** A stored model value as the field's type wants it. */
  private resolveValue(value: ResValue | undefined, info: GraphQLResolveInfo, ctx: GatewayContext): unknown {
    if (value === undefined || value === null) return null;
    if (isRef(value)) {
      // a scalar field shows the reference itself; a list or object field follows it
      const t = typeShape(info.returnType);
      if (t.kind === 'leaf') return t.name === 'JSON' ? { ...value } : value.rid;
      if (value.soft) return this.followSoft(value.rid, info.returnType, ctx, info.path, info);
      return this.followCatching(value.rid, info.returnType, ctx, info.path, info);
    }
    if (isData(value)) return this.plainValue(value.data, info.returnType);
    return value;
  }

  /** A soft reference is only a link: it needs its own access check. */
  private async followSoft(rid: string, type: GraphQLOutputType, ctx: GatewayContext, path: ResponsePath, field: GraphQLResolveInfo): Promise<unknown> {
    try {
      await this.checkGet(ctx, rid);
      return await this.follow(rid, type, ctx, path, field);
    } catch (e) {
      throw toGraphQLError(e, this.log);
    }
  }

  private followCatching(rid: string, type: GraphQLOutputType, ctx: GatewayContext, path: ResponsePath, field: GraphQLResolveInfo): unknown {
    try {
      const r = this.follow(rid, type, ctx, path, field);
      return r instanceof Promise ? r.catch((e: unknown) => Promise.reject(toGraphQLError(e, this.log))) : r;
    } catch (e) {
      throw toGraphQLError(e, this.log);
    }
  }

  /**
   * Loads a referenced resource, held by the execution's lease, and shapes it
   * for the type: a model for an object type, a collection for a list. Served
   * synchronously when cached, so re-executions from the cache stay cheap.
   * `path`: where the result shows it; `field`: the field that shows it
   * (both for a live run's reads, live/incremental.ts).
   */
  follow(rid: string, type: GraphQLOutputType, ctx: GatewayContext, path: ResponsePath, field: GraphQLResolveInfo): unknown {
    ctx.lease.hold(rid);
    const cached = this.cache.peek(rid);
    if (cached) return this.shape(cached, rid, type, ctx, path, field);
    return this.cache.load(rid).then((entry) => this.shape(entry, rid, type, ctx, path, field));
  }

  private shape(entry: CacheEntry, rid: string, type: GraphQLOutputType, ctx: GatewayContext, path: ResponsePath, field: GraphQLResolveInfo): unknown {
    const t = typeShape(type);
    if (t.kind === 'list') {
      if (entry.kind !== 'collection') throw this.mismatch(rid, 'a model', 'a list');
      const item = t.item;
      const values = entry.collection!;
      ctx.reads?.list(entry, path, item, field, this);
      const itemShape = typeShape(item);
      if (itemShape.kind === 'leaf') {
        const json = itemShape.name === 'JSON';
        return values.map((v) => leafListItem(v, json));
      }
      // an item reached through a reference is shown at the list's path and its index
      return values.map((v, i) => this.listItem(v, item, ctx, { prev: path, key: i, typename: undefined }, field));
    }
    if (t.kind === 'object') {
      if (entry.kind !== 'model') throw this.mismatch(rid, 'a collection', `the object type ${t.name}`);
      // the rid a client asked with, so @rid matches the argument (a normalized query keeps its entry)
      ctx.reads?.node(entry, path);
      return new ResourceNode(rid, entry);
    }
    // a leaf type (JSON, String...) asked for a whole resource: give its value
    ctx.reads?.wholeResource(entry);
    return entry.kind === 'model' ? { ...entry.model } : [...entry.collection!];
  }

  /**
   * One item of a collection shown as a list of objects (or of lists), at
   * `at`: a reference followed, a data value as it is. A live result's
   * update resolves an added item with it too (live/incremental.ts).
   */
  listItem(v: ResValue, item: GraphQLOutputType, ctx: GatewayContext, at: ResponsePath, field: GraphQLResolveInfo): unknown {
    if (!isRef(v)) return isData(v) ? this.plainValue(v.data, item) : v;
    return v.soft ? this.followSoft(v.rid, item, ctx, at, field) : this.followCatching(v.rid, item, ctx, at, field);
  }

  private mismatch(rid: string, got: string, want: string): ResError {
    this.log.warn('resource does not fit the schema', { rid, got, want });
    return internalError(`Resource ${rid} is ${got}, but the schema expects ${want}`);
  }

  /** A plain JSON value (data value, call result) for the field's type. */
  private plainValue(value: unknown, type: GraphQLOutputType): unknown {
    if (value === undefined) return null;
    if (typeShape(type).kind === 'list' && !Array.isArray(value) && value !== null) return [value];
    return value;
  }
}

/**
 * An item of a collection as a list of leaf values shows it: a reference as
 * its rid (the reference itself for JSON), a data value as its data. Live
 * results insert added items the same way (live/incremental.ts).
 */
export function leafListItem(v: ResValue, json: boolean): unknown {
  return isRef(v) ? (json ? { ...v } : v.rid) : isData(v) ? v.data : v;
}

/** What a field type asks of a resource or value: a list (and its item's own type), an object, or a leaf. */
type TypeShape = { kind: 'list'; item: GraphQLOutputType } | { kind: 'object' | 'leaf'; name: string };

const typeShapes = new WeakMap<GraphQLOutputType, TypeShape>();

/**
 * The shape of a field type, worked out once per type: a run asks it for
 * every list item, and graphql's type predicates are costly when they answer
 * no (outside production mode they check for a type from another realm).
 */
function typeShape(type: GraphQLOutputType): TypeShape {
  let shape = typeShapes.get(type);
  if (!shape) {
    const t = getNullableType(type);
    // a list item's own type, not the named one: in [[Int]] an item is a list, reached through a reference
    if (isListType(t)) shape = { kind: 'list', item: t.ofType as GraphQLOutputType };
    else shape = { kind: isObjectType(t) || isAbstractType(t) ? 'object' : 'leaf', name: t.name };
    typeShapes.set(type, shape);
  }
  return shape;
}

/** A rejection handler noting an error reply's meta before passing the error on. */
function recordThrown(meta: ResponseMetaCollector | undefined, source: MetaSource): (e: unknown) => never {
  return (e) => {
    meta?.thrown(source, e);
    throw e;
  };
}

function ridOf(parent: unknown): string | null {
  if (parent instanceof ResourceNode) return parent.rid;
  const rid = (parent as { rid?: unknown } | null)?.rid;
  return typeof rid === 'string' ? rid : null;
}
