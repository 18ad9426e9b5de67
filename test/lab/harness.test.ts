import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { Lab, LAB_ROOT, REPO_ROOT, labSkipReason, type Site } from './harness.js';

const skip = labSkipReason();
const PREFIX = 'twh';
const CONN = 'a-to-b';
const PSK_SECRETS = '172.16.0.18 172.16.0.2 : PSK "lab-only-not-a-secret"\n';
const WAIT_MS = 15_000;

/** A minimal hand-written stroke config: one IKEv2 PSK tunnel between the two subnets. */
function ipsecConf(me: string, peer: string, mySubnet: string, peerSubnet: string): string {
  return `config setup

conn ${CONN}
    keyexchange=ikev2
    authby=secret
    left=${me}
    leftid=${me}
    leftsubnet=${mySubnet}
    right=${peer}
    rightid=${peer}
    rightsubnet=${peerSubnet}
    auto=add
`;
}

/** Polls until `probe` holds; resolves false (for the assertion to fail) after WAIT_MS. */
async function eventually(probe: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    if (await probe()) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return probe();
}

function isAlive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

t.test('REPO_ROOT is the repository root', async (t) => {
  t.ok(existsSync(path.join(REPO_ROOT, 'package.json')));
});

t.test('a two-site lab runs real strongSwan and leaves nothing behind', { skip }, async (t) => {
  const hostIpsecConf = readFileSync('/etc/ipsec.conf');
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

  await t.test('each site sees its own /run', async (t) => {
    await a.writeFile('/run/twh-marker', 'site A\n');
    t.equal(await a.readFile('/run/twh-marker'), 'site A\n');
    t.notOk(await b.exists('/run/twh-marker'), 'absent in site B');
    t.notOk(existsSync('/run/twh-marker'), 'absent on the host');
  });

  await t.test('writing /etc/ipsec.conf in a site leaves the host file alone', async (t) => {
    const confA = ipsecConf('172.16.0.18', '172.16.0.2', '10.1.0.0/16', '10.2.0.0/16');
    const confB = ipsecConf('172.16.0.2', '172.16.0.18', '10.2.0.0/16', '10.1.0.0/16');
    await a.writeFile('/etc/ipsec.conf', confA);
    await b.writeFile('/etc/ipsec.conf', confB);
    await a.writeFile('/etc/ipsec.secrets', PSK_SECRETS, 0o600);
    await b.writeFile('/etc/ipsec.secrets', PSK_SECRETS, 0o600);
    t.match(await a.readFile('/etc/ipsec.conf'), 'left=172.16.0.18');
    t.match(await b.readFile('/etc/ipsec.conf'), 'left=172.16.0.2');
    t.ok(readFileSync('/etc/ipsec.conf').equals(hostIpsecConf), 'host /etc/ipsec.conf unchanged');
  });

  await t.test('a PSK tunnel comes up and carries traffic', async (t) => {
    await Promise.all([a.startStrongswan(), b.startStrongswan()]);
    const up = await a.execOk(['ipsec', 'up', CONN]);
    // `ipsec up` exits 0 even when establishing fails: the output is the verdict.
    t.match(up.stdout, `connection '${CONN}' established successfully`);

    const pinged = await eventually(() => a.ping('10.1.0.1', '10.2.0.1'));
    t.ok(pinged, 'ping -I 10.1.0.1 10.2.0.1 from A gets replies');
    for (const site of [a, b]) {
      const established = await eventually(async () => {
        const status = (await site.execOk(['ipsec', 'status'])).stdout;
        return /ESTABLISHED/.test(status) && /INSTALLED/.test(status);
      });
      t.ok(established, `ipsec status shows ESTABLISHED and INSTALLED in site ${site.spec.name}`);
    }
  });

  await t.test('charon logs to /var/log/charon.log inside the site', async (t) => {
    const log = await a.readFile('/var/log/charon.log');
    t.match(log, `IKE_SA ${CONN}[1] established`);
    t.notOk(existsSync(path.join('/var/log', 'charon.log')), 'not in the host /var/log');
  });

  await t.test('starter restarts a killed charon, and strongSwan stops on request', async (t) => {
    const killed = await a.killCharon('SIGKILL');
    t.ok(killed, 'charon of site A was running');
    const restarted = await eventually(async () => {
      const pids = await a.strongswanPids();
      return pids.length === 2 && !pids.includes(killed ?? -1);
    });
    t.ok(restarted, 'a new charon runs in site A');

    await b.stopStrongswan();
    t.same(await b.strongswanPids(), [], 'no starter or charon left in site B');
  });

  await t.test('a crashed strongSwan is really gone, so a new charon gets its sockets', async (t) => {
    const before = await a.strongswanPids();
    t.equal(before.length, 2, 'starter and charon run in site A');
    await a.crashStrongswan();
    t.same(await a.strongswanPids(), [], 'their pid files are gone');
    const running = (pid: number) => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
    t.notOk(before.some(running), 'the killed processes have exited');
    const logBefore = (await a.readFile('/var/log/charon.log')).length;
    await a.startStrongswan();
    const startLog = (await a.readFile('/var/log/charon.log')).slice(logBefore);
    t.notMatch(startLog, /unable to bind socket/, 'UDP 500 was free for the new charon');
  });

  await t.test('destroy removes every namespace, mount and process of the lab', async (t) => {
    const pidLists = await Promise.all([a, b].map((site: Site) => site.strongswanPids()));
    const strongswanPids = pidLists.flat();
    t.ok(strongswanPids.length > 0, 'site A still runs strongSwan when destroy starts');

    await lab.destroy();
    await lab.destroy(); // idempotent

    const netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n');
    t.same(netns.filter((line) => line.startsWith(`${PREFIX}-`)), [], 'no netns with the prefix');
    const labDir = path.join(LAB_ROOT, PREFIX);
    const mounts = readFileSync('/proc/mounts', 'utf8').split('\n');
    t.same(mounts.filter((line) => line.includes(labDir)), [], 'no mount under the lab dir');
    t.same(strongswanPids.filter(isAlive), [], 'no starter or charon of the lab alive');
    t.notOk(existsSync(labDir), 'lab dir removed');
  });
});
