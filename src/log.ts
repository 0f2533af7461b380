/**
 * The gateway's logger: a tiny levelled interface, so tests can capture what
 * was logged and operators can silence it. Service faults (malformed replies
 * and events) are logged as warnings with their subject.
 */
import { defaults } from './config/defaults.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export type LogFormat = 'text' | 'json';

/**
 * A logger that writes one line per entry to stderr, at or above `level`:
 * `text` is `<time> <LEVEL> <message> <fields as JSON>`; `json` is one
 * object a line, `{"time", "level", "msg", ...fields}`, for log collectors
 * (a field named like one of those three is kept under `field.<name>`).
 */
export function consoleLogger(level: LogLevel = defaults.logLevel, format: LogFormat = defaults.logFormat): Logger {
  const min = order[level];
  const line = format === 'json' ? jsonLine : textLine;
  const write = (lvl: Exclude<LogLevel, 'silent'>) => (msg: string, fields?: Record<string, unknown>) => {
    if (order[lvl] < min) return;
    process.stderr.write(line(new Date().toISOString(), lvl, msg, fields) + '\n');
  };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}

function textLine(time: string, level: string, msg: string, fields?: Record<string, unknown>): string {
  const extra = fields && Object.keys(fields).length > 0 ? ' ' + JSON.stringify(fields) : '';
  return `${time} ${level.toUpperCase()} ${msg}${extra}`;
}

function jsonLine(time: string, level: string, msg: string, fields?: Record<string, unknown>): string {
  const entry: Record<string, unknown> = { time, level, msg };
  for (const [k, v] of Object.entries(fields ?? {})) entry[k in entry ? `field.${k}` : k] = v;
  return JSON.stringify(entry);
}

/** An exception as a log field: its stack when it has one. */
export function errorText(e: unknown): string {
  return (e as Error)?.stack ?? String(e);
}
