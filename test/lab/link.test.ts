/**
 * Lab: `tunnelwarden apply` manages the transit link of a real site. On the lab's `transit`
 * veth (no VLAN) it sets the MTU, an extra address and an on-link route, heals drift made by
 * hand, takes no action when converged, never touches addresses or routes added by hand,
 * replaces its own previous address, and rejects bad input without changing anything. The
 * VLAN part creates and deletes a real 802.1Q interface where the kernel has 8021q, and is
 * skipped (with the reason) where it has not.
 *
 * The desired states have no ipsec section: strongSwan need not run for this test.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { parseIpAddresses, parseIpLinks, parseIpRoutes } from '../../agent/observe/link.js';
import { Lab, labSkipReason, REPO_ROOT, type Site } from './harness.js';

const skip = labSkipReason();
const CLI = path.join(REPO_ROOT, 'dist', 'agent', 'cli', 'bin.js');
const STATE_FILE = '/var/lib/tunnelwarden/links.json';
const NO_ACTION = 'No action: the host already matches the desired state.';
const EXIT_FAILED = 4;

/** Why the VLAN part cannot run here, or false when the kernel has (or loads) 802.1Q. */
function vlanSkipReason(): string | false {
  if (skip !== undefined) return skip;
  if (existsSync('/sys/module/8021q')) return false;
  const probe = spawnSync('modprobe', ['8021q'], { encoding: 'utf8' });
  if (probe.status === 0 && existsSync('/sys/module/8021q')) return false;
  const said = probe.error?.message ?? probe.stderr.trim();
  return `kernel lacks 802.1Q: /sys/module/8021q is absent and modprobe 8021q failed (${said})`;
}
const vlanSkip = vlanSkipReason();

type Desired = Record<string, any>;

function desiredWith(transit: Desired | undefined): Desired {
  return {
    version: 1,
    site: { name: 'lab-a', subnets: ['10.1.0.0/16'] },
    ...(transit === undefined ? {} : { transit }),
  };
}

async function apply(site: Site, file: string, desired: Desired) {
  await writeFile(file, JSON.stringify(desired, null, 2));
  return site.exec(['node', CLI, 'apply', file], { timeoutMs: 60_000 });
}

async function linkOf(site: Site, name = 'transit') {
  const result = await site.execOk(['ip', '-json', '-details', 'link', 'show', 'dev', name]);
  return parseIpLinks(result.stdout)[0]!;
}

async function addressesOf(site: Site, name = 'transit') {
  const result = await site.execOk(['ip', '-json', 'addr', 'show', 'dev', name]);
  return parseIpAddresses(result.stdout, name)
    .filter((address) => address.scope === 'global')
    .map((address) => address.address)
    .sort();
}

async function routesOf(site: Site, name = 'transit') {
  const result = await site.execOk(['ip', '-json', '-4', 'route', 'show', 'dev', name]);
  return parseIpRoutes(result.stdout, 4)
    .filter((route) => route.protocol !== 'kernel')
    .map(
      (route) =>
        `${route.destination} via ${route.gateway}${route.onLink ? ' onlink' : ''} metric ${route.metric}`,
    )
    .sort();
}

async function stateFile(site: Site): Promise<string | undefined> {
  return (await site.exists(STATE_FILE)) ? site.readFile(STATE_FILE) : undefined;
}

/** Everything the link resource could change, to prove that a refused apply changed nothing. */
async function snapshot(site: Site) {
  const links = parseIpLinks(
    (await site.execOk(['ip', '-json', '-details', 'link', 'show'])).stdout,
  );
  return {
    links: links.map(
      (link) => `${link.name} ${link.kind} mtu ${link.mtuBytes} ${link.adminUp ? 'up' : 'down'}`,
    ),
    addresses: await addressesOf(site),
    routes: await routesOf(site),
    state: await stateFile(site),
  };
}

t.test('apply manages the transit link of a lab site', { skip }, async (t) => {
  const lab = await Lab.create({
    prefix: 'twl',
    sites: [{ name: 'A', transitAddress: '172.16.0.18/24', subnetAddress: '10.1.0.1/16' }],
  });
  t.teardown(() => lab.destroy());
  const a = lab.site('A');
  const work = path.join(lab.dir, 'desired');
  await mkdir(work, { recursive: true });
  const file = path.join(work, 'link-a.json');
  const transit: Desired = {
    interface: 'transit',
    address: '172.16.9.18/24',
    mtuBytes: 1400,
    routes: [
      { destination: '172.16.50.0/24', gateway: '172.16.0.1', onLink: true },
      { destination: '172.16.60.0/24', gateway: '172.16.9.1', metric: 50 },
    ],
  };

  await t.test('the first apply sets MTU, the extra address and the routes', async (t) => {
    const result = await apply(a, file, desiredWith(transit));
    t.equal(result.code, 0, result.stdout + result.stderr);
    t.comment(`apply printed:\n${result.stdout}`);
    t.match(result.stdout, 'applied 1. link set-mtu transit [1400]: mtu 1500, want 1400');
    t.match(
      result.stdout,
      'link add-address transit [172.16.9.18/24]: address 172.16.9.18/24 missing',
    );
    t.match(result.stdout, 'link add-route transit [172.16.50.0/24 via 172.16.0.1 onlink]');

    t.equal((await linkOf(a)).mtuBytes, 1400, 'MTU is 1400');
    t.same(
      await addressesOf(a),
      ['172.16.0.18/24', '172.16.9.18/24'],
      'harness address kept, ours added',
    );
    t.same(await routesOf(a), [
      '172.16.50.0/24 via 172.16.0.1 onlink metric 0',
      '172.16.60.0/24 via 172.16.9.1 metric 50',
    ]);
    const state = JSON.parse((await stateFile(a)) ?? '{}');
    t.match(state, { interfaces: { transit: { created: false, address: '172.16.9.18/24' } } });
    t.equal(state.interfaces.transit.routes.length, 2, 'both routes recorded as ours');
  });

  await t.test('a second apply takes no action', async (t) => {
    const result = await apply(a, file, desiredWith(transit));
    t.equal(result.code, 0, result.stderr);
    t.equal(result.stdout.trim(), NO_ACTION);
  });

  await t.test('an MTU changed and an address deleted by hand are restored', async (t) => {
    await a.execOk(['ip', 'link', 'set', 'dev', 'transit', 'mtu', '1500']);
    await a.execOk(['ip', 'addr', 'del', '172.16.9.18/24', 'dev', 'transit']);
    const result = await apply(a, file, desiredWith(transit));
    t.equal(result.code, 0, result.stdout + result.stderr);
    t.match(result.stdout, 'link set-mtu transit [1400]: mtu 1500, want 1400');
    t.match(
      result.stdout,
      'link add-address transit [172.16.9.18/24]: address 172.16.9.18/24 missing',
    );
    t.equal((await linkOf(a)).mtuBytes, 1400);
    t.same(await addressesOf(a), ['172.16.0.18/24', '172.16.9.18/24']);
    t.same((await routesOf(a)).length, 2, 'routes in place after the heal');
    const again = await apply(a, file, desiredWith(transit));
    t.equal(again.stdout.trim(), NO_ACTION, 'converged after the heal');
  });

  await t.test('an address and a route added by hand are left alone', async (t) => {
    await a.execOk(['ip', 'addr', 'add', '172.16.8.5/24', 'dev', 'transit']);
    await a.execOk(['ip', 'route', 'add', '172.16.70.0/24', 'via', '172.16.0.1', 'dev', 'transit']);
    const result = await apply(a, file, desiredWith(transit));
    t.equal(result.stdout.trim(), NO_ACTION, result.stderr);
    t.same(await addressesOf(a), ['172.16.0.18/24', '172.16.8.5/24', '172.16.9.18/24']);
    t.ok(
      (await routesOf(a)).includes('172.16.70.0/24 via 172.16.0.1 metric 0'),
      'foreign route kept',
    );
  });

  await t.test(
    'a new desired address replaces ours; a route dropped from the desired state goes',
    async (t) => {
      transit.address = '172.16.9.19/24';
      transit.routes = [transit.routes[0]];
      const result = await apply(a, file, desiredWith(transit));
      t.equal(result.code, 0, result.stdout + result.stderr);
      t.comment(`apply printed:\n${result.stdout}`);
      t.match(
        result.stdout,
        'link remove-address transit [172.16.9.18/24]: address 172.16.9.18/24 was the desired address, want 172.16.9.19/24',
      );
      t.match(result.stdout, 'link delete-route transit [172.16.60.0/24 via 172.16.9.1 metric 50]');
      t.same(await addressesOf(a), ['172.16.0.18/24', '172.16.8.5/24', '172.16.9.19/24']);
      t.same(await routesOf(a), [
        '172.16.50.0/24 via 172.16.0.1 onlink metric 0',
        '172.16.70.0/24 via 172.16.0.1 metric 0',
      ]);
      t.equal((await apply(a, file, desiredWith(transit))).stdout.trim(), NO_ACTION);
    },
  );

  await t.test('bad input on the host is refused and changes nothing', async (t) => {
    const before = await snapshot(a);
    const cases: [string, Desired, RegExp][] = [
      [
        'parent missing',
        { interface: 'twv100', parent: 'nope0', vlanId: 100, address: '172.16.100.18/24' },
        /link: transit: parent interface nope0 of VLAN twv100 does not exist \[TW_LINK_PARENT_MISSING\]/,
      ],
      [
        'MTU above the parent',
        {
          interface: 'twv100',
          parent: 'transit',
          vlanId: 100,
          address: '172.16.100.18/24',
          mtuBytes: 1500,
        },
        /link: transit: mtuBytes 1500 is above the MTU 1400 of parent transit.*\[TW_LINK_MTU_OUT_OF_RANGE\]/,
      ],
      [
        'managed interface missing',
        { interface: 'nope0', address: '172.16.100.18/24' },
        /link: transit: interface nope0 does not exist.*\[TW_LINK_INTERFACE_MISSING\]/,
      ],
    ];
    if (vlanSkip !== false) {
      cases.push([
        'kernel without 802.1Q',
        { interface: 'twv100', parent: 'transit', vlanId: 100, address: '172.16.100.18/24' },
        /link: transit: kernel lacks 802\.1Q \(module 8021q not available\), so VLAN twv100 cannot be created: .*\[TW_UNSUPPORTED_KERNEL\]/,
      ]);
    }
    for (const [name, bad, message] of cases) {
      const result = await apply(a, file, desiredWith(bad));
      t.equal(result.code, EXIT_FAILED, `${name}: exit 4`);
      t.match(result.stderr, message, name);
      t.same(
        await snapshot(a),
        before,
        `${name}: links, addresses, routes and state file unchanged`,
      );
    }
  });

  await t.test('removing the transit section removes only what we added', async (t) => {
    const result = await apply(a, file, desiredWith(undefined));
    t.equal(result.code, 0, result.stdout + result.stderr);
    t.comment(`apply printed:\n${result.stdout}`);
    t.same(
      await addressesOf(a),
      ['172.16.0.18/24', '172.16.8.5/24'],
      'our address gone, foreign ones kept',
    );
    t.same(
      await routesOf(a),
      ['172.16.70.0/24 via 172.16.0.1 metric 0'],
      'our route gone, foreign one kept',
    );
    t.ok(
      existsSync(`/run/netns/${a.netns}`) && (await linkOf(a)).kind === 'veth',
      'the veth itself stays',
    );
    t.same(
      JSON.parse((await stateFile(a)) ?? '{}').interfaces,
      {},
      'nothing left in the state file',
    );
    t.equal((await apply(a, file, desiredWith(undefined))).stdout.trim(), NO_ACTION);
  });

  await t.test(
    'a VLAN is created, healed and deleted, a hand-made one kept',
    { skip: vlanSkip },
    async (t) => {
      const vlan: Desired = {
        interface: 'twv100',
        parent: 'transit',
        vlanId: 100,
        address: '172.16.100.18/24',
        mtuBytes: 1300,
        routes: [{ destination: '172.16.150.0/24', gateway: '172.16.0.1', onLink: true }],
      };
      await a.execOk([
        'ip',
        'link',
        'add',
        'link',
        'transit',
        'name',
        'twv200',
        'type',
        'vlan',
        'id',
        '200',
      ]);
      const result = await apply(a, file, desiredWith(vlan));
      t.equal(result.code, 0, result.stdout + result.stderr);
      t.match(result.stdout, 'link create-vlan twv100 [VLAN 100 on transit]: interface missing');
      const created = await linkOf(a, 'twv100');
      t.match(created, {
        kind: 'vlan',
        parent: 'transit',
        vlan: { id: 100, protocol: '802.1Q' },
        mtuBytes: 1300,
        adminUp: true,
      });
      t.same(await addressesOf(a, 'twv100'), ['172.16.100.18/24']);
      t.same(await routesOf(a, 'twv100'), ['172.16.150.0/24 via 172.16.0.1 onlink metric 0']);
      t.equal((await apply(a, file, desiredWith(vlan))).stdout.trim(), NO_ACTION);

      await a.execOk(['ip', 'addr', 'del', '172.16.100.18/24', 'dev', 'twv100']);
      const healed = await apply(a, file, desiredWith(vlan));
      t.match(
        healed.stdout,
        'link add-address twv100 [172.16.100.18/24]: address 172.16.100.18/24 missing',
      );

      const removed = await apply(a, file, desiredWith(undefined));
      t.equal(removed.code, 0, removed.stdout + removed.stderr);
      t.match(
        removed.stdout,
        'link delete-vlan twv100: created by tunnelwarden, no longer desired',
      );
      t.equal((await a.exec(['ip', 'link', 'show', 'dev', 'twv100'])).code, 1, 'our VLAN is gone');
      t.equal((await linkOf(a, 'twv200')).kind, 'vlan', 'the hand-made VLAN stays');
    },
  );
});
