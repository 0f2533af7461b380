/**
 * HTTP load generator: autocannon (as a library) posting one GraphQL query
 * over keep-alive connections, in its own process so its CPU is not the
 * gateway's. `cached` repeats one rid; `uncached` gives every request a new
 * rid, so each one costs the gateway an access and a get round trip.
 * `resgate-get`: Resgate's `GET /api/<rid path>` of one rid (the comparison).
 */
import autocannon from 'autocannon';
import { exitAfterReply, ready, serve } from '../lib/ipc.mjs';

const query = 'query Item($id: ID!) { item(id: $id) { id seq ts name } }';

function run({ url, connections = 50, durationSec = 10, mode = 'cached', id = 'hot', prefix = 'u', ridPath = 'bench/item' }) {
  let n = 0;
  let graphqlErrors = 0;
  let errorSample;
  const body = (rid) => JSON.stringify({ query, variables: { id: rid } });
  const request = {
    method: 'POST',
    path: new URL(url).pathname,
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: body(id),
    onResponse: (status, resBody) => {
      // a 200 can still carry GraphQL errors: count them
      if (status !== 200 || resBody.includes('"errors"')) {
        graphqlErrors++;
        errorSample ??= `${status} ${String(resBody).slice(0, 200)}`;
      }
    },
  };
  if (mode === 'uncached') request.setupRequest = (req) => ({ ...req, body: body(`${prefix}${n++}`) });
  if (mode === 'resgate-get') {
    request.method = 'GET';
    request.path = `/api/${ridPath}/${id}`;
    request.headers = { accept: 'application/json' };
    delete request.body;
    request.onResponse = (status, resBody) => {
      if (status !== 200 || !String(resBody).includes('"seq"')) {
        graphqlErrors++;
        errorSample ??= `${status} ${String(resBody).slice(0, 200)}`;
      }
    };
  }
  return new Promise((resolve, reject) => {
    autocannon(
      { url: new URL(url).origin, connections, duration: durationSec, requests: [request] },
      (err, r) => {
        if (err) return reject(err);
        resolve({
          mode,
          connections,
          durationSec: r.duration,
          requests: r.requests.total,
          rps: r.requests.average,
          latency: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max, mean: r.latency.average },
          non2xx: r.non2xx,
          errors: r.errors,
          timeouts: r.timeouts,
          graphqlErrors,
          errorSample,
          distinctRids: mode === 'uncached' ? n : 1,
        });
      },
    );
  });
}

serve({
  run,
  stop: exitAfterReply(),
});
ready();
