/**
 * The process around the daemon for `tunnelwarden run`: the journald-prefixed JSON log on
 * stdout, the real host ports, the systemd notifier, and the signals (SIGHUP: a pass;
 * SIGTERM/SIGINT: stop and exit 0; a second one: exit 1 at once).
 */
import { DEFAULT_PATHS } from '../model/paths.js';
import { createCommandRunner } from '../host/exec.js';
import { hostFiles } from '../host/files.js';
import { createLogger, type LogLevel } from '../log.js';
import { startDaemon } from './daemon.js';
import { cronExpressionFor, DEFAULT_INTERVAL_SECONDS } from './schedule.js';
import { createServiceNotifier } from './service-notify.js';
import { DEFAULT_STATUS_FILE } from './status-file.js';

/** Where `run` reads the desired state unless told otherwise. */
export const DEFAULT_CONFIG_PATH = '/etc/tunnelwarden/desired.json';

export interface RunCommandOptions {
  config: string;
  intervalSeconds: number;
  statusFile: string;
  logLevel: LogLevel;
}

export const RUN_DEFAULTS: RunCommandOptions = {
  config: DEFAULT_CONFIG_PATH,
  intervalSeconds: DEFAULT_INTERVAL_SECONDS,
  statusFile: DEFAULT_STATUS_FILE,
  logLevel: 'info',
};

/** Exit codes of `run`: 0 stopped by a signal, 1 stopped hard by a second signal, 2 bad options. */
export const RUN_EXIT = { stopped: 0, forced: 1, usage: 2 } as const;

/**
 * Runs the daemon until SIGTERM or SIGINT and returns the exit code. Reports bad options on
 * stderr (exit 2) before anything starts.
 */
export async function runCommand(options: RunCommandOptions): Promise<number> {
  const schedule = cronExpressionFor(options.intervalSeconds);
  if ('error' in schedule) {
    process.stderr.write(`tunnelwarden run: --interval-seconds: ${schedule.error}\n`);
    return RUN_EXIT.usage;
  }

  const logger = createLogger({ level: options.logLevel, journald: true });
  const run = createCommandRunner(logger);
  const notifier = createServiceNotifier({ run, logger });
  const daemon = await startDaemon({
    configPath: options.config,
    scheduleExpression: schedule.expression,
    intervalSeconds: options.intervalSeconds,
    statusFile: options.statusFile,
    ports: { run, files: hostFiles, logger, paths: DEFAULT_PATHS },
    notifier,
  });

  let forcedExit: ((code: number) => void) | undefined;
  const forced = new Promise<number>((resolve) => {
    forcedExit = resolve;
  });
  let stopSignals = 0;
  const onStop = (signal: NodeJS.Signals) => {
    stopSignals += 1;
    if (stopSignals === 1) {
      void daemon.stop(signal);
      return;
    }
    logger.warn({ signal }, 'second stop signal; exiting before the running pass ends');
    forcedExit?.(RUN_EXIT.forced);
  };
  const onHangup = () => {
    logger.info({ signal: 'SIGHUP' }, 'pass requested by signal');
    daemon.trigger('signal');
  };
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', onHangup);

  const code = await Promise.race([daemon.done, forced]);
  process.off('SIGTERM', onStop);
  process.off('SIGINT', onStop);
  process.off('SIGHUP', onHangup);
  if (code === RUN_EXIT.forced) process.exit(code);
  return code;
}
