/**
 * The one way tunnelwarden runs a program: no shell, a timeout on every call, output captured,
 * and the command line logged at debug. Callers must never put a secret into `argv`: secrets go
 * through files written 0600 (see files.ts) or through `input`, which is never logged.
 */
import { execa } from 'execa';
import type { Logger } from 'pino';
import { ErrorCode, TunnelwardenError } from '../errors.js';

/** What a finished command left behind. */
export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export interface RunOptions {
  /** Kill the command after this long; every call has a bound. */
  timeoutMs?: number;
  /** Written to the command's stdin; never logged. */
  input?: string;
  /** Return non-zero exits instead of throwing. */
  allowFailure?: boolean;
  env?: Record<string, string>;
}

/** Runs commands; injected so that planning and applying can be tested without a host. */
export type CommandRunner = (argv: readonly string[], options?: RunOptions) => Promise<CommandResult>;

/** Upper bound for a command that is expected to answer at once (status, list, update). */
export const DEFAULT_COMMAND_TIMEOUT_MS = 15_000;

/**
 * Makes a runner that logs each command at debug with its exit code and duration.
 * Throws TunnelwardenError: commandMissing (ENOENT), commandTimedOut, or commandFailed on a
 * non-zero exit unless `allowFailure`.
 */
export function createCommandRunner(logger: Logger): CommandRunner {
  return async (argv, options = {}) => {
    const [file, ...args] = argv;
    if (file === undefined) throw new TypeError('empty argv');
    const timeoutMs = options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    const startedAt = performance.now();
    const result = await execa(file, args, {
      reject: false,
      timeout: timeoutMs,
      input: options.input ?? '',
      env: options.env,
      stripFinalNewline: false,
      maxBuffer: 64 * 1024 * 1024,
      killSignal: 'SIGTERM',
      forceKillAfterDelay: 2_000,
    });
    const durationMs = Math.round(performance.now() - startedAt);
    const exitCode = result.exitCode ?? -1;
    logger.debug({ command: argv, exitCode, duration_ms: durationMs }, 'command ran');

    const commandLine = argv.join(' ');
    if (result.timedOut) {
      throw new TunnelwardenError(
        'command-failed',
        ErrorCode.commandTimedOut,
        `${commandLine} did not finish within ${timeoutMs} ms`,
        { details: { command: argv, timeoutMs } },
      );
    }
    if ((result.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
      throw new TunnelwardenError(
        'unsupported',
        ErrorCode.commandMissing,
        `${file} is not installed (not found on PATH)`,
        { cause: result.cause, details: { command: argv } },
      );
    }
    const stdout = typeof result.stdout === 'string' ? result.stdout : '';
    const stderr = typeof result.stderr === 'string' ? result.stderr : '';
    if (exitCode !== 0 && !options.allowFailure) {
      const said = (stderr.trim() || stdout.trim()).split('\n').slice(-3).join(' | ');
      throw new TunnelwardenError(
        'command-failed',
        ErrorCode.commandFailed,
        `${commandLine} exited with ${exitCode}${said ? `: ${said}` : ''}`,
        { details: { command: argv, exitCode } },
      );
    }
    return { exitCode, stdout, stderr, durationMs };
  };
}
