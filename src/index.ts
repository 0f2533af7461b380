/**
 * resgraph as a library: start a gateway in-process, or load and print a
 * resource schema. The `resgraph` command (src/cli.ts) is built on these.
 */
export { startGateway, type DrainResult, type Gateway, type GatewayOptions } from './server.js';
export { defaults } from './config/defaults.js';
export { buildResourceSchema, loadResourceSchema, SchemaError, type LoadedSchema } from './schema/schema.js';
export { printClientSchema } from './schema/publish.js';
export { consoleLogger, type Logger, type LogLevel } from './log.js';
export { ResError, ErrorCode } from './res/protocol.js';
