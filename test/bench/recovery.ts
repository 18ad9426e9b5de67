/**
 * Recovery benchmark (prints numbers, asserts nothing): seconds from a fault to traffic
 * crossing the tunnel again (a ping from 10.1.0.1 to 10.2.0.1 that waits 100 ms for its reply,
 * polled every POLL_MS, so a figure is at most about 0.15 s late), in a
 * two-site lab (prefix `twrb`) with `tunnelwarden run` at the initiating site A, for:
 *   - the SA terminated locally, the SA deleted by the peer, the local charon killed;
 *   - the peer's charon killed and restarted (it loses all state);
 *   - a duplicate IKE_SA left by the restarted peer initiating anew (time until cleared);
 * and, in the same run, the peer-restart fault with strongSwan alone (no daemon): once with
 * the desired state's DPD (dpddelay 30 s, dpdaction restart, default retransmissions) and
 * once tuned hard (dpddelay 5 s, retransmit_tries 2, retransmit_timeout 1 s, retransmit_base
 * 1.5). Medians and worst of several rounds. Each fault comes at a random moment within
 * FAULT_PHASE_SPREAD_MS after the tunnel is seen steady, as real faults do, rather than always
 * at the same point of the probe cycle or of DPD's timer.
 *
 *   node --import tsx test/bench/recovery.ts [--quick] [--json FILE]
 * Needs root and `npm run build` first. --quick: one round each.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Lab, labSkipReason, type Site } from '../lab/harness.js';
import { CLI, EXAMPLE_SITES, ikeSasIn as ikeSas, labDesired, strongswanVersion, writePsk, type Desired } from '../lab/ipsec-lab.js';

const quick = process.argv.includes('--quick');
const jsonIndex = process.argv.indexOf('--json');
const jsonFile = jsonIndex > 0 ? process.argv[jsonIndex + 1] : undefined;
const ROUNDS = quick ? 1 : 5;
const DPD_ROUNDS = quick ? 1 : 3;
const RECOVERY_LIMIT_MS = 400_000;
/** The probe interval of config/site-a.json: a fault may fall anywhere in one cycle. */
const FAULT_PHASE_SPREAD_MS = 1_000;
const atRandomMoment = () => new Promise((resolve) => setTimeout(resolve, Math.random() * FAULT_PHASE_SPREAD_MS));
const TUNED_CHARON = [
  'charon {',
  '  retransmit_tries = 2',
  '  retransmit_timeout = 1.0',
  '  retransmit_base = 1.5',
  '}',
  '',
].join('\n');

function desired(example: string, edit: (document: Desired) => void = () => {}): string {
  const document = labDesired(example, (found) => {
    found.ipsec.setup.uniqueids = 'never'; // keep duplicates for the duplicate fault
    edit(found);
  });
  return `${JSON.stringify(document, null, 2)}\n`;
}

/** Pause between two checks for traffic crossing. */
const POLL_MS = 25;

async function waitFor(what: string, check: () => Promise<boolean>, limitMs = RECOVERY_LIMIT_MS, everyMs = POLL_MS): Promise<number> {
  const startedAt = performance.now();
  for (;;) {
    if (await check()) return performance.now() - startedAt;
    if (performance.now() - startedAt > limitMs) throw new Error(`not within ${limitMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

const crosses = (a: Site) => async () =>
  (await a.exec(['ping', '-n', '-c', '1', '-W', '0.1', '-I', '10.1.0.1', '10.2.0.1'])).code === 0;


function spawnDaemon(lab: Lab, site: Site, file: string): ChildProcess {
  const mountFile = path.join(lab.dir, 'mnt', site.spec.name.toLowerCase());
  const child = spawn(
    'nsenter',
    [`--net=/run/netns/${site.netns}`, `--mount=${mountFile}`, '--wd=/', '--', 'node', CLI, 'run', '--config', file],
    { env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  // The daemon's log, for a look when a figure surprises: TW_BENCH_DAEMON_LOG=FILE.
  const logFile = process.env.TW_BENCH_DAEMON_LOG;
  for (const stream of [child.stdout!, child.stderr!]) {
    stream.on('data', (chunk: Buffer) => {
      if (logFile) appendFileSync(logFile, chunk);
    });
  }
  return child;
}

interface Result {
  fault: string;
  by: string;
  roundsMs: number[];
}

function summarise(result: Result): { medianS: number; worstS: number } {
  const sorted = [...result.roundsMs].sort((x, y) => x - y);
  return { medianS: sorted[Math.floor(sorted.length / 2)]! / 1000, worstS: sorted.at(-1)! / 1000 };
}

async function main(): Promise<void> {
  const skip = labSkipReason();
  if (skip) {
    console.log(`recovery bench skipped: ${skip}`);
    return;
  }
  const lab = await Lab.create({ prefix: 'twrb', sites: EXAMPLE_SITES });
  const results: Result[] = [];
  let daemon: ChildProcess | undefined;
  try {
    const a = lab.site('A');
    const b = lab.site('B');
    const work = path.join(lab.dir, 'desired');
    await mkdir(work, { recursive: true });
    const fileA = path.join(work, 'site-a.json');
    const fileB = path.join(work, 'site-b.json');
    await writeFile(fileA, desired('site-a.json'));
    await writeFile(fileB, desired('site-b.json'));
    await writePsk([a, b], 'recovery-bench-psk-0123456789');
    await b.exec(['node', CLI, 'apply', fileB], { timeoutMs: 60_000 });
    daemon = spawnDaemon(lab, a, fileA);
    await waitFor('tunnel up under the daemon', crosses(a), 60_000);

    const measure = async (fault: string, inject: () => Promise<void>, done: () => Promise<boolean>) => {
      const result: Result = { fault, by: 'tunnelwarden run', roundsMs: [] };
      for (let round = 0; round < ROUNDS; round += 1) {
        await waitFor('steady before the fault', crosses(a), 60_000);
        await atRandomMoment();
        const faultAt = performance.now();
        await inject();
        await waitFor(fault, done);
        result.roundsMs.push(performance.now() - faultAt);
        await waitFor('one IKE_SA again', async () => (await ikeSas(a)).length === 1, 60_000);
      }
      results.push(result);
      console.log(`  ${fault}: ${result.roundsMs.map((ms) => (ms / 1000).toFixed(2)).join(', ')} s`);
    };

    console.log(`recovery bench (${quick ? 'quick: one round each' : `${ROUNDS} rounds`}):`);
    await measure('SA terminated locally', () => a.execOk(['ipsec', 'down', 'a-to-b']).then(() => undefined), crosses(a));
    await measure('SA deleted by the peer', () => b.execOk(['ipsec', 'down', 'b-to-a']).then(() => undefined), crosses(a));
    await measure(
      'peer charon killed and restarted',
      async () => {
        await b.crashStrongswan();
        await b.startStrongswan();
      },
      crosses(a),
    );
    await measure(
      'duplicate IKE_SA (cleared)',
      async () => {
        await b.crashStrongswan();
        await b.startStrongswan();
        await b.execOk(['ipsec', 'stroke', 'up-nb', 'b-to-a']);
      },
      async () => {
        const established = (await ikeSas(a)).filter((sa) => sa.state === 'ESTABLISHED');
        return established.length === 1 && (await crosses(a)());
      },
    );
    await measure('local charon killed', () => a.crashStrongswan(), crosses(a));

    if (process.env.TW_BENCH_ONLY_DAEMON === '1') return;
    daemon.kill('SIGTERM');
    await new Promise((resolve) => daemon!.once('exit', resolve));
    daemon = undefined;

    const alone = async (by: string, rounds: number) => {
      const result: Result = { fault: 'peer charon killed and restarted', by, roundsMs: [] };
      for (let round = 0; round < rounds; round += 1) {
        await waitFor('steady before the fault', crosses(a), 60_000);
        await atRandomMoment();
        const faultAt = performance.now();
        await b.crashStrongswan();
        await b.startStrongswan();
        await waitFor(`${by} to recover`, crosses(a));
        result.roundsMs.push(performance.now() - faultAt);
        console.log(`  ${by}: round ${round + 1}: ${((performance.now() - faultAt) / 1000).toFixed(1)} s`);
      }
      results.push(result);
    };
    await alone('strongSwan alone, dpddelay 30 s', DPD_ROUNDS);

    await a.writeFile('/etc/strongswan.d/zz-bench-tuned.conf', TUNED_CHARON);
    await writeFile(fileA, desired('site-a.json', (document) => (document.ipsec.connections[0].dpd.delaySeconds = 5)));
    await a.execOk(['node', CLI, 'apply', fileA], { timeoutMs: 60_000 });
    await a.execOk(['ipsec', 'restart']);
    await waitFor('charon back with tuned retransmissions', async () => (await a.exec(['ipsec', 'status'])).stdout.includes('Security Associations'), 30_000);
    await a.execOk(['node', CLI, 'apply', fileA], { timeoutMs: 60_000 });
    await alone('strongSwan alone, tuned hard', DPD_ROUNDS);
  } finally {
    daemon?.kill('SIGKILL');
    await lab.destroy();
  }

  const machine = `${os.cpus().length} cores, kernel ${os.release()}, strongSwan ${strongswanVersion()}, node ${process.version}`;
  console.log(`\nrecovery (seconds from fault to traffic crossing again), ${machine}`);
  console.log(`${'fault'.padEnd(36)}${'by'.padEnd(34)}${'median'.padStart(8)}${'worst'.padStart(8)}`);
  for (const result of results) {
    const { medianS, worstS } = summarise(result);
    console.log(`${result.fault.padEnd(36)}${result.by.padEnd(34)}${medianS.toFixed(2).padStart(8)}${worstS.toFixed(2).padStart(8)}`);
  }
  const ours = results.find((result) => result.by === 'tunnelwarden run' && result.fault.startsWith('peer charon'));
  for (const by of ['strongSwan alone, dpddelay 30 s', 'strongSwan alone, tuned hard']) {
    const theirs = results.find((result) => result.by === by);
    if (ours && theirs) {
      console.log(`ratio ${by} / tunnelwarden: ${(summarise(theirs).medianS / summarise(ours).medianS).toFixed(1)}x`);
    }
  }
  if (jsonFile) {
    writeFileSync(jsonFile, `${JSON.stringify({ machine, results: results.map((r) => ({ ...r, ...summarise(r) })) }, null, 2)}\n`);
  }
}

main().catch((error: unknown) => {
  console.error(`recovery bench failed: ${(error as Error).stack ?? error}`);
  process.exitCode = 1;
});
