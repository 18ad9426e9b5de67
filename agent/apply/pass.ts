/**
 * One reconcile pass: resolve secrets -> observe -> plan -> apply -> observe again -> verify.
 * With `dryRun` it stops after planning, which is what `tunnelwarden plan` shows.
 * A pass stops at the first action that fails hard; the next pass starts from a fresh look.
 */
import type { Logger } from 'pino';
import { ErrorCode, TunnelwardenError, asTunnelwardenError } from '../errors.js';
import { formatFinding } from '../model/load.js';
import type { HostPaths } from '../model/paths.js';
import type { DesiredState } from '../model/schema.js';
import type { CommandRunner } from '../host/exec.js';
import { sha256, type FileStore } from '../host/files.js';
import { resolveSecrets } from '../host/secrets.js';
import { observeIpsec } from '../observe/ipsec.js';
import { describeAction, type Action } from '../plan/actions.js';
import { planIpsec } from '../plan/ipsec.js';
import { renderIpsecConf, renderIpsecSecrets } from '../plan/ipsec-render.js';
import { applyIpsecAction, DEFAULT_IPSEC_WAITS, type IpsecWaits } from './ipsec.js';
import type { Sleep } from './wait.js';

export interface PassDependencies {
  run: CommandRunner;
  files: FileStore;
  logger: Logger;
  paths: HostPaths;
  waits?: IpsecWaits;
  sleep?: Sleep;
  makeDirectory?: (path: string) => Promise<void>;
}

export interface PassResult {
  /** What the pass planned (and, unless dry, did). */
  actions: Action[];
  /** What a plan against the host after applying still wants; empty when converged. */
  remaining: Action[];
  /** Warnings found on the way (secret file modes...), already logged. */
  warnings: string[];
}

let passCounter = 0;

interface Prepared {
  renderedConf: string;
  renderedSecrets: string;
  warnings: string[];
}

async function prepare(desired: DesiredState, deps: PassDependencies): Promise<Prepared> {
  const resolution = await resolveSecrets(desired, deps.files);
  if (!resolution.ok) {
    throw new TunnelwardenError(
      'invalid-config',
      ErrorCode.secretUnreadable,
      resolution.errors.map(formatFinding).join('\n'),
    );
  }
  return {
    renderedConf: renderIpsecConf(desired),
    renderedSecrets: renderIpsecSecrets(desired, resolution.secrets),
    warnings: resolution.warnings.map(formatFinding),
  };
}

async function planAll(
  desired: DesiredState,
  prepared: Prepared,
  deps: PassDependencies,
): Promise<Action[]> {
  const observed = await observeIpsec(deps.paths, deps.run, deps.files, deps.logger);
  return planIpsec({
    desired,
    observed,
    paths: deps.paths,
    renderedConf: prepared.renderedConf,
    renderedSecretsSha256: sha256(prepared.renderedSecrets),
    renderedSecretsEntries: prepared.renderedSecrets.split('\n').filter((line) => / : /.test(line)).length,
  });
}

/**
 * Runs one pass. Throws TunnelwardenError when secrets cannot be resolved (nothing changed
 * then), when strongSwan is missing, or when an action fails (the pass stops there).
 */
export async function runPass(
  desired: DesiredState,
  deps: PassDependencies,
  options: { dryRun?: boolean } = {},
): Promise<PassResult> {
  passCounter += 1;
  const logger = deps.logger.child({ pass: passCounter });
  const startedAt = performance.now();
  const prepared = await prepare(desired, deps);
  for (const warning of prepared.warnings) logger.warn({ resource: 'ipsec', reason: warning }, 'desired state warning');

  const actions = await planAll(desired, prepared, deps);
  if (options.dryRun) return { actions, remaining: actions, warnings: prepared.warnings };

  const context = {
    run: deps.run,
    files: deps.files,
    logger,
    paths: deps.paths,
    renderedSecrets: prepared.renderedSecrets,
    waits: deps.waits ?? DEFAULT_IPSEC_WAITS,
    sleep: deps.sleep,
    makeDirectory: deps.makeDirectory,
  };
  for (const action of actions) {
    const actionStartedAt = performance.now();
    try {
      await applyIpsecAction(action, context);
    } catch (thrown) {
      const error = asTunnelwardenError(thrown);
      logger.error(
        { ...describeAction(action), resource: action.resource, action: action.type, err: error },
        'action failed',
      );
      throw error;
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

  const remaining = actions.length === 0 ? [] : await planAll(desired, prepared, deps);
  const durationMs = Math.round(performance.now() - startedAt);
  if (remaining.length === 0) {
    logger[actions.length === 0 ? 'debug' : 'info'](
      { actions: actions.length, duration_ms: durationMs },
      'pass converged',
    );
  } else {
    logger.warn(
      { actions: actions.length, remaining: remaining.map(describeAction), duration_ms: durationMs },
      'pass did not converge',
    );
  }
  return { actions, remaining, warnings: prepared.warnings };
}
