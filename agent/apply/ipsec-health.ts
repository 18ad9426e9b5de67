/**
 * Health checks and heals of the ipsec resource, run inside its plan: probe each established
 * conn that has a probe, sample its counters, read xfrm when the kernel carries ESP, find the
 * problems (plan/health.ts), decide heals (plan/heal.ts), and hand the new health state back
 * to be saved once the pass is not a dry run. Findings and decisions are logged here.
 */
import type { Logger } from 'pino';
import type { DesiredState, SiteToSiteConnection } from '../model/schema.js';
import type { CommandRunner } from '../host/exec.js';
import type { ProbeLog } from './reconciler.js';
import type { IpsecObservation } from '../observe/ipsec.js';
import { parseXfrmPolicy, parseXfrmState } from '../observe/parse/xfrm.js';
import type { IkeSa, XfrmPolicy, XfrmState } from '../observe/parse/types.js';
import { probeOnce } from '../observe/probe.js';
import type { IpsecAction, IpsecHealAction } from '../plan/actions.js';
import { decideHeal, type HealAction } from '../plan/heal.js';
import { findConnProblems } from '../plan/health.js';
import { ikeSasByConn, isConnUp } from '../plan/ipsec.js';
import {
  freshConnHealth,
  recordCounters,
  recordProbe,
  trackConnecting,
  type HealthStateFile,
} from '../plan/health-state.js';

export interface HealthPlan {
  actions: IpsecHealAction[];
  /** Planner actions superseded by a heal (an initiate replaced by a restart). */
  superseded: Set<IpsecAction>;
  state: HealthStateFile;
}

/** How stroke names an IKE_SA that no conn has claimed yet. */
const UNNAMED_IKE_SA = '(unnamed)';

interface KernelView {
  kernelIpsec: boolean;
  states?: XfrmState[];
  policies?: XfrmPolicy[];
}

async function readKernel(observed: IpsecObservation, run: CommandRunner): Promise<KernelView> {
  if (observed.status.plugins.includes('kernel-libipsec')) return { kernelIpsec: false };
  const [states, policies] = await Promise.all([
    run(['ip', 'xfrm', 'state'], { allowFailure: true }),
    run(['ip', 'xfrm', 'policy'], { allowFailure: true }),
  ]);
  if (states.exitCode !== 0 || policies.exitCode !== 0) return { kernelIpsec: false };
  return { kernelIpsec: true, states: parseXfrmState(states.stdout), policies: parseXfrmPolicy(policies.stdout) };
}

function toIpsecAction(heal: HealAction): IpsecHealAction | undefined {
  switch (heal.type) {
    case 'terminate-ike-sa':
    case 'terminate-child-sa':
      return { resource: 'ipsec', type: heal.type, target: heal.conn, uniqueId: heal.uniqueId, reason: heal.reason };
    case 'restart-ike-sa':
    case 'reload-config':
    case 'restart-charon':
      return { resource: 'ipsec', type: heal.type, target: heal.conn, reason: heal.reason };
    case 'initiate':
      return undefined; // the planner's own initiate does this rung
  }
}

/**
 * A responder's half-open IKE_SA has no conn yet (stroke prints "(unnamed)") until IKE_AUTH
 * arrives; it belongs to the conn whose peer address it comes from. Returns a lookup by peer.
 */
function halfOpenByPeer(ikeSas: readonly IkeSa[]): (remoteAddress: string) => IkeSa[] {
  const byPeer = new Map<string, IkeSa[]>();
  for (const sa of ikeSas) {
    if (sa.conn !== UNNAMED_IKE_SA || sa.state !== 'CONNECTING' || sa.remoteAddress === undefined) continue;
    const list = byPeer.get(sa.remoteAddress);
    if (list) list.push(sa);
    else byPeer.set(sa.remoteAddress, [sa]);
  }
  return (remoteAddress) => byPeer.get(remoteAddress) ?? [];
}

/** Up and, when the conn has a probe, its last probe answered. */
function isConfirmedHealthy(connection: SiteToSiteConnection, connSas: readonly IkeSa[], probeLosses: number): boolean {
  return isConnUp(connSas) && (connection.probe === undefined || probeLosses === 0);
}

/**
 * Plans heals for every site-to-site conn. `plannerActions` are the config/initiation actions
 * already planned; a conn whose config is being rewritten is not healed in the same pass.
 */
export async function planHealth(options: {
  desired: DesiredState;
  observed: IpsecObservation;
  plannerActions: IpsecAction[];
  previous: HealthStateFile;
  run: CommandRunner;
  logger: Logger;
  /** A probe monitor's readings, when one runs (the daemon). */
  probes?: ProbeLog;
  nowMs: number;
  random: () => number;
}): Promise<HealthPlan> {
  const { desired, observed, plannerActions, logger } = options;
  const plan: HealthPlan = { actions: [], superseded: new Set(), state: { version: 1, conns: {} } };
  if (!observed.charonRunning) return { ...plan, state: options.previous };
  const configChanging = plannerActions.some((action) =>
    ['write-conf', 'reload-conns', 'start-strongswan'].includes(action.type),
  );
  const kernel = await readKernel(observed, options.run);
  const sasOf = ikeSasByConn(observed.status.ikeSas);
  const halfOpenFrom = halfOpenByPeer(observed.status.ikeSas);

  for (const connection of desired.ipsec?.connections ?? []) {
    const name = connection.name;
    const state = structuredClone(options.previous.conns[name] ?? freshConnHealth());
    const connSas = sasOf(name);
    const sas = [...connSas, ...halfOpenFrom(connection.remote.address)];

    const monitored = options.probes?.latest(name);
    // Usable only when fresh, and when its run of losses began after our last heal: probes
    // lost while the last heal was under way say nothing about the healed tunnel.
    const lastHealAtMs = state.lastHeal?.atMs ?? 0;
    const monitorIsCurrent =
      monitored !== undefined &&
      connection.probe !== undefined &&
      monitored.atMs > lastHealAtMs &&
      (monitored.lossesSinceMs ?? monitored.atMs) > lastHealAtMs &&
      options.nowMs - monitored.atMs <= 2 * connection.probe.intervalMs;
    if (monitorIsCurrent) {
      // The daemon's monitor probed moments ago (and confirmed any loss): no need to wait on
      // another probe here.
      state.probe = { ...state.probe, consecutiveLosses: monitored.consecutiveLosses, lastAtMs: monitored.atMs };
    } else if (connection.probe && isConnUp(connSas)) {
      const result = await probeOnce(options.run, connection.probe);
      state.probe = recordProbe(state.probe, result, options.nowMs);
    }
    const installed = sas
      .filter((sa) => sa.state === 'ESTABLISHED')
      .flatMap((sa) => sa.children)
      .find((child) => child.state === 'INSTALLED' && child.spiIn && child.bytesIn !== undefined);
    if (installed) {
      state.counters = recordCounters(state.counters, {
        atMs: options.nowMs,
        spiIn: installed.spiIn!,
        bytesIn: installed.bytesIn!,
        bytesOut: installed.bytesOut ?? 0,
      });
    }

    const connectingIds = sas.filter((sa) => sa.state === 'CONNECTING').map((sa) => sa.uniqueId);
    state.connectingSinceMs = trackConnecting(state.connectingSinceMs, connectingIds, options.nowMs);
    const connectingForMs = new Map(connectingIds.map((id) => [id, options.nowMs - state.connectingSinceMs![String(id)]!]));

    const findings = findConnProblems({
      connection,
      ikeSas: sas,
      kernelIpsec: kernel.kernelIpsec,
      xfrmStates: kernel.states,
      xfrmPolicies: kernel.policies,
      counterHistory: state.counters,
      probe: { consecutiveLosses: state.probe.consecutiveLosses },
      connectingForMs,
    });
    for (const finding of findings) {
      logger.warn({ resource: 'ipsec', conn: name, finding: finding.kind, reason: finding.evidence }, 'health finding');
    }
    if (configChanging && findings.length > 0) {
      plan.state.conns[name] = state;
      continue; // the config change re-establishes what it touches; judge health afterwards
    }

    if (findings.length === 0 && !isConfirmedHealthy(connection, connSas, state.probe.consecutiveLosses)) {
      // No finding is not yet health: a tunnel still coming up after a heal, or whose probe has
      // not answered since, keeps its ladder, so a heal that did not help leads to the next rung.
      plan.state.conns[name] = state;
      continue;
    }

    const decision = decideHeal(findings, state.memory, {
      initiates: connection.initiate,
      nowMs: options.nowMs,
      random: options.random,
    });
    state.memory = decision.memory;
    if (decision.outcome === 'capped' && decision.newlyCapped) {
      logger.error(
        { resource: 'ipsec', conn: name, heals_last_hour: decision.memory.healTimesMs.length },
        'heal cap reached; not healing this conn for now',
      );
    }
    const heals = decision.actions.map(toIpsecAction).filter((action): action is IpsecHealAction => !!action);
    if (heals.some((heal) => heal.type !== 'terminate-ike-sa' && heal.type !== 'terminate-child-sa')) {
      for (const action of plannerActions) {
        if (action.target === name && (action.type === 'initiate' || action.type === 'await-established')) {
          plan.superseded.add(action);
        }
      }
    }
    const last = heals.at(-1);
    if (last) state.lastHeal = { atMs: options.nowMs, action: last.type, reason: last.reason };
    if (heals.some((heal) => heal.type !== 'terminate-ike-sa' && heal.type !== 'terminate-child-sa')) {
      // A restarted tunnel starts its record afresh: earlier losses and counters were the old SA's.
      state.probe = { ...state.probe, consecutiveLosses: 0 };
      state.counters = [];
    }
    plan.actions.push(...heals);
    plan.state.conns[name] = state;
  }
  return plan;
}
