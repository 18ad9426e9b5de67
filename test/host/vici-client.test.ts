/**
 * ViciClient against a scripted stand-in for charon on a unix socket in a temp dir: the
 * exchanges the client puts on the wire, serialisation, deadlines, dead sockets, subscriptions.
 * The lab suite (test/lab/vici.test.ts) runs the same client against real charon.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { ErrorCode, TunnelwardenError } from '../../agent/errors.js';
import { encodeSegment, PacketType, type ViciMessage } from '../../agent/host/vici-codec.js';
import { ViciClient, type ViciEvent } from '../../agent/host/vici.js';
import { basicScript, FakeCharon, until, WAIT_MS, type Script } from './fake-charon.js';

async function rejection(promise: Promise<unknown>): Promise<TunnelwardenError> {
  try {
    await promise;
  } catch (thrown) {
    if (thrown instanceof TunnelwardenError) return thrown;
    throw new Error(`expected a TunnelwardenError, got ${String(thrown)}`);
  }
  throw new Error('expected a rejection, got a result');
}

t.test('request sends a named CMD_REQUEST and returns the response message', async (t) => {
  const charon = await FakeCharon.start(t, basicScript);
  const client = await ViciClient.connect(charon.socketPath);
  t.teardown(() => client.close());

  t.strictSame(await client.version(), { daemon: 'charon', version: '5.9.8' });
  t.strictSame(charon.trace(), ['0 version']);
});

t.test(
  'success = no becomes viciCommandFailed carrying errmsg; CMD_UNKNOWN is its own code',
  async (t) => {
    const charon = await FakeCharon.start(t, (packet, reply) => {
      if (packet.name === 'load-pool') {
        reply({ type: PacketType.cmdResponse, message: { success: 'no', errmsg: 'pool invalid' } });
      } else if (packet.name === 'reload-settings') {
        reply({ type: PacketType.cmdResponse, message: { success: 'yes' } });
      } else {
        reply({ type: PacketType.cmdUnknown });
      }
    });
    const client = await ViciClient.connect(charon.socketPath);
    t.teardown(() => client.close());

    const failed = await rejection(client.request('load-pool', { p: { addrs: '10.0.0.0/24' } }));
    t.equal(failed.code, ErrorCode.viciCommandFailed);
    t.match(failed.message, /load-pool failed: pool invalid/);
    t.equal(failed.details.errmsg, 'pool invalid');
    t.ok(failed.retryable, 'a failed command may succeed later');

    t.strictSame(await client.request('reload-settings'), { success: 'yes' });

    const unknown = await rejection(client.request('no-such-command'));
    t.equal(unknown.code, ErrorCode.viciUnknownCommand);
    t.notOk(unknown.retryable);
    t.ok(client.isOpen, 'failed commands leave the connection usable');
  },
);

t.test('listSas registers for list-sa, collects the events, then unregisters', async (t) => {
  const charon = await FakeCharon.start(t, (packet, reply) => {
    if (packet.type === PacketType.cmdRequest && packet.name === 'list-sas') {
      reply({ type: PacketType.event, name: 'list-sa', message: { 'a-to-b': { uniqueid: '1' } } });
      reply({ type: PacketType.event, name: 'log', message: { msg: 'not ours' } });
      reply({ type: PacketType.event, name: 'list-sa', message: { 'a-to-c': { uniqueid: '2' } } });
      reply({ type: PacketType.cmdResponse, message: {} });
    } else {
      basicScript(packet, reply, 0);
    }
  });
  const client = await ViciClient.connect(charon.socketPath);
  t.teardown(() => client.close());

  const sas = await client.listSas({ ike: 'a-to-b', ikeId: 1, noblock: true });
  t.strictSame(sas, [{ 'a-to-b': { uniqueid: '1' } }, { 'a-to-c': { uniqueid: '2' } }]);
  t.strictSame(charon.trace(), ['3 list-sa', '0 list-sas', '4 list-sa']);
  t.strictSame(charon.received[1]?.packet.message, {
    ike: 'a-to-b',
    'ike-id': '1',
    noblock: 'yes',
  });
});

t.test(
  'a streamed command whose event charon does not know fails with viciUnknownCommand',
  async (t) => {
    const charon = await FakeCharon.start(t, (packet, reply) => {
      if (packet.type === PacketType.eventRegister) reply({ type: PacketType.eventUnknown });
    });
    const client = await ViciClient.connect(charon.socketPath);
    t.teardown(() => client.close());

    const error = await rejection(client.listConns());
    t.equal(error.code, ErrorCode.viciUnknownCommand);
    t.match(error.message, /no vici event 'list-conn'/);
    t.strictSame(charon.trace(), ['3 list-conn'], 'the command is not sent without its event');
  },
);

t.test('concurrent calls go on the wire one at a time, in call order', async (t) => {
  let outstanding = 0;
  let mostOutstanding = 0;
  const charon = await FakeCharon.start(t, (packet, reply) => {
    if (packet.type !== PacketType.cmdRequest) return basicScript(packet, reply, 0);
    outstanding += 1;
    mostOutstanding = Math.max(mostOutstanding, outstanding);
    setTimeout(() => {
      outstanding -= 1;
      reply({ type: PacketType.cmdResponse, message: { answer: packet.name ?? '' } });
    }, 20);
  });
  const client = await ViciClient.connect(charon.socketPath);
  t.teardown(() => client.close());

  const answers = await Promise.all(['one', 'two', 'three'].map((name) => client.request(name)));
  t.strictSame(answers, [{ answer: 'one' }, { answer: 'two' }, { answer: 'three' }]);
  t.equal(mostOutstanding, 1, 'never two requests outstanding');
  t.strictSame(charon.trace(), ['0 one', '0 two', '0 three']);
});

t.test(
  'a call unanswered past its deadline fails with viciTimedOut and closes the connection',
  async (t) => {
    const charon = await FakeCharon.start(t, basicScript);
    const client = await ViciClient.connect(charon.socketPath);
    t.teardown(() => client.close());

    const startedAt = Date.now();
    const error = await rejection(client.request('stats', {}, { timeoutMs: 200 }));
    t.equal(error.code, ErrorCode.viciTimedOut);
    t.ok(Date.now() - startedAt < WAIT_MS, 'fails near its deadline');
    t.notOk(client.isOpen, 'a late answer could be mistaken for the next one: connection closed');

    const next = await rejection(client.version());
    t.equal(next.code, ErrorCode.viciUnavailable);
    t.match(next.message, /connection is closed/);
  },
);

t.test(
  'a call whose deadline passes while queued fails alone; the connection stays up',
  async (t) => {
    const charon = await FakeCharon.start(t, (packet, reply) => {
      if (packet.name === 'slow')
        setTimeout(() => reply({ type: PacketType.cmdResponse, message: {} }), 300);
      else basicScript(packet, reply, 0);
    });
    const client = await ViciClient.connect(charon.socketPath);
    t.teardown(() => client.close());

    const slow = client.request('slow', {}, { timeoutMs: 2_000 });
    const queued = await rejection(client.version({ timeoutMs: 50 }));
    t.equal(queued.code, ErrorCode.viciTimedOut);
    t.match(queued.message, /still queued/);
    t.strictSame(await slow, {});
    t.ok(client.isOpen);
    t.strictSame(charon.trace(), ['0 slow'], 'the expired call never reached the wire');
    t.strictSame(await client.version(), { daemon: 'charon', version: '5.9.8' });
  },
);

t.test(
  'charon dropping the connection fails the pending and every later call at once',
  async (t) => {
    const charon = await FakeCharon.start(t, basicScript);
    const client = await ViciClient.connect(charon.socketPath);
    t.teardown(() => client.close());

    const pending = client.request('stats', {}, { timeoutMs: WAIT_MS * 2 });
    t.ok(await until(() => charon.received.length === 1), 'the request arrived');
    const startedAt = Date.now();
    charon.dropClients();
    const error = await rejection(pending);
    t.equal(error.code, ErrorCode.viciUnavailable);
    t.ok(Date.now() - startedAt < WAIT_MS, 'no waiting for the deadline');
    t.ok(error.retryable, 'reconnecting may help');

    const later = await rejection(client.listSas());
    t.equal(later.code, ErrorCode.viciUnavailable);

    const again = await ViciClient.connect(charon.socketPath);
    t.teardown(() => again.close());
    t.strictSame(
      await again.version(),
      { daemon: 'charon', version: '5.9.8' },
      'a new client works',
    );
  },
);

t.test('connecting where no charon listens fails with viciUnavailable', async (t) => {
  const charon = await FakeCharon.start(t, basicScript);
  const missing = await rejection(ViciClient.connect(path.join(charon.dir, 'absent.vici')));
  t.equal(missing.code, ErrorCode.viciUnavailable);
  t.match(missing.message, /no socket there/);

  const notSocket = path.join(charon.dir, 'plain-file');
  await writeFile(notSocket, '');
  const refused = await rejection(ViciClient.connect(notSocket));
  t.equal(refused.code, ErrorCode.viciUnavailable);
});

t.test('an oversized segment from charon ends the connection with viciMalformed', async (t) => {
  const charon = await FakeCharon.start(t, (packet, _reply, connection) => {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1024 * 1024);
    charon.sockets[connection - 1]?.write(header);
  });
  const client = await ViciClient.connect(charon.socketPath);
  t.teardown(() => client.close());

  const error = await rejection(client.version());
  t.equal(error.code, ErrorCode.viciMalformed);
  t.notOk(client.isOpen);
});

t.test(
  'initiate asks charon to wait timeoutMs and reports failures with its log lines',
  async (t) => {
    const charon = await FakeCharon.start(t, (packet, reply) => {
      if (packet.name === 'initiate' && packet.message?.child === 'bad') {
        reply({
          type: PacketType.event,
          name: 'control-log',
          message: { msg: 'initiating IKE_SA bad[1]' },
        });
        reply({
          type: PacketType.event,
          name: 'control-log',
          message: { msg: 'AUTHENTICATION_FAILED' },
        });
        reply({
          type: PacketType.cmdResponse,
          message: { success: 'no', errmsg: "establishing CHILD_SA 'bad' failed" },
        });
      } else if (packet.name === 'initiate') {
        reply({ type: PacketType.cmdResponse, message: { success: 'yes' } });
      } else {
        basicScript(packet, reply, 0);
      }
    });
    const client = await ViciClient.connect(charon.socketPath);
    t.teardown(() => client.close());

    await client.initiate({ child: 'a-to-b', ike: 'a-to-b', timeoutMs: 4_000 });
    t.strictSame(charon.received[1]?.packet.message, {
      child: 'a-to-b',
      timeout: '4000',
      ike: 'a-to-b',
    });
    await client.initiate({ child: 'a-to-b', timeoutMs: -1 });
    t.strictSame(
      charon.received[4]?.packet.message,
      { child: 'a-to-b', timeout: '-1' },
      '-1: do not wait',
    );

    const error = await rejection(client.initiate({ child: 'bad' }));
    t.equal(error.code, ErrorCode.viciCommandFailed);
    t.match(error.message, /initiate failed: establishing CHILD_SA 'bad' failed/);
    t.strictSame(error.details.log, ['initiating IKE_SA bad[1]', 'AUTHENTICATION_FAILED']);
    t.equal(charon.received[7]?.packet.message?.timeout, '30000', 'a default bound, never 0');
    t.strictSame(charon.trace().slice(0, 3), ['3 control-log', '0 initiate', '4 control-log']);

    const zero = await rejection(client.initiate({ child: 'a-to-b', timeoutMs: 0 }));
    t.equal(zero.kind, 'bug', 'timeout 0 (wait forever) is refused');
  },
);

t.test('terminate sends its selectors and returns the counts charon reports', async (t) => {
  const charon = await FakeCharon.start(t, (packet, reply) => {
    if (packet.name === 'terminate') {
      reply({
        type: PacketType.cmdResponse,
        message: { success: 'yes', matches: '1', terminated: '1' },
      });
    } else {
      basicScript(packet, reply, 0);
    }
  });
  const client = await ViciClient.connect(charon.socketPath);
  t.teardown(() => client.close());

  const result = await client.terminate({ ikeId: 7, force: true, timeoutMs: 1_000 });
  t.strictSame(result, { matches: 1, terminated: 1 });
  t.strictSame(charon.received[1]?.packet.message, {
    timeout: '1000',
    'ike-id': '7',
    force: 'yes',
  });
});

t.test('subscribe listens on a second connection and delivers events until closed', async (t) => {
  const charon = await FakeCharon.start(t, basicScript);
  const client = await ViciClient.connect(charon.socketPath);
  t.teardown(() => client.close());
  await client.version();

  const events: ViciEvent[] = [];
  const subscription = await client.subscribe(['ike-updown', 'child-updown'], (event) =>
    events.push(event),
  );
  t.equal(charon.sockets.length, 2, 'a connection of its own');
  t.strictSame(charon.trace(2), ['3 ike-updown', '3 child-updown']);

  const updown: ViciMessage = { up: 'yes', 'a-to-b': { uniqueid: '3' } };
  charon.sockets[1]?.write(
    encodeSegment({ type: PacketType.event, name: 'ike-updown', message: updown }),
  );
  t.ok(await until(() => events.length === 1), 'the event arrived');
  t.strictSame(events[0], { name: 'ike-updown', message: updown });
  t.strictSame(
    await client.version(),
    { daemon: 'charon', version: '5.9.8' },
    'commands unaffected',
  );

  subscription.close();
  t.equal(await subscription.ended, undefined, 'closing ends it without an error');
});

t.test('a subscription ends with viciUnavailable when charon goes away', async (t) => {
  const charon = await FakeCharon.start(t, basicScript);
  const client = await ViciClient.connect(charon.socketPath);
  t.teardown(() => client.close());

  const subscription = await client.subscribe(['child-updown'], () => undefined);
  charon.dropClients();
  const ended = await subscription.ended;
  t.equal(ended?.code, ErrorCode.viciUnavailable);
});

t.test(
  'a subscription to an event charon does not know fails and leaves nothing open',
  async (t) => {
    const charon = await FakeCharon.start(t, (packet, reply) => {
      if (packet.name === 'ike-rekey') reply({ type: PacketType.eventUnknown });
      else basicScript(packet, reply, 0);
    });
    const client = await ViciClient.connect(charon.socketPath);
    t.teardown(() => client.close());

    const error = await rejection(client.subscribe(['ike-updown', 'ike-rekey'], () => undefined));
    t.equal(error.code, ErrorCode.viciUnknownCommand);
    t.ok(
      await until(
        () => charon.sockets[1]?.destroyed === true || charon.sockets[1]?.readyState === 'closed',
      ),
    );
  },
);

t.test('a listener that throws ends its subscription with that error', async (t) => {
  const charon = await FakeCharon.start(t, basicScript);
  const client = await ViciClient.connect(charon.socketPath);
  t.teardown(() => client.close());

  const subscription = await client.subscribe(['log'], () => {
    throw new Error('listener broke');
  });
  charon.sockets[1]?.write(
    encodeSegment({ type: PacketType.event, name: 'log', message: { msg: 'x' } }),
  );
  const ended = await subscription.ended;
  t.match(ended?.message, /listener broke/);
});
