/**
 * The wire format of vici, the control protocol of strongSwan's charon, as pure functions.
 * Written for tunnelwarden from the protocol description in strongSwan's vici README
 * (src/libcharon/plugins/vici/README.md); no client library is involved.
 *
 * Three layers, outermost first:
 * - Segments: a 32-bit big-endian length, then that many bytes (at most 512 KiB, charon's
 *   VICI_MESSAGE_SIZE_MAX). `SegmentReader` cuts a byte stream into segments.
 * - Packets: one type byte; named types (CMD_REQUEST, EVENT_REGISTER, EVENT_UNREGISTER, EVENT)
 *   then carry a name with an 8-bit length; CMD_REQUEST, CMD_RESPONSE and EVENT then carry a
 *   message filling the rest of the segment.
 * - Messages: a flat sequence of elements (SECTION_START/END, KEY_VALUE, LIST_START/ITEM/END)
 *   that spells a tree, mapped here to plain objects: a key/value becomes a property holding a
 *   string, a list an array, a section a nested object.
 *
 * Values are raw blobs on the wire (charon only sends text). Decoding gives a string when the
 * blob is valid UTF-8 and a `Uint8Array` otherwise, so no byte is ever lost; encoding takes
 * either. Names (keys, sections, lists, commands, events) are UTF-8 text.
 *
 * Every function here throws only TunnelwardenError: `viciMalformed` for bytes that are not
 * valid vici, `viciUnencodable` for a JS value that cannot be put on the wire.
 *
 * Limitations:
 * - Property order of JS objects puts integer-like keys ("0", "1") first, so encoding may
 *   reorder such keys; charon only cares about order in a few load-* commands.
 * - A message that repeats a key within one section is rejected (the README forbids it), so
 *   a charon that keys CHILD_SAs by name alone could not list two of the same name.
 */
import { ErrorCode, TunnelwardenError } from '../errors.js';

/** Largest segment charon sends or accepts, in bytes, not counting the length field. */
export const VICI_MAX_SEGMENT_BYTES = 512 * 1024;

/** Longest name an 8-bit length field can carry, in bytes. */
export const VICI_MAX_NAME_BYTES = 255;

/** Longest value a 16-bit length field can carry, in bytes. */
export const VICI_MAX_VALUE_BYTES = 65_535;

/** Deepest section nesting accepted either way; charon's own messages use fewer than 10. */
export const VICI_MAX_SECTION_DEPTH = 64;

const LENGTH_FIELD_BYTES = 4;

/** Packet types of the vici packet layer. */
export const PacketType = {
  cmdRequest: 0,
  cmdResponse: 1,
  cmdUnknown: 2,
  eventRegister: 3,
  eventUnregister: 4,
  eventConfirm: 5,
  eventUnknown: 6,
  event: 7,
} as const;

export type PacketTypeValue = (typeof PacketType)[keyof typeof PacketType];

const packetTypeNames: Record<PacketTypeValue, string> = {
  0: 'CMD_REQUEST',
  1: 'CMD_RESPONSE',
  2: 'CMD_UNKNOWN',
  3: 'EVENT_REGISTER',
  4: 'EVENT_UNREGISTER',
  5: 'EVENT_CONFIRM',
  6: 'EVENT_UNKNOWN',
  7: 'EVENT',
};

const namedTypes: ReadonlySet<number> = new Set([
  PacketType.cmdRequest,
  PacketType.eventRegister,
  PacketType.eventUnregister,
  PacketType.event,
]);

const messageTypes: ReadonlySet<number> = new Set([
  PacketType.cmdRequest,
  PacketType.cmdResponse,
  PacketType.event,
]);

/** Element types of the vici message encoding. */
const Element = {
  sectionStart: 1,
  sectionEnd: 2,
  keyValue: 3,
  listStart: 4,
  listItem: 5,
  listEnd: 6,
} as const;

/** A value: text, or bytes that are not valid UTF-8. */
export type ViciValue = string | Uint8Array;

/** A vici message or section: keys map to values, lists of values, or sections. */
export interface ViciMessage {
  [key: string]: ViciValue | ViciValue[] | ViciMessage;
}

/** One packet. `name` is present exactly for named types, `message` for message types. */
export interface ViciPacket {
  type: PacketTypeValue;
  name?: string;
  message?: ViciMessage;
}

/** The protocol name of a packet type, e.g. `CMD_RESPONSE`, for messages and logs. */
export function packetTypeName(type: PacketTypeValue): string {
  return packetTypeNames[type];
}

function malformed(reason: string, offset?: number): TunnelwardenError {
  const where = offset === undefined ? '' : ` at byte ${offset}`;
  return new TunnelwardenError(
    'unsupported',
    ErrorCode.viciMalformed,
    `malformed vici data${where}: ${reason}`,
    {
      details: offset === undefined ? {} : { offset },
    },
  );
}

function unencodable(reason: string, path: string): TunnelwardenError {
  const where = path === '' ? 'vici message' : `vici message at '${path}'`;
  return new TunnelwardenError(
    'bug',
    ErrorCode.viciUnencodable,
    `cannot encode ${where}: ${reason}`,
    {
      details: { path },
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Encoding

/** Collects bytes; grows by appending chunks and joins them once at the end. */
class ByteWriter {
  private readonly chunks: Uint8Array[] = [];
  private length = 0;

  byte(value: number): void {
    this.bytes(Uint8Array.of(value));
  }

  bytes(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  name(text: string, path: string): void {
    const encoded = utf8Bytes(text, path);
    if (encoded.length > VICI_MAX_NAME_BYTES) {
      throw unencodable(`name is ${encoded.length} bytes, over ${VICI_MAX_NAME_BYTES}`, path);
    }
    this.byte(encoded.length);
    this.bytes(encoded);
  }

  value(value: ViciValue, path: string): void {
    const encoded = typeof value === 'string' ? utf8Bytes(value, path) : value;
    if (encoded.length > VICI_MAX_VALUE_BYTES) {
      throw unencodable(`value is ${encoded.length} bytes, over ${VICI_MAX_VALUE_BYTES}`, path);
    }
    this.bytes(Uint8Array.of(encoded.length >> 8, encoded.length & 0xff));
    this.bytes(encoded);
  }

  finish(): Uint8Array {
    return Buffer.concat(this.chunks, this.length);
  }
}

/** With the `u` flag, a surrogate range matches only surrogates that are not part of a pair. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

function utf8Bytes(text: string, path: string): Uint8Array {
  if (LONE_SURROGATE.test(text)) throw unencodable('string has a lone surrogate', path);
  return Buffer.from(text, 'utf8');
}

function isValue(entry: unknown): entry is ViciValue {
  return typeof entry === 'string' || entry instanceof Uint8Array;
}

function isSection(entry: unknown): entry is ViciMessage {
  return (
    typeof entry === 'object' &&
    entry !== null &&
    !Array.isArray(entry) &&
    !(entry instanceof Uint8Array)
  );
}

function joinPath(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function writeSection(writer: ByteWriter, section: ViciMessage, path: string, depth: number): void {
  for (const key of Object.keys(section)) {
    const entry: unknown = section[key];
    const entryPath = joinPath(path, key);
    if (isValue(entry)) {
      writer.byte(Element.keyValue);
      writer.name(key, entryPath);
      writer.value(entry, entryPath);
    } else if (Array.isArray(entry)) {
      writer.byte(Element.listStart);
      writer.name(key, entryPath);
      entry.forEach((item: unknown, index) => {
        const itemPath = `${entryPath}[${index}]`;
        if (!isValue(item)) throw unencodable('list items must be strings or bytes', itemPath);
        writer.byte(Element.listItem);
        writer.value(item, itemPath);
      });
      writer.byte(Element.listEnd);
    } else if (isSection(entry)) {
      if (depth >= VICI_MAX_SECTION_DEPTH) {
        throw unencodable(`sections nest deeper than ${VICI_MAX_SECTION_DEPTH}`, entryPath);
      }
      writer.byte(Element.sectionStart);
      writer.name(key, entryPath);
      writeSection(writer, entry, entryPath, depth + 1);
      writer.byte(Element.sectionEnd);
    } else {
      throw unencodable(`${describe(entry)} is not a string, bytes, list or section`, entryPath);
    }
  }
}

function describe(entry: unknown): string {
  if (entry === null) return 'null';
  return typeof entry;
}

/** Encodes a message tree into vici message elements. Throws `viciUnencodable`. */
export function encodeMessage(message: ViciMessage): Uint8Array {
  if (!isSection(message)) throw unencodable('a message must be a plain object', '');
  const writer = new ByteWriter();
  writeSection(writer, message, '', 0);
  return writer.finish();
}

/** Encodes a packet (without the segment length). Throws `viciUnencodable`. */
export function encodePacket(packet: ViciPacket): Uint8Array {
  const writer = new ByteWriter();
  if (packetTypeNames[packet.type] === undefined) {
    throw unencodable(`unknown packet type ${String(packet.type)}`, '');
  }
  writer.byte(packet.type);
  if (namedTypes.has(packet.type)) {
    if (packet.name === undefined)
      throw unencodable(`${packetTypeName(packet.type)} needs a name`, '');
    writer.name(packet.name, '');
  } else if (packet.name !== undefined) {
    throw unencodable(`${packetTypeName(packet.type)} has no name`, '');
  }
  if (messageTypes.has(packet.type)) {
    writer.bytes(encodeMessage(packet.message ?? {}));
  } else if (packet.message !== undefined) {
    throw unencodable(`${packetTypeName(packet.type)} carries no message`, '');
  }
  return writer.finish();
}

/** Encodes a packet as one segment: length field, then the packet. Throws `viciUnencodable`. */
export function encodeSegment(packet: ViciPacket): Uint8Array {
  const body = encodePacket(packet);
  if (body.length > VICI_MAX_SEGMENT_BYTES) {
    throw unencodable(`packet is ${body.length} bytes, over ${VICI_MAX_SEGMENT_BYTES}`, '');
  }
  const segment = Buffer.alloc(LENGTH_FIELD_BYTES + body.length);
  segment.writeUInt32BE(body.length, 0);
  segment.set(body, LENGTH_FIELD_BYTES);
  return segment;
}

// ---------------------------------------------------------------------------------------------
// Decoding

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Reads from a byte array, failing with `viciMalformed` past its end. */
class ByteReader {
  offset = 0;

  constructor(private readonly input: Uint8Array) {}

  get done(): boolean {
    return this.offset >= this.input.length;
  }

  byte(what: string): number {
    const value = this.input[this.offset];
    if (value === undefined) throw malformed(`truncated before ${what}`, this.offset);
    this.offset += 1;
    return value;
  }

  take(length: number, what: string): Uint8Array {
    if (this.offset + length > this.input.length) {
      const left = this.input.length - this.offset;
      throw malformed(`${what} needs ${length} bytes, ${left} left`, this.offset);
    }
    const chunk = this.input.subarray(this.offset, this.offset + length);
    this.offset += length;
    return chunk;
  }

  name(what: string): string {
    const start = this.offset;
    const bytes = this.take(this.byte(`${what} length`), what);
    try {
      return strictUtf8.decode(bytes);
    } catch {
      throw malformed(`${what} is not UTF-8 text`, start);
    }
  }

  value(what: string): ViciValue {
    const high = this.byte(`${what} length`);
    const low = this.byte(`${what} length`);
    const bytes = this.take((high << 8) | low, what);
    try {
      return strictUtf8.decode(bytes);
    } catch {
      return new Uint8Array(bytes);
    }
  }
}

/** Adds `key` to `section` as an own property, even for names such as `__proto__`. */
function define(
  section: ViciMessage,
  key: string,
  entry: ViciMessage[string],
  path: string,
  at: number,
) {
  if (Object.hasOwn(section, key)) throw malformed(`duplicate key '${joinPath(path, key)}'`, at);
  Object.defineProperty(section, key, {
    value: entry,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

interface OpenSection {
  section: ViciMessage;
  path: string;
}

/** Decodes vici message elements into a message tree. Throws `viciMalformed`. */
export function decodeMessage(input: Uint8Array): ViciMessage {
  const reader = new ByteReader(input);
  const root: ViciMessage = {};
  const open: OpenSection[] = [{ section: root, path: '' }];
  let list: { items: ViciValue[]; name: string } | undefined;

  while (!reader.done) {
    const at = reader.offset;
    const element = reader.byte('element type');
    const current = open[open.length - 1] as OpenSection;

    if (list !== undefined && element !== Element.listItem && element !== Element.listEnd) {
      throw malformed(`element type ${element} inside list '${list.name}'`, at);
    }
    switch (element) {
      case Element.sectionStart: {
        const name = reader.name('section name');
        if (open.length > VICI_MAX_SECTION_DEPTH) {
          throw malformed(`sections nest deeper than ${VICI_MAX_SECTION_DEPTH}`, at);
        }
        const section: ViciMessage = {};
        define(current.section, name, section, current.path, at);
        open.push({ section, path: joinPath(current.path, name) });
        break;
      }
      case Element.sectionEnd:
        if (open.length === 1) throw malformed('section end without a section', at);
        open.pop();
        break;
      case Element.keyValue: {
        const key = reader.name('key');
        define(current.section, key, reader.value(`value of '${key}'`), current.path, at);
        break;
      }
      case Element.listStart: {
        const name = reader.name('list name');
        const items: ViciValue[] = [];
        define(current.section, name, items, current.path, at);
        list = { items, name: joinPath(current.path, name) };
        break;
      }
      case Element.listItem:
        if (list === undefined) throw malformed('list item outside a list', at);
        list.items.push(reader.value(`item of '${list.name}'`));
        break;
      case Element.listEnd:
        if (list === undefined) throw malformed('list end without a list', at);
        list = undefined;
        break;
      default:
        throw malformed(`unknown element type ${element}`, at);
    }
  }

  if (list !== undefined) throw malformed(`list '${list.name}' is not closed`, reader.offset);
  if (open.length > 1) {
    const unclosed = (open[open.length - 1] as OpenSection).path;
    throw malformed(`section '${unclosed}' is not closed`, reader.offset);
  }
  return root;
}

/** Decodes one packet (a segment without its length field). Throws `viciMalformed`. */
export function decodePacket(input: Uint8Array): ViciPacket {
  const reader = new ByteReader(input);
  const type = reader.byte('packet type');
  if (packetTypeNames[type as PacketTypeValue] === undefined) {
    throw malformed(`unknown packet type ${type}`, 0);
  }
  const packet: ViciPacket = { type: type as PacketTypeValue };
  if (namedTypes.has(type)) packet.name = reader.name(`${packetTypeName(packet.type)} name`);
  if (messageTypes.has(type)) {
    packet.message = decodeMessage(input.subarray(reader.offset));
  } else if (!reader.done) {
    throw malformed(
      `${input.length - reader.offset} stray bytes after ${packetTypeName(packet.type)}`,
      reader.offset,
    );
  }
  return packet;
}

/**
 * Cuts a byte stream into segments. Feed it chunks as they arrive; it returns the packets of
 * every segment completed so far. Throws `viciMalformed` when a segment announces more than
 * `VICI_MAX_SEGMENT_BYTES` (the stream cannot be resynchronised after that: drop it) or when a
 * completed segment is not a valid packet.
 */
export class SegmentReader {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private received = 0;

  push(chunk: Uint8Array): ViciPacket[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const packets: ViciPacket[] = [];

    while (this.pendingBytes >= LENGTH_FIELD_BYTES) {
      const buffered = this.flatten();
      const length = Buffer.from(
        buffered.buffer,
        buffered.byteOffset,
        LENGTH_FIELD_BYTES,
      ).readUInt32BE(0);
      if (length > VICI_MAX_SEGMENT_BYTES) {
        throw malformed(
          `segment of ${length} bytes announced, over ${VICI_MAX_SEGMENT_BYTES}`,
          this.received,
        );
      }
      if (buffered.length < LENGTH_FIELD_BYTES + length) break;
      const end = LENGTH_FIELD_BYTES + length;
      packets.push(decodePacket(buffered.subarray(LENGTH_FIELD_BYTES, end)));
      this.pending = end < buffered.length ? [buffered.subarray(end)] : [];
      this.pendingBytes = buffered.length - end;
      this.received += end;
    }
    return packets;
  }

  /** Bytes received that do not yet form a whole segment. */
  get bufferedBytes(): number {
    return this.pendingBytes;
  }

  private flatten(): Uint8Array {
    if (this.pending.length !== 1) this.pending = [Buffer.concat(this.pending, this.pendingBytes)];
    return this.pending[0] as Uint8Array;
  }
}
