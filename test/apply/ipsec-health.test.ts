/**
 * Health planning across passes (agent/apply/ipsec-health.ts) on real captured statuses and a
 * fake clock: a stuck CONNECTING IKE_SA climbs the ladder, and a pass with no finding while the
 * tunnel is still coming up keeps the ladder instead of forgetting it.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { planHealth } from '../../agent/apply/ipsec-health.js';
import type { CommandRunner } from '../../agent/host/exec.js';
import { loadDesiredState } from '../../agent/model/load.js';
import type { DesiredState } from '../../agent/model/schema.js';
import type { IpsecObservation } from '../../agent/observe/ipsec.js';
import { parseStrokeStatus } from '../../agent/observe/parse/stroke.js';
import type { HealthStateFile } from '../../agent/plan/health-state.js';
import { collectingLogger } from '../daemon/helpers.js';

const repo = path.resolve(import.meta.dirname, '..', '..');
const fixture = (name: string) =>
  readFileSync(path.join(repo, 'test', 'fixtures', 'strongswan-5.9.8-libipsec', name), 'utf8');

function siteA(): DesiredState {
  const loaded = loadDesiredState(readFileSync(path.join(repo, 'config', 'site-a.json'), 'utf8'));
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  return loaded.state;
}

/** An observation whose only change from the capture is the unique id of its IKE_SA. */
function observed(capture: string, uniqueId?: number): IpsecObservation {
  const status = parseStrokeStatus(fixture(capture));
  if (uniqueId !== undefined) status.ikeSas = status.ikeSas.map((sa) => ({ ...sa, uniqueId }));
  return {
    installed: true,
    ourConf: undefined,
    ourSecretsSha256: undefined,
    ourSecretsMode: undefined,
    ipsecConfIncludesOurs: true,
    ipsecSecretsIncludesOurs: true,
    charonRunning: true,
    status,
  };
}

/** Answers every probe. */
const pingAnswers: CommandRunner = async () => ({
  exitCode: 0,
  stdout: '64 bytes from 10.2.0.1: icmp_seq=1 ttl=64 time=0.41 ms\n',
  stderr: '',
  durationMs: 1,
});

async function pass(previous: HealthStateFile, observation: IpsecObservation, nowMs: number) {
  const plan = await planHealth({
    desired: siteA(),
    observed: observation,
    plannerActions: [],
    previous,
    run: pingAnswers,
    logger: collectingLogger().logger,
    nowMs,
    random: () => 0,
  });
  return { types: plan.actions.map((action) => action.type), state: plan.state, conn: plan.state.conns['a-to-b']! };
}

t.test('a CONNECTING IKE_SA that never establishes climbs the ladder', async (t) => {
  let state: HealthStateFile = { version: 1, conns: {} };

  const seen = await pass(state, observed('stroke-statusall-connecting.txt', 21), 0);
  t.same(seen.types, [], 'first seen CONNECTING: an exchange in flight');
  t.same(seen.conn.connectingSinceMs, { '21': 0 });
  state = seen.state;

  const stuck = await pass(state, observed('stroke-statusall-connecting.txt', 21), 61_000);
  t.same(stuck.types, ['restart-ike-sa'], 'a minute later it is stuck: restart the IKE_SA');
  t.equal(stuck.conn.memory.rung, 1);
  state = stuck.state;

  const retrying = await pass(state, observed('stroke-statusall-connecting.txt', 22), 63_000);
  t.same(retrying.types, [], 'the restart made a new IKE_SA, still young');
  t.equal(retrying.conn.memory.rung, 1, 'not up yet, so the ladder is kept');
  t.same(retrying.conn.connectingSinceMs, { '22': 63_000 }, '#21 is forgotten');
  state = retrying.state;

  const stillStuck = await pass(state, observed('stroke-statusall-connecting.txt', 22), 124_000);
  t.same(stillStuck.types, ['reload-config'], 'the restart did not help: the next rung');
  state = stillStuck.state;

  const up = await pass(state, observed('stroke-statusall-established.txt'), 130_000);
  t.same(up.types, []);
  t.equal(up.conn.memory.rung, -1, 'established and the probe answers: the ladder is forgotten');
  t.same(up.conn.connectingSinceMs, {});
});
