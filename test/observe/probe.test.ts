/** The data-path probe's parser on real iputils output, and the probe records kept from it. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { parsePingOutput, probeOnce } from '../../agent/observe/probe.js';
import type { CommandRunner } from '../../agent/host/exec.js';
import { healthStateFrom, recordCounters, recordProbe, trackConnecting } from '../../agent/plan/health-state.js';

const fixtures = path.resolve(import.meta.dirname, '..', 'fixtures', 'iputils');
const capture = (name: string) => readFileSync(path.join(fixtures, name), 'utf8');

t.test('a reply is read with its round-trip time', async (t) => {
  t.same(parsePingOutput(capture('ping-reply.txt')), { replied: true, rttMs: 0.027 });
});

t.test('a lost probe and an unreachable target both count as no reply', async (t) => {
  t.same(parsePingOutput(capture('ping-lost.txt')), { replied: false });
  t.same(parsePingOutput(capture('ping-unreachable.txt')), { replied: false });
  t.same(parsePingOutput(''), { replied: false });
});

t.test('no input makes the parser throw', async (t) => {
  fc.assert(fc.property(fc.string({ maxLength: 2000 }), (text) => typeof parsePingOutput(text).replied === 'boolean'));
});

t.test('the probe runs ping with the source, a bound on the wait, and no shell', async (t) => {
  const calls: (readonly string[])[] = [];
  const run: CommandRunner = async (argv) => {
    calls.push(argv);
    return { exitCode: 1, stdout: capture('ping-lost.txt'), stderr: '', durationMs: 500 };
  };
  const result = await probeOnce(run, { source: '10.1.0.1', target: '10.2.0.1', timeoutMs: 500 });
  t.same(result, { replied: false });
  t.same(calls, [['ping', '-n', '-c', '1', '-W', '0.500', '-I', '10.1.0.1', '10.2.0.1']]);
});

t.test('losses in a row reset on the first reply; totals keep counting', async (t) => {
  let record = { consecutiveLosses: 0, sent: 0, lost: 0 };
  record = recordProbe(record, { replied: false }, 1);
  record = recordProbe(record, { replied: false }, 2);
  t.same(record, { consecutiveLosses: 2, sent: 2, lost: 2, lastRttMs: undefined, lastAtMs: 2 });
  record = recordProbe(record, { replied: true, rttMs: 0.4 }, 3);
  t.same(record, { consecutiveLosses: 0, sent: 3, lost: 2, lastRttMs: 0.4, lastAtMs: 3 });
});

t.test('counter samples older than a minute are dropped', async (t) => {
  const sample = (atMs: number) => ({ atMs, spiIn: 'aa', bytesIn: 0, bytesOut: atMs });
  const history = recordCounters([sample(0), sample(30_000)], sample(70_000));
  t.same(history.map((kept) => kept.atMs), [30_000, 70_000]);
});

t.test('a damaged state file starts afresh instead of failing', async (t) => {
  t.same(healthStateFrom(null), { version: 1, conns: {} });
  t.same(healthStateFrom({ conns: 'nonsense' }), { version: 1, conns: {} });
  const partial = healthStateFrom({ conns: { 'a-to-b': { probe: { consecutiveLosses: 4 } } } });
  t.equal(partial.conns['a-to-b']!.probe.consecutiveLosses, 4);
  t.equal(partial.conns['a-to-b']!.memory.rung, -1);
  t.same(partial.conns['a-to-b']!.counters, []);
});

t.test('CONNECTING IKE_SAs keep the time they were first seen so; others are forgotten', async (t) => {
  const first = trackConnecting(undefined, [21], 1_000);
  t.same(first, { '21': 1_000 });
  t.same(trackConnecting(first, [21, 22], 5_000), { '21': 1_000, '22': 5_000 });
  t.same(trackConnecting(first, [22], 5_000), { '22': 5_000 }, '#21 established or gone');
  const kept = healthStateFrom({ conns: { 'a-to-b': { connectingSinceMs: { '21': 1_000 } } } });
  t.same(kept.conns['a-to-b']!.connectingSinceMs, { '21': 1_000 });
  const damaged = healthStateFrom({ conns: { 'a-to-b': { connectingSinceMs: { '21': 'soon' } } } });
  t.equal(damaged.conns['a-to-b']!.connectingSinceMs, undefined, 'a damaged record is dropped');
});
