/**
 * Reads what the lxd plan needs from LXD (or Incus): who the server is, and each network the
 * desired state names with its config and ETag. The parsers are pure and take the `metadata`
 * of the API's JSON answers; `observeLxd` is the thin call through host/lxd-client.ts.
 * Read-only.
 */
import { ErrorCode, TunnelwardenError } from '../errors.js';
import type { LxdClient } from '../host/lxd-client.js';

/** The daemon behind the socket, from `GET /1.0`. */
export interface LxdServerInfo {
  /** `environment.server`: which of the two daemons answered. */
  server: 'lxd' | 'incus';
  /** `environment.server_version`, e.g. "5.0.2". */
  serverVersion: string;
  /** `api_version`, "1.0" for both. */
  apiVersion: string;
}

/** One network as `GET /1.0/networks/NAME` describes it. */
export interface LxdNetwork {
  name: string;
  /** "bridge", "ovn", "macvlan", "physical"... or the kind of a network LXD does not manage. */
  type: string;
  /** False for an interface LXD only reports (it has no config LXD would apply). */
  managed: boolean;
  /** "Created", "Pending", "Errored"..., empty for an unmanaged one. */
  status: string;
  /** Every config key LXD holds for the network; all values are strings. */
  config: Readonly<Record<string, string>>;
}

/** A network the desired state names: what LXD said about it, or that it has none. */
export type ObservedLxdNetwork =
  | { name: string; found: true; network: LxdNetwork; etag: string | undefined }
  | { name: string; found: false };

export interface LxdObservation {
  socketPath: string;
  server: LxdServerInfo;
  /** In the order of the names asked for. */
  networks: ObservedLxdNetwork[];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function notLxd(socketPath: string, why: string): TunnelwardenError {
  return new TunnelwardenError(
    'unsupported',
    ErrorCode.lxdNotLxd,
    `${socketPath} does not answer like LXD or Incus: ${why}`,
    { details: { socketPath } },
  );
}

/**
 * Parses the metadata of `GET /1.0`. Throws lxdNotLxd when it is not LXD's or Incus's
 * description of itself, or when the server does not trust us (it then hides `environment`).
 */
export function parseServerInfo(metadata: unknown, socketPath: string): LxdServerInfo {
  if (!isObject(metadata) || typeof metadata.api_version !== 'string') {
    throw notLxd(socketPath, 'GET /1.0 has no api_version');
  }
  if (metadata.auth !== undefined && metadata.auth !== 'trusted') {
    throw new TunnelwardenError(
      'unsupported',
      ErrorCode.lxdUnavailable,
      `${socketPath} does not trust this client (auth is "${String(metadata.auth)}"): ` +
        'run as root or in the lxd group',
      { details: { socketPath } },
    );
  }
  const environment = isObject(metadata.environment) ? metadata.environment : {};
  const server = environment.server;
  if (server !== 'lxd' && server !== 'incus') {
    throw notLxd(
      socketPath,
      `GET /1.0 names the server "${String(server)}", neither "lxd" nor "incus"`,
    );
  }
  return {
    server,
    serverVersion: typeof environment.server_version === 'string' ? environment.server_version : '',
    apiVersion: metadata.api_version,
  };
}

/** Parses the metadata of `GET /1.0/networks/NAME`. Throws lxdNotLxd on a foreign shape. */
export function parseNetwork(metadata: unknown, socketPath: string): LxdNetwork {
  if (
    !isObject(metadata) ||
    typeof metadata.name !== 'string' ||
    typeof metadata.type !== 'string'
  ) {
    throw notLxd(socketPath, 'a network without a name or type');
  }
  const rawConfig = metadata.config ?? {};
  if (!isObject(rawConfig))
    throw notLxd(socketPath, `network "${metadata.name}" has a config that is not a map`);
  const config: Record<string, string> = {};
  for (const [key, value] of Object.entries(rawConfig)) {
    if (typeof value !== 'string') {
      throw notLxd(socketPath, `network "${metadata.name}" has a non-string value for ${key}`);
    }
    config[key] = value;
  }
  return {
    name: metadata.name,
    type: metadata.type,
    managed: metadata.managed === true,
    status: typeof metadata.status === 'string' ? metadata.status : '',
    config,
  };
}

/**
 * Asks the server who it is, then reads each named network. Throws TunnelwardenError when
 * the socket is not LXD's or a request fails; a network that does not exist is reported
 * as `found: false`, not thrown.
 */
export async function observeLxd(
  client: LxdClient,
  names: readonly string[],
): Promise<LxdObservation> {
  const server = parseServerInfo(await client.server(), client.socketPath);
  const networks: ObservedLxdNetwork[] = [];
  for (const name of names) {
    const answer = await client.network(name);
    networks.push(
      answer === undefined
        ? { name, found: false }
        : {
            name,
            found: true,
            network: parseNetwork(answer.metadata, client.socketPath),
            etag: answer.etag,
          },
    );
  }
  return { socketPath: client.socketPath, server, networks };
}
