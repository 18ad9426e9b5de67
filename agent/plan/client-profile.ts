/**
 * Client profiles for the road-warrior service: what one person needs to connect with an
 * operating system's built-in IKEv2 client. Pure: the CA certificate and (only when asked) the
 * password arrive already read; the output never holds the server's private key.
 *
 * Formats:
 * - `mobileconfig`: an Apple configuration profile (XML property list) with an IKEv2 VPN
 *   payload (server certificate authentication, EAP with the client's user name) and the CA as
 *   a trusted root payload.
 * - `strongswan`: files for a strongSwan client using ipsec.conf (the CA, a conn, the EAP
 *   secret line).
 * - `networkmanager`: a keyfile for NetworkManager's strongswan plugin, plus the CA file it
 *   points at.
 * The last two come as a bundle: each part is headed by `# ==> PATH (...)` saying where it goes.
 *
 * Every client proposes aes256-sha256-modp2048 for IKE and aes256-sha256 for ESP, which
 * strongSwan's default responder proposals accept and Apple's IKEv2 client supports.
 * Identifiers and UUIDs are derived from site, service and client, so a profile installed again
 * replaces the earlier one instead of adding a second.
 */
import { createHash } from 'node:crypto';
import { parseIp, formatIp } from '../model/net.js';
import type { RoadWarrior } from '../model/schema.js';

export type ClientProfileFormat = 'mobileconfig' | 'strongswan' | 'networkmanager';
export const CLIENT_PROFILE_FORMATS: readonly ClientProfileFormat[] = [
  'mobileconfig',
  'strongswan',
  'networkmanager',
];

export type RoadWarriorClient = RoadWarrior['clients'][number];

/** What a profile is made from. */
export interface ClientProfileInput {
  siteName: string;
  roadWarrior: RoadWarrior;
  client: RoadWarriorClient;
  /** The address or DNS name clients dial. */
  remoteAddress: string;
  /** The CA certificate (DER) that issued the server certificate, and its CN when it has one. */
  caCertificateDer: Uint8Array;
  caCommonName?: string;
  /** The client's password; only when the user asked for it explicitly. */
  password?: string;
}

/** One part of a bundle: a file to write, or text to append to an existing file. */
export interface ProfilePart {
  path: string;
  action: 'write' | 'append';
  mode: number;
  description: string;
  content: string;
}

/** The server id as clients must compare it: kind and value without strongSwan's `@` prefix. */
export interface ServerIdentity {
  kind: 'fqdn' | 'ip' | 'email';
  value: string;
}

/** IKE and ESP proposals every profile uses, in the spellings of each client. */
const IKE_PROPOSAL = 'aes256-sha256-modp2048';
const ESP_PROPOSAL = 'aes256-sha256';
const APPLE_SA_PARAMETERS = {
  EncryptionAlgorithm: 'AES-256',
  IntegrityAlgorithm: 'SHA2-256',
  DiffieHellmanGroup: 14,
};

/** Reads a serverId (`vpn.example.com`, `@vpn.example.com`, `172.16.0.18`, `vpn@example.com`). */
export function serverIdentity(serverId: string): ServerIdentity | undefined {
  if (serverId === '%any') return undefined;
  const ip = parseIp(serverId);
  if (ip) return { kind: 'ip', value: formatIp(ip) };
  if (serverId.startsWith('@')) return { kind: 'fqdn', value: serverId.slice(1) };
  return serverId.includes('@')
    ? { kind: 'email', value: serverId }
    : { kind: 'fqdn', value: serverId };
}

/** The address clients dial when none is given: the server id when it is a name or address. */
export function defaultRemoteAddress(serverId: string): string | undefined {
  const identity = serverIdentity(serverId);
  return identity && identity.kind !== 'email' ? identity.value : undefined;
}

/** Where the strongSwan and NetworkManager bundles put the CA certificate. */
export function caPath(roadWarrior: RoadWarrior): string {
  return `/etc/ipsec.d/cacerts/${roadWarrior.name}-ca.pem`;
}

/** The profile in `format` as the text to print. */
export function renderClientProfile(
  format: ClientProfileFormat,
  input: ClientProfileInput,
): string {
  if (format === 'mobileconfig') return renderMobileconfig(input);
  const parts = format === 'strongswan' ? strongswanParts(input) : networkManagerParts(input);
  const what =
    format === 'strongswan' ? 'strongSwan (ipsec.conf)' : 'NetworkManager strongswan plugin';
  return formatBundle(`${describeClient(input)}, for ${what}`, parts);
}

/** Prints parts under `# ==> PATH (action, mode): description` headers. */
export function formatBundle(title: string, parts: ProfilePart[]): string {
  const lines = [
    `# tunnelwarden client profile: ${title}`,
    '# Each part below goes where its "==>" header says.',
  ];
  for (const part of parts) {
    const how =
      part.action === 'append' ? 'append' : `write, mode ${part.mode.toString(8).padStart(4, '0')}`;
    lines.push(`# ==> ${part.path} (${how}): ${part.description}`, part.content.trimEnd());
  }
  return `${lines.join('\n')}\n`;
}

function describeClient(input: ClientProfileInput): string {
  return `${input.client.eapId} of ${input.roadWarrior.name} at ${input.siteName}`;
}

// ---------------------------------------------------------------------------------------------
// Apple configuration profile

type PlistValue =
  | string
  | number
  | boolean
  | Uint8Array
  | PlistValue[]
  | { [key: string]: PlistValue };

/** The .mobileconfig XML property list. */
export function renderMobileconfig(input: ClientProfileInput): string {
  const { roadWarrior, client } = input;
  const base = ['com', 'tunnelwarden', input.siteName, roadWarrior.name, client.eapId]
    .map(identifierPart)
    .join('.');
  const uuid = (purpose: string) => nameUuid(`${base}.${purpose}`);
  const remoteId = serverIdentity(roadWarrior.serverId)?.value ?? roadWarrior.serverId;
  const title = `${input.siteName} ${roadWarrior.name}`;

  const ikev2: Record<string, PlistValue> = {
    RemoteAddress: input.remoteAddress,
    RemoteIdentifier: remoteId,
    LocalIdentifier: client.eapId,
    AuthenticationMethod: 'None',
    ExtendedAuthEnabled: 1,
    AuthName: client.eapId,
    ...(input.password !== undefined ? { AuthPassword: input.password } : {}),
    ...(input.caCommonName !== undefined
      ? { ServerCertificateIssuerCommonName: input.caCommonName }
      : {}),
    IKESecurityAssociationParameters: { ...APPLE_SA_PARAMETERS },
    ChildSecurityAssociationParameters: { ...APPLE_SA_PARAMETERS },
    DeadPeerDetectionRate: 'Medium',
    DisableMOBIKE: 0,
    DisableRedirect: 0,
    EnablePFS: 0,
    EnableCertificateRevocationCheck: 0,
    UseConfigurationAttributeInternalIPSubnet: 0,
  };
  const vpnPayload: Record<string, PlistValue> = {
    IKEv2: ikev2,
    IPv4: { OverridePrimary: 0 },
    PayloadDescription: `IKEv2 VPN to ${title} as ${client.eapId}`,
    PayloadDisplayName: `VPN ${title}`,
    PayloadIdentifier: `${base}.vpn`,
    PayloadType: 'com.apple.vpn.managed',
    PayloadUUID: uuid('vpn'),
    PayloadVersion: 1,
    UserDefinedName: title,
    VPNType: 'IKEv2',
  };
  const caPayload: Record<string, PlistValue> = {
    PayloadCertificateFileName: `${roadWarrior.name}-ca.cer`,
    PayloadContent: input.caCertificateDer,
    PayloadDescription: 'The CA that issued the VPN server certificate',
    PayloadDisplayName: input.caCommonName ?? `${title} CA`,
    PayloadIdentifier: `${base}.ca`,
    PayloadType: 'com.apple.security.root',
    PayloadUUID: uuid('ca'),
    PayloadVersion: 1,
  };
  const profile: Record<string, PlistValue> = {
    PayloadContent: [vpnPayload, caPayload],
    PayloadDescription: `VPN access to ${title} for ${client.eapId}`,
    PayloadDisplayName: `${title} VPN (${client.eapId})`,
    PayloadIdentifier: base,
    PayloadRemovalDisallowed: false,
    PayloadType: 'Configuration',
    PayloadUUID: uuid('profile'),
    PayloadVersion: 1,
  };
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    ...plistLines(profile, ''),
    '</plist>',
    '',
  ].join('\n');
}

function plistLines(value: PlistValue, indent: string): string[] {
  if (typeof value === 'string') return [`${indent}<string>${escapeXml(value)}</string>`];
  if (typeof value === 'boolean') return [`${indent}<${value ? 'true' : 'false'}/>`];
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error(`plist integer expected, got ${value}`);
    return [`${indent}<integer>${value}</integer>`];
  }
  if (value instanceof Uint8Array) {
    const base64 = Buffer.from(value).toString('base64');
    return [
      `${indent}<data>`,
      ...chunks(base64, 64).map((line) => `${indent}${line}`),
      `${indent}</data>`,
    ];
  }
  const inner = `${indent}\t`;
  if (Array.isArray(value)) {
    return [
      `${indent}<array>`,
      ...value.flatMap((item) => plistLines(item, inner)),
      `${indent}</array>`,
    ];
  }
  const entries = Object.entries(value).flatMap(([key, item]) => [
    `${inner}<key>${escapeXml(key)}</key>`,
    ...plistLines(item, inner),
  ]);
  return [`${indent}<dict>`, ...entries, `${indent}</dict>`];
}

/** Characters XML 1.0 cannot carry at all, escaped or not. */
const XML_FORBIDDEN =
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Escapes text for XML character data; throws on characters XML cannot represent. */
export function escapeXml(text: string): string {
  if (XML_FORBIDDEN.test(text)) throw new Error('text holds a character XML 1.0 cannot represent');
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** A payload identifier part: letters, digits, "-" only. */
function identifierPart(text: string): string {
  return text.replace(/[^A-Za-z0-9-]/g, '-');
}

/** A name-based UUID (RFC 4122 version 5 layout over SHA-1), stable for the same name. */
function nameUuid(name: string): string {
  const bytes = createHash('sha1')
    .update(`tunnelwarden client profile\u0000${name}`)
    .digest()
    .subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x50;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex').toUpperCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// ---------------------------------------------------------------------------------------------
// strongSwan (ipsec.conf) and NetworkManager bundles

function caPart(input: ClientProfileInput): ProfilePart {
  const caName = input.caCommonName;
  const base64 = Buffer.from(input.caCertificateDer).toString('base64');
  const pem = [
    '-----BEGIN CERTIFICATE-----',
    ...chunks(base64, 64),
    '-----END CERTIFICATE-----',
    '',
  ].join('\n');
  return {
    path: caPath(input.roadWarrior),
    action: 'write',
    mode: 0o644,
    description: `the CA that issued the server certificate${caName ? ` (${caName})` : ''}`,
    content: pem,
  };
}

/** The strongSwan client parts: CA file, conn for ipsec.conf, secret line for ipsec.secrets. */
export function strongswanParts(input: ClientProfileInput): ProfilePart[] {
  const { roadWarrior, client } = input;
  const options: [string, string][] = [
    ['keyexchange', 'ikev2'],
    ['left', '%any'],
    ['leftid', client.eapId],
    ['leftauth', 'eap-mschapv2'],
    ['eap_identity', client.eapId],
    ['leftsourceip', '%config'],
    ...(roadWarrior.dns.length > 0 ? [['leftdns', '%config4'] as [string, string]] : []),
    ['right', input.remoteAddress],
    ['rightid', roadWarrior.serverId],
    ['rightauth', 'pubkey'],
    ['rightsubnet', roadWarrior.offeredSubnets.join(',')],
    ['ike', `${IKE_PROPOSAL}!`],
    ['esp', `${ESP_PROPOSAL}!`],
    ['auto', 'add'],
  ];
  const conn = [
    `conn ${roadWarrior.name}`,
    ...options.map(([key, value]) => `\t${key}=${value}`),
    '',
  ].join('\n');
  const secret =
    input.password !== undefined
      ? `${client.eapId} : EAP "${input.password}"\n`
      : `# ${client.eapId} : EAP "<password>"   (put the password between the quotes, drop "# ")\n`;
  return [
    caPart(input),
    {
      path: '/etc/ipsec.conf',
      action: 'append',
      mode: 0o644,
      description: `the conn; then: ipsec reload && ipsec up ${roadWarrior.name}`,
      content: conn,
    },
    {
      path: '/etc/ipsec.secrets',
      action: 'append',
      mode: 0o600,
      description: 'the EAP password (keep the file root-only)',
      content: secret,
    },
  ];
}

/** The NetworkManager parts: CA file and the connection keyfile (root-only, as NM requires). */
export function networkManagerParts(input: ClientProfileInput): ProfilePart[] {
  const { roadWarrior, client } = input;
  const title = `${input.siteName} ${roadWarrior.name}`;
  const section = (name: string, entries: [string, string][]) =>
    [`[${name}]`, ...entries.map(([key, value]) => `${key}=${escapeKeyfileValue(value)}`), ''].join(
      '\n',
    );
  const keyfile = [
    section('connection', [
      ['id', title],
      [
        'uuid',
        nameUuid(
          `${input.siteName}.${roadWarrior.name}.${client.eapId}.networkmanager`,
        ).toLowerCase(),
      ],
      ['type', 'vpn'],
      ['autoconnect', 'false'],
    ]),
    section('vpn', [
      ['service-type', 'org.freedesktop.NetworkManager.strongswan'],
      ['address', input.remoteAddress],
      ['certificate', caPath(roadWarrior)],
      ['remote-identity', roadWarrior.serverId],
      ['local-identity', client.eapId],
      ['method', 'eap'],
      ['user', client.eapId],
      // 0: stored in this file; 2: not stored, asked for on each connect.
      ['password-flags', input.password !== undefined ? '0' : '2'],
      ['virtual', 'yes'],
      ['encap', 'no'],
      ['ipcomp', 'no'],
      ['proposal', 'yes'],
      ['ike', IKE_PROPOSAL],
      ['esp', ESP_PROPOSAL],
    ]),
    ...(input.password !== undefined
      ? [section('vpn-secrets', [['password', input.password]])]
      : []),
    section('ipv4', [['method', 'auto']]),
    section('ipv6', [['method', 'ignore']]),
  ].join('\n');
  return [
    caPart(input),
    {
      path: `/etc/NetworkManager/system-connections/${roadWarrior.name}.nmconnection`,
      action: 'write',
      mode: 0o600,
      description: 'the connection; then: nmcli connection reload',
      content: keyfile,
    },
  ];
}

/** GKeyFile escaping: backslashes doubled, leading and trailing spaces as \s. */
function escapeKeyfileValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/^ /, '\\s').replace(/ $/, '\\s');
}

function chunks(text: string, size: number): string[] {
  const lines: string[] = [];
  for (let index = 0; index < text.length; index += size)
    lines.push(text.slice(index, index + size));
  return lines;
}
