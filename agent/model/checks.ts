/**
 * Semantic checks of a desired state that already has the right shape: relations between
 * fields (overlaps, duplicates, coverage) and the field pitfalls that break real deployments.
 * Errors make the document invalid; warnings are said but the document stays usable.
 * Pure: no I/O. Checks that need the host (parent MTU, certificate files) live elsewhere.
 */
import { WEAK_KEYWORDS } from './algorithms.js';
import {
  cidrContains,
  cidrContainsIp,
  cidrsOverlap,
  formatIp,
  parseCidr,
  parseIp,
  type Cidr,
} from './net.js';
import type { DesiredState, SiteToSiteConnection } from './schema.js';

export type Severity = 'error' | 'warning';
export type JsonPath = (string | number)[];

/** One thing wrong or worth saying about the document, with where it is. */
export interface Finding {
  severity: Severity;
  path: JsonPath;
  message: string;
}

/** A VLAN on a provider vSwitch commonly carries at most this many bytes per frame. */
export const VSWITCH_MTU_LIMIT_BYTES = 1400;
/** An IKE_SA lifetime below this means rekeying (or reauthenticating) often. */
export const SHORT_IKE_LIFETIME_SECONDS = 3600;

/** Renders a path the way a reader finds it in the JSON: `ipsec.connections[0].psk`. */
export function formatPath(path: JsonPath): string {
  let text = '';
  for (const part of path) {
    if (typeof part === 'number') text += `[${part}]`;
    else text += text === '' ? part : `.${part}`;
  }
  return text === '' ? '(document)' : text;
}

/** All semantic findings for a schema-valid desired state, in document order. */
export function checkDesiredState(state: DesiredState): Finding[] {
  const findings: Finding[] = [];
  const error = (path: JsonPath, message: string) =>
    findings.push({ severity: 'error', path, message });
  const warning = (path: JsonPath, message: string) =>
    findings.push({ severity: 'warning', path, message });

  checkSubnetList(state.site.subnets, ['site', 'subnets'], error);
  checkTransit(state, error, warning);
  checkConnections(state, error, warning);
  checkRoadWarrior(state, error);
  checkMasquerade(state, error, warning);
  checkDuplicates(
    (state.lxd?.networks ?? []).map((network) => network.name),
    ['lxd', 'networks'],
    'name',
    'LXD network',
    error,
  );
  return findings;
}

type Report = (path: JsonPath, message: string) => void;

function cidr(text: string): Cidr {
  // The schema has already proved every prefix parses.
  return parseCidr(text)!;
}

function checkSubnetList(subnets: string[], path: JsonPath, error: Report): void {
  for (let i = 0; i < subnets.length; i += 1) {
    for (let j = 0; j < i; j += 1) {
      if (cidrsOverlap(cidr(subnets[i]!), cidr(subnets[j]!))) {
        error([...path, i], `overlaps ${subnets[j]} at ${formatPath([...path, j])}`);
      }
    }
  }
}

function checkDuplicates(
  values: string[],
  path: JsonPath,
  field: string,
  what: string,
  error: Report,
): void {
  const firstIndex = new Map<string, number>();
  values.forEach((value, index) => {
    const first = firstIndex.get(value);
    if (first === undefined) firstIndex.set(value, index);
    else error([...path, index, field], `${what} "${value}" is already defined at index ${first}`);
  });
}

function checkTransit(state: DesiredState, error: Report, warning: Report): void {
  const transit = state.transit;
  if (!transit) return;
  if (transit.vlanId !== undefined && transit.parent === undefined) {
    error(['transit', 'parent'], 'a VLAN id needs the parent interface it is tagged on');
  }
  if (transit.parent !== undefined && transit.vlanId === undefined) {
    error(['transit', 'vlanId'], 'a parent interface is given but no VLAN id');
  }
  if (transit.parent !== undefined && transit.parent === transit.interface) {
    error(['transit', 'parent'], 'the VLAN interface cannot be its own parent');
  }
  if (
    transit.vlanId !== undefined &&
    transit.mtuBytes !== undefined &&
    transit.mtuBytes > VSWITCH_MTU_LIMIT_BYTES
  ) {
    warning(
      ['transit', 'mtuBytes'],
      `${transit.mtuBytes} bytes on a VLAN: provider vSwitches often carry at most ` +
        `${VSWITCH_MTU_LIMIT_BYTES}, and a larger MTU makes SSH hang at key exchange`,
    );
  }
  const address = cidr(transit.address);
  checkDuplicates(
    transit.routes.map((route) => route.destination),
    ['transit', 'routes'],
    'destination',
    'route destination',
    error,
  );
  transit.routes.forEach((route, index) => {
    if (route.gateway === undefined) {
      if (route.onLink) error(['transit', 'routes', index, 'onLink'], 'onLink needs a gateway');
      return;
    }
    const gateway = parseIp(route.gateway)!;
    if (gateway.family !== cidr(route.destination).family) {
      error(['transit', 'routes', index, 'gateway'], 'gateway and destination differ in family');
    } else if (!route.onLink && !cidrContainsIp(address, gateway)) {
      error(
        ['transit', 'routes', index, 'gateway'],
        `gateway ${route.gateway} is outside ${transit.address}; set "onLink": true if the ` +
          'provider routes it on the link anyway',
      );
    }
  });
}

function checkConnections(state: DesiredState, error: Report, warning: Report): void {
  const connections = state.ipsec?.connections ?? [];
  const names = connections.map((connection) => connection.name);
  const roadWarrior = state.ipsec?.roadWarrior;
  if (roadWarrior) {
    names.forEach((name, index) => {
      const clash =
        name === roadWarrior.name ||
        roadWarrior.clients.some((client) => roadWarriorConnName(roadWarrior.name, client.eapId) === name);
      if (clash) {
        error(
          ['ipsec', 'connections', index, 'name'],
          `"${name}" clashes with a road-warrior connection name`,
        );
      }
    });
  }
  checkDuplicates(names, ['ipsec', 'connections'], 'name', 'connection', error);
  connections.forEach((connection, index) =>
    checkConnection(connection, ['ipsec', 'connections', index], error, warning),
  );
}

/** The conn name of one road-warrior client, derived from the service name and EAP id. */
export function roadWarriorConnName(serviceName: string, eapId: string): string {
  return `${serviceName}-${eapId.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

function checkConnection(
  connection: SiteToSiteConnection,
  path: JsonPath,
  error: Report,
  warning: Report,
): void {
  checkSubnetList(connection.local.subnets, [...path, 'local', 'subnets'], error);
  checkSubnetList(connection.remote.subnets, [...path, 'remote', 'subnets'], error);
  connection.remote.subnets.forEach((remoteText, remoteIndex) => {
    connection.local.subnets.forEach((localText, localIndex) => {
      if (cidrsOverlap(cidr(remoteText), cidr(localText))) {
        error(
          [...path, 'remote', 'subnets', remoteIndex],
          `overlaps local subnet ${localText} (local.subnets[${localIndex}]); traffic between ` +
            'them could not be routed through the tunnel',
        );
      }
    });
  });
  if (connection.keyexchange === 'ikev1') {
    for (const side of ['local', 'remote'] as const) {
      if (connection[side].subnets.length > 1) {
        error(
          [...path, side, 'subnets'],
          'IKEv1 negotiates one subnet pair per conn; with several, strongSwan silently uses ' +
            'only the first (use IKEv2, or one connection per subnet)',
        );
      }
    }
  }
  if (connection.local.address === connection.remote.address) {
    error([...path, 'remote', 'address'], 'is the same as the local address');
  }

  for (const kind of ['ike', 'esp'] as const) {
    connection[kind].forEach((proposal, index) => {
      if (proposal.endsWith('!') && index !== connection[kind].length - 1) {
        // ipsec.conf reads "!" only at the end of the whole comma-separated list.
        error(
          [...path, kind, index],
          '"!" (strict) applies to the whole list and is only understood on the last proposal; ' +
            'charon would drop this proposal as invalid',
        );
      }
      const weak = proposal
        .replace(/!$/, '')
        .split('-')
        .filter((keyword) => WEAK_KEYWORDS.has(keyword));
      if (weak.length > 0) {
        warning([...path, kind, index], `"${proposal}" uses weak ${weak.join(', ')}`);
      }
    });
  }

  if (connection.reauth) {
    warning(
      [...path, 'reauth'],
      'reauthentication tears the IKE_SA down and builds it again, dropping packets meanwhile; ' +
        'rekeying without reauth keeps traffic flowing',
    );
  }
  if (connection.ikeLifetimeSeconds < SHORT_IKE_LIFETIME_SECONDS) {
    warning(
      [...path, 'ikeLifetimeSeconds'],
      `${connection.ikeLifetimeSeconds} s is short: frequent IKE rekeys (or reauths) ` +
        'cost packets; 3 hours or more is usual',
    );
  }
  if (connection.lifetimeSeconds >= connection.ikeLifetimeSeconds && connection.reauth) {
    warning([...path, 'lifetimeSeconds'], 'CHILD_SA lifetime is not below the IKE_SA lifetime');
  }
  if (connection.dpd.action !== 'none' && connection.dpd.timeoutSeconds < connection.dpd.delaySeconds) {
    warning([...path, 'dpd', 'timeoutSeconds'], 'is shorter than dpd.delaySeconds');
  }
  if (connection.auto === 'start' && !connection.initiate) {
    warning(
      [...path, 'auto'],
      '"start" makes charon initiate although "initiate" is false; both sides may then ' +
        'initiate and create duplicate SAs',
    );
  }

  const probe = connection.probe;
  if (probe) {
    const target = parseIp(probe.target)!;
    if (!connection.remote.subnets.some((subnet) => cidrContainsIp(cidr(subnet), target))) {
      error([...path, 'probe', 'target'], 'is not inside any remote subnet of this connection');
    }
    const source = parseIp(probe.source)!;
    if (!connection.local.subnets.some((subnet) => cidrContainsIp(cidr(subnet), source))) {
      error([...path, 'probe', 'source'], 'is not inside any local subnet of this connection');
    }
    if (probe.timeoutMs > probe.intervalMs) {
      error([...path, 'probe', 'timeoutMs'], 'is longer than probe.intervalMs');
    }
  }
}

function checkRoadWarrior(state: DesiredState, error: Report): void {
  const roadWarrior = state.ipsec?.roadWarrior;
  if (!roadWarrior) return;
  const path: JsonPath = ['ipsec', 'roadWarrior'];
  checkSubnetList(roadWarrior.offeredSubnets, [...path, 'offeredSubnets'], error);
  checkDuplicates(
    roadWarrior.clients.map((client) => client.eapId),
    [...path, 'clients'],
    'eapId',
    'EAP identity',
    error,
  );
  checkDuplicates(
    roadWarrior.clients.map((client) => roadWarriorConnName(roadWarrior.name, client.eapId)),
    [...path, 'clients'],
    'eapId',
    'connection name derived from EAP identity',
    error,
  );
  checkDuplicates(
    roadWarrior.clients.map((client) => formatIp(parseIp(client.virtualIp)!)),
    [...path, 'clients'],
    'virtualIp',
    'virtual IP',
    error,
  );
  const pool = cidr(roadWarrior.virtualIpPool);
  roadWarrior.clients.forEach((client, index) => {
    const ip = parseIp(client.virtualIp)!;
    if (!cidrContainsIp(pool, ip)) {
      error(
        [...path, 'clients', index, 'virtualIp'],
        `is outside the virtual IP pool ${roadWarrior.virtualIpPool}`,
      );
    } else if (ip.value === pool.network || (pool.family === 4 && ip.value === pool.broadcast)) {
      error([...path, 'clients', index, 'virtualIp'], 'is the network or broadcast address');
    }
  });
}

function checkMasquerade(state: DesiredState, error: Report, warning: Report): void {
  const rules = state.masquerade?.rules ?? [];
  const remoteSubnets = (state.ipsec?.connections ?? []).flatMap((connection) =>
    connection.remote.subnets.map((subnet) => ({ subnet, connection: connection.name })),
  );
  rules.forEach((rule, index) => {
    const path: JsonPath = ['masquerade', 'rules', index];
    const source = cidr(rule.source);
    rule.excludeDestinations.forEach((destination, destinationIndex) => {
      if (cidr(destination).family !== source.family) {
        error([...path, 'excludeDestinations', destinationIndex], 'differs in family from source');
      }
    });
    for (const remote of remoteSubnets) {
      const remoteCidr = cidr(remote.subnet);
      if (remoteCidr.family !== source.family) continue;
      const covered = rule.excludeDestinations.some((destination) =>
        cidrContains(cidr(destination), remoteCidr),
      );
      if (!covered) {
        warning(
          [...path, 'excludeDestinations'],
          `does not cover remote subnet ${remote.subnet} of connection "${remote.connection}": ` +
            'traffic to the other site would leave masqueraded and miss the tunnel policy',
        );
      }
    }
  });
}
