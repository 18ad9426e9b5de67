/**
 * Lab: a real LXD daemon (Debian's lxd 5.0.2) inside one lab site, with a managed bridge
 * twbr0 whose ipv4.nat LXD turns into a masquerade rule of its own. `tunnelwarden apply`
 * turns that NAT off through the API, undoes a hand-made flip back, leaves every other key of
 * the network alone, takes no action the second time, and reports (without crashing) a host
 * whose LXD is not running.
 *
 * How LXD runs in a site: the site's /var/lib (where LXD keeps its database and socket), /run
 * and /var/log are private, and the suite mounts a sysfs of the site's own network namespace
 * on the site's /sys, because LXD looks interfaces up under /sys/class/net (with the host's
 * sysfs it does not see its own bridge and fails to bring it up again). The daemon runs as a
 * plain background process, a child of this test, started with `nsenter`; the `lxc` client
 * keeps its config in the site's /run (LXD_CONF), so nothing lands in the host's /root. At
 * start LXD tries to fetch instance types from the internet: the site has no route out and
 * its resolv.conf points at the site's own loopback, so that stays inside the site.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { Lab, labSkipReason, REPO_ROOT, type Site } from './harness.js';

const PREFIX = 'twx';
const CLI = path.join(REPO_ROOT, 'dist', 'agent', 'cli', 'bin.js');
const BRIDGE = 'twbr0';
const BRIDGE_ADDRESS = '10.77.0.1/24';
const BRIDGE_SUBNET = '10.77.0.0/24';
const LXD_SOCKET = '/var/lib/lxd/unix.socket';
const LXC_ENV = { LXD_CONF: '/run/lxc-client' };
const LXD_BINARIES = ['/usr/bin/lxd', '/usr/bin/lxc', '/usr/sbin/dnsmasq'];

/** How long LXD gets to start, to go away, and to show a change in its firewall rules. */
const LXD_START_TIMEOUT_S = 60;
const LXD_STOP_TIMEOUT_MS = 30_000;
const RULE_TIMEOUT_MS = 10_000;
const POLL_INTERVAL_MS = 100;

function skipReason(): string | undefined {
  const lab = labSkipReason();
  if (lab !== undefined) return lab;
  const missing = LXD_BINARIES.filter((binary) => !existsSync(binary));
  if (missing.length === 0) return undefined;
  const reason =
    `LXD is not installed (missing ${missing.join(', ')}; ` +
    'test/install-deps.sh installs lxd and dnsmasq-base)';
  if (process.env.CI === 'true')
    throw new Error(`the LXD lab is required in CI (CI=true): ${reason}`);
  return reason;
}

const skip = skipReason();

const desiredState = {
  version: 1,
  site: { name: 'lxd-lab', subnets: ['10.1.0.0/16'] },
  lxd: { networks: [{ name: BRIDGE, ipv4Nat: false }] },
};

async function waitUntil(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}

function lxc(site: Site, args: string[]) {
  return site.execOk(['lxc', ...args], { env: LXC_ENV });
}

/** The network as LXD's API returns it, through `lxc query`. */
async function networkConfig(site: Site): Promise<Record<string, string>> {
  const answer = await lxc(site, ['query', `/1.0/networks/${BRIDGE}`]);
  return JSON.parse(answer.stdout).config;
}

/**
 * LXD's masquerade rule for the bridge in the site's firewall. LXD 5.0.2 writes it with nft
 * (table inet lxd, chain pstrt.twbr0) where nft is usable, else with iptables; look in both.
 */
async function lxdMasqueradeRules(site: Site): Promise<string[]> {
  const nft = await site.exec(['nft', 'list', 'ruleset']);
  const iptables = await site.exec(['iptables-save', '-t', 'nat']);
  const subnet = BRIDGE_SUBNET.replace(/[./]/g, (char) => `\\${char}`);
  const pattern = new RegExp(`^.*${subnet}.*(masquerade|MASQUERADE).*$`, 'gm');
  return [...`${nft.stdout}\n${iptables.stdout}`.matchAll(pattern)].map((match) => match[0].trim());
}

async function waitForMasquerade(site: Site, present: boolean): Promise<void> {
  const what = `LXD's masquerade rule for ${BRIDGE_SUBNET} ${present ? 'present' : 'gone'}`;
  await waitUntil(
    what,
    RULE_TIMEOUT_MS,
    async () => (await lxdMasqueradeRules(site)).length > 0 === present,
  );
}

/** Pids in the site's network namespace, from `ip netns pids` on the host. */
function pidsInSite(site: Site): number[] {
  const listing = spawnSync('ip', ['netns', 'pids', site.netns], { encoding: 'utf8' });
  return listing.status === 0
    ? listing.stdout
        .split('\n')
        .map(Number)
        .filter((pid) => pid > 0)
    : [];
}

/** The entries of a host directory, sorted; empty when it does not exist. */
function listing(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

/** Alive and not a zombie; a zombie has exited and only waits for its parent. */
function isRunning(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function commandName(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
}

async function apply(site: Site, file: string, extra: string[] = []) {
  return site.exec(['node', CLI, 'apply', file, '--log-level', 'info', ...extra], {
    timeoutMs: 60_000,
  });
}

t.test('apply keeps LXD bridge NAT off through the LXD API', { skip }, async (t) => {
  const hostLxdBefore = listing('/var/lib/lxd');
  const hostLxcConfigBefore = existsSync('/root/.config/lxc');

  const lab = await Lab.create({
    prefix: PREFIX,
    sites: [{ name: 'A', transitAddress: '172.16.0.18/24', subnetAddress: '10.1.0.1/16' }],
  });
  t.teardown(() => lab.destroy());
  const site = lab.site('A');
  const work = path.join(lab.dir, 'desired');
  await mkdir(work, { recursive: true });
  const desiredFile = path.join(work, 'lxd.json');
  await writeFile(desiredFile, JSON.stringify(desiredState, null, 2));

  // The site's own sysfs, and a resolver that stays inside the site.
  await site.execOk(['mount', '-t', 'sysfs', 'sysfs', '/sys']);
  await site.writeFile('/etc/resolv.conf', 'nameserver 127.0.0.1\n');

  let lxd: ChildProcess | undefined;
  const startLxd = async () => {
    const mountFile = path.join(lab.dir, 'mnt', 'a');
    lxd = spawn(
      'nsenter',
      [
        `--net=/run/netns/${site.netns}`,
        `--mount=${mountFile}`,
        '--wd=/',
        '--',
        '/usr/bin/lxd',
        '--group',
        'root',
        '--logfile',
        '/var/log/lxd.log',
      ],
      {
        stdio: 'ignore',
        env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
      },
    );
    const ready = await site.exec(['lxd', 'waitready', '--timeout', String(LXD_START_TIMEOUT_S)], {
      timeoutMs: (LXD_START_TIMEOUT_S + 10) * 1000,
    });
    if (ready.code !== 0) {
      const log = await site.exec(['tail', '-n', '30', '/var/log/lxd.log']);
      throw new Error(`LXD did not become ready: ${ready.stderr}\nlxd.log:\n${log.stdout}`);
    }
  };
  const stopLxd = async () => {
    const daemon = lxd;
    if (daemon === undefined || daemon.exitCode !== null || daemon.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => daemon.once('exit', () => resolve()));
    daemon.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const stopped = await Promise.race([
      exited.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), LXD_STOP_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (!stopped) {
      daemon.kill('SIGKILL');
      await exited;
    }
  };
  t.teardown(stopLxd);

  await startLxd();
  await lxc(site, [
    'network',
    'create',
    BRIDGE,
    `ipv4.address=${BRIDGE_ADDRESS}`,
    'ipv4.nat=true',
    'ipv6.address=none',
  ]);

  await t.test('LXD masquerades the bridge while ipv4.nat is true', async (t) => {
    t.equal((await networkConfig(site))['ipv4.nat'], 'true');
    await waitForMasquerade(site, true);
    const rules = await lxdMasqueradeRules(site);
    t.match(
      rules[0],
      /ip saddr 10\.77\.0\.0\/24 ip daddr != 10\.77\.0\.0\/24 masquerade|-s 10\.77\.0\.0\/24/,
    );
    t.comment(`LXD's rule: ${rules.join(' | ')}`);
  });

  await t.test('apply sets ipv4.nat false and LXD drops its masquerade rule', async (t) => {
    const result = await apply(site, desiredFile);
    t.equal(result.code, 0, 'apply exits 0', { output: result.stdout + result.stderr });
    t.match(
      result.stdout,
      `applied 1. lxd set-network-nat ${BRIDGE}: ipv4.nat is true, want false`,
    );
    t.equal((await networkConfig(site))['ipv4.nat'], 'false');
    await waitForMasquerade(site, false);
    t.same(await lxdMasqueradeRules(site), []);
  });

  await t.test('a hand-made flip back is undone and other keys stay as set by hand', async (t) => {
    await lxc(site, ['network', 'set', BRIDGE, 'ipv4.nat', 'true']);
    await lxc(site, ['network', 'set', BRIDGE, 'ipv4.dhcp', 'false']);
    await lxc(site, ['network', 'set', BRIDGE, 'user.note', 'kept-by-hand']);
    await waitForMasquerade(site, true);
    const before = await networkConfig(site);
    t.equal(before['ipv4.nat'], 'true');

    const result = await apply(site, desiredFile);
    t.equal(result.code, 0, 'apply exits 0', { output: result.stdout + result.stderr });
    t.match(
      result.stdout,
      `applied 1. lxd set-network-nat ${BRIDGE}: ipv4.nat is true, want false`,
    );
    await waitForMasquerade(site, false);
    const after = await networkConfig(site);
    t.same(after, { ...before, 'ipv4.nat': 'false' }, 'only ipv4.nat changed');
    t.equal(after['ipv4.dhcp'], 'false');
    t.equal(after['user.note'], 'kept-by-hand');
    t.equal(after['ipv4.address'], BRIDGE_ADDRESS);
  });

  await t.test('a second apply takes no action', async (t) => {
    const before = await lxc(site, ['query', '--raw', `/1.0/networks/${BRIDGE}`]);
    const result = await apply(site, desiredFile);
    t.equal(result.code, 0, 'apply exits 0', { output: result.stdout + result.stderr });
    t.equal(result.stdout.trim(), 'No action: the host already matches the desired state.');
    const after = await lxc(site, ['query', '--raw', `/1.0/networks/${BRIDGE}`]);
    t.equal(after.stdout, before.stdout, 'the network is exactly as before');
  });

  await t.test('without a running LXD, apply reports the lxd resource and exits 4', async (t) => {
    await stopLxd();
    const result = await apply(site, desiredFile, ['--json']);
    t.equal(result.code, 4, 'apply exits 4 (failed)', { output: result.stdout + result.stderr });
    const report = JSON.parse(result.stdout);
    t.same(
      report.failures.map((failure: { resource: string }) => failure.resource),
      ['lxd'],
      'only lxd failed',
    );
    t.equal(report.failures[0].code, 'TW_LXD_UNAVAILABLE');
    t.match(report.failures[0].message, /no LXD daemon|no LXD or Incus daemon/);
    t.equal(report.converged, false);
    t.match(result.stderr, /^lxd: .*\[TW_LXD_UNAVAILABLE\]$/m);
    const unexpected = result.stderr
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('lxd: ') && !line.startsWith('{"level":'));
    t.same(unexpected, [], 'no crash: stderr holds only JSON log lines and the failure report');
    t.comment(`without LXD: ${report.failures[0].message}`);

    const withoutLxd = { version: 1, site: desiredState.site };
    const plainFile = path.join(work, 'no-lxd.json');
    await writeFile(plainFile, JSON.stringify(withoutLxd));
    const plain = await apply(site, plainFile);
    t.equal(plain.code, 0, 'a desired state without lxd needs no LXD', {
      output: plain.stdout + plain.stderr,
    });
  });

  await t.test('nothing of LXD outlives the lab or lands on the host', async (t) => {
    await startLxd(); // again, so that dnsmasq runs when the lab is torn down
    await waitUntil('dnsmasq of the bridge running', RULE_TIMEOUT_MS, async () =>
      pidsInSite(site).some((pid) => commandName(pid) === 'dnsmasq'),
    );
    const pids = pidsInSite(site);
    const names = pids.map(commandName);
    t.ok(
      names.includes('lxd') && names.includes('dnsmasq'),
      `running in the site: ${names.join(', ')}`,
    );

    await lab.destroy();
    const survivors = pids.filter(isRunning).map((pid) => `${pid} ${commandName(pid)}`);
    t.same(survivors, [], 'no process of the site survives');
    t.same(listing('/var/lib/lxd'), hostLxdBefore, "the host's /var/lib/lxd is untouched");
    t.equal(
      existsSync('/root/.config/lxc'),
      hostLxcConfigBefore,
      "no lxc client config in the host's /root",
    );
  });
});
