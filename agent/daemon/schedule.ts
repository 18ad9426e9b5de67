/**
 * The periodic full pass, on node-cron. An interval in seconds becomes a cron expression with
 * a seconds field; only intervals that divide the minute, the hour or the day evenly can be
 * written that way (cron restarts its count at each minute, hour or day), so others are
 * refused with the nearest allowed values named.
 */
import { createTask, type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';

/** Every 30 seconds unless configured otherwise. */
export const DEFAULT_INTERVAL_SECONDS = 30;

const SECONDS_PER_MINUTE = 60;
const SECONDS_PER_HOUR = 3_600;
const SECONDS_PER_DAY = 86_400;

/**
 * The cron expression (six fields, seconds first) for a pass every `seconds`, or an error
 * message when no expression repeats at exactly that interval. Pure.
 */
export function cronExpressionFor(seconds: number): { expression: string } | { error: string } {
  if (!Number.isInteger(seconds) || seconds < 1) {
    return { error: `the interval must be a whole number of seconds >= 1, got ${seconds}` };
  }
  if (seconds < SECONDS_PER_MINUTE && SECONDS_PER_MINUTE % seconds === 0) {
    return { expression: seconds === 1 ? '* * * * * *' : `*/${seconds} * * * * *` };
  }
  if (seconds === SECONDS_PER_MINUTE) return { expression: '0 * * * * *' };
  const minutes = seconds / SECONDS_PER_MINUTE;
  if (seconds < SECONDS_PER_HOUR && Number.isInteger(minutes) && 60 % minutes === 0) {
    return { expression: `0 */${minutes} * * * *` };
  }
  if (seconds === SECONDS_PER_HOUR) return { expression: '0 0 * * * *' };
  const hours = seconds / SECONDS_PER_HOUR;
  if (seconds <= SECONDS_PER_DAY && Number.isInteger(hours) && 24 % hours === 0) {
    return { expression: hours === 24 ? '0 0 0 * * *' : `0 0 */${hours} * * *` };
  }
  return {
    error:
      `a pass every ${seconds} s cannot be scheduled evenly; use a divisor of 60 s ` +
      '(1-60, e.g. 15, 30), of an hour in minutes (e.g. 120, 300, 600) or of a day in hours',
  };
}

/** Starts a cron task calling `onTick` on the schedule. Stop it with `destroy()`. */
export function scheduleFullPasses(expression: string, onTick: () => void, logger: Logger): ScheduledTask {
  const cronLog = logger.child({ component: 'schedule' });
  return createTask(expression, () => onTick(), {
    name: 'tunnelwarden-full-pass',
    noOverlap: false,
    // node-cron would otherwise print plain text on the console, breaking the JSON log.
    logger: {
      info: (message) => cronLog.debug({ said: message }, 'scheduler note'),
      warn: (message) => cronLog.debug({ said: message }, 'scheduler note'),
      error: (message) => cronLog.warn({ said: String(message) }, 'scheduler error'),
      debug: (message) => cronLog.debug({ said: String(message) }, 'scheduler note'),
    },
  });
}
