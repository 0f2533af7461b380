/**
 * A raw `multipart/mixed` reader for tests, as a client without a library
 * would read one: the parts of one HTTP response, parsed as JSON, in a
 * ResultStream; whether the body ended with the closing delimiter or was
 * cut off. The boundary is the one the response's content-type names.
 */
import { ResultStream } from './live-client.js';

/** What Apollo Client's HttpLink sends for a subscription. */
export const apolloSubscriptionAccept = 'multipart/mixed;boundary="graphql";subscriptionSpec=1.0,application/json';
/** What Apollo Client sends for an operation with @defer (Defer20220824Handler). */
export const deferAccept = 'multipart/mixed;deferSpec=20220824,application/json';

export interface MultipartResponse {
  response: Response;
  /** starts reading the body, when opened with `paused` */
  resume(): void;
  parts: ResultStream<any>;
  /** resolves when the body ends: true after the closing delimiter, false when cut off */
  closed: Promise<boolean>;
  abort(): void;
}

export async function postMultipart(
  url: string,
  body: { query: string; variables?: Record<string, unknown> },
  accept = apolloSubscriptionAccept,
  headers: Record<string, string> = {},
  /** read nothing until `resume()`: the client's socket buffers fill, as a slow reader's do */
  paused = false,
): Promise<MultipartResponse> {
  const controller = new AbortController();
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept, ...headers },
    body: JSON.stringify(body),
    signal: controller.signal,
  });
  const parts = new ResultStream<any>();
  let resume!: () => void;
  const resumed = new Promise<void>((r) => (resume = r));
  if (!paused) resume();
  const closed = resumed
    .then(() => readParts(response, parts))
    .catch((e: unknown) => {
      parts.end(e);
      return false;
    });
  return { response, parts, closed, resume, abort: () => controller.abort() };
}

async function readParts(response: Response, parts: ResultStream<any>): Promise<boolean> {
  const contentType = response.headers.get('content-type') ?? '';
  const boundary = /boundary="?([^";]+)"?/.exec(contentType)?.[1];
  if (!boundary || !response.body) throw new Error(`not multipart: ${response.status} ${contentType}`);
  const delimiter = `\r\n--${boundary}`;
  const decoder = new TextDecoder();
  let buffer = '';
  let opened = false;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    for (;;) {
      // the closing delimiter is the last delimiter followed by `--`
      if (opened && buffer.startsWith('--')) {
        parts.end();
        return true;
      }
      const at = buffer.indexOf(delimiter);
      if (at < 0) break;
      if (opened) {
        const text = buffer.slice(0, at);
        const bodyAt = text.indexOf('\r\n\r\n');
        parts.push(JSON.parse(text.slice(bodyAt + 4)));
      }
      opened = true;
      buffer = buffer.slice(at + delimiter.length);
    }
  }
  parts.end();
  return false;
}
