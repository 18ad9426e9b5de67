/**
 * The daemon's pass queue: passes run one at a time, and every trigger that arrives while a
 * pass runs is folded into exactly one more pass, which receives all their reasons. Triggers
 * only say "look now"; what a pass does is decided by the pass itself, from a fresh look.
 *
 * No I/O here: the pass is a function handed in, so tests drive the queue directly.
 */

/** Why a pass was asked for: `start`, `file`, `schedule`, `signal`, `retry`, later `vici`. */
export type TriggerReason = string;

/** Runs one pass; `reasons` are the distinct triggers folded into it, in arrival order. */
export type PassRunner = (reasons: TriggerReason[]) => Promise<void>;

export interface PassQueue {
  /** Asks for a pass. Never blocks and never throws; ignored once `stop` was called. */
  trigger(reason: TriggerReason): void;
  /** True while a pass runs. */
  readonly running: boolean;
  /** Stops taking triggers and resolves when the running pass (if any) has ended. */
  stop(): Promise<void>;
  /** Resolves when no pass runs and none is pending (for tests and benchmarks). */
  idle(): Promise<void>;
}

/**
 * Makes a queue around `runPassFor`. A pass that throws is reported to `onPassError` (the
 * queue goes on with the next one): the pass function is expected to catch its own failures,
 * so this is a last line of defence, not the way failures travel.
 */
export function createPassQueue(
  runPassFor: PassRunner,
  onPassError: (thrown: unknown) => void = () => undefined,
): PassQueue {
  let pending: TriggerReason[] = [];
  let draining: Promise<void> | undefined;
  let running = false;
  let stopped = false;

  async function drain(): Promise<void> {
    while (pending.length > 0 && !stopped) {
      const reasons = pending;
      pending = [];
      running = true;
      try {
        await runPassFor(reasons);
      } catch (thrown) {
        onPassError(thrown);
      } finally {
        running = false;
      }
    }
  }

  function startDraining(): void {
    if (draining) return;
    draining = drain().finally(() => {
      draining = undefined;
      if (pending.length > 0 && !stopped) startDraining();
    });
  }

  return {
    trigger(reason) {
      if (stopped) return;
      if (!pending.includes(reason)) pending.push(reason);
      startDraining();
    },
    get running() {
      return running;
    },
    async stop() {
      stopped = true;
      pending = [];
      await draining;
    },
    async idle() {
      while (draining) await draining;
    },
  };
}
