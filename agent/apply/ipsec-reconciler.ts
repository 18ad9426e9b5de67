/**
 * The ipsec resource as a reconciler: resolves secrets and renders both files once per pass,
 * observes strongSwan, plans with plan/ipsec.ts and applies with apply/ipsec.ts.
 */
import { ErrorCode, TunnelwardenError } from '../errors.js';
import { formatFinding } from '../model/load.js';
import type { DesiredState } from '../model/schema.js';
import { sha256 } from '../host/files.js';
import { checkRoadWarriorCredentials } from '../host/certificates.js';
import { resolveSecrets } from '../host/secrets.js';
import { observeIpsec } from '../observe/ipsec.js';
import type { IpsecAction } from '../plan/actions.js';
import { planIpsec } from '../plan/ipsec.js';
import { renderIpsecConf, renderIpsecSecrets } from '../plan/ipsec-render.js';
import { applyIpsecAction, DEFAULT_IPSEC_WAITS, type IpsecWaits } from './ipsec.js';
import type { HostPorts, Reconciler } from './reconciler.js';
import { planHealth } from './ipsec-health.js';
import { readHealthState, writeHealthState } from '../host/health-store.js';
import type { HealthStateFile } from '../plan/health-state.js';
import { mkdir } from 'node:fs/promises';

/** Actions after which the conn's tunnel is a new one, so the probe record starts afresh. */
const TUNNEL_RESTARTING_ACTIONS: ReadonlySet<IpsecAction['type']> = new Set([
  'initiate',
  'restart-ike-sa',
  'reload-config',
  'restart-charon',
]);

const makeStateDirectory = async (path: string) => {
  await mkdir(path, { recursive: true, mode: 0o700 });
};

interface Rendered {
  conf: string;
  secrets: string;
  secretsEntries: number;
}

/** Makes the ipsec reconciler for one pass. */
export function createIpsecReconciler(waits: IpsecWaits = DEFAULT_IPSEC_WAITS): Reconciler<IpsecAction> {
  let rendered: Rendered | undefined;
  let healthState: HealthStateFile | undefined;
  let healthOnDisk: HealthStateFile | undefined;
  const warnings: string[] = [];

  async function render(desired: DesiredState, ports: HostPorts): Promise<Rendered> {
    if (rendered) return rendered;
    const resolution = await resolveSecrets(desired, ports.files);
    if (!resolution.ok) {
      throw new TunnelwardenError(
        'invalid-config',
        ErrorCode.secretUnreadable,
        resolution.errors.map(formatFinding).join('; '),
      );
    }
    warnings.push(...resolution.warnings.map(formatFinding));
    const credentials = await checkRoadWarriorCredentials(desired, { mode: 'required', nowMs: Date.now() });
    warnings.push(...credentials.warnings.map(formatFinding));
    if (credentials.errors.length > 0) {
      const message = credentials.errors.map(formatFinding).join('; ');
      throw new TunnelwardenError('invalid-config', ErrorCode.certificateInvalid, message);
    }
    const secrets = renderIpsecSecrets(desired, resolution.secrets, credentials.serverCredentials);
    rendered = {
      conf: renderIpsecConf(desired),
      secrets,
      secretsEntries: secrets.split('\n').filter((line) => line.includes(' : ') || line.startsWith(': ')).length,
    };
    return rendered;
  }

  return {
    resource: 'ipsec',
    async plan(desired, ports) {
      const files = await render(desired, ports);
      const observed = await observeIpsec(ports.paths, ports.run, ports.files, ports.logger);
      const plannerActions = planIpsec({
        desired,
        observed,
        paths: ports.paths,
        renderedConf: files.conf,
        renderedSecretsSha256: sha256(files.secrets),
        renderedSecretsEntries: files.secretsEntries,
      });
      const health = await planHealth({
        desired,
        observed,
        plannerActions,
        previous: healthState ?? (healthOnDisk = await readHealthState(ports.paths, ports.files)),
        run: ports.run,
        logger: ports.logger,
        probes: ports.probes,
        nowMs: Date.now(),
        random: Math.random,
      });
      healthState = health.state;
      return [...plannerActions.filter((action) => !health.superseded.has(action)), ...health.actions];
    },
    async settle(ports) {
      if (!healthState) return;
      const unchanged = JSON.stringify(healthState) === JSON.stringify(healthOnDisk);
      if (unchanged || (Object.keys(healthState.conns).length === 0 && !healthOnDisk)) return;
      await writeHealthState(ports.paths, ports.files, healthState, ports.makeDirectory ?? makeStateDirectory);
    },
    async apply(action, ports) {
      if (!rendered) throw new Error('ipsec apply before plan');
      await applyIpsecAction(action, {
        run: ports.run,
        files: ports.files,
        logger: ports.logger,
        paths: ports.paths,
        renderedSecrets: rendered.secrets,
        waits,
        sleep: ports.sleep,
        makeDirectory: ports.makeDirectory,
      });
      if (TUNNEL_RESTARTING_ACTIONS.has(action.type)) ports.probes?.startAfresh(action.target);
    },
    warnings: () => [...warnings],
  };
}
