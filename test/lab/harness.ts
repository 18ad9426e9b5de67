/**
 * The lab: real strongSwan running in "sites" on this machine, for the lab test suite.
 *
 * A site is a network namespace plus a persistent mount namespace in which /etc and /var/lib
 * are copy-on-write overlays over the host's, and /run and /var/log are private per-site
 * directories. charon (started with `ipsec start`) and the agent therefore run with their
 * default paths, several sites at once, without touching the host's files. Every site has a
 * `transit` veth joined to a bridge in one more namespace (the "switch") and a bridge `site0`
 * carrying the site subnet; `attachGuest` plugs a "guest" (a plain network namespace standing for
 * a container) into a site's `site0`. The kernel-libipsec plugin is enabled in every site (the
 * kernel here has no ESP) and charon logs to /var/log/charon.log inside the site.
 *
 * Everything lives under names derived from the prefix: namespaces `${prefix}-sw` and
 * `${prefix}-${site}`, and the lab dir `/var/tmp/tunnelwarden-lab/${prefix}`. `Lab.create`
 * first removes leftovers of an earlier killed run with the same prefix; `destroy` removes
 * exactly what the lab created, by pid and by name.
 *
 * Limitations:
 * - Needs root, util-linux (`nsenter`, `unshare`, `mount`), iproute2 and strongSwan's `ipsec`.
 *   `labSkipReason()` says why the lab cannot run; with CI=true it throws instead.
 * - /tmp, /dev, /proc and /sys are the host's inside a site; only the paths above are private.
 * - Sites have no route out of the lab: traffic only flows between sites over the switch.
 * - Processes started inside a site must not outlive `destroy`: it kills every process found
 *   in the site's namespaces.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { mkdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

/** Absolute path of the repository root (the directory holding package.json). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Parent of every lab dir; deliberately outside the host's /tmp, /etc, /var/lib and /run. */
export const LAB_ROOT = '/var/tmp/tunnelwarden-lab';

/** Path of charon's file log inside every site. */
export const CHARON_LOG_PATH = '/var/log/charon.log';

/** One site of the lab. */
export interface SiteSpec {
  /** Short name, 1-8 letters or digits (e.g. "A"); namespace names use it lowercased. */
  name: string;
  /** Address of the site's `transit` interface with prefix length, e.g. "172.16.0.18/24". */
  transitAddress: string;
  /** Address of the site's `site0` bridge with prefix length, e.g. "10.1.0.1/16". */
  subnetAddress: string;
}

/** Result of a command run in a site; a non-zero `code` is not an error by itself. */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of `Site.exec`. */
export interface ExecOptions {
  /** Written to the command's stdin, which is then closed. */
  input?: string;
  /** Kill the command and throw after this long. Default `DEFAULT_EXEC_TIMEOUT_MS`. */
  timeoutMs?: number;
  /** Added to the command's minimal environment (PATH, HOME=/root, LC_ALL=C). */
  env?: Record<string, string>;
}

/** How long `Site.exec` lets a command run unless told otherwise. */
export const DEFAULT_EXEC_TIMEOUT_MS = 30_000;

/** How long `startStrongswan`/`stopStrongswan` wait for charon to answer or to go away. */
const STRONGSWAN_READY_TIMEOUT_MS = 20_000;

/** How long teardown waits for SIGTERMed processes before sending SIGKILL. */
const TERM_GRACE_MS = 5_000;

/** Interval of every bounded poll here. */
const POLL_INTERVAL_MS = 100;

/** After a command exits, how long to wait for its pipes when a daemon it forked holds them. */
const PIPE_DRAIN_AFTER_EXIT_MS = 500;

const SEARCH_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const REQUIRED_TOOLS = ['ip', 'nsenter', 'unshare', 'mount', 'umount', 'ipsec'] as const;
const NAME_PATTERN = /^[a-z0-9]{1,8}$/;
const SWITCH_SUFFIX = 'sw';
const SWITCH_BRIDGE = 'br0';
const IP_FORWARD_ON = 'net.ipv4.ip_forward=1';

/**
 * Why the lab cannot run here, or undefined when it can. Checks root, the tools, and that a
 * network and a mount namespace can be created (with `unshare`, leaving nothing behind).
 * Throws when CI=true and the lab cannot run: there a missing lab is a failure, not a skip.
 */
export function labSkipReason(): string | undefined {
  const reason = probeLab();
  if (reason !== undefined && process.env.CI === 'true') {
    throw new Error(`the lab is required in CI (CI=true) but cannot run: ${reason}`);
  }
  return reason;
}

let probedReason: { reason: string | undefined } | undefined;

function probeLab(): string | undefined {
  if (probedReason !== undefined) return probedReason.reason;
  probedReason = { reason: findLabBlocker() };
  return probedReason.reason;
}

function findLabBlocker(): string | undefined {
  if (process.platform !== 'linux') return `the lab needs Linux, this is ${process.platform}`;
  if (process.getuid?.() !== 0) return 'the lab needs root (network and mount namespaces)';

  const missing = REQUIRED_TOOLS.filter((tool) => findTool(tool) === undefined);
  if (missing.length > 0) return `missing tools: ${missing.join(', ')}`;

  const probe = spawnSync(tool('unshare'), ['--net', '--mount', 'true'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) {
    const detail = probe.error?.message ?? probe.stderr.trim();
    return `cannot create network/mount namespaces: ${detail}`;
  }
  return undefined;
}

function findTool(name: string): string | undefined {
  for (const dir of SEARCH_PATH.split(':')) {
    const candidate = path.join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

function tool(name: (typeof REQUIRED_TOOLS)[number]): string {
  const found = findTool(name);
  if (found === undefined) throw new Error(`lab: ${name} not found in ${SEARCH_PATH}`);
  return found;
}

/** Runs argv (no shell) on the host; rejects only when it cannot spawn or times out. */
function run(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error('lab: empty argv');
  const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
  const env = { PATH: SEARCH_PATH, HOME: '/root', LC_ALL: 'C', ...opts.env };

  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let exitCode = 1;
    let drainTimer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));

    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timeoutTimer);
      clearTimeout(drainTimer);
      outcome();
    };
    const finish = () => settle(() => resolve({ code: exitCode, stdout, stderr }));
    const timeoutTimer = setTimeout(() => {
      child.kill('SIGKILL');
      settle(() => reject(new Error(`lab: timed out after ${timeoutMs} ms: ${argv.join(' ')}`)));
    }, timeoutMs);

    child.on('error', (err) =>
      settle(() => reject(new Error(`lab: cannot run ${argv.join(' ')}: ${err.message}`))),
    );
    // A daemon forked by the command may inherit and hold our pipes, so 'close' would never
    // come: after 'exit', give the pipes a moment to drain, then stop waiting for them.
    child.on('exit', (code, signal) => {
      exitCode = code ?? 128 + (signal === null ? 0 : constants.signals[signal]);
      drainTimer = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        finish();
      }, PIPE_DRAIN_AFTER_EXIT_MS);
    });
    child.on('close', finish);

    child.stdin.on('error', () => undefined); // the command may exit without reading stdin
    child.stdin.end(opts.input ?? '');
  });
}

/** Like `run`, but rejects with the command's output when it exits non-zero. */
async function runOk(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const result = await run(argv, opts);
  if (result.code !== 0) throw commandFailed(argv, result);
  return result;
}

function commandFailed(argv: string[], result: ExecResult): Error {
  return new Error(
    `lab: command failed (exit ${result.code}): ${argv.join(' ')}\n` +
      `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`,
  );
}

/**
 * True when the process is gone, or a zombie none of whose threads still runs: a killed
 * charon's main thread turns zombie before its worker threads have exited and closed its
 * sockets and TUN device, so a zombie leader alone is not enough.
 */
function hasExited(pid: number): boolean {
  try {
    const zombie = /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return zombie && readdirSync(`/proc/${pid}/task`).length <= 1;
  } catch {
    return true;
  }
}

/** Polls `probe` every POLL_INTERVAL_MS until it returns true; throws after `timeoutMs`. */
async function waitFor(what: string, timeoutMs: number, probe: () => Promise<boolean>) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() >= deadline) throw new Error(`lab: timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}

/** Where one site keeps its private state on the host. */
interface SitePaths {
  netns: string;
  mountFile: string;
  dir: string;
  run: string;
  log: string;
}

function labDirOf(prefix: string): string {
  return path.join(LAB_ROOT, prefix);
}

function sitePaths(prefix: string, name: string): SitePaths {
  const lower = name.toLowerCase();
  const dir = path.join(labDirOf(prefix), 'sites', lower);
  return {
    netns: `${prefix}-${lower}`,
    mountFile: path.join(labDirOf(prefix), 'mnt', lower),
    dir,
    run: path.join(dir, 'run'),
    log: path.join(dir, 'log'),
  };
}

/** One site of a running lab. */
export class Site {
  /** @internal Use `Lab.site(name)`. */
  constructor(
    readonly spec: SiteSpec,
    private readonly paths: SitePaths,
  ) {}

  /** The site's network namespace name (as in `ip netns list`). */
  get netns(): string {
    return this.paths.netns;
  }

  /** Host path of the site's private /run (read-only use: e.g. pid files). */
  get runDir(): string {
    return this.paths.run;
  }

  /**
   * Runs argv (no shell) inside the site's network and mount namespaces, cwd /, with a minimal
   * environment. Never throws on a non-zero exit (a missing command gives code 127 from
   * nsenter); throws when nsenter cannot be spawned or the command times out.
   */
  exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return run(
      [
        tool('nsenter'),
        `--net=/run/netns/${this.paths.netns}`,
        `--mount=${this.paths.mountFile}`,
        '--wd=/',
        '--',
        ...argv,
      ],
      opts,
    );
  }

  /** Like `exec`, but throws with the command's stdout and stderr when it exits non-zero. */
  async execOk(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const result = await this.exec(argv, opts);
    if (result.code !== 0) throw commandFailed([`[site ${this.spec.name}]`, ...argv], result);
    return result;
  }

  /** Reads a file as the site sees it. Throws when it cannot be read. */
  async readFile(filePath: string): Promise<string> {
    return (await this.execOk(['cat', '--', filePath])).stdout;
  }

  /** Whether a path exists as the site sees it. */
  async exists(filePath: string): Promise<boolean> {
    return (await this.exec(['test', '-e', filePath])).code === 0;
  }

  /**
   * Writes a file as the site sees it (creating parent directories), then sets its mode.
   * Writes to /etc and /var/lib land in the site's overlay, never in the host's files.
   */
  async writeFile(filePath: string, content: string, mode = 0o644): Promise<void> {
    const script = 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1" && chmod "$2" -- "$1"';
    await this.execOk(['sh', '-c', script, 'sh', filePath, mode.toString(8)], { input: content });
  }

  /**
   * Starts strongSwan with `ipsec start` and waits (bounded) until charon answers
   * `ipsec status`. Throws if it does not answer in time; charon's log is in the message.
   */
  async startStrongswan(): Promise<void> {
    await this.execOk(['ipsec', 'start']);
    const what = `charon answering in site ${this.spec.name}`;
    try {
      await waitFor(what, STRONGSWAN_READY_TIMEOUT_MS, async () => {
        const status = await this.exec(['ipsec', 'status']);
        return status.code === 0 && status.stdout.includes('Security Associations');
      });
    } catch (err) {
      const log = await this.exec(['tail', '-n', '30', CHARON_LOG_PATH]);
      throw new Error(`${(err as Error).message}\ncharon log:\n${log.stdout}`, { cause: err });
    }
  }

  /** Stops strongSwan with `ipsec stop` and waits (bounded) until starter and charon are gone. */
  async stopStrongswan(): Promise<void> {
    await this.exec(['ipsec', 'stop']);
    const what = `starter and charon gone in site ${this.spec.name}`;
    await waitFor(what, STRONGSWAN_READY_TIMEOUT_MS, async () => {
      return (await this.strongswanPids()).length === 0;
    });
  }

  /**
   * strongSwan dies with all its state, as in a crash or power loss: SIGKILL to starter and
   * charon, then waits (bounded) until both have really exited, since a charon started while
   * the old one still holds UDP 500 comes up without sockets ("unable to bind socket"), and
   * removes the pid and socket files they leave. Nothing restarts it.
   */
  async crashStrongswan(): Promise<void> {
    const pids = await this.strongswanPids();
    if (pids.length > 0) await this.exec(['kill', '-9', ...pids.map(String)]);
    // At once, before anything (a daemon under test) starts strongSwan again and writes its own.
    await this.execOk(['rm', '-f', '/run/charon.pid', '/run/starter.charon.pid', '/run/charon.ctl', '/run/charon.vici']);
    const what = `killed starter and charon gone in site ${this.spec.name}`;
    await waitFor(what, STRONGSWAN_READY_TIMEOUT_MS, async () => pids.every((pid) => hasExited(pid)));
  }

  /**
   * Sends `signal` to the site's charon (pid from the site's /run/charon.pid, checked to be in
   * this site). Returns the pid, or undefined when charon is not running. Note that starter
   * restarts a charon that dies abnormally, about 5 s later ("restart scheduled (5sec)").
   */
  async killCharon(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | undefined> {
    const pid = await this.pidFromFile('charon.pid');
    if (pid === undefined) return undefined;
    process.kill(pid, signal);
    return pid;
  }

  /** Pids of the site's running starter and charon, read from the site's /run. */
  async strongswanPids(): Promise<number[]> {
    const pids = [
      await this.pidFromFile('starter.charon.pid'),
      await this.pidFromFile('charon.pid'),
    ];
    return pids.filter((pid): pid is number => pid !== undefined);
  }

  /** Whether `ping -I from to` inside the site gets at least one reply out of `count`. */
  async ping(from: string, to: string, count = 3): Promise<boolean> {
    const deadlineSeconds = String(count + 2);
    const argv = ['ping', '-n', '-q', '-c', String(count), '-i', '0.2', '-W', '1'];
    const result = await this.exec([...argv, '-w', deadlineSeconds, '-I', from, to]);
    return result.code === 0;
  }

  private async pidFromFile(name: string): Promise<number | undefined> {
    let text: string;
    try {
      text = await readFile(path.join(this.paths.run, name), 'utf8');
    } catch {
      return undefined;
    }
    const pid = Number.parseInt(text.trim(), 10);
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    const netnsInode = nsInode(`/run/netns/${this.paths.netns}`);
    return netnsInode !== undefined && procNsInode(pid, 'net') === netnsInode ? pid : undefined;
  }
}

/**
 * A guest: a plain network namespace `${prefix}-${name}` (no mount namespace, so it sees the
 * host's files) with one interface `eth0` plugged into a site's `site0` bridge, standing for a
 * container or VM of that site. Made by `Lab.attachGuest`, removed by `Lab.destroy`.
 */
export class Guest {
  /** @internal Use `Lab.attachGuest`. */
  constructor(
    readonly name: string,
    readonly netns: string,
  ) {}

  /** Runs argv (no shell) in the guest's network namespace; same contract as `Site.exec`. */
  exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return run([tool('nsenter'), `--net=/run/netns/${this.netns}`, '--wd=/', '--', ...argv], opts);
  }
}

/** A set of sites on one switch. Create with `Lab.create`, always end with `destroy`. */
export class Lab {
  private destroyed = false;
  private readonly guests = new Map<string, Guest>();

  private constructor(
    readonly prefix: string,
    private readonly sites: Map<string, Site>,
  ) {}

  /** The lab's directory on the host; tests may keep scratch files in it. `destroy` removes it. */
  get dir(): string {
    return labDirOf(this.prefix);
  }

  /** Name of the switch namespace. */
  get switchNetns(): string {
    return `${this.prefix}-${SWITCH_SUFFIX}`;
  }

  /**
   * Builds a lab: removes leftovers of an earlier run with the same prefix, then creates the
   * switch, the sites, their links and mount namespaces, and the strongSwan config snippets
   * (kernel-libipsec, file log). strongSwan is not started. On failure, removes what it built
   * and rethrows.
   * @param opts.prefix 1-8 lowercase letters or digits, starting with a letter.
   */
  static async create(opts: { prefix: string; sites: SiteSpec[] }): Promise<Lab> {
    validate(opts.prefix, opts.sites);
    await removeLab(opts.prefix, discoverSiteNames(opts.prefix));

    const sites = new Map<string, Site>();
    for (const spec of opts.sites) {
      sites.set(spec.name, new Site(spec, sitePaths(opts.prefix, spec.name)));
    }
    const lab = new Lab(opts.prefix, sites);
    try {
      await lab.build();
    } catch (err) {
      await lab.destroy();
      throw err;
    }
    return lab;
  }

  /** The site named `name` (as in its SiteSpec). Throws when there is none. */
  site(name: string): Site {
    const found = this.sites.get(name);
    if (found === undefined) throw new Error(`lab: no site named ${name}`);
    return found;
  }

  /**
   * Adds a guest namespace `${prefix}-${name}` whose `eth0` (veth peer `g-${name}` in the site)
   * is a port of the site's `site0` bridge, with `address` (e.g. "10.1.0.50/16") and a default
   * route via `gateway` (e.g. the site's "10.1.0.1"). Throws when the name is taken or a step
   * fails. `destroy` removes the guest with the sites, and `create` removes a guest left over
   * by a killed run (its namespace has a site's name pattern).
   * @param name 1-8 lowercase letters or digits, distinct from the site names and "sw".
   */
  async attachGuest(
    siteName: string,
    opts: { name: string; address: string; gateway: string },
  ): Promise<Guest> {
    const site = this.site(siteName);
    const taken = [...this.sites.keys(), ...this.guests.keys()].map((name) => name.toLowerCase());
    if (!NAME_PATTERN.test(opts.name) || opts.name === SWITCH_SUFFIX || taken.includes(opts.name)) {
      throw new Error(`lab: guest name must be new, 1-8 lowercase letters or digits: "${opts.name}"`);
    }
    const ip = tool('ip');
    const guest = new Guest(opts.name, `${this.prefix}-${opts.name}`);
    const sitePort = `g-${opts.name}`;
    this.guests.set(opts.name, guest);
    await runOk([ip, 'netns', 'add', guest.netns]);
    await runOk([ip, '-n', guest.netns, 'link', 'set', 'lo', 'up']);
    await runOk([
      ip, '-n', site.netns, 'link', 'add', 'name', sitePort,
      'type', 'veth', 'peer', 'name', 'eth0', 'netns', guest.netns,
    ]);
    await runOk([ip, '-n', site.netns, 'link', 'set', sitePort, 'master', 'site0']);
    await runOk([ip, '-n', site.netns, 'link', 'set', sitePort, 'up']);
    await runOk([ip, '-n', guest.netns, 'addr', 'add', opts.address, 'dev', 'eth0']);
    await runOk([ip, '-n', guest.netns, 'link', 'set', 'eth0', 'up']);
    await runOk([ip, '-n', guest.netns, 'route', 'add', 'default', 'via', opts.gateway]);
    return guest;
  }

  /**
   * Tears down what this lab created: kills (TERM, then KILL) every process in its
   * namespaces, including charon and starter from the sites' pid files, unmounts, deletes the
   * namespaces and removes the lab dir. Idempotent.
   */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    const names = [...this.sites.keys(), ...this.guests.keys()];
    await removeLab(this.prefix, names.map((name) => name.toLowerCase()));
    this.destroyed = true;
  }

  private async build(): Promise<void> {
    const ip = tool('ip');
    const mntDir = path.join(this.dir, 'mnt');

    // The mount namespace files must sit on a private mount, else the kernel refuses them.
    await mkdir(mntDir, { recursive: true });
    await runOk([tool('mount'), '--bind', mntDir, mntDir]);
    await runOk([tool('mount'), '--make-private', mntDir]);

    await runOk([ip, 'netns', 'add', this.switchNetns]);
    await runOk([ip, '-n', this.switchNetns, 'link', 'set', 'lo', 'up']);
    await runOk([ip, '-n', this.switchNetns, 'link', 'add', SWITCH_BRIDGE, 'type', 'bridge']);
    await runOk([ip, '-n', this.switchNetns, 'link', 'set', SWITCH_BRIDGE, 'up']);

    for (const site of this.sites.values()) await this.buildSite(site);
  }

  private async buildSite(site: Site): Promise<void> {
    const ip = tool('ip');
    const paths = sitePaths(this.prefix, site.spec.name);
    const ns = paths.netns;
    const switchPort = `p-${site.spec.name.toLowerCase()}`;

    // Network: transit veth to the switch, site0 bridge with the subnet, forwarding on.
    await runOk([ip, 'netns', 'add', ns]);
    await runOk([ip, '-n', ns, 'link', 'set', 'lo', 'up']);
    await runOk([
      ip, '-n', this.switchNetns, 'link', 'add', 'name', switchPort,
      'type', 'veth', 'peer', 'name', 'transit', 'netns', ns,
    ]);
    await runOk([ip, '-n', this.switchNetns, 'link', 'set', switchPort, 'master', SWITCH_BRIDGE]);
    await runOk([ip, '-n', this.switchNetns, 'link', 'set', switchPort, 'up']);
    await runOk([ip, '-n', ns, 'addr', 'add', site.spec.transitAddress, 'dev', 'transit']);
    await runOk([ip, '-n', ns, 'link', 'set', 'transit', 'up']);
    await runOk([ip, '-n', ns, 'link', 'add', 'site0', 'type', 'bridge']);
    await runOk([ip, '-n', ns, 'addr', 'add', site.spec.subnetAddress, 'dev', 'site0']);
    await runOk([ip, '-n', ns, 'link', 'set', 'site0', 'up']);
    await runOk([tool('nsenter'), `--net=/run/netns/${ns}`, 'sysctl', '-qw', IP_FORWARD_ON]);

    // Mount namespace: overlays on /etc and /var/lib, private /run and /var/log.
    const dirs = ['etc.upper', 'etc.work', 'lib.upper', 'lib.work', 'run', 'log'];
    for (const dir of dirs) await mkdir(path.join(paths.dir, dir), { recursive: true });
    await writeFile(paths.mountFile, '');
    const unshare = [tool('unshare'), `--mount=${paths.mountFile}`, '--propagation', 'private'];
    await runOk([...unshare, 'true']); // the bind-mounted file keeps the namespace alive
    const inSite = (argv: string[]) =>
      runOk([tool('nsenter'), `--mount=${paths.mountFile}`, '--', ...argv]);
    await dropNamespaceMounts(inSite);
    const overlay = (lower: string, name: string) =>
      `lowerdir=${lower},upperdir=${path.join(paths.dir, `${name}.upper`)},` +
      `workdir=${path.join(paths.dir, `${name}.work`)}`;
    const mountOverlay = ['mount', '-t', 'overlay', 'overlay', '-o'];
    await inSite([...mountOverlay, overlay('/etc', 'etc'), '/etc']);
    await inSite([...mountOverlay, overlay('/var/lib', 'lib'), '/var/lib']);
    await inSite(['mount', '--bind', paths.run, '/run']);
    await inSite(['mount', '--bind', paths.log, '/var/log']);

    // strongSwan: userspace ESP (no ESP in this kernel) and a file log tests can read.
    await site.writeFile(
      '/etc/strongswan.d/charon/kernel-libipsec.conf',
      'kernel-libipsec {\n    load = yes\n}\n',
    );
    await site.writeFile('/etc/strongswan.d/tunnelwarden-lab-log.conf', CHARON_LOG_CONFIG);
  }
}

/** charon file log at CHARON_LOG_PATH, line-buffered so tests see lines as they happen. */
const CHARON_LOG_CONFIG = `charon {
    filelog {
        lab {
            path = ${CHARON_LOG_PATH}
            time_format = %b %e %T
            ike_name = yes
            append = yes
            default = 1
            flush_line = yes
        }
    }
}
`;

function validate(prefix: string, sites: SiteSpec[]): void {
  if (!/^[a-z]/.test(prefix) || !NAME_PATTERN.test(prefix)) {
    throw new Error(`lab: prefix must be 1-8 lowercase letters or digits, got "${prefix}"`);
  }
  const seen = new Set<string>();
  for (const site of sites) {
    const lower = site.name.toLowerCase();
    if (!NAME_PATTERN.test(lower) || lower === SWITCH_SUFFIX || seen.has(lower)) {
      const rule = 'distinct, 1-8 letters or digits, not "sw"';
      throw new Error(`lab: site names must be ${rule}, got "${site.name}"`);
    }
    seen.add(lower);
  }
}

/**
 * Inside a fresh mount namespace, unmounts the copies of namespace files (/run/netns/*, other
 * labs' mount files): otherwise this site would keep those namespaces alive after their owners
 * delete them.
 */
async function dropNamespaceMounts(inSite: (argv: string[]) => Promise<ExecResult>) {
  const mounts = await inSite(['cat', '/proc/self/mountinfo']);
  const targets = parseMountinfo(mounts.stdout)
    .filter((entry) => entry.fsType === 'nsfs')
    .map((entry) => entry.mountPoint)
    .sort((a, b) => b.length - a.length);
  for (const target of targets) await inSite(['umount', '-l', target]);
}

function parseMountinfo(text: string): { mountPoint: string; fsType: string }[] {
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => {
      const fields = line.split(' ');
      const separator = fields.indexOf('-');
      const mountPoint = (fields[4] ?? '').replace(/\\([0-7]{3})/g, (_, octal: string) =>
        String.fromCharCode(Number.parseInt(octal, 8)),
      );
      return { mountPoint, fsType: fields[separator + 1] ?? '' };
    });
}

/** Site names (lowercase) that an earlier run with this prefix may have left behind. */
function discoverSiteNames(prefix: string): string[] {
  const names = new Set<string>();
  const nsPattern = new RegExp(`^${prefix}-([a-z0-9]+)$`);
  const fromDir = (dir: string) => (existsSync(dir) ? readdirSync(dir) : []);
  for (const ns of fromDir('/run/netns')) {
    const match = nsPattern.exec(ns);
    if (match?.[1] !== undefined && match[1] !== SWITCH_SUFFIX) names.add(match[1]);
  }
  for (const dir of ['mnt', 'sites']) {
    for (const name of fromDir(path.join(labDirOf(prefix), dir))) {
      if (NAME_PATTERN.test(name)) names.add(name);
    }
  }
  return [...names];
}

/**
 * Removes everything of lab `prefix` for the given sites (lowercase names): processes in the
 * sites' and switch's namespaces or named by the sites' pid files, the namespace files and
 * mounts under the lab dir, the namespaces and the lab dir. Tolerates parts already gone.
 */
async function removeLab(prefix: string, siteNames: string[]): Promise<void> {
  const labDir = labDirOf(prefix);
  const allPaths = siteNames.map((name) => sitePaths(prefix, name));
  const netnsNames = [`${prefix}-${SWITCH_SUFFIX}`, ...allPaths.map((p) => p.netns)];

  // Processes: by namespace membership, and by pid file for a charon whose netns name is gone.
  const nsInodes = new Set<number>();
  for (const ns of netnsNames) addIfDefined(nsInodes, nsInode(`/run/netns/${ns}`));
  for (const sitePath of allPaths) addIfDefined(nsInodes, nsInode(sitePath.mountFile));
  const pids = new Set(pidsInNamespaces(nsInodes));
  for (const sitePath of allPaths) {
    for (const pid of strongswanPidsFromFiles(sitePath.run)) pids.add(pid);
  }
  await terminate([...pids]);

  // Mounts under the lab dir (namespace files, then the private bind), deepest first.
  const mountPoints = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'))
    .map((entry) => entry.mountPoint)
    .filter((mountPoint) => mountPoint === labDir || mountPoint.startsWith(`${labDir}/`))
    .sort((a, b) => b.length - a.length);
  for (const mountPoint of mountPoints) {
    const result = await run([tool('umount'), mountPoint]);
    if (result.code !== 0) await runOk([tool('umount'), '-l', mountPoint]);
  }

  for (const ns of netnsNames) {
    if (existsSync(`/run/netns/${ns}`)) await runOk([tool('ip'), 'netns', 'del', ns]);
  }

  await rm(labDir, { recursive: true, force: true });
  await rmdir(LAB_ROOT).catch(() => undefined); // only when no other lab uses it
}

function addIfDefined(set: Set<number>, value: number | undefined): void {
  if (value !== undefined) set.add(value);
}

/** Inode of a namespace file (bind-mounted nsfs), which is the namespace's id. */
function nsInode(file: string): number | undefined {
  try {
    const stats = statSync(file);
    return isNsfs(file) ? stats.ino : undefined;
  } catch {
    return undefined;
  }
}

function isNsfs(file: string): boolean {
  const mounts = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
  return mounts.some((entry) => entry.mountPoint === file && entry.fsType === 'nsfs');
}

/** The namespace id of `kind` of process `pid`, from /proc/PID/ns/KIND. */
function procNsInode(pid: number, kind: 'net' | 'mnt'): number | undefined {
  try {
    const match = /\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/ns/${kind}`));
    return match?.[1] === undefined ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
}

function pidsInNamespaces(nsInodes: Set<number>): number[] {
  if (nsInodes.size === 0) return [];
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => pid !== process.pid)
    .filter((pid) =>
      (['net', 'mnt'] as const).some((kind) => {
        const inode = procNsInode(pid, kind);
        return inode !== undefined && nsInodes.has(inode);
      }),
    );
}

/** Pids from a site's starter/charon pid files whose process is still starter or charon. */
function strongswanPidsFromFiles(runDir: string): number[] {
  const pids: number[] = [];
  for (const [file, comm] of [['starter.charon.pid', 'starter'], ['charon.pid', 'charon']]) {
    try {
      const pid = Number.parseInt(readFileSync(path.join(runDir, file!), 'utf8').trim(), 10);
      const actual = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      if (pid > 0 && actual === comm) pids.push(pid);
    } catch {
      // no pid file or no such process: nothing to kill
    }
  }
  return pids;
}

/** SIGTERM, wait up to TERM_GRACE_MS, then SIGKILL and wait for the processes to go. */
async function terminate(pids: number[]): Promise<void> {
  const alive = () => pids.filter((pid) => isAlive(pid));
  for (const pid of alive()) signal(pid, 'SIGTERM');
  const allGone = async () => alive().length === 0;
  try {
    await waitFor('lab processes to exit after SIGTERM', TERM_GRACE_MS, allGone);
  } catch {
    for (const pid of alive()) signal(pid, 'SIGKILL');
    await waitFor('lab processes to exit after SIGKILL', TERM_GRACE_MS, allGone);
  }
}

function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat); // a zombie has exited; only its parent can reap it
  } catch {
    return false;
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}
