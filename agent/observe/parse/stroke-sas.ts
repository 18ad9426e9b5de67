/**
 * Reads the IKE_SA and CHILD_SA lines of `ipsec status[all]` (strongSwan 5.9 stroke_list.c).
 * Every line starts with a right-aligned name and a key, `a-to-b[1]:` for an IKE_SA and
 * `a-to-b{1}:` for a CHILD_SA; the caller splits that off and passes name, unique id and body.
 *
 *       a-to-b[1]: ESTABLISHED 3 minutes ago, 172.16.0.18[172.16.0.18]...172.16.0.2[172.16.0.2]
 *       a-to-b[1]: IKEv2 SPIs: ec8c014e33ce8051_i* ebc560b1753a30d1_r, rekeying in 2 hours
 *       a-to-b[1]: IKE proposal: AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048
 *       a-to-b{1}:  INSTALLED, TUNNEL, reqid 1, ESP in UDP SPIs: f7ec1834_i dd9339c1_o
 *       a-to-b{1}:  AES_CBC_256/HMAC_SHA2_256_128, 336 bytes_i (4 pkts, 68s ago), ...
 *       a-to-b{1}:   10.1.0.0/16 === 10.2.0.0/16
 *
 * Only the state lines and, with statusall, the SPI and counter lines carry data; proposals,
 * task lists and remote EAP/XAuth identities are skipped. Pure and total: never throws.
 */

import { toChildSaState, toIkeSaState } from './states.js';
import { parseCount, parseDurationSeconds, setIfDefined, splitWords } from './text.js';
import type { ChildSa, IkeSa } from './types.js';

/** IKE_SA state "ESTABLISHED 3 minutes ago, <endpoints>" ("ago" only when ESTABLISHED). */
const IKE_SA_STATE = /^([A-Z]+)(?: (\d+ [a-z]+) ago)?, (.*)$/s;
/** IKE_SA SPIs "IKEv2 SPIs: ec8c014e33ce8051_i* ebc560b1753a30d1_r, rekeying in 2 hours". */
const IKE_SA_SPIS = /^IKEv([12]) SPIs: ([0-9a-f]+)_i(\*?) ([0-9a-f]+)_r(\*?)(.*)$/s;
/** CHILD_SA state "INSTALLED, TUNNEL, reqid 1, ESP in UDP SPIs: f7ec1834_i dd9339c1_o". */
const CHILD_SA_STATE = /^([A-Z]+), ([A-Z_]+)(?:, reqid (\d+))?(.*)$/s;
/** Inside a CHILD_SA state line: ", ESP in UDP SPIs: f7ec1834_i dd9339c1_o". */
const CHILD_SA_SPIS = /, (ESP|AH)( in UDP)? SPIs: ([0-9a-f]+)_i ([0-9a-f]+)_o/;
/**
 * Inside a CHILD_SA counter line: "336 bytes_i (4 pkts, 68s ago)" at its start or after ", "
 * (it follows the proposal, which may be empty); the () part is optional.
 */
const BYTES_IN = /(?:^|, )(\d+) bytes_i(?: \((\d+) pkts?, (\d+)s ago\))?/;
/** Inside a CHILD_SA counter line: "336 bytes_o (4 pkts, 68s ago)", placed as BYTES_IN. */
const BYTES_OUT = /(?:^|, )(\d+) bytes_o(?: \((\d+) pkts?, (\d+)s ago\))?/;
/** ", rekeying in 39 minutes" (IKE_SA and CHILD_SA). */
const REKEY_IN = /rekeying in (\d+ [a-z]+)/;
/** ", pre-shared key reauthentication in 2 hours" (IKE_SA). */
const REAUTH_IN = /reauthentication in (\d+ [a-z]+)/;
/** ", expires in 8 minutes" (REKEYING or REKEYED CHILD_SA). */
const EXPIRES_IN = /expires in (\d+ [a-z]+)/;

/**
 * Reads a line keyed `name[uniqueId]:`. Returns a new IKE_SA for a state line (the caller
 * appends it and makes it current); applies a detail line to the IKE_SA with that key in
 * `ikeSas`, preferring `current`, and returns undefined.
 */
export function readIkeSaLine(
  name: string,
  uniqueId: number,
  body: string,
  ikeSas: readonly IkeSa[],
  current: IkeSa | undefined,
): IkeSa | undefined {
  const spis = IKE_SA_SPIS.exec(body);
  if (spis !== null) {
    const ikeSa =
      current !== undefined && isSa(current, name, uniqueId)
        ? current
        : findLastSa(ikeSas, name, uniqueId);
    if (ikeSa === undefined) return undefined;
    ikeSa.ikeVersion = spis[1] === '1' ? 1 : 2;
    ikeSa.initiatorSpi = spis[2];
    ikeSa.responderSpi = spis[4];
    ikeSa.isInitiator = spis[3] === '*';
    const timers = spis[6]!;
    const rekey = parseDurationSeconds(REKEY_IN.exec(timers)?.[1]);
    if (rekey !== undefined) ikeSa.rekeyInSeconds = rekey;
    const reauth = parseDurationSeconds(REAUTH_IN.exec(timers)?.[1]);
    if (reauth !== undefined) ikeSa.reauthInSeconds = reauth;
    return undefined;
  }

  const state = IKE_SA_STATE.exec(body);
  if (state === null) return undefined; // proposal, tasks, remote EAP/XAuth identity
  const ikeSa: IkeSa = {
    conn: name,
    uniqueId,
    state: toIkeSaState(state[1]),
    ...parseIkeEndpoints(state[3]!),
    children: [],
  };
  const established = parseDurationSeconds(state[2]);
  if (established !== undefined) ikeSa.establishedSecondsAgo = established;
  return ikeSa;
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
 * Reads a line keyed `name{uniqueId}:` into `owner`: the children of the IKE_SA printed above,
 * or the routed list. A state line appends a new CHILD_SA; a counter or selector line updates
 * the CHILD_SA with that key in `owner`.
 */
export function readChildSaLine(
  name: string,
  uniqueId: number,
  body: string,
  owner: ChildSa[],
): void {
  const detail = body.trimStart();

  if (detail.includes(' bytes_i')) {
    const child = findLastSa(owner, name, uniqueId);
    if (child !== undefined) readChildCounters(child, detail);
    return;
  }
  const separator = detail.indexOf(' === ');
  if (separator >= 0) {
    const child = findLastSa(owner, name, uniqueId);
    if (child === undefined) return;
    child.localTs = splitWords(detail.slice(0, separator));
    child.remoteTs = splitWords(detail.slice(separator + ' === '.length));
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
    state: toChildSaState(state[1]),
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
  const bytesIn = BYTES_IN.exec(body);
  if (bytesIn !== null) {
    setIfDefined(child, 'bytesIn', parseCount(bytesIn[1]));
    setIfDefined(child, 'packetsIn', parseCount(bytesIn[2]));
    setIfDefined(child, 'lastInSecondsAgo', parseCount(bytesIn[3]));
  }
  const bytesOut = BYTES_OUT.exec(body);
  if (bytesOut !== null) {
    setIfDefined(child, 'bytesOut', parseCount(bytesOut[1]));
    setIfDefined(child, 'packetsOut', parseCount(bytesOut[2]));
    setIfDefined(child, 'lastOutSecondsAgo', parseCount(bytesOut[3]));
  }
  setIfDefined(child, 'rekeyInSeconds', parseDurationSeconds(REKEY_IN.exec(body)?.[1]));
}

/** Whether `sa` (IKE_SA or CHILD_SA) is the one keyed `name` and `uniqueId`. */
function isSa(sa: { conn: string; uniqueId: number }, name: string, uniqueId: number): boolean {
  return sa.conn === name && sa.uniqueId === uniqueId;
}

/** The last SA in `sas` keyed `name` and `uniqueId`: the one printed closest above. */
function findLastSa<T extends { conn: string; uniqueId: number }>(
  sas: readonly T[],
  name: string,
  uniqueId: number,
): T | undefined {
  for (let index = sas.length - 1; index >= 0; index -= 1) {
    if (isSa(sas[index]!, name, uniqueId)) return sas[index];
  }
  return undefined;
}
