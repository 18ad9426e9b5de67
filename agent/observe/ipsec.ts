/**
 * Reads everything the ipsec plan needs from the host: our two files (the secrets file only as
 * a hash and a mode), whether strongSwan's main files include them, whether charon answers, and
 * `ipsec statusall` parsed. Read-only.
 */
import type { Logger } from 'pino';
import { TunnelwardenError, ErrorCode } from '../errors.js';
import type { HostPaths } from '../model/paths.js';
import type { CommandRunner } from '../host/exec.js';
import { sha256, type FileStore } from '../host/files.js';
import { parseStrokeStatus } from './parse/stroke.js';
import type { StrongswanStatus } from './parse/types.js';

export interface IpsecObservation {
  /** The `ipsec` command exists. */
  installed: boolean;
  ourConf: string | undefined;
  ourSecretsSha256: string | undefined;
  ourSecretsMode: number | undefined;
  ipsecConfIncludesOurs: boolean;
  ipsecSecretsIncludesOurs: boolean;
  /** charon answered `ipsec statusall`. */
  charonRunning: boolean;
  /** Parsed `ipsec statusall`; empty lists when charon is not running. */
  status: StrongswanStatus;
}

/** The exact line that pulls our file into a strongSwan main file. */
export function includeLine(path: string): string {
  return `include ${path}`;
}

/** True when `text` has an unindented include line for exactly `path`. */
export function hasIncludeLine(text: string | undefined, path: string): boolean {
  if (text === undefined) return false;
  return text.split('\n').some((line) => line.trimEnd() === includeLine(path));
}

const emptyStatus: StrongswanStatus = {
  plugins: [],
  listeningAddresses: [],
  connections: [],
  routed: [],
  ikeSas: [],
};

/**
 * Runs `ipsec statusall` and parses it; undefined when charon does not answer. The exit code
 * alone is not enough: the `ipsec` script exits 0 while starter lives even when charon's
 * stroke socket is not there yet, so the output itself must show charon answered.
 * Throws TunnelwardenError commandMissing when the `ipsec` command is not installed.
 */
export async function readStrokeStatus(run: CommandRunner): Promise<StrongswanStatus | undefined> {
  const result = await run(['ipsec', 'statusall'], { allowFailure: true });
  const answered = result.exitCode === 0 && /^Security Associations \(/m.test(result.stdout);
  return answered ? parseStrokeStatus(result.stdout) : undefined;
}

/** Observes the strongSwan side of the host. Throws only on unexpected I/O failures. */
export async function observeIpsec(
  paths: HostPaths,
  run: CommandRunner,
  files: FileStore,
  logger: Logger,
): Promise<IpsecObservation> {
  const [ourConf, ourSecrets, ourSecretsMode, ipsecConf, ipsecSecrets] = await Promise.all([
    files.read(paths.ourConf),
    files.read(paths.ourSecrets),
    files.mode(paths.ourSecrets),
    files.read(paths.ipsecConf),
    files.read(paths.ipsecSecrets),
  ]);

  let installed = true;
  let charonRunning = false;
  let status = emptyStatus;
  try {
    const answered = await readStrokeStatus(run);
    charonRunning = answered !== undefined;
    status = answered ?? emptyStatus;
  } catch (thrown) {
    if (!(thrown instanceof TunnelwardenError && thrown.code === ErrorCode.commandMissing)) throw thrown;
    installed = false;
    logger.debug({ resource: 'ipsec' }, 'ipsec command not found');
  }

  return {
    installed,
    ourConf,
    ourSecretsSha256: ourSecrets === undefined ? undefined : sha256(ourSecrets),
    ourSecretsMode,
    ipsecConfIncludesOurs: hasIncludeLine(ipsecConf, paths.ourConf),
    ipsecSecretsIncludesOurs: hasIncludeLine(ipsecSecrets, paths.ourSecrets),
    charonRunning,
    status,
  };
}
