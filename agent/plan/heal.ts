/**
 * The healing ladder: given one conn's health findings and what was already tried, decide the
 * next heal, or to wait (backoff), or to stop (cap reached). Pure: the clock and the random
 * source arrive as arguments, so tests replay any timeline.
 *
 * - Clearing duplicates and stale half-open SAs is done at once (keeping the newest healthy
 *   SA); it does not climb the ladder.
 * - Everything else climbs, one rung per failed attempt, and starts at the rung that can help
 *   (a missing CHILD_SA starts at initiating it; a tunnel that is up but carries nothing starts
 *   at restarting the IKE_SA):
 *     initiate -> restart-ike-sa -> reload-config -> restart-charon
 * - Between attempts: exponential backoff with jitter. Past `maxHealsPerHour` heals within the
 *   last hour it stops and says so once (the caller logs that at error level).
 * - Only the side that initiates heals; the responder reports.
 */
import type { HealthFinding, HealthFindingKind } from './health.js';

export const LADDER = ['initiate', 'restart-ike-sa', 'reload-config', 'restart-charon'] as const;
export type LadderStep = (typeof LADDER)[number];

export type HealAction =
  | { type: 'terminate-ike-sa'; conn: string; uniqueId: number; reason: string }
  | { type: 'terminate-child-sa'; conn: string; uniqueId: number; reason: string }
  | { type: LadderStep; conn: string; reason: string };

/** What the healer remembers about one conn between passes. */
export interface ConnHealMemory {
  /** Index into LADDER of the last rung tried while the problem lasted; -1 when none. */
  rung: number;
  /** Attempts since the conn was last healthy. */
  attempts: number;
  /** No ladder heal before this time. */
  nextAttemptAtMs: number;
  /** Times of every heal within the last hour, for the cap. */
  healTimesMs: number[];
  /** True once the cap stopped healing; cleared when the conn is healthy again. */
  capped: boolean;
}

export interface HealPolicy {
  baseBackoffMs: number;
  maxBackoffMs: number;
  /** Up to this fraction of the backoff is added at random, so peers do not heal in step. */
  jitterRatio: number;
  maxHealsPerHour: number;
}

export const DEFAULT_HEAL_POLICY: Readonly<HealPolicy> = Object.freeze({
  baseBackoffMs: 2_000,
  maxBackoffMs: 300_000,
  jitterRatio: 0.25,
  maxHealsPerHour: 30,
});

const HOUR_MS = 3_600_000;

export function freshMemory(): ConnHealMemory {
  return { rung: -1, attempts: 0, nextAttemptAtMs: 0, healTimesMs: [], capped: false };
}

/** The first rung that can help with a finding; undefined for the ones cleared directly. */
const ENTRY_RUNG: Record<HealthFindingKind, LadderStep | undefined> = {
  'no-ike-sa': 'initiate',
  'child-sa-missing': 'initiate',
  'stuck-connecting': 'restart-ike-sa',
  'probe-failing': 'restart-ike-sa',
  'inbound-frozen': 'restart-ike-sa',
  'xfrm-state-missing': 'restart-ike-sa',
  'xfrm-policy-missing': 'restart-ike-sa',
  'duplicate-ike-sa': undefined,
  'duplicate-child-sa': undefined,
  'stale-half-open': undefined,
};

export type HealDecision =
  | { outcome: 'healthy'; actions: []; memory: ConnHealMemory }
  | { outcome: 'report-only'; actions: []; memory: ConnHealMemory }
  | { outcome: 'heal'; actions: HealAction[]; memory: ConnHealMemory }
  | { outcome: 'backoff'; actions: HealAction[]; memory: ConnHealMemory; retryAtMs: number }
  | { outcome: 'capped'; actions: []; memory: ConnHealMemory; newlyCapped: boolean };

function backoffMs(attempts: number, policy: HealPolicy, random: () => number): number {
  const exponential = Math.min(policy.maxBackoffMs, policy.baseBackoffMs * 2 ** Math.max(0, attempts - 1));
  return Math.round(exponential * (1 + policy.jitterRatio * random()));
}

/**
 * Decides what to do about one conn now. `initiates` is whether this side initiates the conn.
 * Never mutates `memory`; returns the memory to keep.
 */
export function decideHeal(
  findings: readonly HealthFinding[],
  memory: ConnHealMemory,
  options: { initiates: boolean; nowMs: number; random: () => number; policy?: HealPolicy },
): HealDecision {
  const policy = options.policy ?? DEFAULT_HEAL_POLICY;
  const now = options.nowMs;
  const recent = memory.healTimesMs.filter((at) => now - at < HOUR_MS);
  if (findings.length === 0) {
    return { outcome: 'healthy', actions: [], memory: { ...freshMemory(), healTimesMs: recent } };
  }
  if (!options.initiates) return { outcome: 'report-only', actions: [], memory: { ...memory, healTimesMs: recent } };

  if (recent.length >= policy.maxHealsPerHour) {
    return {
      outcome: 'capped',
      actions: [],
      memory: { ...memory, healTimesMs: recent, capped: true },
      newlyCapped: !memory.capped,
    };
  }

  const cleanup: HealAction[] = findings.flatMap((finding) => [
    ...(finding.ikeSaIds ?? []).map((uniqueId) => ({
      type: 'terminate-ike-sa' as const,
      conn: finding.conn,
      uniqueId,
      reason: `${finding.kind}: ${finding.evidence}`,
    })),
    ...(finding.childSaIds ?? []).map((uniqueId) => ({
      type: 'terminate-child-sa' as const,
      conn: finding.conn,
      uniqueId,
      reason: `${finding.kind}: ${finding.evidence}`,
    })),
  ]);

  const laddered = findings.filter((finding) => ENTRY_RUNG[finding.kind] !== undefined);
  if (laddered.length === 0) {
    return { outcome: 'heal', actions: cleanup, memory: { ...memory, healTimesMs: [...recent, now] } };
  }
  if (now < memory.nextAttemptAtMs) {
    return {
      outcome: 'backoff',
      actions: cleanup,
      memory: { ...memory, healTimesMs: cleanup.length > 0 ? [...recent, now] : recent },
      retryAtMs: memory.nextAttemptAtMs,
    };
  }

  const entry = Math.max(...laddered.map((finding) => LADDER.indexOf(ENTRY_RUNG[finding.kind]!)));
  const rung = Math.min(LADDER.length - 1, Math.max(entry, memory.rung + 1));
  const attempts = memory.attempts + 1;
  const step = LADDER[rung]!;
  const reason = laddered.map((finding) => `${finding.kind}: ${finding.evidence}`).join('; ');
  return {
    outcome: 'heal',
    actions: [...cleanup, { type: step, conn: laddered[0]!.conn, reason }],
    memory: {
      rung,
      attempts,
      nextAttemptAtMs: now + backoffMs(attempts, policy, options.random),
      healTimesMs: [...recent, now],
      capped: false,
    },
  };
}
