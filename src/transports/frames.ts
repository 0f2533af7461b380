/**
 * WebSocket text frames built by hand and written straight to the TCP
 * socket under a `ws` WebSocket, for the messages one event sends to many
 * sockets (graphql-ws live results; every message of the RES client
 * protocol, whose events are the same for most clients). A message
 * that is the same for many sockets is framed once and the very bytes are
 * written to each: one socket write per subscriber, no serialization per
 * subscriber, and none of ws's sender cost (two writes and a callback per
 * frame).
 *
 * `writeBatched` gathers the frames a socket gets in one tick (several
 * events of one NATS read, when the gateway is behind) into one write.
 *
 * This is safe only while the WebSocketServer runs without compression
 * (perMessageDeflate off): ws then writes its own frames (control frames,
 * messages sent through it) whole and synchronously too, so the two never
 * interleave inside a frame.
 */

import type { Duplex } from 'node:stream';

/** An unmasked, final text frame (RFC 6455, 5.2), header and payload in one buffer. */
export function textFrame(text: string): Buffer {
  const n = Buffer.byteLength(text);
  const header = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(header + n);
  frame[0] = 0x81; // FIN, opcode 1 (text)
  if (n < 126) {
    frame[1] = n;
  } else if (n < 65536) {
    frame[1] = 126;
    frame.writeUInt16BE(n, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(n), 2);
  }
  frame.write(text, header);
  return frame;
}

/** Frames by what they carry (a shared result, an event) and by their variant (an operation id, a client's rid). */
const frames = new WeakMap<object, Map<string, Buffer>>();

/**
 * The frame of `variant` of the message `of`, built with `text` the first
 * time and the same buffer for every later socket (kept as long as `of` is).
 */
export function sharedFrame(of: object, variant: string, text: () => string): Buffer {
  let byVariant = frames.get(of);
  if (!byVariant) {
    byVariant = new Map();
    frames.set(of, byVariant);
  }
  let frame = byVariant.get(variant);
  if (!frame) {
    frame = textFrame(text());
    byVariant.set(variant, frame);
  }
  return frame;
}

/** Sockets corked in this tick, uncorked together when it ends. */
const corked: Duplex[] = [];

function uncorkAll(): void {
  for (const socket of corked) socket.uncork();
  corked.length = 0;
}

/**
 * Writes a frame; what a socket gets in one tick leaves in one write
 * (writev) as the tick ends, without delay when it gets one frame. Returns
 * false once the socket's unsent bytes pass its high-water mark, as `write` does.
 */
export function writeBatched(socket: Duplex, frame: Buffer): boolean {
  if (!socket.writableCorked) {
    socket.cork();
    if (corked.push(socket) === 1) process.nextTick(uncorkAll);
  }
  return socket.write(frame);
}
