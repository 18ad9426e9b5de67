/**
 * Bounded polling: apply/ waits for charon to show an effect (conns loaded, an SA up) by
 * asking again at an interval until a deadline, never by sleeping a fixed time.
 */

export type Sleep = (ms: number) => Promise<void>;

export const realSleep: Sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Calls `check` until it returns a value other than undefined or `timeoutMs` has passed.
 * Returns that value, or undefined on timeout. Errors thrown by `check` propagate.
 */
export async function pollUntil<T>(
  check: () => Promise<T | undefined>,
  options: { timeoutMs: number; intervalMs: number; sleep?: Sleep; now?: () => number },
): Promise<T | undefined> {
  const sleep = options.sleep ?? realSleep;
  const now = options.now ?? (() => performance.now());
  const deadline = now() + options.timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (now() >= deadline) return undefined;
    await sleep(options.intervalMs);
  }
}
