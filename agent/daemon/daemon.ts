/**
 * `tunnelwarden run`: the long-running agent. One full pass at start, then a pass whenever
 * something says "look now": the desired-state file changed (file-watcher.ts), the schedule
 * ticked (schedule.ts), SIGHUP arrived, a failed pass asks for a retry, or a caller of
 * `trigger(reason)`, charon's vici events for an SA going down (vici-watch.ts), or the probe
 * monitor finding a tunnel that carries nothing (probe-monitor.ts). Passes run one at a time and
 * triggers arriving during a pass fold into one more pass (pass-queue.ts).
 *
 * Each pass reads the desired file afresh (desired-source.ts: the last valid state is kept and
 * enforced when the file is missing or invalid), runs `runPass`, writes the status file and
 * tells systemd how it went (service-notify.ts).
 *
 * Stopping (SIGTERM, SIGINT, or `stop()`): no new pass starts; in the running pass, the
 * resource whose actions have begun finishes them (so no resource is left half-applied), the
 * resources not yet begun are skipped, and the daemon exits 0. A second signal exits at once
 * with 1; files are still never torn, since every write is an atomic rename.
 *
 * Pass ids: the `pass` field on resource lines comes from runPass's own counter; the daemon's
 * lines use the same number because this process runs passes only through this loop.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { describeAction, formatAction, type Resource } from '../plan/actions.js';
import { runPass, type PassResult } from '../apply/pass.js';
import type { HostPorts, Reconciler, ReconcilerFactory } from '../apply/reconciler.js';
import { RECONCILER_FACTORIES } from '../apply/reconcilers.js';
import type { CommandRunner } from '../host/exec.js';
import { createDesiredSource, shortHash, type DesiredSnapshot } from './desired-source.js';
import { watchDesiredFile, type DesiredFileWatcher } from './file-watcher.js';
import { createPassQueue, type TriggerReason } from './pass-queue.js';
import { createProbeMonitor } from './probe-monitor.js';
import { watchViciEvents } from './vici-watch.js';
import { scheduleFullPasses } from './schedule.js';
import type { ServiceNotifier } from './service-notify.js';
import { writeStatusFile, type DaemonStatus, type LastPass, type PassOutcome } from './status-file.js';

/** A pass counts as making progress while some command or step ended within this time. */
export const PASS_STALL_LIMIT_MS = 60_000;

/** First retry delay after a failed pass; doubles per failure, capped at the interval. */
export const FIRST_RETRY_DELAY_MS = 2_000;

/** Name of the saved copy of the last valid desired state, under the state dir. */
export const SAVED_DESIRED_FILE = 'last-valid-desired.json';

export interface DaemonOptions {
  configPath: string;
  /** node-cron expression of the periodic full pass. */
  scheduleExpression: string;
  intervalSeconds: number;
  statusFile: string;
  /** run, files, logger (the daemon's), paths. */
  ports: HostPorts;
  notifier: ServiceNotifier;
  /** Reconcilers to run; default every resource. */
  factories?: readonly ReconcilerFactory[];
  debounceMs?: number;
  maxWaitMs?: number;
  /** Default PASS_STALL_LIMIT_MS. */
  stallLimitMs?: number;
  /** Default FIRST_RETRY_DELAY_MS. */
  firstRetryDelayMs?: number;
  /** Listen to charon's vici events for SAs going down (default true). */
  watchCharon?: boolean;
  /** charon's vici socket; default /run/charon.vici. */
  viciSocket?: string;
}

export interface Daemon {
  /** Asks for a pass (file, schedule, signal, retry, vici...). Ignored while stopping. */
  trigger(reason: TriggerReason): void;
  /** Stops as described in the module header; resolves when stopped. */
  stop(why: string): Promise<void>;
  /** Resolves when no pass runs or is pending. */
  idle(): Promise<void>;
  /** Resolves with the exit code once stopped. */
  readonly done: Promise<number>;
  /** The status as last written. */
  readonly status: DaemonStatus;
}

/** What the stop guard remembers during one pass. */
interface PassControl {
  stopping: boolean;
  skipped: Resource[];
  lastProgressAt: number;
}

/**
 * Wraps each reconciler so a stop request skips resources not yet begun, and so every
 * finished step counts as progress for the watchdog. A reconciler's first `plan` is its
 * planning; a second one is runPass's verification, which always runs (it only reads).
 */
function guardedFactories(factories: readonly ReconcilerFactory[], control: PassControl): ReconcilerFactory[] {
  return factories.map((factory) => (): Reconciler => {
    const inner = factory();
    let planned = false;
    const skip = () => {
      control.skipped.push(inner.resource);
      return [];
    };
    // The spread keeps every other member of the contract (warnings, settle...) as it is.
    return {
      ...inner,
      async plan(desired, ports) {
        const verifying = planned;
        planned = true;
        if (!verifying && control.stopping) return skip();
        const actions = await inner.plan(desired, ports);
        control.lastProgressAt = performance.now();
        if (!verifying && control.stopping && actions.length > 0) return skip();
        return actions;
      },
      async apply(action, ports) {
        await inner.apply(action, ports);
        control.lastProgressAt = performance.now();
      },
    };
  });
}

function outcomeOf(result: PassResult, control: PassControl): PassOutcome {
  if (result.failures.length > 0) return 'failed';
  if (control.skipped.length > 0) return 'interrupted';
  return result.remaining.length > 0 ? 'not-converged' : 'converged';
}

function statusText(status: DaemonStatus): string {
  const pass = status.lastPass;
  const desired = status.desiredProblem ? `; desired file ${status.desiredProblem}` : '';
  if (!pass) return `no pass yet${desired}`;
  if (pass.outcome === 'skipped') return `no valid desired state to enforce${desired}`;
  if (pass.outcome === 'failed') {
    return `failing: ${pass.failures.map((failure) => failure.resource).join(', ')}${desired}`;
  }
  return `${pass.outcome}${desired}`;
}

/** Starts the daemon; the first pass is under way when this resolves. */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const logger: Logger = options.ports.logger;
  const factories = options.factories ?? RECONCILER_FACTORIES;
  const control: PassControl = { stopping: false, skipped: [], lastProgressAt: performance.now() };
  const trackedRun: CommandRunner = async (argv, runOptions) => {
    try {
      return await options.ports.run(argv, runOptions);
    } finally {
      control.lastProgressAt = performance.now();
    }
  };
  const queueTrigger = (reason: TriggerReason) => queue.trigger(reason);
  const probes = createProbeMonitor({
    run: options.ports.run,
    logger,
    onDead: () => queueTrigger('probe'),
  });
  const ports: HostPorts = { ...options.ports, run: trackedRun, probes };
  const viciWatch =
    options.watchCharon === false
      ? undefined
      : watchViciEvents({ logger, onChange: () => queueTrigger('vici'), socketPath: options.viciSocket });
  const source = createDesiredSource({
    path: options.configPath,
    savedCopyPath: join(ports.paths.stateDir, SAVED_DESIRED_FILE),
    files: ports.files,
    logger,
  });
  const status: DaemonStatus = {
    pid: process.pid,
    startedAt: new Date().toISOString(),
    configPath: options.configPath,
    enforcingSha256: null,
    desiredProblem: null,
    lastPass: null,
    lastChangeAt: null,
    passes: 0,
    failedPasses: 0,
  };
  let passId = 0;
  let failuresInARow = 0;
  let retryTimer: NodeJS.Timeout | undefined;
  let lastStatusText: string | undefined;
  let statusWriteWarned = false;
  let readySent = false;

  for (const directory of [ports.paths.stateDir, dirname(options.statusFile)]) {
    await mkdir(directory, { recursive: true, mode: 0o700 }).catch((thrown: unknown) => {
      logger.warn({ directory, err: thrown }, 'could not create directory');
    });
  }

  async function publish(): Promise<void> {
    try {
      await writeStatusFile(ports.files, options.statusFile, status);
    } catch (thrown) {
      if (!statusWriteWarned) logger.warn({ file: options.statusFile, err: thrown }, 'could not write status file');
      statusWriteWarned = true;
    }
    const text = statusText(status);
    if (!readySent) {
      readySent = true;
      await options.notifier.ready(text);
    } else if (text !== lastStatusText) {
      await options.notifier.status(text);
    }
    lastStatusText = text;
  }

  function scheduleRetry(): void {
    failuresInARow += 1;
    const firstDelayMs = options.firstRetryDelayMs ?? FIRST_RETRY_DELAY_MS;
    const delayMs = Math.min(firstDelayMs * 2 ** (failuresInARow - 1), options.intervalSeconds * 1_000);
    logger.warn({ pass: passId, attempt: failuresInARow, retry_in_ms: delayMs }, 'pass retry scheduled');
    retryTimer = setTimeout(() => queue.trigger('retry'), delayMs);
  }

  function recordPass(
    triggers: string[],
    startedAt: Date,
    startedMs: number,
    outcome: PassOutcome,
    result: PassResult | undefined,
  ): LastPass {
    const lastPass: LastPass = {
      id: passId,
      triggers,
      startedAt: startedAt.toISOString(),
      durationMs: Math.round(performance.now() - startedMs),
      outcome,
      actions: result?.actions.length ?? 0,
      applied: result?.actions.map(formatAction) ?? [],
      remaining: result?.remaining.map(formatAction) ?? [],
      failures:
        result?.failures.map(({ resource, error }) => ({ resource, code: error.code, message: error.message })) ?? [],
    };
    status.lastPass = lastPass;
    status.passes += 1;
    if (outcome === 'failed') status.failedPasses += 1;
    if (lastPass.actions > 0) status.lastChangeAt = new Date().toISOString();
    return lastPass;
  }

  async function onePass(triggers: TriggerReason[]): Promise<void> {
    clearTimeout(retryTimer);
    const startedAt = new Date();
    const startedMs = performance.now();
    control.skipped = [];
    control.lastProgressAt = startedMs;

    const desired: DesiredSnapshot = await source.load();
    status.enforcingSha256 = desired.sha256 ? shortHash(desired.sha256) : null;
    status.desiredProblem = desired.problem ?? null;
    if (!desired.state) {
      logger.error({ trigger: triggers, file: options.configPath }, 'no valid desired state yet; nothing enforced');
      recordPass(triggers, startedAt, startedMs, 'skipped', undefined);
      await publish();
      return;
    }

    probes.follow(desired.state);
    passId += 1;
    logger.debug({ pass: passId, trigger: triggers, enforcing: status.enforcingSha256 }, 'pass started');
    const result = await runPass(desired.state, ports, { factories: guardedFactories(factories, control) });
    viciWatch?.listenNow();
    const outcome = outcomeOf(result, control);
    const lastPass = recordPass(triggers, startedAt, startedMs, outcome, result);
    if (outcome === 'interrupted') {
      logger.info({ pass: passId, skipped: control.skipped, duration_ms: lastPass.durationMs }, 'pass cut short by shutdown');
    }
    if (control.stopping) {
      // no retries once stopping
    } else if (outcome === 'failed' && result.failures.some(({ error }) => error.retryable)) {
      scheduleRetry();
    } else if (outcome === 'not-converged') {
      logger.debug({ pass: passId, remaining: result.remaining.map(describeAction) }, 'pass left work');
      scheduleRetry();
    } else {
      failuresInARow = 0;
    }
    await publish();
  }

  const queue = createPassQueue(onePass, (thrown) => {
    logger.error({ err: thrown }, 'pass crashed');
  });

  let watcher: DesiredFileWatcher | undefined;
  let cronTask: ScheduledTask | undefined;
  let watchdogTimer: NodeJS.Timeout | undefined;
  let resolveDone: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => {
    resolveDone = resolve;
  });
  let stopping: Promise<void> | undefined;

  watcher = watchDesiredFile({
    path: options.configPath,
    onChange: () => queue.trigger('file'),
    logger,
    debounceMs: options.debounceMs,
    maxWaitMs: options.maxWaitMs,
  });
  await watcher.ready;

  logger.info(
    { file: options.configPath, schedule: options.scheduleExpression, status_file: options.statusFile, pid: process.pid },
    'daemon started',
  );
  queue.trigger('start');
  void queue.idle().then(() => {
    if (control.stopping) return;
    cronTask = scheduleFullPasses(options.scheduleExpression, () => queue.trigger('schedule'), logger);
    void cronTask.start();
  });

  if (options.notifier.watchdogIntervalMs !== undefined) {
    watchdogTimer = setInterval(() => {
      const idle = !queue.running;
      const progressing = performance.now() - control.lastProgressAt < (options.stallLimitMs ?? PASS_STALL_LIMIT_MS);
      if (idle || progressing) void options.notifier.watchdog();
      else logger.warn({ stalled_ms: Math.round(performance.now() - control.lastProgressAt) }, 'pass stalled; watchdog not fed');
    }, options.notifier.watchdogIntervalMs);
  }

  async function stop(why: string): Promise<void> {
    stopping ??= (async () => {
      control.stopping = true;
      logger.info({ reason: why, pass_running: queue.running }, 'daemon stopping');
      clearTimeout(retryTimer);
      clearInterval(watchdogTimer);
      probes.stop();
      viciWatch?.stop();
      await options.notifier.stopping();
      await cronTask?.destroy();
      await watcher?.close();
      await queue.stop();
      if (status.lastPass?.outcome === 'interrupted') await publish();
      logger.info({ passes: status.passes }, 'daemon stopped');
      resolveDone(0);
    })();
    return stopping;
  }

  return {
    trigger: (reason) => queue.trigger(reason),
    stop,
    idle: () => queue.idle(),
    done,
    get status() {
      return status;
    },
  };
}
