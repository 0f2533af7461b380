/**
 * Cross-site request forgery prevention for GraphQL over HTTP. A browser
 * sends some requests to any site without asking first (no CORS preflight):
 * a GET (an `<img>`, a link, a form), and a POST as a form or `text/plain`.
 * Such a request carries the user's cookies, so it could run an operation as
 * them. This plugin refuses it (403, before the operation runs) unless it
 * shows that no other site made it:
 *
 * - it carries one of `csrfHeaders`, which a page can only set on a request
 *   the browser preflights (Yoga's and Apollo's header names, so their
 *   clients work as they are); or
 * - it carries an `Origin`, which browsers never let a page forge: the origin
 *   policy (origin.ts) has already refused every `Origin` it does not allow;
 *   or
 * - its `Sec-Fetch-Site` is `same-origin` (a page the gateway served, such
 *   as GraphiQL; browsers send no `Origin` on a same-origin GET).
 *
 * Requests with any other content type (`application/json`,
 * `application/graphql-response+json` ...) are preflighted by every browser
 * and pass. GET never runs a mutation whatever it carries (Yoga answers 405).
 *
 * The check is Yoga's CSRF-prevention rule plus the last two exemptions,
 * which let urql's default GET queries work from the pages the policy trusts.
 */
import { createGraphQLError, type Plugin } from 'graphql-yoga';
import { ErrorCode } from '../res/protocol.js';

/** Headers that prove a request was preflighted, any one of them (documented in docs/security.md, "Cross-site request forgery"). */
export const csrfHeaders = ['x-graphql-yoga-csrf', 'apollo-require-preflight', 'x-apollo-operation-name'] as const;

/** Content types a cross-site form or `fetch` may send without a preflight (the Fetch standard's CORS-safelisted ones). */
const simpleContentTypes = ['application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain'];

/** Whether a browser may have sent the request from another site without a preflight, and nothing shows it did not. */
export function mayBeForged(headers: Headers): boolean {
  const contentType = headers.get('content-type')?.toLowerCase();
  if (contentType && !simpleContentTypes.some((t) => contentType.startsWith(t))) return false;
  if (csrfHeaders.some((h) => headers.has(h))) return false;
  if (headers.has('origin')) return false;
  return headers.get('sec-fetch-site') !== 'same-origin';
}

export function csrfPrevention(): Plugin {
  return {
    onRequestParse({ request }) {
      if (!mayBeForged(request.headers)) return;
      throw createGraphQLError(
        `This request could have been sent by another site; send it as JSON, or with one of these headers: ${csrfHeaders.join(', ')}`,
        { extensions: { code: ErrorCode.forbidden, http: { status: 403 } } },
      );
    },
  };
}
