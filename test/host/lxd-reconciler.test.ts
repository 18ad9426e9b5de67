/**
 * The lxd reconciler end to end over a unix socket: plan and apply against a stand-in LXD
 * that replays captured LXD 5.0.2 responses, the ETag conflict path, and a pass in which LXD
 * is missing while another resource still reconciles.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import t, { type Test } from 'tap';
import { createLxdReconciler } from '../../agent/apply/lxd.js';
import { runPass } from '../../agent/apply/pass.js';
import type { HostPorts, Reconciler } from '../../agent/apply/reconciler.js';
import { ErrorCode } from '../../agent/errors.js';
import { hostFiles } from '../../agent/host/files.js';
import { createLogger } from '../../agent/log.js';
import { loadDesiredState } from '../../agent/model/load.js';
import { DEFAULT_PATHS } from '../../agent/model/paths.js';
import type { DesiredState } from '../../agent/model/schema.js';
import type { LxdAction } from '../../agent/plan/lxd.js';
import {
  captured,
  startReplayServer,
  type Answer,
  type SeenRequest,
} from '../fixtures/lxd/replay-server.js';

const ETAG_NAT_TRUE = '"5fc76a343140807fd01ffe9db295596d98006834702e3b804622489bca329b82"';
const ETAG_NAT_FALSE = '"b46473411f0cfa890fd151b9e2b0b8c348d244b55c9c916647599231265f682c"';

function scratchDir(t: Test): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'tw-lxd-reconciler-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function desired(lxd: Record<string, unknown> | undefined): DesiredState {
  const document: Record<string, unknown> = {
    version: 1,
    site: { name: 'lab', subnets: ['10.1.0.0/16'] },
  };
  if (lxd !== undefined) document.lxd = lxd;
  const result = loadDesiredState(JSON.stringify(document));
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.state;
}

/** Ports whose log lines are kept as parsed JSON; nothing here may run a command. */
function ports(): { ports: HostPorts; logLines: Record<string, unknown>[] } {
  const logLines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) logLines.push(JSON.parse(line));
      done();
    },
  });
  const logger = createLogger({ level: 'debug', destination });
  const run: HostPorts['run'] = async (argv) => {
    throw new Error(`no command may run here, got ${argv.join(' ')}`);
  };
  return { ports: { run, files: hostFiles, logger, paths: DEFAULT_PATHS }, logLines };
}

/**
 * A stand-in LXD holding one network, twbr0, whose ipv4.nat is "true" until a PATCH with the
 * right ETag sets it "false". `patchAnswers` overrides the answers to successive PATCHes.
 */
async function lxdWithTwbr0(t: Test, patchAnswers: Answer[] = []) {
  const socketPath = path.join(scratchDir(t), 'unix.socket');
  let natOn = true;
  const route = (request: SeenRequest): Answer => {
    if (request.method === 'GET' && request.path === '/1.0') return captured('get-server');
    if (request.path !== '/1.0/networks/twbr0') return captured('get-network-not-found');
    if (request.method === 'GET')
      return captured(natOn ? 'get-network-nat-true' : 'get-network-nat-false');
    const override = patchAnswers.shift();
    if (override !== undefined) return override;
    if (request.headers['if-match'] !== (natOn ? ETAG_NAT_TRUE : ETAG_NAT_FALSE)) {
      return captured('patch-network-etag-mismatch');
    }
    natOn = JSON.parse(request.body).config['ipv4.nat'] === 'true';
    return captured('patch-network-ok');
  };
  const server = await startReplayServer(socketPath, route);
  t.teardown(() => server.close());
  const calls = () => server.requests.map((request) => `${request.method} ${request.path}`);
  return { socketPath, server, calls, natOn: () => natOn };
}

t.test('plan reads the network and apply PATCHes ipv4.nat with the ETag it read', async (t) => {
  const lxd = await lxdWithTwbr0(t);
  const { ports: hostPorts } = ports();
  const state = desired({ socket: lxd.socketPath, networks: [{ name: 'twbr0', ipv4Nat: false }] });
  const reconciler = createLxdReconciler();

  const actions = await reconciler.plan(state, hostPorts);
  t.same(actions, [
    {
      resource: 'lxd',
      type: 'set-network-nat',
      target: 'twbr0',
      ipv4Nat: false,
      reason: 'ipv4.nat is true, want false',
    },
  ]);
  await reconciler.apply(actions[0]!, hostPorts);
  t.same(lxd.calls(), ['GET /1.0', 'GET /1.0/networks/twbr0', 'PATCH /1.0/networks/twbr0']);
  const patch = lxd.server.requests[2]!;
  t.equal(patch.headers['if-match'], ETAG_NAT_TRUE);
  t.same(JSON.parse(patch.body), { config: { 'ipv4.nat': 'false' } });
  t.equal(lxd.natOn(), false);
  t.same(await reconciler.plan(state, hostPorts), [], 'a second plan finds nothing to do');
});

t.test(
  'a stale ETag makes apply read the network once more and PATCH with the new ETag',
  async (t) => {
    const lxd = await lxdWithTwbr0(t, [captured('patch-network-etag-mismatch')]);
    const { ports: hostPorts, logLines } = ports();
    const state = desired({
      socket: lxd.socketPath,
      networks: [{ name: 'twbr0', ipv4Nat: false }],
    });
    const reconciler = createLxdReconciler();
    const [action] = await reconciler.plan(state, hostPorts);
    await reconciler.apply(action!, hostPorts);
    t.same(lxd.calls().slice(2), [
      'PATCH /1.0/networks/twbr0',
      'GET /1.0/networks/twbr0',
      'PATCH /1.0/networks/twbr0',
    ]);
    t.equal(lxd.natOn(), false);
    const warning = logLines.find(
      (line) => line.msg === 'network changed since it was read; reading it again',
    );
    t.match(warning, { level: 40, resource: 'lxd', action: 'set-network-nat', target: 'twbr0' });
  },
);

t.test(
  'after a stale ETag, a network that already has the wanted value is left alone',
  async (t) => {
    const socketPath = path.join(scratchDir(t), 'unix.socket');
    let reads = 0;
    const server = await startReplayServer(socketPath, (request) => {
      if (request.path === '/1.0') return captured('get-server');
      if (request.method === 'PATCH') return captured('patch-network-etag-mismatch');
      reads += 1;
      return captured(reads === 1 ? 'get-network-nat-true' : 'get-network-nat-false');
    });
    t.teardown(() => server.close());
    const { ports: hostPorts } = ports();
    const reconciler = createLxdReconciler();
    const [action] = await reconciler.plan(
      desired({ socket: socketPath, networks: [{ name: 'twbr0', ipv4Nat: false }] }),
      hostPorts,
    );
    await reconciler.apply(action!, hostPorts);
    t.equal(
      server.requests.filter((request) => request.method === 'PATCH').length,
      1,
      'one PATCH only',
    );
  },
);

t.test('a second stale ETag in a row fails the action as retryable', async (t) => {
  const mismatch = captured('patch-network-etag-mismatch');
  const lxd = await lxdWithTwbr0(t, [mismatch, mismatch]);
  const { ports: hostPorts } = ports();
  const reconciler = createLxdReconciler();
  const [action] = await reconciler.plan(
    desired({ socket: lxd.socketPath, networks: [{ name: 'twbr0', ipv4Nat: false }] }),
    hostPorts,
  );
  const error = await reconciler.apply(action!, hostPorts).then(
    () => undefined,
    (thrown: unknown) => thrown as { code: string; retryable: boolean; message: string },
  );
  t.equal(error?.code, ErrorCode.lxdRequestFailed);
  t.equal(error?.retryable, true);
  t.match(error?.message, 'changed twice');
  t.equal(lxd.natOn(), true, 'nothing changed');
});

t.test('without lxd networks in the desired state no socket is looked for', async (t) => {
  const { ports: hostPorts } = ports();
  let connected = 0;
  const reconciler = createLxdReconciler({
    connect: () => {
      connected += 1;
      throw new Error('must not connect');
    },
    socketCandidates: [],
  });
  t.same(await reconciler.plan(desired(undefined), hostPorts), []);
  t.same(await reconciler.plan(desired({ networks: [] }), hostPorts), []);
  t.equal(connected, 0);
});

t.test('the socket is found among the candidates when the desired state names none', async (t) => {
  const lxd = await lxdWithTwbr0(t);
  const { ports: hostPorts } = ports();
  const missing = path.join(path.dirname(lxd.socketPath), 'missing.socket');
  const reconciler = createLxdReconciler({ socketCandidates: [missing, lxd.socketPath] });
  const actions = await reconciler.plan(
    desired({ networks: [{ name: 'twbr0', ipv4Nat: false }] }),
    hostPorts,
  );
  t.equal(actions.length, 1);
  t.same(lxd.calls(), ['GET /1.0', 'GET /1.0/networks/twbr0']);
});

t.test('no socket among the candidates fails the plan naming where it looked', async (t) => {
  const dir = scratchDir(t);
  const candidates = [path.join(dir, 'lxd.socket'), path.join(dir, 'incus.socket')];
  const reconciler = createLxdReconciler({ socketCandidates: candidates });
  const error = await reconciler
    .plan(desired({ networks: [{ name: 'twbr0', ipv4Nat: false }] }), ports().ports)
    .then(
      () => undefined,
      (thrown: unknown) => thrown as { code: string; message: string },
    );
  t.equal(error?.code, ErrorCode.lxdUnavailable);
  t.equal(
    error?.message,
    `no LXD or Incus daemon: none of ${candidates.join(', ')} exists (is the daemon running?)`,
  );
});

t.test(
  'a pass without LXD reports the lxd failure and still reconciles other resources',
  async (t) => {
    const dir = scratchDir(t);
    const applied: string[] = [];
    const other: Reconciler = {
      resource: 'masquerade',
      async plan() {
        return [{ resource: 'masquerade', type: 'stand-in', target: 'x', reason: 'test' }];
      },
      async apply(action) {
        applied.push(action.target);
      },
      warnings: () => [],
    };
    const { ports: hostPorts, logLines } = ports();
    const state = desired({
      socket: path.join(dir, 'unix.socket'),
      networks: [{ name: 'twbr0', ipv4Nat: false }],
    });
    const result = await runPass(state, hostPorts, {
      factories: [() => createLxdReconciler(), () => other],
    });
    t.same(applied, ['x'], 'the other resource was applied');
    t.equal(result.failures.length, 1);
    t.equal(result.failures[0]?.resource, 'lxd');
    t.equal(result.failures[0]?.error.code, ErrorCode.lxdUnavailable);
    const logged = logLines.find((line) => line.msg === 'resource could not be planned');
    t.match(logged, { level: 50, resource: 'lxd', code: ErrorCode.lxdUnavailable });
  },
);

t.test('an action for a network that vanished before apply fails naming the network', async (t) => {
  const socketPath = path.join(scratchDir(t), 'unix.socket');
  const server = await startReplayServer(socketPath, (request) => {
    if (request.path === '/1.0') return captured('get-server');
    return request.method === 'GET'
      ? captured('get-network-nat-true')
      : captured('get-network-not-found');
  });
  t.teardown(() => server.close());
  const { ports: hostPorts } = ports();
  const reconciler = createLxdReconciler();
  const [action] = (await reconciler.plan(
    desired({ socket: socketPath, networks: [{ name: 'twbr0', ipv4Nat: false }] }),
    hostPorts,
  )) as LxdAction[];
  const error = await reconciler.apply(action!, hostPorts).then(
    () => undefined,
    (thrown: unknown) => thrown as { code: string; message: string },
  );
  t.equal(error?.code, ErrorCode.lxdNetworkNotFound);
  t.equal(error?.message, 'LXD network "twbr0" disappeared while its ipv4.nat was being set');
});
