/**
 * The lxd planner on observations built from networks captured from LXD 5.0.2: one
 * set-network-nat action where ipv4.nat differs, nothing else, and clear errors for networks
 * that cannot be managed.
 */
import t from 'tap';
import { ErrorCode, TunnelwardenError } from '../../agent/errors.js';
import { loadDesiredState } from '../../agent/model/load.js';
import type { DesiredState } from '../../agent/model/schema.js';
import {
  parseNetwork,
  parseServerInfo,
  type LxdObservation,
  type ObservedLxdNetwork,
} from '../../agent/observe/lxd.js';
import { effectiveIpv4Nat, planLxd } from '../../agent/plan/lxd.js';
import { capturedMetadata } from '../fixtures/lxd/replay-server.js';

const SOCKET = '/var/lib/lxd/unix.socket';

function desired(networks: { name: string; ipv4Nat: boolean }[] | undefined): DesiredState {
  const document: Record<string, unknown> = {
    version: 1,
    site: { name: 'lab', subnets: ['10.1.0.0/16'] },
  };
  if (networks !== undefined) document.lxd = { networks };
  const result = loadDesiredState(JSON.stringify(document));
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.state;
}

/** A captured network, renamed and with config edits when asked. */
function network(
  state: string,
  edit: { name?: string; config?: Record<string, string | undefined>; type?: string } = {},
): ObservedLxdNetwork {
  const metadata = capturedMetadata(state);
  if (edit.name !== undefined) metadata.name = edit.name;
  if (edit.type !== undefined) metadata.type = edit.type;
  for (const [key, value] of Object.entries(edit.config ?? {})) {
    if (value === undefined) delete metadata.config[key];
    else metadata.config[key] = value;
  }
  return { name: metadata.name, found: true, network: parseNetwork(metadata, SOCKET), etag: '"e"' };
}

function observation(...networks: ObservedLxdNetwork[]): LxdObservation {
  return {
    socketPath: SOCKET,
    server: parseServerInfo(capturedMetadata('get-server'), SOCKET),
    networks,
  };
}

function thrownBy(run: () => unknown): TunnelwardenError {
  try {
    run();
  } catch (thrown) {
    if (thrown instanceof TunnelwardenError) return thrown;
    throw thrown;
  }
  throw new Error('expected a throw');
}

t.test('ipv4.nat true where false is wanted plans one action with the reason', async (t) => {
  const plan = planLxd(
    desired([{ name: 'twbr0', ipv4Nat: false }]),
    observation(network('get-network-nat-true')),
  );
  t.same(plan.actions, [
    {
      resource: 'lxd',
      type: 'set-network-nat',
      target: 'twbr0',
      ipv4Nat: false,
      reason: 'ipv4.nat is true, want false',
    },
  ]);
  t.same(plan.warnings, []);
});

t.test('ipv4.nat false where false is wanted plans nothing', async (t) => {
  const plan = planLxd(
    desired([{ name: 'twbr0', ipv4Nat: false }]),
    observation(network('get-network-nat-false')),
  );
  t.same(plan.actions, []);
});

t.test('ipv4.nat false where true is wanted plans turning it on', async (t) => {
  const plan = planLxd(
    desired([{ name: 'twbr0', ipv4Nat: true }]),
    observation(network('get-network-nat-false')),
  );
  t.equal(plan.actions.length, 1);
  t.equal(plan.actions[0]?.ipv4Nat, true);
  t.equal(plan.actions[0]?.reason, 'ipv4.nat is false, want true');
});

t.test("an unset ipv4.nat counts as LXD's default, false", async (t) => {
  const observed = observation(network('get-network-nat-unset'));
  t.same(
    planLxd(desired([{ name: 'twbr0', ipv4Nat: false }]), observed).actions,
    [],
    'nothing to do for false',
  );
  const wantOn = planLxd(desired([{ name: 'twbr0', ipv4Nat: true }]), observed).actions;
  t.equal(wantOn.length, 1);
  t.equal(wantOn[0]?.reason, "ipv4.nat is unset (LXD's default: false), want true");
});

t.test('other spellings of a boolean are read the way LXD reads them', async (t) => {
  t.same(effectiveIpv4Nat({}), { value: false, raw: undefined });
  for (const raw of ['true', 'TRUE', '1', 'yes', 'on', 'On'])
    t.equal(effectiveIpv4Nat({ 'ipv4.nat': raw }).value, true, raw);
  for (const raw of ['false', '0', 'no', 'off', ''])
    t.equal(effectiveIpv4Nat({ 'ipv4.nat': raw }).value, false, raw);
  const observed = observation(network('get-network-nat-true', { config: { 'ipv4.nat': 'yes' } }));
  const plan = planLxd(desired([{ name: 'twbr0', ipv4Nat: false }]), observed);
  t.equal(plan.actions[0]?.reason, 'ipv4.nat is "yes" (true), want false');
  t.same(
    planLxd(desired([{ name: 'twbr0', ipv4Nat: true }]), observed).actions,
    [],
    '"yes" already means true',
  );
});

t.test('no lxd section, or no networks in it, plans nothing', async (t) => {
  t.same(planLxd(desired(undefined), observation()).actions, []);
  t.same(planLxd(desired([]), observation(network('get-network-nat-true'))).actions, []);
});

t.test('only networks named in the desired state are planned', async (t) => {
  const observed = observation(
    network('get-network-nat-true'),
    network('get-network-nat-true', { name: 'lxdbr0' }),
  );
  const plan = planLxd(desired([{ name: 'lxdbr0', ipv4Nat: false }]), observed);
  t.same(
    plan.actions.map((action) => action.target),
    ['lxdbr0'],
  );
});

t.test('several networks are planned in the order of the desired state', async (t) => {
  const observed = observation(
    network('get-network-nat-true', { name: 'br-a' }),
    network('get-network-nat-false', { name: 'br-b' }),
    network('get-network-nat-unset', { name: 'br-c' }),
  );
  const plan = planLxd(
    desired([
      { name: 'br-c', ipv4Nat: true },
      { name: 'br-b', ipv4Nat: false },
      { name: 'br-a', ipv4Nat: false },
    ]),
    observed,
  );
  t.same(
    plan.actions.map((action) => `${action.target}=${String(action.ipv4Nat)}`),
    ['br-c=true', 'br-a=false'],
  );
});

t.test('a network LXD does not have is an error naming it, and nothing is planned', async (t) => {
  const observed = observation(network('get-network-nat-true'), { name: 'gone0', found: false });
  const error = thrownBy(() =>
    planLxd(
      desired([
        { name: 'twbr0', ipv4Nat: false },
        { name: 'gone0', ipv4Nat: false },
      ]),
      observed,
    ),
  );
  t.equal(error.code, ErrorCode.lxdNetworkNotFound);
  t.equal(error.message, 'lxd.networks[1]: LXD has no network "gone0"');
});

t.test('an interface LXD does not manage is refused', async (t) => {
  const observed = observation(network('get-network-unmanaged'));
  const error = thrownBy(() => planLxd(desired([{ name: 'site0', ipv4Nat: false }]), observed));
  t.equal(error.code, ErrorCode.lxdNetworkUnsupported);
  t.match(
    error.message,
    'lxd.networks[0]: "site0" is an interface LXD does not manage, so it has no ipv4.nat key',
  );
});

t.test('a network type without ipv4.nat is refused, every problem named at once', async (t) => {
  // Derived from the bridge capture by changing its type; not captured from a macvlan.
  const observed = observation(network('get-network-nat-true', { name: 'mv0', type: 'macvlan' }), {
    name: 'gone0',
    found: false,
  });
  const error = thrownBy(() =>
    planLxd(
      desired([
        { name: 'gone0', ipv4Nat: false },
        { name: 'mv0', ipv4Nat: false },
      ]),
      observed,
    ),
  );
  t.equal(error.code, ErrorCode.lxdNetworkNotFound, 'the first problem gives the code');
  t.match(
    error.message,
    'lxd.networks[0]: LXD has no network "gone0"; ' +
      'lxd.networks[1]: "mv0" is an LXD network of type macvlan',
  );
});

t.test('NAT wanted on a bridge without an IPv4 address is planned with a warning', async (t) => {
  const observed = observation(
    network('get-network-no-ipv4-address', { config: { 'ipv4.nat': undefined } }),
  );
  const plan = planLxd(desired([{ name: 'twbr9', ipv4Nat: true }]), observed);
  t.equal(plan.actions.length, 1);
  t.same(plan.warnings, [
    'lxd.networks[0]: ipv4Nat true has no effect on "twbr9", which has no ipv4.address',
  ]);
  const off = planLxd(desired([{ name: 'twbr9', ipv4Nat: false }]), observed);
  t.same(off.warnings, [], 'no warning when NAT is not wanted');
});

t.test('the error names Incus when Incus answered', async (t) => {
  const observed = observation({ name: 'gone0', found: false });
  observed.server = { ...observed.server, server: 'incus' };
  const error = thrownBy(() => planLxd(desired([{ name: 'gone0', ipv4Nat: false }]), observed));
  t.equal(error.message, 'lxd.networks[0]: Incus has no network "gone0"');
});
