import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parseSwanctlListPols } from '../../agent/observe/parse/swanctl-pols.js';
import { parseSwanctlListConns, parseSwanctlListSas } from '../../agent/observe/parse/swanctl.js';
import type { ChildSa, IkeSa, LoadedConn, SwanctlPolicy } from '../../agent/observe/parse/types.js';

const FIXTURES = path.resolve(import.meta.dirname, '..', 'fixtures', 'strongswan-5.9.8-libipsec');

function fixture(name: string): string {
  return readFileSync(path.join(FIXTURES, name), 'utf8');
}

/** An IKE_SA of a-to-b between the lab's sites after NAT-T moved it to port 4500. */
function ikeSa(fields: Partial<IkeSa> & Pick<IkeSa, 'uniqueId' | 'state'>): IkeSa {
  return {
    conn: 'a-to-b',
    ikeVersion: 2,
    isInitiator: true,
    localId: '172.16.0.18',
    localAddress: '172.16.0.18',
    localPort: 4500,
    remoteId: '172.16.0.2',
    remoteAddress: '172.16.0.2',
    remotePort: 4500,
    children: [],
    ...fields,
  };
}

function installed(fields: Partial<ChildSa> & Pick<ChildSa, 'uniqueId'>): ChildSa {
  return {
    conn: 'a-to-b',
    state: 'INSTALLED',
    mode: 'TUNNEL',
    reqid: 1,
    protocol: 'ESP',
    udpEncap: true,
    localTs: ['10.1.0.0/16'],
    remoteTs: ['10.2.0.0/16'],
    ...fields,
  };
}

const EXPECTED_SAS: Record<string, IkeSa[]> = {
  'swanctl-list-sas-none.txt': [],
  'swanctl-list-sas-connecting.txt': [
    ikeSa({
      uniqueId: 2,
      state: 'CONNECTING',
      initiatorSpi: '28e777c23f00229a',
      responderSpi: '0000000000000000',
      localId: '%any',
      localPort: 500,
      remoteId: '%any',
      remotePort: 500,
    }),
  ],
  'swanctl-list-sas-established.txt': [
    ikeSa({
      uniqueId: 1,
      state: 'ESTABLISHED',
      initiatorSpi: 'ec8c014e33ce8051',
      responderSpi: 'ebc560b1753a30d1',
      establishedSecondsAgo: 222,
      rekeyInSeconds: 9760,
      children: [
        installed({
          uniqueId: 1,
          installedSecondsAgo: 222,
          rekeyInSeconds: 2342,
          expiresInSeconds: 3378,
          spiIn: 'f7ec1834',
          bytesIn: 336,
          packetsIn: 4,
          lastInSecondsAgo: 68,
          spiOut: 'dd9339c1',
          bytesOut: 336,
          packetsOut: 4,
          lastOutSecondsAgo: 68,
        }),
      ],
    }),
  ],
  'lab-swanctl-list-sas-established.txt': [
    ikeSa({
      uniqueId: 1,
      state: 'ESTABLISHED',
      initiatorSpi: '2e8db53b80c4dd6b',
      responderSpi: '53bfe432708db62d',
      establishedSecondsAgo: 9,
      reauthInSeconds: 10198,
      children: [
        installed({
          uniqueId: 1,
          installedSecondsAgo: 9,
          rekeyInSeconds: 2575,
          expiresInSeconds: 3591,
          spiIn: '18635350',
          bytesIn: 252,
          packetsIn: 3,
          lastInSecondsAgo: 8,
          spiOut: '3f64f3f7',
          bytesOut: 252,
          packetsOut: 3,
          lastOutSecondsAgo: 8,
        }),
      ],
    }),
  ],
  'lab-swanctl-list-sas-conn-removed-child-kept.txt': [
    ikeSa({
      uniqueId: 7,
      state: 'ESTABLISHED',
      initiatorSpi: '35c33500d895afe4',
      responderSpi: '49b07664f5b7ab02',
      establishedSecondsAgo: 4,
      reauthInSeconds: 9890,
      children: [
        installed({
          uniqueId: 9,
          installedSecondsAgo: 4,
          rekeyInSeconds: 2591,
          expiresInSeconds: 3596,
          spiIn: '0f0c0741',
          bytesIn: 0,
          packetsIn: 0,
          spiOut: 'd6298709',
          bytesOut: 0,
          packetsOut: 0,
        }),
        installed({
          conn: 'a-to-b2',
          uniqueId: 10,
          reqid: 2,
          localTs: ['10.1.1.0/24'],
          remoteTs: ['10.2.1.0/24'],
          installedSecondsAgo: 3,
          rekeyInSeconds: 2778,
          expiresInSeconds: 3597,
          spiIn: '31c0fe31',
          bytesIn: 0,
          packetsIn: 0,
          spiOut: 'c81c18e3',
          bytesOut: 0,
          packetsOut: 0,
        }),
      ],
    }),
  ],
};

function pskConn(name: string, remote: string, remoteTs: string[]): LoadedConn {
  return {
    name,
    localAddress: '172.16.0.18',
    remoteAddress: remote,
    ikeVersion: 'IKEv2',
    localAuth: 'pre-shared key',
    localId: '172.16.0.18',
    remoteAuth: 'pre-shared key',
    remoteId: remote,
    children: [{ name, localTs: ['10.1.0.0/16'], remoteTs, mode: 'TUNNEL' }],
  };
}

function roadWarriorConn(name: string, remoteId?: string): LoadedConn {
  return {
    name,
    localAddress: '%any',
    remoteAddress: '%any',
    ikeVersion: 'IKEv2',
    localAuth: 'pre-shared key',
    localId: 'vpn.example.com',
    remoteAuth: 'EAP_MSCHAPV2',
    ...(remoteId === undefined ? {} : { remoteId }),
    children: [{ name, localTs: ['10.0.0.0/8'], remoteTs: ['dynamic'], mode: 'TUNNEL' }],
  };
}

const EXPECTED_CONNS: Record<string, LoadedConn[]> = {
  'swanctl-list-conns.txt': [pskConn('a-to-b', '172.16.0.2', ['10.2.0.0/16'])],
  'swanctl-list-conns-multi.txt': [
    pskConn('a-to-b', '172.16.0.2', ['10.2.0.0/16']),
    pskConn('a-to-c', '172.16.0.3', ['10.3.0.0/16', '10.4.0.0/16']),
    roadWarriorConn('ikev2-vpn'),
    roadWarriorConn('ikev2-vpn-client_a', 'client_a'),
  ],
};

const EXPECTED_POLS: Record<string, SwanctlPolicy[]> = {
  'swanctl-list-pols.txt': [
    {
      conn: 'a-to-b',
      child: 'a-to-b',
      mode: 'TUNNEL',
      localTs: ['10.1.0.0/16'],
      remoteTs: ['10.2.0.0/16'],
    },
  ],
};

t.test('every swanctl capture in the fixture folder has an exact expectation here', async (t) => {
  const captures = readdirSync(FIXTURES).filter((name) => /^(lab-)?swanctl-.*\.txt$/.test(name));
  const expected = [EXPECTED_SAS, EXPECTED_CONNS, EXPECTED_POLS].flatMap(Object.keys);
  t.strictSame(captures.sort(), expected.sort());
});

for (const [name, expected] of Object.entries(EXPECTED_SAS)) {
  t.test(`${name} parses to exactly the IKE_SAs and CHILD_SAs it shows`, async (t) => {
    t.strictSame(parseSwanctlListSas(fixture(name)), expected);
  });
}

for (const [name, expected] of Object.entries(EXPECTED_CONNS)) {
  t.test(`${name} parses to exactly the loaded connections it shows`, async (t) => {
    t.strictSame(parseSwanctlListConns(fixture(name)), expected);
  });
}

for (const [name, expected] of Object.entries(EXPECTED_POLS)) {
  t.test(`${name} parses to exactly the installed policies it shows`, async (t) => {
    t.strictSame(parseSwanctlListPols(fixture(name)), expected);
  });
}

t.test('each list parser ignores the output of the other swanctl commands', async (t) => {
  t.strictSame(parseSwanctlListSas(fixture('swanctl-list-conns-multi.txt')), []);
  t.strictSame(parseSwanctlListConns(fixture('swanctl-list-sas-established.txt')), []);
  t.strictSame(parseSwanctlListPols(fixture('swanctl-list-sas-established.txt')), []);
  t.strictSame(parseSwanctlListSas(fixture('stroke-statusall-established.txt')), []);
});

// Hand-written in swanctl 5.9's list_sas.c layout: several IKE_SAs of one conn (a rekeyed
// duplicate and a half-open one), a REKEYED CHILD_SA beside its INSTALLED successor, DN
// identities, IPv6, an IKEv1 road warrior with XAuth and a virtual IP, marks and IPComp.
const LIST_SAS_SAMPLE = `dc1-dc2: #14, ESTABLISHED, IKEv2, 3f00a1d9c48c3b1e_i* 9c0d1e2f5e6f7a8b_r
  local  'C=CH, O=Example Corp, CN=dc1.example.com' @ 172.16.0.18[4500]
  remote 'C=CH, O=Example Corp, CN=dc2.example.com' @ 172.16.0.2[4500]
  AES_GCM_16-256/PRF_HMAC_SHA2_256/ECP_256
  established 720s ago, rekeying in 13410s, expires in 14310s
  dc1-dc2: #40, reqid 1, INSTALLED, TUNNEL, ESP:AES_GCM_16-256
    installed 60s ago, rekeying in 3180s, expires in 3540s
    in  aaaa0001 (0x00000002/0xffffffff),  10240 bytes,    80 packets,     1s ago
    out bbbb0001 (0x00000002/0xffffffff),   9216 bytes,    72 packets,     1s ago
    local  10.1.0.0/16 10.5.0.0/24
    remote 10.2.0.0/16
  dc1-dc2: #38, reqid 1, REKEYED, TUNNEL, ESP:AES_GCM_16-256
    installed 3660s ago, expires in 240s
    in  aaaa0000,  99999 bytes,   800 packets,    61s ago
    out bbbb0000, 123456 bytes,   812 packets,    61s ago
    local  10.1.0.0/16 10.5.0.0/24
    remote 10.2.0.0/16
dc1-dc2: #13, ESTABLISHED, IKEv2, 7081a2b3c4d5e6f0_i 1122334455667788_r*
  local  'C=CH, O=Example Corp, CN=dc1.example.com' @ 172.16.0.18[4500]
  remote 'C=CH, O=Example Corp, CN=dc2.example.com' @ 172.16.0.2[4500]
  AES_GCM_16-256/PRF_HMAC_SHA2_256/ECP_256
  established 2400s ago, rekeying in 11730s
dc1-dc2: #15, CONNECTING, IKEv2, 00a1d9c48c3b1e3f_i* 0000000000000000_r
  local  '%any' @ 172.16.0.18[500]
  remote '%any' @ 172.16.0.2[500]
  queued:  CHILD_CREATE
  active:  IKE_VENDOR IKE_INIT IKE_NATD IKE_CERT_PRE IKE_AUTH IKE_CERT_POST IKE_CONFIG
v6-site: #3, ESTABLISHED, IKEv2, 1a2b3c4d5e6f7081_i 92a3b4c5d6e7f809_r*
  local  '2001:db8::1' @ 2001:db8::1[500]
  remote '2001:db8:0:2::1' @ 2001:db8:0:2::1[500]
  established 18000s ago, reauth in 3600s
  v6-site: #31, reqid 9, INSTALLED, TRANSPORT, AH:HMAC_SHA2_256_128
    installed 100s ago
    in  c0ffee01/4a1b,    0 bytes,     0 packets
    out c0ffee02/4a1c,    0 bytes,     0 packets
    local  fd00:1::/64 fd00:1:0:1::/64
    remote fd00:2::/64
rw: #5, ESTABLISHED, IKEv1, 0011223344556677_i 8899aabbccddeeff_r*
  local  'vpn.example.com' @ 203.0.113.10[4500]
  remote '192.0.2.77' @ 192.0.2.77[4500] XAuth: 'alice' [10.9.0.1]
  AES_CBC-128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024
  established 5s ago, reauth in 10200s
  rw: #8, reqid 4, INSTALLED, TUNNEL-in-UDP, ESP:AES_CBC-128/HMAC_SHA1_96
    installed 5s ago, rekeying in 3000s, expires in 3600s
    in  deadbeef,      0 bytes,     0 packets
    out 12345678,      0 bytes,     0 packets
    local  0.0.0.0/0
    remote 10.9.0.1/32
`;

t.test(
  'several IKE_SAs of one conn keep their own CHILD_SAs, REKEYED beside INSTALLED',
  async (t) => {
    const sas = parseSwanctlListSas(LIST_SAS_SAMPLE);
    t.strictSame(
      sas.map((sa) => [
        sa.conn,
        sa.uniqueId,
        sa.state,
        sa.isInitiator,
        sa.children.map((child) => [child.uniqueId, child.state]),
      ]),
      [
        [
          'dc1-dc2',
          14,
          'ESTABLISHED',
          true,
          [
            [40, 'INSTALLED'],
            [38, 'REKEYED'],
          ],
        ],
        ['dc1-dc2', 13, 'ESTABLISHED', false, []],
        ['dc1-dc2', 15, 'CONNECTING', true, []],
        ['v6-site', 3, 'ESTABLISHED', false, [[31, 'INSTALLED']]],
        ['rw', 5, 'ESTABLISHED', false, [[8, 'INSTALLED']]],
      ],
    );
  },
);

t.test(
  'the newest IKE_SA of dc1-dc2 reads exactly, DN identities and marks included',
  async (t) => {
    const [newest] = parseSwanctlListSas(LIST_SAS_SAMPLE);
    t.strictSame(newest, {
      conn: 'dc1-dc2',
      uniqueId: 14,
      state: 'ESTABLISHED',
      ikeVersion: 2,
      initiatorSpi: '3f00a1d9c48c3b1e',
      responderSpi: '9c0d1e2f5e6f7a8b',
      isInitiator: true,
      localId: 'C=CH, O=Example Corp, CN=dc1.example.com',
      localAddress: '172.16.0.18',
      localPort: 4500,
      remoteId: 'C=CH, O=Example Corp, CN=dc2.example.com',
      remoteAddress: '172.16.0.2',
      remotePort: 4500,
      establishedSecondsAgo: 720,
      rekeyInSeconds: 13410,
      children: [
        {
          conn: 'dc1-dc2',
          uniqueId: 40,
          state: 'INSTALLED',
          mode: 'TUNNEL',
          reqid: 1,
          protocol: 'ESP',
          udpEncap: false,
          localTs: ['10.1.0.0/16', '10.5.0.0/24'],
          remoteTs: ['10.2.0.0/16'],
          installedSecondsAgo: 60,
          rekeyInSeconds: 3180,
          expiresInSeconds: 3540,
          spiIn: 'aaaa0001',
          bytesIn: 10240,
          packetsIn: 80,
          lastInSecondsAgo: 1,
          spiOut: 'bbbb0001',
          bytesOut: 9216,
          packetsOut: 72,
          lastOutSecondsAgo: 1,
        },
        {
          conn: 'dc1-dc2',
          uniqueId: 38,
          state: 'REKEYED',
          mode: 'TUNNEL',
          reqid: 1,
          protocol: 'ESP',
          udpEncap: false,
          localTs: ['10.1.0.0/16', '10.5.0.0/24'],
          remoteTs: ['10.2.0.0/16'],
          installedSecondsAgo: 3660,
          expiresInSeconds: 240,
          spiIn: 'aaaa0000',
          bytesIn: 99999,
          packetsIn: 800,
          lastInSecondsAgo: 61,
          spiOut: 'bbbb0000',
          bytesOut: 123456,
          packetsOut: 812,
          lastOutSecondsAgo: 61,
        },
      ],
    });
  },
);

t.test('IPv6 endpoints, AH transport mode and IPComp CPIs read correctly', async (t) => {
  const v6 = parseSwanctlListSas(LIST_SAS_SAMPLE)[3];
  t.equal(v6?.localAddress, '2001:db8::1');
  t.equal(v6?.remoteAddress, '2001:db8:0:2::1');
  t.equal(v6?.remotePort, 500);
  t.equal(v6?.reauthInSeconds, 3600);
  t.strictSame(v6?.children[0], {
    conn: 'v6-site',
    uniqueId: 31,
    state: 'INSTALLED',
    mode: 'TRANSPORT',
    reqid: 9,
    protocol: 'AH',
    udpEncap: false,
    localTs: ['fd00:1::/64', 'fd00:1:0:1::/64'],
    remoteTs: ['fd00:2::/64'],
    installedSecondsAgo: 100,
    spiIn: 'c0ffee01',
    bytesIn: 0,
    packetsIn: 0,
    spiOut: 'c0ffee02',
    bytesOut: 0,
    packetsOut: 0,
  });
});

t.test(
  'an IKEv1 XAuth road warrior keeps its peer address apart from its virtual IP',
  async (t) => {
    const rw = parseSwanctlListSas(LIST_SAS_SAMPLE)[4];
    t.equal(rw?.ikeVersion, 1);
    t.equal(rw?.remoteId, '192.0.2.77');
    t.equal(rw?.remoteAddress, '192.0.2.77');
    t.equal(rw?.remotePort, 4500);
    t.equal(rw?.children[0]?.udpEncap, true);
    t.strictSame(rw?.children[0]?.remoteTs, ['10.9.0.1/32']);
  },
);

const LIST_CONNS_SAMPLE = `dc1-dc2: IKEv2, no reauthentication, rekeying every 14400s, dpd delay 30s
  local:  172.16.0.18
  local:  2001:db8::1
  remote: 172.16.0.2
  local public key authentication:
    id: C=CH, O=Example Corp, CN=dc1.example.com
    certs: C=CH, O=Example Corp, CN=dc1.example.com
  remote public key authentication:
    id: C=CH, O=Example Corp, CN=dc2.example.com
  dc1-dc2: TUNNEL, rekeying every 3600s, dpd action is restart
    local:  10.1.0.0/16 10.5.0.0/24
    remote: 10.2.0.0/16
  dc1-dc2-mgmt: TRANSPORT, rekeying every 3600s or 1000000000 bytes, dpd action is restart
    local:  172.16.0.18/32[tcp/22]
    remote: 172.16.0.2/32
rw: IKEv1, reauthentication every 10800s
  local:  %any
  remote: %any
  local pre-shared key authentication:
    id: @vpn.example.com
  remote pre-shared key authentication:
  remote XAuth authentication:
    id: alice
    xauth_id: alice
  rw: TUNNEL, rekeying every 3600s
    local:  0.0.0.0/0
    remote: dynamic
bypass: IKEv1/2, no reauthentication, rekeying every 14400s
  local:  %any
  remote: %any
  local unspecified authentication:
  remote unspecified authentication:
  bypass-lan: PASS, no rekeying
    local:  10.1.0.0/16
    remote: 10.1.0.0/16
`;

t.test('swanctl conns: several addresses, child configs, first auth round only', async (t) => {
  t.strictSame(parseSwanctlListConns(LIST_CONNS_SAMPLE), [
    {
      name: 'dc1-dc2',
      localAddress: '172.16.0.18,2001:db8::1',
      remoteAddress: '172.16.0.2',
      ikeVersion: 'IKEv2',
      localAuth: 'public key',
      localId: 'C=CH, O=Example Corp, CN=dc1.example.com',
      remoteAuth: 'public key',
      remoteId: 'C=CH, O=Example Corp, CN=dc2.example.com',
      children: [
        {
          name: 'dc1-dc2',
          localTs: ['10.1.0.0/16', '10.5.0.0/24'],
          remoteTs: ['10.2.0.0/16'],
          mode: 'TUNNEL',
        },
        {
          name: 'dc1-dc2-mgmt',
          localTs: ['172.16.0.18/32[tcp/22]'],
          remoteTs: ['172.16.0.2/32'],
          mode: 'TRANSPORT',
        },
      ],
    },
    {
      name: 'rw',
      localAddress: '%any',
      remoteAddress: '%any',
      ikeVersion: 'IKEv1',
      localAuth: 'pre-shared key',
      localId: '@vpn.example.com',
      remoteAuth: 'pre-shared key',
      children: [{ name: 'rw', localTs: ['0.0.0.0/0'], remoteTs: ['dynamic'], mode: 'TUNNEL' }],
    },
    {
      name: 'bypass',
      localAddress: '%any',
      remoteAddress: '%any',
      ikeVersion: 'IKEv1/2',
      localAuth: 'unspecified',
      remoteAuth: 'unspecified',
      children: [
        { name: 'bypass-lan', localTs: ['10.1.0.0/16'], remoteTs: ['10.1.0.0/16'], mode: 'PASS' },
      ],
    },
  ]);
});

t.test('swanctl policies without a conn part (shunts) keep the whole name as child', async (t) => {
  t.strictSame(
    parseSwanctlListPols('bypass-lan, PASS\n  local:  10.1.0.0/16\n  remote: 10.1.0.0/16\n'),
    [{ child: 'bypass-lan', mode: 'PASS', localTs: ['10.1.0.0/16'], remoteTs: ['10.1.0.0/16'] }],
  );
});
