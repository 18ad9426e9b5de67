import fc from 'fast-check';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parseStrokeStatus } from '../../agent/observe/parse/stroke.js';
import { parseSwanctlListPols } from '../../agent/observe/parse/swanctl-pols.js';
import { parseSwanctlListConns, parseSwanctlListSas } from '../../agent/observe/parse/swanctl.js';
import type {
  ChildSa,
  IkeSa,
  LoadedChild,
  LoadedConn,
  StrongswanStatus,
  SwanctlPolicy,
  XfrmPolicy,
  XfrmState,
} from '../../agent/observe/parse/types.js';
import { parseXfrmPolicy, parseXfrmState } from '../../agent/observe/parse/xfrm.js';

// Properties every parser must keep for any input: it returns, it returns the declared shape
// with no stray keys or undefined values, and it runs in time linear in the input.
// TW_PROPERTY_RUNS=20 multiplies the number of generated inputs, to search harder locally.

const RUNS = Math.max(1, Number(process.env.TW_PROPERTY_RUNS ?? 1) || 1);

const FIXTURES = path.resolve(import.meta.dirname, '..', 'fixtures');
const CAPTURES = ['strongswan-5.9.8-libipsec', 'iproute2-6.1.0-netns'].flatMap((folder) =>
  readdirSync(path.join(FIXTURES, folder))
    .filter((name) => name.endsWith('.txt'))
    .map((name) => readFileSync(path.join(FIXTURES, folder, name), 'utf8')),
);

// ---------------------------------------------------------------------------------------------
// Shape checks: each returns the problems found, so a failure names the field.

type Problems = string[];

const IKE_SA_STATES = [
  'CREATED',
  'CONNECTING',
  'ESTABLISHED',
  'PASSIVE',
  'REKEYING',
  'REKEYED',
  'DELETING',
  'DESTROYING',
  'UNKNOWN',
];
const CHILD_SA_STATES = [
  'CREATED',
  'ROUTED',
  'INSTALLING',
  'INSTALLED',
  'UPDATING',
  'REKEYING',
  'REKEYED',
  'RETRYING',
  'DELETING',
  'DELETED',
  'DESTROYING',
  'UNKNOWN',
];

/** Checks the keys of `value` against `required` and `optional` and each value with `check`. */
function checkRecord(
  where: string,
  value: unknown,
  required: Record<string, (field: unknown) => boolean>,
  optional: Record<string, (field: unknown) => boolean>,
): Problems {
  if (typeof value !== 'object' || value === null) return [`${where} is not an object`];
  const problems: Problems = [];
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(required)) {
    if (!(key in record)) problems.push(`${where}.${key} is missing`);
  }
  for (const [key, field] of Object.entries(record)) {
    const check = required[key] ?? optional[key];
    if (check === undefined) problems.push(`${where}.${key} is not a declared field`);
    else if (field === undefined) problems.push(`${where}.${key} is present but undefined`);
    else if (!check(field))
      problems.push(`${where}.${key} = ${JSON.stringify(field)} is ill-typed`);
  }
  return problems;
}

const isText = (value: unknown) => typeof value === 'string' && !/[\r\n]/.test(value);
const isName = (value: unknown) => isText(value) && (value as string).length > 0;
const isWord = (value: unknown) => isName(value) && !/\s/.test(value as string);
const isCount = (value: unknown) => Number.isSafeInteger(value) && (value as number) >= 0;
const isHex = (value: unknown) => typeof value === 'string' && /^[0-9a-f]+$/.test(value);
const isBoolean = (value: unknown) => typeof value === 'boolean';
const isWords = (value: unknown) => Array.isArray(value) && value.every(isWord);
const oneOf = (allowed: unknown[]) => (value: unknown) => allowed.includes(value);
const listOf = (check: (where: string, value: unknown) => Problems, where: string) => {
  return (value: unknown) =>
    Array.isArray(value) && value.flatMap((v) => check(where, v)).length === 0;
};

function childSaProblems(where: string, value: unknown): Problems {
  return checkRecord(
    where,
    value,
    {
      conn: isWord,
      uniqueId: isCount,
      state: oneOf(CHILD_SA_STATES),
      udpEncap: isBoolean,
      localTs: isWords,
      remoteTs: isWords,
    },
    {
      mode: isWord,
      reqid: isCount,
      protocol: oneOf(['ESP', 'AH']),
      spiIn: isHex,
      spiOut: isHex,
      bytesIn: isCount,
      bytesOut: isCount,
      packetsIn: isCount,
      packetsOut: isCount,
      lastInSecondsAgo: isCount,
      lastOutSecondsAgo: isCount,
      installedSecondsAgo: isCount,
      rekeyInSeconds: isCount,
      expiresInSeconds: isCount,
    } satisfies Partial<Record<keyof ChildSa, unknown>>,
  );
}

function ikeSaProblems(where: string, value: unknown): Problems {
  const problems = checkRecord(
    where,
    value,
    { conn: isWord, uniqueId: isCount, state: oneOf(IKE_SA_STATES), children: Array.isArray },
    {
      ikeVersion: oneOf([1, 2]),
      establishedSecondsAgo: isCount,
      localAddress: isText,
      localId: isText,
      remoteAddress: isText,
      remoteId: isText,
      localPort: isCount,
      remotePort: isCount,
      initiatorSpi: isHex,
      responderSpi: isHex,
      isInitiator: isBoolean,
      rekeyInSeconds: isCount,
      reauthInSeconds: isCount,
    } satisfies Partial<Record<keyof IkeSa, unknown>>,
  );
  const children = (value as IkeSa | null)?.children;
  if (!Array.isArray(children)) return problems;
  return [
    ...problems,
    ...children.flatMap((child, i) => childSaProblems(`${where}.children[${i}]`, child)),
  ];
}

function loadedChildProblems(where: string, value: unknown): Problems {
  return checkRecord(where, value, { name: isWord, localTs: isWords, remoteTs: isWords }, {
    mode: isWord,
  } satisfies Partial<Record<keyof LoadedChild, unknown>>);
}

function loadedConnProblems(where: string, value: unknown): Problems {
  return checkRecord(
    where,
    value,
    {
      name: isWord,
      localAddress: isText,
      remoteAddress: isText,
      children: listOf(loadedChildProblems, `${where}.children`),
    },
    {
      ikeVersion: isWord,
      localAuth: isName,
      remoteAuth: isName,
      localId: isText,
      remoteId: isText,
    } satisfies Partial<Record<keyof LoadedConn, unknown>>,
  );
}

function statusProblems(value: StrongswanStatus): Problems {
  const problems = checkRecord(
    'status',
    value,
    {
      plugins: isWords,
      listeningAddresses: isWords,
      connections: Array.isArray,
      routed: Array.isArray,
      ikeSas: Array.isArray,
    },
    {
      version: isWord,
      uptimeSeconds: isCount,
      counts: (counts: unknown) =>
        checkRecord('counts', counts, { up: isCount, connecting: isCount }, {}).length === 0,
    },
  );
  return [
    ...problems,
    ...value.connections.flatMap((conn, i) => loadedConnProblems(`connections[${i}]`, conn)),
    ...value.routed.flatMap((child, i) => childSaProblems(`routed[${i}]`, child)),
    ...value.ikeSas.flatMap((sa, i) => ikeSaProblems(`ikeSas[${i}]`, sa)),
  ];
}

function policyProblems(where: string, value: unknown): Problems {
  return checkRecord(where, value, { child: isWord, localTs: isWords, remoteTs: isWords }, {
    conn: isWord,
    mode: isWord,
  } satisfies Partial<Record<keyof SwanctlPolicy, unknown>>);
}

const isAddress = (value: unknown) => isWord(value) && /^[0-9a-fA-F.:/]+$/.test(value as string);

function xfrmStateProblems(where: string, value: unknown): Problems {
  return checkRecord(
    where,
    value,
    {
      src: isAddress,
      dst: isAddress,
      proto: isWord,
      spi: (spi: unknown) => typeof spi === 'string' && /^[0-9a-f]{8}$/.test(spi),
    },
    {
      reqid: isCount,
      mode: isWord,
      mark: isWord,
      bytes: isCount,
      packets: isCount,
      encap: (encap: unknown) =>
        checkRecord('encap', encap, { type: isWord, sport: isCount, dport: isCount }, {}).length ===
        0,
      selector: (selector: unknown) =>
        checkRecord('selector', selector, { src: isAddress, dst: isAddress }, {}).length === 0,
    } satisfies Partial<Record<keyof XfrmState, unknown>>,
  );
}

function xfrmPolicyProblems(where: string, value: unknown): Problems {
  const template = (tmpl: unknown) =>
    checkRecord(
      'tmpl',
      tmpl,
      {},
      { src: isAddress, dst: isAddress, proto: isWord, reqid: isCount, mode: isWord },
    ).length === 0;
  return checkRecord(
    where,
    value,
    {
      src: isAddress,
      dst: isAddress,
      dir: oneOf(['in', 'out', 'fwd']),
      tmpl: (tmpls: unknown) => Array.isArray(tmpls) && tmpls.every(template),
    },
    { priority: isCount, action: isWord, mark: isWord } satisfies Partial<
      Record<keyof XfrmPolicy, unknown>
    >,
  );
}

/** Runs every parser on `text` and returns all shape problems; throws only if a parser does. */
function problemsOfAllParsers(text: string): Problems {
  return [
    ...statusProblems(parseStrokeStatus(text)),
    ...parseSwanctlListSas(text).flatMap((sa, i) => ikeSaProblems(`sas[${i}]`, sa)),
    ...parseSwanctlListConns(text).flatMap((conn, i) => loadedConnProblems(`conns[${i}]`, conn)),
    ...parseSwanctlListPols(text).flatMap((pol, i) => policyProblems(`pols[${i}]`, pol)),
    ...parseXfrmState(text).flatMap((state, i) => xfrmStateProblems(`states[${i}]`, state)),
    ...parseXfrmPolicy(text).flatMap((policy, i) => xfrmPolicyProblems(`policies[${i}]`, policy)),
  ];
}

t.test('the shape checks themselves reject ill-typed results', async (t) => {
  const good = parseStrokeStatus(
    readFileSync(
      path.join(FIXTURES, 'strongswan-5.9.8-libipsec', 'stroke-statusall-established.txt'),
      'utf8',
    ),
  );
  t.strictSame(statusProblems(good), []);
  const child = good.ikeSas[0]!.children[0]!;
  t.strictSame(
    statusProblems({
      ...good,
      ikeSas: [{ ...good.ikeSas[0]!, children: [{ ...child, reqid: -1 }] }],
    }),
    ['ikeSas[0].children[0].reqid = -1 is ill-typed'],
  );
  t.strictSame(
    statusProblems({ ...good, ikeSas: [{ ...good.ikeSas[0]!, state: 'UP' as never }] }),
    ['ikeSas[0].state = "UP" is ill-typed'],
  );
  t.strictSame(statusProblems({ ...good, version: undefined }), [
    'status.version is present but undefined',
  ]);
  t.strictSame(statusProblems({ ...good, extra: 1 } as never), [
    'status.extra is not a declared field',
  ]);
});

// ---------------------------------------------------------------------------------------------
// Inputs.

/** Fragments of real output: random joins of them reach far deeper into the parsers than noise. */
const FRAGMENTS = [
  'a-to-b',
  'dc1_dc2.v2',
  '[1]',
  '[4294967296]',
  '{1}',
  '{99999999999999999999}',
  ':',
  ': ',
  '  ',
  '   ',
  ' ',
  '\t',
  '\n',
  '\r\n',
  '\\',
  'ESTABLISHED',
  'CONNECTING',
  'INSTALLED',
  'REKEYED',
  'ROUTED',
  'TUNNEL',
  'TUNNEL-in-UDP',
  ', ',
  '...',
  '....',
  ' === ',
  'IKEv2 SPIs: ',
  'IKEv1',
  '_i*',
  '_i',
  '_r',
  '_o',
  'ESP in UDP SPIs: ',
  'AH SPIs: ',
  'reqid ',
  ' bytes_i',
  ' bytes_o',
  ' (4 pkts, 68s ago)',
  ' pkt',
  's ago',
  '3 minutes',
  ' ago',
  'rekeying in ',
  'expires in ',
  'reauthentication in ',
  'Security Associations (',
  ' up, ',
  ' connecting):',
  'Routed Connections:',
  'Connections:',
  'Listening IP addresses:',
  'Status of IKE charon daemon (strongSwan ',
  '  uptime: ',
  '  loaded plugins: ',
  'local:',
  'remote:',
  'child:',
  ' uses ',
  ' authentication',
  '[id]',
  'C=CH, O=Example Corp, CN=x',
  '@vpn.example.com',
  '%any',
  "'",
  "' @ ",
  '#1',
  '#',
  'installed ',
  'established ',
  '    in  ',
  '    out ',
  ' bytes, ',
  ' packets',
  'src ',
  'dst ',
  'proto esp ',
  'spi 0x',
  'spi 0xdd9339c1',
  'mode tunnel',
  'dir out ',
  'dir in',
  'socket in ',
  'priority ',
  'action block',
  'tmpl ',
  'sel ',
  'encap type espinudp sport 4500 dport 4500',
  'mark 0x2a/0xff',
  '336(bytes), 4(packets)',
  'enc cbc(aes) 0x',
  'auth-trunc ',
  'deadbeef',
  'f7ec1834',
  '10.1.0.0/16',
  'fd00:1::/64',
  '2001:db8::1',
  '172.16.0.2',
  '0',
  '1',
  '42',
  '9999999999999999999',
  '(',
  ')',
  ',',
  '/',
  'constructor',
  '__proto__',
  '\u2028',
  '\u0000',
  'é',
];

const fragmentText = fc
  .array(fc.constantFrom(...FRAGMENTS), { maxLength: 300 })
  .map((parts) => parts.join(''));

const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 2000 }),
  fc.string({ unit: 'binary-ascii', maxLength: 2000 }),
  fragmentText,
);

/** One edit to one line of a capture: `at` picks the line and the position in it. */
interface LineMutation {
  at: number;
  kind: 'drop-char' | 'insert' | 'duplicate' | 'truncate' | 'delete' | 'indent' | 'dedent';
  text: string;
}

const lineMutation: fc.Arbitrary<LineMutation> = fc.record({
  at: fc.nat(),
  kind: fc.constantFrom(
    'drop-char',
    'insert',
    'duplicate',
    'truncate',
    'delete',
    'indent',
    'dedent',
  ),
  text: fc.oneof(fc.constantFrom(...FRAGMENTS), fc.string({ unit: 'binary-ascii', maxLength: 8 })),
});

function mutate(lines: string[], mutation: LineMutation): string[] {
  if (lines.length === 0) return lines;
  const index = mutation.at % lines.length;
  const line = lines[index]!;
  const position = mutation.at % (line.length + 1);
  const edited = [...lines];
  switch (mutation.kind) {
    case 'drop-char':
      edited[index] = line.slice(0, position) + line.slice(position + 1);
      break;
    case 'insert':
      edited[index] = line.slice(0, position) + mutation.text + line.slice(position);
      break;
    case 'duplicate':
      edited.splice(index, 0, line);
      break;
    case 'truncate':
      edited[index] = line.slice(0, position);
      break;
    case 'delete':
      edited.splice(index, 1);
      break;
    case 'indent':
      edited[index] = `\t${line}`;
      break;
    case 'dedent':
      edited[index] = line.trimStart();
      break;
  }
  return edited;
}

const mutatedCapture = fc
  .tuple(fc.constantFrom(...CAPTURES), fc.array(lineMutation, { maxLength: 12 }))
  .map(([capture, mutations]) => mutations.reduce(mutate, capture.split('\n')).join('\n'));

const shuffledCapture = fc
  .constantFrom(...CAPTURES)
  .chain((capture) => fc.shuffledSubarray(capture.split('\n')))
  .map((lines) => lines.join('\n'));

// ---------------------------------------------------------------------------------------------
// Properties.

t.test('for arbitrary text every parser returns and its result is well-typed', async (t) => {
  fc.assert(
    fc.property(anyText, (text) => {
      const problems = problemsOfAllParsers(text);
      if (problems.length > 0) throw new Error(problems.join('\n'));
    }),
    { numRuns: 1000 * RUNS },
  );
  t.pass(`${1000 * RUNS} arbitrary inputs, each through all six parsers`);
});

t.test('for line shuffles of real captures every parser returns well-typed results', async (t) => {
  fc.assert(
    fc.property(shuffledCapture, (text) => {
      const problems = problemsOfAllParsers(text);
      if (problems.length > 0) throw new Error(problems.join('\n'));
    }),
    { numRuns: 500 * RUNS },
  );
  t.pass(`${500 * RUNS} shuffled captures`);
});

t.test('for mutated real captures every parser returns well-typed results', async (t) => {
  fc.assert(
    fc.property(mutatedCapture, (text) => {
      const problems = problemsOfAllParsers(text);
      if (problems.length > 0) throw new Error(problems.join('\n'));
    }),
    { numRuns: 1000 * RUNS },
  );
  t.pass(`${1000 * RUNS} mutated captures`);
});

/** Every string in `value`, however deep. */
function stringLeaves(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(stringLeaves);
  if (typeof value === 'object' && value !== null)
    return Object.values(value).flatMap(stringLeaves);
  return [];
}

t.test('stroke and swanctl SA parsers only report text that is in their input', async (t) => {
  fc.assert(
    fc.property(fc.oneof(mutatedCapture, shuffledCapture, fragmentText), (text) => {
      const reported = [
        ...stringLeaves(parseStrokeStatus(text)),
        ...stringLeaves(parseSwanctlListSas(text)),
      ];
      const invented = reported.filter((leaf) => leaf !== 'UNKNOWN' && !text.includes(leaf));
      if (invented.length > 0) throw new Error(`not in the input: ${JSON.stringify(invented)}`);
    }),
    { numRuns: 500 * RUNS },
  );
  t.pass(`${500 * RUNS} inputs`);
});

t.test('xfrm state key material never reaches the result, wherever key lines land', async (t) => {
  const hexKey = fc.string({
    unit: fc.constantFrom(...'0123456789abcdef'),
    minLength: 32,
    maxLength: 72,
  });
  const keyLine = fc
    .tuple(
      fc.constantFrom(
        'auth-trunc hmac(sha256)',
        'enc cbc(aes)',
        'aead rfc4106(gcm(aes))',
        'auth hmac(sha1)',
        'comp deflate',
      ),
      hexKey,
      fc.constantFrom('', ' 128', ' (256 bits) 96'),
    )
    .map(([algorithm, key, tail]) => ({ line: `\t${algorithm} 0x${key}${tail}`, key }));
  const record = fc
    .tuple(
      fc.constantFrom('172.16.0.18', '2001:db8::1'),
      fc.constantFrom('172.16.0.2', '2001:db8::2'),
      fc.array(keyLine, { minLength: 1, maxLength: 3 }),
    )
    .map(([src, dst, keys]) => ({
      lines: [
        `src ${src} dst ${dst}`,
        '\tproto esp spi 0xdd9339c1 reqid 1 mode tunnel',
        '\treplay-window 0 flag af-unspec',
        ...keys.map((key) => key.line),
        '\tencap type espinudp sport 4500 dport 4500 addr 0.0.0.0',
        '\tsel src 10.1.0.0/16 dst 10.2.0.0/16 ',
      ],
      keys: keys.map((key) => key.key),
    }));
  fc.assert(
    fc.property(
      fc.array(record, { minLength: 1, maxLength: 4 }),
      fc.boolean(),
      fc.boolean(),
      (records, shuffle, oneLine) => {
        let lines = records.flatMap((r) => r.lines);
        if (shuffle) lines = [...lines].sort();
        const text = oneLine ? lines.join('\n').replace(/\n(?=\t)/g, '\\') : lines.join('\n');
        const json = JSON.stringify([parseXfrmState(text), parseXfrmPolicy(text)]);
        for (const key of records.flatMap((r) => r.keys)) {
          for (let at = 0; at + 16 <= key.length; at += 1) {
            if (json.includes(key.slice(at, at + 16)))
              throw new Error(`key ${key} leaked: ${json}`);
          }
        }
      },
    ),
    { numRuns: 500 * RUNS },
  );
  t.pass(`${500 * RUNS} key-carrying inputs`);
});

// ---------------------------------------------------------------------------------------------
// Linear time: lines built to make a backtracking regex explode.

/** Long lines aimed at each line format: a real prefix followed by a repeated near-miss. */
const HOSTILE_LINES: [string, string][] = [
  ['      a-to-b[1]: ESTABLISHED ', '1 '],
  ['      a-to-b[1]: ', 'IKEv2 SPIs: 0_i 0_r'],
  ['      a-to-b[1]: ESTABLISHED 3 minutes ago, ', '1[2]...'],
  ['      a-to-b{1}:  INSTALLED, TUNNEL, reqid 1', ', ESP SPIs: 0_i '],
  ['      a-to-b{1}:  AES', ', 1 bytes_i (1 pkts, 1'],
  ['      a-to-b{1}:  ', 'rekeying in 1 '],
  ['      a-to-b:   local:  ', '[x] use'],
  ['      a-to-b:   child:  ', '10.1.0.0/16 ==='],
  ['      a-to-b:  ', '....'],
  ['', 'a'],
  ['', ' '],
  ['', '1'],
  ['', 'a-to-b[1'],
  ['a-to-b: #1, ESTABLISHED, IKEv2, ', '0'],
  ['a-to-b', ': #1'],
  ['  local  ', "'x' @"],
  ['    in  ', 'f7ec1834,  1 bytes, '],
  ['  a-to-b: #1, reqid ', '1'],
  ['src ', '0'],
  ['\tproto esp spi 0x', 'a'],
  ['\t', '1(bytes), '],
  ['Security Associations (', '1'],
];

t.test('hostile long lines parse in linear time in every parser', async (t) => {
  const parsers = [
    parseStrokeStatus,
    parseSwanctlListSas,
    parseSwanctlListConns,
    parseSwanctlListPols,
    parseXfrmState,
    parseXfrmPolicy,
  ];
  const connectionsSection = 'Connections:\n';
  for (const [prefix, unit] of HOSTILE_LINES) {
    const line = prefix + unit.repeat(Math.ceil(200_000 / unit.length));
    const text = `${connectionsSection}${line}\n${line}x\n`;
    const started = performance.now();
    for (const parse of parsers) parse(text);
    const elapsedMs = performance.now() - started;
    t.ok(
      elapsedMs < 1000,
      `${JSON.stringify(prefix + unit)}... x 200k: ${Math.round(elapsedMs)} ms`,
    );
  }
});

t.test('a long line costs about as much per character as a short one', async (t) => {
  const unit = '      a-to-b{1}:  AES, 1 bytes_i (1 pkts, 1s ago), 1 bytes_o, rekeying in 1 ';
  const time = (repeats: number) => {
    const text =
      'Security Associations (1 up, 0 connecting):\n' +
      '      a-to-b[1]: ESTABLISHED 3 seconds ago, a[b]...c[d]\n' +
      '      a-to-b{1}:  INSTALLED, TUNNEL, reqid 1\n' +
      `${unit.repeat(repeats)}\n`;
    const started = performance.now();
    for (let run = 0; run < 5; run += 1) parseStrokeStatus(text);
    return performance.now() - started;
  };
  time(1000); // warm up
  const small = time(5_000);
  const large = time(50_000);
  t.ok(large < small * 40 + 50, `10x the input took ${(large / small).toFixed(1)}x the time`);
});
