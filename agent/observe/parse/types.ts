/**
 * Typed views of what strongSwan and the kernel report about IPsec, shared by the parsers in
 * this folder and by the planners that read them.
 *
 * Conventions:
 * - Names are strongSwan's: an IKE_SA is keyed by its conn name and `[uniqueId]`, a CHILD_SA by
 *   its name and `{uniqueId}`.
 * - SPIs are lowercase hex without `0x`, as strongSwan prints them (`f7ec1834`), so CHILD_SA
 *   and xfrm SPIs compare as plain strings.
 * - Durations are whole seconds. strongSwan's stroke output rounds them down to the unit it
 *   prints ("3 minutes" becomes 180), so treat stroke durations as lower bounds.
 * - Traffic selectors and addresses are kept as printed (`10.1.0.0/16`, `fd00:1::/64`,
 *   `10.1.0.1/32[udp/1701]`, `dynamic`, `%any`).
 * - Nothing here ever holds key material.
 */

/** IKE_SA states as strongSwan names them (`ike_sa_state_names`); UNKNOWN for anything else. */
export type IkeSaState =
  | 'CREATED'
  | 'CONNECTING'
  | 'ESTABLISHED'
  | 'PASSIVE'
  | 'REKEYING'
  | 'REKEYED'
  | 'DELETING'
  | 'DESTROYING'
  | 'UNKNOWN';

/** CHILD_SA states as strongSwan names them (`child_sa_state_names`); UNKNOWN for anything else. */
export type ChildSaState =
  | 'CREATED'
  | 'ROUTED'
  | 'INSTALLING'
  | 'INSTALLED'
  | 'UPDATING'
  | 'REKEYING'
  | 'REKEYED'
  | 'RETRYING'
  | 'DELETING'
  | 'DELETED'
  | 'DESTROYING'
  | 'UNKNOWN';

/** A CHILD_SA (or ROUTED trap entry) as `ipsec status[all]` or `swanctl --list-sas` show it. */
export interface ChildSa {
  /** CHILD_SA name: the conn name for ipsec.conf connections. */
  conn: string;
  uniqueId: number;
  state: ChildSaState;
  /** TUNNEL, TRANSPORT, BEET, PASS, DROP; stroke may add `_PROXY` (TRANSPORT_PROXY). */
  mode?: string;
  reqid?: number;
  protocol?: 'ESP' | 'AH';
  /** ESP in UDP (NAT-T, forceencaps, or kernel-libipsec). */
  udpEncap: boolean;
  spiIn?: string;
  spiOut?: string;
  localTs: string[];
  remoteTs: string[];
  bytesIn?: number;
  bytesOut?: number;
  packetsIn?: number;
  packetsOut?: number;
  lastInSecondsAgo?: number;
  lastOutSecondsAgo?: number;
  /** swanctl only. */
  installedSecondsAgo?: number;
  /** Seconds until this CHILD_SA is rekeyed, when the output says. */
  rekeyInSeconds?: number;
  /** Seconds until this CHILD_SA expires (a REKEYED one is waiting for this), when shown. */
  expiresInSeconds?: number;
}

/** One IKE_SA with the CHILD_SAs printed under it. */
export interface IkeSa {
  conn: string;
  uniqueId: number;
  state: IkeSaState;
  ikeVersion?: 1 | 2;
  establishedSecondsAgo?: number;
  localAddress?: string;
  localId?: string;
  remoteAddress?: string;
  remoteId?: string;
  /** swanctl only: the IKE port in use (4500 once NAT-T or MOBIKE moved it). */
  localPort?: number;
  /** swanctl only. */
  remotePort?: number;
  initiatorSpi?: string;
  responderSpi?: string;
  /** True when this host initiated the IKE_SA (strongSwan marks our SPI with `*`). */
  isInitiator?: boolean;
  /** Seconds until the IKE_SA is rekeyed, when the output says. */
  rekeyInSeconds?: number;
  /** Seconds until the IKE_SA is reauthenticated, when the output says. */
  reauthInSeconds?: number;
  children: ChildSa[];
}

/** A CHILD_SA config of a loaded connection. */
export interface LoadedChild {
  name: string;
  localTs: string[];
  remoteTs: string[];
  mode?: string;
}

/** A connection config loaded into charon (not an SA). */
export interface LoadedConn {
  name: string;
  /** As configured, `%any` included; several addresses are joined with `,`. */
  localAddress: string;
  remoteAddress: string;
  /** `IKEv1`, `IKEv2` or `IKEv1/2`, as printed. */
  ikeVersion?: string;
  /** Authentication of the first local round, e.g. `pre-shared key`, `public key`. */
  localAuth?: string;
  /** Authentication of the first remote round, e.g. `pre-shared key`, `EAP_MSCHAPV2`. */
  remoteAuth?: string;
  localId?: string;
  remoteId?: string;
  children: LoadedChild[];
}

/** What `ipsec status` or `ipsec statusall` prints; statusall-only parts stay empty otherwise. */
export interface StrongswanStatus {
  /** strongSwan version from the statusall header, e.g. `5.9.8`. */
  version?: string;
  uptimeSeconds?: number;
  plugins: string[];
  listeningAddresses: string[];
  connections: LoadedConn[];
  /** "Routed Connections": trap policies waiting for traffic. */
  routed: ChildSa[];
  ikeSas: IkeSa[];
  /** The "Security Associations (N up, M connecting)" header, when present. */
  counts?: { up: number; connecting: number };
}

/** A policy charon installed, as `swanctl --list-pols` shows it (trap, drop or pass). */
export interface SwanctlPolicy {
  /** The connection part of `conn/child`, absent when the name has no `/`. */
  conn?: string;
  child: string;
  /** TUNNEL, TRANSPORT, PASS, DROP as printed. */
  mode?: string;
  localTs: string[];
  remoteTs: string[];
}

/** A kernel SA from `ip [-s] xfrm state`. Keys are dropped while parsing and never kept here. */
export interface XfrmState {
  src: string;
  dst: string;
  /** `esp`, `ah`, `comp`, ... as printed. */
  proto: string;
  /** Lowercase hex without `0x`, zero-padded to 8 digits (`dd9339c1`). */
  spi: string;
  reqid?: number;
  /** `tunnel`, `transport`, `beet`, ... as printed. */
  mode?: string;
  encap?: { type: string; sport: number; dport: number };
  selector?: { src: string; dst: string };
  /** `mark` as printed, e.g. `0x2a/0xff`. */
  mark?: string;
  /** From `ip -s` only ("lifetime current"). */
  bytes?: number;
  /** From `ip -s` only. */
  packets?: number;
}

/** One kernel policy from `ip [-s] xfrm policy`; per-socket policies are left out. */
export interface XfrmPolicy {
  /** Selector source, e.g. `10.1.0.0/16`. */
  src: string;
  dst: string;
  dir: 'in' | 'out' | 'fwd';
  priority?: number;
  /** `allow` (iproute2 prints it only with -s; absent means allow) or `block`. */
  action?: string;
  /** `mark` as printed, e.g. `0x2a/0xff`. */
  mark?: string;
  tmpl: { src?: string; dst?: string; proto?: string; reqid?: number; mode?: string }[];
}
