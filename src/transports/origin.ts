/**
 * The origin policy: which web pages may talk to the gateway from a browser.
 * It owns the `--allow-origin` setting, the verdict for a request's `Origin`
 * header, and the CORS response headers (preflights included) for every
 * HTTP path, SSE and WebSocket upgrade alike.
 *
 * Closed by default: a request whose `Origin` is another site's is refused
 * (403 `system.forbidden`, before any `auth` or `access` request reaches a
 * service), so no page elsewhere can use a signed-in user's cookies to read
 * or change anything (cross-site request forgery, cross-site WebSocket
 * hijacking). Requests without `Origin` (servers, CLIs, mobile apps) and
 * same-origin pages (the `Origin`'s host is the request's `Host`, as for
 * GraphiQL served by the gateway) are not cross-origin and always pass.
 *
 * Opened on purpose, with Resgate's `--alloworigin` semantics: a listed
 * origin is answered with itself in `Access-Control-Allow-Origin`, `Vary:
 * Origin` and `Access-Control-Allow-Credentials: true`; `*` lets every origin
 * in without credentials (an origin is never reflected with credentials
 * unless it is listed). `Origin: null` (sandboxed frames, `file:` pages) is
 * never allowed by a list and gets no CORS headers: unlike Resgate, which
 * lets it through, because any page can make its own requests carry it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode } from '../res/protocol.js';

/** Parsed `--allow-origin`: none (the default), any origin, or a list of `scheme://host[:port]`. */
export type OriginPolicy = { readonly kind: 'none' } | { readonly kind: 'any' } | { readonly kind: 'list'; readonly origins: ReadonlySet<string> };

export const noCrossOrigin: OriginPolicy = { kind: 'none' };

/** What the policy says of one request. */
export type OriginVerdict =
  /** no `Origin`, or the page's own origin: not a cross-origin request */
  | 'not-cross-origin'
  /** a cross-origin page the policy lets in; `credentials` when it is listed by name */
  | { credentials: boolean }
  | 'forbidden';

/** Methods a preflight may ask for: GraphQL over HTTP and SSE (graphql-sse's single connection reserves with PUT, stops with DELETE). */
const allowedMethods = 'GET, POST, PUT, DELETE, OPTIONS';
/** How long a browser may reuse a preflight's answer, in seconds. */
const preflightMaxAge = '600';

/**
 * Reads an `--allow-origin` value: `*`, or origins separated by commas (or
 * semicolons, as Resgate writes them). Throws an Error saying what is wrong.
 */
export function parseAllowOrigin(text: string): OriginPolicy {
  const items = text.split(/[,;]/).map((s) => s.trim()).filter((s) => s !== '');
  if (items.length === 0) return noCrossOrigin;
  if (items.includes('*')) {
    if (items.length > 1) throw new Error('* must not be combined with other origins');
    return { kind: 'any' };
  }
  return { kind: 'list', origins: new Set(items.map(normalizeOrigin)) };
}

/** `HTTPS://Example.com:443/` → `https://example.com`; throws unless it is `scheme://host[:port]`. */
function normalizeOrigin(text: string): string {
  const invalid = () => new Error(`"${text}" is not an origin (scheme://host[:port])`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid();
  }
  const bare = url.username === '' && url.password === '' && url.search === '' && url.hash === '';
  if (!bare || url.host === '' || (url.pathname !== '/' && url.pathname !== '')) throw invalid();
  // not url.origin: it is "null" for schemes such as capacitor:// that mobile web views send
  return `${url.protocol}//${url.host}`.toLowerCase();
}

/** Whether an `Origin` header names the host the request was sent to (a page the gateway served). */
function sameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  try {
    return new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}

export function originVerdict(policy: OriginPolicy, req: IncomingMessage): OriginVerdict {
  const origin = req.headers.origin;
  if (origin === undefined || sameOrigin(origin, req.headers.host)) return 'not-cross-origin';
  if (origin === 'null') return 'forbidden';
  if (policy.kind === 'any') return { credentials: false };
  if (policy.kind === 'list' && policy.origins.has(origin.toLowerCase())) return { credentials: true };
  return 'forbidden';
}

/**
 * Applies the policy to an HTTP request: sets the CORS headers it earns and
 * answers preflights. Returns true when the request has been answered
 * (a preflight, or a refusal), false when it goes on to be served.
 */
export function applyOriginPolicy(policy: OriginPolicy, req: IncomingMessage, res: ServerResponse): boolean {
  const verdict = originVerdict(policy, req);
  if (verdict === 'forbidden') {
    refuseOrigin(res);
    return true;
  }
  if (verdict === 'not-cross-origin') return false;
  res.setHeader('access-control-allow-origin', verdict.credentials ? req.headers.origin! : '*');
  if (verdict.credentials) {
    res.setHeader('vary', 'Origin');
    res.setHeader('access-control-allow-credentials', 'true');
  }
  if (req.method !== 'OPTIONS' || req.headers['access-control-request-method'] === undefined) return false;
  const askedHeaders = req.headers['access-control-request-headers'];
  res.writeHead(204, {
    'access-control-allow-methods': allowedMethods,
    ...(askedHeaders ? { 'access-control-allow-headers': askedHeaders } : {}),
    'access-control-max-age': preflightMaxAge,
    'content-length': '0',
  });
  res.end();
  return true;
}

/** The body of a refusal, as a GraphQL response so GraphQL clients show it. */
export const forbiddenOriginBody = JSON.stringify({
  errors: [{ message: 'Forbidden origin', extensions: { code: ErrorCode.forbidden } }],
});

function refuseOrigin(res: ServerResponse): void {
  res.writeHead(403, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(forbiddenOriginBody) });
  res.end(forbiddenOriginBody);
}
