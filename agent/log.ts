/**
 * Logging: pino JSON with fixed messages and fields (pass, resource, action, reason,
 * duration_ms). Secrets never reach a log: values under the redacted keys are replaced, and
 * no code logs a secret's value in the first place (plans carry no secret content).
 *
 * The CLI logs plain JSON lines to stderr. The daemon logs to stdout with a journald priority
 * prefix on each line (`<3>{...}`): systemd reads that prefix (SyslogLevelPrefix=, on by
 * default) as the line's priority and strips it, so `journalctl -p warning` selects by level.
 */
import { pino, symbols, type DestinationStream, type Logger } from 'pino';

/** Keys whose values are replaced by "[redacted]" wherever they appear in a log object. */
export const REDACTED_KEYS = [
  'psk',
  'password',
  'secret',
  'content',
  '*.psk',
  '*.password',
  '*.secret',
  '*.content',
  '*.*.psk',
  '*.*.password',
];

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** A line sink; the daemon's is stdout, tests pass a collector. */
export type LineWriter = (text: string) => void;

/**
 * The syslog priority of a pino level number, as journald's prefix: fatal 2 (crit),
 * error 3, warn 4, info 6, debug and trace 7.
 */
export function journaldPriority(levelNumber: number): number {
  if (levelNumber >= 60) return 2;
  if (levelNumber >= 50) return 3;
  if (levelNumber >= 40) return 4;
  if (levelNumber >= 30) return 6;
  return 7;
}

/**
 * A pino destination that writes each line with its journald priority prefix. pino tells a
 * destination marked with `needsMetadataGsym` the level of the line it is about to write
 * (`lastLevel`), so no line is parsed again.
 */
export function journaldDestination(write: LineWriter): DestinationStream {
  const destination = {
    [symbols.needsMetadataGsym]: true as const,
    lastLevel: 30,
    write(line: string) {
      write(`<${journaldPriority(destination.lastLevel)}>${line}`);
    },
  };
  return destination as unknown as DestinationStream;
}

let stdoutStream: ReturnType<typeof pino.destination> | undefined;

/** Writes synchronously to stdout, so nothing logged before an exit is lost. */
const stdoutWriter: LineWriter = (text) => {
  stdoutStream ??= pino.destination({ fd: 1, sync: true });
  stdoutStream.write(text);
};

/**
 * A logger writing JSON lines. By default to stderr without prefix (the CLI). With `journald`
 * the lines go to `destination` or stdout, each with its journald priority prefix (the
 * daemon).
 */
export function createLogger(
  options: { level?: LogLevel; destination?: DestinationStream; journald?: boolean | LineWriter } = {},
): Logger {
  const journald = options.journald;
  const destination =
    journald === undefined || journald === false
      ? (options.destination ?? pino.destination({ fd: 2, sync: true }))
      : journaldDestination(typeof journald === 'function' ? journald : stdoutWriter);
  return pino(
    {
      level: options.level ?? 'info',
      base: { name: 'tunnelwarden' },
      redact: { paths: REDACTED_KEYS, censor: '[redacted]' },
      serializers: { err: pino.stdSerializers.err },
    },
    destination,
  );
}
