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

/** The most digits a count may have: as many as Number.MAX_SAFE_INTEGER (leading zeros count). */
const MAX_COUNT_DIGITS = 16;
const CHAR_CODE_ZERO = '0'.charCodeAt(0);

/**
 * A duration as strongSwan prints it: "3 minutes", "1 hour", "3 seconds" (stroke, `%V`) or
 * "68s" (counters and swanctl). Anchored; the unit is one word of letters.
 */
const DURATION = /^(\d{1,15}) ?([a-z]{1,7})$/;

/**
 * Yields the lines of command output one at a time, breaking at `\n`, `\r\n` or a lone `\r`, so
 * no line (and no field read from one) ever holds a line break. A non-string gives no lines.
 *
 * Parsers of large outputs loop over this rather than over splitLines: each line is garbage as
 * soon as it has been read, instead of all of them living in one array until the end.
 */
export function* eachLine(text: unknown): Generator<string, void, undefined> {
  if (typeof text !== 'string' || text.length === 0) return;

  // The next `\n` and `\r` at or after `start` (-1: none left); each only ever moves forward.
  let nextLf = text.indexOf('\n');
  let nextCr = text.indexOf('\r');
  let start = 0;
  for (;;) {
    if (nextLf !== -1 && nextLf < start) nextLf = text.indexOf('\n', start);
    if (nextCr !== -1 && nextCr < start) nextCr = text.indexOf('\r', start);
    const end = nextCr === -1 || (nextLf !== -1 && nextLf < nextCr) ? nextLf : nextCr;
    if (end === -1) {
      yield text.slice(start);
      return;
    }
    yield text.slice(start, end);
    start = end + (text.startsWith('\r\n', end) ? 2 : 1);
  }
}

/** All lines of command output, split as eachLine splits them. */
export function splitLines(text: unknown): string[] {
  return Array.from(eachLine(text));
}

/**
 * Parses a non-negative decimal integer. Undefined for anything else, and for values beyond
 * Number.MAX_SAFE_INTEGER (counters that large would lose precision silently).
 */
export function parseCount(digits: string | undefined): number | undefined {
  if (digits === undefined || digits.length === 0 || digits.length > MAX_COUNT_DIGITS) {
    return undefined;
  }
  // Digit by digit rather than Number(): no regex run and no string-to-number conversion on
  // the hot path. Exact while below 2^53; beyond, rounding can't bring it back to a safe value.
  let value = 0;
  for (let index = 0; index < digits.length; index += 1) {
    const digit = digits.charCodeAt(index) - CHAR_CODE_ZERO;
    if (digit < 0 || digit > 9) return undefined;
    value = value * 10 + digit;
  }
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

/** A word of a space-separated list: a run of anything but blanks (global: match() finds all). */
const WORD = /\S+/g;

/** Splits a space-separated list ("10.1.0.0/16 10.5.0.0/24", plugin names); [] when blank. */
export function splitWords(text: string): string[] {
  return text.match(WORD) ?? [];
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

/**
 * Sets `record[key]` to `value` unless `value` is undefined, which leaves the key as it was (so
 * results never hold a key with an undefined value). For fields read one by one from a line.
 */
export function setIfDefined<T extends object, K extends keyof T>(
  record: T,
  key: K,
  value: T[K] | undefined,
): void {
  if (value !== undefined) record[key] = value;
}

/** A copy of `record` without the keys whose value is undefined, so results compare cleanly. */
export function withoutUndefined<T extends object>(record: T): Partial<T> {
  const copy: Partial<T> = {};
  for (const key of Object.keys(record) as (keyof T)[]) {
    if (record[key] !== undefined) copy[key] = record[key];
  }
  return copy;
}
