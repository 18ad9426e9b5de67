import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parseStrokeStatus } from '../../agent/observe/parse/stroke.js';
import type {
  ChildSa,
  IkeSa,
  LoadedConn,
  StrongswanStatus,
} from '../../agent/observe/parse/types.js';

const FIXTURES = path.resolve(import.meta.dirname, '..', 'fixtures', 'strongswan-5.9.8-libipsec');

function fixture(name: string): string {
  return readFileSync(path.join(FIXTURES, name), 'utf8');
}

/** The plugin list every statusall capture of the lab prints (strongSwan 5.9.8, Debian 12). */
const PLUGINS = (
  'charon test-vectors ldap pkcs11 aesni aes rc2 sha2 sha1 md5 mgf1 rdrand random nonce x509 ' +
  'revocation constraints pubkey pkcs1 pkcs7 pkcs12 pgp dnskey sshkey pem openssl gcrypt pkcs8 ' +
  'fips-prf gmp curve25519 agent chapoly xcbc cmac hmac kdf ctr ccm gcm drbg curl attr ' +
  'kernel-libipsec kernel-netlink resolve socket-default connmark forecast farp stroke vici ' +
  'updown eap-identity eap-aka eap-md5 eap-gtc eap-mschapv2 eap-radius eap-tls eap-ttls eap-tnc ' +
  'xauth-generic xauth-eap xauth-pam tnc-tnccs dhcp lookip error-notify certexpire led ' +
  'addrblock unity counters'
).split(' ');

/** "a-to-b" as `ipsec statusall` lists it under "Connections:" in every capture. */
const LOADED_A_TO_B: LoadedConn = {
  name: 'a-to-b',
  localAddress: '172.16.0.18',
  remoteAddress: '172.16.0.2',
  ikeVersion: 'IKEv2',
  localAuth: 'pre-shared key',
  localId: '172.16.0.18',
  remoteAuth: 'pre-shared key',
  remoteId: '172.16.0.2',
  children: [
    { name: 'a-to-b', localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'], mode: 'TUNNEL' },
  ],
};

function status(fields: Partial<StrongswanStatus>): StrongswanStatus {
  return {
    plugins: [],
    listeningAddresses: [],
    connections: [],
    routed: [],
    ikeSas: [],
    ...fields,
  };
}

function statusAll(fields: Partial<StrongswanStatus>): StrongswanStatus {
  return status({
    version: '5.9.8',
    uptimeSeconds: 180,
    plugins: PLUGINS,
    listeningAddresses: ['10.1.0.1', '172.16.0.18'],
    connections: [LOADED_A_TO_B],
    ...fields,
  });
}

/** An IKE_SA of a-to-b between the lab's two sites, identified by their addresses. */
function ikeSa(fields: Partial<IkeSa> & Pick<IkeSa, 'uniqueId' | 'state'>): IkeSa {
  return {
    conn: 'a-to-b',
    localAddress: '172.16.0.18',
    localId: '172.16.0.18',
    remoteAddress: '172.16.0.2',
    remoteId: '172.16.0.2',
    children: [],
    ...fields,
  };
}

/** A half-open IKE_SA: the peer's identity is still unknown. */
function connecting(uniqueId: number, fields: Partial<IkeSa> = {}): IkeSa {
  return ikeSa({ uniqueId, state: 'CONNECTING', localId: '%any', remoteId: '%any', ...fields });
}

/** An INSTALLED CHILD_SA of a-to-b; kernel-libipsec always shows ESP in UDP. */
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

/** Exactly what each capture must parse to; every stroke capture in the folder is listed. */
const EXPECTED: Record<string, StrongswanStatus> = {
  'stroke-status-down.txt': status({ counts: { up: 0, connecting: 0 } }),
  'stroke-status-connecting.txt': status({
    counts: { up: 0, connecting: 1 },
    ikeSas: [connecting(2)],
  }),
  'stroke-status-established-natt.txt': status({
    counts: { up: 1, connecting: 0 },
    ikeSas: [
      ikeSa({
        uniqueId: 1,
        state: 'ESTABLISHED',
        establishedSecondsAgo: 180,
        children: [installed({ uniqueId: 1, spiIn: 'f7ec1834', spiOut: 'dd9339c1' })],
      }),
    ],
  }),
  'stroke-status-routed-idle.txt': status({
    counts: { up: 1, connecting: 1 },
    routed: [
      {
        conn: 'a-to-b',
        uniqueId: 3,
        state: 'ROUTED',
        mode: 'TUNNEL',
        reqid: 1,
        udpEncap: false,
        localTs: ['10.1.0.0/16'],
        remoteTs: ['10.2.0.0/16'],
      },
    ],
    ikeSas: [
      ikeSa({
        uniqueId: 3,
        state: 'ESTABLISHED',
        establishedSecondsAgo: 3,
        children: [installed({ uniqueId: 2, spiIn: '9f82de8a', spiOut: '3c11802f' })],
      }),
      connecting(2),
    ],
  }),
  'stroke-statusall-down.txt': statusAll({ counts: { up: 0, connecting: 0 } }),
  'stroke-statusall-connecting.txt': statusAll({
    counts: { up: 0, connecting: 1 },
    ikeSas: [
      connecting(2, {
        ikeVersion: 2,
        initiatorSpi: '28e777c23f00229a',
        responderSpi: '0000000000000000',
        isInitiator: true,
      }),
    ],
  }),
  'stroke-statusall-established.txt': statusAll({
    counts: { up: 1, connecting: 0 },
    ikeSas: [
      ikeSa({
        uniqueId: 1,
        state: 'ESTABLISHED',
        establishedSecondsAgo: 180,
        ikeVersion: 2,
        initiatorSpi: 'ec8c014e33ce8051',
        responderSpi: 'ebc560b1753a30d1',
        isInitiator: true,
        rekeyInSeconds: 7200,
        children: [
          installed({
            uniqueId: 1,
            spiIn: 'f7ec1834',
            spiOut: 'dd9339c1',
            bytesIn: 336,
            packetsIn: 4,
            lastInSecondsAgo: 68,
            bytesOut: 336,
            packetsOut: 4,
            lastOutSecondsAgo: 68,
            rekeyInSeconds: 2340,
          }),
        ],
      }),
    ],
  }),
  'stroke-up-peer-unreachable.txt': status({}),
  'lab-stroke-status-after-down.txt': status({ counts: { up: 0, connecting: 0 } }),
  'lab-stroke-status-established.txt': status({
    counts: { up: 1, connecting: 0 },
    ikeSas: [
      ikeSa({
        uniqueId: 1,
        state: 'ESTABLISHED',
        establishedSecondsAgo: 9,
        children: [installed({ uniqueId: 1, spiIn: '18635350', spiOut: '3f64f3f7' })],
      }),
    ],
  }),
  'lab-stroke-status-conn-removed-child-kept.txt': status({
    counts: { up: 1, connecting: 0 },
    ikeSas: [
      ikeSa({
        uniqueId: 7,
        state: 'ESTABLISHED',
        establishedSecondsAgo: 4,
        children: [
          installed({ uniqueId: 9, spiIn: '0f0c0741', spiOut: 'd6298709' }),
          installed({
            conn: 'a-to-b2',
            uniqueId: 10,
            reqid: 2,
            spiIn: '31c0fe31',
            spiOut: 'c81c18e3',
            localTs: ['10.1.1.0/24'],
            remoteTs: ['10.2.1.0/24'],
          }),
        ],
      }),
    ],
  }),
  'lab-stroke-statusall-established.txt': statusAll({
    uptimeSeconds: 9,
    listeningAddresses: ['172.16.0.18', '10.1.0.1'],
    counts: { up: 1, connecting: 0 },
    ikeSas: [
      ikeSa({
        uniqueId: 1,
        state: 'ESTABLISHED',
        establishedSecondsAgo: 9,
        ikeVersion: 2,
        initiatorSpi: '2e8db53b80c4dd6b',
        responderSpi: '53bfe432708db62d',
        isInitiator: true,
        reauthInSeconds: 7200,
        children: [
          installed({
            uniqueId: 1,
            spiIn: '18635350',
            spiOut: '3f64f3f7',
            bytesIn: 252,
            packetsIn: 3,
            lastInSecondsAgo: 8,
            bytesOut: 252,
            packetsOut: 3,
            lastOutSecondsAgo: 8,
            rekeyInSeconds: 2520,
          }),
        ],
      }),
    ],
  }),
  'lab-stroke-statusall-conn-removed-child-kept.txt': statusAll({
    uptimeSeconds: 83,
    listeningAddresses: ['172.16.0.18', '10.1.0.1', '10.1.1.1'],
    counts: { up: 1, connecting: 0 },
    ikeSas: [
      ikeSa({
        uniqueId: 7,
        state: 'ESTABLISHED',
        establishedSecondsAgo: 4,
        ikeVersion: 2,
        initiatorSpi: '35c33500d895afe4',
        responderSpi: '49b07664f5b7ab02',
        isInitiator: true,
        reauthInSeconds: 7200,
        children: [
          installed({
            uniqueId: 9,
            spiIn: '0f0c0741',
            spiOut: 'd6298709',
            bytesIn: 0,
            bytesOut: 0,
            rekeyInSeconds: 2580,
          }),
          installed({
            conn: 'a-to-b2',
            uniqueId: 10,
            reqid: 2,
            spiIn: '31c0fe31',
            spiOut: 'c81c18e3',
            localTs: ['10.1.1.0/24'],
            remoteTs: ['10.2.1.0/24'],
            bytesIn: 0,
            bytesOut: 0,
            rekeyInSeconds: 2760,
          }),
        ],
      }),
    ],
  }),
  // Two conns with equal IKE settings: strongSwan lists the second as a child of the first and
  // runs both CHILD_SAs under one IKE_SA.
  'lab-stroke-statusall-merged-conns.txt': statusAll({
    uptimeSeconds: 0,
    listeningAddresses: ['172.16.0.18', '10.1.0.1', '10.11.0.1'],
    counts: { up: 1, connecting: 0 },
    connections: [
      {
        ...LOADED_A_TO_B,
        children: [
          ...LOADED_A_TO_B.children,
          { name: 'a-to-b-2', localTs: ['10.11.0.0/16'], remoteTs: ['10.12.0.0/16'], mode: 'TUNNEL' },
        ],
      },
    ],
    ikeSas: [
      ikeSa({
        uniqueId: 1,
        state: 'ESTABLISHED',
        establishedSecondsAgo: 0,
        ikeVersion: 2,
        initiatorSpi: '70afe24976406ab2',
        responderSpi: 'fd2ada410cf50238',
        isInitiator: true,
        rekeyInSeconds: 7200,
        children: [
          installed({
            uniqueId: 1,
            spiIn: '2a1c2a64',
            spiOut: '937e85c7',
            bytesIn: 84,
            packetsIn: 1,
            lastInSecondsAgo: 0,
            bytesOut: 84,
            packetsOut: 1,
            lastOutSecondsAgo: 0,
            rekeyInSeconds: 2700,
          }),
          installed({
            conn: 'a-to-b-2',
            uniqueId: 2,
            reqid: 2,
            spiIn: '8c8c4e3e',
            spiOut: 'cc27f3d1',
            localTs: ['10.11.0.0/16'],
            remoteTs: ['10.12.0.0/16'],
            bytesIn: 0,
            bytesOut: 0,
            rekeyInSeconds: 2520,
          }),
        ],
      }),
    ],
  }),
  // The log of `ipsec up`, not a status: nothing in it may pass for an SA.
  'lab-stroke-up-established.txt': status({}),
};

t.test('every stroke capture in the fixture folder has an exact expectation here', async (t) => {
  const captures = readdirSync(FIXTURES).filter((name) => /^(lab-)?stroke-.*\.txt$/.test(name));
  t.strictSame(captures.sort(), Object.keys(EXPECTED).sort());
});

for (const [name, expected] of Object.entries(EXPECTED)) {
  t.test(`${name} parses to exactly the SAs, counters and config it shows`, async (t) => {
    t.strictSame(parseStrokeStatus(fixture(name)), expected);
  });
}

t.test('a CHILD_SA belongs to the IKE_SA printed above it, even under another name', async (t) => {
  const parsed = parseStrokeStatus(fixture('lab-stroke-status-conn-removed-child-kept.txt'));
  t.strictSame(
    parsed.ikeSas.map((sa) => [sa.conn, sa.children.map((child) => child.conn)]),
    [['a-to-b', ['a-to-b', 'a-to-b2']]],
  );
});

t.test('routed trap entries stay apart from the CHILD_SAs of IKE_SAs', async (t) => {
  const parsed = parseStrokeStatus(fixture('stroke-status-routed-idle.txt'));
  t.strictSame(
    parsed.routed.map((child) => [child.uniqueId, child.state]),
    [[3, 'ROUTED']],
  );
  t.strictSame(
    parsed.ikeSas.map((sa) => [sa.uniqueId, sa.state, sa.children.map((child) => child.uniqueId)]),
    [
      [3, 'ESTABLISHED', [2]],
      [2, 'CONNECTING', []],
    ],
  );
});

t.test('Windows line endings parse like Unix ones', async (t) => {
  const unix = fixture('stroke-statusall-established.txt');
  t.strictSame(parseStrokeStatus(unix.replaceAll('\n', '\r\n')), parseStrokeStatus(unix));
});
