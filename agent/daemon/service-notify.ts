/**
 * Tells systemd how the daemon is doing (sd_notify): READY=1 after the first pass, STATUS=
 * after each pass, WATCHDOG=1 while passes make progress, STOPPING=1 on shutdown.
 *
 * How the message travels: sd_notify is one datagram on the AF_UNIX socket named by
 * $NOTIFY_SOCKET. Node has no unix datagram sockets, and the npm packages that send one
 * (`sd-notify`, `sd-daemon`) are native addons built with node-gyp against libsystemd at
 * install time, which needs a compiler and libsystemd-dev on every host. So the daemon runs
 * systemd's own `systemd-notify --pid=<our pid> VAR=...` through the command runner. That
 * process is not the unit's main PID, hence the unit says NotifyAccess=all; and since systemd
 * 246, systemd-notify waits until the manager has processed the message (a barrier) before
 * it exits, so the message is not lost when the sender is gone before systemd looks it up.
 * One short-lived process per message: READY once, STATUS per pass, WATCHDOG every
 * WatchdogSec/2 (45 s with the shipped unit).
 *
 * Outside systemd ($NOTIFY_SOCKET unset) every call is a no-op. The notify variables are
 * removed from this process's environment at creation, so the commands the daemon runs
 * (ipsec, iptables...) cannot send notifications in the unit's name.
 */
import type { Logger } from 'pino';
import type { CommandRunner } from '../host/exec.js';

/** How long one systemd-notify may take (it waits for systemd to process the message). */
const NOTIFY_TIMEOUT_MS = 5_000;

export interface ServiceNotifier {
  /** True when running under systemd with a notify socket. */
  readonly enabled: boolean;
  /** Half of WatchdogSec when systemd expects watchdog pings from this process, else undefined. */
  readonly watchdogIntervalMs: number | undefined;
  ready(status: string): Promise<void>;
  status(text: string): Promise<void>;
  watchdog(): Promise<void>;
  stopping(): Promise<void>;
}

export interface NotifierOptions {
  run: CommandRunner;
  logger: Logger;
  /** The environment to read the notify variables from; removed from it. Default process.env. */
  env?: NodeJS.ProcessEnv;
  pid?: number;
}

/** Status text safe for systemd: one line, no control characters, bounded. */
function statusLine(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]+/g, ' ').slice(0, 200);
}

/** Reads and removes $NOTIFY_SOCKET and the watchdog variables; makes the notifier. */
export function createServiceNotifier(options: NotifierOptions): ServiceNotifier {
  const env = options.env ?? process.env;
  const pid = options.pid ?? process.pid;
  const socket = env.NOTIFY_SOCKET;
  const watchdogUsec = Number(env.WATCHDOG_USEC);
  const watchdogPid = env.WATCHDOG_PID === undefined ? pid : Number(env.WATCHDOG_PID);
  for (const name of ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID']) delete env[name];

  const enabled = socket !== undefined && socket !== '';
  const watchdogIntervalMs =
    enabled && Number.isFinite(watchdogUsec) && watchdogUsec > 0 && watchdogPid === pid
      ? Math.max(1, Math.floor(watchdogUsec / 2_000))
      : undefined;
  const log = options.logger.child({ component: 'systemd-notify' });
  let failureLogged = false;

  async function send(assignments: string[]): Promise<void> {
    if (!enabled) return;
    try {
      await options.run(['systemd-notify', `--pid=${pid}`, ...assignments], {
        timeoutMs: NOTIFY_TIMEOUT_MS,
        env: { NOTIFY_SOCKET: socket },
      });
    } catch (thrown) {
      // Not fatal: without READY systemd times the start out, without WATCHDOG it restarts us;
      // both are systemd's to decide. Logged once so a broken socket does not flood the log.
      if (!failureLogged) log.warn({ err: thrown }, 'could not notify systemd');
      failureLogged = true;
    }
  }

  return {
    enabled,
    watchdogIntervalMs,
    ready: (status) => send(['READY=1', `STATUS=${statusLine(status)}`]),
    status: (text) => send([`STATUS=${statusLine(text)}`]),
    watchdog: () => send(['WATCHDOG=1']),
    stopping: () => send(['STOPPING=1', 'STATUS=stopping']),
  };
}
