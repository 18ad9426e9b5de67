/**
 * Reads the "Connections:" section of `ipsec statusall` (strongSwan 5.9 stroke_list.c): the
 * connection configs loaded into charon, each printed as a header line followed by its
 * authentication rounds and child configs, every line prefixed with a right-aligned name:
 *
 *           a-to-b:  172.16.0.18...172.16.0.2  IKEv2, dpddelay=30s
 *           a-to-b:   local:  [172.16.0.18] uses pre-shared key authentication
 *           a-to-b:   remote: [C=CH, O=Example, CN=b] uses public key authentication
 *           a-to-b:   child:  10.1.0.0/16 10.5.0.0/24 === 10.2.0.0/16 TUNNEL, dpdaction=restart
 *
 * A child config belongs to the connection printed above it, whatever its own name. Lines such
 * as "cert:", "ca:" or "group:" are skipped. Pure and total: never throws.
 */

import { splitEndpoints, splitWords } from './text.js';
import type { LoadedChild, LoadedConn } from './types.js';

/** A child config's selectors end with its mode: "TUNNEL", "TRANSPORT_PROXY", "PASS". */
const MODE_WORD = /^[A-Z][A-Z_]*$/;

/**
 * Reads one line of the "Connections:" section, given the name before its colon and the rest
 * (`body`, trimmed). Adds to `current`, the connection read last, or returns a new connection
 * when the line starts one (the caller keeps it as the next `current`).
 */
export function readConnLine(
  name: string,
  body: string,
  current: LoadedConn | undefined,
): LoadedConn | undefined {
  const labelEnd = body.indexOf(' ');
  const label = labelEnd < 0 ? body : body.slice(0, labelEnd);
  const rest = labelEnd < 0 ? '' : body.slice(labelEnd).trim();

  if (label === 'local:' || label === 'remote:') {
    if (current?.name === name) readConnAuth(current, label === 'local:', rest);
    return undefined;
  }
  if (label === 'child:') {
    const child = parseConfiguredChild(name, rest);
    if (child !== undefined) current?.children.push(child);
    return undefined;
  }

  // The connection itself: "172.16.0.18...172.16.0.2  IKEv2[ Aggressive][, dpddelay=30s]".
  const endpoints = splitEndpoints(label);
  if (endpoints === undefined) return undefined;
  const [version] = splitWords(rest);
  return {
    name,
    localAddress: endpoints.left,
    remoteAddress: endpoints.right,
    ...(version === undefined ? {} : { ikeVersion: withoutTrailingComma(version) }),
    children: [],
  };
}

/** "IKEv2," (followed by options) without its comma. */
function withoutTrailingComma(word: string): string {
  return word.endsWith(',') ? word.slice(0, -1) : word;
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
  if (methodEnd < 0) return;
  const method = rest.slice('uses '.length, methodEnd);

  if (local) {
    conn.localAuth = method;
    if (id !== undefined) conn.localId = id;
  } else {
    conn.remoteAuth = method;
    if (id !== undefined) conn.remoteId = id;
  }
}

/** Reads "10.1.0.0/16 10.5.0.0/24 === 10.2.0.0/16 TUNNEL, dpdaction=restart" (options cut off). */
function parseConfiguredChild(name: string, text: string): LoadedChild | undefined {
  const optionsAt = text.indexOf(', ');
  const selectors = optionsAt < 0 ? text : text.slice(0, optionsAt);
  const separator = selectors.indexOf(' === ');
  if (separator < 0) return undefined;

  const remote = splitWords(selectors.slice(separator + ' === '.length));
  const last = remote[remote.length - 1];
  const mode = last !== undefined && MODE_WORD.test(last) ? remote.pop() : undefined;
  return {
    name,
    localTs: splitWords(selectors.slice(0, separator)),
    remoteTs: remote,
    ...(mode === undefined ? {} : { mode }),
  };
}
