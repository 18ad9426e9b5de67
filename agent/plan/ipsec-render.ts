/**
 * Renders the desired strongSwan connections and secrets into the text of our own
 * ipsec.conf-format file and ipsec.secrets-format file. Pure: secrets arrive already resolved.
 * Output is deterministic (same state, same bytes), so comparing texts decides whether a
 * write is needed.
 *
 * The road-warrior service (IKEv2, server certificate, EAP-MSCHAPv2 clients) becomes a template
 * conn that is never loaded (auto=ignore) and one conn per client that inherits it (also=).
 * charon picks a client's conn by the IKE identity the client sends (rightid = its EAP id; Apple
 * LocalIdentifier, strongSwan leftid, NetworkManager local identity), and that conn hands out
 * the client's fixed virtual IP (rightsourceip = one address, a pool of one). The EAP identity
 * is set on the server (eap_identity = the EAP id), so charon starts EAP-MSCHAPv2 at once.
 * The CA is not given to charon: clients authenticate by password, so charon only needs its
 * own certificate (sent always: clients send no certificate request for a private CA); the
 * CA file is checked (host/certificates.ts) and embedded in client profiles.
 *
 * Certificate renewal: charon reads `leftcert` when a conn is added, and `ipsec update` re-adds
 * only conns whose options changed. A certificate and key renewed under new file names (and
 * the desired state pointed at them) change the template, so every client conn is re-added
 * with the new certificate and their SAs stay up; files replaced in place are not reloaded.
 *
 * Limitations:
 * - A certificate or key replaced in place (same path) is not loaded until `ipsec reload` or a
 *   restart of charon; the checks see the new file, charon keeps serving the old one.
 * - A client that sends an IP address as its IKE identity (Windows' built-in client) matches
 *   no client conn and is rejected.
 * - strongSwan's MSCHAPv2 server looks the password up by the user name inside the client's
 *   response. Pinning eap_identity stops stock clients from claiming another client's conn
 *   (with `%identity` a strongSwan 5.9.8 client did, with its own password; the lab test checks
 *   the pinned form rejects it), but a crafted client might still; that was not tested. Treat
 *   fixed virtual IPs as addressing, not as proof of who is behind them.
 */
import { roadWarriorConnName } from '../model/checks.js';
import { formatCidrNetwork, formatIp, parseCidr, parseIp } from '../model/net.js';
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

/** How ipsec.secrets names the type of the server's private key (`: RSA file`, `: ECDSA file`). */
export type ServerKeyType = 'RSA' | 'ECDSA';

/** What rendering needs to know of the road-warrior server's files, as read on the host. */
export interface ServerCredentials {
  keyType: ServerKeyType;
}

function renderRoadWarrior(roadWarrior: RoadWarrior): string[] {
  // What every client conn shares. Identities and addresses are per client, so none here.
  const template = section(`conn ${roadWarrior.name}`, [
    ['keyexchange', 'ikev2'],
    ['left', '%any'],
    ['leftid', roadWarrior.serverId],
    ['leftauth', 'pubkey'],
    ['leftcert', roadWarrior.certificate],
    ['leftsendcert', 'always'],
    ['leftsubnet', subnetList(roadWarrior.offeredSubnets)],
    ['right', '%any'],
    ['rightauth', 'eap-mschapv2'],
    ['rightsendcert', 'never'],
    ['rightdns', roadWarrior.dns.length > 0 ? roadWarrior.dns.join(',') : undefined],
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
      ['rightsourceip', formatIp(parseIp(client.virtualIp)!)],
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
 * The full text of our ipsec.secrets-format file. `serverCredentials` says the type of the
 * road-warrior server key as read from its file (charon cannot load an ECDSA key announced as
 * RSA; RSA when not given). Throws when a secret is missing from `secrets`, which would be a
 * bug in the caller (every path is resolved before rendering).
 */
export function renderIpsecSecrets(
  state: DesiredState,
  secrets: ResolvedSecrets,
  serverCredentials?: ServerCredentials,
): string {
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
    lines.push(`: ${serverCredentials?.keyType ?? 'RSA'} ${roadWarrior.privateKey}`);
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
