/**
 * Lab: the masquerade resource, shown with packets. Sites A and B run the IPsec tunnel of the
 * config/ examples (reduced to ipsec + masquerade); a third site I (no strongSwan, transit
 * 172.16.0.100) stands for a host on the internet; a guest "ct" (10.1.0.50/16, default route
 * via 10.1.0.1) on site A's site0 bridge stands for a container. A tiny UDP listener (node)
 * prints the source address each packet arrives with:
 * - container -> 10.2.0.1 (site B, through the tunnel) arrives from 10.1.0.50;
 * - container -> 172.16.0.100 (the internet host) arrives from 172.16.0.18, masqueraded.
 * Then our rule is deleted, our chain flushed, our jump removed, each by hand: the next apply
 * restores it and a hand-made foreign POSTROUTING rule stays untouched. Runs once per iptables
 * backend (legacy, nft) that is installed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import {
  Lab,
  labSkipReason,
  REPO_ROOT,
  type ExecResult,
  type Guest,
  type Site,
} from './harness.js';

const skip = labSkipReason();
const CLI = path.join(REPO_ROOT, 'dist', 'agent', 'cli', 'bin.js');
const TEST_PSK = 'lab-psk-masquerade-7Hq';
const PSK_FILE = '/etc/tunnelwarden/secrets/a-to-b.psk';
const NO_ACTION = 'No action: the host already matches the desired state.';
const CONTAINER_ADDRESS = '10.1.0.50';
const INTERNET_ADDRESS = '172.16.0.100';
const SITE_A_TRANSIT = '172.16.0.18';
const SITE_B_SUBNET_ADDRESS = '10.2.0.1';
const FOREIGN_RULE =
  '-A POSTROUTING -s 192.0.2.0/24 -o transit -m comment --comment foreign-by-hand -j MASQUERADE';
/** How long a listener waits for the first packet; the sender stops earlier or on a reply. */
const LISTEN_TIMEOUT_MS = 10_000;
const SEND_TRIES = 60;

/** Receives one UDP datagram, prints the source address it arrived with, replies, exits. */
const LISTENER = `
const dgram = require('node:dgram');
const [address, port, timeoutMs] = process.argv.slice(1);
const socket = dgram.createSocket('udp4');
setTimeout(() => { console.log('timeout'); process.exit(2); }, Number(timeoutMs));
socket.on('message', (message, peer) => {
  console.log(peer.address);
  socket.send(peer.address, peer.port, peer.address, () => process.exit(0));
});
socket.bind(Number(port), address);
`;

/** Sends a datagram every 100 ms until a reply comes or the tries run out. */
const SENDER = `
const dgram = require('node:dgram');
const [address, port, tries] = process.argv.slice(1);
const socket = dgram.createSocket('udp4');
socket.on('error', () => undefined);
socket.on('message', () => process.exit(0));
let sent = 0;
const send = () => {
  if (sent++ >= Number(tries)) process.exit(3);
  socket.send('probe', Number(port), address);
};
setInterval(send, 100);
send();
`;

type Desired = Record<string, any>;
type Backend = 'legacy' | 'nft';

/** The config/ example reduced to ipsec + masquerade, with the masquerade backend set. */
function labDesired(example: string, backend: Backend | 'auto'): Desired {
  const desired = JSON.parse(readFileSync(path.join(REPO_ROOT, 'config', example), 'utf8'));
  delete desired.$schema;
  delete desired.transit;
  delete desired.lxd;
  desired.masquerade.backend = backend;
  return desired;
}

function installedBackends(): Backend[] {
  const dirs = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  return (['legacy', 'nft'] as const).filter((backend) =>
    dirs.some((dir) => existsSync(path.join(dir, `iptables-${backend}-restore`))),
  );
}

let nextPort = 40_000;

/** The source address a UDP packet from `sender` to `address` arrives with at `receiver`. */
async function sourceSeen(receiver: Site, address: string, sender: Guest): Promise<string> {
  const port = String(nextPort++);
  const timeoutMs = LISTEN_TIMEOUT_MS + 5_000;
  const [heard] = await Promise.all([
    receiver.exec(['node', '-e', LISTENER, address, port, String(LISTEN_TIMEOUT_MS)], {
      timeoutMs,
    }),
    sender.exec(['node', '-e', SENDER, address, port, String(SEND_TRIES)], { timeoutMs }),
  ]);
  return heard.stdout.trim() || `listener printed nothing (exit ${heard.code}): ${heard.stderr}`;
}

async function natRules(site: Site, backend: Backend): Promise<string[]> {
  const saved = await site.execOk([`iptables-${backend}-save`, '-t', 'nat']);
  return saved.stdout
    .split('\n')
    .filter((line) => line.startsWith('-A ') || line.startsWith(':TW'));
}

const ours = (lines: string[]) => lines.filter((line) => line.includes('TW-MASQ'));

/** Asserts that a CLI run exited 0, with its output shown only when it did not. */
function exitedZero(t: Test, result: ExecResult, label: string): void {
  t.equal(result.code, 0, `${label} exits 0`, { stdout: result.stdout, stderr: result.stderr });
}

const backends = installedBackends();
if (backends.length === 0) {
  t.test('masquerade with packets', { skip: skip ?? 'iptables is not installed' }, async () => {});
}

for (const backend of backends) {
  t.test(`masquerade with packets, ${backend} backend`, { skip }, async (t) => {
    const lab = await Lab.create({
      prefix: 'twm',
      sites: [
        { name: 'A', transitAddress: `${SITE_A_TRANSIT}/24`, subnetAddress: '10.1.0.1/16' },
        {
          name: 'B',
          transitAddress: '172.16.0.2/24',
          subnetAddress: `${SITE_B_SUBNET_ADDRESS}/16`,
        },
        { name: 'I', transitAddress: `${INTERNET_ADDRESS}/24`, subnetAddress: '192.168.77.1/24' },
      ],
    });
    t.teardown(() => lab.destroy());
    const a = lab.site('A');
    const b = lab.site('B');
    const internet = lab.site('I');
    const container = await lab.attachGuest('A', {
      name: 'ct',
      address: `${CONTAINER_ADDRESS}/16`,
      gateway: '10.1.0.1',
    });
    const work = path.join(lab.dir, 'desired');
    await mkdir(work, { recursive: true });
    for (const site of [a, b]) {
      await site.execOk(['mkdir', '-p', '-m', '0700', path.dirname(PSK_FILE)]);
      await site.writeFile(PSK_FILE, `${TEST_PSK}\n`, 0o600);
    }
    const desired = {
      A: labDesired('site-a.json', backend),
      B: labDesired('site-b.json', backend),
    };
    const apply = async (site: Site, name: 'A' | 'B') => {
      const file = path.join(work, `site-${name}.json`);
      await writeFile(file, JSON.stringify(desired[name], null, 2));
      return site.exec(['node', CLI, 'apply', file, '--log-level', 'warn'], { timeoutMs: 90_000 });
    };
    const other: Backend = backend === 'legacy' ? 'nft' : 'legacy';
    let converged: string[] = [];
    const expectRestored = async (t: Test) => {
      const lines = await natRules(a, backend);
      t.same(ours(lines), converged, 'our chain and jump as after the first apply');
      t.equal(lines.filter((line) => line === FOREIGN_RULE).length, 1, 'foreign rule untouched');
    };

    await t.test('before any apply, the internet host sees the container address', async (t) => {
      t.equal(
        await sourceSeen(internet, INTERNET_ADDRESS, container),
        CONTAINER_ADDRESS,
        'the internet host sees 10.1.0.50',
      );
    });

    await t.test(
      'apply on both sites masquerades to the internet but not into the tunnel',
      async (t) => {
        await a.execOk([`iptables-${backend}`, '-t', 'nat', ...FOREIGN_RULE.split(' ')]);
        const resultB = await apply(b, 'B');
        exitedZero(t, resultB, 'site B apply');
        const resultA = await apply(a, 'A');
        exitedZero(t, resultA, 'site A apply');
        t.comment(`site A apply printed:\n${resultA.stdout}`);
        t.match(
          resultA.stdout,
          new RegExp(`masquerade write-chain ${backend}:nat/TW-MASQ`),
          'chain written',
        );

        t.equal(
          await sourceSeen(b, SITE_B_SUBNET_ADDRESS, container),
          CONTAINER_ADDRESS,
          'site B sees the container address through the tunnel',
        );
        t.equal(
          await sourceSeen(internet, INTERNET_ADDRESS, container),
          SITE_A_TRANSIT,
          'the internet host sees site A transit address',
        );

        const lines = await natRules(a, backend);
        converged = ours(lines);
        t.ok(lines.includes(FOREIGN_RULE), 'foreign rule in place');
        t.equal(
          converged.filter((line) => line.startsWith('-A POSTROUTING')).length,
          1,
          'one jump',
        );
        t.same(ours(await natRules(a, other)), [], `nothing of ours in ${other}`);
      },
    );

    await t.test('a second apply takes no action', async (t) => {
      for (const [site, name] of [
        [b, 'B'],
        [a, 'A'],
      ] as const) {
        const result = await apply(site, name);
        exitedZero(t, result, `site ${name} apply`);
        t.equal(result.stdout.trim(), NO_ACTION, `site ${name} takes no action`);
      }
    });

    await t.test('a MASQUERADE rule deleted by hand is restored by the next apply', async (t) => {
      await a.execOk([`iptables-${backend}`, '-t', 'nat', '-D', 'TW-MASQ', '2']);
      t.equal(
        await sourceSeen(internet, INTERNET_ADDRESS, container),
        CONTAINER_ADDRESS,
        'without the rule the container address leaks',
      );
      const result = await apply(a, 'A');
      exitedZero(t, result, 'site A apply');
      t.match(
        result.stdout,
        /missing rule "tunnelwarden: masquerade 10\.1\.0\.0\/16"/,
        'reason named',
      );
      await expectRestored(t);
      t.equal(
        await sourceSeen(internet, INTERNET_ADDRESS, container),
        SITE_A_TRANSIT,
        'masqueraded again: the internet host sees 172.16.0.18',
      );
    });

    await t.test('a flushed chain is refilled by the next apply', async (t) => {
      await a.execOk([`iptables-${backend}`, '-t', 'nat', '-F', 'TW-MASQ']);
      const result = await apply(a, 'A');
      exitedZero(t, result, 'site A apply');
      t.match(result.stdout, /chain TW-MASQ empty/, 'reason named');
      await expectRestored(t);
      t.equal(
        await sourceSeen(b, SITE_B_SUBNET_ADDRESS, container),
        CONTAINER_ADDRESS,
        'site B still sees 10.1.0.50 through the tunnel',
      );
      t.equal(
        await sourceSeen(internet, INTERNET_ADDRESS, container),
        SITE_A_TRANSIT,
        'masqueraded again: the internet host sees 172.16.0.18',
      );
    });

    await t.test('a removed jump is added back by the next apply', async (t) => {
      const jump = '-D POSTROUTING -m comment --comment tunnelwarden -j TW-MASQ'.split(' ');
      await a.execOk([`iptables-${backend}`, '-t', 'nat', ...jump]);
      const result = await apply(a, 'A');
      exitedZero(t, result, 'site A apply');
      t.match(result.stdout, /jump from POSTROUTING missing/, 'reason named');
      await expectRestored(t);
      t.equal(
        await sourceSeen(internet, INTERNET_ADDRESS, container),
        SITE_A_TRANSIT,
        'masqueraded again: the internet host sees 172.16.0.18',
      );
      t.equal((await apply(a, 'A')).stdout.trim(), NO_ACTION, 'then converged');
    });

    await t.test('the foreign rule stayed untouched throughout', async (t) => {
      const lines = await natRules(a, backend);
      t.equal(lines.filter((line) => line === FOREIGN_RULE).length, 1);
    });

    await t.test('auto keeps the backend that holds the host rules', async (t) => {
      desired.A.masquerade.backend = 'auto';
      const result = await apply(a, 'A');
      exitedZero(t, result, 'site A apply');
      t.equal(result.stdout.trim(), NO_ACTION, 'no action');
      t.same(ours(await natRules(a, other)), [], `nothing of ours in ${other}`);
    });

    await t.test(
      'removing the section removes our chain and jump, not the foreign rule',
      async (t) => {
        delete desired.A.masquerade;
        const result = await apply(a, 'A');
        exitedZero(t, result, 'site A apply');
        t.match(result.stdout, /masquerade remove-chain/, 'chain removed');
        const lines = await natRules(a, backend);
        t.same(ours(lines), [], 'no chain, no jump');
        t.ok(lines.includes(FOREIGN_RULE), 'foreign rule kept');
        t.equal(
          await sourceSeen(internet, INTERNET_ADDRESS, container),
          CONTAINER_ADDRESS,
          'the internet host sees 10.1.0.50',
        );
        t.equal((await apply(a, 'A')).stdout.trim(), NO_ACTION, 'then converged');
      },
    );
  });
}
