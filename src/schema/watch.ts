/**
 * Watching the schema's files (`--watch-schema`): tells when they have
 * changed and the writes have settled. A file is often written in several
 * steps (an editor's save, a copy, a deploy), so each change restarts a
 * short wait and only the quiet after the last one counts; a file caught
 * half written is still possible, and is the reload's to refuse (the next
 * write settles again).
 *
 * A folder is watched with everything under it; a single file through its
 * folder, since editors that save by writing a new file and renaming it
 * over the old one would leave a watch on the old file's inode deaf.
 */
import { statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { schemaFilePattern } from './schema.js';

/** How long the files must stay unchanged before they count as written, in ms. */
export const schemaSettleMs = 200;

export interface SchemaWatcher {
  close(): void;
}

/**
 * Calls `settled` once the schema's files at `path` have changed and then
 * stayed unchanged for `settleMs`. `failed` hears a watch that broke:
 * nothing is watched after it.
 */
export function watchSchemaFiles(
  path: string,
  settled: () => void,
  failed: (e: Error) => void,
  settleMs = schemaSettleMs,
): SchemaWatcher {
  const folder = statSync(path).isDirectory();
  const file = folder ? undefined : basename(path);
  let timer: NodeJS.Timeout | undefined;
  const changed = (_event: string, name: string | Buffer | null) => {
    const changedName = name === null ? undefined : String(name);
    // a name the watch cannot give may be anything: counted
    if (changedName !== undefined && (file ? basename(changedName) !== file : !schemaFilePattern.test(changedName))) return;
    clearTimeout(timer);
    timer = setTimeout(settled, settleMs);
  };
  let watcher: FSWatcher;
  try {
    watcher = folder ? watch(path, { recursive: true }, changed) : watch(dirname(path), changed);
  } catch (e) {
    // the path went away between the stat and the watch
    failed(e as Error);
    return { close: () => undefined };
  }
  watcher.on('error', (e) => {
    clearTimeout(timer);
    failed(e);
  });
  return {
    close() {
      clearTimeout(timer);
      watcher.close();
    },
  };
}
