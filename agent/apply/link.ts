/**
 * The transit link as a reconciler: observes with observe/link.ts, plans with plan/link.ts and
 * executes each action with one `ip` command. Every action is idempotent: an address or route
 * already gone, or a VLAN already deleted, counts as done; addresses and routes are set with
 * `replace`.
 *
 * The state file (`links.json` under the state dir, written atomically) records what we own.
 * An action that claims something (creating a VLAN, adding an address or route) is recorded
 * before it runs, so a crash in between leaves a claim on something absent, never an unowned
 * interface; an action that gives something up is recorded after it succeeded.
 */
import { mkdir } from 'node:fs/promises';
import { ErrorCode, TunnelwardenError } from '../errors.js';
import { parseCidr } from '../model/net.js';
import type { CommandRunner } from '../host/exec.js';
import { linkStatePath, observeLink, readLinkState } from '../observe/link.js';
import {
  claimsOwnership,
  planLink,
  renderLinkState,
  stateAfter,
  type LinkAction,
} from '../plan/link.js';
import type { HostPorts, Reconciler } from './reconciler.js';

/** Permission bits of the state file: readable, it holds no secret. */
export const LINK_STATE_FILE_MODE = 0o644;

const defaultMakeDirectory = async (path: string) => {
  await mkdir(path, { recursive: true, mode: 0o755 });
};

/** Runs `argv`; a failure whose stderr matches `alreadyDone` counts as success. */
async function runIdempotent(
  run: CommandRunner,
  argv: string[],
  alreadyDone?: RegExp,
): Promise<void> {
  const result = await run(argv, { allowFailure: true });
  if (result.exitCode === 0) return;
  if (alreadyDone?.test(result.stderr)) return;
  throw new TunnelwardenError(
    'command-failed',
    ErrorCode.commandFailed,
    `${argv.join(' ')} exited with ${result.exitCode}: ${result.stderr.trim()}`,
    { details: { command: argv, exitCode: result.exitCode } },
  );
}

function routeArgv(
  verb: 'replace' | 'del',
  action: Extract<LinkAction, { route: unknown }>,
): string[] {
  const { route } = action;
  const family = parseCidr(route.destination)?.family === 6 ? '-6' : '-4';
  return [
    'ip',
    family,
    'route',
    verb,
    route.destination,
    ...(route.gateway === undefined ? [] : ['via', route.gateway]),
    'dev',
    action.target,
    ...(route.onLink ? ['onlink'] : []),
    'metric',
    String(route.metric),
  ];
}

async function createVlan(
  run: CommandRunner,
  action: Extract<LinkAction, { type: 'create-vlan' }>,
): Promise<void> {
  const argv = [
    'ip',
    'link',
    'add',
    'link',
    action.parent,
    'name',
    action.target,
    'type',
    'vlan',
    'id',
    String(action.vlanId),
  ];
  const result = await run(argv, { allowFailure: true });
  if (result.exitCode === 0) return;
  if (/Unknown device type/.test(result.stderr)) {
    throw new TunnelwardenError(
      'unsupported',
      ErrorCode.unsupportedKernel,
      `transit: kernel lacks 802.1Q (module 8021q not available): ${argv.join(' ')} says ${result.stderr.trim()}`,
    );
  }
  throw new TunnelwardenError(
    'command-failed',
    ErrorCode.commandFailed,
    `${argv.join(' ')} exited with ${result.exitCode}: ${result.stderr.trim()}`,
    { details: { command: argv, exitCode: result.exitCode } },
  );
}

/** Runs the one command of an action. Idempotent. Throws TunnelwardenError on a hard failure. */
export async function runLinkAction(run: CommandRunner, action: LinkAction): Promise<void> {
  const dev = action.target;
  switch (action.type) {
    case 'create-vlan':
      return createVlan(run, action);
    case 'delete-vlan':
      return runIdempotent(
        run,
        ['ip', 'link', 'delete', 'dev', dev],
        /Cannot find device|does not exist/,
      );
    case 'set-mtu':
      return runIdempotent(run, ['ip', 'link', 'set', 'dev', dev, 'mtu', String(action.mtuBytes)]);
    case 'set-up':
      return runIdempotent(run, ['ip', 'link', 'set', 'dev', dev, 'up']);
    case 'add-address':
      return runIdempotent(run, ['ip', 'address', 'replace', action.address, 'dev', dev]);
    case 'remove-address':
      return runIdempotent(
        run,
        ['ip', 'address', 'del', action.address, 'dev', dev],
        /Cannot assign requested address/,
      );
    case 'add-route':
    case 'replace-route':
      return runIdempotent(run, routeArgv('replace', action));
    case 'delete-route':
      return runIdempotent(run, routeArgv('del', action), /No such process/);
  }
}

async function recordInState(action: LinkAction, ports: HostPorts): Promise<void> {
  const { state } = await readLinkState(ports.files, ports.paths);
  const next = stateAfter(state, action);
  if (next === state) return;
  await (ports.makeDirectory ?? defaultMakeDirectory)(ports.paths.stateDir);
  await ports.files.write(linkStatePath(ports.paths), renderLinkState(next), LINK_STATE_FILE_MODE);
}

/** Makes the link reconciler for one pass. */
export function createLinkReconciler(): Reconciler<LinkAction> {
  const warnings: string[] = [];

  return {
    resource: 'link',
    async plan(desired, ports) {
      const recorded = await readLinkState(ports.files, ports.paths);
      for (const warning of recorded.warnings.map(
        (text) => `${linkStatePath(ports.paths)}: ${text}`,
      )) {
        if (!warnings.includes(warning)) warnings.push(warning);
      }
      const transit = desired.transit;
      if (!transit && Object.keys(recorded.state.interfaces).length === 0) return [];
      const observed = await observeLink(transit, ports, recorded.state);
      return planLink({ transit, observed });
    },
    async apply(action, ports) {
      const claims = claimsOwnership(action);
      if (claims) await recordInState(action, ports);
      await runLinkAction(ports.run, action);
      if (!claims) await recordInState(action, ports);
    },
    warnings: () => [...warnings],
  };
}
