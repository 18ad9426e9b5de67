/**
 * The probe monitor between passes, with a fake ping whose answers the test releases one by
 * one. The conn's interval is a minute, so within a test every probe after the first comes
 * from a confirmation or from startAfresh, never from the interval.
 */
import t from 'tap';
import type { CommandResult, CommandRunner } from '../../agent/host/exec.js';
import { loadDesiredState } from '../../agent/model/load.js';
import { createProbeMonitor } from '../../agent/daemon/probe-monitor.js';
import { collectingLogger, desiredText } from './helpers.js';

const MINUTE_MS = 60_000;
const WAIT_LIMIT_MS = 5_000;

function desiredWithProbe() {
  const document = JSON.parse(desiredText());
  document.ipsec.connections[0].probe = {
    target: '10.2.0.1',
    source: '10.1.0.1',
    intervalMs: MINUTE_MS,
    lossThreshold: 2,
  };
  const loaded = loadDesiredState(JSON.stringify(document));
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  return loaded.state;
}

/** A ping runner whose calls wait until the test answers them, in order. */
function heldPings() {
  const waiting: ((result: CommandResult) => void)[] = [];
  let calls = 0;
  const run: CommandRunner = (argv) => {
    if (argv[0] !== 'ping') throw new Error(`unexpected command ${argv.join(' ')}`);
    calls += 1;
    return new Promise((resolve) => waiting.push(resolve));
  };
  const answer = (replied: boolean) => {
    const release = waiting.shift();
    if (!release) throw new Error('no probe is waiting');
    release({
      exitCode: replied ? 0 : 1,
      stdout: replied ? '64 bytes from 10.2.0.1: icmp_seq=1 ttl=64 time=0.40 ms\n' : '',
      stderr: '',
      durationMs: 1,
    });
  };
  const sent = async (count: number) => {
    const startedAt = Date.now();
    while (calls < count) {
      if (Date.now() - startedAt > WAIT_LIMIT_MS) throw new Error(`only ${calls} probes sent, wanted ${count}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };
  return { run, answer, sent, calls: () => calls };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

/**
 * A monitor following the conn whose first probe (started by startAfresh) was lost, with the
 * confirming probe sent and waiting for its answer.
 */
async function monitorAfterOneLoss(t: { teardown(fn: () => unknown): void }) {
  const pings = heldPings();
  const dead: string[] = [];
  const monitor = createProbeMonitor({ run: pings.run, logger: collectingLogger().logger, onDead: (conn) => dead.push(conn) });
  t.teardown(() => monitor.stop());
  monitor.follow(desiredWithProbe());
  monitor.startAfresh('a-to-b');
  await pings.sent(1);
  pings.answer(false);
  await pings.sent(2);
  return { pings, dead, monitor };
}

t.test('a lost probe is confirmed at once and the threshold asks for a pass', async (t) => {
  const { pings, dead, monitor } = await monitorAfterOneLoss(t);
  t.equal(monitor.latest('a-to-b')?.consecutiveLosses, 1, 'one loss so far, and a confirmation under way');
  t.same(dead, []);
  pings.answer(false);
  await settle();
  t.equal(monitor.latest('a-to-b')?.consecutiveLosses, 2);
  t.same(dead, ['a-to-b'], 'the second loss in a row reaches the threshold');
});

t.test('startAfresh forgets the losses, drops a probe under way and probes again at once', async (t) => {
  const { pings, dead, monitor } = await monitorAfterOneLoss(t);
  t.equal(monitor.latest('a-to-b')?.consecutiveLosses, 1);

  monitor.startAfresh('a-to-b'); // a heal re-established the tunnel while probe 2 was out
  t.equal(monitor.latest('a-to-b'), undefined, 'the old run of losses is forgotten');
  await pings.sent(3);
  pings.answer(false); // probe 2, sent before the heal: says nothing about the new tunnel
  await settle();
  t.equal(monitor.latest('a-to-b'), undefined, 'the answer of a probe sent before the heal is ignored');
  t.equal(pings.calls(), 3, 'and it starts no probe of its own');
  t.same(dead, []);

  pings.answer(true); // probe 3, the fresh one
  await settle();
  t.equal(monitor.latest('a-to-b')?.consecutiveLosses, 0);
  t.equal(monitor.latest('a-to-b')?.lossesSinceMs, undefined);
});

t.test('startAfresh for a conn the monitor does not follow does nothing', async (t) => {
  const pings = heldPings();
  const monitor = createProbeMonitor({ run: pings.run, logger: collectingLogger().logger, onDead: () => {} });
  t.teardown(() => monitor.stop());
  monitor.startAfresh('a-to-b');
  await settle();
  t.equal(pings.calls(), 0);
});
