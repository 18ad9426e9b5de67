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

import type {
  ChildSa,
  ChildSaState,
  IkeSa,
  IkeSaState,
  LoadedConn,
  StrongswanStatus,
} from './types.js';
import {
  parseCount,
  parseDurationSeconds,
  splitEndpoints,
  splitLines,
  splitSelectors,
  withoutUndefined,
} from './text.js';

/** "Status of IKE charon daemon (strongSwan 5.9.8, Linux ..., x86_64):" — captures the version. */
const DAEMON_HEADER = /^Status of IKE charon daemon \((?:strong|weak)Swan ([^\s,)]+)/;
/** "  uptime: 3 minutes, since Dec 03 18:29:34 2026" — captures "3 minutes". */
const UPTIME = /^ {2}uptime: (\d+ [a-z]+),/;
/** "  loaded plugins: charon aes sha2 ..." — captures the plugin list. */
const PLUGINS = /^ {2}loaded plugins: (.*)$/s;
/** "Security Associations (1 up, 0 connecting):" — captures both counts. */
const SA_HEADER = /^Security Associations \((\d+) up, (\d+) connecting\):/;
/** Any line of an IKE_SA: "      a-to-b[1]: <body>" — captures name, unique id, body. */
const IKE_SA_LINE = /^ *([^\s[\]{}]+)\[(\d+)\]: (.*)$/s;
/** Any line of a CHILD_SA: "      a-to-b{1}:  <body>" — captures name, unique id, body. */
const CHILD_SA_LINE = /^ *([^\s[\]{}]+)\{(\d+)\}: (.*)$/s;
/** Any line of a loaded connection: "      a-to-b:  <body>" — captures name and body. */
const CONN_LINE = /^ *([^\s:[\]{}]+):(.*)$/s;
/** An address under "Listening IP addresses:": "  172.16.0.18". */
const LISTENING_ADDRESS = /^ {2}(\S+)$/;

/** IKE_SA body "ESTABLISHED 3 minutes ago, 172.16.0.18[id]...172.16.0.2[id]" (no "ago" otherwise). */
const IKE_SA_STATE = /^([A-Z]+)(?: (\d+ [a-z]+) ago)?, (.*)$/s;
/** IKE_SA body "IKEv2 SPIs: ec8c014e33ce8051_i* ebc560b1753a30d1_r, rekeying in 2 hours". */
const IKE_SA_SPIS = /^IKEv([12]) SPIs: ([0-9a-f]+)_i(\*?) ([0-9a-f]+)_r(\*?)(.*)$/s;
/** CHILD_SA body "INSTALLED, TUNNEL, reqid 1, ESP in UDP SPIs: f7ec1834_i dd9339c1_o". */
const CHILD_SA_STATE = /^([A-Z]+), ([A-Z_]+)(?:, reqid (\d+))?(.*)$/s;
/** Inside a CHILD_SA state line: ", ESP in UDP SPIs: f7ec1834_i dd9339c1_o". */
const CHILD_SA_SPIS = /, (ESP|AH)( in UDP)? SPIs: ([0-9a-f]+)_i ([0-9a-f]+)_o/;
/** Inside a CHILD_SA counter line: ", 336 bytes_i (4 pkts, 68s ago)"; the part in () is optional. */
const BYTES_IN = /, (\d+) bytes_i(?: \((\d+) pkts?, (\d+)s ago\))?/;
/** Inside a CHILD_SA counter line: ", 336 bytes_o (4 pkts, 68s ago)". */
const BYTES_OUT = /, (\d+) bytes_o(?: \((\d+) pkts?, (\d+)s ago\))?/;
/** ", rekeying in 39 minutes" (IKE_SA and CHILD_SA). */
const REKEY_IN = /rekeying in (\d+ [a-z]+)/;
/** ", pre-shared key reauthentication in 2 hours" (IKE_SA). */
const REAUTH_IN = /reauthentication in (\d+ [a-z]+)/;
/** ", expires in 8 minutes" (REKEYING or REKEYED CHILD_SA). */
const EXPIRES_IN = /expires in (\d+ [a-z]+)/;
/** A connection's child config ends with its mode: "TUNNEL", "TRANSPORT_PROXY", "PASS". */
const MODE_WORD = /^[A-Z][A-Z_]*$/;

const IKE_SA_STATES: ReadonlySet<string> = new Set<IkeSaState>([
  'CREATED',
  'CONNECTING',
  'ESTABLISHED',
  'PASSIVE',
  'REKEYING',
  'REKEYED',
  'DELETING',
  'DESTROYING',
]);

const CHILD_SA_STATES: ReadonlySet<string> = new Set<ChildSaState>([
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
]);

type Section = 'preamble' | 'daemon' | 'pools' | 'listening' | 'connections' | 'shunted' | 'routed' | 'sas';

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

  for (const line of splitLines(text)) {
    if (readSectionHeader(line, status, cursor)) continue;

    const ikeLine = IKE_SA_LINE.exec(line);
    if (ikeLine !== null) {
      readIkeSaLine(ikeLine[1]!, Number(ikeLine[2]), ikeLine[3]!, status, cursor);
      continue;
    }
    const childLine = CHILD_SA_LINE.exec(line);
    if (childLine !== null) {
      readChildSaLine(childLine[1]!, Number(childLine[2]), childLine[3]!, status, cursor);
      continue;
    }

    readSectionBody(line, status, cursor);
  }
  return status;
}

/** Recognises a section header line, updating the cursor; false for any other line. */
function readSectionHeader(line: string, status: StrongswanStatus, cursor: Cursor): boolean {
  const plain = PLAIN_SECTION_HEADERS.get(line.trimEnd());
  if (plain !== undefined) {
    cursor.section = plain;
    return true;
  }

  const saHeader = SA_HEADER.exec(line);
  if (saHeader !== null) {
    cursor.section = 'sas';
    status.counts = { up: Number(saHeader[1]), connecting: Number(saHeader[2]) };
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
      const uptime = UPTIME.exec(line);
      if (uptime !== null) status.uptimeSeconds = parseDurationSeconds(uptime[1]);
      const plugins = PLUGINS.exec(line);
      if (plugins !== null) status.plugins = splitSelectors(plugins[1]!);
      return;
    }
    case 'listening': {
      const address = LISTENING_ADDRESS.exec(line);
      if (address !== null) status.listeningAddresses.push(address[1]!);
      return;
    }
    case 'connections': {
      const connLine = CONN_LINE.exec(line);
      if (connLine !== null) readConnLine(connLine[1]!, connLine[2]!.trim(), status, cursor);
      return;
    }
    default:
      return;
  }
}

/**
 * Reads one line of a loaded connection in the "Connections:" section. `body` is one of
 *
 *     172.16.0.18...172.16.0.2  IKEv2, dpddelay=30s      the connection itself
 *     local:  [172.16.0.18] uses pre-shared key authentication
 *     remote: [C=CH, O=Example, CN=b] uses public key authentication
 *     child:  10.1.0.0/16 === 10.2.0.0/16 TUNNEL, dpdaction=restart
 *
 * and lines such as "cert:", "ca:" or "group:", which are skipped.
 */
function readConnLine(name: string, body: string, status: StrongswanStatus, cursor: Cursor): void {
  const [label = ''] = body.split(' ', 1);
  const rest = body.slice(label.length).trim();

  if (label === 'local:' || label === 'remote:') {
    if (cursor.conn?.name === name) readConnAuth(cursor.conn, label === 'local:', rest);
    return;
  }
  if (label === 'child:') {
    const child = parseConfiguredChild(name, rest);
    if (child !== undefined && cursor.conn !== undefined) cursor.conn.children.push(child);
    return;
  }

  const endpoints = splitEndpoints(label);
  if (endpoints === undefined) return;
  const [version] = splitSelectors(rest);
  const conn: LoadedConn = {
    name,
    localAddress: endpoints.left,
    remoteAddress: endpoints.right,
    ...(version === undefined ? {} : { ikeVersion: version.replace(/,$/, '') }),
    children: [],
  };
  status.connections.push(conn);
  cursor.conn = conn;
}

/** Reads "[id] uses <method> authentication..." into the first local or remote round only. */
function readConnAuth(conn: LoadedConn, local: boolean, text: string): void {
  if ((local ? conn.localAuth : conn.remoteAuth) !== undefined) return;

  let rest = text;
  let id: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf('] uses ');
    if (close < 0) return;
    id = rest.slice(1, close);
    rest = rest.slice(close + 2);
  }
  if (!rest.startsWith('uses ')) return;
  const methodEnd = rest.indexOf(' authentication');
  const method = methodEnd < 0 ? undefined : rest.slice('uses '.length, methodEnd);

  if (local) {
    conn.localAuth = method;
    if (id !== undefined) conn.localId = id;
  } else {
    conn.remoteAuth = method;
    if (id !== undefined) conn.remoteId = id;
  }
}

/** Reads "10.1.0.0/16 10.5.0.0/24 === 10.2.0.0/16 TUNNEL, dpdaction=restart" (options cut off). */
function parseConfiguredChild(name: string, text: string) {
  const optionsAt = text.indexOf(', ');
  const selectors = optionsAt < 0 ? text : text.slice(0, optionsAt);
  const separator = selectors.indexOf(' === ');
  if (separator < 0) return undefined;

  const remote = splitSelectors(selectors.slice(separator + ' === '.length));
  const last = remote[remote.length - 1];
  const mode = last !== undefined && MODE_WORD.test(last) ? remote.pop() : undefined;
  return {
    name,
    localTs: splitSelectors(selectors.slice(0, separator)),
    remoteTs: remote,
    ...(mode === undefined ? {} : { mode }),
  };
}

/** Reads a line keyed `name[uniqueId]:` — a new IKE_SA, or a detail of one already seen. */
function readIkeSaLine(
  name: string,
  uniqueId: number,
  body: string,
  status: StrongswanStatus,
  cursor: Cursor,
): void {
  const spis = IKE_SA_SPIS.exec(body);
  if (spis !== null) {
    const ikeSa = findIkeSa(status, cursor, name, uniqueId);
    if (ikeSa === undefined) return;
    ikeSa.ikeVersion = spis[1] === '1' ? 1 : 2;
    ikeSa.initiatorSpi = spis[2];
    ikeSa.responderSpi = spis[4];
    ikeSa.isInitiator = spis[3] === '*';
    const timers = spis[6]!;
    const rekey = parseDurationSeconds(REKEY_IN.exec(timers)?.[1]);
    if (rekey !== undefined) ikeSa.rekeyInSeconds = rekey;
    const reauth = parseDurationSeconds(REAUTH_IN.exec(timers)?.[1]);
    if (reauth !== undefined) ikeSa.reauthInSeconds = reauth;
    return;
  }

  const state = IKE_SA_STATE.exec(body);
  if (state === null) return; // proposal, tasks, remote EAP/XAuth identity: not reported
  const ikeSa: IkeSa = {
    conn: name,
    uniqueId,
    state: IKE_SA_STATES.has(state[1]!) ? (state[1] as IkeSaState) : 'UNKNOWN',
    ...parseIkeEndpoints(state[3]!),
    children: [],
  };
  const established = parseDurationSeconds(state[2]);
  if (established !== undefined) ikeSa.establishedSecondsAgo = established;
  status.ikeSas.push(ikeSa);
  cursor.ikeSa = ikeSa;
  cursor.section = 'sas'; // IKE_SAs are only printed there, whatever came before
}

/** The IKE_SA a detail line refers to: usually the current one, else the latest with that key. */
function findIkeSa(status: StrongswanStatus, cursor: Cursor, name: string, uniqueId: number) {
  const matches = (ikeSa: IkeSa) => ikeSa.conn === name && ikeSa.uniqueId === uniqueId;
  if (cursor.ikeSa !== undefined && matches(cursor.ikeSa)) return cursor.ikeSa;
  return findLast(status.ikeSas, matches);
}

/**
 * Splits "172.16.0.18[172.16.0.18]...172.16.0.2[C=CH, O=Example, CN=b]" into addresses and
 * identities. Addresses never contain `[`; an identity may contain spaces, commas and `@`.
 */
function parseIkeEndpoints(text: string) {
  const localOpen = text.indexOf('[');
  const separator = text.indexOf(']...', localOpen);
  if (localOpen < 0 || separator < 0) return {};
  const remote = text.slice(separator + ']...'.length);
  const remoteOpen = remote.indexOf('[');
  if (remoteOpen < 0 || !remote.endsWith(']')) return {};
  return {
    localAddress: text.slice(0, localOpen),
    localId: text.slice(localOpen + 1, separator),
    remoteAddress: remote.slice(0, remoteOpen),
    remoteId: remote.slice(remoteOpen + 1, -1),
  };
}

/**
 * Reads a line keyed `name{uniqueId}:`. Its body is one of
 *
 *     INSTALLED, TUNNEL, reqid 1, ESP in UDP SPIs: f7ec1834_i dd9339c1_o      a new CHILD_SA
 *     AES_CBC_256/HMAC_SHA2_256_128, 336 bytes_i (4 pkts, 68s ago), ...        its counters
 *     10.1.0.0/16 === 10.2.0.0/16                                             its selectors
 */
function readChildSaLine(
  name: string,
  uniqueId: number,
  body: string,
  status: StrongswanStatus,
  cursor: Cursor,
): void {
  const owner = cursor.section === 'routed' ? status.routed : cursor.ikeSa?.children;
  if (owner === undefined) return; // a CHILD_SA with no IKE_SA above it
  const detail = body.trimStart();

  const isSameChild = (sa: ChildSa) => sa.conn === name && sa.uniqueId === uniqueId;
  if (detail.includes(' bytes_i')) {
    const child = findLast(owner, isSameChild);
    if (child !== undefined) readChildCounters(child, detail);
    return;
  }
  if (detail.includes(' === ')) {
    const child = findLast(owner, isSameChild);
    if (child === undefined) return;
    const separator = detail.indexOf(' === ');
    child.localTs = splitSelectors(detail.slice(0, separator));
    child.remoteTs = splitSelectors(detail.slice(separator + ' === '.length));
    return;
  }

  const child = parseChildSaState(name, uniqueId, detail);
  if (child !== undefined) owner.push(child);
}

/** Builds a CHILD_SA from its state line; undefined when the line is not one. */
function parseChildSaState(name: string, uniqueId: number, body: string): ChildSa | undefined {
  const state = CHILD_SA_STATE.exec(body);
  if (state === null) return undefined;
  const rest = state[4]!;
  const child: ChildSa = {
    conn: name,
    uniqueId,
    state: CHILD_SA_STATES.has(state[1]!) ? (state[1] as ChildSaState) : 'UNKNOWN',
    mode: state[2]!,
    udpEncap: false,
    localTs: [],
    remoteTs: [],
  };
  const reqid = parseCount(state[3]);
  if (reqid !== undefined) child.reqid = reqid;

  const spis = CHILD_SA_SPIS.exec(rest);
  if (spis !== null) {
    child.protocol = spis[1] === 'AH' ? 'AH' : 'ESP';
    child.udpEncap = spis[2] !== undefined;
    child.spiIn = spis[3];
    child.spiOut = spis[4];
  }
  const expires = parseDurationSeconds(EXPIRES_IN.exec(rest)?.[1]);
  if (expires !== undefined) child.expiresInSeconds = expires;
  return child;
}

/**
 * Reads "<proposal>, 336 bytes_i (4 pkts, 68s ago), 0 bytes_o, rekeying in 39 minutes".
 * Packets and last use are printed only once the direction was used.
 */
function readChildCounters(child: ChildSa, body: string): void {
  const line = body.startsWith(',') ? body : `, ${body}`; // an empty proposal starts with ","
  const bytesIn = BYTES_IN.exec(line);
  const bytesOut = BYTES_OUT.exec(line);
  const counters: Partial<ChildSa> = {
    bytesIn: parseCount(bytesIn?.[1]),
    packetsIn: parseCount(bytesIn?.[2]),
    lastInSecondsAgo: parseCount(bytesIn?.[3]),
    bytesOut: parseCount(bytesOut?.[1]),
    packetsOut: parseCount(bytesOut?.[2]),
    lastOutSecondsAgo: parseCount(bytesOut?.[3]),
    rekeyInSeconds: parseDurationSeconds(REKEY_IN.exec(line)?.[1]),
  };
  Object.assign(child, withoutUndefined(counters));
}

/** The last element satisfying `predicate` (Array.prototype.findLast is not in ES2022). */
function findLast<T>(items: readonly T[], predicate: (item: T) => boolean): T | undefined {
  for (let index = items.length - 1; index >= 0; index -= 1) {
    if (predicate(items[index]!)) return items[index];
  }
  return undefined;
}
