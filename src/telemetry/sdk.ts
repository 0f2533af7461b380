/**
 * The OpenTelemetry SDK of the `resgraph` command (`--otel on`): a tracer
 * provider whose spans are batched and sent with OTLP over HTTP, as JSON
 * (`http/json`), configured by the standard OTEL_* variables: the
 * exporter reads OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
 * OTEL_EXPORTER_OTLP_HEADERS and the timeouts; the batch processor the
 * OTEL_BSP_* variables; the provider OTEL_TRACES_SAMPLER(_ARG) and the span
 * limits; the resource OTEL_SERVICE_NAME (default `resgraph`) and
 * OTEL_RESOURCE_ATTRIBUTES. The provider is not registered globally: the
 * gateway is given it (GatewayOptions.tracing) and flushes it when it drains.
 * Loaded only with `--otel on`.
 */
import { DiagLogLevel, diag } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { Logger } from '../log.js';

/** `process.pid` (an incubating semantic-convention name, copied): tells the workers of `--workers` apart. */
const ATTR_PROCESS_PID = 'process.pid';

/** The only OTLP protocol the installed exporter speaks. */
const protocol = 'http/json';

/**
 * The provider for `--otel on`, or undefined when OTEL_SDK_DISABLED=true
 * (the standard switch wins). The SDK's own complaints (a collector that
 * cannot be reached, a bad variable) go to the gateway's log as warnings.
 */
export function startTracerProvider(version: string, log: Logger): BasicTracerProvider | undefined {
  const env = process.env;
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') {
    log.warn('--otel on, but OTEL_SDK_DISABLED=true: no traces');
    return undefined;
  }
  for (const name of ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_PROTOCOL']) {
    const asked = env[name]?.trim();
    if (asked && asked !== protocol) log.warn(`${name}=${asked} is not supported; traces are sent as ${protocol}`);
  }
  const warn = (message: string, ...args: unknown[]) =>
    log.warn(`OpenTelemetry: ${message}`, args.length > 0 ? { details: args.map(String).join(' ') } : undefined);
  const ignore = () => undefined;
  diag.setLogger({ error: warn, warn, info: ignore, debug: ignore, verbose: ignore }, DiagLogLevel.WARN);
  // later resources win: the SDK's defaults, then ours, then the environment's
  const resource = defaultResource()
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: 'resgraph', [ATTR_SERVICE_VERSION]: version, [ATTR_PROCESS_PID]: process.pid }))
    .merge(detectResources({ detectors: [envDetector] }));
  return new BasicTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] });
}
