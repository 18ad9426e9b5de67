/**
 * Parsers for the text output of strongSwan's `swanctl` (5.9): `--list-sas` and `--list-conns`
 * (`--list-pols` is in swanctl-pols.ts). The formats follow swanctl's commands/list_*.c: an
 * unindented line per entry, its details indented by two spaces, child entries indented by two
 * and their details by four.
 *
 *     a-to-b: #1, ESTABLISHED, IKEv2, ec8c014e33ce8051_i* ebc560b1753a30d1_r      --list-sas
 *       local  '172.16.0.18' @ 172.16.0.18[4500]
 *       established 222s ago, rekeying in 9760s
 *       a-to-b: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_CBC-256/HMAC_SHA2_256_128
 *         in  f7ec1834,    336 bytes,     4 packets,    68s ago
 *         local  10.1.0.0/16
 *
 * Pure and total: no I/O, never throws, unknown or malformed lines are skipped, and every
 * regular expression is anchored, so parsing is linear in the input size.
 *
 * Limitations: proposals, task queues, virtual IPs and remote EAP/XAuth identities of IKE_SAs
 * are not reported; of a connection's authentication rounds only the first local and the first
 * remote one are.
 */

import { toChildSaState, toIkeSaState } from './states.js';
import type { ChildSa, IkeSa, LoadedChild, LoadedConn } from './types.js';
import { eachLine, parseCount, setIfDefined, splitWords } from './text.js';

/** IKE_SA header "a-to-b: #1, ESTABLISHED, IKEv2, ec8c..._i* ebc5..._r" (`*` marks our side). */
const SA_IKE_HEADER =
  /^(\S+): #(\d{1,10}), ([A-Z]+), IKEv(\d), ([0-9a-f]+)_i(\*?) ([0-9a-f]+)_r(\*?)/;
/** IKE_SA endpoint "  local  '172.16.0.18' @ 172.16.0.18[4500]"; the id may hold any text. */
const SA_ENDPOINT = /^ {2}(local|remote) +'(.*)$/s;
/** IKE_SA timers "  established 222s ago, rekeying in 9760s, reauth in 10198s". */
const SA_ESTABLISHED = /^ {2}established (\d+)s ago(.*)$/s;
/** CHILD_SA header "  a-to-b: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_CBC-256/...". */
const SA_CHILD_HEADER =
  /^ {2}(\S+): #(\d{1,10}), reqid ([^,]*), ([A-Z]+), ([A-Z_]+)(-in-UDP)?, ([A-Z]+):/;
/** CHILD_SA timers "    installed 222s ago, rekeying in 2342s, expires in 3378s". */
const SA_INSTALLED = /^ {4}installed (\d+)s ago(.*)$/s;
/**
 * CHILD_SA direction "    in  f7ec1834,    336 bytes,     4 packets,    68s ago". The SPI may be
 * followed by "/<cpi>" and a mark " (0x2a/0xff)"; "<n>s ago" appears once the SA was used.
 */
const SA_DIRECTION = new RegExp(
  String.raw`^ {4}(in|out) +([0-9a-f]+)(?:/[0-9a-f]+)?(?: \([^)]*\))?` +
    String.raw`, +(\d+) bytes, +(\d+) packets(?:, +(\d+)s ago)?`,
);
/** CHILD_SA selectors "    local  10.1.0.0/16 10.5.0.0/24" / "    remote 10.2.0.0/16". */
const SA_SELECTORS = /^ {4}(local|remote) +(.*)$/s;
/** ", rekeying in 9760s" inside a timer line. */
const REKEY_IN = /, rekeying in (\d+)s/;
/** ", reauth in 10198s" inside an IKE_SA timer line. */
const REAUTH_IN = /, reauth in (\d+)s/;
/** ", expires in 3378s" inside a CHILD_SA timer line. */
const EXPIRES_IN = /, expires in (\d+)s/;

/** Connection header "a-to-b: IKEv2, no reauthentication, rekeying every 10260s". */
const CONN_HEADER = /^(\S+): (IKE[^\s,]*),/;
/** Connection addresses "  local:  172.16.0.18" (one line per address). */
const CONN_ADDRESS = /^ {2}(local|remote): +(\S+)$/;
/** Authentication round "  remote EAP_MSCHAPV2 authentication:". */
const CONN_AUTH = /^ {2}(local|remote) (.+) authentication:$/s;
/** Identity inside an authentication round "    id: vpn.example.com". */
const CONN_AUTH_ID = /^ {4}id: (.+)$/s;
/** Child config "  a-to-b: TUNNEL, rekeying every 3060s" (mode then options). */
const CONN_CHILD = /^ {2}(\S+): ([A-Z_]+)(?:,|$)/;
/** Child config selectors "    local:  10.1.0.0/16" / "    remote: dynamic". */
const CONN_CHILD_SELECTORS = /^ {4}(local|remote): +(.*)$/s;

/**
 * Parses `swanctl --list-sas`. Each CHILD_SA goes to the IKE_SA printed above it; CHILD_SA
 * lines before any IKE_SA are skipped. Pure, total, linear; empty text gives [].
 *
 * A line's indentation says which formats it can have, so only those are tried.
 */
export function parseSwanctlListSas(text: string): IkeSa[] {
  const ikeSas: IkeSa[] = [];
  let ikeSa: IkeSa | undefined;
  let child: ChildSa | undefined;

  for (const line of eachLine(text)) {
    switch (leadingSpaces(line)) {
      case 0: {
        const ikeHeader = SA_IKE_HEADER.exec(line);
        if (ikeHeader === null) break;
        ikeSa = newIkeSa(ikeHeader);
        ikeSas.push(ikeSa);
        child = undefined;
        break;
      }
      case 2: {
        if (ikeSa === undefined) break;
        const childHeader = SA_CHILD_HEADER.exec(line);
        if (childHeader === null) {
          readIkeDetail(ikeSa, line);
          break;
        }
        child = newChildSa(childHeader);
        ikeSa.children.push(child);
        break;
      }
      case 4:
        if (child !== undefined) readChildDetail(child, line);
        break;
      default: // no line of --list-sas is indented otherwise
        break;
    }
  }
  return ikeSas;
}

/** The number of spaces a line starts with. */
function leadingSpaces(line: string): number {
  let count = 0;
  while (line.startsWith(' ', count)) count += 1;
  return count;
}

function newIkeSa(header: RegExpExecArray): IkeSa {
  const version = header[4];
  return {
    conn: header[1]!,
    uniqueId: Number(header[2]),
    state: toIkeSaState(header[3]),
    ...(version === '1' || version === '2' ? { ikeVersion: version === '1' ? 1 : 2 } : {}),
    initiatorSpi: header[5]!,
    responderSpi: header[7]!,
    isInitiator: header[6] === '*',
    children: [],
  };
}

/** Reads an IKE_SA detail line: an endpoint or the timers; proposal and tasks are skipped. */
function readIkeDetail(ikeSa: IkeSa, line: string): void {
  const endpoint = SA_ENDPOINT.exec(line);
  if (endpoint !== null) {
    const parsed = parseSaEndpoint(endpoint[2]!);
    if (parsed === undefined) return;
    if (endpoint[1] === 'local') {
      ikeSa.localId = parsed.id;
      ikeSa.localAddress = parsed.address;
      setIfDefined(ikeSa, 'localPort', parsed.port);
    } else {
      ikeSa.remoteId = parsed.id;
      ikeSa.remoteAddress = parsed.address;
      setIfDefined(ikeSa, 'remotePort', parsed.port);
    }
    return;
  }

  const established = SA_ESTABLISHED.exec(line);
  if (established !== null) {
    const timers = established[2]!;
    setIfDefined(ikeSa, 'establishedSecondsAgo', parseCount(established[1]));
    setIfDefined(ikeSa, 'rekeyInSeconds', parseCount(REKEY_IN.exec(timers)?.[1]));
    setIfDefined(ikeSa, 'reauthInSeconds', parseCount(REAUTH_IN.exec(timers)?.[1]));
  }
}

/**
 * Splits "172.16.0.18' @ 172.16.0.18[4500] EAP: 'bob' [10.3.0.1]" (the text after the opening
 * quote) into identity, address and port. The identity ends at the first "' @ ".
 */
function parseSaEndpoint(text: string) {
  const idEnd = text.indexOf("' @ ");
  if (idEnd < 0) return undefined;
  const hostPart = text.slice(idEnd + "' @ ".length);
  const portOpen = hostPart.indexOf('[');
  const portClose = hostPart.indexOf(']', portOpen);
  const addressEnd = portOpen < 0 ? hostPart.indexOf(' ') : portOpen;
  return {
    id: text.slice(0, idEnd),
    address: addressEnd < 0 ? hostPart : hostPart.slice(0, addressEnd),
    port:
      portOpen < 0 || portClose < 0
        ? undefined
        : parseCount(hostPart.slice(portOpen + 1, portClose)),
  };
}

function newChildSa(header: RegExpExecArray): ChildSa {
  const reqid = parseCount(header[3]);
  const protocol = header[7];
  return {
    conn: header[1]!,
    uniqueId: Number(header[2]),
    state: toChildSaState(header[4]),
    mode: header[5]!,
    ...(reqid === undefined ? {} : { reqid }),
    ...(protocol === 'ESP' || protocol === 'AH' ? { protocol } : {}),
    udpEncap: header[6] !== undefined,
    localTs: [],
    remoteTs: [],
  };
}

/** Reads a CHILD_SA detail line (four-space indent): SPI and counters, selectors or timers. */
function readChildDetail(child: ChildSa, line: string): void {
  const direction = SA_DIRECTION.exec(line);
  if (direction !== null) {
    const [, way, spi, bytes, packets, lastSecondsAgo] = direction;
    if (way === 'in') {
      child.spiIn = spi!;
      setIfDefined(child, 'bytesIn', parseCount(bytes));
      setIfDefined(child, 'packetsIn', parseCount(packets));
      setIfDefined(child, 'lastInSecondsAgo', parseCount(lastSecondsAgo));
    } else {
      child.spiOut = spi!;
      setIfDefined(child, 'bytesOut', parseCount(bytes));
      setIfDefined(child, 'packetsOut', parseCount(packets));
      setIfDefined(child, 'lastOutSecondsAgo', parseCount(lastSecondsAgo));
    }
    return;
  }

  const selectors = SA_SELECTORS.exec(line);
  if (selectors !== null) {
    if (selectors[1] === 'local') child.localTs = splitWords(selectors[2]!);
    else child.remoteTs = splitWords(selectors[2]!);
    return;
  }

  const installed = SA_INSTALLED.exec(line);
  if (installed !== null) {
    const timers = installed[2]!;
    setIfDefined(child, 'installedSecondsAgo', parseCount(installed[1]));
    setIfDefined(child, 'rekeyInSeconds', parseCount(REKEY_IN.exec(timers)?.[1]));
    setIfDefined(child, 'expiresInSeconds', parseCount(EXPIRES_IN.exec(timers)?.[1]));
  }
}

/**
 * Parses `swanctl --list-conns`. Addresses printed on several lines are joined with `,`;
 * only the first local and the first remote authentication round are reported.
 * Pure, total, linear; empty text gives [].
 */
export function parseSwanctlListConns(text: string): LoadedConn[] {
  const conns: LoadedConn[] = [];
  let conn: LoadedConn | undefined;
  let child: LoadedChild | undefined;
  let authSide: 'local' | 'remote' | undefined; // the first round of this side is being read

  for (const line of eachLine(text)) {
    const header = CONN_HEADER.exec(line);
    if (header !== null) {
      conn = {
        name: header[1]!,
        localAddress: '',
        remoteAddress: '',
        ikeVersion: header[2]!,
        children: [],
      };
      conns.push(conn);
      child = undefined;
      authSide = undefined;
      continue;
    }
    if (conn === undefined) continue;

    const address = CONN_ADDRESS.exec(line);
    if (address !== null) {
      const key = address[1] === 'local' ? 'localAddress' : 'remoteAddress';
      conn[key] = conn[key] === '' ? address[2]! : `${conn[key]},${address[2]}`;
      continue;
    }

    const auth = CONN_AUTH.exec(line);
    if (auth !== null) {
      const side = auth[1] === 'local' ? 'local' : 'remote';
      const key = side === 'local' ? 'localAuth' : 'remoteAuth';
      authSide = conn[key] === undefined ? side : undefined;
      if (authSide !== undefined) conn[key] = auth[2]!;
      continue;
    }

    const childHeader = CONN_CHILD.exec(line);
    if (childHeader !== null) {
      child = { name: childHeader[1]!, localTs: [], remoteTs: [], mode: childHeader[2]! };
      conn.children.push(child);
      authSide = undefined;
      continue;
    }

    const id = CONN_AUTH_ID.exec(line);
    if (id !== null && authSide !== undefined && child === undefined) {
      conn[authSide === 'local' ? 'localId' : 'remoteId'] = id[1]!;
      continue;
    }

    const selectors = CONN_CHILD_SELECTORS.exec(line);
    if (selectors !== null && child !== undefined) {
      if (selectors[1] === 'local') child.localTs = splitWords(selectors[2]!);
      else child.remoteTs = splitWords(selectors[2]!);
    }
  }
  return conns;
}
