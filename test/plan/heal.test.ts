/** The healing ladder, replayed on a fake clock. */
import t from 'tap';
import type { HealthFinding } from '../../agent/plan/health.js';
import { decideHeal, freshMemory, type ConnHealMemory, type HealPolicy } from '../../agent/plan/heal.js';

const policy: HealPolicy = { baseBackoffMs: 1_000, maxBackoffMs: 8_000, jitterRatio: 0.5, maxHealsPerHour: 5 };
const dead: HealthFinding = { conn: 'a-to-b', kind: 'probe-failing', evidence: '3 probes lost' };
const missing: HealthFinding = { conn: 'a-to-b', kind: 'child-sa-missing', evidence: 'no child' };
const duplicate: HealthFinding = {
  conn: 'a-to-b',
  kind: 'duplicate-ike-sa',
  evidence: '2 ESTABLISHED',
  ikeSaIds: [4],
};

function decide(findings: HealthFinding[], memory: ConnHealMemory, nowMs: number, random = 0) {
  return decideHeal(findings, memory, { initiates: true, nowMs, random: () => random, policy });
}

t.test('a healthy conn needs nothing and forgets its ladder', async (t) => {
  const memory: ConnHealMemory = { rung: 2, attempts: 3, nextAttemptAtMs: 9e9, healTimesMs: [1], capped: true };
  const decision = decide([], memory, 1_000);
  t.equal(decision.outcome, 'healthy');
  t.same(decision.memory, { rung: -1, attempts: 0, nextAttemptAtMs: 0, healTimesMs: [1], capped: false });
});

t.test('a dead tunnel climbs the ladder one rung per attempt, with growing backoff', async (t) => {
  let memory = freshMemory();
  const steps: string[] = [];
  let now = 0;
  for (let attempt = 0; attempt < 4; attempt += 1) {
    const decision = decide([dead], memory, now);
    t.equal(decision.outcome, 'heal');
    steps.push(decision.actions.map((action) => action.type).join());
    memory = decision.memory;
    now = memory.nextAttemptAtMs;
  }
  t.same(steps, ['restart-ike-sa', 'reload-config', 'restart-charon', 'restart-charon']);
  t.same(memory.healTimesMs, [0, 1_000, 3_000, 7_000], 'backoff 1 s, 2 s, 4 s (no jitter)');
});

t.test('a missing CHILD_SA starts at initiating it', async (t) => {
  const decision = decide([missing], freshMemory(), 0);
  t.same(decision.actions, [{ type: 'initiate', conn: 'a-to-b', reason: 'child-sa-missing: no child' }]);
});

t.test('before the backoff ends, the healer waits, but still clears duplicates', async (t) => {
  const first = decide([dead], freshMemory(), 0);
  const early = decide([dead, duplicate], first.memory, 500);
  t.equal(early.outcome, 'backoff');
  t.same(early.actions.map((action) => action.type), ['terminate-ike-sa']);
  t.equal(early.outcome === 'backoff' && early.retryAtMs, 1_000);
});

t.test('jitter stretches the backoff by up to jitterRatio', async (t) => {
  const decision = decide([dead], freshMemory(), 0, 1);
  t.equal(decision.memory.nextAttemptAtMs, 1_500);
  const later = decide([dead], { ...decision.memory, attempts: 10 }, 1_500, 1);
  t.equal(later.memory.nextAttemptAtMs - 1_500, 12_000, 'capped at maxBackoffMs, then jittered');
});

t.test('duplicates and half-open SAs are cleared at once without climbing', async (t) => {
  const decision = decide([duplicate], freshMemory(), 0);
  t.same(decision.actions, [
    { type: 'terminate-ike-sa', conn: 'a-to-b', uniqueId: 4, reason: 'duplicate-ike-sa: 2 ESTABLISHED' },
  ]);
  t.equal(decision.memory.rung, -1);
});

t.test('past the hourly cap the healer stops, says so once, and resumes after an hour', async (t) => {
  const memory: ConnHealMemory = { ...freshMemory(), healTimesMs: [0, 10, 20, 30, 40] };
  const capped = decide([dead], memory, 1_000);
  t.equal(capped.outcome, 'capped');
  t.equal(capped.outcome === 'capped' && capped.newlyCapped, true);
  const again = decide([dead], capped.memory, 2_000);
  t.equal(again.outcome === 'capped' && again.newlyCapped, false, 'said once');
  const hourLater = decide([dead], again.memory, 3_600_050);
  t.equal(hourLater.outcome, 'heal', 'old heals age out of the window');
});

t.test('the responder reports but never heals', async (t) => {
  const decision = decideHeal([dead, duplicate], freshMemory(), { initiates: false, nowMs: 0, random: () => 0, policy });
  t.equal(decision.outcome, 'report-only');
  t.same(decision.actions, []);
});

t.test('a stuck CONNECTING IKE_SA enters the ladder at restarting the IKE_SA', async (t) => {
  const stuck: HealthFinding = { conn: 'a-to-b', kind: 'stuck-connecting', evidence: 'IKE_SA #21 for 61 s CONNECTING' };
  const first = decide([stuck], freshMemory(), 0);
  t.same(first.actions.map((action) => action.type), ['restart-ike-sa']);
  const second = decide([stuck], first.memory, first.memory.nextAttemptAtMs);
  t.same(second.actions.map((action) => action.type), ['reload-config'], 'still stuck after the restart: next rung');
});
