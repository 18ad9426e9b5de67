/**
 * What the strongSwan lab tests, the demo and the benchmarks share: the two example sites,
 * the config/ examples reduced to the sections a lab reconciles, the PSK file, running the
 * built CLI inside a site, and reading a site's SAs.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseStrokeStatus } from '../../agent/observe/parse/stroke.js';
import type { IkeSa } from '../../agent/observe/parse/types.js';
import { REPO_ROOT, type ExecResult, type Site, type SiteSpec } from './harness.js';

/** The built program; `npm run build` first. */
export const CLI = path.join(REPO_ROOT, 'dist', 'agent', 'cli', 'bin.js');

/** Where config/site-a.json and site-b.json read the shared PSK from. */
export const PSK_FILE = '/etc/tunnelwarden/secrets/a-to-b.psk';

/** Site A (172.16.0.18, 10.1.0.0/16) and site B (172.16.0.2, 10.2.0.0/16), as in config/. */
export const EXAMPLE_SITES: SiteSpec[] = [
  { name: 'A', transitAddress: '172.16.0.18/24', subnetAddress: '10.1.0.1/16' },
  { name: 'B', transitAddress: '172.16.0.2/24', subnetAddress: '10.2.0.1/16' },
];

export type Desired = Record<string, any>;

/**
 * A config/ example without the host-networking sections (the examples name a provider's
 * VLAN parent that no lab has), optionally edited.
 */
export function labDesired(example: string, edit: (desired: Desired) => void = () => {}): Desired {
  const desired = JSON.parse(readFileSync(path.join(REPO_ROOT, 'config', example), 'utf8'));
  for (const key of ['$schema', 'transit', 'masquerade', 'lxd']) delete desired[key];
  edit(desired);
  return desired;
}

/** Writes the PSK file, root-only, in each site. */
export async function writePsk(sites: Site[], psk: string): Promise<void> {
  for (const site of sites) {
    await site.execOk(['mkdir', '-p', '-m', '0700', path.dirname(PSK_FILE)]);
    await site.writeFile(PSK_FILE, `${psk}\n`, 0o600);
  }
}

/** `tunnelwarden apply FILE` inside the site. */
export function applyIn(site: Site, file: string, logLevel = 'warn'): Promise<ExecResult> {
  return site.exec(['node', CLI, 'apply', file, '--log-level', logLevel], { timeoutMs: 90_000 });
}

/** Every IKE_SA the site's charon lists, a responder's unnamed half-open ones included. */
export async function ikeSasIn(site: Site): Promise<IkeSa[]> {
  return parseStrokeStatus((await site.execOk(['ipsec', 'statusall'])).stdout).ikeSas;
}

/** The IKE_SAs of one conn. */
export async function connSasIn(site: Site, conn: string): Promise<IkeSa[]> {
  return (await ikeSasIn(site)).filter((sa) => sa.conn === conn);
}

/** strongSwan's version as this machine's `ipsec --version` says it, or "unknown". */
export function strongswanVersion(): string {
  const result = spawnSync('ipsec', ['--version'], { encoding: 'utf8' });
  return /U(\d+\.\d+\.\d+)/.exec(result.stdout ?? '')?.[1] ?? 'unknown';
}
