/**
 * One reconcile pass: for each resource in order, observe -> plan -> apply; then observe again
 * and plan again to verify. With `dryRun` it stops after planning (`tunnelwarden plan`).
 * A resource stops at its first action that fails hard and is reported with its error, while
 * the other resources still reconcile; the next pass starts from a fresh look.
 */
import { asTunnelwardenError, type TunnelwardenError } from '../errors.js';
import type { DesiredState } from '../model/schema.js';
import { describeAction, type ActionBase, type Resource } from '../plan/actions.js';
import { RESOURCE_ORDER, type HostPorts, type Reconciler, type ReconcilerFactory } from './reconciler.js';
import { RECONCILER_FACTORIES } from './reconcilers.js';

export interface ResourceFailure {
  resource: Resource;
  error: TunnelwardenError;
}

export interface PassResult {
  /** What the pass planned (and, unless dry, did), over all resources. */
  actions: ActionBase[];
  /** What a plan against the host after applying still wants; empty when converged. */
  remaining: ActionBase[];
  /** Resources that could not be planned or whose action failed. */
  failures: ResourceFailure[];
  /** Warnings found on the way (secret file modes...), already logged. */
  warnings: string[];
}

let passCounter = 0;

function ordered(factories: readonly ReconcilerFactory[]): Reconciler[] {
  return factories
    .map((factory) => factory())
    .sort((a, b) => RESOURCE_ORDER.indexOf(a.resource) - RESOURCE_ORDER.indexOf(b.resource));
}

/**
 * Runs one pass over every resource. Never throws for a resource's failure: failures are in
 * the result (and logged at error level).
 */
export async function runPass(
  desired: DesiredState,
  ports: HostPorts,
  options: { dryRun?: boolean; factories?: readonly ReconcilerFactory[] } = {},
): Promise<PassResult> {
  passCounter += 1;
  const logger = ports.logger.child({ pass: passCounter });
  const passPorts = { ...ports, logger };
  const startedAt = performance.now();
  const reconcilers = ordered(options.factories ?? RECONCILER_FACTORIES);
  const result: PassResult = { actions: [], remaining: [], failures: [], warnings: [] };
  const fail = (resource: Resource, thrown: unknown, action?: ActionBase) => {
    const error = asTunnelwardenError(thrown);
    result.failures.push({ resource, error });
    logger.error(
      { resource, ...(action ? { action: action.type, target: action.target } : {}), code: error.code, err: error },
      action ? 'action failed' : 'resource could not be planned',
    );
  };

  const applied: Reconciler[] = [];
  for (const reconciler of reconcilers) {
    let actions: ActionBase[];
    try {
      actions = await reconciler.plan(desired, passPorts);
    } catch (thrown) {
      fail(reconciler.resource, thrown);
      continue;
    } finally {
      for (const warning of reconciler.warnings()) {
        result.warnings.push(warning);
        logger.warn({ resource: reconciler.resource, reason: warning }, 'desired state warning');
      }
    }
    result.actions.push(...actions);
    if (options.dryRun || actions.length === 0) continue;
    applied.push(reconciler);
    for (const action of actions) {
      const actionStartedAt = performance.now();
      try {
        await reconciler.apply(action, passPorts);
      } catch (thrown) {
        fail(reconciler.resource, thrown, action);
        break;
      }
      logger.info(
        {
          resource: action.resource,
          action: action.type,
          target: action.target,
          reason: action.reason,
          duration_ms: Math.round(performance.now() - actionStartedAt),
        },
        'action applied',
      );
    }
  }
  if (options.dryRun) return { ...result, remaining: result.actions };


  for (const reconciler of applied) {
    if (result.failures.some((failure) => failure.resource === reconciler.resource)) continue;
    try {
      result.remaining.push(...(await reconciler.plan(desired, passPorts)));
    } catch (thrown) {
      fail(reconciler.resource, thrown);
    }
  }

  // After verification, so what it learnt (a conn found healthy again) is what is kept.
  for (const reconciler of reconcilers) {
    try {
      await reconciler.settle?.(passPorts);
    } catch (thrown) {
      fail(reconciler.resource, thrown);
    }
  }

  const durationMs = Math.round(performance.now() - startedAt);
  const summary = { actions: result.actions.length, duration_ms: durationMs };
  if (result.failures.length > 0) {
    logger.error({ ...summary, failed: result.failures.map((failure) => failure.resource) }, 'pass failed');
  } else if (result.remaining.length > 0) {
    logger.warn({ ...summary, remaining: result.remaining.map(describeAction) }, 'pass did not converge');
  } else {
    logger[result.actions.length === 0 ? 'debug' : 'info'](summary, 'pass converged');
  }
  return result;
}
