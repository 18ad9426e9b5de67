/**
 * The daemon's status file (default /run/tunnelwarden/status.json): rewritten atomically after
 * every pass so `tunnelwarden status` can show the last pass without talking to the daemon.
 * It holds no secret: counts, resource names, error codes and messages (which never carry
 * secret values), hashes of the desired content.
 */
import type { FileStore } from '../host/files.js';

/** Where the running daemon leaves its status (under systemd's RuntimeDirectory). */
export const DEFAULT_STATUS_FILE = '/run/tunnelwarden/status.json';

const STATUS_FILE_MODE = 0o644;

export type PassOutcome = 'converged' | 'not-converged' | 'failed' | 'skipped' | 'interrupted';

export interface LastPass {
  id: number;
  /** What asked for the pass: start, file, schedule, signal, retry. */
  triggers: string[];
  startedAt: string;
  durationMs: number;
  outcome: PassOutcome;
  /** Actions taken. */
  actions: number;
  /** Actions still wanted after applying, one line each. */
  remaining: string[];
  failures: { resource: string; code: string; message: string }[];
  /** One line each, the action taken (no file contents). */
  applied: string[];
}

export interface DaemonStatus {
  pid: number;
  startedAt: string;
  configPath: string;
  /** Hash prefix of the content being enforced, or null before any valid state. */
  enforcingSha256: string | null;
  /** The desired file's current problem (unreadable, invalid), or null when it is in use. */
  desiredProblem: string | null;
  lastPass: LastPass | null;
  /** When the last pass that took an action ended. */
  lastChangeAt: string | null;
  passes: number;
  failedPasses: number;
}

/** Writes the status atomically. Throws TunnelwardenError when it cannot. */
export async function writeStatusFile(files: FileStore, path: string, status: DaemonStatus): Promise<void> {
  await files.write(path, `${JSON.stringify(status, null, 2)}\n`, STATUS_FILE_MODE);
}

/** The status a daemon left, or undefined when there is none or it cannot be parsed. */
export async function readStatusFile(files: FileStore, path: string): Promise<DaemonStatus | undefined> {
  let text: string | undefined;
  try {
    text = await files.read(path);
  } catch {
    return undefined;
  }
  if (text === undefined) return undefined;
  try {
    const parsed = JSON.parse(text) as DaemonStatus;
    return typeof parsed === 'object' && parsed !== null && typeof parsed.pid === 'number' ? parsed : undefined;
  } catch {
    return undefined;
  }
}
