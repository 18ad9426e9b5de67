/**
 * Lab: `tunnelwarden run` as a daemon in site A (site B a responder set up with `apply`).
 * Every way the desired file is replaced (write in place, rename-over, delete and recreate, a
 * ConfigMap `..data` symlink swap) ends with the change live in charon; an invalid edit is
 * logged with its errors while the previous state is still enforced and the process lives;
 * 100 edits within a second end with the last content after few passes; SIGHUP triggers a
 * pass; SIGTERM in the middle of a pass exits 0 and leaves no torn file. All along, a sampler
 * reads the command line of every process in the site, and no log line or command line may
 * contain the fixture PSK or EAP password.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { mkdir, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { parseStrokeStatus } from '../../agent/observe/parse/stroke.js';
import { Lab, labSkipReason, REPO_ROOT, type Site } from './harness.js';

const skip = labSkipReason();
const CLI = path.join(REPO_ROOT, 'dist', 'agent', 'cli', 'bin.js');
const PREFIX = 'twd';
const TEST_PSK = 'twd-fixture-psk-Q7#k2 with spaces';
const EAP_PASSWORD = 'twd-fixture-eap-pw-Lm4$x9';
const PSK_FILE = '/etc/tunnelwarden/secrets/a-to-b.psk';
const STATUS_FILE = 'tunnelwarden/status.json';
const WAIT_LIMIT_MS = 45_000;

type Desired = Record<string, any>;
type LogEntry = Record<string, any> & { priority: number; msg: string };

/** The config/ example reduced to what this suite reconciles (no host networking here). */
function labDesired(example: string): Desired {
  const desired = JSON.parse(readFileSync(path.join(REPO_ROOT, 'config', example), 'utf8'));
  delete desired.$schema;
  delete desired.transit;
  delete desired.masquerade;
  delete desired.lxd;
  return desired;
}

/** An extra responder-only conn whose presence in `ipsec statusall` shows a change is live. */
function extraConn(name: string, n: number): Desired {
  return {
    name,
    local: { address: '172.16.0.18', subnets: ['10.1.0.0/16'] },
    remote: { address: `172.16.0.${100 + (n % 100)}`, subnets: [`10.${100 + (n % 100)}.0.0/16`] },
    psk: { file: PSK_FILE },
    initiate: false,
  };
}

function siteADesired(extra: Desired[] = []): Desired {
  const desired = labDesired('site-a.json');
  desired.ipsec.connections.push(...extra);
  desired.ipsec.roadWarrior = {
    name: 'rw',
    serverId: 'vpn.lab.example',
    certificate: '/etc/ipsec.d/certs/vpn.pem',
    privateKey: '/etc/ipsec.d/private/vpn.pem',
    ca: '/etc/ipsec.d/cacerts/ca.pem',
    offeredSubnets: ['10.1.0.0/16'],
    virtualIpPool: '10.10.10.0/24',
    clients: [{ eapId: 'client_a', password: { value: EAP_PASSWORD }, virtualIp: '10.10.10.2' }],
  };
  return desired;
}

const text = (desired: Desired) => `${JSON.stringify(desired, null, 2)}\n`;

async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, limitMs = WAIT_LIMIT_MS) {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`not within ${limitMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function loadedConns(site: Site): Promise<string[]> {
  const result = await site.exec(['ipsec', 'statusall']);
  if (result.code !== 0) return [];
  return parseStrokeStatus(result.stdout).connections.map((conn) => conn.name);
}

async function tunnelUp(site: Site, conn: string): Promise<boolean> {
  const result = await site.exec(['ipsec', 'statusall']);
  if (result.code !== 0) return false;
  return parseStrokeStatus(result.stdout).ikeSas.some(
    (sa) => sa.conn === conn && sa.state === 'ESTABLISHED' && sa.children.some((child) => child.state === 'INSTALLED'),
  );
}

/** The daemon as a child process in a site, with its log lines parsed. */
class DaemonProcess {
  readonly entries: LogEntry[] = [];
  readonly rawLines: string[] = [];
  stderr = '';
  exitCode: number | null | undefined;
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly exited: Promise<number | null>;

  constructor(lab: Lab, site: Site, args: string[]) {
    const mountFile = path.join(lab.dir, 'mnt', site.spec.name.toLowerCase());
    const argv = [`--net=/run/netns/${site.netns}`, `--mount=${mountFile}`, '--wd=/', '--', 'node', CLI, 'run', ...args];
    this.child = spawn('nsenter', argv, {
      env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LC_ALL: 'C' },
    });
    let partial = '';
    this.child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        this.rawLines.push(line);
        const match = /^<(\d)>(\{.*\})$/.exec(line);
        if (match) this.entries.push({ priority: Number(match[1]), ...JSON.parse(match[2]!) });
      }
    });
    this.child.stderr.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code) => {
        this.exitCode = code;
        resolve(code);
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  signal(name: NodeJS.Signals): void {
    this.child.kill(name);
  }

  async exit(limitMs: number): Promise<number | null> {
    const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), limitMs));
    const result = await Promise.race([this.exited, timer]);
    if (result === 'timeout') throw new Error(`daemon did not exit within ${limitMs} ms`);
    return result;
  }

  find(predicate: (entry: LogEntry) => boolean, after = 0): LogEntry | undefined {
    return this.entries.slice(after).find(predicate);
  }

  /** Passes started after log index `after`, with their triggers. */
  passesStarted(after = 0): LogEntry[] {
    return this.entries.slice(after).filter((entry) => entry.msg === 'pass started');
  }

  async stopAndWait(): Promise<void> {
    if (this.exitCode !== undefined) return;
    this.signal('SIGTERM');
    await this.exit(60_000).catch(() => this.signal('SIGKILL'));
  }
}

/** Reads the command line of every process in the site's network namespace, all the time. */
function startCmdlineSampler(site: Site) {
  // An nsfs bind mount's inode is the namespace id that /proc/PID/ns/net names.
  const netnsId = `net:[${statSync(`/run/netns/${site.netns}`).ino}]`;
  const seen = new Set<string>();
  let samples = 0;
  let running = true;
  const loop = async () => {
    while (running) {
      for (const entry of readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        try {
          if (readlinkSync(`/proc/${entry}/ns/net`) !== netnsId) continue;
          const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim();
          if (cmdline) seen.add(cmdline);
        } catch {
          // the process ended between listing and reading
        }
      }
      samples += 1;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };
  const done = loop();
  return {
    seen,
    samples: () => samples,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

t.test('the daemon keeps site A as declared in a two-site lab', { skip }, async (t) => {
  const lab = await Lab.create({
    prefix: PREFIX,
    sites: [
      { name: 'A', transitAddress: '172.16.0.18/24', subnetAddress: '10.1.0.1/16' },
      { name: 'B', transitAddress: '172.16.0.2/24', subnetAddress: '10.2.0.1/16' },
    ],
  });
  t.teardown(() => lab.destroy());
  const a = lab.site('A');
  const b = lab.site('B');
  const work = path.join(lab.dir, 'desired');
  await mkdir(work, { recursive: true });

  for (const site of [a, b]) {
    await site.execOk(['mkdir', '-p', '-m', '0700', path.dirname(PSK_FILE)]);
    await site.writeFile(PSK_FILE, `${TEST_PSK}\n`, 0o600);
  }
  await makeRoadWarriorCertificates(a);

  const sampler = startCmdlineSampler(a);
  t.teardown(() => sampler.stop());
  const daemons: DaemonProcess[] = [];
  t.teardown(async () => {
    for (const daemon of daemons) await daemon.stopAndWait();
  });

  const fileB = path.join(work, 'site-b.json');
  await writeFile(fileB, text(labDesired('site-b.json')));
  // A first apply that starts charon may end before starter has loaded the conn (exit 3).
  const applyB = await b.exec(['node', CLI, 'apply', fileB], { timeoutMs: 90_000 });
  t.ok([0, 3].includes(applyB.code), `site B apply: ${applyB.stdout}${applyB.stderr}`);
  await waitFor('b-to-a loaded in site B', async () => (await loadedConns(b)).includes('b-to-a'));

  const fileA = path.join(work, 'site-a.json');
  await writeFile(fileA, text(siteADesired()));
  const daemon = new DaemonProcess(lab, a, ['--config', fileA, '--interval-seconds', '10', '--log-level', 'debug']);
  daemons.push(daemon);
  const statusPath = path.join(a.runDir, STATUS_FILE);

  await t.test('the first pass brings the tunnel up and writes the status file', async (t) => {
    await waitFor('a-to-b established', () => tunnelUp(a, 'a-to-b'), 60_000);
    const status = await waitFor('status file with a converged pass', () => {
      try {
        const parsed = JSON.parse(readFileSync(statusPath, 'utf8'));
        return parsed.lastPass ? parsed : undefined;
      } catch {
        return undefined;
      }
    });
    t.equal(status.pid, daemon.pid);
    const first = daemon.find((entry) => entry.msg === 'pass started' && entry.pass === 1);
    t.same(first?.trigger, ['start'], 'the first pass is the start pass');
    // charon, started by that pass, is subscribed to right after it, which asks for one more look.
    t.ok(['start', 'vici'].includes(status.lastPass.triggers[0]), `last pass: ${status.lastPass.triggers}`);
    t.ok(daemon.find((entry) => entry.msg === 'action applied' && entry.action === 'initiate' && entry.priority === 6));
    t.ok(daemon.entries.every((entry) => entry.msg !== 'action applied' || typeof entry.duration_ms === 'number'));
  });

  /** Writes `desired` with `write`, then waits until `expected` is loaded and `gone` is not. */
  const liveAfter = async (write: () => Promise<void>, expected: string, gone: string[] = []) => {
    const startedAt = Date.now();
    await write();
    await waitFor(`${expected} loaded`, async () => {
      const conns = await loadedConns(a);
      return conns.includes(expected) && gone.every((name) => !conns.includes(name));
    });
    return Date.now() - startedAt;
  };

  await t.test('a write in place is live in charon', async (t) => {
    const ms = await liveAfter(() => writeFile(fileA, text(siteADesired([extraConn('extra1', 1)]))), 'extra1');
    t.pass(`live ${ms} ms after the write`);
  });

  await t.test('a rename-over save is live in charon', async (t) => {
    const ms = await liveAfter(async () => {
      const temporary = path.join(work, '.site-a.json.swp-new');
      await writeFile(temporary, text(siteADesired([extraConn('extra2', 2)])));
      await rename(temporary, fileA);
    }, 'extra2', ['extra1']);
    t.pass(`live ${ms} ms after the rename`);
  });

  await t.test('delete keeps the last valid state; recreate is live in charon', async (t) => {
    const mark = daemon.entries.length;
    await unlink(fileA);
    const logged = await waitFor('unreadable logged', () =>
      daemon.find((entry) => entry.msg === 'desired state unreadable; last valid state kept', mark),
    );
    t.equal(logged.priority, 3);
    t.equal(logged.file, fileA);
    t.ok((await loadedConns(a)).includes('extra2'), 'extra2 still loaded: nothing was removed');
    const ms = await liveAfter(() => writeFile(fileA, text(siteADesired([extraConn('extra3', 3)]))), 'extra3', ['extra2']);
    t.pass(`live ${ms} ms after the recreation`);
  });

  await t.test('an invalid edit is logged with its errors while the previous state is enforced', async (t) => {
    const mark = daemon.entries.length;
    const broken = siteADesired([extraConn('extra4', 4)]);
    broken.ipsec.connections[0].remote.subnets = ['10.1.0.0/24'];
    await writeFile(fileA, text(broken));
    const error = await waitFor('error logged', () => daemon.find((entry) => entry.msg === 'desired state error', mark));
    t.equal(error.field, 'ipsec.connections[0].remote.subnets[0]');
    t.match(error.reason, /overlaps local subnet/);
    t.equal(error.file, fileA);
    t.equal(error.priority, 3, 'at error priority, so journalctl -p err shows it');

    await a.execOk(['ipsec', 'down', 'a-to-b']);
    await waitFor('a-to-b down', async () => !(await tunnelUp(a, 'a-to-b')));
    await waitFor('a-to-b healed by a scheduled pass from the last valid state', () => tunnelUp(a, 'a-to-b'));
    const conns = await loadedConns(a);
    t.ok(conns.includes('extra3') && !conns.includes('extra4'), 'the previous state, not the invalid one');
    t.equal(daemon.exitCode, undefined, 'the daemon lives');
    const status = JSON.parse(readFileSync(statusPath, 'utf8'));
    t.match(status.desiredProblem, /invalid/);
  });

  await t.test('100 edits within a second end with the last content after few passes', async (t) => {
    const mark = daemon.entries.length;
    const startedAt = Date.now();
    for (let n = 1; n <= 100; n += 1) {
      await writeFile(fileA, text(siteADesired([extraConn(`burst${n}`, n)])));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const writingMs = Date.now() - startedAt;
    t.ok(writingMs < 1_500, `100 edits took ${writingMs} ms`);
    await waitFor('burst100 loaded alone', async () => {
      const conns = await loadedConns(a);
      return conns.includes('burst100') && !conns.some((name) => /^burst\d+$/.test(name) && name !== 'burst100');
    });
    const passes = daemon.passesStarted(mark).filter((entry) => entry.trigger.includes('file'));
    t.ok(passes.length <= 5, `${passes.length} file-triggered passes for 100 edits`);
  });

  await t.test('SIGHUP triggers a pass', async (t) => {
    await waitFor('a-to-b up before', () => tunnelUp(a, 'a-to-b'));
    const mark = daemon.entries.length;
    daemon.signal('SIGHUP');
    const pass = await waitFor('signal pass', () =>
      daemon.find((entry) => entry.msg === 'pass started' && entry.trigger.includes('signal'), mark),
    );
    t.ok(pass, `pass ${pass.pass} triggered by ${pass.trigger.join('+')}`);
  });

  await t.test('an SA going down is initiated again at once, on charon\'s vici event', async (t) => {
    await waitFor('a-to-b up before', () => tunnelUp(a, 'a-to-b'));
    const mark = daemon.entries.length;
    await a.execOk(['ipsec', 'down', 'a-to-b']);
    const pass = await waitFor('vici pass', () =>
      daemon.find((entry) => entry.msg === 'pass started' && entry.trigger.includes('vici'), mark),
    );
    const healed = await waitFor('the vici pass initiates a-to-b', () =>
      daemon.find((entry) => entry.msg === 'action applied' && entry.action === 'initiate', mark),
    );
    t.equal(healed.pass, pass.pass, 'resource lines carry the same pass id as the daemon line');
    await waitFor('a-to-b healed', () => tunnelUp(a, 'a-to-b'));
  });

  await t.test('status shows desired vs observed and the running daemon\'s last pass', async (t) => {
    await waitFor('a-to-b up', () => tunnelUp(a, 'a-to-b'));
    const table = await a.execOk(['node', CLI, 'status', '--config', fileA], { timeoutMs: 60_000 });
    t.match(table.stdout, new RegExp(`daemon: pid ${daemon.pid} running`));
    t.match(table.stdout, /last pass: #\d+ \S+ at /);
    t.match(table.stdout, /^a-to-b\s+initiate\s+10\.1\.0\.0\/16 === 10\.2\.0\.0\/16\s+yes\s+ESTABLISHED/m);
    t.comment(table.stdout);
    const json = JSON.parse((await a.execOk(['node', CLI, 'status', '--json', '--config', fileA])).stdout);
    t.equal(json.daemon.pid, daemon.pid);
    t.equal(json.connections.find((row: any) => row.conn === 'a-to-b')?.ikeSa, 'ESTABLISHED');
    t.notMatch(table.stdout + JSON.stringify(json), TEST_PSK.slice(0, 12));
  });

  await t.test('SIGTERM in the middle of a pass exits 0 and leaves no torn file', async (t) => {
    const mark = daemon.entries.length;
    const unreachable = extraConn('slow', 99);
    unreachable.initiate = true; // the pass waits (bounded) for an SA that never comes
    await writeFile(fileA, text(siteADesired([unreachable])));
    await waitFor('the slow pass applying', () =>
      daemon.find((entry) => entry.msg === 'action applied' && entry.action === 'write-conf', mark),
    );
    daemon.signal('SIGTERM');
    const code = await daemon.exit(60_000);
    t.equal(code, 0, `exit code 0; stderr: ${daemon.stderr}`);
    t.ok(daemon.find((entry) => entry.msg === 'daemon stopped', mark), 'said it stopped');
    const leftovers = (await a.execOk(['ls', '-a', '/etc/ipsec.d', '/etc'])).stdout
      .split('\n')
      .filter((name) => /^(tunnelwarden\.(conf|secrets)|ipsec\.(conf|secrets))\.\S+/.test(name));
    t.same(leftovers, [], 'no temporary files left beside our files');
    const conf = await a.readFile('/etc/ipsec.d/tunnelwarden.conf');
    t.match(conf, /^# Managed by tunnelwarden/);
    t.ok(conf.endsWith('\n') && conf.includes('conn a-to-b'), 'the conf file is whole');
    t.equal((await a.execOk(['stat', '-c', '%a', '/etc/ipsec.d/tunnelwarden.secrets'])).stdout.trim(), '600');
    t.doesNotThrow(() => JSON.parse(readFileSync(statusPath, 'utf8')), 'the status file is whole');
  });

  await t.test('a ConfigMap ..data symlink swap is live in charon', async (t) => {
    const mapDir = path.join(work, 'configmap');
    const first = path.join(mapDir, '..2026_01_01_00_00_00.1');
    await mkdir(first, { recursive: true });
    await writeFile(path.join(first, 'desired.json'), text(siteADesired([extraConn('map1', 11)])));
    await symlink(path.basename(first), path.join(mapDir, '..data'));
    await symlink('..data/desired.json', path.join(mapDir, 'desired.json'));
    const second = new DaemonProcess(lab, a, ['--config', path.join(mapDir, 'desired.json'), '--interval-seconds', '60']);
    daemons.push(second);
    await waitFor('map1 loaded', async () => (await loadedConns(a)).includes('map1'));

    const ms = await liveAfter(async () => {
      const next = path.join(mapDir, '..2026_01_01_00_01_00.2');
      await mkdir(next);
      await writeFile(path.join(next, 'desired.json'), text(siteADesired([extraConn('map2', 12)])));
      await symlink(path.basename(next), path.join(mapDir, '..data_tmp'));
      await rename(path.join(mapDir, '..data_tmp'), path.join(mapDir, '..data'));
      await rm(first, { recursive: true });
    }, 'map2', ['map1']);
    t.pass(`live ${ms} ms after the swap (interval 60 s, so the watcher did it)`);
    second.signal('SIGTERM');
    t.equal(await second.exit(60_000), 0);
  });

  await t.test('no PSK or EAP password in any log line or child command line', async (t) => {
    await sampler.stop();
    const commandLines = [...sampler.seen];
    t.ok(sampler.samples() > 100, `${sampler.samples()} samples of the site's processes`);
    t.ok(commandLines.some((line) => /\bipsec\b/.test(line)), 'the sampler saw the daemon run ipsec');
    t.ok(commandLines.some((line) => /bin\.js run/.test(line)), 'and the daemon itself');
    const logs = daemons.flatMap((d) => [...d.rawLines, d.stderr]).join('\n');
    t.ok(logs.length > 0);
    for (const secret of [TEST_PSK, EAP_PASSWORD]) {
      for (const fragment of [secret, secret.slice(0, 12), secret.slice(-10)]) {
        t.notOk(logs.includes(fragment), `no "${fragment.slice(0, 4)}..." in the logs`);
        t.notOk(commandLines.some((line) => line.includes(fragment)), `no "${fragment.slice(0, 4)}..." in a command line`);
      }
    }
    const noted = new Set(
      daemons.flatMap((d) => d.entries).filter((entry) => entry.priority <= 4).map((entry) => `<${entry.priority}> ${entry.msg}`),
    );
    t.comment(`warn and error messages seen: ${[...noted].join('; ')}`);
    const secrets = await a.readFile('/etc/ipsec.d/tunnelwarden.secrets');
    t.ok(secrets.includes(EAP_PASSWORD) && secrets.includes(TEST_PSK), 'the secrets did reach their 0600 file');
  });
});

/** A CA and a server certificate for the road-warrior conn, made with openssl in the site. */
async function makeRoadWarriorCertificates(site: Site): Promise<void> {
  const script = [
    'set -e',
    'mkdir -p /etc/ipsec.d/certs /etc/ipsec.d/private /etc/ipsec.d/cacerts',
    'cd /etc/ipsec.d',
    'openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=twd lab CA" -keyout private/ca.pem -out cacerts/ca.pem 2>/dev/null',
    'openssl req -newkey rsa:2048 -nodes -subj "/CN=vpn.lab.example" -keyout private/vpn.pem -out /etc/ipsec.d/twd-vpn.csr 2>/dev/null',
    'printf "subjectAltName=DNS:vpn.lab.example\\nextendedKeyUsage=serverAuth\\n" > /etc/ipsec.d/twd-vpn.ext',
    'openssl x509 -req -in /etc/ipsec.d/twd-vpn.csr -CA cacerts/ca.pem -CAkey private/ca.pem -CAcreateserial -days 30 -extfile /etc/ipsec.d/twd-vpn.ext -out certs/vpn.pem 2>/dev/null',
    'rm -f /etc/ipsec.d/twd-vpn.csr /etc/ipsec.d/twd-vpn.ext',
    'chmod 600 private/*.pem',
  ].join('\n');
  await site.execOk(['sh', '-c', script]);
}
