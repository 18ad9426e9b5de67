/**
 * Reads the transit link from the host: the interface itself (`ip -json -details link show`),
 * its addresses (`ip -json addr show`), its main-table routes (`ip -json route show`), the
 * VLAN parent's link, whether the kernel offers 802.1Q, and our state file of what we created.
 * The parsers are pure and tolerant (unknown fields ignored, malformed entries skipped); the
 * thin calls below them only run `ip`/`modprobe` and read files through the host ports.
 *
 * Why not systeminformation: it reads /sys/class/net, which shows the network namespace of
 * whoever mounted /sys rather than the agent's own, and it runs commands outside the
 * CommandRunner (no timeouts, no debug log). `ip` answers for the namespace the agent runs in.
 */
import { ErrorCode, TunnelwardenError } from '../errors.js';
import type { CommandRunner } from '../host/exec.js';
import type { FileStore } from '../host/files.js';
import { formatCidrNetwork, formatIp, parseCidr, parseIp, type IpFamily } from '../model/net.js';
import type { HostPaths } from '../model/paths.js';

/** One interface as `ip -json -details link show` describes it. */
export interface IpLink {
  name: string;
  mtuBytes: number;
  /** Bounds the kernel enforces on `mtu`; undefined when not reported or 0 (no bound). */
  minMtuBytes: number | undefined;
  maxMtuBytes: number | undefined;
  /** Administratively up: the UP flag, whatever the carrier. */
  adminUp: boolean;
  operState: string | undefined;
  /** `linkinfo.info_kind` ("veth", "bridge", "vlan"...); undefined for a plain NIC. */
  kind: string | undefined;
  /** The lower device's name when it lives in this namespace (a VLAN's parent). */
  parent: string | undefined;
  /** Present for `kind` "vlan". */
  vlan: { id: number; protocol: string | undefined } | undefined;
}

/** One address of an interface, with its prefix length as written by `ip` ("172.16.0.18/24"). */
export interface InterfaceAddress {
  address: string;
  family: IpFamily;
  scope: string | undefined;
  /** The kernel keeps it as a secondary of a primary in the same subnet. */
  secondary: boolean;
}

/** One route of the main table through the interface, in canonical form. */
export interface KernelRoute {
  /** Network in CIDR form: "default" becomes "0.0.0.0/0", a host route gets /32 or /128. */
  destination: string;
  family: IpFamily;
  gateway: string | undefined;
  onLink: boolean;
  /** The kernel's metric; `ip` leaves out IPv4's 0. */
  metric: number;
  protocol: string | undefined;
  /** Route type when not unicast ("blackhole", "local"...). */
  type: string | undefined;
}

/** Whether `ip link add ... type vlan` can work on this kernel. */
export type VlanSupport =
  { available: true; how: 'loaded' | 'loadable' } | { available: false; cause: string };

/** A route tunnelwarden put in place, remembered so that it can remove it later. */
export interface RecordedRoute {
  destination: string;
  gateway?: string;
  onLink: boolean;
  metric: number;
}

/** What tunnelwarden remembers about one interface it created or changed. */
export interface LinkStateEntry {
  /** We created the interface (a VLAN), so we may delete it. */
  created: boolean;
  parent?: string;
  vlanId?: number;
  /** The desired address we last set; replaced or removed when the desired state changes. */
  address?: string;
  routes: RecordedRoute[];
}

/** The state file: interfaces by name. */
export interface LinkState {
  interfaces: Record<string, LinkStateEntry>;
}

/** Everything observed about one interface; `link` undefined when it does not exist. */
export interface InterfaceObservation {
  link: IpLink | undefined;
  addresses: InterfaceAddress[];
  routes: KernelRoute[];
}

/** What the link planner needs from the host. */
export interface LinkObservation {
  /** The desired transit interface and every interface named in the state file, by name. */
  interfaces: Map<string, InterfaceObservation>;
  /** The desired VLAN parent, when one is desired and exists. */
  parent: IpLink | undefined;
  /** Asked only when a VLAN interface has to be created. */
  vlanSupport: VlanSupport | undefined;
  state: LinkState;
}

/** Where the state file lives. */
export function linkStatePath(paths: HostPaths): string {
  return `${paths.stateDir.replace(/\/+$/, '')}/links.json`;
}

/** Where the kernel shows a loaded (or built-in) 802.1Q module. */
export const VLAN_MODULE_SYSFS_PATH = '/sys/module/8021q';
const KERNEL_RELEASE_PATH = '/proc/sys/kernel/osrelease';

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const stringField = (entry: Json, key: string): string | undefined =>
  typeof entry[key] === 'string' ? (entry[key] as string) : undefined;
const numberField = (entry: Json, key: string): number | undefined =>
  typeof entry[key] === 'number' && Number.isFinite(entry[key])
    ? (entry[key] as number)
    : undefined;

/**
 * The array `ip -json` prints. Empty output counts as an empty array (older iproute2 prints
 * nothing for an empty route list). Throws TunnelwardenError (unsupported) on anything else.
 */
export function parseIpJsonArray(text: string, command: string): unknown[] {
  if (text.trim() === '') return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new TunnelwardenError(
      'unsupported',
      ErrorCode.ipOutputUnparsable,
      `${command} did not print JSON (iproute2 before 4.14 has no -json for every object)`,
      { cause },
    );
  }
  if (!Array.isArray(parsed)) {
    throw new TunnelwardenError(
      'unsupported',
      ErrorCode.ipOutputUnparsable,
      `${command} did not print a JSON array`,
    );
  }
  return parsed;
}

const positiveBound = (value: number | undefined) =>
  value !== undefined && value > 0 ? value : undefined;

/** Parses `ip -json [-details] link show`. Entries without a name or an MTU are skipped. */
export function parseIpLinks(text: string): IpLink[] {
  const links: IpLink[] = [];
  for (const entry of parseIpJsonArray(text, 'ip -json link show')) {
    if (!isObject(entry)) continue;
    const name = stringField(entry, 'ifname');
    const mtuBytes = numberField(entry, 'mtu');
    if (name === undefined || mtuBytes === undefined) continue;
    const flags = Array.isArray(entry.flags) ? entry.flags : [];
    const linkinfo = isObject(entry.linkinfo) ? entry.linkinfo : {};
    const kind = stringField(linkinfo, 'info_kind');
    const data = isObject(linkinfo.info_data) ? linkinfo.info_data : {};
    const vlanId = numberField(data, 'id');
    links.push({
      name,
      mtuBytes,
      minMtuBytes: positiveBound(numberField(entry, 'min_mtu')),
      maxMtuBytes: positiveBound(numberField(entry, 'max_mtu')),
      adminUp: flags.includes('UP'),
      operState: stringField(entry, 'operstate'),
      kind,
      parent: stringField(entry, 'link'),
      vlan:
        kind === 'vlan' && vlanId !== undefined
          ? { id: vlanId, protocol: stringField(data, 'protocol') }
          : undefined,
    });
  }
  return links;
}

/** Parses `ip -json addr show [dev X]`: the addresses of `name` (of every entry when omitted). */
export function parseIpAddresses(text: string, name?: string): InterfaceAddress[] {
  const addresses: InterfaceAddress[] = [];
  for (const entry of parseIpJsonArray(text, 'ip -json addr show')) {
    if (!isObject(entry) || !Array.isArray(entry.addr_info)) continue;
    if (name !== undefined && stringField(entry, 'ifname') !== name) continue;
    for (const info of entry.addr_info) {
      if (!isObject(info)) continue;
      const family = stringField(info, 'family');
      const local = stringField(info, 'local');
      const prefixLength = numberField(info, 'prefixlen');
      if (
        (family !== 'inet' && family !== 'inet6') ||
        local === undefined ||
        prefixLength === undefined
      )
        continue;
      const address = canonicalAddress(`${local}/${prefixLength}`);
      if (address === undefined) continue;
      addresses.push({
        address,
        family: family === 'inet' ? 4 : 6,
        scope: stringField(info, 'scope'),
        secondary: info.secondary === true,
      });
    }
  }
  return addresses;
}

/** Parses `ip -json -4|-6 route show dev X`. Unparsable destinations are skipped. */
export function parseIpRoutes(text: string, family: IpFamily): KernelRoute[] {
  const routes: KernelRoute[] = [];
  for (const entry of parseIpJsonArray(text, 'ip -json route show')) {
    if (!isObject(entry)) continue;
    const destination = canonicalDestination(stringField(entry, 'dst'), family);
    if (destination === undefined) continue;
    const gatewayText = stringField(entry, 'gateway');
    const gateway = gatewayText === undefined ? undefined : parseIp(gatewayText);
    const flags = Array.isArray(entry.flags) ? entry.flags : [];
    routes.push({
      destination,
      family,
      gateway: gateway === undefined ? undefined : formatIp(gateway),
      onLink: flags.includes('onlink'),
      metric: numberField(entry, 'metric') ?? 0,
      protocol: stringField(entry, 'protocol'),
      type: stringField(entry, 'type'),
    });
  }
  return routes;
}

/** "172.16.0.18/24" in canonical text (IPv6 compressed lower-case); undefined when malformed. */
export function canonicalAddress(text: string): string | undefined {
  const cidr = parseCidr(text);
  if (!cidr) return undefined;
  return `${formatIp({ family: cidr.family, value: cidr.address })}/${cidr.prefixLength}`;
}

/** A route destination as the network in CIDR form; `ip`'s "default" and bare hosts included. */
export function canonicalDestination(
  text: string | undefined,
  family: IpFamily,
): string | undefined {
  if (text === undefined) return undefined;
  if (text === 'default') return family === 4 ? '0.0.0.0/0' : '::/0';
  const withLength = text.includes('/') ? text : `${text}/${family === 4 ? 32 : 128}`;
  const cidr = parseCidr(withLength);
  return cidr && cidr.family === family ? formatCidrNetwork(cidr) : undefined;
}

/**
 * Parses the state file. Tolerant: a missing file is an empty state; an unreadable one is an
 * empty state plus a warning (forgetting what we created only means we will not delete it).
 */
export function parseLinkState(text: string | undefined): { state: LinkState; warnings: string[] } {
  const empty = { state: { interfaces: {} }, warnings: [] as string[] };
  if (text === undefined) return empty;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ...empty, warnings: ['link state file is not JSON; treating it as empty'] };
  }
  if (!isObject(parsed) || !isObject(parsed.interfaces)) {
    return {
      ...empty,
      warnings: ['link state file has no "interfaces" object; treating it as empty'],
    };
  }
  const interfaces: Record<string, LinkStateEntry> = {};
  for (const [name, value] of Object.entries(parsed.interfaces)) {
    if (!isObject(value)) continue;
    const entry: LinkStateEntry = { created: value.created === true, routes: [] };
    const parent = stringField(value, 'parent');
    const vlanId = numberField(value, 'vlanId');
    const address = stringField(value, 'address');
    if (parent !== undefined) entry.parent = parent;
    if (vlanId !== undefined) entry.vlanId = vlanId;
    if (address !== undefined) entry.address = address;
    for (const route of Array.isArray(value.routes) ? value.routes : []) {
      if (!isObject(route)) continue;
      const destination = stringField(route, 'destination');
      const metric = numberField(route, 'metric');
      if (destination === undefined || metric === undefined) continue;
      const gateway = stringField(route, 'gateway');
      entry.routes.push({
        destination,
        ...(gateway === undefined ? {} : { gateway }),
        onLink: route.onLink === true,
        metric,
      });
    }
    interfaces[name] = entry;
  }
  return { state: { interfaces }, warnings: [] };
}

// ---- thin calls -------------------------------------------------------------------------

/** The ports the observation uses. */
export interface LinkObservePorts {
  run: CommandRunner;
  files: FileStore;
  paths: HostPaths;
}

const missingDevice = /does not exist|Cannot find device/;

function commandFailed(
  argv: readonly string[],
  exitCode: number,
  stderr: string,
): TunnelwardenError {
  return new TunnelwardenError(
    'command-failed',
    ErrorCode.commandFailed,
    `${argv.join(' ')} exited with ${exitCode}: ${stderr.trim()}`,
    { details: { command: argv, exitCode } },
  );
}

/** The interface's link, or undefined when there is no such device. */
export async function readLink(run: CommandRunner, name: string): Promise<IpLink | undefined> {
  const argv = ['ip', '-json', '-details', 'link', 'show', 'dev', name];
  const result = await run(argv, { allowFailure: true });
  if (result.exitCode !== 0) {
    if (missingDevice.test(result.stderr)) return undefined;
    throw commandFailed(argv, result.exitCode, result.stderr);
  }
  return parseIpLinks(result.stdout).find((link) => link.name === name);
}

/** The interface, its addresses and its routes of the given families. */
export async function readInterface(
  run: CommandRunner,
  name: string,
  families: ReadonlySet<IpFamily>,
): Promise<InterfaceObservation> {
  const link = await readLink(run, name);
  if (!link) return { link, addresses: [], routes: [] };
  const addresses = await run(['ip', '-json', 'addr', 'show', 'dev', name]);
  const routes: KernelRoute[] = [];
  for (const family of [4, 6] as const) {
    if (!families.has(family)) continue;
    const result = await run(['ip', '-json', `-${family}`, 'route', 'show', 'dev', name]);
    routes.push(...parseIpRoutes(result.stdout, family));
  }
  return { link, addresses: parseIpAddresses(addresses.stdout, name), routes };
}

/**
 * Whether the kernel offers 802.1Q: the module is loaded or built in (/sys/module/8021q), or
 * `modprobe -n` finds it (the kernel loads it on the first `ip link add ... type vlan`).
 */
export async function readVlanSupport(run: CommandRunner, files: FileStore): Promise<VlanSupport> {
  if ((await files.mode(VLAN_MODULE_SYSFS_PATH)) !== undefined)
    return { available: true, how: 'loaded' };
  let modprobeSays: string;
  try {
    const result = await run(['modprobe', '-n', '8021q'], { allowFailure: true });
    if (result.exitCode === 0) return { available: true, how: 'loadable' };
    modprobeSays = result.stderr.trim().split('\n').pop() ?? '';
  } catch (thrown) {
    if (!(thrown instanceof TunnelwardenError && thrown.code === ErrorCode.commandMissing))
      throw thrown;
    modprobeSays = 'modprobe is not installed';
  }
  const release = (await files.read(KERNEL_RELEASE_PATH))?.trim();
  const kernel = release ? `kernel ${release}` : 'this kernel';
  return {
    available: false,
    cause: `${VLAN_MODULE_SYSFS_PATH} is absent and ${kernel} has no loadable 8021q (${modprobeSays})`,
  };
}

/** Reads the state file (see parseLinkState). */
export async function readLinkState(
  files: FileStore,
  paths: HostPaths,
): Promise<{ state: LinkState; warnings: string[] }> {
  return parseLinkState(await files.read(linkStatePath(paths)));
}

/** The families of the routes we manage or remember on one interface. */
function routeFamilies(destinations: readonly string[]): Set<IpFamily> {
  const families = new Set<IpFamily>([4]);
  for (const destination of destinations) {
    const cidr = parseCidr(destination);
    if (cidr) families.add(cidr.family);
  }
  return families;
}

/**
 * Observes the transit link as desired (or only what the state file names, when `transit` is
 * undefined). Read-only. Throws TunnelwardenError when `ip` fails in an unexpected way.
 */
export async function observeLink(
  transit:
    | { interface: string; parent?: string; vlanId?: number; routes: { destination: string }[] }
    | undefined,
  ports: LinkObservePorts,
  recorded: LinkState,
): Promise<LinkObservation> {
  const interfaces = new Map<string, InterfaceObservation>();
  const names = new Set(Object.keys(recorded.interfaces));
  if (transit) names.add(transit.interface);
  for (const name of names) {
    const destinations = [
      ...(recorded.interfaces[name]?.routes.map((route) => route.destination) ?? []),
      ...(transit?.interface === name ? transit.routes.map((route) => route.destination) : []),
    ];
    interfaces.set(name, await readInterface(ports.run, name, routeFamilies(destinations)));
  }

  const wantsVlan = transit?.parent !== undefined && transit.vlanId !== undefined;
  const parent = wantsVlan ? await readLink(ports.run, transit.parent!) : undefined;
  const current = transit ? interfaces.get(transit.interface)?.link : undefined;
  const needsCreating = wantsVlan && current?.kind !== 'vlan';
  const vlanSupport = needsCreating ? await readVlanSupport(ports.run, ports.files) : undefined;
  return { interfaces, parent, vlanSupport, state: recorded };
}
