/**
 * The gateway's logger: a tiny levelled interface, so tests can capture what
 * was logged and operators can silence it. Service faults (malformed replies
 * and events) are logged as warnings with their subject.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** A logger that writes one line per entry to stderr, at or above `level`. */
export function consoleLogger(level: LogLevel = 'info'): Logger {
  const min = order[level];
  const write = (lvl: Exclude<LogLevel, 'silent'>) => (msg: string, fields?: Record<string, unknown>) => {
    if (order[lvl] < min) return;
    const extra = fields && Object.keys(fields).length > 0 ? ' ' + JSON.stringify(fields) : '';
    process.stderr.write(`${new Date().toISOString()} ${lvl.toUpperCase()} ${msg}${extra}\n`);
  };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}

/** An exception as a log field: its stack when it has one. */
export function errorText(e: unknown): string {
  return (e as Error)?.stack ?? String(e);
}
