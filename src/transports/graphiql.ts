/**
 * GraphiQL from the gateway's own bundled copy (@graphql-yoga/render-graphiql),
 * never from a CDN: the page at the GraphQL path, and every script, style
 * sheet and editor worker it loads, at `<graphql path>/graphiql/<asset>` on
 * the same origin. It works with no internet, and under a
 * Content-Security-Policy that allows only 'self' for scripts and workers:
 * the page has no inline script (its options travel in a JSON data block).
 *
 * The bundle is large (about 7 MB): it is loaded on the first GraphiQL
 * request, not at start-up, and sent gzipped to browsers that accept it.
 */
import { gzipSync } from 'node:zlib';
import type { Plugin } from 'graphql-yoga';

interface Asset {
  type: string;
  body: Buffer;
  gzipped?: Buffer;
}

/** The monaco worker labels GraphiQL asks for, and the asset that serves each. */
const workerAssets: Record<string, string> = {
  editorWorkerService: 'editor.worker.js',
  json: 'json.worker.js',
  graphql: 'graphql.worker.js',
};

/** Runs before the bundle: monaco finds its workers on this origin, beside this script. */
const setupScript = `(function () {
  var base = document.currentScript.src.replace(/[^/]*$/, '');
  var workers = ${JSON.stringify(workerAssets)};
  self.MonacoEnvironment = {
    globalAPI: false,
    getWorkerUrl: function (_moduleId, label) { return base + (workers[label] || workers.editorWorkerService); },
  };
})();
`;

/** Runs after the bundle: renders GraphiQL with the options of the page's data block. */
const startScript = `YogaGraphiQL.renderYogaGraphiQL(
  document.getElementById('root'),
  JSON.parse(document.getElementById('graphiql-options').textContent || '{}'),
);
`;

let assets: Promise<Map<string, Asset>> | undefined;

/** The assets, read from the bundle once. */
function loadAssets(): Promise<Map<string, Asset>> {
  return (assets ??= import('@graphql-yoga/render-graphiql/graphiql').then((bundle) => {
    const js = 'text/javascript; charset=utf-8';
    const favicon = /^data:([^;]+);base64,(.*)$/.exec(bundle.favicon);
    const map = new Map<string, Asset>([
      ['setup.js', { type: js, body: Buffer.from(setupScript) }],
      ['graphiql.js', { type: js, body: Buffer.from(bundle.js) }],
      ['start.js', { type: js, body: Buffer.from(startScript) }],
      ['graphiql.css', { type: 'text/css; charset=utf-8', body: Buffer.from(bundle.css) }],
      [workerAssets.editorWorkerService, { type: js, body: Buffer.from(bundle.editorWorkerService) }],
      [workerAssets.json, { type: js, body: Buffer.from(bundle.jsonWorker) }],
      [workerAssets.graphql, { type: js, body: Buffer.from(bundle.graphqlWorker) }],
    ]);
    if (favicon) map.set('favicon.ico', { type: favicon[1], body: Buffer.from(favicon[2], 'base64') });
    return map;
  }));
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The page: GraphiQL's options as JSON in a data block (`<` escaped, so no text can end the block). */
export function graphiqlPage(graphqlPath: string, options: { title?: string } & Record<string, unknown>): string {
  const base = `${graphqlPath}/graphiql/`;
  const title = escapeHtml(options.title ?? 'GraphiQL');
  const json = JSON.stringify(options).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>${title}</title>
    <link rel="icon" href="${base}favicon.ico" />
    <link rel="stylesheet" href="${base}graphiql.css" />
  </head>
  <body id="body" class="no-focus-outline">
    <noscript>GraphiQL needs JavaScript.</noscript>
    <div id="root"></div>
    <script type="application/json" id="graphiql-options">${json}</script>
    <script src="${base}setup.js"></script>
    <script src="${base}graphiql.js"></script>
    <script src="${base}start.js"></script>
  </body>
</html>
`;
}

/** Serves the assets the page loads (Yoga's GraphiQL plugin serves the page, with `graphiqlPage` as its renderer). */
export function useGraphiQLAssets(graphqlPath: string): Plugin {
  const prefix = `${graphqlPath}/graphiql/`;
  return {
    async onRequest({ request, url, endResponse, fetchAPI }) {
      if (!url.pathname.startsWith(prefix) || (request.method !== 'GET' && request.method !== 'HEAD')) return;
      const asset = (await loadAssets()).get(url.pathname.slice(prefix.length));
      if (!asset) {
        endResponse(new fetchAPI.Response('Not found', { status: 404, headers: { 'content-type': 'text/plain' } }));
        return;
      }
      const gzip = /\bgzip\b/.test(request.headers.get('accept-encoding') ?? '');
      const headers: Record<string, string> = { 'content-type': asset.type, 'cache-control': 'public, max-age=3600', vary: 'accept-encoding' };
      let body = asset.body;
      if (gzip) {
        body = asset.gzipped ??= gzipSync(asset.body);
        headers['content-encoding'] = 'gzip';
      }
      headers['content-length'] = String(body.length);
      endResponse(new fetchAPI.Response(request.method === 'HEAD' ? null : new Uint8Array(body), { status: 200, headers }));
    },
  };
}
