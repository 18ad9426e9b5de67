/**
 * `tunnelwarden status`: what the host looks like next to what is desired, from a fresh
 * observation (a dry-run pass and `ipsec statusall`), plus the running daemon's last pass from
 * its status file when there is one. Read-only: nothing on the host changes.
 *
 * The report is data (`StatusReport`); `formatStatusReport` renders the readable tables and
 * `--json` prints the data. No secret is ever part of it.
 */
import { existsSync } from 'node:fs';
import { RESOURCE_ORDER, type HostPorts } from '../apply/reconciler.js';
import { RECONCILER_FACTORIES } from '../apply/reconcilers.js';
import { runPass } from '../apply/pass.js';
import type { DesiredState } from '../model/schema.js';
import { observeIpsec } from '../observe/ipsec.js';
import type { IkeSa, StrongswanStatus } from '../observe/parse/types.js';
import { formatAction } from '../plan/actions.js';
import { readHealthState } from '../host/health-store.js';
import { formatHostFacts, readHostFacts, type HostFacts } from '../host/host-facts.js';
import type { HealthStateFile } from '../plan/health-state.js';
import { ikeSasOfConn, loadedConnsByName } from '../plan/ipsec.js';
import { readStatusFile, type DaemonStatus } from './status-file.js';

export interface ResourceRow {
  resource: string;
  /** in-sync, drifted (actions pending), error (could not observe or plan), not-managed. */
  state: 'in-sync' | 'drifted' | 'error' | 'not-managed';
  pending: string[];
  error?: string;
}

export interface ConnectionRow {
  conn: string;
  /** "initiate" or "respond": which side this host plays. */
  role: 'initiate' | 'respond';
  desiredLocalTs: string[];
  desiredRemoteTs: string[];
  loaded: boolean;
  /** Best IKE_SA state seen (ESTABLISHED first), or "none". */
  ikeSa: string;
  ikeSaCount: number;
  /** Installed CHILD_SAs under established IKE_SAs. */
  childSasInstalled: number;
  observedLocalTs: string[];
  observedRemoteTs: string[];
  establishedSecondsAgo?: number;
  /** Data-path probe record (sent, lost, losses in a row, last RTT), when the conn has one. */
  probe?: { sent: number; lost: number; consecutiveLosses: number; lastRttMs?: number };
  /** The last heal tunnelwarden made on this conn. */
  lastHeal?: { at: string; action: string; reason: string };
}

export interface StatusReport {
  configPath: string;
  /** The machine (OS, kernel, CPU, memory), when it could be read. */
  host?: HostFacts;
  /** Why the desired file could not be used, when it could not. */
  desiredProblem?: string;
  charonRunning: boolean | undefined;
  resources: ResourceRow[];
  connections: ConnectionRow[];
  daemon: (DaemonStatus & { running: boolean }) | undefined;
}

const IKE_STATE_RANK = ['ESTABLISHED', 'REKEYING', 'CONNECTING', 'CREATED', 'PASSIVE', 'DELETING'];

function bestIkeSa(sas: IkeSa[]): IkeSa | undefined {
  const rank = (sa: IkeSa) => {
    const index = IKE_STATE_RANK.indexOf(sa.state);
    return index === -1 ? IKE_STATE_RANK.length : index;
  };
  return [...sas].sort((a, b) => rank(a) - rank(b))[0];
}

/** One row per desired site-to-site connection, from the observed strongSwan status. Pure. */
export function connectionRows(
  desired: DesiredState,
  observed: StrongswanStatus,
  health: HealthStateFile = { version: 1, conns: {} },
): ConnectionRow[] {
  const loadedByName = loadedConnsByName(observed.connections);
  return (desired.ipsec?.connections ?? []).map((conn) => {
    const sas = ikeSasOfConn(observed.ikeSas, conn.name);
    const remembered = health.conns[conn.name];
    const best = bestIkeSa(sas);
    const installed = sas
      .filter((sa) => sa.state === 'ESTABLISHED')
      .flatMap((sa) => sa.children)
      .filter((child) => child.state === 'INSTALLED');
    const child = installed[0];
    return {
      conn: conn.name,
      role: conn.initiate ? 'initiate' : 'respond',
      desiredLocalTs: [...conn.local.subnets],
      desiredRemoteTs: [...conn.remote.subnets],
      loaded: loadedByName.has(conn.name),
      ikeSa: best?.state ?? 'none',
      ikeSaCount: sas.length,
      childSasInstalled: installed.length,
      observedLocalTs: child ? [...child.localTs] : [],
      observedRemoteTs: child ? [...child.remoteTs] : [],
      ...(best?.establishedSecondsAgo === undefined ? {} : { establishedSecondsAgo: best.establishedSecondsAgo }),
      ...(conn.probe && remembered
        ? {
            probe: {
              sent: remembered.probe.sent,
              lost: remembered.probe.lost,
              consecutiveLosses: remembered.probe.consecutiveLosses,
              ...(remembered.probe.lastRttMs === undefined ? {} : { lastRttMs: remembered.probe.lastRttMs }),
            },
          }
        : {}),
      ...(remembered?.lastHeal
        ? {
            lastHeal: {
              at: new Date(remembered.lastHeal.atMs).toISOString(),
              action: remembered.lastHeal.action,
              reason: remembered.lastHeal.reason,
            },
          }
        : {}),
    };
  });
}

function processAlive(pid: number): boolean {
  return existsSync(`/proc/${pid}`);
}

/**
 * Builds the report. `desired` is undefined when the file cannot be used (then only the
 * daemon's status and charon's state are shown). Never throws for a resource's failure.
 */
export async function buildStatusReport(options: {
  configPath: string;
  desired: DesiredState | undefined;
  desiredProblem?: string;
  statusFile: string;
  ports: HostPorts;
  /** Injected for tests; defaults to reading this machine. */
  hostFacts?: () => Promise<HostFacts | undefined>;
}): Promise<StatusReport> {
  const { desired, ports } = options;
  const resources: ResourceRow[] = [];
  let connections: ConnectionRow[] = [];
  let charonRunning: boolean | undefined;

  if (desired) {
    const result = await runPass(desired, ports, { dryRun: true });
    const managed = new Set(RECONCILER_FACTORIES.map((factory) => factory().resource));
    for (const resource of RESOURCE_ORDER) {
      if (!managed.has(resource)) {
        resources.push({ resource, state: 'not-managed', pending: [] });
        continue;
      }
      const failure = result.failures.find((candidate) => candidate.resource === resource);
      const pending = result.actions.filter((action) => action.resource === resource).map(formatAction);
      resources.push({
        resource,
        state: failure ? 'error' : pending.length > 0 ? 'drifted' : 'in-sync',
        pending,
        ...(failure ? { error: `${failure.error.message} [${failure.error.code}]` } : {}),
      });
    }
    try {
      const observed = await observeIpsec(ports.paths, ports.run, ports.files, ports.logger);
      charonRunning = observed.installed ? observed.charonRunning : undefined;
      connections = connectionRows(desired, observed.status, await readHealthState(ports.paths, ports.files));
    } catch (thrown) {
      ports.logger.warn({ resource: 'ipsec', err: thrown }, 'could not observe strongSwan');
    }
  }

  const daemonStatus = await readStatusFile(ports.files, options.statusFile);
  const host = await (options.hostFacts ?? readHostFacts)();
  return {
    configPath: options.configPath,
    ...(host ? { host } : {}),
    ...(options.desiredProblem ? { desiredProblem: options.desiredProblem } : {}),
    charonRunning,
    resources,
    connections,
    daemon: daemonStatus ? { ...daemonStatus, running: processAlive(daemonStatus.pid) } : undefined,
  };
}

/** Left-aligned columns separated by two spaces. Pure. */
export function formatTable(header: string[], rows: string[][]): string[] {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

function ago(iso: string | null | undefined, now: Date): string {
  if (!iso) return 'never';
  const seconds = Math.max(0, Math.round((now.getTime() - Date.parse(iso)) / 1000));
  return `${iso} (${seconds} s ago)`;
}

/** The readable form of a report. Pure. */
export function formatStatusReport(report: StatusReport, now = new Date()): string {
  const lines: string[] = [`desired state: ${report.configPath}`];
  if (report.desiredProblem) lines.push(`  not usable: ${report.desiredProblem}`);
  lines.push(`host: ${report.host ? formatHostFacts(report.host) : 'facts not readable'}`);
  lines.push('');

  const daemon = report.daemon;
  if (!daemon) {
    lines.push('daemon: no status file (not running, or not started with this status file)');
  } else {
    lines.push(`daemon: pid ${daemon.pid} ${daemon.running ? 'running' : 'NOT running'} since ${daemon.startedAt}`);
    lines.push(`  enforcing: ${daemon.enforcingSha256 ?? 'nothing (no valid desired state yet)'}`);
    if (daemon.desiredProblem) lines.push(`  desired file: ${daemon.desiredProblem}`);
    const pass = daemon.lastPass;
    if (pass) {
      lines.push(
        `  last pass: #${pass.id} ${pass.outcome} at ${ago(pass.startedAt, now)}, ${pass.durationMs} ms, ` +
          `${pass.actions} action${pass.actions === 1 ? '' : 's'}, triggered by ${pass.triggers.join('+')}`,
      );
      for (const failure of pass.failures) lines.push(`    ${failure.resource}: ${failure.message} [${failure.code}]`);
    }
    lines.push(`  last change: ${ago(daemon.lastChangeAt, now)}; passes ${daemon.passes}, failed ${daemon.failedPasses}`);
  }
  lines.push('');

  if (report.resources.length > 0) {
    const rows = report.resources.map((row) => [
      row.resource,
      row.state,
      row.error ?? (row.pending.length > 0 ? `${row.pending.length} pending: ${row.pending[0]}` : ''),
    ]);
    lines.push(...formatTable(['RESOURCE', 'STATE', 'DETAIL'], rows));
    for (const row of report.resources) {
      for (const pending of row.pending.slice(1)) lines.push(`${' '.repeat(4)}${pending}`);
    }
    lines.push('');
  }

  const charon =
    report.charonRunning === undefined ? 'not observed' : report.charonRunning ? 'running' : 'NOT running';
  lines.push(`strongSwan: charon ${charon}`);
  if (report.connections.length > 0) {
    const rows = report.connections.map((row) => [
      row.conn,
      row.role,
      `${row.desiredLocalTs.join(',')} === ${row.desiredRemoteTs.join(',')}`,
      row.loaded ? 'yes' : 'no',
      row.ikeSaCount > 1 ? `${row.ikeSa} (+${row.ikeSaCount - 1})` : row.ikeSa,
      String(row.childSasInstalled),
      row.observedLocalTs.length > 0 ? `${row.observedLocalTs.join(',')} === ${row.observedRemoteTs.join(',')}` : '-',
    ]);
    lines.push(...formatTable(['CONN', 'ROLE', 'DESIRED', 'LOADED', 'IKE_SA', 'CHILD_SAS', 'OBSERVED'], rows));
    for (const row of report.connections) {
      if (row.probe) {
        const rtt = row.probe.lastRttMs === undefined ? '' : `, last RTT ${row.probe.lastRttMs} ms`;
        lines.push(
          `${row.conn}: probe ${row.probe.lost}/${row.probe.sent} lost, ${row.probe.consecutiveLosses} in a row${rtt}`,
        );
      }
      if (row.lastHeal) lines.push(`${row.conn}: last heal ${row.lastHeal.action} at ${row.lastHeal.at}: ${row.lastHeal.reason}`);
    }
  }
  return `${lines.join('\n').trimEnd()}\n`;
}
