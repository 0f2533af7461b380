/**
 * Resgate as an oracle for differential tests: finds the binary (RESGATE_BIN,
 * else ../shared/resgate/resgate beside the repository), starts it on a free
 * port against a given nats-server and stops it; and a minimal client of its
 * WebSocket protocol (RES-Client 1.2.3) that rebuilds the state a resclient
 * would hold — models, collections and errors from subscribe results and
 * from the resource sets inside events, changed by change/add/remove events —
 * plus `denormalize`, which reads that state along the references a GraphQL
 * selection follows, so it can be compared with a resgraph result.
 *
 * Nothing in src/ may use this: resgraph never depends on Resgate.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kind, parse, type FieldNode, type OperationDefinitionNode, type SelectionSetNode } from 'graphql';
import WebSocket from 'ws';
import { freePort } from './nats-server.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The Resgate binary to use, or why there is none. */
export function findResgate(): { bin: string } | { reason: string } {
  const fromEnv = process.env.RESGATE_BIN;
  const bin = fromEnv || resolve(repoRoot, '../shared/resgate/resgate');
  try {
    accessSync(bin, constants.X_OK);
    return { bin };
  } catch {
    return { reason: `no executable Resgate at ${bin}${fromEnv ? ' (RESGATE_BIN)' : ' (set RESGATE_BIN to use another)'}` };
  }
}

export interface ResgateServer {
  /** http://127.0.0.1:<port> */
  url: string;
  /** ws://127.0.0.1:<port>/ */
  wsUrl: string;
  port: number;
  /** what it printed, for failure messages */
  output(): string;
  stop(): Promise<void>;
}

/** Starts Resgate on a free loopback port and resolves once it prints "Listening on". */
export async function startResgate(
  bin: string,
  natsUrl: string,
  opts: { requestTimeout?: number; /** more flags, such as ['-u', 'session.cookie'] for header auth */ args?: string[] } = {},
): Promise<ResgateServer> {
  const port = await freePort();
  const args = ['-n', natsUrl, '-i', '127.0.0.1', '-p', String(port), ...(opts.args ?? [])];
  if (opts.requestTimeout !== undefined) args.push('-r', String(opts.requestTimeout));
  const child: ChildProcess = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  // if the test process goes away without stop() (a worker torn down after a timeout), take Resgate with it
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  let out = '';
  await new Promise<void>((resolveStart, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`Resgate did not start within 10 s:\n${out}`));
    }, 10_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.includes('Listening on')) {
        clearTimeout(timer);
        resolveStart();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run Resgate at ${bin}: ${e.message}`));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Resgate exited with ${code} before listening:\n${out}`));
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/`,
    port,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      await new Promise<void>((done) => {
        const kill = setTimeout(() => child.kill('SIGKILL'), 3000);
        child.once('exit', () => {
          clearTimeout(kill);
          done();
        });
        child.kill('SIGTERM');
      });
    },
  };
}

/** An error object as Resgate sends it to clients. */
export interface ResErrorObject {
  code: string;
  message: string;
  data?: unknown;
}

export class ResgateRequestError extends Error {
  constructor(readonly error: ResErrorObject) {
    super(`${error.code}: ${error.message}`);
  }
  get code(): string {
    return this.error.code;
  }
  get data(): unknown {
    return this.error.data;
  }
}

interface ResourceSet {
  models?: Record<string, Record<string, unknown>>;
  collections?: Record<string, unknown[]>;
  errors?: Record<string, ResErrorObject>;
}

/** One Resgate WebSocket connection and the client-side state it has built. */
export class ResgateClient {
  readonly models = new Map<string, Record<string, unknown>>();
  readonly collections = new Map<string, unknown[]>();
  readonly errors = new Map<string, ResErrorObject>();
  /** every event pushed, in order */
  readonly events: { event: string; data: unknown }[] = [];
  /** custom events, in order */
  readonly custom: { rid: string; name: string; data: unknown }[] = [];
  /** rids whose `delete` event arrived */
  readonly deleted = new Set<string>();
  /** events that did not fit the state (a protocol violation, or a bug here): tests expect none */
  readonly protocolErrors: string[] = [];
  /** rids whose subscription the gateway ended, with the reason of the `unsubscribe` event */
  readonly unsubscribed = new Map<string, ResErrorObject>();
  /** messages that answer no request of this client and are no event (a response without an id, say) */
  readonly stray: unknown[] = [];
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: unknown) => void; reject: (e: Error) => void }>();
  private readonly listeners = new Set<() => void>();

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (raw) => this.onMessage(String(raw)));
    ws.on('close', () => {
      for (const p of this.pending.values()) p.reject(new Error('Resgate connection closed'));
      this.pending.clear();
    });
  }

  /** Opens a connection and agrees on protocol 1.2.3. */
  static async connect(wsUrl: string, timeoutMs = 5000): Promise<ResgateClient> {
    const ws = new WebSocket(wsUrl);
    await new Promise<void>((resolveOpen, reject) => {
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`no WebSocket connection to Resgate within ${timeoutMs} ms`));
      }, timeoutMs);
      ws.once('open', () => {
        clearTimeout(timer);
        resolveOpen();
      });
      ws.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    const client = new ResgateClient(ws);
    await client.request('version', { protocol: '1.2.3' }, timeoutMs);
    return client;
  }

  /** Sends a request; resolves with its result, rejects with a ResgateRequestError for an error response. */
  request(method: string, params?: unknown, timeoutMs = 10_000): Promise<any> {
    const id = this.nextId++;
    return new Promise((resolveReq, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no Resgate response to ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (r) => {
          clearTimeout(timer);
          resolveReq(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.ws.send(JSON.stringify(params === undefined ? { id, method } : { id, method, params }));
    });
  }

  /** Sends a text frame as it is: for requests a client should not send. */
  sendRaw(text: string): void {
    this.ws.send(text);
  }

  /** Subscribes to a resource and adds the resources of the result to the state. */
  async subscribe(rid: string, timeoutMs?: number): Promise<void> {
    this.addResources(await this.request(`subscribe.${rid}`, undefined, timeoutMs));
  }

  /** Calls a method; resolves with the result's payload, or `{rid}` for a resource response (whose resources join the state). */
  async call(rid: string, method: string, params?: unknown, timeoutMs?: number): Promise<unknown> {
    return this.methodResult(await this.request(`call.${rid}.${method}`, params, timeoutMs));
  }

  async auth(rid: string, method: string, params?: unknown, timeoutMs?: number): Promise<unknown> {
    return this.methodResult(await this.request(`auth.${rid}.${method}`, params, timeoutMs));
  }

  /** Resolves with the first truthy value of `fn`, evaluated now and after every message; rejects after timeoutMs. */
  waitFor<T>(fn: () => T, timeoutMs = 5000, what = 'a condition on the Resgate client'): Promise<NonNullable<T>> {
    return new Promise((resolveWait, reject) => {
      const check = (): boolean => {
        let v: T;
        try {
          v = fn();
        } catch (e) {
          this.listeners.delete(check);
          clearTimeout(timer);
          reject(e as Error);
          return true;
        }
        if (!v) return false;
        this.listeners.delete(check);
        clearTimeout(timer);
        resolveWait(v as NonNullable<T>);
        return true;
      };
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      if (!check()) this.listeners.add(check);
    });
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((done) => {
      this.ws.once('close', () => done());
      // Resgate does not answer a closing handshake at once (ws would wait 30 s for it): just drop the socket
      this.ws.terminate();
    });
  }

  private methodResult(result: any): unknown {
    if (result && typeof result === 'object' && 'rid' in result) {
      this.addResources(result);
      return { rid: result.rid };
    }
    return result?.payload;
  }

  private addResources(set: ResourceSet | undefined): void {
    if (!set) return;
    for (const [rid, m] of Object.entries(set.models ?? {})) {
      this.models.set(rid, m);
      this.errors.delete(rid);
    }
    for (const [rid, c] of Object.entries(set.collections ?? {})) {
      this.collections.set(rid, c);
      this.errors.delete(rid);
    }
    for (const [rid, e] of Object.entries(set.errors ?? {})) {
      this.errors.set(rid, e);
      this.models.delete(rid);
      this.collections.delete(rid);
    }
  }

  private onMessage(text: string): void {
    const msg = JSON.parse(text);
    if (typeof msg.id === 'number' && this.pending.has(msg.id)) {
      const p = this.pending.get(msg.id)!;
      this.pending.delete(msg.id);
      if (msg.error) p.reject(new ResgateRequestError(msg.error));
      else p.resolve(msg.result);
    } else if (typeof msg.event === 'string') {
      this.onEvent(msg.event, msg.data);
    } else {
      this.stray.push(msg);
    }
    for (const l of [...this.listeners]) l();
  }

  /** Applies a pushed event: `<rid>.<name>` (event names have no dots; a query part may). */
  private onEvent(event: string, data: any): void {
    this.events.push({ event, data });
    const dot = event.lastIndexOf('.');
    const rid = event.slice(0, dot);
    const name = event.slice(dot + 1);
    switch (name) {
      case 'change': {
        this.addResources(data);
        const model = this.models.get(rid);
        if (!model) {
          this.protocolErrors.push(`change event for ${rid}, which the client does not hold as a model`);
          break;
        }
        for (const [k, v] of Object.entries((data?.values ?? {}) as Record<string, unknown>)) {
          if (v && typeof v === 'object' && (v as { action?: unknown }).action === 'delete') delete model[k];
          else model[k] = v;
        }
        break;
      }
      case 'add': {
        this.addResources(data);
        const list = this.collections.get(rid);
        if (!list) {
          this.protocolErrors.push(`add event for ${rid}, which the client does not hold as a collection`);
          break;
        }
        list.splice(data.idx, 0, data.value);
        break;
      }
      case 'remove': {
        const list = this.collections.get(rid);
        if (!list) {
          this.protocolErrors.push(`remove event for ${rid}, which the client does not hold as a collection`);
          break;
        }
        list.splice(data.idx, 1);
        break;
      }
      case 'delete':
        this.deleted.add(rid);
        break;
      case 'unsubscribe':
        this.unsubscribed.set(rid, data?.reason);
        break;
      default:
        this.custom.push({ rid, name, data });
    }
  }
}

/** A result in the shape both gateways are compared in: GraphQL data and the RES codes of errors by path. */
export interface Denormalized {
  data: Record<string, unknown>;
  errors: { path: (string | number)[]; code: string }[];
}

/** The one root field of a GraphQL operation (the selection to follow). */
export function rootField(document: string): FieldNode {
  const op = parse(document).definitions.find((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
  const fields = (op?.selectionSet.selections ?? []).filter((s): s is FieldNode => s.kind === Kind.FIELD);
  if (fields.length !== 1) throw new Error('denormalize needs an operation with exactly one root field');
  return fields[0];
}

/**
 * Reads a Resgate client's state from `rid` along the selection of a GraphQL
 * root field, as resgraph would resolve it with this file's schema
 * conventions: a field reads the model property of its name; `id` is the
 * resource ID (`@rid`); a reference is followed where the field has a
 * sub-selection, and a leaf field on a reference to a collection lists its
 * values; a data value is its data; a missing property is null. A resource
 * the client holds as an error is null with that error's code at its path.
 */
export function denormalize(client: ResgateClient, rid: string, field: FieldNode): Denormalized {
  const errors: Denormalized['errors'] = [];
  const key = field.alias?.value ?? field.name.value;

  const resource = (r: string, sel: SelectionSetNode | undefined, path: (string | number)[]): unknown => {
    const err = client.errors.get(r);
    if (err) {
      errors.push({ path, code: err.code });
      return null;
    }
    const model = client.models.get(r);
    if (model) return sel ? object(r, model, sel, path) : { ...model };
    const list = client.collections.get(r);
    if (list) return list.map((v, i) => value(v, sel, [...path, i]));
    throw new Error(`the Resgate client holds no resource ${r}`);
  };

  const object = (r: string, model: Record<string, unknown>, sel: SelectionSetNode, path: (string | number)[]) => {
    const out: Record<string, unknown> = {};
    for (const s of sel.selections) {
      if (s.kind !== Kind.FIELD) throw new Error('denormalize follows plain fields only');
      const k = s.alias?.value ?? s.name.value;
      if (s.name.value === '__typename') continue;
      out[k] = s.name.value === 'id' ? r : value(model[s.name.value], s.selectionSet, [...path, k]);
    }
    return out;
  };

  const value = (v: unknown, sel: SelectionSetNode | undefined, path: (string | number)[]): unknown => {
    if (v === undefined || v === null) return null;
    if (typeof v === 'object' && typeof (v as { rid?: unknown }).rid === 'string') {
      const ref = v as { rid: string; soft?: boolean };
      if (ref.soft) throw new Error('denormalize does not follow soft references (Resgate sends no soft-referenced resources)');
      if (!sel && client.models.has(ref.rid)) return ref.rid; // a leaf field shows a model reference as its rid
      return resource(ref.rid, sel, path);
    }
    if (typeof v === 'object' && 'data' in (v as object)) return (v as { data: unknown }).data;
    return v;
  };

  return { data: { [key]: resource(rid, field.selectionSet, [key]) }, errors: sortErrors(errors) };
}

export function sortErrors<T extends { path: (string | number)[]; code: string }>(errors: T[]): T[] {
  return [...errors].sort((a, b) => JSON.stringify(a.path).localeCompare(JSON.stringify(b.path)) || a.code.localeCompare(b.code));
}
