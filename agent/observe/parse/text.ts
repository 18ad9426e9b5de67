/**
 * Small, pure text helpers shared by the strongSwan and xfrm parsers: line splitting, numbers,
 * durations, traffic-selector lists and `left...right` endpoint pairs.
 *
 * Every helper is total: it returns `undefined` (or an empty list) for input it does not
 * understand and never throws. None of them uses a regular expression that can backtrack
 * more than linearly.
 */

/** Seconds per unit word as strongSwan prints durations (`%V`: "59 seconds", "2 hours"). */
const SECONDS_PER_UNIT: ReadonlyMap<string, number> = new Map([
  ['s', 1],
  ['second', 1],
  ['seconds', 1],
  ['minute', 60],
  ['minutes', 60],
  ['hour', 3600],
  ['hours', 3600],
  ['day', 86_400],
  ['days', 86_400],
]);

/**
 * A duration as strongSwan prints it: "3 minutes", "1 hour", "3 seconds" (stroke, `%V`) or
 * "68s" (counters and swanctl). Anchored; the unit is one word of letters.
 */
const DURATION = /^(\d{1,15}) ?([a-z]{1,7})$/;

/**
 * Splits command output into lines at `\n`, `\r\n` or a lone `\r`, so no line (and no field read
 * from one) ever holds a line break. A non-string gives no lines.
 */
export function splitLines(text: unknown): string[] {
  if (typeof text !== 'string' || text.length === 0) return [];
  return text.split(/\r\n?|\n/);
}

/**
 * Parses a non-negative decimal integer. Undefined for anything else, and for values beyond
 * Number.MAX_SAFE_INTEGER (counters that large would lose precision silently).
 */
export function parseCount(digits: string | undefined): number | undefined {
  if (digits === undefined || !/^\d{1,16}$/.test(digits)) return undefined;
  const value = Number(digits);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** Converts "3 minutes", "1 hour", "68s" to seconds (180, 3600, 68); undefined otherwise. */
export function parseDurationSeconds(text: string | undefined): number | undefined {
  const match = text === undefined ? null : DURATION.exec(text);
  if (match === null) return undefined;
  const count = parseCount(match[1]);
  const unitSeconds = SECONDS_PER_UNIT.get(match[2]!);
  if (count === undefined || unitSeconds === undefined) return undefined;
  const seconds = count * unitSeconds;
  return Number.isSafeInteger(seconds) ? seconds : undefined;
}

/** Splits a space-separated list ("10.1.0.0/16 10.5.0.0/24", plugin names); [] when blank. */
export function splitWords(text: string): string[] {
  return text.split(/\s+/).filter((selector) => selector.length > 0);
}

/**
 * Splits `left...right` (stroke's "172.16.0.18...172.16.0.2") at the first `...` that is not
 * followed by another dot, so a host name ending in a dot keeps it. Undefined without `...`.
 */
export function splitEndpoints(text: string): { left: string; right: string } | undefined {
  let at = text.indexOf('...');
  while (at >= 0 && text[at + 3] === '.') at = text.indexOf('...', at + 1);
  if (at < 0) return undefined;
  return { left: text.slice(0, at), right: text.slice(at + 3) };
}

/** A copy of `record` without the keys whose value is undefined, so results compare cleanly. */
export function withoutUndefined<T extends object>(record: T): Partial<T> {
  const copy: Partial<T> = {};
  for (const key of Object.keys(record) as (keyof T)[]) {
    if (record[key] !== undefined) copy[key] = record[key];
  }
  return copy;
}
