/**
 * Reads a desired-state file from disk and validates it. Every failure becomes findings or a
 * single line naming the file and the cause; nothing here changes the host.
 */
import { readFile } from 'node:fs/promises';
import { loadDesiredState, type LoadResult } from '../model/load.js';

export type DesiredFileResult =
  | LoadResult
  | { ok: false; unreadable: string; errors: []; warnings: [] };

/** Reads and validates `path`. Never throws. */
export async function readDesiredFile(path: string): Promise<DesiredFileResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (thrown) {
    const error = thrown as NodeJS.ErrnoException;
    const cause =
      error.code === 'ENOENT'
        ? 'no such file'
        : error.code === 'EACCES'
          ? 'permission denied'
          : error.code === 'EISDIR'
            ? 'is a directory'
            : error.message;
    return { ok: false, unreadable: `${path}: cannot read: ${cause}`, errors: [], warnings: [] };
  }
  return loadDesiredState(text);
}
