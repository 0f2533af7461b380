/**
 * Reads a gateway's real /metrics endpoint (Prometheus text format) into
 * samples that a test can look up by name and labels.
 */

export interface Scrape {
  text: string;
  /** metric names that have a `# TYPE` line */
  names: Set<string>;
  /** the value of a sample; 0 when the series is absent */
  value(name: string, labels?: Record<string, string>): number;
  /** the sum of a metric's samples over all their labels */
  sum(name: string): number;
}

function key(name: string, labels: Record<string, string>): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`);
  return parts.length ? `${name}{${parts.join(',')}}` : name;
}

export function parseMetrics(text: string): Scrape {
  const samples = new Map<string, number>();
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) names.add(line.split(' ')[2]);
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) throw new Error(`unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.set(key(m[1], labels), Number(m[3]));
  }
  const sum = (name: string) => {
    let total = 0;
    for (const [k, v] of samples) if (k === name || k.startsWith(`${name}{`)) total += v;
    return total;
  };
  return { text, names, value: (name, labels = {}) => samples.get(key(name, labels)) ?? 0, sum };
}

export async function scrape(url: string): Promise<Scrape> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`);
  if (!res.headers.get('content-type')?.startsWith('text/plain')) throw new Error(`GET ${url}: not the Prometheus text format`);
  return parseMetrics(await res.text());
}

function scrapeGateway(gw: { metricsUrl?: string }): Promise<Scrape> {
  if (!gw.metricsUrl) throw new Error('the gateway serves no /metrics');
  return scrape(gw.metricsUrl);
}

/** A gateway's metric now, as a scraper of its /metrics sees it (summed over labels). */
export async function metric(gw: { metricsUrl?: string }, name: string): Promise<number> {
  return (await scrapeGateway(gw)).sum(name);
}

/**
 * A gateway's live results as its /metrics tell them: executions so far,
 * updates so far (executions, and changes applied to a last result without
 * one), distinct live operations, open streams.
 */
export async function liveCounts(gw: { metricsUrl?: string }): Promise<{ executions: number; updates: number; liveQueries: number; subscribers: number }> {
  const m = await scrapeGateway(gw);
  const executions = m.sum('resgraph_live_executions_total');
  return {
    executions,
    updates: executions + m.value('resgraph_live_incremental_total', { outcome: 'applied', reason: '' }),
    liveQueries: m.sum('resgraph_live_operations'),
    subscribers: m.sum('resgraph_live_subscriptions'),
  };
}
