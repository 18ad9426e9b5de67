/**
 * Parsers for iproute2's `ip [-s] [-o] xfrm state` and `ip [-s] [-o] xfrm policy`: what the
 * kernel really holds. The format follows iproute2's ip/ipxfrm.c: a record starts with an
 * unindented `src ... dst ...` line, and its other lines are indented by tabs.
 *
 *     src 172.16.0.18 dst 172.16.0.2
 *             proto esp spi 0xdd9339c1 reqid 1 mode tunnel
 *             auth-trunc hmac(sha256) 0x<key> 128          <- key material: dropped
 *             enc cbc(aes) 0x<key>                         <- key material: dropped
 *             encap type espinudp sport 4500 dport 4500 addr 0.0.0.0
 *             sel src 10.1.0.0/16 dst 10.2.0.0/16
 *
 * State output contains keys. Lines starting with `auth`, `auth-trunc`, `enc`, `aead` or
 * `comp` are discarded before any field is read, and every kept field is checked against the
 * shape it must have (address, hex SPI, number, word), so no key can reach the result.
 *
 * `-o` (one record a line, sub-lines joined by `\`) is read too. Policies attached to
 * sockets (`socket in`, `socket out`, or a numeric `dir`) are skipped: they are charon's own
 * IKE bypass, not a tunnel.
 *
 * Pure and total: no I/O, never throws, unknown lines and incomplete records are skipped.
 *
 * Limitations: flags, replay windows, configured lifetimes, `if_id`, offload and security
 * contexts are not reported, nor a template's `level use` (optional) marker.
 */

import { parseCount, splitLines, withoutUndefined } from './text.js';
import type { XfrmPolicy, XfrmState } from './types.js';

/** First words of the lines that print algorithms with their keys. */
const KEY_LINES: ReadonlySet<string> = new Set(['auth', 'auth-trunc', 'enc', 'aead', 'comp']);

/**
 * An address as iproute2 prints it: `172.16.0.2`, `2001:db8::1`, `::`. A `.` or `:` must come
 * within the first five characters, so hex key material can never pass for an address.
 */
const HOST = /^[0-9a-fA-F]{0,4}[.:][0-9a-fA-F.:]{0,44}$/;
/** A selector as iproute2 prints it, always with its prefix length: `10.1.0.0/16`, `::/0`. */
const PREFIX = /^[0-9a-fA-F]{0,4}[.:][0-9a-fA-F.:]{0,44}\/\d{1,3}$/;
/** An SPI as printed, `0xdd9339c1`, with `(3717413313)` appended under `-s`. */
const SPI = /^0x([0-9a-fA-F]{1,8})(?:\(\d+\))?$/;
/** A number as printed, with `(0x00000001)` appended to reqids under `-s`. */
const NUMBER = /^(\d{1,16})(?:\(0x[0-9a-fA-F]+\))?$/;
/** A keyword value such as a protocol, mode or encapsulation type: `esp`, `tunnel`, `espinudp`. */
const WORD = /^[A-Za-z0-9_-]{1,32}$/;
/** A mark as printed: `0x2a/0xff` (older iproute2: `42/0xff`). */
const MARK = /^(?:0x)?[0-9a-fA-F]{1,8}\/0x[0-9a-fA-F]{1,8}$/;
/** The `ip -s` counter line under "lifetime current:": "336(bytes), 4(packets)". */
const LIFETIME_COUNTERS = /^(\d{1,16})\(bytes\), (\d{1,16})\(packets\)$/;

/** One record: its header tokens and the tokens of each following line, key lines removed. */
interface XfrmRecord {
  header: string[];
  lines: string[][];
}

/**
 * Parses `ip [-s] [-o] xfrm state`. Key material is never read into the result.
 * Records without source, destination, protocol and SPI are skipped. Pure, total, linear.
 */
export function parseXfrmState(text: string): XfrmState[] {
  const states: XfrmState[] = [];
  for (const record of splitRecords(text)) {
    const state = readState(record);
    if (state !== undefined) states.push(state);
  }
  return states;
}

/**
 * Parses `ip [-s] [-o] xfrm policy`. Socket policies and records without a valid selector
 * or direction are skipped. Pure, total, linear.
 */
export function parseXfrmPolicy(text: string): XfrmPolicy[] {
  const policies: XfrmPolicy[] = [];
  for (const record of splitRecords(text)) {
    const policy = readPolicy(record);
    if (policy !== undefined) policies.push(policy);
  }
  return policies;
}

/**
 * Groups lines into records. A record starts at an unindented line beginning with `src`;
 * indented lines belong to the record above. Key lines are dropped here, first of all.
 */
function splitRecords(text: string): XfrmRecord[] {
  const records: XfrmRecord[] = [];
  let record: XfrmRecord | undefined;

  // `ip -o` joins a record's lines with "\"; no other output of ip xfrm contains one.
  for (const line of splitLines(text).flatMap((joined) => joined.split('\\'))) {
    const tokens = line.split(/\s+/).filter((token) => token.length > 0);
    const first = tokens[0];
    if (first === undefined) continue;

    const indented = /^\s/.test(line);
    if (!indented) {
      record = first === 'src' ? { header: tokens, lines: [] } : undefined;
      if (record !== undefined) records.push(record);
      continue;
    }
    if (record !== undefined && !KEY_LINES.has(first)) record.lines.push(tokens);
  }
  return records;
}

/** Reads a state: "src HOST dst HOST", then at once "proto P spi 0xS reqid R mode M". */
function readState(record: XfrmRecord): XfrmState | undefined {
  const src = valueAfter(record.header, 'src', HOST);
  const dst = valueAfter(record.header, 'dst', HOST);
  const idLine = record.lines[0];
  if (src === undefined || dst === undefined || idLine?.[0] !== 'proto') return undefined;
  const proto = valueAfter(idLine, 'proto', WORD);
  const spi = SPI.exec(valueAfter(idLine, 'spi') ?? '')?.[1];
  if (proto === undefined || spi === undefined) return undefined;

  const state: XfrmState = {
    src,
    dst,
    proto,
    spi: spi.toLowerCase().padStart(8, '0'),
    ...withoutUndefined({
      reqid: parseNumber(valueAfter(idLine, 'reqid')),
      mode: valueAfter(idLine, 'mode', WORD),
    }),
  };

  for (const tokens of record.lines) {
    const counters = LIFETIME_COUNTERS.exec(tokens.join(' '));
    if (counters !== null) {
      Object.assign(
        state,
        withoutUndefined({ bytes: parseCount(counters[1]), packets: parseCount(counters[2]) }),
      );
    } else if (tokens[0] === 'encap') {
      const encap = readEncap(tokens);
      if (encap !== undefined) state.encap = encap;
    } else if (tokens[0] === 'sel') {
      const selSrc = valueAfter(tokens, 'src', PREFIX);
      const selDst = valueAfter(tokens, 'dst', PREFIX);
      if (selSrc !== undefined && selDst !== undefined)
        state.selector = { src: selSrc, dst: selDst };
    } else if (tokens[0] === 'mark') {
      const mark = valueAfter(tokens, 'mark', MARK);
      if (mark !== undefined) state.mark = mark;
    }
  }
  return state;
}

/** Reads "encap type espinudp sport 4500 dport 4500 addr 0.0.0.0". */
function readEncap(tokens: string[]): XfrmState['encap'] {
  const type = valueAfter(tokens, 'type', WORD);
  const sport = parseNumber(valueAfter(tokens, 'sport'));
  const dport = parseNumber(valueAfter(tokens, 'dport'));
  if (type === undefined || sport === undefined || dport === undefined) return undefined;
  return { type, sport, dport };
}

/**
 * Reads a policy: "src PREFIX dst PREFIX [proto ...]", then "dir D [action A] priority N ..."
 * (iproute2 always prints the priority, which also tells a policy from a state).
 */
function readPolicy(record: XfrmRecord): XfrmPolicy | undefined {
  const src = valueAfter(record.header, 'src', PREFIX);
  const dst = valueAfter(record.header, 'dst', PREFIX);
  const dirLine = record.lines.find((tokens) => tokens[0] === 'dir' || tokens[0] === 'socket');
  if (src === undefined || dst === undefined || dirLine === undefined) return undefined;
  const dir = dirLine[0] === 'dir' ? dirLine[1] : undefined; // else a socket policy
  const priority = parseNumber(valueAfter(dirLine, 'priority'));
  if ((dir !== 'in' && dir !== 'out' && dir !== 'fwd') || priority === undefined) return undefined;

  const policy: XfrmPolicy = {
    src,
    dst,
    dir,
    priority,
    action: valueAfter(dirLine, 'action', WORD) ?? 'allow',
    tmpl: [],
  };

  for (const tokens of record.lines) {
    if (tokens[0] === 'tmpl') {
      policy.tmpl.push(
        withoutUndefined({
          src: valueAfter(tokens, 'src', HOST),
          dst: valueAfter(tokens, 'dst', HOST),
        }),
      );
    } else if (tokens[0] === 'proto') {
      // The second line of a template: "proto esp reqid 1 mode tunnel".
      const template = policy.tmpl[policy.tmpl.length - 1];
      if (template === undefined) continue;
      Object.assign(
        template,
        withoutUndefined({
          proto: valueAfter(tokens, 'proto', WORD),
          reqid: parseNumber(valueAfter(tokens, 'reqid')),
          mode: valueAfter(tokens, 'mode', WORD),
        }),
      );
    } else if (tokens[0] === 'mark') {
      const mark = valueAfter(tokens, 'mark', MARK);
      if (mark !== undefined) policy.mark = mark;
    }
  }
  return policy;
}

/** The token after the first `keyword`, if it matches `shape` (any token when no shape). */
function valueAfter(tokens: string[], keyword: string, shape?: RegExp): string | undefined {
  const at = tokens.indexOf(keyword);
  const value = at < 0 ? undefined : tokens[at + 1];
  if (value === undefined) return undefined;
  return shape === undefined || shape.test(value) ? value : undefined;
}

/** "1", or "1(0x00000001)" under `-s`, as a number. */
function parseNumber(token: string | undefined): number | undefined {
  return parseCount(token === undefined ? undefined : NUMBER.exec(token)?.[1]);
}
