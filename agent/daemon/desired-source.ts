/**
 * The daemon's desired state: the file is read afresh for every pass, and the last valid
 * content is kept. A missing, unreadable, half-written or invalid file never replaces it, and
 * never means "delete everything": the daemon keeps enforcing the last valid state.
 *
 * Every problem is logged once per distinct file content (each error with its file and JSON
 * path); a later pass over the same bad content logs one short reminder at warn. The last
 * valid text is also saved (0600, atomically) under the state dir, so a restarted daemon
 * facing a broken file still has something to enforce.
 *
 * Side effects: reads the desired file, reads and writes the saved copy through `files`.
 */
import type { Logger } from 'pino';
import { formatPath } from '../model/checks.js';
import { loadDesiredState } from '../model/load.js';
import type { DesiredState } from '../model/schema.js';
import { sha256, type FileStore } from '../host/files.js';

/** Mode of the saved copy: it may hold inline secrets. */
const SAVED_COPY_MODE = 0o600;

/** What a pass gets: the state to enforce (if any) and whether it is the file's own. */
export interface DesiredSnapshot {
  /** The state to enforce, or undefined when no valid state was ever seen. */
  state: DesiredState | undefined;
  /** Short hash of the enforced content, for logs and the status file. */
  sha256: string | undefined;
  /** True when the file as it is now is valid (and is what is enforced). */
  fileValid: boolean;
  /** Why the file is not used, when it is not. */
  problem: string | undefined;
}

export interface DesiredSource {
  /** Reads the file and returns what to enforce. Never throws. */
  load(): Promise<DesiredSnapshot>;
}

export interface DesiredSourceOptions {
  /** The desired-state file. */
  path: string;
  /** Where the last valid content is saved; undefined keeps it in memory only. */
  savedCopyPath?: string;
  files: FileStore;
  logger: Logger;
}

/** Short form of a content hash for logs. */
export function shortHash(hex: string): string {
  return hex.slice(0, 12);
}

/**
 * V8's JSON syntax errors may quote a stretch of the text (`Unexpected token 'x', "...": ...`),
 * which can hold an inline secret of a half-written file: the quoted stretch is cut off.
 */
export function withoutQuotedText(message: string): string {
  return message.replace(/Unexpected token .* is not valid JSON$/s, 'unexpected character (text not shown)');
}

type ReadOutcome = { text: string } | { unreadable: string };

async function readText(files: FileStore, path: string): Promise<ReadOutcome> {
  try {
    const text = await files.read(path);
    return text === undefined ? { unreadable: 'no such file' } : { text };
  } catch (thrown) {
    const error = thrown as NodeJS.ErrnoException;
    return { unreadable: error.code === 'EISDIR' ? 'is a directory' : (error.code ?? error.message) };
  }
}

/** Makes the source for one desired-state file. */
export function createDesiredSource(options: DesiredSourceOptions): DesiredSource {
  const { path, savedCopyPath, files, logger } = options;
  const log = logger.child({ file: path });
  let enforced: { state: DesiredState; sha256: string } | undefined;
  let lastSeen: string | undefined;
  let restoreTried = false;

  async function restoreSavedCopy(): Promise<void> {
    restoreTried = true;
    if (savedCopyPath === undefined) return;
    const saved = await readText(files, savedCopyPath);
    if (!('text' in saved)) return;
    const result = loadDesiredState(saved.text);
    if (!result.ok) {
      log.warn({ saved_copy: savedCopyPath }, 'saved desired state is not valid; ignored');
      return;
    }
    enforced = { state: result.state, sha256: sha256(saved.text) };
    log.warn(
      { saved_copy: savedCopyPath, sha256: shortHash(enforced.sha256) },
      'enforcing the last valid desired state saved by an earlier run',
    );
  }

  async function saveCopy(text: string): Promise<void> {
    if (savedCopyPath === undefined) return;
    try {
      await files.write(savedCopyPath, text, SAVED_COPY_MODE);
    } catch (thrown) {
      log.warn({ saved_copy: savedCopyPath, err: thrown }, 'could not save the valid desired state');
    }
  }

  function snapshot(fileValid: boolean, problem: string | undefined): DesiredSnapshot {
    return { state: enforced?.state, sha256: enforced?.sha256, fileValid, problem };
  }

  function keepingNote(): Record<string, unknown> {
    return enforced ? { enforcing: shortHash(enforced.sha256) } : { enforcing: null };
  }

  return {
    async load() {
      const read = await readText(files, path);
      const seen = 'text' in read ? sha256(read.text) : `unreadable:${read.unreadable}`;
      const firstLook = seen !== lastSeen;
      lastSeen = seen;

      if (!('text' in read)) {
        if (!enforced && !restoreTried) await restoreSavedCopy();
        const problem = `cannot read: ${read.unreadable}`;
        if (firstLook) log.error({ cause: read.unreadable, ...keepingNote() }, 'desired state unreadable; last valid state kept');
        else log.warn({ cause: read.unreadable, ...keepingNote() }, 'desired state still unreadable');
        return snapshot(false, problem);
      }

      if (enforced?.sha256 === seen) return snapshot(true, undefined);

      const result = loadDesiredState(read.text);
      if (result.ok) {
        for (const warning of result.warnings) {
          log.warn({ field: formatPath(warning.path), reason: warning.message }, 'desired state warning');
        }
        const previous = enforced?.sha256;
        enforced = { state: result.state, sha256: seen };
        log.info(
          { sha256: shortHash(seen), ...(previous ? { previous: shortHash(previous) } : {}) },
          'desired state loaded',
        );
        await saveCopy(read.text);
        return snapshot(true, undefined);
      }

      if (!enforced && !restoreTried) await restoreSavedCopy();
      const problem = `invalid (${result.errors.length} error${result.errors.length === 1 ? '' : 's'})`;
      if (firstLook) {
        for (const finding of result.errors) {
          const reason = withoutQuotedText(finding.message);
          log.error({ field: formatPath(finding.path), reason }, 'desired state error');
        }
        log.error(
          { errors: result.errors.length, sha256: shortHash(seen), ...keepingNote() },
          'desired state invalid; last valid state kept',
        );
      } else {
        log.warn({ errors: result.errors.length, sha256: shortHash(seen), ...keepingNote() }, 'desired state still invalid');
      }
      return snapshot(false, problem);
    },
  };
}
