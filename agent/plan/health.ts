/**
 * SA health: what is wrong with one site-to-site connection, each finding named and with its
 * evidence, from strongSwan's view (IKE_SAs and CHILD_SAs), the kernel's view (xfrm, when the
 * kernel carries ESP), the byte counters over time and the data-path probe.
 * Pure: no I/O, no clock (times arrive in the input).
 */
import type { SiteToSiteConnection } from '../model/schema.js';
import { selectorKey } from '../model/net.js';
import type { ChildSa, IkeSa, XfrmPolicy, XfrmState } from '../observe/parse/types.js';

export type HealthFindingKind =
  | 'no-ike-sa'
  | 'child-sa-missing'
  | 'duplicate-ike-sa'
  | 'duplicate-child-sa'
  | 'stale-half-open'
  | 'stuck-connecting'
  | 'xfrm-state-missing'
  | 'xfrm-policy-missing'
  | 'inbound-frozen'
  | 'probe-failing';

/** One problem of one conn, with what was seen and the SAs it concerns. */
export interface HealthFinding {
  conn: string;
  kind: HealthFindingKind;
  evidence: string;
  /** IKE_SA unique ids to clear (duplicates, half-open); the one to keep is not listed. */
  ikeSaIds?: number[];
  /** CHILD_SA unique ids to clear (duplicates). */
  childSaIds?: number[];
}

/** Byte counters of the conn's INSTALLED CHILD_SA at one moment. */
export interface CounterSample {
  atMs: number;
  spiIn: string;
  bytesIn: number;
  bytesOut: number;
}

export interface ConnHealthInput {
  connection: SiteToSiteConnection;
  /** Every IKE_SA of this conn (any state). */
  ikeSas: IkeSa[];
  /** True when the kernel carries ESP (xfrm); false with kernel-libipsec. */
  kernelIpsec: boolean;
  xfrmStates?: XfrmState[];
  xfrmPolicies?: XfrmPolicy[];
  /** Oldest first. */
  counterHistory?: CounterSample[];
  probe?: { consecutiveLosses: number };
  /** How long each CONNECTING IKE_SA (by unique id) has been seen CONNECTING, in ms. */
  connectingForMs?: ReadonlyMap<number, number>;
}

/** Thresholds; the defaults suit a site-to-site link. */
export interface HealthPolicy {
  /** A CONNECTING IKE_SA beside one ESTABLISHED at least this long is a stale half-open SA. */
  halfOpenAfterEstablishedSeconds: number;
  /** Outbound bytes growing while inbound stay the same over at least this long is a finding. */
  frozenInboundWindowMs: number;
  /**
   * An IKE_SA CONNECTING this long with none ESTABLISHED is stuck. An exchange with a live
   * peer takes well under a second; charon's own retransmissions (about 165 s by default) are
   * not waited out, since a wedged IKE_SA never gives up on its own.
   */
  stuckConnectingAfterMs: number;
}

export const DEFAULT_HEALTH_POLICY: Readonly<HealthPolicy> = Object.freeze({
  halfOpenAfterEstablishedSeconds: 10,
  frozenInboundWindowMs: 10_000,
  stuckConnectingAfterMs: 60_000,
});

const TRANSITIONAL_CHILD_STATES: ReadonlySet<ChildSa['state']> = new Set([
  'REKEYING',
  'REKEYED',
  'DELETING',
  'DELETED',
  'DESTROYING',
]);

/** Newest first: the shortest time since establishment, then the highest unique id. */
function newestFirst(a: IkeSa, b: IkeSa): number {
  const age = (sa: IkeSa) => sa.establishedSecondsAgo ?? Number.MAX_SAFE_INTEGER;
  return age(a) - age(b) || b.uniqueId - a.uniqueId;
}

function installedChildren(sa: IkeSa): ChildSa[] {
  return sa.children.filter((child) => child.state === 'INSTALLED');
}

/** All findings for one conn, in a stable order. */
export function findConnProblems(
  input: ConnHealthInput,
  policy: HealthPolicy = DEFAULT_HEALTH_POLICY,
): HealthFinding[] {
  const conn = input.connection.name;
  const findings: HealthFinding[] = [];
  const established = input.ikeSas.filter((sa) => sa.state === 'ESTABLISHED').sort(newestFirst);
  const connecting = input.ikeSas.filter((sa) => sa.state === 'CONNECTING');

  // Keep the newest ESTABLISHED IKE_SA that carries traffic; the rest are duplicates.
  const keep = established.find((sa) => installedChildren(sa).length > 0) ?? established[0];
  if (established.length > 1 && keep) {
    const extra = established.filter((sa) => sa !== keep);
    findings.push({
      conn,
      kind: 'duplicate-ike-sa',
      evidence:
        `${established.length} ESTABLISHED IKE_SAs (${established.map((sa) => `#${sa.uniqueId}`).join(', ')}); ` +
        `keeping #${keep.uniqueId}`,
      ikeSaIds: extra.map((sa) => sa.uniqueId),
    });
  }

  if (keep && connecting.length > 0 && (keep.establishedSecondsAgo ?? 0) >= policy.halfOpenAfterEstablishedSeconds) {
    findings.push({
      conn,
      kind: 'stale-half-open',
      evidence:
        `IKE_SA ${connecting.map((sa) => `#${sa.uniqueId}`).join(', ')} CONNECTING beside ` +
        `#${keep.uniqueId} ESTABLISHED ${keep.establishedSecondsAgo ?? 0} s ago`,
      ikeSaIds: connecting.map((sa) => sa.uniqueId),
    });
  }

  if (!keep) {
    if (input.connection.initiate && connecting.length === 0) {
      findings.push({
        conn,
        kind: 'no-ike-sa',
        evidence:
          input.ikeSas.length === 0
            ? 'no IKE_SA at all'
            : `IKE_SAs only in ${input.ikeSas.map((sa) => `#${sa.uniqueId} ${sa.state}`).join(', ')}`,
      });
    }
    if (input.connection.initiate) findings.push(...stuckFindings(conn, connecting, input, policy));
    return [...findings, ...probeFindings(input)];
  }

  const installed = installedChildren(keep);
  if (installed.length === 0) {
    const states = keep.children.map((child) => `{${child.uniqueId}} ${child.state}`).join(', ');
    findings.push({
      conn,
      kind: 'child-sa-missing',
      evidence: `IKE_SA #${keep.uniqueId} ESTABLISHED without an INSTALLED CHILD_SA${states ? ` (${states})` : ''}`,
    });
  }

  // Several INSTALLED CHILD_SAs with the same selectors under the kept IKE_SA (those under
  // duplicate IKE_SAs go with them), none of them in a rekey handover.
  const bySelectors = new Map<string, ChildSa[]>();
  for (const child of keep.children) {
    if (child.state !== 'INSTALLED') continue;
    const key = `${selectorKey(child.localTs)} === ${selectorKey(child.remoteTs)}`;
    bySelectors.set(key, [...(bySelectors.get(key) ?? []), child]);
  }
  const rekeying = keep.children.some((child) => TRANSITIONAL_CHILD_STATES.has(child.state));
  for (const [selectors, children] of bySelectors) {
    if (children.length < 2 || rekeying) continue;
    const ordered = [...children].sort((a, b) => b.uniqueId - a.uniqueId);
    findings.push({
      conn,
      kind: 'duplicate-child-sa',
      evidence:
        `${children.length} INSTALLED CHILD_SAs for ${selectors} ` +
        `(${ordered.map((child) => `{${child.uniqueId}}`).join(', ')}); keeping {${ordered[0]!.uniqueId}}`,
      childSaIds: ordered.slice(1).map((child) => child.uniqueId),
    });
  }

  if (input.kernelIpsec) findings.push(...kernelFindings(conn, installed, input));
  findings.push(...counterFindings(conn, input, policy));
  return [...findings, ...probeFindings(input)];
}

function stuckFindings(conn: string, connecting: IkeSa[], input: ConnHealthInput, policy: HealthPolicy): HealthFinding[] {
  const ageMs = (sa: IkeSa) => input.connectingForMs?.get(sa.uniqueId) ?? 0;
  const stuck = connecting.filter((sa) => ageMs(sa) >= policy.stuckConnectingAfterMs);
  if (stuck.length === 0) return [];
  const listed = stuck.map((sa) => `#${sa.uniqueId} for ${Math.round(ageMs(sa) / 1000)} s`).join(', ');
  return [{ conn, kind: 'stuck-connecting', evidence: `IKE_SA ${listed} CONNECTING with none ESTABLISHED` }];
}

function kernelFindings(conn: string, installed: ChildSa[], input: ConnHealthInput): HealthFinding[] {
  const findings: HealthFinding[] = [];
  const spis = new Set((input.xfrmStates ?? []).map((state) => state.spi));
  for (const child of installed) {
    const missing = [child.spiIn, child.spiOut].filter((spi): spi is string => !!spi && !spis.has(spi));
    if (missing.length > 0) {
      findings.push({
        conn,
        kind: 'xfrm-state-missing',
        evidence: `CHILD_SA {${child.uniqueId}} INSTALLED but the kernel has no SA with SPI ${missing.join(', ')}`,
      });
    }
    const policies = input.xfrmPolicies ?? [];
    for (const local of child.localTs) {
      for (const remote of child.remoteTs) {
        const out = policies.some((policy) => policy.dir === 'out' && policy.src === local && policy.dst === remote);
        const inbound = policies.some((policy) => policy.dir === 'in' && policy.src === remote && policy.dst === local);
        if (!out || !inbound) {
          findings.push({
            conn,
            kind: 'xfrm-policy-missing',
            evidence: `no kernel ${!out ? 'out' : 'in'} policy for ${local} === ${remote}`,
          });
        }
      }
    }
  }
  return findings;
}

function counterFindings(conn: string, input: ConnHealthInput, policy: HealthPolicy): HealthFinding[] {
  const history = input.counterHistory ?? [];
  const latest = history.at(-1);
  if (!latest) return [];
  // Compare with the oldest sample of the same CHILD_SA that is at least a window old.
  const baseline = [...history]
    .reverse()
    .find((sample) => sample.spiIn === latest.spiIn && latest.atMs - sample.atMs >= policy.frozenInboundWindowMs);
  if (!baseline) return [];
  const sent = latest.bytesOut - baseline.bytesOut;
  const received = latest.bytesIn - baseline.bytesIn;
  if (sent <= 0 || received !== 0) return [];
  return [
    {
      conn,
      kind: 'inbound-frozen',
      evidence:
        `over ${Math.round((latest.atMs - baseline.atMs) / 1000)} s CHILD_SA with SPI ${latest.spiIn} ` +
        `sent ${sent} bytes and received none`,
    },
  ];
}

function probeFindings(input: ConnHealthInput): HealthFinding[] {
  const probe = input.connection.probe;
  const losses = input.probe?.consecutiveLosses ?? 0;
  if (!probe || losses < probe.lossThreshold) return [];
  return [
    {
      conn: input.connection.name,
      kind: 'probe-failing',
      evidence: `${losses} probes in a row to ${probe.target} went unanswered`,
    },
  ];
}
