/**
 * OpenTelemetry traces: this module owns every span the gateway makes and
 * the trace context it hands to services.
 *
 * - One span per GraphQL operation, on every transport, named
 *   `<type>.<name>` (`query.Book`, `subscription.anonymous`). Where Yoga
 *   executes, @envelop/opentelemetry makes it (`yogaPlugins`); the paths
 *   that run operations themselves (the HTTP short path, our graphql-ws
 *   loop, graphql-sse's single connection, their live streams) make it with
 *   `operation`, with the same name and attributes. A live operation's span
 *   lasts as long as its stream.
 * - One span per get, access, call and auth request, a child of the span
 *   that was active when it was sent (the operation's, through the
 *   AsyncLocalStorage context); its W3C trace context goes to the service in
 *   the request's NATS headers (`traceparent`, `tracestate`), so the service
 *   can continue the trace.
 * - One span per update a live stream pushes, from the arrival of the event
 *   behind it to the push, in a trace of its own, linked to the stream's
 *   operation span (a subscription may last for days: its updates are not
 *   kept in its trace).
 *
 * server.ts imports this module only when tracing is on. With tracing off
 * the hooks the other parts take (ResClient's tracer, the live engine's,
 * the transports') are undefined: nothing here is loaded or runs, no
 * provider is registered, no header is built.
 */
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  context,
  createContextKey,
  trace,
  type Attributes,
  type TextMapSetter,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { ATTR_ERROR_TYPE } from '@opentelemetry/semantic-conventions';
import { AttributeName, getCurrentOtelContext, useOpenTelemetry } from '@envelop/opentelemetry';
import { getOperationAST, type ExecutionArgs, type OperationDefinitionNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { headers as natsHeaders, type MsgHdrs } from 'nats';
import type { ConnectionTransport } from '../access/access.js';
import type { LiveTracer } from '../live/engine.js';
import type { PushTracer } from '../live/stream.js';
import type { RequestKind, RequestTracer, TracedRequest } from '../res/client.js';
import type { GatewayContext } from '../resolvers/resolvers.js';

// Semantic-convention names that are still "incubating": copied, as the
// package advises, because its incubating entry point may change them in a
// minor version.
const ATTR_GRAPHQL_OPERATION_NAME = 'graphql.operation.name';
const ATTR_GRAPHQL_OPERATION_TYPE = 'graphql.operation.type';
const ATTR_MESSAGING_SYSTEM = 'messaging.system';
const ATTR_MESSAGING_DESTINATION_NAME = 'messaging.destination.name';
const ATTR_MESSAGING_OPERATION_NAME = 'messaging.operation.name';
const ATTR_MESSAGING_OPERATION_TYPE = 'messaging.operation.type';

/** which transport served the operation: `http`, `sse` or `ws` */
const ATTR_TRANSPORT = 'resgraph.transport';
/** how a RES request ended: `ok`, `timeout`, or the error code (the same values as the requests metric's `outcome`) */
const ATTR_RES_OUTCOME = 'resgraph.res.outcome';

/** The tracer's name (its instrumentation scope). */
const scope = 'resgraph';
/** The span of a live update. */
const liveUpdateSpanName = 'live.update';
/** The requests that are traced: a `query` request answers an event, outside any operation. */
const tracedKinds = new Set<RequestKind>(['get', 'access', 'call', 'auth']);

/** An operation's span, for a transport that runs the operation itself. */
export interface OperationSpan {
  /** Runs `work` with this span active: the RES requests it sends, now or after an await, are the span's children. */
  run<T>(work: () => T): T;
  /** Marks the span failed when a result sent to the client has errors (as envelop's plugin marks each result it sees). */
  result(result: { errors?: readonly unknown[] }): void;
  /** Ends the span (once; later calls do nothing). */
  end(): void;
}

/** What the transports that run operations themselves take: undefined when tracing is off. */
export interface OperationTracer {
  operation(op: OperationDefinitionNode, transport: ConnectionTransport): OperationSpan;
}

const natsHeaderSetter: TextMapSetter<MsgHdrs> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

export class GatewayTracing implements OperationTracer, RequestTracer, LiveTracer {
  private readonly tracer: Tracer;
  private readonly propagator = new W3CTraceContextPropagator();

  /** `provider` defaults to the one registered with @opentelemetry/api. */
  constructor(private readonly provider: TracerProvider = trace.getTracerProvider()) {
    ensureContextManager();
    this.tracer = provider.getTracer(scope);
  }

  /**
   * For Yoga's plugins, after every plugin that replaces execute or
   * subscribe (the live engine's): envelop's plugin then runs the
   * replacement in the operation span's context, so the live engine and
   * the RES requests find it. Documents, variables and results are not
   * recorded (they may hold what a client would not want in a trace).
   */
  yogaPlugins(): Plugin[] {
    const tag = (args: ExecutionArgs) => {
      const op = getOperationAST(args.document, args.operationName);
      if (!op) return;
      // envelop's span, which its onExecute / onSubscribe (before this one) made current for this context
      trace.getSpan(getCurrentOtelContext(args.contextValue))?.setAttributes(operationAttributes(op, transportOf(args)));
    };
    const semanticNames: Plugin = {
      onExecute: ({ args }) => tag(args),
      onSubscribe: ({ args }) => tag(args),
    };
    const envelop = useOpenTelemetry({ document: false, variables: false, result: false, resolvers: false }, this.provider, SpanKind.SERVER, {}, scope);
    return [envelop as Plugin, semanticNames];
  }

  operation(op: OperationDefinitionNode, transport: ConnectionTransport): OperationSpan {
    const span = this.tracer.startSpan(operationSpanName(op), { kind: SpanKind.SERVER, attributes: operationAttributes(op, transport) });
    const active = trace.setSpan(context.active(), span);
    let ended = false;
    return {
      run: (work) => context.with(active, work),
      result: ({ errors }) => {
        if (ended || !errors || errors.length === 0) return;
        span.setStatus({ code: SpanStatusCode.ERROR });
        span.recordException({ name: AttributeName.EXECUTION_ERROR, message: JSON.stringify(errors) });
      },
      end: () => {
        if (ended) return;
        ended = true;
        span.end();
      },
    };
  }

  start(kind: RequestKind, subject: string): TracedRequest | undefined {
    if (!tracedKinds.has(kind)) return undefined;
    const span = this.tracer.startSpan(`res.${kind}`, {
      kind: SpanKind.CLIENT,
      attributes: {
        [ATTR_MESSAGING_SYSTEM]: 'nats',
        [ATTR_MESSAGING_DESTINATION_NAME]: subject,
        [ATTR_MESSAGING_OPERATION_NAME]: kind,
        [ATTR_MESSAGING_OPERATION_TYPE]: 'send',
      },
    });
    const headers = natsHeaders();
    // the request's own span is the service's parent
    this.propagator.inject(trace.setSpan(context.active(), span), headers, natsHeaderSetter);
    return {
      headers,
      end(outcome) {
        span.setAttribute(ATTR_RES_OUTCOME, outcome);
        if (outcome !== 'ok') {
          span.setAttribute(ATTR_ERROR_TYPE, outcome);
          span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
        }
        span.end();
      },
    };
  }

  stream(args: ExecutionArgs): PushTracer | undefined {
    const subscription = trace.getSpanContext(context.active());
    // an operation the sampler left out has its updates left out too
    if (!subscription || (subscription.traceFlags & TraceFlags.SAMPLED) === 0) return undefined;
    const op = getOperationAST(args.document, args.operationName);
    const attributes = op ? operationAttributes(op, transportOf(args)) : {};
    const tracer = this.tracer;
    return {
      pushed(eventAt) {
        tracer.startSpan(liveUpdateSpanName, { root: true, startTime: eventAt, links: [{ context: subscription }], attributes }).end();
      },
    };
  }

  /** Sends the spans still buffered (a drain's last step); the provider's owner shuts it down. */
  async flush(): Promise<void> {
    const provider = this.provider as TracerProvider & { forceFlush?: () => Promise<void> };
    await provider.forceFlush?.();
  }
}

/** `<type>.<name>`, as @envelop/opentelemetry names its spans. */
function operationSpanName(op: OperationDefinitionNode): string {
  return `${op.operation}.${op.name?.value || 'anonymous'}`;
}

/** An operation span's attributes: envelop's names and the semantic conventions' (which omit an anonymous operation's name). */
function operationAttributes(op: OperationDefinitionNode, transport: ConnectionTransport | undefined): Attributes {
  const name = op.name?.value;
  const attributes: Attributes = {
    [AttributeName.EXECUTION_OPERATION_NAME]: name || 'anonymous',
    [AttributeName.EXECUTION_OPERATION_TYPE]: op.operation,
    [ATTR_GRAPHQL_OPERATION_TYPE]: op.operation,
  };
  if (name) attributes[ATTR_GRAPHQL_OPERATION_NAME] = name;
  if (transport) attributes[ATTR_TRANSPORT] = transport;
  return attributes;
}

function transportOf(args: ExecutionArgs): ConnectionTransport | undefined {
  return (args.contextValue as Partial<GatewayContext> | undefined)?.conn?.transport;
}

const probeKey = createContextKey('resgraph context manager probe');

/**
 * A child span finds its parent through the active context, which needs a
 * context manager; the API's default one keeps no context. Registers
 * AsyncLocalStorage's unless the process already has a working one (a
 * library user's SDK).
 */
function ensureContextManager(): void {
  const probe = ROOT_CONTEXT.setValue(probeKey, true);
  if (context.with(probe, () => context.active() === probe)) return;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
}
