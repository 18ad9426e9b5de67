import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import t from 'tap';
import { ErrorCode, TunnelwardenError } from '../../agent/errors.js';
import {
  decodeMessage,
  decodePacket,
  encodeMessage,
  encodePacket,
  encodeSegment,
  PacketType,
  SegmentReader,
  VICI_MAX_SECTION_DEPTH,
  VICI_MAX_SEGMENT_BYTES,
  type ViciMessage,
  type ViciPacket,
  type ViciValue,
} from '../../agent/host/vici-codec.js';

const MALFORMED = { code: ErrorCode.viciMalformed };
const UNENCODABLE = { code: ErrorCode.viciUnencodable };

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function fromHex(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
}

/** Runs `fn`; true when it returned or threw a viciMalformed TunnelwardenError. */
function decodesOrFailsTyped(fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (thrown) {
    return thrown instanceof TunnelwardenError && thrown.code === ErrorCode.viciMalformed;
  }
}

/** A section nested `depth` levels deep: { s: { s: { ... { k: 'v' } } } }. */
function nested(depth: number): ViciMessage {
  let message: ViciMessage = { k: 'v' };
  for (let level = 0; level < depth; level += 1) message = { s: message };
  return message;
}

// The message of the vici README's encoding example, written out element by element.
const README_EXAMPLE: ViciMessage = {
  key1: 'value1',
  section1: { 'sub-section': { key2: 'value2' }, list1: ['item1', 'item2'] },
};
const README_EXAMPLE_HEX = [
  '03 04 6b657931 0006 76616c756531', // KEY_VALUE key1 = value1
  '01 08 73656374696f6e31', // SECTION_START section1
  '01 0b 7375622d73656374696f6e', // SECTION_START sub-section
  '03 04 6b657932 0006 76616c756532', // KEY_VALUE key2 = value2
  '02', // SECTION_END
  '04 05 6c69737431', // LIST_START list1
  '05 0005 6974656d31', // LIST_ITEM item1
  '05 0005 6974656d32', // LIST_ITEM item2
  '06', // LIST_END
  '02', // SECTION_END
].join(' ');

t.test('a message encodes to the bytes of the protocol example and decodes back', async (t) => {
  t.equal(hex(encodeMessage(README_EXAMPLE)), hex(fromHex(README_EXAMPLE_HEX)));
  t.strictSame(decodeMessage(fromHex(README_EXAMPLE_HEX)), README_EXAMPLE);
});

t.test('nested sections, empty sections, empty lists and empty values round-trip', async (t) => {
  const message: ViciMessage = {
    'a-to-b': {
      uniqueid: '1',
      'child-sas': { 'a-to-b-1': { 'local-ts': ['10.1.0.0/16'], 'remote-ts': [] } },
      empty: {},
      blank: '',
    },
    tail: 'after the section',
  };
  t.strictSame(decodeMessage(encodeMessage(message)), message);
  t.strictSame(decodeMessage(new Uint8Array(0)), {}, 'no elements is the empty message');
});

t.test('keys keep their order through a round trip', async (t) => {
  const message: ViciMessage = { zulu: '1', alpha: '2', mike: { yankee: '3', bravo: '4' } };
  const decoded = decodeMessage(encodeMessage(message));
  t.same(Object.keys(decoded), ['zulu', 'alpha', 'mike']);
  t.same(Object.keys(decoded.mike as ViciMessage), ['yankee', 'bravo']);
});

t.test(
  'values are binary-safe: bytes that are not UTF-8 come back as the same bytes',
  async (t) => {
    const bytes = Uint8Array.of(0x00, 0xff, 0xfe, 0x80, 0x0a, 0x00);
    const decoded = decodeMessage(encodeMessage({ blob: bytes, list: [bytes, 'text'] }));
    t.ok(decoded.blob instanceof Uint8Array, 'a non-UTF-8 value decodes to bytes');
    t.equal(hex(decoded.blob as Uint8Array), hex(bytes));
    const list = decoded.list as ViciValue[];
    t.equal(hex(list[0] as Uint8Array), hex(bytes));
    t.equal(list[1], 'text');
  },
);

t.test('UTF-8 text, NUL bytes and a byte order mark stay text, unchanged', async (t) => {
  const message: ViciMessage = { id: 'CN=Zürich 🔐', nul: 'a\u0000b', bom: '\uFEFFstart' };
  t.strictSame(decodeMessage(encodeMessage(message)), message);
});

t.test('a key named __proto__ becomes an own property and pollutes nothing', async (t) => {
  const bytes = encodeMessage(JSON.parse('{"__proto__": {"polluted": "yes"}, "constructor": "x"}'));
  const decoded = decodeMessage(bytes);
  t.ok(Object.hasOwn(decoded, '__proto__'));
  t.equal(Object.getPrototypeOf(decoded), Object.prototype);
  t.equal(({} as Record<string, unknown>).polluted, undefined);
  t.equal(decoded.constructor, 'x');
});

t.test('decoding rejects malformed messages with a typed error naming the cause', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['section end at the root', '02', /section end without a section/],
    ['an unclosed section', '01 01 73 03 01 6b 0001 76', /section 's' is not closed/],
    ['an unclosed list', '04 01 6c 05 0001 69', /list 'l' is not closed/],
    ['a list item outside a list', '05 0001 69', /list item outside a list/],
    ['a list end without a list', '06', /list end without a list/],
    ['a key/value inside a list', '04 01 6c 03 01 6b 0001 76 06', /element type 3 inside list 'l'/],
    ['a section inside a list', '04 01 6c 01 01 73 02 06', /inside list 'l'/],
    ['an unknown element type', '09', /unknown element type 9/],
    ['a value longer than the message', '03 01 6b 0010 76', /needs 16 bytes, 1 left/],
    ['a name longer than the message', '03 05 6b', /needs 5 bytes, 1 left/],
    ['a missing value length', '03 01 6b 00', /truncated before value of 'k' length/],
    ['a repeated key', '03 01 6b 0001 76 03 01 6b 0001 77', /duplicate key 'k'/],
    ['a repeated key in a section', '01 01 73 03 01 6b 0000 04 01 6b 06 02', /duplicate key 's.k'/],
    ['a name that is not UTF-8', '03 01 ff 0001 76', /key is not UTF-8 text/],
  ];
  for (const [what, bytes, message] of cases) {
    const error = t.throws(() => decodeMessage(fromHex(bytes)), MALFORMED, what) as unknown;
    t.match((error as Error).message, message, `${what}: message names the cause`);
  }
});

t.test('every truncation of a valid message decodes or fails with the typed error', async (t) => {
  const bytes = encodeMessage(README_EXAMPLE);
  let rejected = 0;
  for (let length = 0; length < bytes.length; length += 1) {
    try {
      decodeMessage(bytes.subarray(0, length));
    } catch (thrown) {
      t.ok(
        thrown instanceof TunnelwardenError && thrown.code === ErrorCode.viciMalformed,
        `cut at ${length}`,
      );
      rejected += 1;
    }
  }
  // Only the cut right after `key1 = value1` is itself a complete message.
  t.equal(rejected, bytes.length - 2, 'all cuts inside the tree are rejected');
});

t.test(
  'sections nest up to the depth bound, and one level more is refused both ways',
  async (t) => {
    const deepest = nested(VICI_MAX_SECTION_DEPTH);
    t.strictSame(decodeMessage(encodeMessage(deepest)), deepest);
    t.throws(() => encodeMessage(nested(VICI_MAX_SECTION_DEPTH + 1)), UNENCODABLE);
    const tooDeep =
      '01 01 73 '.repeat(VICI_MAX_SECTION_DEPTH + 1) + '02 '.repeat(VICI_MAX_SECTION_DEPTH + 1);
    t.throws(() => decodeMessage(fromHex(tooDeep)), MALFORMED);
  },
);

t.test('encoding refuses what the wire cannot carry, naming where', async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ['a 256-byte name', { ['k'.repeat(256)]: 'v' }, /name is 256 bytes, over 255/],
    ['a 65536-byte value', { k: 'v'.repeat(65_536) }, /at 'k': value is 65536 bytes, over 65535/],
    ['a number', { s: { n: 5 } }, /at 's.n': number is not a string/],
    ['null', { k: null }, /null is not/],
    ['undefined', { k: undefined }, /undefined is not/],
    ['a list in a list', { l: [['x']] }, /at 'l\[0\]': list items must be strings or bytes/],
    ['a lone surrogate', { k: 'a\uD800' }, /lone surrogate/],
    ['an array as message', ['x'], /must be a plain object/],
  ];
  for (const [what, message, reason] of cases) {
    const error = t.throws(
      () => encodeMessage(message as ViciMessage),
      UNENCODABLE,
      what,
    ) as unknown;
    t.match((error as Error).message, reason, `${what}: message names the cause`);
  }
  t.ok(
    encodeMessage({ ['k'.repeat(255)]: 'v'.repeat(65_535) }).length > 0,
    'the limits themselves are fine',
  );
});

t.test('packets of every type round-trip with the right layout', async (t) => {
  const packets: [ViciPacket, string][] = [
    [{ type: PacketType.cmdRequest, name: 'version', message: {} }, '00 07 76657273696f6e'],
    [{ type: PacketType.cmdResponse, message: { a: 'b' } }, '01 03 0161 0001 62'],
    [{ type: PacketType.cmdUnknown }, '02'],
    [{ type: PacketType.eventRegister, name: 'list-sa' }, '03 07 6c6973742d7361'],
    [{ type: PacketType.eventUnregister, name: 'list-sa' }, '04 07 6c6973742d7361'],
    [{ type: PacketType.eventConfirm }, '05'],
    [{ type: PacketType.eventUnknown }, '06'],
    [
      { type: PacketType.event, name: 'log', message: { msg: 'x' } },
      '07 03 6c6f67 03 03 6d7367 0001 78',
    ],
  ];
  for (const [packet, layout] of packets) {
    t.equal(hex(encodePacket(packet)), hex(fromHex(layout)), `type ${packet.type} layout`);
    t.strictSame(decodePacket(encodePacket(packet)), packet, `type ${packet.type} round trip`);
  }
});

t.test('packets with a missing or extra name or message are refused', async (t) => {
  t.throws(
    () => encodePacket({ type: PacketType.cmdRequest }),
    UNENCODABLE,
    'request without name',
  );
  t.throws(
    () => encodePacket({ type: PacketType.cmdResponse, name: 'x' }),
    UNENCODABLE,
    'named response',
  );
  t.throws(
    () => encodePacket({ type: PacketType.eventConfirm, message: {} }),
    UNENCODABLE,
    'confirm with message',
  );
  t.throws(() => encodePacket({ type: 9 as never }), UNENCODABLE, 'unknown type');
  t.throws(() => decodePacket(fromHex('08')), MALFORMED, 'unknown type 8');
  t.throws(() => decodePacket(new Uint8Array(0)), MALFORMED, 'empty packet');
  t.throws(() => decodePacket(fromHex('05 00')), MALFORMED, 'stray byte after EVENT_CONFIRM');
  t.throws(() => decodePacket(fromHex('00 09 6c697374')), MALFORMED, 'name cut short');
});

t.test('segments are length-prefixed and found however the stream is chunked', async (t) => {
  const first: ViciPacket = { type: PacketType.event, name: 'list-sa', message: README_EXAMPLE };
  const second: ViciPacket = { type: PacketType.cmdResponse, message: {} };
  const stream = Buffer.concat([encodeSegment(first), encodeSegment(second)]);
  t.equal(hex(encodeSegment(second)), '0000000101');

  const whole = new SegmentReader();
  t.strictSame(whole.push(stream), [first, second], 'two segments in one chunk');
  t.equal(whole.bufferedBytes, 0);

  const bytewise = new SegmentReader();
  const seen: ViciPacket[] = [];
  for (const byte of stream) seen.push(...bytewise.push(Uint8Array.of(byte)));
  t.strictSame(seen, [first, second], 'one byte at a time');
});

t.test('a segment longer than 512 KiB is refused before it is buffered', async (t) => {
  const atLimit = Buffer.alloc(4);
  atLimit.writeUInt32BE(VICI_MAX_SEGMENT_BYTES);
  const reader = new SegmentReader();
  t.strictSame(reader.push(atLimit), [], 'a segment of exactly the limit is awaited');
  t.equal(reader.bufferedBytes, 4);

  const overLimit = Buffer.alloc(4);
  overLimit.writeUInt32BE(VICI_MAX_SEGMENT_BYTES + 1);
  const error = t.throws(() => new SegmentReader().push(overLimit), MALFORMED) as unknown;
  t.match((error as Error).message, /524289 bytes announced, over 524288/);

  const huge = { k: 'v'.repeat(65_535) };
  const tooBig: ViciMessage = Object.fromEntries([...Array(9).keys()].map((i) => [`k${i}`, huge]));
  t.throws(
    () => encodeSegment({ type: PacketType.cmdRequest, name: 'x', message: tooBig }),
    UNENCODABLE,
  );
});

// ---------------------------------------------------------------------------------------------
// Properties

const nameArb = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.constantFrom('__proto__', 'constructor', 'toString', 'child-sas', '0', '10'),
);
const textArb = fc.string({ unit: 'grapheme', maxLength: 30 });
/** Bytes with a 0xff somewhere: never valid UTF-8, so they must decode as bytes. */
const binaryArb = fc.tuple(fc.uint8Array({ maxLength: 20 }), fc.nat(20)).map(([bytes, at]) => {
  const copy = Array.from(bytes);
  copy.splice(at % (copy.length + 1), 0, 0xff);
  return Uint8Array.from(copy);
});
const valueArb: fc.Arbitrary<ViciValue> = fc.oneof(
  { weight: 4, arbitrary: textArb },
  { weight: 1, arbitrary: binaryArb },
);
const { message: messageArb } = fc.letrec<{ message: ViciMessage; entry: ViciMessage[string] }>(
  (tie) => ({
    message: fc.dictionary(nameArb, tie('entry'), {
      maxKeys: 6,
      noNullPrototype: true,
      depthIdentifier: 'vici',
    }),
    entry: fc.oneof(
      { depthIdentifier: 'vici', depthSize: 'small' },
      valueArb,
      fc.array(valueArb, { maxLength: 4 }),
      tie('message'),
    ),
  }),
);

t.test('property: decode(encode(message)) equals the message', async (t) => {
  fc.assert(
    fc.property(messageArb, (message) =>
      isDeepStrictEqual(decodeMessage(encodeMessage(message)), message),
    ),
    { numRuns: 500 },
  );
  t.pass('500 random messages round-tripped');
});

t.test('property: decoding random bytes returns or throws only the typed error', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const reader = new SegmentReader();
      return (
        decodesOrFailsTyped(() => decodeMessage(bytes)) &&
        decodesOrFailsTyped(() => decodePacket(bytes)) &&
        decodesOrFailsTyped(() => reader.push(bytes))
      );
    }),
    { numRuns: 2000 },
  );
  t.pass('2000 random byte strings');
});

t.test(
  'property: corrupting one byte of a valid message never throws anything untyped',
  async (t) => {
    fc.assert(
      fc.property(messageArb, fc.nat(), fc.integer({ min: 0, max: 255 }), (message, at, byte) => {
        const bytes = encodeMessage(message);
        if (bytes.length === 0) return true;
        bytes[at % bytes.length] = byte;
        return decodesOrFailsTyped(() => decodeMessage(bytes));
      }),
      { numRuns: 1000 },
    );
    t.pass('1000 corrupted messages');
  },
);
