/**
 * The daemon's vici event watch against a stand-in for charon's socket: when it asks for a
 * pass, and how it gets back to listening once charon is there again.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { encodeSegment, PacketType } from '../../agent/host/vici-codec.js';
import { watchViciEvents } from '../../agent/daemon/vici-watch.js';
import { basicScript, FakeCharon, until } from '../host/fake-charon.js';
import { collectingLogger } from './helpers.js';

/** Longer than any test here: a subscription within a test never comes from the retry timer. */
const NEVER_WITHIN_A_TEST_MS = 600_000;

t.test('it asks for a pass once subscribed, on an SA event, and when the stream ends', async (t) => {
  const charon = await FakeCharon.start(t, basicScript);
  const asked: string[] = [];
  const watch = watchViciEvents({
    logger: collectingLogger().logger,
    onChange: (what) => asked.push(what),
    socketPath: charon.socketPath,
    reconnectDelayMs: NEVER_WITHIN_A_TEST_MS,
  });
  t.teardown(() => watch.stop());

  t.ok(await until(() => asked.length === 1), 'asked once subscribed');
  t.same(asked, ['charon'], 'events from before the subscription were not heard: look now');
  t.ok(charon.trace().includes('3 ike-updown'), 'registered for ike-updown');

  const subscriber = charon.sockets.at(-1)!;
  const updown = { up: 'yes', 'a-to-b': { uniqueid: '7', state: 'ESTABLISHED' } };
  subscriber.write(encodeSegment({ type: PacketType.event, name: 'ike-updown', message: updown }));
  t.ok(await until(() => asked.length === 2), 'an SA event asks for a pass');
  t.equal(asked[1], 'a-to-b');

  charon.dropClients();
  t.ok(await until(() => asked.length === 3), 'the stream ending asks for a pass');
  t.equal(asked[2], 'charon');
});

t.test('listenNow subscribes at once when charon is back, instead of at the next retry', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'tw-vici-watch-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const socketPath = path.join(dir, 'charon.vici');
  const before = await FakeCharon.start(t, basicScript, socketPath);
  const asked: string[] = [];
  const watch = watchViciEvents({
    logger: collectingLogger().logger,
    onChange: (what) => asked.push(what),
    socketPath,
    reconnectDelayMs: NEVER_WITHIN_A_TEST_MS,
  });
  t.teardown(() => watch.stop());
  t.ok(await until(() => asked.length === 1), 'subscribed');

  await before.stop(); // charon goes away
  t.ok(await until(() => asked.length === 2), 'the stream ended; the next retry is far off');

  const after = await FakeCharon.start(t, basicScript, socketPath); // charon is back
  watch.listenNow();
  t.ok(await until(() => asked.length === 3), 'subscribed at once');
  t.ok(after.trace().includes('3 ike-updown'), 'registered with the new charon');
  const connections = after.sockets.length;
  watch.listenNow();
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(after.sockets.length, connections, 'while subscribed, listenNow opens nothing');
  t.equal(asked.length, 3);
});
