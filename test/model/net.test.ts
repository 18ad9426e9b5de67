import fc from 'fast-check';
import t from 'tap';
import {
  cidrContains,
  cidrContainsIp,
  cidrsOverlap,
  formatCidrNetwork,
  formatIp,
  hasHostBits,
  parseCidr,
  parseIp,
  type Cidr,
  type IpAddress,
} from '../../agent/model/net.js';

/** Parses a prefix the test knows is valid; fails the test loudly if the parser disagrees. */
function cidr(text: string): Cidr {
  const parsed = parseCidr(text);
  if (!parsed) throw new Error(`test fixture ${text} did not parse`);
  return parsed;
}

function ip(text: string): IpAddress {
  const parsed = parseIp(text);
  if (!parsed) throw new Error(`test fixture ${text} did not parse`);
  return parsed;
}

t.test('normal IPv4 addresses parse to their 32-bit value', async (t) => {
  t.same(parseIp('10.1.0.1'), { family: 4, value: 0x0a010001n });
  t.same(parseIp('0.0.0.0'), { family: 4, value: 0n });
  t.same(parseIp('255.255.255.255'), { family: 4, value: 0xffffffffn });
  t.same(parseIp('172.16.0.18'), { family: 4, value: 0xac100012n });
});

t.test('normal IPv6 addresses parse, including the short and IPv4-embedding forms', async (t) => {
  t.same(parseIp('::'), { family: 6, value: 0n });
  t.same(parseIp('::1'), { family: 6, value: 1n });
  t.same(parseIp('fe80::1'), { family: 6, value: (0xfe80n << 112n) | 1n });
  t.same(parseIp('FE80::1'), { family: 6, value: (0xfe80n << 112n) | 1n }, 'hex is case-blind');
  t.same(parseIp('::ffff:10.0.0.1'), { family: 6, value: 0xffff0a000001n });
  t.same(parseIp('2001:db8::'), { family: 6, value: 0x20010db8n << 96n });
  t.same(parseIp('2001:0db8:0000:0000:0000:0000:0000:0001'), {
    family: 6,
    value: (0x20010db8n << 96n) | 1n,
  });
  t.same(parseIp('1:2:3:4:5:6:1.2.3.4'), {
    family: 6,
    value: 0x00010002000300040005000601020304n,
  });
  t.same(parseIp('1:2:3:4:5:6:7::'), { family: 6, value: 0x00010002000300040005000600070000n });
});

t.test('dotted quads that other tools would read differently are rejected', async (t) => {
  for (const text of [
    '010.1.0.0', // octal to inet_aton
    '10.1', // 10.0.0.1 to inet_aton
    '10.1.0',
    '10',
    '256.1.1.1',
    '1.2.3.4.',
    '.1.2.3',
    '1..2.3',
    '0x1.0.0.1',
    '1e1.0.0.1',
    '+1.2.3.4',
    '-1.2.3.4',
    '１.2.3.4', // a full-width digit
    '',
  ]) {
    t.equal(parseIp(text), undefined, JSON.stringify(text));
  }
});

t.test('whitespace anywhere in an address is rejected', async (t) => {
  for (const text of [' 10.0.0.1', '10.0.0.1 ', '10.0. 0.1', '10.0.0.1\n', '\t::1', ':: 1']) {
    t.equal(parseIp(text), undefined, JSON.stringify(text));
  }
});

t.test('malformed IPv6 addresses are rejected', async (t) => {
  for (const text of [
    '::1::',
    ':::',
    ':1::',
    '1:::2',
    '1::2:3:4:5:6:7:8', // "::" must stand for at least one group
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8:9',
    '12345::',
    'g::1',
    '1.2.3.4::', // a dotted quad is only allowed as the last 32 bits
    '1.2.3.4::5',
    '::1.2.3.4:5',
    '1:2:3:4:5:6:7:1.2.3.4',
    '::ffff:010.0.0.1',
    '::ffff:10.0.0',
  ]) {
    t.equal(parseIp(text), undefined, JSON.stringify(text));
  }
});

t.test('IPv6 zone ids are rejected in addresses and prefixes', async (t) => {
  t.equal(parseIp('fe80::1%eth0'), undefined);
  t.equal(parseIp('fe80::1%1'), undefined);
  t.equal(parseCidr('fe80::1%eth0/64'), undefined);
});

t.test('a prefix parses to its network and last address', async (t) => {
  t.same(parseCidr('10.1.0.0/16'), {
    family: 4,
    address: 0x0a010000n,
    prefixLength: 16,
    network: 0x0a010000n,
    broadcast: 0x0a01ffffn,
  });
  t.same(parseCidr('10.1.2.3/16'), {
    family: 4,
    address: 0x0a010203n,
    prefixLength: 16,
    network: 0x0a010000n,
    broadcast: 0x0a01ffffn,
  });
  t.same(parseCidr('0.0.0.0/0'), {
    family: 4,
    address: 0n,
    prefixLength: 0,
    network: 0n,
    broadcast: 0xffffffffn,
  });
  t.same(parseCidr('10.0.0.1/32'), {
    family: 4,
    address: 0x0a000001n,
    prefixLength: 32,
    network: 0x0a000001n,
    broadcast: 0x0a000001n,
  });
  t.same(parseCidr('::/0'), {
    family: 6,
    address: 0n,
    prefixLength: 0,
    network: 0n,
    broadcast: (1n << 128n) - 1n,
  });
  t.same(parseCidr('2001:db8::1/128'), {
    family: 6,
    address: (0x20010db8n << 96n) | 1n,
    prefixLength: 128,
    network: (0x20010db8n << 96n) | 1n,
    broadcast: (0x20010db8n << 96n) | 1n,
  });
});

t.test('malformed prefixes are rejected', async (t) => {
  for (const text of [
    '1.2.3.4/',
    '/16',
    '10.0.0.0',
    '10.0.0.0/33',
    '10.0.0.0/1000',
    '::/129',
    '10.0.0.0/08',
    '10.0.0.0/ 8',
    '10.0.0.0 /8',
    '10.0.0.0/8/8',
    '10.0.0.0/-1',
    '10.0.0.0/+8',
    '10.0.0.0/8 ',
    '010.0.0.0/8',
    '10.1/16',
  ]) {
    t.equal(parseCidr(text), undefined, JSON.stringify(text));
  }
});

t.test('host bits are detected in prefixes written with a host address', async (t) => {
  t.equal(hasHostBits(cidr('10.1.0.1/16')), true);
  t.equal(hasHostBits(cidr('10.0.0.128/24')), true);
  t.equal(hasHostBits(cidr('2001:db8::1/64')), true);
  t.equal(hasHostBits(cidr('10.1.0.0/16')), false);
  t.equal(hasHostBits(cidr('0.0.0.0/0')), false);
  t.equal(hasHostBits(cidr('10.0.0.1/32')), false);
  t.equal(hasHostBits(cidr('::1/128')), false);
});

t.test('prefixes overlap exactly when they share an address', async (t) => {
  const overlapping: [string, string][] = [
    ['10.0.0.0/8', '10.1.0.0/16'],
    ['10.1.0.0/16', '10.0.0.0/8'],
    ['10.1.0.0/16', '10.1.0.0/16'],
    ['10.0.0.0/24', '10.0.0.255/32'],
    ['0.0.0.0/0', '192.168.1.0/24'],
    ['2001:db8::/32', '2001:db8:1::/48'],
  ];
  for (const [a, b] of overlapping) t.equal(cidrsOverlap(cidr(a), cidr(b)), true, `${a} ${b}`);

  const apart: [string, string][] = [
    ['10.0.0.0/24', '10.0.1.0/24'],
    ['10.0.0.0/25', '10.0.0.128/25'],
    ['10.0.1.0/32', '10.0.0.0/24'],
    ['10.1.0.0/16', '10.2.0.0/16'],
    ['0.0.0.0/0', '::/0'],
    ['0.0.0.0/0', '::ffff:0:0/96'],
  ];
  for (const [a, b] of apart) t.equal(cidrsOverlap(cidr(a), cidr(b)), false, `${a} ${b}`);
});

t.test('containment needs the inner prefix wholly inside the outer one', async (t) => {
  t.equal(cidrContains(cidr('10.0.0.0/8'), cidr('10.2.0.0/16')), true);
  t.equal(cidrContains(cidr('10.0.0.0/8'), cidr('10.0.0.0/8')), true, 'a prefix contains itself');
  t.equal(cidrContains(cidr('0.0.0.0/0'), cidr('203.0.113.7/32')), true);
  t.equal(cidrContains(cidr('10.0.0.0/23'), cidr('10.0.1.0/24')), true);
  t.equal(cidrContains(cidr('10.2.0.0/16'), cidr('10.0.0.0/8')), false, 'outer inside inner');
  t.equal(
    cidrContains(cidr('10.0.0.0/24'), cidr('10.0.0.0/23')),
    false,
    'same start, inner longer',
  );
  t.equal(cidrContains(cidr('10.0.1.0/24'), cidr('10.0.0.0/23')), false, 'same end, inner longer');
  t.equal(
    cidrContains(cidr('::/0'), cidr('10.0.0.0/8')),
    false,
    'families never contain each other',
  );
});

t.test('an address is inside a prefix from its network to its last address', async (t) => {
  const subnet = cidr('10.2.0.0/16');
  t.equal(cidrContainsIp(subnet, ip('10.2.0.0')), true);
  t.equal(cidrContainsIp(subnet, ip('10.2.255.255')), true);
  t.equal(cidrContainsIp(subnet, ip('10.1.255.255')), false);
  t.equal(cidrContainsIp(subnet, ip('10.3.0.0')), false);
  t.equal(cidrContainsIp(cidr('::/0'), ip('10.2.0.1')), false);
  t.equal(cidrContainsIp(cidr('0.0.0.0/0'), ip('::ffff:10.2.0.1')), false);
});

t.test('formatIp writes the canonical text of RFC 5952', async (t) => {
  const canonical: [string, string][] = [
    ['10.0.0.1', '10.0.0.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['FE80:0:0:0:0:0:0:1', 'fe80::1'],
    ['2001:0DB8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'], // the longest run of zeros
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // the first of equal runs
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // one zero group stays
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::1:2:3:4:5:6:7', '0:1:2:3:4:5:6:7'],
    ['::ffff:10.0.0.1', '::ffff:10.0.0.1'], // IPv4-mapped keeps the dotted quad
    ['::ffff:a00:1', '::ffff:10.0.0.1'],
  ];
  for (const [input, expected] of canonical) t.equal(formatIp(ip(input)), expected, input);
});

t.test('formatIp output always parses back to the same address', async (t) => {
  const ipv6 = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n });
  // Many zero groups, so runs of zeros and their compression are exercised.
  const sparseIpv6 = fc
    .array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), {
      minLength: 8,
      maxLength: 8,
    })
    .map((groups) => groups.reduce((value, group) => (value << 16n) | BigInt(group), 0n));
  fc.assert(
    fc.property(fc.oneof(ipv6, sparseIpv6), (value) => {
      const text = formatIp({ family: 6, value });
      const parsed = parseIp(text);
      return (
        parsed?.family === 6 &&
        parsed.value === value &&
        text === text.toLowerCase() &&
        !/(^|:)0[0-9a-f]/.test(text) &&
        text.split('::').length <= 2
      );
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: 0xffffffffn }), (value) => {
      const parsed = parseIp(formatIp({ family: 4, value }));
      return parsed?.family === 4 && parsed.value === value;
    }),
  );
  t.pass('round trips held');
});

t.test('formatCidrNetwork writes the network address, not the address as written', async (t) => {
  t.equal(formatCidrNetwork(cidr('10.1.2.3/16')), '10.1.0.0/16');
  t.equal(formatCidrNetwork(cidr('10.1.0.0/16')), '10.1.0.0/16');
  t.equal(formatCidrNetwork(cidr('2001:DB8::1/32')), '2001:db8::/32');
  t.equal(formatCidrNetwork(cidr('0.0.0.0/0')), '0.0.0.0/0');
});
