/**
 * File access for everything tunnelwarden reads or writes on the host. Writes are atomic
 * (temporary file in the same directory, fsync, rename) and set the mode before the rename,
 * so a secrets file is never visible with looser permissions or half-written.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import writeFileAtomic from 'write-file-atomic';
import { ErrorCode, TunnelwardenError } from '../errors.js';

/** File I/O; injected so that applying can be tested against an in-memory host. */
export interface FileStore {
  /** The file's text, or undefined when it does not exist. Throws on other errors. */
  read(path: string): Promise<string | undefined>;
  /** The file's permission bits, or undefined when it does not exist. */
  mode(path: string): Promise<number | undefined>;
  /** Replaces the file atomically with `content` and permission bits `mode`. */
  write(path: string, content: string, mode: number): Promise<void>;
}

function isMissing(thrown: unknown): boolean {
  return (thrown as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

/** The real file store of this host. */
export const hostFiles: FileStore = {
  async read(path) {
    try {
      return await readFile(path, 'utf8');
    } catch (thrown) {
      if (isMissing(thrown)) return undefined;
      throw thrown;
    }
  },
  async mode(path) {
    try {
      return (await stat(path)).mode & 0o7777;
    } catch (thrown) {
      if (isMissing(thrown)) return undefined;
      throw thrown;
    }
  },
  async write(path, content, mode) {
    try {
      await writeFileAtomic(path, content, { mode, fsync: true});
    } catch (thrown) {
      throw new TunnelwardenError(
        'command-failed',
        ErrorCode.fileWriteFailed,
        `could not write ${path}: ${(thrown as Error).message}`,
        { cause: thrown },
      );
    }
  },
};

/** Hex SHA-256 of a text, for comparing contents without keeping or logging them. */
export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
