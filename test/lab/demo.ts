/**
 * `make demo`: two sites in network namespaces with real strongSwan, linked by tunnelwarden
 * from the example desired states, traffic crossing, and classic failures undone in front of
 * you. A short live view on stdout; the full logs go to the file named at the start.
 * Removes everything it created at the end, also on Ctrl-C; `make demo-clean` removes what a
 * killed run left behind.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Lab, labSkipReason, type Site } from './harness.js';
import { applyIn, connSasIn, EXAMPLE_SITES, labDesired, writePsk } from './ipsec-lab.js';

const PREFIX = 'twdemo';
const LOG_FILE = '/var/tmp/tunnelwarden-demo.log';
const HEAL_BOUND_MS = 30_000;

const say = (line: string) => process.stdout.write(`${line}\n`);
const log = (line: string) => appendFileSync(LOG_FILE, `${line}\n`);

async function apply(site: Site, file: string, label: string): Promise<string[]> {
  const result = await applyIn(site, file, 'info');
  log(`--- ${label}: tunnelwarden apply (exit ${result.code})\n${result.stdout}${result.stderr}`);
  if (result.code !== 0) throw new Error(`${label}: apply exited ${result.code}; see ${LOG_FILE}`);
  return result.stdout.trim().split('\n');
}

async function tunnelUp(site: Site, conn: string): Promise<boolean> {
  return (await connSasIn(site, conn)).some(
    (sa) => sa.state === 'ESTABLISHED' && sa.children.some((c) => c.state === 'INSTALLED'),
  );
}

/** Runs apply until traffic crosses again; returns the milliseconds from fault to traffic. */
async function heal(a: Site, fileA: string, label: string, faultAt: number): Promise<number> {
  const deadline = faultAt + HEAL_BOUND_MS;
  while (performance.now() < deadline) {
    const lines = await apply(a, fileA, label);
    for (const line of lines) say(`    ${line}`);
    if (await a.ping('10.1.0.1', '10.2.0.1', 1)) return performance.now() - faultAt;
  }
  throw new Error(`${label}: traffic did not cross again within ${HEAL_BOUND_MS} ms`);
}

async function main(): Promise<void> {
  const skip = labSkipReason();
  if (skip) throw new Error(`the demo cannot run here: ${skip}`);
  writeFileSync(LOG_FILE, `tunnelwarden demo, ${new Date().toISOString()}\n`);
  say(`Full logs: ${LOG_FILE}`);

  say('Creating sites A (172.16.0.18, 10.1.0.0/16) and B (172.16.0.2, 10.2.0.0/16)...');
  const lab = await Lab.create({ prefix: PREFIX, sites: EXAMPLE_SITES });
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    say('\nInterrupted: removing the lab...');
    void lab.destroy().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const summary: [string, number][] = [];
  try {
    const a = lab.site('A');
    const b = lab.site('B');
    const psk = randomBytes(24).toString('base64');
    const work = path.join(lab.dir, 'desired');
    await mkdir(work, { recursive: true });
    const fileA = path.join(work, 'site-a.json');
    const fileB = path.join(work, 'site-b.json');
    writeFileSync(fileA, JSON.stringify(labDesired('site-a.json'), null, 2));
    writeFileSync(fileB, JSON.stringify(labDesired('site-b.json'), null, 2));
    await writePsk([a, b], psk);

    say('\n1. tunnelwarden apply at site B (responder), then at site A (initiator):');
    for (const line of await apply(b, fileB, 'site B')) say(`    B: ${line}`);
    for (const line of await apply(a, fileA, 'site A')) say(`    A: ${line}`);
    say(`    a-to-b up at A: ${await tunnelUp(a, 'a-to-b')}; b-to-a up at B: ${await tunnelUp(b, 'b-to-a')}`);
    say(`    ping 10.1.0.1 -> 10.2.0.1 through the tunnel: ${(await a.ping('10.1.0.1', '10.2.0.1')) ? 'replies' : 'NO REPLY'}`);

    say('\n2. apply again: nothing to do');
    for (const line of await apply(a, fileA, 'site A again')) say(`    A: ${line}`);

    say('\n3. Fault: the SA is terminated by hand (ipsec down a-to-b)');
    await a.execOk(['ipsec', 'down', 'a-to-b']);
    let faultAt = performance.now();
    summary.push(['SA terminated', await heal(a, fileA, 'heal after ipsec down', faultAt)]);

    say('\n4. Fault: our strongSwan file edited by hand (dpddelay changed, ipsec update run)');
    const conf = await a.readFile('/etc/ipsec.d/tunnelwarden.conf');
    await a.writeFile('/etc/ipsec.d/tunnelwarden.conf', conf.replace('dpddelay=30s', 'dpddelay=300s'));
    await a.execOk(['ipsec', 'update']);
    faultAt = performance.now();
    summary.push(['our conf edited by hand', await heal(a, fileA, 'heal after hand edit', faultAt)]);

    say("\n5. Fault: the peer's strongSwan is restarted (ipsec stop, then start)");
    await b.stopStrongswan();
    await b.startStrongswan();
    faultAt = performance.now();
    summary.push(['peer strongSwan restarted', await heal(a, fileA, 'heal after peer restart', faultAt)]);

    say('\nHealing summary (fault to traffic crossing again, driven by `tunnelwarden apply`):');
    for (const [fault, ms] of summary) say(`    ${fault.padEnd(28)} ${Math.round(ms)} ms`);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (!interrupted) {
      say('\nRemoving the lab (namespaces, mounts, processes)...');
      await lab.destroy();
      say('Done.');
    }
  }
}

/** `demo.ts clean`: remove what a killed demo left behind. */
async function clean(): Promise<void> {
  const lab = await Lab.create({ prefix: PREFIX, sites: [] }).catch(() => undefined);
  await lab?.destroy();
  say('Removed any demo leftovers.');
}

const run = process.argv[2] === 'clean' ? clean : main;
run().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${(error as Error).message}\n`);
  process.exitCode = 1;
});
