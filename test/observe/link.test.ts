/**
 * The link observer's parsers on real `ip -json` output (test/fixtures/iproute2, captured in a
 * lab site except the VLAN sample, whose origin its README names), and its thin calls against
 * a fake runner that answers with captured output.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ErrorCode, TunnelwardenError } from '../../agent/errors.js';
import type { CommandRunner } from '../../agent/host/exec.js';
import type { FileStore } from '../../agent/host/files.js';
import { DEFAULT_PATHS } from '../../agent/model/paths.js';
import {
  canonicalDestination,
  linkStatePath,
  parseIpAddresses,
  parseIpJsonArray,
  parseIpLinks,
  parseIpRoutes,
  parseLinkState,
  readLink,
  readVlanSupport,
  VLAN_MODULE_SYSFS_PATH,
} from '../../agent/observe/link.js';
import { renderLinkState } from '../../agent/plan/link.js';

const fixtures = path.resolve(import.meta.dirname, '..', 'fixtures', 'iproute2');
const fixture = (name: string) => readFileSync(path.join(fixtures, name), 'utf8');

/** A captured failure: "exit N", then stdout and stderr. */
function capturedFailure(name: string) {
  const text = fixture(name);
  const exitCode = Number(/^exit (\d+)/.exec(text)?.[1]);
  const stderr = text.slice(text.indexOf('stderr:\n') + 'stderr:\n'.length);
  return { exitCode, stdout: '', stderr, durationMs: 1 };
}

function only<T>(items: T[]): T {
  if (items.length !== 1) throw new Error(`expected one item, got ${items.length}`);
  return items[0]!;
}

t.test('a veth whose peer is in another namespace parses with bounds and no parent', async (t) => {
  const link = only(parseIpLinks(fixture('lab-link-veth-transit.json')));
  t.same(link, {
    name: 'transit',
    mtuBytes: 1500,
    minMtuBytes: 68,
    maxMtuBytes: 65535,
    adminUp: true,
    operState: 'UP',
    kind: 'veth',
    parent: undefined,
    vlan: undefined,
  });
});

t.test('a link set down and to MTU 1400 shows both', async (t) => {
  const down = only(parseIpLinks(fixture('lab-link-veth-transit-down.json')));
  t.equal(down.adminUp, false);
  t.equal(down.operState, 'DOWN');
  t.equal(down.mtuBytes, 1400);
  t.equal(only(parseIpLinks(fixture('lab-link-veth-transit-mtu1400.json'))).mtuBytes, 1400);
});

t.test('a bridge parses as kind bridge', async (t) => {
  const bridge = only(parseIpLinks(fixture('lab-link-bridge-site0.json')));
  t.equal(bridge.name, 'site0');
  t.equal(bridge.kind, 'bridge');
  t.equal(bridge.adminUp, true);
  t.equal(bridge.vlan, undefined);
});

t.test('an ifb reporting min_mtu and max_mtu 0 has no MTU bounds', async (t) => {
  const ifb = only(parseIpLinks(fixture('lab-link-ifb-down.json')));
  t.equal(ifb.kind, 'ifb');
  t.equal(ifb.minMtuBytes, undefined);
  t.equal(ifb.maxMtuBytes, undefined);
  t.equal(ifb.adminUp, false);
});

t.test('a macvlan names its lower device as parent but is no VLAN', async (t) => {
  const macvlan = only(parseIpLinks(fixture('lab-link-macvlan-on-transit-mtu1400.json')));
  t.equal(macvlan.parent, 'transit');
  t.equal(macvlan.kind, 'macvlan');
  t.equal(macvlan.mtuBytes, 1400);
  t.equal(macvlan.vlan, undefined);
});

t.test('an 802.1Q VLAN (sample from another project) gives parent, id and protocol', async (t) => {
  const vlan = only(parseIpLinks(`[${fixture('detnetctl-vlan-eth0.5-link.json')}]`));
  t.equal(vlan.name, 'eth0.5');
  t.equal(vlan.kind, 'vlan');
  t.equal(vlan.parent, 'eth0');
  t.same(vlan.vlan, { id: 5, protocol: '802.1Q' });
  t.equal(vlan.minMtuBytes, undefined, 'min_mtu 0 is no bound');
  t.equal(vlan.maxMtuBytes, 65535);
  t.equal(vlan.adminUp, false);
});

t.test('link entries without a name or an MTU are skipped, unknown fields ignored', async (t) => {
  const text = JSON.stringify([
    { ifname: 'x' },
    { mtu: 1500 },
    'garbage',
    { ifname: 'y', mtu: 9000, new_field: {} },
  ]);
  t.same(
    parseIpLinks(text).map((link) => link.name),
    ['y'],
  );
});

t.test('addresses parse in canonical form with family, scope and secondary', async (t) => {
  const addresses = parseIpAddresses(fixture('lab-addr-transit-extra.json'), 'transit');
  t.same(
    addresses.map((address) => address.address),
    [
      '172.16.0.18/24',
      '172.16.9.18/24',
      '172.16.9.30/24',
      '2001:db8:9::18/64',
      'fe80::341a:1bff:feaa:4952/64',
    ],
  );
  t.same(addresses[2], { address: '172.16.9.30/24', family: 4, scope: 'global', secondary: true });
  t.equal(addresses[4]?.scope, 'link');
  t.same(
    parseIpAddresses(fixture('lab-addr-transit-extra.json'), 'other'),
    [],
    'other interfaces filtered out',
  );
});

t.test('IPv4 routes: default, host routes, onlink and metric are normalised', async (t) => {
  const routes = parseIpRoutes(fixture('lab-route-transit.json'), 4);
  t.same(
    routes.map((route) => [route.destination, route.gateway, route.onLink, route.metric]),
    [
      ['0.0.0.0/0', '172.16.0.1', false, 0],
      ['172.16.0.0/24', undefined, false, 0],
      ['172.16.9.0/24', undefined, false, 0],
      ['172.16.50.0/24', '172.16.0.1', true, 0],
      ['172.16.60.0/24', '172.16.9.1', false, 50],
      ['172.16.61.5/32', undefined, false, 0],
    ],
  );
  t.equal(routes[1]?.protocol, 'kernel');
});

t.test('IPv6 routes keep the metric the kernel reports', async (t) => {
  const routes = parseIpRoutes(fixture('lab-route6-transit.json'), 6);
  t.same(
    routes.map((route) => [route.destination, route.gateway, route.metric]),
    [
      ['2001:db8:9::/64', undefined, 256],
      ['2001:db8:50::/48', '2001:db8:9::1', 1024],
      ['fe80::/64', undefined, 256],
    ],
  );
});

t.test('destinations of the other family or malformed are rejected', async (t) => {
  t.equal(canonicalDestination('default', 6), '::/0');
  t.equal(canonicalDestination('2001:db8::1', 4), undefined);
  t.equal(canonicalDestination('10.0.0.0/33', 4), undefined);
});

t.test('output that is not a JSON array is an unsupported iproute2', async (t) => {
  t.same(parseIpJsonArray('', 'ip'), [], 'empty output is an empty list');
  t.same(parseIpJsonArray('[]\n', 'ip'), []);
  for (const text of ['1: lo: <LOOPBACK,UP> mtu 65536', '{"ifname":"x"}']) {
    t.throws(
      () => parseIpLinks(text),
      { code: ErrorCode.ipOutputUnparsable, kind: 'unsupported' },
      text,
    );
  }
});

t.test('the state file round-trips and a broken one reads as empty with a warning', async (t) => {
  const state = {
    interfaces: {
      vlan4000: {
        created: true,
        parent: 'eth0',
        vlanId: 4000,
        address: '172.16.0.18/24',
        routes: [{ destination: '172.16.1.0/24', gateway: '172.16.0.1', onLink: true, metric: 0 }],
      },
    },
  };
  t.same(parseLinkState(renderLinkState(state)), { state, warnings: [] });
  t.same(parseLinkState(undefined), { state: { interfaces: {} }, warnings: [] });
  const broken = parseLinkState('{"interfaces": ');
  t.same(broken.state, { interfaces: {} });
  t.match(broken.warnings, [/not JSON/]);
  t.equal(linkStatePath(DEFAULT_PATHS), '/var/lib/tunnelwarden/links.json');
});

t.test('readLink returns undefined for the captured "does not exist" answer', async (t) => {
  const run: CommandRunner = async () => capturedFailure('lab-link-missing-device.txt');
  t.equal(await readLink(run, 'nope0'), undefined);
});

t.test('readLink throws on any other failure of ip', async (t) => {
  const run: CommandRunner = async () => ({
    exitCode: 255,
    stdout: '',
    stderr: 'RTNETLINK answers: Permission denied',
    durationMs: 1,
  });
  await t.rejects(readLink(run, 'transit'), { code: ErrorCode.commandFailed });
});

function files(existing: Record<string, string>): FileStore {
  return {
    read: async (file) => existing[file],
    mode: async (file) => (file in existing ? 0o755 : undefined),
    write: async () => {
      throw new Error('read-only');
    },
  };
}

t.test('802.1Q is available when /sys/module/8021q exists, without asking modprobe', async (t) => {
  const run: CommandRunner = async () => {
    throw new Error('must not run');
  };
  t.same(await readVlanSupport(run, files({ [VLAN_MODULE_SYSFS_PATH]: '' })), {
    available: true,
    how: 'loaded',
  });
});

t.test('802.1Q is loadable when modprobe -n finds the module', async (t) => {
  const seen: string[][] = [];
  const run: CommandRunner = async (argv) => {
    seen.push([...argv]);
    return { exitCode: 0, stdout: 'insmod /lib/modules/x/8021q.ko\n', stderr: '', durationMs: 1 };
  };
  t.same(await readVlanSupport(run, files({})), { available: true, how: 'loadable' });
  t.same(seen, [['modprobe', '-n', '8021q']]);
});

t.test(
  '802.1Q is unavailable with the captured modprobe answer and the kernel release as cause',
  async (t) => {
    const run: CommandRunner = async () =>
      capturedFailure('lab-modprobe-dry-run-8021q-missing.txt');
    const support = await readVlanSupport(
      run,
      files({ '/proc/sys/kernel/osrelease': '6.18.44-fc-v1252\n' }),
    );
    t.equal(support.available, false);
    t.match(support, { cause: /kernel 6\.18\.44-fc-v1252 .*Module 8021q not found/ });
  },
);

t.test('802.1Q is unavailable when modprobe is not installed', async (t) => {
  const run: CommandRunner = async () => {
    throw new TunnelwardenError(
      'unsupported',
      ErrorCode.commandMissing,
      'modprobe is not installed',
    );
  };
  t.match(await readVlanSupport(run, files({})), {
    available: false,
    cause: /modprobe is not installed/,
  });
});
