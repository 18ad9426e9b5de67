/**
 * Lab: SA faults with real strongSwan, each healed by `tunnelwarden apply` until traffic
 * crosses again: SA terminated locally, SA deleted by the peer, duplicate IKE_SAs, a stale
 * half-open IKE_SA, the peer's charon killed and restarted (it loses all state), the local
 * charon killed. Outcomes are polled with a generous bound; no fixed sleeps.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { Lab, labSkipReason } from './harness.js';
import {
  applyIn,
  CLI,
  connSasIn as ikeSas,
  EXAMPLE_SITES,
  ikeSasIn as allIkeSas,
  labDesired,
  writePsk,
  type Desired,
} from './ipsec-lab.js';

const skip = labSkipReason();
const HEAL_BOUND_MS = 60_000;

/** 'never' also ignores INITIAL_CONTACT: duplicates survive, so the healer must clear them. */
const keepDuplicates = (desired: Desired) => (desired.ipsec.setup.uniqueids = 'never');

async function waitUntil(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + HEAL_BOUND_MS;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out after ${HEAL_BOUND_MS} ms waiting for ${what}`);
}

t.test('apply heals SA faults until traffic crosses again', { skip }, async (t) => {
  const lab = await Lab.create({ prefix: 'twh4', sites: EXAMPLE_SITES });
  t.teardown(() => lab.destroy());
  const a = lab.site('A');
  const b = lab.site('B');
  const work = path.join(lab.dir, 'desired');
  await mkdir(work, { recursive: true });
  const fileA = path.join(work, 'site-a.json');
  const fileB = path.join(work, 'site-b.json');
  await writeFile(fileA, JSON.stringify(labDesired('site-a.json', keepDuplicates)));
  await writeFile(fileB, JSON.stringify(labDesired('site-b.json', keepDuplicates)));
  await writePsk([a, b], 'health-lab-psk-0123456789');
  const applyA = () => applyIn(a, fileA, 'info');
  const applied: string[] = [];
  /** Applies at A until a ping crosses; returns what the applies did. */
  const healA = async (): Promise<string> => {
    const lines: string[] = [];
    await waitUntil('traffic to cross again', async () => {
      const result = await applyA();
      lines.push(result.stdout.trim());
      return a.ping('10.1.0.1', '10.2.0.1', 1);
    });
    // One more pass sees the conn healthy, as the daemon's next pass would: the ladder resets.
    const settled = await applyA();
    if (settled.code !== 0) throw new Error(`apply after healing: ${settled.stdout}${settled.stderr}`);
    const text = lines.join('\n');
    applied.push(text);
    return text;
  };

  t.equal((await b.exec(['node', CLI, 'apply', fileB])).code, 0, 'site B applied');
  await healA();
  t.equal((await ikeSas(a, 'a-to-b'))[0]?.state, 'ESTABLISHED', 'tunnel up to start with');

  await t.test('an SA terminated locally is initiated again', async (t) => {
    await a.execOk(['ipsec', 'down', 'a-to-b']);
    t.match(await healA(), /ipsec initiate a-to-b: no IKE_SA/);
  });

  await t.test('an SA deleted by the peer is initiated again', async (t) => {
    await b.execOk(['ipsec', 'down', 'b-to-a']);
    await waitUntil('A to see the delete', async () => (await ikeSas(a, 'a-to-b')).length === 0);
    t.match(await healA(), /ipsec initiate a-to-b/);
  });

  /** The peer loses all state (SIGKILL to starter and charon) and is started again. */
  const restartPeerHard = async () => {
    await b.crashStrongswan();
    await b.startStrongswan();
  };

  await t.test('a duplicate IKE_SA is cleared, keeping the newest with traffic', async (t) => {
    // uniqueids=never: when the restarted peer initiates, A keeps its old IKE_SA beside the new.
    await restartPeerHard();
    await b.execOk(['ipsec', 'stroke', 'up-nb', 'b-to-a']);
    await waitUntil('two ESTABLISHED IKE_SAs at A', async () =>
      (await ikeSas(a, 'a-to-b')).filter((sa) => sa.state === 'ESTABLISHED').length === 2,
    );
    const result = await applyA();
    t.match(result.stdout, /ipsec terminate-ike-sa a-to-b: duplicate-ike-sa/);
    await waitUntil('one IKE_SA left', async () => (await ikeSas(a, 'a-to-b')).length === 1);
    t.ok(await a.ping('10.1.0.1', '10.2.0.1'), 'traffic still crosses');
  });

  await t.test('a stale half-open IKE_SA beside an established one is cleared', async (t) => {
    // The peer restarts and initiates, but its IKE_AUTH (UDP 4500) never reaches A: A holds a
    // half-open responder IKE_SA in CONNECTING beside its old ESTABLISHED one.
    const drop = ['INPUT', '-p', 'udp', '--dport', '4500', '-j', 'DROP'];
    await restartPeerHard();
    await a.execOk(['iptables', '-I', ...drop]);
    try {
      await b.execOk(['ipsec', 'stroke', 'up-nb', 'b-to-a']);
      await waitUntil('a CONNECTING IKE_SA beside one ESTABLISHED 10 s', async () => {
        const sas = await allIkeSas(a);
        const established = sas.find((sa) => sa.conn === 'a-to-b' && sa.state === 'ESTABLISHED');
        return sas.some((sa) => sa.state === 'CONNECTING') && (established?.establishedSecondsAgo ?? 0) >= 10;
      });
      const result = await applyA();
      t.match(result.stdout, /ipsec terminate-ike-sa a-to-b: stale-half-open/);
      await waitUntil('the half-open SA to go', async () =>
        (await allIkeSas(a)).every((sa) => sa.state !== 'CONNECTING'),
      );
    } finally {
      await a.execOk(['iptables', '-D', ...drop]);
    }
    await healA();
    t.ok(await a.ping('10.1.0.1', '10.2.0.1'), 'traffic crosses again');
  });

  await t.test("the peer's charon killed and restarted: the dead tunnel is restarted", async (t) => {
    await restartPeerHard();
    t.equal((await ikeSas(a, 'a-to-b'))[0]?.state, 'ESTABLISHED', 'A still believes in its SA');
    t.notOk(await a.ping('10.1.0.1', '10.2.0.1', 1), 'but traffic does not cross');
    t.match(await healA(), /ipsec restart-ike-sa a-to-b: probe-failing/);
  });

  await t.test('the local charon killed: strongSwan is started and the tunnel initiated', async (t) => {
    await a.crashStrongswan();
    t.match(await healA(), /ipsec start-strongswan charon: charon is not running/);
  });

  t.comment(`what apply did, fault by fault:\n${applied.join('\n---\n')}`);
});
