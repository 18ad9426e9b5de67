/**
 * The contract between the pass and each resource (link, lxd, masquerade, ipsec). A reconciler
 * observes its part of the host and plans (the planning itself is a pure function in plan/),
 * then applies its own actions. The pass visits reconcilers in RESOURCE_ORDER.
 */
import type { Logger } from 'pino';
import type { HostPaths } from '../model/paths.js';
import type { DesiredState } from '../model/schema.js';
import type { CommandRunner } from '../host/exec.js';
import type { FileStore } from '../host/files.js';
import type { ActionBase, Resource } from '../plan/actions.js';
import type { Sleep } from './wait.js';

/** Everything a reconciler may use to reach the host; all I/O goes through these. */
export interface HostPorts {
  run: CommandRunner;
  files: FileStore;
  logger: Logger;
  paths: HostPaths;
  sleep?: Sleep;
  /** Creates a directory with parents (mode 0755); injected for tests. */
  makeDirectory?: (path: string) => Promise<void>;
  /** Recent probe results from a monitor running between passes (the daemon's). */
  probes?: ProbeLog;
}

/** One conn's latest probe standing, as a probe monitor saw it. */
export interface ProbeReading {
  consecutiveLosses: number;
  atMs: number;
  /** When the current run of losses began (its first lost probe was sent); absent at 0 losses. */
  lossesSinceMs?: number;
}

/** What a pass may ask of a probe monitor instead of probing itself. */
export interface ProbeLog {
  latest(conn: string): ProbeReading | undefined;
  /**
   * A heal has just re-established the conn's tunnel: its earlier losses say nothing about the
   * new one. Forgets them, drops probes still under way, and probes again at once.
   */
  startAfresh(conn: string): void;
}

/** Visiting order: the transit link first, LXD's NAT off before our masquerade, IPsec last. */
export const RESOURCE_ORDER: readonly Resource[] = ['link', 'lxd', 'masquerade', 'ipsec'];

/**
 * One resource's reconciler. A new one is made for every pass (`createForPass`), so it may keep
 * what it learnt while planning (rendered files, resolved secrets) for applying.
 */
export interface Reconciler<A extends ActionBase = ActionBase> {
  readonly resource: Resource;
  /** Observes the host and plans. Throws TunnelwardenError when the resource cannot be planned. */
  plan(desired: DesiredState, ports: HostPorts): Promise<A[]>;
  /** Executes one of its own actions. Idempotent. Throws TunnelwardenError on a hard failure. */
  apply(action: A, ports: HostPorts): Promise<void>;
  /** Warnings found while planning (not errors), to log once per pass. */
  warnings(): string[];
  /**
   * Saves what planning learnt that must outlive the pass (probe records, heal memory).
   * Called once per pass that is not a dry run, after the resource's actions.
   */
  settle?(ports: HostPorts): Promise<void>;
}

export type ReconcilerFactory = () => Reconciler;
