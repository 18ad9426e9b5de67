/**
 * Watches the desired-state file by watching its DIRECTORY (chokidar, one level deep): any
 * event there (a write in place, an editor's rename-over save, delete and recreate, the
 * `..data` symlink swap of a Kubernetes ConfigMap volume, an editor's swap file) only makes
 * the watcher look at the file again. After a quiet time (debounce, with a cap so endless
 * edits are still picked up), it reads the file through its path, symlinks followed, hashes
 * the content, and reports a change only when the hash differs from the last one seen.
 * Identical content (a `touch`, a save without edits) triggers nothing; a half-written file is
 * reported like any change and the pass then finds it invalid and keeps the last valid state.
 *
 * Side effects: holds inotify watches; reads the file. Never throws after start; watcher
 * errors are logged at warn.
 *
 * Limitations: when the file is a symlink into another directory that is edited in place
 * (not swapped), only the periodic pass notices; the ConfigMap layout is covered because its
 * swap happens in the watched directory.
 */
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { Logger } from 'pino';
import { sha256 } from '../host/files.js';

/** Quiet time after the last event before the file is read. */
export const DEFAULT_DEBOUNCE_MS = 100;

/** The longest a stream of events may delay a read. */
export const DEFAULT_MAX_WAIT_MS = 500;

export interface FileWatcherOptions {
  /** The desired-state file; its directory is watched. */
  path: string;
  /** Called with the new content hash ("missing:..." when unreadable) when it changed. */
  onChange: (contentHash: string) => void;
  logger: Logger;
  debounceMs?: number;
  maxWaitMs?: number;
}

export interface DesiredFileWatcher {
  /** Resolves once the directory is watched and the first hash is known. */
  readonly ready: Promise<void>;
  /** How many times the file was read after events (for tests and benchmarks). */
  readonly reads: number;
  close(): Promise<void>;
}

/** The content hash of the file, or a marker naming why it cannot be read. */
async function contentHash(path: string): Promise<string> {
  try {
    return sha256(await readFile(path, 'utf8'));
  } catch (thrown) {
    return `missing:${(thrown as NodeJS.ErrnoException).code ?? 'error'}`;
  }
}

/** Starts watching. Close the watcher to release it. */
export function watchDesiredFile(options: FileWatcherOptions): DesiredFileWatcher {
  const debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;
  const maxWaitMs = options.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
  const log = options.logger.child({ file: options.path });
  const directory = dirname(options.path);
  let lastHash: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let burstStartedAt: number | undefined;
  let checking: Promise<void> | undefined;
  let checkAgain = false;
  let reads = 0;
  let closed = false;

  async function check(): Promise<void> {
    reads += 1;
    const hash = await contentHash(options.path);
    if (closed || hash === lastHash) return;
    lastHash = hash;
    log.debug({ sha256: hash.slice(0, 12) }, 'desired state file changed');
    options.onChange(hash);
  }

  /** Reads one at a time; events during a read cause one more read after it. */
  function runCheck(): void {
    if (checking) {
      checkAgain = true;
      return;
    }
    checking = check()
      .catch((thrown) => log.warn({ err: thrown }, 'desired state file check failed'))
      .finally(() => {
        checking = undefined;
        if (checkAgain && !closed) {
          checkAgain = false;
          runCheck();
        }
      });
  }

  function onEvent(): void {
    if (closed) return;
    const now = performance.now();
    burstStartedAt ??= now;
    clearTimeout(timer);
    const delay = Math.max(0, Math.min(debounceMs, burstStartedAt + maxWaitMs - now));
    timer = setTimeout(() => {
      burstStartedAt = undefined;
      runCheck();
    }, delay);
  }

  const watcher: FSWatcher = watch(directory, {
    ignoreInitial: true,
    depth: 0,
    followSymlinks: false,
    persistent: true,
  });
  watcher.on('all', onEvent);
  watcher.on('error', (error) => log.warn({ err: error, directory }, 'desired state watcher error'));

  const ready = Promise.all([
    new Promise<void>((resolve) => watcher.once('ready', () => resolve())),
    contentHash(options.path).then((hash) => {
      lastHash ??= hash;
    }),
  ]).then(() => {
    log.debug({ directory, watching: basename(options.path) }, 'watching desired state directory');
  });

  return {
    ready,
    get reads() {
      return reads;
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      await watcher.close();
      await checking;
    },
  };
}
