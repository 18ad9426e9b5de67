/**
 * Plans the strongSwan side of a pass: desired state x observed host -> ordered actions.
 * Pure: no I/O, no clock. The order is the order apply/ must follow:
 *   1. terminate SAs of conns removed from the desired state (while charon still knows them)
 *   2. include lines, secrets file, conf file
 *   3. start strongSwan, or reload conns / reread secrets in the running charon
 *   4. re-establish initiated conns whose SAs carry stale traffic selectors, initiate missing
 */
import { ErrorCode, TunnelwardenError } from '../errors.js';
import { parseIp, selectorKey } from '../model/net.js';
import type { HostPaths } from '../model/paths.js';
import type { DesiredState, SiteToSiteConnection } from '../model/schema.js';
import type { IpsecObservation } from '../observe/ipsec.js';
import { includeLine } from '../observe/ipsec.js';
import type { IkeSa, LoadedConn } from '../observe/parse/types.js';
import type { ConnChanges, IpsecAction } from './actions.js';
import { renderedConnNames } from './ipsec-render.js';

/** What the planner is given. */
export interface IpsecPlanInput {
  desired: DesiredState;
  observed: IpsecObservation;
  paths: HostPaths;
  /** Our conf file as it should be. */
  renderedConf: string;
  /** SHA-256 of our secrets file as it should be, and how many entries it has. */
  renderedSecretsSha256: string;
  renderedSecretsEntries: number;
}

/** Permission bits of our secrets file: root only. */
export const SECRETS_FILE_MODE = 0o600;
/** Permission bits of our conf file. */
export const CONF_FILE_MODE = 0o644;

const connHeader = /^conn\s+(\S+)\s*$/;

/** Splits an ipsec.conf-format text into its conn sections (name -> section text). */
export function connSections(text: string | undefined): Map<string, string> {
  const sections = new Map<string, string>();
  if (text === undefined) return sections;
  let current: string | undefined;
  let lines: string[] = [];
  const flush = () => {
    if (current !== undefined) sections.set(current, lines.join('\n').trimEnd());
  };
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    if (!/^\s/.test(line)) {
      flush();
      const match = connHeader.exec(line);
      current = match ? match[1] : undefined;
      lines = [line];
    } else if (current !== undefined) {
      lines.push(line.trim());
    }
  }
  flush();
  return sections;
}

function diffSections(before: Map<string, string>, after: Map<string, string>): ConnChanges {
  const added = [...after.keys()].filter((name) => !before.has(name));
  const removed = [...before.keys()].filter((name) => !after.has(name));
  const changed = [...after.keys()].filter(
    (name) => before.has(name) && before.get(name) !== after.get(name),
  );
  return { added, changed, removed };
}

function describeChanges(changes: ConnChanges): string | undefined {
  const parts = (['added', 'changed', 'removed'] as const)
    .filter((key) => changes[key].length > 0)
    .map((key) => `${key}: ${changes[key].join(', ')}`);
  return parts.length > 0 ? `[${parts.join('; ')}]` : undefined;
}

function selectorsMatch(
  child: { localTs: string[]; remoteTs: string[] },
  connection: SiteToSiteConnection,
): boolean {
  return (
    selectorKey(child.localTs) === selectorKey(connection.local.subnets) &&
    selectorKey(child.remoteTs) === selectorKey(connection.remote.subnets)
  );
}

/** Addresses compare by value ("FE80::1" is "fe80::1"); names and %any as written. */
function sameAddress(a: string, b: string): boolean {
  const left = parseIp(a);
  const right = parseIp(b);
  return left && right ? left.family === right.family && left.value === right.value : a === b;
}

/** Why charon's loaded copy of a site-to-site conn differs from the desired one, if it does. */
function loadedStaleness(loaded: LoadedConn, connection: SiteToSiteConnection): string | undefined {
  if (!sameAddress(loaded.localAddress, connection.local.address)) {
    return `loaded with local address ${loaded.localAddress}, want ${connection.local.address}`;
  }
  if (!sameAddress(loaded.remoteAddress, connection.remote.address)) {
    return `loaded with remote address ${loaded.remoteAddress}, want ${connection.remote.address}`;
  }
  const child = loaded.children.find((candidate) => candidate.name === connection.name);
  if (!child) return 'loaded without its CHILD_SA config';
  if (!selectorsMatch(child, connection)) {
    return `loaded with traffic selectors ${child.localTs.join(' ')} === ${child.remoteTs.join(' ')}`;
  }
  return undefined;
}

function describeSas(sas: IkeSa[]): string {
  return sas.map((sa) => `#${sa.uniqueId} ${sa.state}`).join(', ');
}

/**
 * Loaded conns by name. strongSwan merges a conn whose IKE settings equal an earlier conn's into
 * that conn's config ("added child to existing configuration"): it is then listed only as a
 * child of the earlier one, with the earlier one's addresses.
 */
export function loadedConnsByName(connections: readonly LoadedConn[]): Map<string, LoadedConn> {
  const byName = new Map<string, LoadedConn>();
  for (const conn of connections) byName.set(conn.name, conn);
  for (const conn of connections) {
    for (const child of conn.children) {
      if (!byName.has(child.name)) byName.set(child.name, { ...conn, name: child.name, children: [child] });
    }
  }
  return byName;
}

/**
 * The IKE_SAs that carry a conn, each with only that conn's CHILD_SAs: its own IKE_SAs, and
 * those of the conn it was merged into that hold CHILD_SAs of its name.
 */
export function ikeSasOfConn(ikeSas: readonly IkeSa[], name: string): IkeSa[] {
  return ikeSasByConn(ikeSas)(name);
}

/** A conn's IKE_SAs (from ikeSasOfConn) carry it: one ESTABLISHED with an INSTALLED CHILD_SA. */
export function isConnUp(connSas: readonly IkeSa[]): boolean {
  return connSas.some((sa) => sa.state === 'ESTABLISHED' && sa.children.some((child) => child.state === 'INSTALLED'));
}

/**
 * ikeSasOfConn for every conn at once, in one pass over the IKE_SAs (a hub with a thousand
 * conns asks for each of them). Returns a lookup by conn name.
 */
export function ikeSasByConn(ikeSas: readonly IkeSa[]): (name: string) => IkeSa[] {
  const byConn = new Map<string, IkeSa[]>();
  for (const sa of ikeSas) {
    for (const name of new Set([sa.conn, ...sa.children.map((child) => child.conn)])) {
      const carried = { ...sa, children: sa.children.filter((child) => child.conn === name) };
      const list = byConn.get(name);
      if (list) list.push(carried);
      else byConn.set(name, [carried]);
    }
  }
  return (name) => byConn.get(name) ?? [];
}

/**
 * Road warriors authenticate with EAP-MSCHAPv2, a plugin Debian ships apart from charon
 * (libcharon-extauth-plugins). Without it every client is refused at EAP time with nothing
 * in tunnelwarden's view to say why, so a running charon that lists its plugins and lacks it
 * stops the resource here. Throws TunnelwardenError strongswanPluginMissing.
 */
function requireRoadWarriorPlugins(desired: DesiredState, observed: IpsecObservation): void {
  const plugins = observed.status.plugins;
  if (desired.ipsec?.roadWarrior === undefined || !observed.charonRunning || plugins.length === 0) return;
  if (plugins.includes('eap-mschapv2')) return;
  throw new TunnelwardenError(
    'unsupported',
    ErrorCode.strongswanPluginMissing,
    "road warriors need charon's eap-mschapv2 plugin, which is not loaded (Debian: apt-get " +
      'install libcharon-extauth-plugins, then restart strongSwan)',
  );
}

/** Plans the ipsec resource. Throws TunnelwardenError when strongSwan is not installed. */
export function planIpsec(input: IpsecPlanInput): IpsecAction[] {
  const { desired, observed, paths } = input;
  const desiredNames = renderedConnNames(desired);
  const previousSections = connSections(observed.ourConf);
  const renderedSections = connSections(input.renderedConf);
  const wantsConns = desiredNames.length > 0;
  if (!wantsConns && observed.ourConf === undefined) return [];
  if (!observed.installed) {
    throw new TunnelwardenError(
      'unsupported',
      ErrorCode.strongswanMissing,
      'strongSwan is not installed: the ipsec command is missing (Debian: apt-get install ' +
        'strongswan libcharon-extra-plugins)',
    );
  }

  requireRoadWarriorPlugins(desired, observed);

  const actions: IpsecAction[] = [];
  const status = observed.status;
  const sasOf = ikeSasByConn(status.ikeSas);
  const loaded = loadedConnsByName(status.connections);
  const wanted = new Set(desiredNames);
  const removed = [...previousSections.keys()].filter((name) => !wanted.has(name));

  for (const name of removed) {
    const sas = sasOf(name);
    if (observed.charonRunning && sas.length > 0) {
      actions.push({
        resource: 'ipsec',
        type: 'terminate',
        target: name,
        reason: `removed from the desired state; IKE_SA ${describeSas(sas)} still up`,
      });
    }
  }

  const includes: [string, boolean][] = [
    [paths.ipsecConf, observed.ipsecConfIncludesOurs],
    [paths.ipsecSecrets, observed.ipsecSecretsIncludesOurs],
  ];
  for (const [file, present] of includes) {
    if (present) continue;
    actions.push({
      resource: 'ipsec',
      type: 'ensure-include',
      target: file,
      line: includeLine(file === paths.ipsecConf ? paths.ourConf : paths.ourSecrets),
      reason: `${file} does not include our file`,
    });
  }

  const secretsStale =
    observed.ourSecretsSha256 !== input.renderedSecretsSha256 ||
    observed.ourSecretsMode !== SECRETS_FILE_MODE;
  if (secretsStale) {
    actions.push({
      resource: 'ipsec',
      type: 'write-secrets',
      target: paths.ourSecrets,
      entries: input.renderedSecretsEntries,
      detail: `[${input.renderedSecretsEntries} ${input.renderedSecretsEntries === 1 ? 'entry' : 'entries'}, content not shown]`,
      reason:
        observed.ourSecretsSha256 === undefined
          ? 'file missing'
          : observed.ourSecretsSha256 !== input.renderedSecretsSha256
            ? 'content differs from the desired secrets'
            : `mode ${observed.ourSecretsMode?.toString(8)} is not 600`,
    });
  }

  const changes = diffSections(previousSections, renderedSections);
  const confStale = observed.ourConf !== input.renderedConf;
  if (confStale) {
    actions.push({
      resource: 'ipsec',
      type: 'write-conf',
      target: paths.ourConf,
      content: input.renderedConf,
      changes,
      detail: describeChanges(changes),
      reason: observed.ourConf === undefined ? 'file missing' : 'content differs from the desired conns',
    });
  }

  const siteConns = desired.ipsec?.connections ?? [];
  const ignored = new Set(siteConns.filter((conn) => conn.auto === 'ignore').map((conn) => conn.name));
  if (desired.ipsec?.roadWarrior) ignored.add(desired.ipsec.roadWarrior.name);
  const expectLoaded = desiredNames.filter((name) => !ignored.has(name));
  const expectUnloaded = [...removed, ...ignored].filter((name) => previousSections.has(name));

  if (!observed.charonRunning) {
    if (!wantsConns) return actions;
    actions.push({
      resource: 'ipsec',
      type: 'start-strongswan',
      target: 'charon',
      expectLoaded,
      reason: 'charon is not running',
    });
  } else {
    const reloadReasons: string[] = [];
    if (confStale || !observed.ipsecConfIncludesOurs) reloadReasons.push('conf file rewritten');
    const missing = expectLoaded.filter((name) => !loaded.has(name));
    if (missing.length > 0) reloadReasons.push(`not loaded: ${missing.join(', ')}`);
    for (const connection of siteConns) {
      const loadedConn = loaded.get(connection.name);
      const staleness = loadedConn && !ignored.has(connection.name) && loadedStaleness(loadedConn, connection);
      if (staleness) reloadReasons.push(`${connection.name} ${staleness}`);
    }
    const lingering = expectUnloaded.filter((name) => loaded.has(name));
    if (lingering.length > 0) reloadReasons.push(`still loaded after removal: ${lingering.join(', ')}`);
    if (reloadReasons.length > 0) {
      actions.push({
        resource: 'ipsec',
        type: 'reload-conns',
        target: 'charon',
        expectLoaded,
        expectUnloaded,
        reason: reloadReasons.join('; '),
      });
    }
    if (secretsStale || !observed.ipsecSecretsIncludesOurs) {
      actions.push({
        resource: 'ipsec',
        type: 'reread-secrets',
        target: 'charon',
        reason: 'secrets file rewritten',
      });
    }
  }

  for (const connection of siteConns) {
    if (!connection.initiate || connection.auto === 'ignore') continue;
    actions.push(...planInitiation(connection, sasOf(connection.name), changes));
  }
  return actions;
}

/** Actions that bring one initiated conn to an ESTABLISHED IKE_SA with a matching CHILD_SA. */
function planInitiation(
  connection: SiteToSiteConnection,
  sas: IkeSa[],
  changes: ConnChanges,
): IpsecAction[] {
  const name = connection.name;
  const established = sas.filter((sa) => sa.state === 'ESTABLISHED');
  const installed = established.flatMap((sa) =>
    sa.children.filter((child) => child.state === 'INSTALLED'),
  );
  const current = installed.filter((child) => selectorsMatch(child, connection));
  const initiate = (reason: string): IpsecAction => ({ resource: 'ipsec', type: 'initiate', target: name, reason });
  const terminate = (reason: string): IpsecAction => ({ resource: 'ipsec', type: 'terminate', target: name, reason });

  if (established.length > 0 && changes.changed.includes(name)) {
    const reason = 'conn options changed; re-establish so the SAs use them';
    return [terminate(reason), initiate(reason)];
  }
  if (current.length > 0) return [];
  if (installed.length > 0) {
    const stale = installed[0]!;
    const reason =
      `CHILD_SA ${name}{${stale.uniqueId}} carries ${stale.localTs.join(' ')} === ` +
      `${stale.remoteTs.join(' ')}, not the desired selectors`;
    return [terminate(reason), initiate(reason)];
  }
  if (established.length > 0) {
    return [initiate(`IKE_SA #${established[0]!.uniqueId} is ESTABLISHED but has no INSTALLED CHILD_SA`)];
  }
  const connecting = sas.filter((sa) => sa.state === 'CONNECTING');
  if (connecting.length > 0) {
    return [
      {
        resource: 'ipsec',
        type: 'await-established',
        target: name,
        reason: `IKE_SA #${connecting[0]!.uniqueId} is CONNECTING`,
      },
    ];
  }
  return [initiate(sas.length === 0 ? 'no IKE_SA' : `IKE_SA ${describeSas(sas)} not usable`)];
}
