/**
 * The lxd resource as a reconciler: finds the LXD (or Incus) socket, observes the networks
 * the desired state names, plans with plan/lxd.ts and applies `set-network-nat` by a PATCH of
 * the one key `ipv4.nat`, guarded by the ETag read while planning. LXD then adds or removes
 * its own masquerade rule for the bridge.
 *
 * Without lxd networks in the desired state the socket is never opened, so hosts without
 * LXD are fine. When the daemon cannot be reached the resource fails with lxdUnavailable and
 * the other resources go on.
 */
import type { Logger } from 'pino';
import { ErrorCode, TunnelwardenError } from '../errors.js';
import {
  createLxdClient,
  findLxdSocket,
  LXD_SOCKET_CANDIDATES,
  type LxdClient,
} from '../host/lxd-client.js';
import { observeLxd, parseNetwork } from '../observe/lxd.js';
import { effectiveIpv4Nat, IPV4_NAT_KEY, planLxd, type LxdAction } from '../plan/lxd.js';
import type { HostPorts, Reconciler } from './reconciler.js';

export interface LxdReconcilerOptions {
  /** Makes the client for a socket path; injected for tests. */
  connect?: (socketPath: string, logger: Logger) => LxdClient;
  /** Socket paths tried, in order, when the desired state names none. */
  socketCandidates?: readonly string[];
}

/** What apply needs besides the action: the client and the ETag read while planning. */
export interface LxdApplyContext {
  client: LxdClient;
  logger: Logger;
  /** ETag of the network as planned; undefined when LXD sent none. */
  etag: string | undefined;
}

/**
 * Sets `ipv4.nat` of one network with a PATCH of that key alone. When the network changed
 * since it was read (412), reads it once more: done if it already has the wanted value,
 * else patches again with the new ETag. Idempotent. Throws TunnelwardenError when the
 * network is gone, LXD refuses, or the network changed again in between.
 */
export async function applyLxdAction(action: LxdAction, context: LxdApplyContext): Promise<void> {
  const patch = { [IPV4_NAT_KEY]: String(action.ipv4Nat) };
  const { client, logger } = context;
  const vanished = () =>
    new TunnelwardenError(
      'verification',
      ErrorCode.lxdNetworkNotFound,
      `LXD network "${action.target}" disappeared while its ${IPV4_NAT_KEY} was being set`,
    );
  const first = await client.patchNetworkConfig(action.target, patch, context.etag);
  if (first === 'patched') return;
  if (first === 'not-found') throw vanished();

  logger.warn(
    { resource: 'lxd', action: action.type, target: action.target, reason: 'ETag mismatch' },
    'network changed since it was read; reading it again',
  );
  const reread = await client.network(action.target);
  if (reread === undefined) throw vanished();
  const network = parseNetwork(reread.metadata, client.socketPath);
  if (effectiveIpv4Nat(network.config).value === action.ipv4Nat) return;
  const second = await client.patchNetworkConfig(action.target, patch, reread.etag);
  if (second === 'patched') return;
  if (second === 'not-found') throw vanished();
  throw new TunnelwardenError(
    'command-failed',
    ErrorCode.lxdRequestFailed,
    `LXD network "${action.target}" changed twice while its ${IPV4_NAT_KEY} was being set ` +
      '(ETag mismatch); try again',
  );
}

/** Makes the lxd reconciler for one pass. */
export function createLxdReconciler(options: LxdReconcilerOptions = {}): Reconciler<LxdAction> {
  const connect =
    options.connect ?? ((socketPath, logger) => createLxdClient(socketPath, { logger }));
  const candidates = options.socketCandidates ?? LXD_SOCKET_CANDIDATES;
  let client: LxdClient | undefined;
  let etags = new Map<string, string | undefined>();
  let warnings: string[] = [];

  async function socketPath(configured: string | undefined): Promise<string> {
    if (configured !== undefined) return configured;
    const found = await findLxdSocket(candidates);
    if (found !== undefined) return found;
    throw new TunnelwardenError(
      'command-failed',
      ErrorCode.lxdUnavailable,
      `no LXD or Incus daemon: none of ${candidates.join(', ')} exists (is the daemon running?)`,
      { details: { candidates } },
    );
  }

  return {
    resource: 'lxd',

    async plan(desired, ports: HostPorts) {
      const networks = desired.lxd?.networks ?? [];
      warnings = [];
      if (networks.length === 0) return [];

      client ??= connect(await socketPath(desired.lxd?.socket), ports.logger);
      const observed = await observeLxd(
        client,
        networks.map((network) => network.name),
      );
      ports.logger.debug(
        { resource: 'lxd', server: observed.server.server, version: observed.server.serverVersion },
        'lxd observed',
      );
      const planned = planLxd(desired, observed);
      etags = new Map(
        observed.networks.map((network) => [
          network.name,
          network.found ? network.etag : undefined,
        ]),
      );
      warnings = planned.warnings;
      return planned.actions;
    },

    async apply(action, ports) {
      if (client === undefined) throw new Error('lxd apply before plan');
      await applyLxdAction(action, {
        client,
        logger: ports.logger,
        etag: etags.get(action.target),
      });
    },

    warnings: () => [...warnings],
  };
}
