/**
 * Strict IPv4/IPv6 address and CIDR arithmetic for the desired-state checks. Pure: no I/O.
 *
 * Strict means the forms a careful operator writes and the kernel, iproute2 and strongSwan all
 * read the same way: dotted quads of four decimal octets without leading zeros (so "010.1.0.0",
 * which some tools read as octal, and shortened "10.1" are rejected), and RFC 4291 IPv6 text.
 */

export type IpFamily = 4 | 6;

/** A parsed address: its family and its value as an unsigned integer. */
export interface IpAddress {
  family: IpFamily;
  value: bigint;
}

/** A parsed prefix: the address as written, the prefix length, and the network it spans. */
export interface Cidr {
  family: IpFamily;
  address: bigint;
  prefixLength: number;
  network: bigint;
  /** Last address inside the prefix. */
  broadcast: bigint;
}

const ipv4Octet = /^(0|[1-9][0-9]{0,2})$/;
const ipv6Group = /^[0-9a-fA-F]{1,4}$/;

function bitsOf(family: IpFamily): number {
  return family === 4 ? 32 : 128;
}

function parseIpv4(text: string): bigint | undefined {
  const octets = text.split('.');
  if (octets.length !== 4) return undefined;
  let value = 0n;
  for (const octet of octets) {
    if (!ipv4Octet.test(octet)) return undefined;
    const number = Number(octet);
    if (number > 255) return undefined;
    value = (value << 8n) | BigInt(number);
  }
  return value;
}

/** `endsAddress`: these groups end the address, so the last may be an embedded IPv4 quad. */
function parseIpv6Groups(groups: string[], endsAddress: boolean): bigint[] | undefined {
  const values: bigint[] = [];
  for (const [index, group] of groups.entries()) {
    const isLast = index === groups.length - 1;
    if (endsAddress && isLast && group.includes('.')) {
      const embedded = parseIpv4(group);
      if (embedded === undefined) return undefined;
      values.push(embedded >> 16n, embedded & 0xffffn);
      continue;
    }
    if (!ipv6Group.test(group)) return undefined;
    values.push(BigInt(parseInt(group, 16)));
  }
  return values;
}

function parseIpv6(text: string): bigint | undefined {
  if (text.includes('%')) return undefined; // zone ids have no place in a site config
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  const tail = halves.length === 2 ? (halves[1] === '' ? [] : halves[1]!.split(':')) : [];
  const headValues = parseIpv6Groups(head, halves.length === 1);
  const tailValues = parseIpv6Groups(tail, true);
  if (!headValues || !tailValues) return undefined;
  const count = headValues.length + tailValues.length;
  if (halves.length === 1 && count !== 8) return undefined;
  if (halves.length === 2 && count > 7) return undefined;
  const zeros = new Array<bigint>(8 - count).fill(0n);
  let value = 0n;
  for (const group of [...headValues, ...zeros, ...tailValues]) value = (value << 16n) | group;
  return value;
}

/** Parses an IPv4 or IPv6 address strictly; undefined when the text is not one. */
export function parseIp(text: string): IpAddress | undefined {
  if (text.includes(':')) {
    const value = parseIpv6(text);
    return value === undefined ? undefined : { family: 6, value };
  }
  const value = parseIpv4(text);
  return value === undefined ? undefined : { family: 4, value };
}

/** Parses "address/length"; undefined when either part is malformed or the length too long. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const ip = parseIp(text.slice(0, slash));
  const lengthText = text.slice(slash + 1);
  if (!ip || !/^(0|[1-9][0-9]{0,2})$/.test(lengthText)) return undefined;
  const prefixLength = Number(lengthText);
  const bits = bitsOf(ip.family);
  if (prefixLength > bits) return undefined;
  const hostBits = BigInt(bits - prefixLength);
  const hostMask = (1n << hostBits) - 1n;
  const network = ip.value & ~hostMask & ((1n << BigInt(bits)) - 1n);
  return {
    family: ip.family,
    address: ip.value,
    prefixLength,
    network,
    broadcast: network | hostMask,
  };
}

/** True when the prefix was written with host bits set ("10.1.0.1/16" as a subnet). */
export function hasHostBits(cidr: Cidr): boolean {
  return cidr.address !== cidr.network;
}

/** True when the two prefixes share at least one address. */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.family === b.family && a.network <= b.broadcast && b.network <= a.broadcast;
}

/** True when `inner` lies wholly inside `outer`. */
export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return (
    outer.family === inner.family &&
    outer.network <= inner.network &&
    inner.broadcast <= outer.broadcast
  );
}

/** True when the address lies inside the prefix. */
export function cidrContainsIp(outer: Cidr, ip: IpAddress): boolean {
  return outer.family === ip.family && outer.network <= ip.value && ip.value <= outer.broadcast;
}

/** Canonical text of an address: IPv4 dotted quad, IPv6 compressed lower-case (RFC 5952). */
export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) {
    return [24n, 16n, 8n, 0n].map((shift) => String((ip.value >> shift) & 0xffn)).join('.');
  }
  if (ip.value >> 32n === 0xffffn) {
    // RFC 5952 section 5: an IPv4-mapped address keeps its IPv4 part dotted, as inet_ntop does.
    return `::ffff:${formatIp({ family: 4, value: ip.value & 0xffffffffn })}`;
  }
  const groups = [112n, 96n, 80n, 64n, 48n, 32n, 16n, 0n].map((shift) =>
    Number((ip.value >> shift) & 0xffffn),
  );
  let bestStart = -1;
  let bestLength = 0;
  for (let start = 0; start < 8; ) {
    if (groups[start] !== 0) {
      start += 1;
      continue;
    }
    let end = start;
    while (end < 8 && groups[end] === 0) end += 1;
    if (end - start > bestLength && end - start >= 2) {
      bestStart = start;
      bestLength = end - start;
    }
    start = end;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart < 0) return hex.join(':');
  const head = hex.slice(0, bestStart).join(':');
  const tail = hex.slice(bestStart + bestLength).join(':');
  return `${head}::${tail}`;
}

/** Canonical text of a prefix's network ("10.1.0.0/16"). */
export function formatCidrNetwork(cidr: Cidr): string {
  return `${formatIp({ family: cidr.family, value: cidr.network })}/${cidr.prefixLength}`;
}

/**
 * A list of traffic selectors as one comparable key: prefixes in canonical form, sorted.
 * Text that is not a prefix (`dynamic`, `10.1.0.1/32[udp/1701]`) is kept as written.
 */
export function selectorKey(subnets: readonly string[]): string {
  return subnets
    .map((subnet) => {
      const cidr = parseCidr(subnet);
      return cidr ? formatCidrNetwork(cidr) : subnet;
    })
    .sort()
    .join(' ');
}
