/**
 * A small log-bucketed latency histogram (about 0.5 % relative error), cheap
 * to record into and to merge across processes. Values are milliseconds;
 * buckets are kept in microseconds so sub-millisecond floors stay visible.
 */
const K = 1 / Math.log(1.005);
const SIZE = 4096; // e^(4096/K) µs is far beyond any latency we measure

export class Hist {
  constructor() {
    this.counts = new Float64Array(SIZE);
    this.n = 0;
    this.sum = 0;
    this.min = Infinity;
    this.max = -Infinity;
    /** samples below zero (clock trouble); recorded as 0 */
    this.negative = 0;
  }

  record(ms) {
    if (ms < 0) {
      this.negative++;
      ms = 0;
    }
    const us = ms * 1000;
    const idx = us < 1 ? 0 : Math.min(SIZE - 1, 1 + Math.floor(Math.log(us) * K));
    this.counts[idx]++;
    this.n++;
    this.sum += ms;
    if (ms < this.min) this.min = ms;
    if (ms > this.max) this.max = ms;
  }

  /** The value at quantile q (0..1), in ms: the middle of its bucket, clamped to the exact min/max. */
  quantile(q) {
    if (this.n === 0) return null;
    const target = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let i = 0; i < SIZE; i++) {
      seen += this.counts[i];
      if (seen >= target) {
        const mid = i === 0 ? 0 : Math.exp((i - 1 + 0.5) / K) / 1000;
        return Math.min(this.max, Math.max(this.min, mid));
      }
    }
    return this.max;
  }

  summary() {
    if (this.n === 0) return { count: 0, p50: null, p90: null, p95: null, p99: null, max: null, mean: null };
    return {
      count: this.n,
      p50: this.quantile(0.5),
      p90: this.quantile(0.9),
      p95: this.quantile(0.95),
      p99: this.quantile(0.99),
      max: this.max,
      mean: this.sum / this.n,
      ...(this.negative ? { negative: this.negative } : {}),
    };
  }

  /** Sparse form for IPC: [[bucket, count], ...] plus the exact extremes. */
  toJSON() {
    const buckets = [];
    for (let i = 0; i < SIZE; i++) if (this.counts[i]) buckets.push([i, this.counts[i]]);
    return { buckets, n: this.n, sum: this.sum, min: this.min, max: this.max, negative: this.negative };
  }

  static from(json) {
    const h = new Hist();
    h.merge(json);
    return h;
  }

  merge(other) {
    const o = other instanceof Hist ? other.toJSON() : other;
    for (const [i, c] of o.buckets) this.counts[i] += c;
    this.n += o.n;
    this.sum += o.sum;
    this.negative += o.negative ?? 0;
    if (o.n > 0) {
      this.min = Math.min(this.min, o.min);
      this.max = Math.max(this.max, o.max);
    }
    return this;
  }
}

/** Monotonic milliseconds (CLOCK_MONOTONIC, µs precision): the same clock in every process on this machine. */
export function nowMs() {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}
