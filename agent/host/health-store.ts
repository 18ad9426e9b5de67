/**
 * The health state file (/var/lib/tunnelwarden/health.json): the healing ladder's memory, probe
 * records and counters per conn, so heals keep their backoff and cap across passes and
 * restarts. Written atomically; a missing or damaged file starts afresh.
 */
import path from 'node:path';
import type { HostPaths } from '../model/paths.js';
import { healthStateFrom, type HealthStateFile } from '../plan/health-state.js';
import type { FileStore } from './files.js';

export function healthStatePath(paths: HostPaths): string {
  return path.join(paths.stateDir, 'health.json');
}

export async function readHealthState(paths: HostPaths, files: FileStore): Promise<HealthStateFile> {
  const text = await files.read(healthStatePath(paths));
  if (text === undefined) return { version: 1, conns: {} };
  try {
    return healthStateFrom(JSON.parse(text));
  } catch {
    return { version: 1, conns: {} };
  }
}

export async function writeHealthState(
  paths: HostPaths,
  files: FileStore,
  state: HealthStateFile,
  makeDirectory: (path: string) => Promise<void>,
): Promise<void> {
  await makeDirectory(paths.stateDir);
  await files.write(healthStatePath(paths), `${JSON.stringify(state, null, 2)}\n`, 0o600);
}
