/**
 * The lxd planner: for each network the desired state names, compare LXD's `ipv4.nat` with
 * the desired `ipv4Nat` and plan one `set-network-nat` action where they differ. Nothing
 * else is touched: no other key, no network the desired state does not name. Pure.
 *
 * What an unset key means: LXD documents `ipv4.nat` as "`false` (initial value on creation if
 * `ipv4.address` is set to `auto`: `true`)". So `true` is written into the config when the
 * network is created with an automatic address; once created, a network without the key
 * does not NAT (seen in the lab: `lxc network unset NET ipv4.nat` removes LXD's masquerade
 * rule). LXD reads the value as true only for "true", "1", "yes" or "on" (any case).
 */
import { ErrorCode, TunnelwardenError } from '../errors.js';
import type { DesiredState } from '../model/schema.js';
import type { LxdNetwork, LxdObservation } from '../observe/lxd.js';
import type { ActionBase } from './actions.js';

/** The one config key this resource manages. */
export const IPV4_NAT_KEY = 'ipv4.nat';

/** What LXD does when the key is absent from a network that exists. */
export const IPV4_NAT_DEFAULT = false;

/** Network types that have an `ipv4.nat` key. */
const TYPES_WITH_IPV4_NAT: ReadonlySet<string> = new Set(['bridge', 'ovn']);

const TRUE_WORDS: ReadonlySet<string> = new Set(['true', '1', 'yes', 'on']);

/** Sets `ipv4.nat` of one network, by a PATCH that changes that key only. */
export interface SetNetworkNatAction extends ActionBase {
  resource: 'lxd';
  type: 'set-network-nat';
  /** The network name. */
  target: string;
  /** The value to write: "true" or "false". */
  ipv4Nat: boolean;
}

export type LxdAction = SetNetworkNatAction;

type ProblemCode = typeof ErrorCode.lxdNetworkNotFound | typeof ErrorCode.lxdNetworkUnsupported;

export interface LxdPlan {
  actions: LxdAction[];
  /** Things that are allowed but probably not meant, e.g. NAT wanted on a bridge without IPv4. */
  warnings: string[];
}

/** The NAT a network's config gives, and whether that came from the key or LXD's default. */
export function effectiveIpv4Nat(config: Readonly<Record<string, string>>): {
  value: boolean;
  raw: string | undefined;
} {
  const raw = config[IPV4_NAT_KEY];
  if (raw === undefined) return { value: IPV4_NAT_DEFAULT, raw };
  return { value: TRUE_WORDS.has(raw.trim().toLowerCase()), raw };
}

function describeCurrent(current: { value: boolean; raw: string | undefined }): string {
  if (current.raw === undefined) return `unset (LXD's default: ${String(IPV4_NAT_DEFAULT)})`;
  if (current.raw === String(current.value)) return current.raw;
  return `"${current.raw}" (${String(current.value)})`;
}

/** Why the network cannot be managed, or undefined when it can. */
function unsupportedReason(network: LxdNetwork): string | undefined {
  if (!network.managed) {
    const name = `"${network.name}"`;
    return `${name} is an interface LXD does not manage, so it has no ${IPV4_NAT_KEY} key`;
  }
  if (!TYPES_WITH_IPV4_NAT.has(network.type)) {
    const kind = `an LXD network of type ${network.type}`;
    return `"${network.name}" is ${kind}, which has no ${IPV4_NAT_KEY} key`;
  }
  return undefined;
}

function hasIpv4Address(network: LxdNetwork): boolean {
  const address = network.config['ipv4.address'];
  return address !== undefined && address !== '' && address !== 'none';
}

/**
 * Plans the lxd resource. Returns no action when the desired state has no lxd networks.
 * Throws TunnelwardenError (lxdNetworkNotFound, lxdNetworkUnsupported) naming every network
 * that cannot be managed, so that nothing is changed on this resource when one is wrong.
 */
export function planLxd(desired: DesiredState, observed: LxdObservation): LxdPlan {
  const wanted = desired.lxd?.networks ?? [];
  const actions: LxdAction[] = [];
  const warnings: string[] = [];
  const problems: { code: ProblemCode; message: string }[] = [];
  const daemon = observed.server.server === 'incus' ? 'Incus' : 'LXD';

  wanted.forEach((desiredNetwork, index) => {
    const where = `lxd.networks[${index}]`;
    const seen = observed.networks.find((candidate) => candidate.name === desiredNetwork.name);
    if (seen === undefined || !seen.found) {
      problems.push({
        code: ErrorCode.lxdNetworkNotFound,
        message: `${where}: ${daemon} has no network "${desiredNetwork.name}"`,
      });
      return;
    }
    const unsupported = unsupportedReason(seen.network);
    if (unsupported !== undefined) {
      problems.push({ code: ErrorCode.lxdNetworkUnsupported, message: `${where}: ${unsupported}` });
      return;
    }

    if (desiredNetwork.ipv4Nat && seen.network.type === 'bridge' && !hasIpv4Address(seen.network)) {
      warnings.push(
        `${where}: ipv4Nat true has no effect on "${desiredNetwork.name}", ` +
          'which has no ipv4.address',
      );
    }
    const current = effectiveIpv4Nat(seen.network.config);
    const want = String(desiredNetwork.ipv4Nat);
    if (current.value === desiredNetwork.ipv4Nat) return; // an unset key counts as LXD's default
    actions.push({
      resource: 'lxd',
      type: 'set-network-nat',
      target: desiredNetwork.name,
      ipv4Nat: desiredNetwork.ipv4Nat,
      reason: `${IPV4_NAT_KEY} is ${describeCurrent(current)}, want ${want}`,
    });
  });

  const first = problems[0];
  if (first !== undefined) {
    throw new TunnelwardenError(
      'invalid-config',
      first.code,
      problems.map((problem) => problem.message).join('; '),
      { details: { socketPath: observed.socketPath } },
    );
  }
  return { actions, warnings };
}
