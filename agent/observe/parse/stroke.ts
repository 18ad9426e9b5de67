/**
 * Parser for the stroke status output of strongSwan 5.x: `ipsec status` and `ipsec statusall`.
 *
 * The output is a sequence of sections, each introduced by a header line:
 *
 *     Status of IKE charon daemon (strongSwan 5.9.8, Linux 6.1.0, x86_64):   statusall only
 *     Virtual IP pools (size/online/offline):                                 statusall only
 *     Listening IP addresses:                                                 statusall only
 *     Connections:                                                            statusall only
 *     Shunted Connections:
 *     Routed Connections:
 *     Security Associations (1 up, 0 connecting):
 *
 * Inside the last three, every line starts with a right-aligned name and a key:
 * `a-to-b[1]:` for an IKE_SA, `a-to-b{1}:` for a CHILD_SA. A CHILD_SA belongs to the IKE_SA
 * printed above it (its name may differ from the IKE_SA's), or to `routed` in the Routed
 * Connections section. The line formats follow strongSwan's stroke_list.c (5.9).
 *
 * Pure and total: no I/O, never throws, unknown or malformed lines are skipped. Every regular
 * expression is anchored or starts with a literal, so parsing is linear in the input size.
 *
 * Limitations: shunted (PASS/DROP) connections and virtual IP pools are not reported; durations
 * are as precise as stroke prints them ("3 minutes" is 180 seconds).
 */

import { readConnLine } from './stroke-conns.js';
import { readChildSaLine, readIkeSaLine } from './stroke-sas.js';
import { eachLine, parseCount, parseDurationSeconds, splitWords } from './text.js';
import type { IkeSa, LoadedConn, StrongswanStatus } from './types.js';

/** "Status of IKE charon daemon (strongSwan 5.9.8, Linux ..., x86_64):" — captures 5.9.8. */
const DAEMON_HEADER = /^Status of IKE charon daemon \((?:strong|weak)Swan ([^\s,)]+)/;
/** "  uptime: 3 minutes, since Dec 03 18:29:34 2026" — captures "3 minutes". */
const UPTIME = /^ {2}uptime: (\d+ [a-z]+),/;
/** "  loaded plugins: charon aes sha2 ..." — captures the plugin list. */
const PLUGINS = /^ {2}loaded plugins: (.*)$/s;
/** "Security Associations (1 up, 0 connecting):" — captures both counts. */
const SA_HEADER = /^Security Associations \((\d+) up, (\d+) connecting\):/;
/**
 * The key in front of every SA line: "      a-to-b[1]: " for an IKE_SA, "      a-to-b{1}: " for a
 * CHILD_SA. Captures the name, then the unique id in group 2 (IKE_SA) or 3 (CHILD_SA); the body
 * is the rest of the line. The name stops at the first bracket, so one attempt decides.
 */
const SA_LINE_KEY = /^ *([^\s[\]{}]+)(?:\[(\d+)\]|\{(\d+)\}): /;
/** The key in front of every line of a loaded connection: "      a-to-b:" — captures the name. */
const CONN_LINE_KEY = /^ *([^\s:[\]{}]+):/;
/** An address under "Listening IP addresses:": "  172.16.0.18". */
const LISTENING_ADDRESS = /^ {2}(\S+)$/;

type Section =
  'preamble' | 'daemon' | 'pools' | 'listening' | 'connections' | 'shunted' | 'routed' | 'sas';

/** Where the parser is: the section and the entries that following lines refer to. */
interface Cursor {
  section: Section;
  ikeSa: IkeSa | undefined;
  conn: LoadedConn | undefined;
}

/** Section headers that carry no data, by their exact text. */
const PLAIN_SECTION_HEADERS: ReadonlyMap<string, Section> = new Map<string, Section>([
  ['Virtual IP pools (size/online/offline):', 'pools'],
  ['Listening IP addresses:', 'listening'],
  ['Connections:', 'connections'],
  ['Shunted Connections:', 'shunted'],
  ['Routed Connections:', 'routed'],
]);

/**
 * Parses the output of `ipsec status` or `ipsec statusall` (strongSwan 5.x stroke).
 *
 * Pure, total and linear: never throws, skips lines it does not recognise, and returns empty
 * lists for empty or unrelated text. The statusall-only fields (version, uptime, plugins,
 * listening addresses, connections, SPIs, counters) stay empty or undefined for `ipsec status`.
 */
export function parseStrokeStatus(text: string): StrongswanStatus {
  const status: StrongswanStatus = {
    plugins: [],
    listeningAddresses: [],
    connections: [],
    routed: [],
    ikeSas: [],
  };
  const cursor: Cursor = { section: 'preamble', ikeSa: undefined, conn: undefined };

  for (const line of eachLine(text)) {
    if (readSectionHeader(line, status, cursor)) continue;

    const saKey = SA_LINE_KEY.exec(line);
    if (saKey !== null) {
      const body = line.slice(saKey[0].length);
      if (saKey[2] !== undefined) readIkeLine(saKey[1]!, saKey[2], body, status, cursor);
      else readChildLine(saKey[1]!, saKey[3]!, body, status, cursor);
      continue;
    }

    readSectionBody(line, status, cursor);
  }
  return status;
}

/** Hands an IKE_SA line on; a new IKE_SA becomes current (and implies the SA section). */
function readIkeLine(
  name: string,
  id: string,
  body: string,
  status: StrongswanStatus,
  cursor: Cursor,
): void {
  const uniqueId = parseCount(id);
  if (uniqueId === undefined) return;
  const created = readIkeSaLine(name, uniqueId, body, status.ikeSas, cursor.ikeSa);
  if (created === undefined) return;
  status.ikeSas.push(created);
  cursor.ikeSa = created;
  cursor.section = 'sas';
}

/** Hands a CHILD_SA line to its owner: the routed list, or the IKE_SA printed above it. */
function readChildLine(
  name: string,
  id: string,
  body: string,
  status: StrongswanStatus,
  cursor: Cursor,
): void {
  const uniqueId = parseCount(id);
  const owner = cursor.section === 'routed' ? status.routed : cursor.ikeSa?.children;
  if (uniqueId === undefined || owner === undefined) return; // no IKE_SA above: skipped
  readChildSaLine(name, uniqueId, body, owner);
}

/** Recognises a section header line, updating the cursor; false for any other line. */
function readSectionHeader(line: string, status: StrongswanStatus, cursor: Cursor): boolean {
  // Every section header starts with a capital letter: most lines need no further look.
  const first = line.charAt(0);
  if (first < 'A' || first > 'Z') return false;

  const plain = PLAIN_SECTION_HEADERS.get(line.trimEnd());
  if (plain !== undefined) {
    cursor.section = plain;
    return true;
  }

  const saHeader = SA_HEADER.exec(line);
  if (saHeader !== null) {
    cursor.section = 'sas';
    const up = parseCount(saHeader[1]);
    const connecting = parseCount(saHeader[2]);
    if (up !== undefined && connecting !== undefined) status.counts = { up, connecting };
    return true;
  }

  const daemon = DAEMON_HEADER.exec(line);
  if (daemon !== null) {
    cursor.section = 'daemon';
    status.version = daemon[1];
    return true;
  }
  return false;
}

/** Reads a line of the daemon, listening-address or connection sections. */
function readSectionBody(line: string, status: StrongswanStatus, cursor: Cursor): void {
  switch (cursor.section) {
    case 'daemon': {
      const uptimeSeconds = parseDurationSeconds(UPTIME.exec(line)?.[1]);
      if (uptimeSeconds !== undefined) status.uptimeSeconds = uptimeSeconds;
      const plugins = PLUGINS.exec(line);
      if (plugins !== null) status.plugins = splitWords(plugins[1]!);
      return;
    }
    case 'listening': {
      const address = LISTENING_ADDRESS.exec(line);
      if (address !== null) status.listeningAddresses.push(address[1]!);
      return;
    }
    case 'connections': {
      const connKey = CONN_LINE_KEY.exec(line);
      if (connKey === null) return;
      const body = line.slice(connKey[0].length).trim();
      const created = readConnLine(connKey[1]!, body, cursor.conn);
      if (created === undefined) return;
      status.connections.push(created);
      cursor.conn = created;
      return;
    }
    default:
      return;
  }
}
