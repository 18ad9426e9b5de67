/**
 * Logging: pino JSON with fixed messages and fields (pass, resource, action, reason,
 * duration_ms). Secrets never reach a log: values under the redacted keys are replaced, and
 * no code logs a secret's value in the first place (plans carry no secret content).
 */
import { pino, type DestinationStream, type Logger } from 'pino';

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

/** A logger writing JSON lines to `destination` (stderr by default). */
export function createLogger(options: { level?: LogLevel; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { name: 'tunnelwarden' },
      redact: { paths: REDACTED_KEYS, censor: '[redacted]' },
      serializers: { err: pino.stdSerializers.err },
    },
    options.destination ?? pino.destination({ fd: 2, sync: true }),
  );
}
