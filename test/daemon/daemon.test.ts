/**
 * The daemon loop with stand-in reconcilers (no host touched): a pass at start then READY, a
 * desired-file change applied, an invalid edit logged while the last valid state is still
 * enforced, a trigger from outside (the vici seam), the schedule, a retry after a failed
 * pass, a stop in the middle of a pass, and a watchdog fed only while passes make progress.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { startDaemon, type Daemon } from '../../agent/daemon/daemon.js';
import type { ServiceNotifier } from '../../agent/daemon/service-notify.js';
import type { DaemonStatus } from '../../agent/daemon/status-file.js';
import type { ReconcilerFactory } from '../../agent/apply/reconciler.js';
import { ErrorCode, TunnelwardenError } from '../../agent/errors.js';
import type { CommandRunner } from '../../agent/host/exec.js';
import { hostFiles } from '../../agent/host/files.js';
import { DEFAULT_PATHS } from '../../agent/model/paths.js';
import type { ActionBase } from '../../agent/plan/actions.js';
import { collectingLogger, desiredText } from './helpers.js';

const WAIT_LIMIT_MS = 8_000;

async function waitUntil(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_LIMIT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${WAIT_LIMIT_MS} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A stand-in host: "ipsec" holds the remote subnet last applied, "link" counts its actions. */
function fakeHost() {
  const host = {
    remoteSubnet: undefined as string | undefined,
    linkActions: 0,
    linkWanted: false,
    linkApplying: false,
    /** When set, the link action waits for it (a pass "in the middle"). */
    linkGate: undefined as Promise<void> | undefined,
    ipsecFailure: undefined as TunnelwardenError | undefined,
  };
  const link: ReconcilerFactory = () => ({
    resource: 'link',
    async plan() {
      return host.linkWanted ? [{ resource: 'link', type: 'set-mtu', target: 'vlan4000', reason: 'mtu differs' }] : [];
    },
    async apply() {
      host.linkApplying = true;
      await host.linkGate;
      host.linkApplying = false;
      host.linkActions += 1;
      host.linkWanted = false;
    },
    warnings: () => [],
  });
  const ipsec: ReconcilerFactory = () => {
    return {
      resource: 'ipsec',
      async plan(desired) {
        const want = desired.ipsec?.connections[0]?.remote.subnets.join(',');
        if (want === host.remoteSubnet) return [];
        return [{ resource: 'ipsec', type: 'write-conf', target: 'a-to-b', reason: 'conn differs', want } as ActionBase];
      },
      async apply(action) {
        if (host.ipsecFailure) throw host.ipsecFailure;
        host.remoteSubnet = (action as ActionBase & { want: string }).want;
      },
      warnings: () => [],
    };
  };
  return { host, factories: [link, ipsec] };
}

function fakeNotifier(watchdogIntervalMs?: number) {
  const sent: string[] = [];
  const notifier: ServiceNotifier = {
    enabled: true,
    watchdogIntervalMs,
    ready: async (status) => void sent.push(`READY ${status}`),
    status: async (text) => void sent.push(`STATUS ${text}`),
    watchdog: async () => void sent.push('WATCHDOG'),
    stopping: async () => void sent.push('STOPPING'),
  };
  return { notifier, sent };
}

async function setup(
  t: { teardown: (fn: () => unknown) => void },
  options: { text?: string; watchdogIntervalMs?: number; stallLimitMs?: number; schedule?: string } = {},
) {
  const dir = await mkdtemp(path.join(tmpdir(), 'tw-daemon-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const configPath = path.join(dir, 'etc', 'desired.json');
  await mkdir(path.dirname(configPath), { recursive: true });
  await writeFile(configPath, options.text ?? desiredText(1));
  const statusFile = path.join(dir, 'run', 'status.json');
  const { host, factories } = fakeHost();
  const { notifier, sent } = fakeNotifier(options.watchdogIntervalMs);
  const log = collectingLogger('debug');
  const commands: string[][] = [];
  const run: CommandRunner = async (argv) => {
    commands.push([...argv]);
    return { exitCode: 0, stdout: '', stderr: '', durationMs: 0 };
  };
  const daemon: Daemon = await startDaemon({
    configPath,
    scheduleExpression: options.schedule ?? '0 0 0 1 1 *',
    intervalSeconds: 30,
    statusFile,
    ports: { run, files: hostFiles, logger: log.logger, paths: { ...DEFAULT_PATHS, stateDir: path.join(dir, 'state') } },
    notifier,
    factories,
    stallLimitMs: options.stallLimitMs,
    firstRetryDelayMs: 50,
  });
  t.teardown(() => daemon.stop('test over'));
  const readStatus = async () => JSON.parse(await readFile(statusFile, 'utf8')) as DaemonStatus;
  return { dir, configPath, statusFile, host, daemon, sent, log, readStatus };
}

t.test('a pass runs at start, then READY is sent and the status file written', async (t) => {
  const { host, daemon, sent, readStatus } = await setup(t);
  await daemon.idle();
  t.equal(host.remoteSubnet, '10.2.0.0/16', 'the desired state was applied');
  await waitUntil('READY sent', () => sent.some((line) => line.startsWith('READY')));
  t.equal(sent[0], 'READY converged', 'READY comes after the first pass, with its outcome');
  const status = await readStatus();
  t.equal(status.lastPass?.outcome, 'converged');
  t.same(status.lastPass?.triggers, ['start']);
  t.equal(status.lastPass?.actions, 1);
  t.same(status.lastPass?.applied, ['ipsec write-conf a-to-b: conn differs']);
  t.equal(status.pid, process.pid);
});

t.test('a desired-file change is applied by a pass triggered by the watcher', async (t) => {
  const { host, daemon, configPath, readStatus } = await setup(t);
  await daemon.idle();
  await writeFile(configPath, desiredText(5));
  await waitUntil('new subnet applied', () => host.remoteSubnet === '10.6.0.0/16');
  await daemon.idle();
  t.same((await readStatus()).lastPass?.triggers, ['file']);
});

t.test('an invalid edit is logged with its errors; the last valid state stays enforced', async (t) => {
  const { host, daemon, configPath, log, readStatus } = await setup(t);
  await daemon.idle();
  const broken = JSON.parse(desiredText(5));
  broken.ipsec.connections[0].remote.subnets = ['10.6.0.0/33'];
  await writeFile(configPath, JSON.stringify(broken));
  await waitUntil('error logged', () => log.entries().some((entry) => entry.msg === 'desired state error'));
  await daemon.idle();
  const error = log.entries().find((entry) => entry.msg === 'desired state error');
  t.equal(error?.field, 'ipsec.connections[0].remote.subnets[0]');
  t.equal(error?.file, configPath);
  t.equal(host.remoteSubnet, '10.2.0.0/16', 'still the last valid subnet');

  host.remoteSubnet = 'drifted';
  daemon.trigger('vici');
  await waitUntil('drift healed from the last valid state', () => host.remoteSubnet === '10.2.0.0/16');
  await daemon.idle();
  const status = await readStatus();
  t.match(status.desiredProblem, /invalid/);
  t.same(status.lastPass?.triggers, ['vici'], 'trigger(reason) is the seam for other event sources');
});

t.test('a daemon started on a broken file runs, enforces nothing, and picks up the fix', async (t) => {
  const { host, daemon, configPath, sent, log } = await setup(t, { text: '{"version": ' });
  await daemon.idle();
  await waitUntil('READY sent', () => sent.length > 0);
  t.match(sent[0], /^READY no valid desired state/);
  t.equal(host.remoteSubnet, undefined);
  t.ok(log.entries().some((entry) => entry.msg === 'no valid desired state yet; nothing enforced'));
  await writeFile(configPath, desiredText(2));
  await waitUntil('fixed file applied', () => host.remoteSubnet === '10.3.0.0/16');
});

t.test('the schedule triggers full passes', async (t) => {
  const { host, daemon, readStatus } = await setup(t, { schedule: '* * * * * *' });
  await daemon.idle();
  host.remoteSubnet = 'drifted';
  await waitUntil('drift healed by a scheduled pass', () => host.remoteSubnet === '10.2.0.0/16');
  await daemon.idle();
  t.same((await readStatus()).lastPass?.triggers, ['schedule']);
});

t.test('a pass failing with a retryable error logs a retry at warn and retries', async (t) => {
  const { host, daemon, log } = await setup(t);
  await daemon.idle();
  host.ipsecFailure = new TunnelwardenError('command-failed', ErrorCode.commandFailed, 'ipsec update exited with 1');
  host.remoteSubnet = 'drifted';
  daemon.trigger('signal');
  await waitUntil('retry scheduled', () => log.entries().some((entry) => entry.msg === 'pass retry scheduled'));
  const retry = log.entries().find((entry) => entry.msg === 'pass retry scheduled');
  t.equal(retry?.priority, 4, 'at warn');
  t.ok(log.entries().some((entry) => entry.msg === 'pass failed' && entry.priority === 3), 'the failed pass at error');
  host.ipsecFailure = undefined;
  await waitUntil('retry healed', () => host.remoteSubnet === '10.2.0.0/16');
});

t.test('stop in the middle of a pass finishes the running resource and skips the rest', async (t) => {
  const { host, daemon, log, readStatus } = await setup(t);
  await daemon.idle();
  let openGate: () => void = () => undefined;
  host.linkGate = new Promise((resolve) => {
    openGate = resolve;
  });
  host.linkWanted = true;
  host.remoteSubnet = 'drifted';
  daemon.trigger('signal');
  await waitUntil('link action running', () => host.linkApplying);
  let stopped = false;
  const stopping = daemon.stop('SIGTERM').then(() => {
    stopped = true;
  });
  await new Promise((resolve) => setImmediate(resolve));
  t.notOk(stopped, 'stop waits for the running action');
  openGate();
  await stopping;
  t.equal(await daemon.done, 0, 'exit code 0');
  t.equal(host.linkActions, 1, 'the running resource finished its action');
  t.equal(host.remoteSubnet, 'drifted', 'the resource not yet begun was skipped');
  const status = await readStatus();
  t.equal(status.lastPass?.outcome, 'interrupted');
  const cut = log.entries().find((entry) => entry.msg === 'pass cut short by shutdown');
  t.same(cut?.skipped, ['ipsec']);
  daemon.trigger('file');
  await daemon.idle();
  t.equal(host.remoteSubnet, 'drifted', 'no pass after stop');
});

t.test('the watchdog is fed while idle and while a pass progresses, not when it stalls', async (t) => {
  const { host, daemon, sent } = await setup(t, { watchdogIntervalMs: 20, stallLimitMs: 150 });
  await daemon.idle();
  const count = () => sent.filter((line) => line === 'WATCHDOG').length;
  const idleStart = count();
  await waitUntil('fed while idle', () => count() >= idleStart + 3);

  let openGate: () => void = () => undefined;
  host.linkGate = new Promise((resolve) => {
    openGate = resolve;
  });
  host.linkWanted = true;
  daemon.trigger('signal');
  const stalledAt = Date.now();
  await waitUntil('stall beyond the limit', () => Date.now() - stalledAt > 400);
  const duringStall = count();
  await waitUntil('some more intervals', () => Date.now() - stalledAt > 600);
  t.equal(count(), duringStall, 'no WATCHDOG while the pass makes no progress');
  openGate();
  await daemon.idle();
  await waitUntil('fed again once the pass ends', () => count() > duringStall);
});
