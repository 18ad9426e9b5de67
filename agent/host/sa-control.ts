/**
 * Terminating and initiating SAs. Through charon's vici socket when it answers (it can delete
 * an IKE_SA without waiting for a dead peer's answer, which stroke cannot), else through
 * stroke (`ipsec stroke down-nb/up-nb`). Side effects only on charon's SAs.
 */
import type { Logger } from 'pino';
import { ErrorCode, TunnelwardenError } from '../errors.js';
import type { CommandRunner } from './exec.js';
import { ViciClient, DEFAULT_VICI_SOCKET } from './vici.js';

export interface SaControl {
  /** Which channel this control uses, for logs. */
  readonly via: 'vici' | 'stroke';
  /** Deletes one IKE_SA (and its CHILD_SAs) without waiting for the peer. */
  terminateIkeSa(conn: string, uniqueId: number): Promise<void>;
  /** Deletes one CHILD_SA. */
  terminateChildSa(conn: string, uniqueId: number): Promise<void>;
  /** Deletes every IKE_SA of a conn without waiting for the peer. */
  terminateConn(conn: string): Promise<void>;
  /** Starts initiating the conn's CHILD_SA (and its IKE_SA if needed); does not wait. */
  initiate(conn: string): Promise<void>;
  close(): void;
}

/** How long a vici command may take before it is abandoned. */
const VICI_COMMAND_TIMEOUT_MS = 5_000;

function viciControl(client: ViciClient): SaControl {
  const terminate = async (options: Parameters<ViciClient['terminate']>[0]) => {
    try {
      await client.terminate({ force: true, timeoutMs: -1, ...options });
    } catch (thrown) {
      // Nothing matched: the SA is already gone, which is what was wanted.
      if (thrown instanceof TunnelwardenError && /no matching SAs? to terminate found/i.test(thrown.message)) return;
      throw thrown;
    }
  };
  return {
    via: 'vici',
    terminateIkeSa: (_conn, uniqueId) => terminate({ ikeId: uniqueId }),
    terminateChildSa: async (_conn, uniqueId) => {
      await terminate({ childId: uniqueId, force: undefined });
    },
    terminateConn: (conn) => terminate({ ike: conn }),
    initiate: (conn) => client.initiate({ child: conn, ike: conn, timeoutMs: -1 }),
    close: () => client.close(),
  };
}

function strokeControl(run: CommandRunner): SaControl {
  const stroke = async (verb: 'up-nb' | 'down-nb', selector: string) => {
    await run(['ipsec', 'stroke', verb, selector]);
  };
  return {
    via: 'stroke',
    terminateIkeSa: (conn, uniqueId) => stroke('down-nb', `${conn}[${uniqueId}]`),
    terminateChildSa: (conn, uniqueId) => stroke('down-nb', `${conn}{${uniqueId}}`),
    terminateConn: (conn) => stroke('down-nb', conn),
    initiate: (conn) => stroke('up-nb', conn),
    close: () => {},
  };
}

/**
 * Opens the best control available: vici when charon's socket answers, stroke otherwise.
 * Throws only for unexpected errors.
 */
export async function openSaControl(
  run: CommandRunner,
  logger: Logger,
  socketPath = DEFAULT_VICI_SOCKET,
): Promise<SaControl> {
  try {
    return viciControl(await ViciClient.connect(socketPath, { timeoutMs: VICI_COMMAND_TIMEOUT_MS }));
  } catch (thrown) {
    if (!(thrown instanceof TunnelwardenError)) throw thrown;
    logger.debug({ resource: 'ipsec', code: thrown.code }, 'vici not available, using stroke');
    return strokeControl(run);
  }
}

export { ErrorCode };
