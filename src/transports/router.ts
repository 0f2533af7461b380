/**
 * The HTTP router owns which part answers each request, by path, and in
 * which order the checks run: /metrics, the probes, the origin policy,
 * the drain's refusal, then Resgate's HTTP API, graphql-sse's single
 * connection mode, the query fast path and Yoga for the rest; and which
 * WebSocket server takes an upgrade. It answers nothing itself but the
 * drain's 503 and an upgrade to an unknown path.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { ErrorCode } from '../res/protocol.js';
import type { GatewayYoga } from './http.js';
import { applyOriginPolicy, type OriginPolicy } from './origin.js';
import type { ResApi } from './res-api.js';
import type { ResWebSocket } from './res-ws.js';
import type { SingleConnectionSse } from './sse.js';
import type { WebSocketTransport } from './ws.js';

type Handler = (req: IncomingMessage, response: ServerResponse) => void;

export interface RequestRoutes {
  yoga: GatewayYoga;
  origins: OriginPolicy;
  /** `/metrics` on the gateway's own port; undefined when metrics are off or on a port of their own */
  metrics: { serve(req: IncomingMessage, response: ServerResponse): unknown } | undefined;
  resApi: ResApi | undefined;
  singleConnectionSse: SingleConnectionSse;
  /** answers a query it can run on its short path and says so; false leaves the request to Yoga */
  fastPath: (req: IncomingMessage, response: ServerResponse, path: string) => boolean;
  /** told of every request that reaches the GraphQL transports or the API, for the drain to wait for */
  track: Handler;
  /** whether a drain has begun */
  draining: () => boolean;
}

/** The HTTP server's request listener. */
export function routeRequests(routes: RequestRoutes): Handler {
  const { yoga, origins, metrics, resApi, singleConnectionSse, fastPath, track, draining } = routes;
  return (req, response) => {
    const path = pathOf(req);
    if (path === '/metrics' && metrics) return void metrics.serve(req, response);
    if (draining()) response.setHeader('connection', 'close');
    if (path === '/healthz' || path === '/readyz') return void yoga(req, response);
    // before anything reaches a service: a refused page gets no auth or access request made for it
    if (applyOriginPolicy(origins, req, response)) return;
    const api = resApi?.owns(path) ? resApi : undefined;
    if (draining()) return api ? api.refuseWhileDraining(response) : refuse(response);
    track(req, response);
    if (api) return api.handle(req, response);
    if (singleConnectionSse.handles(req, path)) return singleConnectionSse.handle(req, response);
    if (fastPath(req, response, path)) return;
    void yoga(req, response);
  };
}

export interface UpgradeRoutes {
  graphqlPath: string;
  ws: WebSocketTransport;
  resWs: ResWebSocket | undefined;
  resWsPath: string | false;
}

/** The HTTP server's `upgrade` listener: graphql-ws at the GraphQL path, the RES client protocol at its own. */
export function routeUpgrades(routes: UpgradeRoutes): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const { graphqlPath, ws, resWs, resWsPath } = routes;
  return (req, socket, head) => {
    const path = pathOf(req);
    if (path === graphqlPath) return ws.upgrade(req, socket, head);
    if (resWs && path === resWsPath) return resWs.upgrade(req, socket, head);
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  };
}

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/** A GraphQL request that arrives while draining: 503, and go elsewhere. */
function refuse(response: ServerResponse): void {
  const body = JSON.stringify({
    errors: [{ message: 'The gateway is shutting down; send the request to another instance', extensions: { code: ErrorCode.unavailable } }],
  });
  response.writeHead(503, { 'content-type': 'application/json', 'retry-after': '0', connection: 'close' });
  response.end(body);
}
