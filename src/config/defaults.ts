/**
 * The default of every gateway option, written once. `startGateway` and the
 * parts it builds (ResClient, ResourceCache, LiveEngine, the transports)
 * fall back to these when an option is unset, and the command's options
 * table (config/options.ts) shows and applies the same values, so `--help`,
 * the docs and a library user's gateway cannot disagree.
 *
 * This module imports nothing, so every layer may use it. Its keys are the
 * GatewayOptions field names (plus the CLI's log settings).
 */
export const defaults = {
  nats: 'nats://127.0.0.1:4222',
  /** the client name NATS shows in its monitoring (`--nats-name`) */
  natsName: 'resgraph',
  schema: './schema',
  port: 4000,
  host: '127.0.0.1',
  graphqlPath: '/graphql',
  /** ms */
  requestTimeout: 3000,
  /** ms */
  evictDelay: 5000,
  resyncConcurrency: 64,
  maxSubscriptionsPerConnection: 200,
  maxDepth: 15,
  maxAliases: 30,
  maxTokens: 5000,
  maxDirectives: 50,
  /** 100 KB */
  maxDocumentBytes: 100 * 1024,
  /** 1 MB */
  maxBodyBytes: 1024 * 1024,
  resgateApi: true,
  apiPath: '/api',
  resWsPath: '/',
  graphiql: true,
  /** `/metrics` on the gateway's own port */
  metrics: true,
  /** ms */
  multipartHeartbeat: 5000,
  /** ms */
  sseReservationTimeout: 30_000,
  /** ms */
  drainTimeout: 10_000,
  persistedOnly: false,
  watchSchema: false,
  logLevel: 'info',
  logFormat: 'text',
} as const;
