/**
 * The floor: a plain NATS subscriber to the same change events, with no
 * gateway in between. Its latency (receive time − `ts`) is what NATS and the
 * machine cost; the gateway's added latency is measured against it.
 */
import { connect } from 'nats';
import { Hist, nowMs } from '../lib/hist.mjs';
import { exitAfterReply, ready, serve } from '../lib/ipc.mjs';
import { natsFromArgv } from '../lib/nats.mjs';

// node clients/floor.mjs <nats-url> [--nats-* options of the gateway]
const nc = await connect(natsFromArgv(process.argv.slice(2), 'bench-floor').connectOptions);
const dec = new TextDecoder();
const prefix = 'event.bench.item.'.length;
/** model id → last seq seen */
const last = new Map();
let stats = fresh();

function fresh() {
  return { hist: new Hist(), received: 0, reordered: 0 };
}

nc.subscribe('event.bench.item.>', {
  callback: (_e, msg) => {
    const now = nowMs();
    const { values } = JSON.parse(dec.decode(msg.data));
    const id = msg.subject.slice(prefix, msg.subject.lastIndexOf('.'));
    stats.received++;
    stats.hist.record(now - values.ts);
    const prev = last.get(id) ?? 0;
    if (values.seq <= prev) stats.reordered++;
    else last.set(id, values.seq);
  },
});
await nc.flush();

serve({
  phase: () => {
    stats = fresh();
    return true;
  },
  report: ({ expect }) => {
    let lost = 0;
    if (expect) for (const [id, seq] of Object.entries(expect)) if (last.get(id) !== seq) lost++;
    return { received: stats.received, reordered: stats.reordered, lost, hist: stats.hist.toJSON() };
  },
  stop: exitAfterReply(() => nc.drain()),
});
ready();
