/**
 * Renders the desired strongSwan connections and secrets into the text of our own
 * ipsec.conf-format file and ipsec.secrets-format file. Pure: secrets arrive already resolved.
 * Output is deterministic (same state, same bytes), so comparing texts decides whether a
 * write is needed.
 */
import { roadWarriorConnName } from '../model/checks.js';
import { formatCidrNetwork, parseCidr } from '../model/net.js';
import type { DesiredState, RoadWarrior, SiteToSiteConnection } from '../model/schema.js';

/** First line of both files; also how a reader of /etc/ipsec.d knows not to edit them. */
export const MANAGED_HEADER =
  '# Managed by tunnelwarden. Every change here is undone on the next pass: edit the desired ' +
  'state instead.';

/** Secret values keyed by the JSON path of their field ("ipsec.connections[0].psk"). */
export type ResolvedSecrets = ReadonlyMap<string, string>;

/** The JSON path under which a connection's PSK is found in ResolvedSecrets. */
export function pskPath(index: number): string {
  return `ipsec.connections[${index}].psk`;
}

/** The JSON path under which a road-warrior client's password is found. */
export function eapPasswordPath(index: number): string {
  return `ipsec.roadWarrior.clients[${index}].password`;
}

function subnetList(subnets: readonly string[]): string {
  return subnets.map((subnet) => formatCidrNetwork(parseCidr(subnet)!)).join(',');
}

function yesNo(value: boolean): string {
  return value ? 'yes' : 'no';
}

function section(header: string, options: [string, string | undefined][]): string {
  const lines = options
    .filter((option): option is [string, string] => option[1] !== undefined)
    .map(([key, value]) => `\t${key}=${value}`);
  return [header, ...lines].join('\n');
}

function renderSiteToSite(connection: SiteToSiteConnection): string {
  return section(`conn ${connection.name}`, [
    ['keyexchange', connection.keyexchange],
    ['left', connection.local.address],
    ['leftid', connection.local.id ?? connection.local.address],
    ['leftsubnet', subnetList(connection.local.subnets)],
    ['leftauth', 'psk'],
    ['right', connection.remote.address],
    ['rightid', connection.remote.id ?? connection.remote.address],
    ['rightsubnet', subnetList(connection.remote.subnets)],
    ['rightauth', 'psk'],
    ['ike', connection.ike.join(',')],
    ['esp', connection.esp.join(',')],
    ['forceencaps', yesNo(connection.forceEncaps)],
    ['reauth', yesNo(connection.reauth)],
    ['rekey', yesNo(connection.rekey)],
    ['ikelifetime', `${connection.ikeLifetimeSeconds}s`],
    ['lifetime', `${connection.lifetimeSeconds}s`],
    ['dpddelay', `${connection.dpd.delaySeconds}s`],
    ['dpdtimeout', `${connection.dpd.timeoutSeconds}s`],
    ['dpdaction', connection.dpd.action],
    ['auto', connection.auto],
  ]);
}

function renderRoadWarrior(roadWarrior: RoadWarrior): string[] {
  const template = section(`conn ${roadWarrior.name}`, [
    ['keyexchange', 'ikev2'],
    ['left', '%any'],
    ['leftid', roadWarrior.serverId],
    ['leftcert', roadWarrior.certificate],
    ['leftsendcert', 'always'],
    ['leftsubnet', subnetList(roadWarrior.offeredSubnets)],
    ['right', '%any'],
    ['rightid', '%any'],
    ['rightauth', 'eap-mschapv2'],
    ['rightsendcert', 'never'],
    ['rightsourceip', formatCidrNetwork(parseCidr(roadWarrior.virtualIpPool)!)],
    ['rightdns', roadWarrior.dns.length > 0 ? roadWarrior.dns.join(',') : undefined],
    ['eap_identity', '%identity'],
    ['fragmentation', 'yes'],
    ['rekey', 'no'],
    ['dpdaction', 'clear'],
    ['dpddelay', '300s'],
    ['auto', 'ignore'],
  ]);
  const clients = roadWarrior.clients.map((client) =>
    section(`conn ${roadWarriorConnName(roadWarrior.name, client.eapId)}`, [
      ['also', roadWarrior.name],
      ['rightid', client.eapId],
      ['eap_identity', client.eapId],
      ['rightsourceip', client.virtualIp],
      ['auto', 'add'],
    ]),
  );
  return [template, ...clients];
}

/** Names of every conn section our file defines for this state, in file order. */
export function renderedConnNames(state: DesiredState): string[] {
  const connections = state.ipsec?.connections ?? [];
  const roadWarrior = state.ipsec?.roadWarrior;
  return [
    ...connections.map((connection) => connection.name),
    ...(roadWarrior
      ? [
          roadWarrior.name,
          ...roadWarrior.clients.map((client) => roadWarriorConnName(roadWarrior.name, client.eapId)),
        ]
      : []),
  ];
}

/** The full text of our ipsec.conf-format file. */
export function renderIpsecConf(state: DesiredState): string {
  const ipsec = state.ipsec;
  const sections: string[] = [];
  if (ipsec) {
    sections.push(
      section('config setup', [
        ['uniqueids', ipsec.setup.uniqueids],
        ['charondebug', ipsec.setup.charondebug ? `"${ipsec.setup.charondebug}"` : undefined],
      ]),
    );
    sections.push(...ipsec.connections.map(renderSiteToSite));
    if (ipsec.roadWarrior) sections.push(...renderRoadWarrior(ipsec.roadWarrior));
  }
  return `${[MANAGED_HEADER, ...sections].join('\n\n')}\n`;
}

/**
 * The full text of our ipsec.secrets-format file. Throws when a secret is missing from
 * `secrets`, which would be a bug in the caller (every path is resolved before rendering).
 */
export function renderIpsecSecrets(state: DesiredState, secrets: ResolvedSecrets): string {
  const lookup = (path: string): string => {
    const value = secrets.get(path);
    if (value === undefined) throw new Error(`secret at ${path} was not resolved`);
    return value;
  };
  const lines = [MANAGED_HEADER];
  (state.ipsec?.connections ?? []).forEach((connection, index) => {
    const localId = connection.local.id ?? connection.local.address;
    const remoteId = connection.remote.id ?? connection.remote.address;
    lines.push(`${localId} ${remoteId} : PSK "${lookup(pskPath(index))}"`);
  });
  const roadWarrior = state.ipsec?.roadWarrior;
  if (roadWarrior) {
    lines.push(`: RSA ${roadWarrior.privateKey}`);
    roadWarrior.clients.forEach((client, index) => {
      lines.push(`${client.eapId} : EAP "${lookup(eapPasswordPath(index))}"`);
    });
  }
  return `${lines.join('\n')}\n`;
}

/** Every secret field of the state with its JSON path, for resolving before rendering. */
export function secretFields(state: DesiredState): { path: string; secret: SiteToSiteConnection['psk'] }[] {
  return [
    ...(state.ipsec?.connections ?? []).map((connection, index) => ({
      path: pskPath(index),
      secret: connection.psk,
    })),
    ...(state.ipsec?.roadWarrior?.clients ?? []).map((client, index) => ({
      path: eapPasswordPath(index),
      secret: client.password,
    })),
  ];
}
