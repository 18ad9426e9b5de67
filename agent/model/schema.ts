/**
 * The desired-state document (`"version": 1`) as a zod schema. Shape only, plus the syntax of
 * each field (addresses, prefixes, names safe for ipsec.conf, secrets safe for ipsec.secrets);
 * relations between fields (overlaps, duplicates, pitfalls) are checked in checks.ts.
 * Pure: no I/O. The JSON Schema committed in config/ is generated from this file.
 */
import { z } from 'zod';
import { proposalProblems } from './algorithms.js';
import { hasHostBits, parseCidr, parseIp } from './net.js';

/** Longest secret accepted; strongSwan itself has no short limit, but longer is a paste error. */
export const SECRET_MAX_CHARS = 1024;

/** An IPv4 octet written with a leading zero, which some tools (inet_aton) read as octal. */
const LEADING_ZERO_OCTET = /(^|\.)0\d/;
const LEADING_ZERO_MESSAGE = 'an IPv4 octet has a leading zero, which some tools read as octal; write it without';

/** The message for an address or prefix that does not parse, naming a leading zero if that is why. */
function unparsedMessage(text: string, otherwise: string): string {
  const address = text.split('/')[0] ?? '';
  return /^[0-9.]+$/.test(address) && LEADING_ZERO_OCTET.test(address) ? LEADING_ZERO_MESSAGE : otherwise;
}

const ipAddress = z
  .string()
  .refine((text) => parseIp(text) !== undefined, {
    error: (issue) =>
      unparsedMessage(String(issue.input), 'not an IP address (IPv4 as four decimal octets without leading zeros, or IPv6)'),
  })
  .meta({ description: 'An IPv4 or IPv6 address, e.g. "172.16.0.18".' });

const subnet = z
  .string()
  .superRefine((text, ctx) => {
    const cidr = parseCidr(text);
    if (!cidr) {
      ctx.addIssue({ code: 'custom', message: unparsedMessage(text, 'not a CIDR prefix such as "10.1.0.0/16"') });
    } else if (hasHostBits(cidr)) {
      ctx.addIssue({ code: 'custom', message: 'host bits are set; write the network address' });
    }
  })
  .meta({ description: 'A network prefix with host bits clear, e.g. "10.1.0.0/16".' });

const interfaceAddress = z
  .string()
  .refine((text) => parseCidr(text) !== undefined, {
    error: (issue) => unparsedMessage(String(issue.input), 'not an address with prefix length such as "172.16.0.18/24"'),
  })
  .meta({ description: 'An interface address with its prefix length, e.g. "172.16.0.18/24".' });

const interfaceName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/, {
    message: 'not a Linux interface name (1-15 of letters, digits, "_", "." and "-")',
  })
  .meta({ description: 'A Linux interface name, at most 15 characters.' });

/** Conn names end up as ipsec.conf section names and in `ipsec up NAME` arguments. */
const connName = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9_-]{0,47}$/, {
    message: 'not a safe connection name (a letter, then up to 47 letters, digits, "_" or "-")',
  })
  .meta({ description: 'A strongSwan connection name, e.g. "a-to-b".' });

/** Identities go unquoted into ipsec.conf and into ipsec.secrets selectors. */
const ikeId = z
  .string()
  .regex(/^(%any|[A-Za-z0-9@][A-Za-z0-9@._:+-]{0,252})$/, {
    message:
      'not a safe IKE identity (an IP address, FQDN, @fqdn or user@fqdn of letters, digits and "@._:+-", or %any)',
  })
  .meta({ description: 'IKE identity: an IP address, "@fqdn", "user@fqdn", or "%any".' });

const peerAddress = z
  .string()
  .refine(
    (text) =>
      text === '%any' ||
      parseIp(text) !== undefined ||
      (/^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$/.test(text) &&
        !/^[0-9.]+$/.test(text)),
    { error: (issue) => unparsedMessage(String(issue.input), 'not an IP address, a DNS name, or %any') },
  )
  .meta({ description: 'Peer address: an IP address, a DNS name, or "%any".' });

/** Longest path Linux accepts (PATH_MAX is 4096 bytes with the terminating NUL). */
const PATH_MAX_CHARS = 4095;

const absolutePath = z
  .string()
  .max(PATH_MAX_CHARS, { message: `is longer than ${PATH_MAX_CHARS} characters, the Linux limit` })
  .regex(/^\/[A-Za-z0-9_.@+\/-]*$/, {
    message: 'not an absolute path of letters, digits and "_.@+/-" (no spaces or quotes)',
  })
  .refine((text) => !text.split('/').includes('..'), { message: 'must not contain ".."' });

/**
 * What makes a secret unusable in ipsec.secrets, which double-quotes values and has no escape
 * sequences. Empty when the secret is fine. Used for inline secrets and for secret files.
 */
export function secretProblems(text: string): string[] {
  const problems: string[] = [];
  if (text.length === 0) problems.push('is empty');
  if (text.length > SECRET_MAX_CHARS) problems.push(`is longer than ${SECRET_MAX_CHARS} characters`);
  if (text.includes('"')) problems.push('contains a double quote, which ipsec.secrets cannot quote');
  if (/[\u0000-\u001f\u007f]/.test(text)) {
    problems.push('contains a control character (newline, tab, NUL...), which breaks ipsec.secrets');
  }
  return problems;
}

const secretText = z.string().superRefine((text, ctx) => {
  for (const problem of secretProblems(text)) ctx.addIssue({ code: 'custom', message: problem });
});

const secret = z
  .union([
    z.strictObject({ value: secretText.meta({ description: 'The secret itself.' }) }),
    z.strictObject({
      file: absolutePath.meta({ description: 'A root-only file whose content is the secret.' }),
    }),
  ])
  .meta({ description: 'A secret given inline as {"value": ...} or as {"file": "/path"}.' });

/** One `ike=`/`esp=` proposal: known keywords only, with the parts each kind needs. */
function proposal(kind: 'ike' | 'esp') {
  return z
    .string()
    .regex(/^[a-z0-9_]+(-[a-z0-9_]+)*!?$/, {
      message: 'not a strongSwan proposal such as "aes256gcm16-prfsha384-ecp384"',
    })
    .superRefine((text, ctx) => {
      for (const problem of proposalProblems(text, kind)) {
        ctx.addIssue({ code: 'custom', message: `"${text}": ${problem}` });
      }
    });
}

const route = z.strictObject({
  destination: subnet.meta({ description: 'Destination prefix ("0.0.0.0/0" for default).' }),
  gateway: ipAddress.optional(),
  onLink: z
    .boolean()
    .default(false)
    .meta({ description: 'Gateway is reachable on the link even outside its prefix.' }),
  metric: z.number().int().min(0).max(4294967295).optional(),
});

const transit = z.strictObject({
  interface: interfaceName.meta({ description: 'The transit interface, e.g. "vlan4000".' }),
  parent: interfaceName.optional().meta({ description: 'Parent of the VLAN interface.' }),
  vlanId: z
    .number()
    .int()
    .min(1, { message: 'VLAN ids run from 1 to 4094' })
    .max(4094, { message: 'VLAN ids run from 1 to 4094' })
    .optional(),
  address: interfaceAddress,
  mtuBytes: z
    .number()
    .int()
    .min(576, { message: 'below 576, the IPv4 minimum datagram size' })
    .max(9216, { message: 'above 9216, the largest jumbo frame links take' })
    .optional(),
  routes: z.array(route).default([]),
});

const masqueradeRule = z.strictObject({
  source: subnet.meta({ description: 'Source prefix to masquerade, e.g. "10.1.0.0/16".' }),
  excludeDestinations: z
    .array(subnet)
    .default([])
    .meta({ description: 'Destinations that keep their source address, e.g. ["10.0.0.0/8"].' }),
  outInterface: interfaceName.optional(),
});

const masquerade = z.strictObject({
  backend: z.enum(['auto', 'legacy', 'nft']).default('auto'),
  rules: z.array(masqueradeRule).default([]),
});

const lxd = z.strictObject({
  socket: absolutePath
    .optional()
    .meta({ description: 'Unix socket of LXD or Incus; detected when absent.' }),
  networks: z
    .array(
      z.strictObject({
        name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/, {
          message: 'not an LXD network name',
        }),
        ipv4Nat: z.boolean().meta({ description: 'Desired value of the ipv4.nat key.' }),
      }),
    )
    .default([]),
});

const charonDebug = z
  .string()
  .regex(
    /^[ \t]*(dmn|mgr|ike|chd|job|cfg|knl|net|asn|enc|lib|esp|tls|tnc|imc|imv|pts|app|any)[ \t]+(-1|[0-4])([ \t]*,[ \t]*(dmn|mgr|ike|chd|job|cfg|knl|net|asn|enc|lib|esp|tls|tnc|imc|imv|pts|app|any)[ \t]+(-1|[0-4]))*[ \t]*$/,
    { message: 'not a charondebug list such as "ike 1, knl 1, cfg 0"' },
  );

const endpoint = z.strictObject({
  address: peerAddress,
  id: ikeId.optional().meta({ description: 'IKE identity; defaults to the address.' }),
  subnets: z.array(subnet).min(1, { message: 'needs at least one subnet' }),
});

const dpd = z.strictObject({
  delaySeconds: z.number().int().min(1).max(86400).default(30),
  timeoutSeconds: z.number().int().min(1).max(86400).default(150),
  action: z.enum(['none', 'clear', 'hold', 'restart']).default('restart'),
});

const probe = z.strictObject({
  target: ipAddress.meta({ description: 'An address in the remote subnets to ping.' }),
  source: ipAddress.meta({
    description: 'Source address inside the local subnets, present on this host.',
  }),
  intervalMs: z
    .number()
    .int()
    .min(200)
    .max(3_600_000)
    .default(1000)
    .meta({ description: 'How often the daemon probes.' }),
  timeoutMs: z
    .number()
    .int()
    .min(100)
    .max(10_000)
    .default(500)
    .meta({ description: 'How long one probe waits for its reply.' }),
  lossThreshold: z
    .number()
    .int()
    .min(1)
    .max(100)
    .default(2)
    .meta({ description: 'Lost probes in a row that make the tunnel count as dead.' }),
});

const siteToSite = z.strictObject({
  name: connName,
  local: endpoint,
  remote: endpoint,
  psk: secret,
  ike: z.array(proposal('ike')).min(1).default(['aes256-sha256-modp2048']),
  esp: z.array(proposal('esp')).min(1).default(['aes256-sha256']),
  keyexchange: z.enum(['ikev1', 'ikev2']).default('ikev2'),
  forceEncaps: z.boolean().default(false),
  reauth: z.boolean().default(false),
  rekey: z.boolean().default(true),
  ikeLifetimeSeconds: z.number().int().min(60).max(86400 * 7).default(10800),
  lifetimeSeconds: z.number().int().min(60).max(86400).default(3600),
  dpd: dpd.default({ delaySeconds: 30, timeoutSeconds: 150, action: 'restart' }),
  auto: z
    .enum(['ignore', 'add', 'route', 'start'])
    .default('add')
    .meta({ description: "strongSwan's own auto= for the conn." }),
  initiate: z
    .boolean()
    .default(false)
    .meta({ description: 'This side brings the connection up and heals it.' }),
  probe: probe.optional(),
});

const roadWarriorClient = z.strictObject({
  eapId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9@._+-]{0,63}$/, {
    message: 'not a safe EAP identity (letters, digits and "@._+-", at most 64)',
  }),
  password: secret,
  virtualIp: ipAddress,
});

const roadWarrior = z.strictObject({
  name: connName.default('roadwarrior'),
  serverId: ikeId,
  certificate: absolutePath.meta({ description: 'Server certificate (PEM).' }),
  privateKey: absolutePath.meta({ description: 'Server private key (PEM).' }),
  ca: absolutePath.meta({ description: 'The private CA certificate clients trust (PEM).' }),
  offeredSubnets: z.array(subnet).min(1),
  virtualIpPool: subnet,
  dns: z.array(ipAddress).default([]),
  appleClients: z
    .boolean()
    .default(true)
    .meta({ description: 'Apple clients expected: the server key must be RSA.' }),
  clients: z.array(roadWarriorClient).default([]),
});

const ipsecSetup = z.strictObject({
  charondebug: charonDebug.optional(),
  uniqueids: z.enum(['yes', 'no', 'never', 'replace', 'keep']).default('yes'),
});

const ipsec = z.strictObject({
  setup: ipsecSetup.default({ uniqueids: 'yes' }),
  connections: z.array(siteToSite).default([]),
  roadWarrior: roadWarrior.optional(),
});

/** The whole desired state of one host. */
export const desiredStateSchema = z
  .strictObject({
    $schema: z.string().optional(),
    version: z.literal(1, { message: 'only version 1 is understood' }),
    site: z.strictObject({
      name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, {
        message: 'not a site name (letters, digits, "_.-", at most 63)',
      }),
      subnets: z.array(subnet).min(1, { message: 'needs at least one subnet' }),
    }),
    transit: transit.optional(),
    masquerade: masquerade.optional(),
    lxd: lxd.optional(),
    ipsec: ipsec.optional(),
  })
  .meta({ title: 'tunnelwarden desired state', description: 'One host, version 1.' });

export type DesiredState = z.output<typeof desiredStateSchema>;
export type SiteToSiteConnection = DesiredState extends { ipsec?: infer I }
  ? NonNullable<I> extends { connections: (infer C)[] }
    ? C
    : never
  : never;
export type RoadWarrior = NonNullable<NonNullable<DesiredState['ipsec']>['roadWarrior']>;
export type Secret = SiteToSiteConnection['psk'];

/** The JSON Schema of the input document, as committed in config/desired-state.schema.json. */
export function desiredStateJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(desiredStateSchema, { io: 'input', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
}
