/**
 * Executes ipsec actions on the host. Each action is idempotent and, where charon acts
 * asynchronously (reload, initiate), waits with a bound until the effect is visible.
 * Side effects: writes our files and one include line in strongSwan's main files; runs
 * `ipsec` subcommands. Secrets travel only through the 0600 secrets file.
 */
import { dirname } from 'node:path';
import { mkdir } from 'node:fs/promises';
import type { Logger } from 'pino';
import { ErrorCode, TunnelwardenError } from '../errors.js';
import type { HostPaths } from '../model/paths.js';
import type { CommandRunner } from '../host/exec.js';
import type { FileStore } from '../host/files.js';
import { readStrokeStatus } from '../observe/ipsec.js';
import type { StrongswanStatus } from '../observe/parse/types.js';
import type { IpsecAction } from '../plan/actions.js';
import { CONF_FILE_MODE, SECRETS_FILE_MODE, ikeSasOfConn, isConnUp, loadedConnsByName } from '../plan/ipsec.js';
import { applyHealAction } from './ipsec-heal.js';
import { pollUntil, type Sleep } from './wait.js';

/** How long apply waits for charon to show each effect. */
export interface IpsecWaits {
  startMs: number;
  reloadMs: number;
  initiateMs: number;
  terminateMs: number;
  pollIntervalMs: number;
}

/** How long an initiation may show no IKE_SA at all before it counts as failed. */
const INITIATION_GRACE_MS = 1_000;

export const DEFAULT_IPSEC_WAITS: Readonly<IpsecWaits> = Object.freeze({
  startMs: 20_000,
  reloadMs: 15_000,
  initiateMs: 20_000,
  terminateMs: 10_000,
  pollIntervalMs: 100,
});

export interface IpsecApplyContext {
  run: CommandRunner;
  files: FileStore;
  logger: Logger;
  paths: HostPaths;
  /** The rendered secrets file, kept out of the plan so it is never printed. */
  renderedSecrets: string;
  waits: IpsecWaits;
  sleep?: Sleep;
  /** Creates a directory with parents; injected for tests. */
  makeDirectory?: (path: string) => Promise<void>;
}

const defaultMakeDirectory = async (path: string) => {
  await mkdir(path, { recursive: true, mode: 0o755 });
};

const readStatus = readStrokeStatus;

function isUp(status: StrongswanStatus, name: string): boolean {
  return isConnUp(ikeSasOfConn(status.ikeSas, name));
}

async function appendIncludeLine(
  context: IpsecApplyContext,
  file: string,
  line: string,
): Promise<void> {
  const current = await context.files.read(file);
  if (current?.split('\n').some((existing) => existing.trimEnd() === line)) return;
  const mode = (await context.files.mode(file)) ?? (file === context.paths.ipsecSecrets ? SECRETS_FILE_MODE : CONF_FILE_MODE);
  const base = current === undefined ? '' : current.endsWith('\n') || current === '' ? current : `${current}\n`;
  const addition = `\n# Added by tunnelwarden: its own conns and secrets live in the included file.\n${line}\n`;
  await context.files.write(file, `${base}${addition}`, mode);
}

/** The unit of Debian's strongswan-starter package, which runs starter and so charon. */
const STARTER_UNIT = 'strongswan-starter.service';

async function systemdBooted(context: IpsecApplyContext): Promise<boolean> {
  return (await context.files.mode(context.paths.systemdRunDir)) !== undefined;
}

/**
 * Starts or restarts strongSwan and waits (bounded) until charon answers. Under systemd it goes
 * through strongswan-starter.service, so charon never runs as a child of our (sandboxed) unit.
 */
export async function controlStrongswan(context: IpsecApplyContext, verb: 'start' | 'restart'): Promise<void> {
  if (await systemdBooted(context)) {
    await context.run(['systemctl', verb, STARTER_UNIT], { timeoutMs: 30_000 });
  } else {
    await context.run(['ipsec', verb], { timeoutMs: 30_000 });
  }
  const status = await pollUntil(() => readStatus(context.run), {
    timeoutMs: context.waits.startMs,
    intervalMs: context.waits.pollIntervalMs,
    sleep: context.sleep,
  });
  if (!status) {
    throw new TunnelwardenError(
      'command-failed',
      ErrorCode.charonNotAnswering,
      `charon did not answer within ${context.waits.startMs} ms of ${verb === 'start' ? 'being started' : 'a restart'}`,
    );
  }
}

/**
 * True when strongSwan's starter runs: its unit is active under systemd (our sandbox cannot see
 * other processes' /proc entries there), else its pid file names a live process.
 */
async function starterRunning(context: IpsecApplyContext): Promise<boolean> {
  if (await systemdBooted(context)) {
    const result = await context.run(['systemctl', 'is-active', '--quiet', STARTER_UNIT], { allowFailure: true });
    return result.exitCode === 0;
  }
  const pid = Number.parseInt((await context.files.read(context.paths.starterPidFile)) ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  return (await context.files.mode(`${context.paths.procDir}/${pid}`)) !== undefined;
}

async function reloadConns(
  context: IpsecApplyContext,
  action: Extract<IpsecAction, { type: 'reload-conns' }>,
): Promise<void> {
  await context.run(['ipsec', 'update']);
  await awaitLoaded(context, action.expectLoaded, action.expectUnloaded, 'reload-conns');
}

/** Waits (bounded) until charon lists exactly what was expected; warns on timeout. */
async function awaitLoaded(
  context: IpsecApplyContext,
  expectLoaded: readonly string[],
  expectUnloaded: readonly string[],
  action: string,
): Promise<void> {
  const settled = await pollUntil(
    async () => {
      const status = await readStatus(context.run);
      if (!status) return undefined;
      const loaded = loadedConnsByName(status.connections);
      const done =
        expectLoaded.every((name) => loaded.has(name)) && expectUnloaded.every((name) => !loaded.has(name));
      return done ? true : undefined;
    },
    { timeoutMs: context.waits.reloadMs, intervalMs: context.waits.pollIntervalMs, sleep: context.sleep },
  );
  if (!settled) {
    context.logger.warn({ resource: 'ipsec', action, waited_ms: context.waits.reloadMs }, 'conns not settled');
  }
}

async function terminate(context: IpsecApplyContext, name: string): Promise<void> {
  // `down NAME` ends IKE_SAs of that name; `down NAME{*}` the CHILD_SAs of a conn that was
  // merged into another conn's IKE_SA.
  for (const selector of [name, `${name}{*}`]) {
    await context.run(['ipsec', 'down', selector], {
      timeoutMs: context.waits.terminateMs + 5_000,
      allowFailure: true,
    });
  }
  await pollUntil(
    async () => {
      const status = await readStatus(context.run);
      if (!status) return true;
      const left = ikeSasOfConn(status.ikeSas, name).some(
        (sa) => sa.state !== 'DELETING' && sa.state !== 'DESTROYING' && (sa.conn === name || sa.children.length > 0),
      );
      return left ? undefined : true;
    },
    { timeoutMs: context.waits.terminateMs, intervalMs: context.waits.pollIntervalMs, sleep: context.sleep },
  );
}

/** Waits (bounded) for an ESTABLISHED IKE_SA with an INSTALLED CHILD_SA; warns on timeout. */
export async function awaitEstablished(context: IpsecApplyContext, name: string): Promise<void> {
  const startedAt = performance.now();
  let outcome: 'up' | 'gone' | undefined;
  await pollUntil(
    async () => {
      const status = await readStatus(context.run);
      if (status && isUp(status, name)) return (outcome = 'up');
      // An initiation charon already gave up on leaves no IKE_SA at all: waiting longer only
      // holds up the next pass, which tries again (or climbs the heal ladder).
      const attempt = status && ikeSasOfConn(status.ikeSas, name).length > 0;
      if (status && !attempt && performance.now() - startedAt > INITIATION_GRACE_MS) return (outcome = 'gone');
      return undefined;
    },
    { timeoutMs: context.waits.initiateMs, intervalMs: context.waits.pollIntervalMs, sleep: context.sleep },
  );
  if (outcome !== 'up') {
    context.logger.warn(
      { resource: 'ipsec', action: 'initiate', conn: name, waited_ms: Math.round(performance.now() - startedAt) },
      outcome === 'gone' ? 'initiation failed: no IKE_SA left' : 'conn not established in time',
    );
  }
}

/** Executes one ipsec action. Idempotent. Throws TunnelwardenError on a hard failure. */
export async function applyIpsecAction(action: IpsecAction, context: IpsecApplyContext): Promise<void> {
  const makeDirectory = context.makeDirectory ?? defaultMakeDirectory;
  switch (action.type) {
    case 'ensure-include':
      return appendIncludeLine(context, action.target, action.line);
    case 'write-conf':
      await makeDirectory(dirname(action.target));
      return context.files.write(action.target, action.content, CONF_FILE_MODE);
    case 'write-secrets':
      await makeDirectory(dirname(action.target));
      return context.files.write(action.target, context.renderedSecrets, SECRETS_FILE_MODE);
    case 'start-strongswan':
      // charon is not answering. With starter still alive (charon crashed or was killed),
      // `start` would only wait for starter's own restart of charon, about 5 s later.
      await controlStrongswan(context, (await starterRunning(context)) ? 'restart' : 'start');
      return awaitLoaded(context, action.expectLoaded, [], 'start-strongswan');
    case 'reload-conns':
      return reloadConns(context, action);
    case 'reread-secrets':
      await context.run(['ipsec', 'rereadsecrets']);
      return;
    case 'terminate':
      return terminate(context, action.target);
    case 'initiate':
      await context.run(['ipsec', 'stroke', 'up-nb', action.target]);
      return awaitEstablished(context, action.target);
    case 'await-established':
      return awaitEstablished(context, action.target);
    case 'terminate-ike-sa':
    case 'terminate-child-sa':
    case 'restart-ike-sa':
    case 'reload-config':
    case 'restart-charon':
      return applyHealAction(action, context);
  }
}
