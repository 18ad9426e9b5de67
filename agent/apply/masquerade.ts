/**
 * The masquerade resource as a reconciler: observes both iptables backends, plans with
 * plan/masquerade.ts and executes each action as one `iptables-restore --noflush --wait`
 * transaction of the action's backend, fed through stdin. Side effects: only our chain and
 * the jumps to it in the nat table of that backend.
 */
import type { CommandRunner } from '../host/exec.js';
import { backendCommand, observeMasquerade } from '../observe/masquerade.js';
import { planMasquerade, renderRestoreInput, type MasqueradeAction } from '../plan/masquerade.js';
import type { Reconciler } from './reconciler.js';

/** Bound on one restore transaction; `--wait` may queue it behind another xtables user. */
export const RESTORE_TIMEOUT_MS = 30_000;

/**
 * Executes one masquerade action: all of it or, if iptables-restore refuses any line, none of
 * it. Idempotent: the chain is rewritten whole. Throws TunnelwardenError (commandFailed,
 * commandTimedOut, commandMissing) when the restore fails.
 */
export async function applyMasqueradeAction(
  action: MasqueradeAction,
  run: CommandRunner,
): Promise<void> {
  await run([backendCommand(action.backend, 'restore'), '--noflush', '--wait'], {
    input: renderRestoreInput(action),
    timeoutMs: RESTORE_TIMEOUT_MS,
  });
}

/** Makes the masquerade reconciler for one pass. */
export function createMasqueradeReconciler(): Reconciler<MasqueradeAction> {
  const warnings = new Set<string>();
  return {
    resource: 'masquerade',
    async plan(desired, ports) {
      const observed = await observeMasquerade(ports.run, ports.logger);
      const planned = planMasquerade(desired, observed);
      for (const warning of planned.warnings) warnings.add(warning);
      return planned.actions;
    },
    async apply(action, ports) {
      await applyMasqueradeAction(action, ports.run);
    },
    warnings: () => [...warnings],
  };
}
