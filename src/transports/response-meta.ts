/**
 * Applies the meta that services gave in their replies (access/meta.ts) to
 * the HTTP response of the request that caused them: a 3XX status answers
 * with that status, the headers (`Location`) and no content; a 4XX/5XX
 * status replaces the success status, the body staying the GraphQL result
 * with the field errors; headers are merged in (`Set-Cookie` added to what
 * is there, others replaced). Both the Yoga pipeline and the fast path
 * answer through here.
 */
import type { ServerResponse } from 'node:http';
import type { Plugin } from 'graphql-yoga';
import type { Connection } from '../access/access.js';
import type { MetaAnswer } from '../access/meta.js';

/** The connection of each Yoga request, set when its context is made. */
const connectionOf = new WeakMap<Request, Connection>();

export function rememberConnection(request: Request, conn: Connection): void {
  connectionOf.set(request, conn);
}

/** Headers as a Headers object, `Set-Cookie` values added to the ones there, other names replaced. */
function mergeInto(headers: Headers, header: Record<string, string[]>): void {
  for (const [name, values] of Object.entries(header)) {
    if (name !== 'Set-Cookie') headers.delete(name);
    for (const v of values) headers.append(name, v);
  }
}

/** A Yoga plugin answering each HTTP request with its connection's meta. */
export function responseMeta(): Plugin {
  return {
    onResponse({ request, response, setResponse, fetchAPI }) {
      const answer = connectionOf.get(request)?.meta?.answer();
      if (!answer) return;
      // a redirect has no content, so none of the content's headers
      const headers = new fetchAPI.Headers(answer.redirect ? undefined : response.headers);
      mergeInto(headers, answer.header);
      const status = answer.status ?? response.status;
      setResponse(new fetchAPI.Response(answer.redirect ? null : response.body, { status, headers }));
    },
  };
}

/**
 * Writes a Node response's head, with the meta's status and headers if any,
 * and returns whether a body may follow (not after a 3XX from meta).
 */
export function writeHeadWithMeta(
  res: ServerResponse,
  status: number,
  headers: Record<string, string | number | string[]>,
  answer: MetaAnswer | undefined,
): boolean {
  if (!answer) {
    res.writeHead(status, headers);
    return true;
  }
  const out: Record<string, string | number | string[]> = answer.redirect ? {} : { ...headers };
  for (const [name, values] of Object.entries(answer.header)) {
    const key = Object.keys(out).find((k) => k.toLowerCase() === name.toLowerCase());
    const before = key !== undefined && name === 'Set-Cookie' ? [out[key]].flat().map(String) : [];
    if (key !== undefined) delete out[key];
    out[name] = [...before, ...values];
  }
  res.writeHead(answer.status ?? status, out);
  return !answer.redirect;
}

/** A fetch Response's headers for Node's writeHead, every `Set-Cookie` kept (iterating Headers joins or drops them). */
export function nodeHeaders(headers: Headers): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  headers.forEach((value, name) => {
    if (name !== 'set-cookie') out[name] = value;
  });
  const cookies = headers.getSetCookie();
  if (cookies.length > 0) out['set-cookie'] = cookies;
  return out;
}
