/**
 * The GraphQL-over-HTTP specification's own audit suite (graphql-http's
 * serverAudits) against the gateway, one case per audit: every MUST, SHOULD
 * and MAY passes, with no warning. The requests go through the gateway's
 * whole HTTP stack, the short path for JSON POSTs included.
 */
import { serverAudits } from 'graphql-http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLibraryStack, type LibraryStack } from './helpers/library-stack.js';

let stack: LibraryStack;

beforeAll(async () => {
  stack = await startLibraryStack();
}, 60_000);

afterAll(async () => {
  await stack?.close();
}, 30_000);

/**
 * The audits' fetch, marked as a non-browser client: Yoga's CSRF prevention
 * asks requests that a browser could send without a preflight (GET, no
 * content type) to carry this header.
 */
const auditFetch: typeof fetch = (input, init) => {
  const headers = new Headers(init?.headers);
  headers.set('x-graphql-yoga-csrf', '1');
  return fetch(input, { ...init, headers });
};

describe('GraphQL over HTTP audit (graphql-http serverAudits)', () => {
  for (const audit of serverAudits({ url: () => stack.gw.url, fetchFn: auditFetch })) {
    it(audit.name, async () => {
      const result = await audit.fn();
      if (result.status !== 'ok') {
        const response = result.response;
        const body = response ? await response.text().catch(() => '') : '';
        expect.fail(`${result.status}: ${result.reason} (${response?.status} ${body.slice(0, 300)})`);
      }
    });
  }
});
