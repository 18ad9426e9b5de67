/**
 * The pass queue: passes never overlap, triggers during a pass fold into exactly one more
 * pass carrying all their reasons, a crashing pass does not stop the queue, and stop waits
 * for the running pass and ignores later triggers.
 */
import t from 'tap';
import { createPassQueue } from '../../agent/daemon/pass-queue.js';

/** A pass the test finishes by hand, so it can trigger while the pass "runs". */
function controllablePasses() {
  const started: string[][] = [];
  const finishers: (() => void)[] = [];
  let concurrent = 0;
  let maxConcurrent = 0;
  const run = (reasons: string[]) => {
    started.push(reasons);
    concurrent += 1;
    maxConcurrent = Math.max(maxConcurrent, concurrent);
    return new Promise<void>((resolve) => {
      finishers.push(() => {
        concurrent -= 1;
        resolve();
      });
    });
  };
  const finishNext = async () => {
    for (let turn = 0; turn < 100 && finishers.length === 0; turn += 1) await Promise.resolve();
    finishers.shift()?.();
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { run, started, finishNext, maxConcurrent: () => maxConcurrent };
}

t.test('a trigger while idle starts a pass with that reason', async (t) => {
  const passes = controllablePasses();
  const queue = createPassQueue(passes.run);
  queue.trigger('start');
  t.same(passes.started, [['start']]);
  t.ok(queue.running);
  await passes.finishNext();
  await queue.idle();
  t.notOk(queue.running);
});

t.test('triggers during a pass cause exactly one more pass with all their reasons', async (t) => {
  const passes = controllablePasses();
  const queue = createPassQueue(passes.run);
  queue.trigger('start');
  queue.trigger('file');
  queue.trigger('schedule');
  queue.trigger('file');
  queue.trigger('signal');
  t.equal(passes.started.length, 1, 'only the first pass runs so far');
  await passes.finishNext();
  t.same(passes.started, [['start'], ['file', 'schedule', 'signal']]);
  await passes.finishNext();
  await queue.idle();
  t.equal(passes.started.length, 2, 'no third pass');
  t.equal(passes.maxConcurrent(), 1, 'passes never overlapped');
});

t.test('a trigger after the folded pass ends starts a new pass', async (t) => {
  const passes = controllablePasses();
  const queue = createPassQueue(passes.run);
  queue.trigger('start');
  await passes.finishNext();
  await queue.idle();
  queue.trigger('schedule');
  await passes.finishNext();
  await queue.idle();
  t.same(passes.started, [['start'], ['schedule']]);
});

t.test('a pass that throws is reported and the queue keeps going', async (t) => {
  const errors: unknown[] = [];
  const reasons: string[][] = [];
  const queue = createPassQueue(async (passReasons) => {
    reasons.push(passReasons);
    if (passReasons.includes('start')) throw new Error('boom');
  }, (thrown) => errors.push(thrown));
  queue.trigger('start');
  await queue.idle();
  queue.trigger('file');
  await queue.idle();
  t.equal(errors.length, 1);
  t.match(String(errors[0]), /boom/);
  t.same(reasons, [['start'], ['file']]);
});

t.test('stop waits for the running pass, drops pending triggers and ignores new ones', async (t) => {
  const passes = controllablePasses();
  const queue = createPassQueue(passes.run);
  queue.trigger('start');
  queue.trigger('file');
  let stopped = false;
  const stopping = queue.stop().then(() => {
    stopped = true;
  });
  await new Promise((resolve) => setImmediate(resolve));
  t.notOk(stopped, 'stop waits while the pass runs');
  queue.trigger('signal');
  await passes.finishNext();
  await stopping;
  t.ok(stopped);
  t.same(passes.started, [['start']], 'neither the pending nor the later trigger ran');
});

t.test('many triggers over many passes never overlap and lose no request', async (t) => {
  let running = 0;
  let overlapped = false;
  let passes = 0;
  let lastSeenTrigger = -1;
  let lastSent = -1;
  const queue = createPassQueue(async (reasons) => {
    running += 1;
    if (running > 1) overlapped = true;
    passes += 1;
    await new Promise((resolve) => setTimeout(resolve, 1));
    lastSeenTrigger = Math.max(lastSeenTrigger, ...reasons.map(Number));
    running -= 1;
  });
  for (let index = 0; index < 200; index += 1) {
    queue.trigger(String(index));
    lastSent = index;
    if (index % 7 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
  }
  await queue.idle();
  t.notOk(overlapped, 'no two passes ran at once');
  t.equal(lastSeenTrigger, lastSent, 'the last trigger was served by a pass');
  t.ok(passes < 200, `triggers were folded (${passes} passes for 200 triggers)`);
});
