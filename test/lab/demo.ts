/**
 * `make demo`: two sites A and B in network namespaces with real strongSwan, each kept by
 * `tunnelwarden run` (the daemon) from the config/ example desired states, a "container" at
 * site A whose pings cross the tunnel, and six classic failures injected one after another.
 * For each, it measures (bounded poll) how long until tunnelwarden has healed it and shows
 * what the daemons logged about it, then ends with a healing summary table.
 *
 * A short live view on stdout; the daemons' full JSON logs go to LOG_FILE. Removes everything
 * it created at the end, also on Ctrl-C (SIGINT), SIGTERM and failure; `make demo-clean`
 * (`demo.ts clean`) removes what a killed run left behind (everything is named `twdemo*`).
 * Exit code: 0 only when every fault healed, 1 otherwise, 130 when interrupted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Lab, labSkipReason, REPO_ROOT, type Guest, type Site } from './harness.js';
import { CLI, connSasIn, EXAMPLE_SITES, writePsk, type Desired } from './ipsec-lab.js';

const PREFIX = 'twdemo';
const LOG_FILE = '/var/tmp/tunnelwarden-demo.log';
/** The daemon's default schedule is 30 s; the demo runs full passes every 5 s. */
const INTERVAL_SECONDS = 5;
const MTU = 1400;
const HEAL_BOUND_MS = 90_000;
const SETUP_BOUND_MS = 90_000;
const POLL_MS = 100;
/** A settled lab: no action, finding or SA change logged for this long (3 probe intervals). */
const QUIET_MS = 3_000;
const QUIET_BOUND_MS = 60_000;
const IN_PLACE_BOUND_MS = 10_000;
const LXD_READY_SECONDS = 30;
const LXD_NETWORK = 'lxdbr0';
const LXD_ADDRESS = '10.77.0.1/24';
const LXC_ENV = { LXD_CONF: '/run/lxc-client' };
const CONTAINER = { name: 'ct', address: '10.1.0.50/16', gateway: '10.1.0.1' };
const REMOTE_TARGET = '10.2.0.1';
const OUR_CONF = '/etc/ipsec.d/tunnelwarden.conf';
const SEARCH_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Daemon log messages worth showing in the live view. */
const SHOWN = new Set(['action applied', 'action failed', 'health finding', 'heal cap reached; not healing this conn for now', 'resource could not be planned']);

const say = (line: string) => process.stdout.write(`${line}\n`);
const log = (line: string) => appendFileSync(LOG_FILE, `${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const ms = (value: number) => `${Math.round(value)} ms`;

type LogEntry = Record<string, any> & { msg: string; at: number };

/** Polls `check` every POLL_MS until it holds; returns the ms waited, or undefined after `boundMs`. */
async function until(check: () => Promise<boolean> | boolean, boundMs: number, from = performance.now()): Promise<number | undefined> {
  for (;;) {
    if (await Promise.resolve().then(check).catch(() => false)) return performance.now() - from;
    if (performance.now() - from > boundMs) return undefined;
    await sleep(POLL_MS);
  }
}

/** `tunnelwarden run` inside a site, its stdout (JSON lines) parsed and copied to LOG_FILE. */
class Daemon {
  readonly entries: LogEntry[] = [];
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;

  constructor(lab: Lab, readonly site: Site, file: string) {
    const mountFile = path.join(lab.dir, 'mnt', site.spec.name.toLowerCase());
    const args = ['run', '--config', file, '--interval-seconds', String(INTERVAL_SECONDS), '--log-level', 'debug'];
    this.child = spawn('nsenter', [`--net=/run/netns/${site.netns}`, `--mount=${mountFile}`, '--wd=/', '--', 'node', CLI, ...args], {
      env: { PATH: SEARCH_PATH, HOME: '/root', LC_ALL: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const name = site.spec.name;
    let partial = '';
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        log(`[${name}] ${line}`);
        const match = /^<\d>(\{.*\})$/.exec(line);
        if (match) this.entries.push({ ...JSON.parse(match[1]!), at: performance.now() });
      }
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => log(`[${name} stderr] ${chunk.trimEnd()}`));
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
  }

  since(mark: number): LogEntry[] {
    return this.entries.slice(mark);
  }

  /** SIGTERM, then SIGKILL if it has not exited within 30 s. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    if ((await Promise.race([this.exited.then(() => true), sleep(30_000).then(() => false)])) === false) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}

/** A config/ example with the transit section pointed at the lab's `transit` veth (no VLAN). */
function demoDesired(example: string, withLxd: boolean): Desired {
  const desired = JSON.parse(readFileSync(path.join(REPO_ROOT, 'config', example), 'utf8'));
  delete desired.$schema;
  desired.transit.interface = 'transit';
  delete desired.transit.parent;
  delete desired.transit.vlanId;
  desired.transit.mtuBytes = MTU;
  if (!withLxd) delete desired.lxd;
  return desired;
}

async function tunnelUp(site: Site, conn: string): Promise<boolean> {
  return (await connSasIn(site, conn)).some((sa) => sa.state === 'ESTABLISHED' && sa.children.some((c) => c.state === 'INSTALLED'));
}

async function containerPings(container: Guest): Promise<boolean> {
  return (await container.exec(['ping', '-n', '-q', '-c', '1', '-W', '1', REMOTE_TARGET], { timeoutMs: 5_000 })).code === 0;
}

async function mtuOf(site: Site): Promise<number> {
  const shown = await site.execOk(['ip', '-json', 'link', 'show', 'dev', 'transit']);
  return JSON.parse(shown.stdout)[0].mtu;
}

/** The iptables variant (legacy or nft) holding our TW-MASQ chain, or undefined. */
async function masqBackend(site: Site): Promise<string | undefined> {
  for (const variant of ['iptables-nft', 'iptables-legacy']) {
    const saved = await site.exec([`${variant}-save`, '-t', 'nat']);
    if (saved.code === 0 && /^-A TW-MASQ .*-j MASQUERADE/m.test(saved.stdout)) return variant;
  }
  return undefined;
}

async function masqueradeRulePresent(site: Site, variant: string): Promise<boolean> {
  const rules = await site.exec([variant, '-w', '-t', 'nat', '-S', 'TW-MASQ']);
  return rules.code === 0 && /-j MASQUERADE/.test(rules.stdout);
}

/** LXD's ipv4.nat of the demo bridge, through its API. */
async function lxdNat(site: Site): Promise<string | undefined> {
  const answer = await site.execOk(['lxc', 'query', `/1.0/networks/${LXD_NETWORK}`], { env: LXC_ENV });
  return JSON.parse(answer.stdout).config['ipv4.nat'];
}

/** Whether LXD's own masquerade rule for its bridge is in the site's nft ruleset. */
async function lxdMasquerades(site: Site): Promise<boolean> {
  const subnet = LXD_ADDRESS.replace(/\.1\//, '.0/');
  const ruleset = await site.execOk(['nft', 'list', 'ruleset']);
  return ruleset.stdout.split('\n').some((line) => line.includes(subnet) && line.includes('masquerade'));
}

/** Starts LXD in site A with a managed bridge, NAT on; returns why it could not, or undefined. */
async function startLxd(lab: Lab, site: Site, started: (child: ChildProcess) => void): Promise<string | undefined> {
  const missing = ['/usr/bin/lxd', '/usr/bin/lxc', '/usr/sbin/dnsmasq'].filter((file) => !existsSync(file));
  if (missing.length > 0) return `LXD is not installed (missing ${missing.join(', ')})`;
  // LXD looks interfaces up under /sys/class/net: give it the site's own sysfs. Its resolver
  // points inside the site, which has no route out anyway.
  await site.execOk(['mount', '-t', 'sysfs', 'sysfs', '/sys']);
  await site.writeFile('/etc/resolv.conf', 'nameserver 127.0.0.1\n');
  const mountFile = path.join(lab.dir, 'mnt', site.spec.name.toLowerCase());
  const lxd = spawn('nsenter', [`--net=/run/netns/${site.netns}`, `--mount=${mountFile}`, '--wd=/', '--', '/usr/bin/lxd', '--group', 'root', '--logfile', '/var/log/lxd.log'], {
    stdio: 'ignore',
    env: { PATH: SEARCH_PATH, LC_ALL: 'C' },
  });
  started(lxd);
  const ready = await site.exec(['lxd', 'waitready', '--timeout', String(LXD_READY_SECONDS)], { timeoutMs: (LXD_READY_SECONDS + 5) * 1000 });
  if (ready.code !== 0) {
    const tail = await site.exec(['tail', '-n', '5', '/var/log/lxd.log']);
    return `LXD did not become ready within ${LXD_READY_SECONDS} s: ${ready.stderr.trim()} ${tail.stdout.trim()}`;
  }
  const created = await site.exec(['lxc', 'network', 'create', LXD_NETWORK, `ipv4.address=${LXD_ADDRESS}`, 'ipv4.nat=true', 'ipv6.address=none'], { env: LXC_ENV });
  if (created.code !== 0) return `lxc network create failed: ${created.stderr.trim()}`;
  return undefined;
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<boolean>((resolve) => child.once('exit', () => resolve(true)));
  child.kill('SIGTERM');
  if (!(await Promise.race([exited, sleep(20_000).then(() => false)]))) child.kill('SIGKILL');
}

interface Fault {
  /** Short name, for the summary table. */
  name: string;
  /** How it is injected, as a person would do it. */
  how: string;
  /** Injects the fault. */
  inject: () => Promise<void>;
  /** When given, the fault counts as injected only once this holds (polled, bounded). */
  inPlace?: () => Promise<boolean>;
  /** Whether the site is as declared again (and, for IPsec faults, traffic crosses). */
  healed: () => Promise<boolean>;
}

interface Outcome {
  name: string;
  healedMs: number | undefined;
  did: string;
}

/** The short form of one daemon log line for the live view. */
function shortLine(site: string, entry: LogEntry): string {
  if (entry.msg === 'health finding') return `${site} health finding ${entry.conn}: ${entry.finding} (${entry.reason})`;
  if (entry.msg === 'action applied') return `${site} action applied: ${entry.resource} ${entry.action} ${entry.target}: ${entry.reason} [${entry.duration_ms} ms]`;
  const detail = [entry.resource, entry.action, entry.target, entry.code ?? entry.conn].filter(Boolean).join(' ');
  return `${site} ${entry.msg}: ${detail}`;
}

/** What the daemons did about a fault: their actions, with the trigger of the pass that did them. */
function whatItDid(daemons: Daemon[], marks: number[]): string {
  const parts: string[] = [];
  daemons.forEach((daemon, index) => {
    const entries = daemon.since(marks[index]!);
    const passes = new Map<number, string>();
    for (const entry of daemon.entries) {
      if (entry.msg === 'pass started') passes.set(entry.pass, (entry.trigger as string[]).join('+'));
    }
    const counts = new Map<string, number>();
    for (const entry of entries.filter((e) => e.msg === 'action applied')) {
      const text = `${daemon.site.spec.name}: ${entry.action} ${entry.target} (${passes.get(entry.pass) ?? '?'} pass)`;
      counts.set(text, (counts.get(text) ?? 0) + 1);
    }
    for (const [text, count] of counts) parts.push(count > 1 ? `${text} x${count}` : text);
  });
  return parts.length > 0 ? parts.join('; ') : 'no action logged';
}

/**
 * Waits (bounded) until neither daemon has logged an action, finding or SA change for
 * QUIET_MS after `since`, so that each fault starts from a settled lab and its log lines are
 * its own (an action is logged when it ends, which can be after the host already shows it).
 */
async function quiet(daemons: Daemon[], since = 0): Promise<void> {
  const noisy = new Set([...SHOWN, 'SA went down', 'SA came up', 'probe lost; asking for a pass']);
  const lastNoise = () => Math.max(since, ...daemons.flatMap((d) => d.entries.filter((e) => noisy.has(e.msg)).map((e) => e.at)));
  await until(() => performance.now() - lastNoise() >= QUIET_MS, QUIET_BOUND_MS);
}

async function injectAndMeasure(number: number, fault: Fault, daemons: Daemon[]): Promise<Outcome> {
  say(`\n${number}. Fault: ${fault.name} (${fault.how})`);
  const marks = daemons.map((daemon) => daemon.entries.length);
  const at = performance.now();
  log(`[demo] fault ${number} (${fault.name}): injecting`);
  await fault.inject();
  if (fault.inPlace !== undefined && (await until(fault.inPlace, IN_PLACE_BOUND_MS)) === undefined) {
    throw new Error(`fault ${number} (${fault.name}) did not take effect within ${ms(IN_PLACE_BOUND_MS)}`);
  }
  // Healed = the condition holds and still holds once the daemons have gone quiet again.
  let healedMs: number | undefined;
  for (;;) {
    healedMs = await until(fault.healed, HEAL_BOUND_MS - (performance.now() - at), at);
    if (healedMs === undefined) break;
    const heldAt = performance.now();
    await quiet(daemons, heldAt);
    if (await fault.healed().catch(() => false)) break;
    log(`[demo] ${fault.name}: healed at +${ms(heldAt - at)} but not any more; polling again`);
  }
  if (healedMs === undefined) say(`    NOT healed within ${ms(HEAL_BOUND_MS)}`);
  log(`[demo] fault ${number} (${fault.name}): ${healedMs === undefined ? 'not healed' : `healed in ${ms(healedMs)}`}`);
  daemons.forEach((daemon, index) => {
    const shown = daemon.since(marks[index]!).filter((entry) => SHOWN.has(entry.msg));
    for (const entry of shown.slice(0, 6)) say(`    ${shortLine(daemon.site.spec.name, entry)}`);
    if (shown.length > 6) say(`    ${daemon.site.spec.name} ... ${shown.length - 6} more such lines in ${LOG_FILE}`);
  });
  if (healedMs !== undefined) say(`    healed in ${ms(healedMs)}`);
  return { name: fault.name, healedMs, did: whatItDid(daemons, marks) };
}

// ---- run state, shared with the signal handler -------------------------------------------
let labCreating: Promise<Lab> | undefined;
const daemons: Daemon[] = [];
let lxdProcess: ChildProcess | undefined;
let cleaning: Promise<void> | undefined;
let interrupted = false;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    say('\nRemoving the lab (daemons, LXD, strongSwan, namespaces, mounts, files)...');
    await Promise.all(daemons.map((daemon) => daemon.stop()));
    await stopChild(lxdProcess);
    const lab = await labCreating?.catch(() => undefined);
    await lab?.destroy();
    say('Lab removed.');
  })();
  return cleaning;
}

function onSignal(signal: NodeJS.Signals): void {
  if (interrupted) return;
  interrupted = true;
  say(`\nInterrupted (${signal}).`);
  void cleanup()
    .catch((error: unknown) => process.stderr.write(`cleanup failed: ${(error as Error).message}; run make demo-clean\n`))
    .finally(() => process.exit(130));
}

async function main(): Promise<number> {
  const skip = labSkipReason();
  if (skip) throw new Error(`the demo cannot run here: ${skip}`);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  writeFileSync(LOG_FILE, `tunnelwarden demo, ${new Date().toISOString()}\n`);
  say(`Full logs (both daemons, JSON lines): ${LOG_FILE}`);
  say(`Note: the transit link is the lab's plain veth "transit", not a VLAN: this kernel lacks 802.1Q.`);
  say(`Note: the daemons run with --interval-seconds ${INTERVAL_SECONDS} (default 30): host-networking drift`);
  say('      (MTU, MASQUERADE, LXD, our strongSwan file) has no event and is found by the schedule;');
  say('      IPsec faults heal on charon\'s vici events and the probe monitor.');

  say('\nCreating site A (transit 172.16.0.18, 10.1.0.0/16) and site B (transit 172.16.0.2, 10.2.0.0/16)...');
  labCreating = Lab.create({ prefix: PREFIX, sites: EXAMPLE_SITES });
  const lab = await labCreating;
  const a = lab.site('A');
  const b = lab.site('B');
  const container = await lab.attachGuest('A', CONTAINER);
  say(`    "container" namespace ${container.netns} (${CONTAINER.address}) on site A's site0 bridge`);

  say(`\nStarting LXD in site A with bridge ${LXD_NETWORK} (${LXD_ADDRESS}, ipv4.nat=true)...`);
  const lxdStartedAt = performance.now();
  const lxdProblem = await startLxd(lab, a, (child) => (lxdProcess = child)).catch((error: unknown) => (error as Error).message);
  if (lxdProblem === undefined) {
    say(`    LXD ready, ${LXD_NETWORK} created with ipv4.nat=${await lxdNat(a)} (${ms(performance.now() - lxdStartedAt)})`);
  } else {
    say(`    LXD skipped: ${lxdProblem.split('\n')[0]}`);
    say('    continuing without the LXD part (no lxd section, no LXD fault)');
    await stopChild(lxdProcess);
  }
  const withLxd = lxdProblem === undefined;

  const work = path.join(lab.dir, 'desired');
  await mkdir(work, { recursive: true });
  const fileA = path.join(work, 'site-a.json');
  const fileB = path.join(work, 'site-b.json');
  writeFileSync(fileA, JSON.stringify(demoDesired('site-a.json', withLxd), null, 2));
  writeFileSync(fileB, JSON.stringify(demoDesired('site-b.json', false), null, 2));
  await writePsk([a, b], randomBytes(24).toString('base64'));
  say(`    desired states: config/site-a.json and site-b.json, transit -> "transit", MTU ${MTU}${withLxd ? '' : ', no lxd'}`);

  say('\nStarting `tunnelwarden run` at site B (responder), then at site A (initiator)...');
  const daemonB = new Daemon(lab, b, fileB);
  daemons.push(daemonB);
  const loaded = await until(async () => (await b.exec(['ipsec', 'statusall'])).stdout.includes('b-to-a:'), SETUP_BOUND_MS);
  if (loaded === undefined) throw new Error(`site B: b-to-a not loaded within ${ms(SETUP_BOUND_MS)}; see ${LOG_FILE}`);
  say(`    B: strongSwan started, b-to-a loaded (${ms(loaded)})`);
  const daemonA = new Daemon(lab, a, fileA);
  daemons.push(daemonA);
  const startedAt = performance.now();
  const up = await until(() => tunnelUp(a, 'a-to-b'), SETUP_BOUND_MS, startedAt);
  if (up === undefined) throw new Error(`a-to-b not established within ${ms(SETUP_BOUND_MS)}; see ${LOG_FILE}`);
  say(`    A: a-to-b ESTABLISHED with an INSTALLED CHILD_SA ${ms(up)} after the daemon started`);
  const crossing = await until(() => containerPings(container), SETUP_BOUND_MS, startedAt);
  if (crossing === undefined) throw new Error(`no ping from the container to ${REMOTE_TARGET}; see ${LOG_FILE}`);
  say(`    ping ${CONTAINER.address.split('/')[0]} (container) -> ${REMOTE_TARGET} (site B) through the tunnel: replies`);

  const variant = await (async () => {
    let found: string | undefined;
    await until(async () => (found = await masqBackend(a)) !== undefined, SETUP_BOUND_MS);
    return found;
  })();
  const settled = await until(async () => (await mtuOf(a)) === MTU && (!withLxd || (await lxdNat(a)) === 'false'), SETUP_BOUND_MS);
  if (variant === undefined || settled === undefined) throw new Error(`site A did not converge within ${ms(SETUP_BOUND_MS)}; see ${LOG_FILE}`);
  say('    waiting until both daemons are quiet (no action, finding or SA change for 3 s)...');
  await quiet(daemons);
  say('    what the daemons did to get here:');
  for (const daemon of [daemonB, daemonA]) {
    for (const entry of daemon.entries.filter((e) => SHOWN.has(e.msg))) say(`      ${shortLine(daemon.site.spec.name, entry)}`);
  }


  const ipsecHealed = async () => (await tunnelUp(a, 'a-to-b')) && (await containerPings(container));
  let confBefore = '';
  const faults: (Fault | { name: string; skipped: string })[] = [
    {
      name: 'SA terminated',
      how: 'ipsec down a-to-b at A',
      inject: async () => void (await a.execOk(['ipsec', 'down', 'a-to-b'])),
      healed: ipsecHealed,
    },
    {
      name: "peer's charon SIGKILLed",
      how: 'kill -KILL at B: B loses all its SAs; its starter restarts charon about 5 s later',
      inject: async () => {
        if ((await b.killCharon('SIGKILL')) === undefined) throw new Error('site B has no charon to kill');
      },
      healed: async () => (await tunnelUp(b, 'b-to-a')) && (await ipsecHealed()),
    },
    {
      name: 'MASQUERADE rule deleted',
      how: `${variant} -t nat -D TW-MASQ <its number> at A`,
      inject: async () => {
        const listed = await a.execOk([variant, '-w', '-t', 'nat', '-L', 'TW-MASQ', '-n', '--line-numbers']);
        const line = listed.stdout.split('\n').find((row) => /^\d+\s+MASQUERADE\b/.test(row));
        if (line === undefined) throw new Error(`no MASQUERADE rule in TW-MASQ:\n${listed.stdout}`);
        await a.execOk([variant, '-w', '-t', 'nat', '-D', 'TW-MASQ', line.split(/\s+/)[0]!]);
      },
      healed: () => masqueradeRulePresent(a, variant),
    },
    {
      name: 'transit MTU set to 1500',
      how: 'ip link set transit mtu 1500 at A',
      inject: async () => void (await a.execOk(['ip', 'link', 'set', 'transit', 'mtu', '1500'])),
      healed: async () => (await mtuOf(a)) === MTU,
    },
    withLxd
      ? {
          name: 'LXD NAT switched back on',
          how: `lxc network set ${LXD_NETWORK} ipv4.nat true at A`,
          inject: async () => void (await a.execOk(['lxc', 'network', 'set', LXD_NETWORK, 'ipv4.nat', 'true'], { env: LXC_ENV })),
          // LXD may apply a change a moment after `lxc network set` returns: wait until it shows.
          inPlace: async () => (await lxdNat(a)) === 'true' || (await lxdMasquerades(a)),
          healed: async () => (await lxdNat(a)) === 'false' && !(await lxdMasquerades(a)),
        }
      : { name: 'LXD NAT switched back on', skipped: lxdProblem!.split('\n')[0]! },
    {
      name: 'our strongSwan file edited',
      how: `dpddelay=30s -> 300s in ${OUR_CONF} at A, then ipsec update`,
      inject: async () => {
        confBefore = await a.readFile(OUR_CONF);
        if (!confBefore.includes('dpddelay=30s')) throw new Error(`${OUR_CONF} has no dpddelay=30s`);
        await a.writeFile(OUR_CONF, confBefore.replace('dpddelay=30s', 'dpddelay=300s'));
        await a.execOk(['ipsec', 'update']);
      },
      healed: async () => (await a.readFile(OUR_CONF)) === confBefore && (await ipsecHealed()),
    },
  ];

  const outcomes: Outcome[] = [];
  for (const [index, fault] of faults.entries()) {
    if ('skipped' in fault) {
      say(`\n${index + 1}. Fault: ${fault.name}: skipped, LXD is not running (${fault.skipped})`);
      outcomes.push({ name: fault.name, healedMs: undefined, did: `skipped: ${fault.skipped}` });
    } else {
      outcomes.push(await injectAndMeasure(index + 1, fault, daemons));
    }
  }

  say('\nHealing summary (from injecting the fault to the site as declared again, polled every 100 ms;');
  say('IPsec faults count only once the container\'s ping crosses again):');
  const width = Math.max(...outcomes.map((o) => o.name.length));
  say(`    ${'fault'.padEnd(width)}  ${'healed in'.padStart(10)}  what tunnelwarden did (site: action target (pass trigger))`);
  for (const outcome of outcomes) {
    const time = outcome.healedMs !== undefined ? ms(outcome.healedMs) : outcome.did.startsWith('skipped') ? 'skipped' : 'NOT HEALED';
    say(`    ${outcome.name.padEnd(width)}  ${time.padStart(10)}  ${outcome.did}`);
  }
  const unhealed = outcomes.filter((o) => o.healedMs === undefined && !o.did.startsWith('skipped'));
  if (unhealed.length > 0) {
    process.stderr.write(`demo failed: not healed within ${ms(HEAL_BOUND_MS)}: ${unhealed.map((o) => o.name).join('; ')}; see ${LOG_FILE}\n`);
    return 1;
  }
  say('\nEvery fault healed.');
  return 0;
}

/** `demo.ts clean`: remove what a killed demo left behind (namespaces, mounts, processes, files). */
async function clean(): Promise<void> {
  const lab = await Lab.create({ prefix: PREFIX, sites: [] });
  await lab.destroy();
  say(`Removed any ${PREFIX} leftovers (namespaces, mounts, processes, lab files).`);
}

if (process.argv[2] === 'clean') {
  clean().catch((error: unknown) => {
    process.stderr.write(`demo-clean failed: ${(error as Error).message}\n`);
    process.exitCode = 1;
  });
} else {
  main()
    .then(async (code) => {
      await cleanup();
      process.exitCode = code;
    })
    .catch(async (error: unknown) => {
      if (interrupted) return; // the signal handler cleans up and exits
      process.stderr.write(`demo failed: ${(error as Error).message}\n`);
      await cleanup().catch((thrown: unknown) => process.stderr.write(`cleanup failed: ${(thrown as Error).message}; run make demo-clean\n`));
      process.exitCode = 1;
    });
}
