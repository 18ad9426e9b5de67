/**
 * Maps charon's vici `list-sas` answer (one `list-sa` event per IKE_SA, as ViciClient.listSas
 * returns them) to the shared IkeSa/ChildSa types, so planners read vici and stroke alike.
 *
 *     { "a-to-b": { uniqueid: "1", version: "2", state: "ESTABLISHED", "local-host": ...,
 *         "child-sas": { "a-to-b-1": { name: "a-to-b", uniqueid: "1", state: "INSTALLED",
 *           "local-ts": ["10.1.0.0/16"], "remote-ts": ["10.2.0.0/16"], ... } } } }
 *
 * The same shape arrives in `ike-updown` / `child-updown` events next to an `up` key, so
 * `ikeSasFromViciEvent` maps those too.
 *
 * Pure and total: never throws. Entries that are not sections, and SAs without a numeric
 * unique id, are skipped; fields that are missing or unreadable stay undefined; state words
 * strongSwan may add later become UNKNOWN. vici carries no key material, and nothing here
 * would keep it.
 */
import type { ViciMessage, ViciValue } from '../host/vici-codec.js';
import { toChildSaState, toIkeSaState } from './parse/states.js';
import { parseCount, withoutUndefined } from './parse/text.js';
import type { ChildSa, IkeSa } from './parse/types.js';

type ViciEntry = ViciMessage[string];

function isSection(entry: ViciEntry | undefined): entry is ViciMessage {
  return typeof entry === 'object' && !Array.isArray(entry) && !(entry instanceof Uint8Array);
}

function text(section: ViciMessage, key: string): string | undefined {
  const value = section[key];
  return typeof value === 'string' ? value : undefined;
}

function number(section: ViciMessage, key: string): number | undefined {
  return parseCount(text(section, key));
}

function textList(section: ViciMessage, key: string): string[] {
  const value = section[key];
  if (!Array.isArray(value)) return [];
  return value.filter((item: ViciValue): item is string => typeof item === 'string');
}

/** An SPI as the shared types keep it: lowercase hex without `0x`. */
function spi(section: ViciMessage, key: string): string | undefined {
  const value = text(section, key)?.toLowerCase().replace(/^0x/, '');
  return value !== undefined && /^[0-9a-f]{1,16}$/.test(value) ? value : undefined;
}

function protocol(section: ViciMessage): 'ESP' | 'AH' | undefined {
  const value = text(section, 'protocol')?.toUpperCase();
  return value === 'ESP' || value === 'AH' ? value : undefined;
}

function ikeVersion(section: ViciMessage): 1 | 2 | undefined {
  const value = text(section, 'version');
  if (value === '1') return 1;
  if (value === '2') return 2;
  return undefined;
}

/**
 * A CHILD_SA's name: the `name` key (strongSwan keys `child-sas` by `<name>-<uniqueid>`), else
 * the key without a trailing `-<uniqueid>`.
 */
function childName(key: string, section: ViciMessage, uniqueId: number): string {
  const named = text(section, 'name');
  if (named !== undefined) return named;
  const suffix = `-${uniqueId}`;
  return key.endsWith(suffix) ? key.slice(0, -suffix.length) : key;
}

function childSa(key: string, section: ViciMessage): ChildSa | undefined {
  const uniqueId = number(section, 'uniqueid');
  if (uniqueId === undefined) return undefined;
  const mapped: ChildSa = {
    conn: childName(key, section, uniqueId),
    uniqueId,
    state: toChildSaState(text(section, 'state')),
    mode: text(section, 'mode')?.toUpperCase(),
    reqid: number(section, 'reqid'),
    protocol: protocol(section),
    udpEncap: text(section, 'encap') === 'yes',
    spiIn: spi(section, 'spi-in'),
    spiOut: spi(section, 'spi-out'),
    localTs: textList(section, 'local-ts'),
    remoteTs: textList(section, 'remote-ts'),
    bytesIn: number(section, 'bytes-in'),
    bytesOut: number(section, 'bytes-out'),
    packetsIn: number(section, 'packets-in'),
    packetsOut: number(section, 'packets-out'),
    lastInSecondsAgo: number(section, 'use-in'),
    lastOutSecondsAgo: number(section, 'use-out'),
    installedSecondsAgo: number(section, 'install-time'),
    rekeyInSeconds: number(section, 'rekey-time'),
    expiresInSeconds: number(section, 'life-time'),
  };
  return withoutUndefined(mapped) as ChildSa;
}

function ikeSa(conn: string, section: ViciMessage): IkeSa | undefined {
  const uniqueId = number(section, 'uniqueid');
  if (uniqueId === undefined) return undefined;
  const childSection = section['child-sas'];
  const children = isSection(childSection)
    ? Object.entries(childSection).flatMap(([key, entry]) => {
        const child = isSection(entry) ? childSa(key, entry) : undefined;
        return child === undefined ? [] : [child];
      })
    : [];
  const mapped: IkeSa = {
    conn,
    uniqueId,
    state: toIkeSaState(text(section, 'state')),
    ikeVersion: ikeVersion(section),
    establishedSecondsAgo: number(section, 'established'),
    localAddress: text(section, 'local-host'),
    localId: text(section, 'local-id'),
    remoteAddress: text(section, 'remote-host'),
    remoteId: text(section, 'remote-id'),
    localPort: number(section, 'local-port'),
    remotePort: number(section, 'remote-port'),
    initiatorSpi: spi(section, 'initiator-spi'),
    responderSpi: spi(section, 'responder-spi'),
    isInitiator: text(section, 'initiator') === 'yes',
    rekeyInSeconds: number(section, 'rekey-time'),
    reauthInSeconds: number(section, 'reauth-time'),
    children: children.sort((left, right) => left.uniqueId - right.uniqueId),
  };
  return withoutUndefined(mapped) as IkeSa;
}

/** The IKE_SAs in one `list-sa` event (charon sends one per event; more are accepted). */
function ikeSasOf(event: ViciMessage): IkeSa[] {
  return Object.entries(event).flatMap(([conn, entry]) => {
    const mapped = isSection(entry) ? ikeSa(conn, entry) : undefined;
    return mapped === undefined ? [] : [mapped];
  });
}

/** Every IKE_SA of a `list-sas` answer, ordered by unique id, with their CHILD_SAs. */
export function ikeSasFromVici(events: readonly ViciMessage[]): IkeSa[] {
  return events.flatMap(ikeSasOf).sort((left, right) => left.uniqueId - right.uniqueId);
}

/**
 * The IKE_SA an `ike-updown` or `child-updown` event is about (a child event carries only the
 * affected CHILD_SA), and whether it went up. Undefined when the event names no IKE_SA.
 */
export function ikeSasFromViciEvent(event: ViciMessage): { up: boolean; ikeSa: IkeSa } | undefined {
  const [mapped] = ikeSasOf(event);
  return mapped === undefined ? undefined : { up: text(event, 'up') === 'yes', ikeSa: mapped };
}

/**
 * The conns an `ike-rekey` or `child-rekey` event names. Such an event keeps the IKE_SA's (or
 * CHILD_SA's) `old` and `new` halves under the conn name, so only the names are read: a rekey
 * is a cue to look again, and the pass that follows lists the SAs afresh.
 */
export function connsFromViciRekeyEvent(event: ViciMessage): string[] {
  return Object.entries(event).flatMap(([conn, entry]) => (isSection(entry) ? [conn] : []));
}
