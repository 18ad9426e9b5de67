import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { XfrmPolicy, XfrmState } from '../../agent/observe/parse/types.js';
import { parseXfrmPolicy, parseXfrmState } from '../../agent/observe/parse/xfrm.js';

const FIXTURES = path.resolve(import.meta.dirname, '..', 'fixtures');
const IPROUTE2 = path.join(FIXTURES, 'iproute2-6.1.0-netns');
const LAB = path.join(FIXTURES, 'strongswan-5.9.8-libipsec');

function read(file: string): string {
  return readFileSync(file, 'utf8');
}

function esp(fields: Partial<XfrmPolicy['tmpl'][number]>) {
  return { proto: 'esp', mode: 'tunnel', ...fields };
}

/** The policies of the capture, in the kernel's order; the four socket policies are left out. */
const CAPTURED_POLICIES: XfrmPolicy[] = [
  {
    src: '10.8.0.0/16',
    dst: '10.1.0.0/16',
    dir: 'in',
    priority: 390000,
    action: 'allow',
    tmpl: [esp({ src: '172.16.0.8', dst: '172.16.0.18', reqid: 5 })],
  },
  {
    src: '10.1.0.0/16',
    dst: '10.9.0.0/16',
    dir: 'out',
    priority: 400000,
    action: 'block',
    tmpl: [],
  },
  {
    src: '192.0.2.10/32',
    dst: '192.0.2.20/32',
    dir: 'out',
    priority: 2819,
    action: 'allow',
    mark: '0x2a/0xff',
    tmpl: [{ src: '0.0.0.0', dst: '0.0.0.0', proto: 'esp', reqid: 4, mode: 'transport' }],
  },
  {
    src: 'fd00:2::/64',
    dst: 'fd00:1::/64',
    dir: 'in',
    priority: 367231,
    action: 'allow',
    tmpl: [esp({ src: '2001:db8::2', dst: '2001:db8::1', reqid: 3 })],
  },
  {
    src: 'fd00:1::/64',
    dst: 'fd00:2::/64',
    dir: 'out',
    priority: 367231,
    action: 'allow',
    tmpl: [esp({ src: '2001:db8::1', dst: '2001:db8::2', reqid: 3 })],
  },
  {
    src: '10.1.0.0/16',
    dst: '10.5.0.0/24',
    dir: 'out',
    priority: 375415,
    action: 'allow',
    tmpl: [esp({ src: '172.16.0.18', dst: '172.16.0.2', reqid: 2 })],
  },
  {
    src: '10.2.0.0/16',
    dst: '10.1.0.0/16',
    dir: 'fwd',
    priority: 375423,
    action: 'allow',
    tmpl: [esp({ src: '172.16.0.2', dst: '172.16.0.18', reqid: 1 })],
  },
  {
    src: '10.2.0.0/16',
    dst: '10.1.0.0/16',
    dir: 'in',
    priority: 375423,
    action: 'allow',
    tmpl: [esp({ src: '172.16.0.2', dst: '172.16.0.18', reqid: 1 })],
  },
  {
    src: '10.1.0.0/16',
    dst: '10.2.0.0/16',
    dir: 'out',
    priority: 375423,
    action: 'allow',
    tmpl: [esp({ src: '172.16.0.18', dst: '172.16.0.2', reqid: 1 })],
  },
];

t.test('every xfrm capture has an exact expectation here', async (t) => {
  t.strictSame(readdirSync(IPROUTE2).sort(), [
    'README.md',
    'ip-o-xfrm-policy.txt',
    'ip-s-xfrm-policy.txt',
    'ip-xfrm-policy.txt',
  ]);
  t.strictSame(
    readdirSync(LAB)
      .filter((name) => name.startsWith('lab-xfrm-'))
      .sort(),
    ['lab-xfrm-policy-established.txt', 'lab-xfrm-state-established.txt'],
  );
});

for (const capture of ['ip-xfrm-policy.txt', 'ip-s-xfrm-policy.txt', 'ip-o-xfrm-policy.txt']) {
  t.test(
    `${capture} parses to exactly the tunnel policies, socket policies left out`,
    async (t) => {
      t.strictSame(parseXfrmPolicy(read(path.join(IPROUTE2, capture))), CAPTURED_POLICIES);
    },
  );
}

t.test('the captures hold socket policies, so leaving them out is a real decision', async (t) => {
  const text = read(path.join(IPROUTE2, 'ip-xfrm-policy.txt'));
  t.equal(text.match(/^\tsocket (in|out) /gm)?.length, 4);
  t.equal(parseXfrmPolicy(text).length, text.match(/^src /gm)!.length - 4);
});

t.test('the lab captures under kernel-libipsec are empty and parse to nothing', async (t) => {
  t.strictSame(parseXfrmState(read(path.join(LAB, 'lab-xfrm-state-established.txt'))), []);
  t.strictSame(parseXfrmPolicy(read(path.join(LAB, 'lab-xfrm-policy-established.txt'))), []);
});

t.test('state output fed to the policy parser, and the reverse, gives nothing', async (t) => {
  t.strictSame(parseXfrmPolicy(STATES), []);
  t.strictSame(parseXfrmPolicy(STATES_WITH_STATS), []);
  t.strictSame(
    parseXfrmPolicy(STATES.replaceAll('\treplay-window', '\tdir out\n\treplay-window')),
    [],
  );
  for (const capture of ['ip-xfrm-policy.txt', 'ip-s-xfrm-policy.txt', 'ip-o-xfrm-policy.txt']) {
    t.strictSame(parseXfrmState(read(path.join(IPROUTE2, capture))), [], capture);
  }
});

// Hand-written in iproute2's ip/ipxfrm.c layout (this kernel cannot hold ESP states). The
// keys are made up, long and distinct so that any leak is visible.
const AUTH_KEY_OUT = '5f2c7b3e9a1d4c6f8e0b2a4d6c8e0f1a3b5d7f9e1c3a5b7d9f1e3c5a7b9d1f3e';
const ENC_KEY_OUT = '0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0';
const AEAD_KEY_IN = 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9001020304';
const AUTH_KEY_V6 = '00112233445566778899aabbccddeeff';

const STATES = `src 172.16.0.18 dst 172.16.0.2
\tproto esp spi 0xdd9339c1 reqid 1 mode tunnel
\treplay-window 0 flag af-unspec
\tauth-trunc hmac(sha256) 0x${AUTH_KEY_OUT} 128
\tenc cbc(aes) 0x${ENC_KEY_OUT}
\tencap type espinudp sport 4500 dport 4500 addr 0.0.0.0
\tanti-replay context: seq 0x0, oseq 0x4, bitmap 0x00000000
\tsel src 10.1.0.0/16 dst 10.2.0.0/16 
src 172.16.0.2 dst 172.16.0.18
\tproto esp spi 0xf7ec1834 reqid 1 mode tunnel
\treplay-window 32 flag af-unspec
\taead rfc4106(gcm(aes)) 0x${AEAD_KEY_IN} 128
\tencap type espinudp sport 4500 dport 4500 addr 0.0.0.0
\tanti-replay context: seq 0x4, oseq 0x0, bitmap 0x0000000f
\tsel src 10.2.0.0/16 dst 10.1.0.0/16 
src 2001:db8::1 dst 2001:db8::2
\tproto ah spi 0x0000beef reqid 9 mode transport
\treplay-window 32 
\tmark 0x2a/0xff 
\tauth-trunc hmac(md5) 0x${AUTH_KEY_V6} 96
\tsel src 2001:db8::1/128 dst 2001:db8::2/128 proto udp dport 1701 
src 2001:db8::1 dst 2001:db8::2
\tproto comp spi 0x00004a1b reqid 9 mode transport
\treplay-window 0 
\tcomp deflate 0x
`;

const EXPECTED_STATES: XfrmState[] = [
  {
    src: '172.16.0.18',
    dst: '172.16.0.2',
    proto: 'esp',
    spi: 'dd9339c1',
    reqid: 1,
    mode: 'tunnel',
    encap: { type: 'espinudp', sport: 4500, dport: 4500 },
    selector: { src: '10.1.0.0/16', dst: '10.2.0.0/16' },
  },
  {
    src: '172.16.0.2',
    dst: '172.16.0.18',
    proto: 'esp',
    spi: 'f7ec1834',
    reqid: 1,
    mode: 'tunnel',
    encap: { type: 'espinudp', sport: 4500, dport: 4500 },
    selector: { src: '10.2.0.0/16', dst: '10.1.0.0/16' },
  },
  {
    src: '2001:db8::1',
    dst: '2001:db8::2',
    proto: 'ah',
    spi: '0000beef',
    reqid: 9,
    mode: 'transport',
    mark: '0x2a/0xff',
    selector: { src: '2001:db8::1/128', dst: '2001:db8::2/128' },
  },
  {
    src: '2001:db8::1',
    dst: '2001:db8::2',
    proto: 'comp',
    spi: '00004a1b',
    reqid: 9,
    mode: 'transport',
  },
];

/** The same two ESP states as `ip -s xfrm state` prints them, with lifetimes and counters. */
const STATES_WITH_STATS = `src 172.16.0.18 dst 172.16.0.2
\tproto esp spi 0xdd9339c1(3717413313) reqid 1(0x00000001) mode tunnel
\treplay-window 0 seq 0x00000000 flag af-unspec (0x00100000)
\tauth-trunc hmac(sha256) 0x${AUTH_KEY_OUT} (256 bits) 128
\tenc cbc(aes) 0x${ENC_KEY_OUT} (256 bits)
\tencap type espinudp sport 4500 dport 4500 addr 0.0.0.0
\tanti-replay context: seq 0x0, oseq 0x4, bitmap 0x00000000
\tsel src 10.1.0.0/16 dst 10.2.0.0/16 uid 0
\tlifetime config:
\t  limit: soft (INF)(bytes), hard (INF)(bytes)
\t  limit: soft (INF)(packets), hard (INF)(packets)
\t  expire add: soft 2944(sec), hard 3600(sec)
\t  expire use: soft 0(sec), hard 0(sec)
\tlifetime current:
\t  336(bytes), 4(packets)
\t  add 2026-12-03 18:29:50 use 2026-12-03 18:31:02
\tstats:
\t  replay-window 0 replay 0 failed 0
src 172.16.0.2 dst 172.16.0.18
\tproto esp spi 0xf7ec1834(4159444020) reqid 1(0x00000001) mode tunnel
\treplay-window 32 seq 0x00000000 flag af-unspec (0x00100000)
\taead rfc4106(gcm(aes)) 0x${AEAD_KEY_IN} (288 bits) 128
\tencap type espinudp sport 4500 dport 4500 addr 0.0.0.0
\tanti-replay context: seq 0x4, oseq 0x0, bitmap 0x0000000f
\tsel src 10.2.0.0/16 dst 10.1.0.0/16 uid 0
\tlifetime config:
\t  limit: soft (INF)(bytes), hard (INF)(bytes)
\t  limit: soft (INF)(packets), hard (INF)(packets)
\t  expire add: soft 3111(sec), hard 3600(sec)
\t  expire use: soft 0(sec), hard 0(sec)
\tlifetime current:
\t  1048576(bytes), 1024(packets)
\t  add 2026-12-03 18:29:50 use 2026-12-03 18:31:02
\tstats:
\t  replay-window 0 replay 0 failed 0
`;

const ALL_KEYS = [AUTH_KEY_OUT, ENC_KEY_OUT, AEAD_KEY_IN, AUTH_KEY_V6];

/** Fails when any key, or any 16-digit run of one, shows up in the serialised result. */
function assertNoKeyMaterial(t: Test, result: unknown): void {
  const json = JSON.stringify(result);
  for (const key of ALL_KEYS) {
    for (let at = 0; at + 16 <= key.length; at += 8) {
      t.notOk(json.includes(key.slice(at, at + 16)), `no part of ${key.slice(0, 8)}... leaks`);
    }
  }
  t.notMatch(json, /[0-9a-f]{16}/i, 'no long hex run at all');
}

t.test(
  'ip xfrm state parses SPIs, reqids, modes, encapsulation, marks and selectors',
  async (t) => {
    t.strictSame(parseXfrmState(STATES), EXPECTED_STATES);
  },
);

t.test('ip xfrm state output with keys yields no key material anywhere', async (t) => {
  for (const text of [STATES, STATES_WITH_STATS]) {
    t.ok(
      ALL_KEYS.some((key) => text.includes(key)),
      'the sample does carry keys',
    );
    assertNoKeyMaterial(t, parseXfrmState(text));
  }
});

t.test('removing the key lines from the input changes nothing in the result', async (t) => {
  const withoutKeys = STATES.split('\n')
    .filter((line) => !/^\t(auth|auth-trunc|enc|aead|comp) /.test(line))
    .join('\n');
  t.not(withoutKeys, STATES);
  t.strictSame(parseXfrmState(withoutKeys), parseXfrmState(STATES));
});

t.test('a key line that lost its indentation or its keyword still leaks nothing', async (t) => {
  const mangled = STATES.replace(`\tenc cbc(aes) 0x${ENC_KEY_OUT}`, `enc cbc(aes) 0x${ENC_KEY_OUT}`)
    .replace(`\tauth-trunc hmac(sha256) 0x`, '\tsrc 0x')
    .replace(`\taead rfc4106(gcm(aes)) 0x`, '\tproto esp spi 0x');
  assertNoKeyMaterial(t, parseXfrmState(mangled));
  assertNoKeyMaterial(t, parseXfrmPolicy(mangled));
});

t.test(
  'ip -s xfrm state adds byte and packet counters and reads the -s number forms',
  async (t) => {
    t.strictSame(parseXfrmState(STATES_WITH_STATS), [
      { ...EXPECTED_STATES[0]!, bytes: 336, packets: 4 },
      { ...EXPECTED_STATES[1]!, bytes: 1_048_576, packets: 1024 },
    ]);
  },
);

t.test('ip -o xfrm state (one record a line, joined by backslashes) parses the same', async (t) => {
  const oneLine = STATES.replace(/\n(?=\t)/g, '\\');
  t.equal(oneLine.split('\n').filter(Boolean).length, 4, 'one line per record');
  t.strictSame(parseXfrmState(oneLine), EXPECTED_STATES);
  assertNoKeyMaterial(t, parseXfrmState(oneLine));
});

t.test('records without an SPI or with a malformed address are skipped, not guessed', async (t) => {
  t.strictSame(
    parseXfrmState(
      'src 172.16.0.18 dst 172.16.0.2\n\tproto esp reqid 1 mode tunnel\n' +
        'src not-an-address dst 172.16.0.2\n\tproto esp spi 0x00000001 reqid 1 mode tunnel\n' +
        'src 172.16.0.18 dst 172.16.0.2\n\tproto esp spi 0xnothex reqid 1 mode tunnel\n',
    ),
    [],
  );
});
