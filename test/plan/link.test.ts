/**
 * The link planner: desired transit x observed host -> actions. Links, addresses and routes
 * come from the real captures in test/fixtures/iproute2 where one fits; a few observations are
 * edited copies of them, and each such edit says what it changes.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ErrorCode } from '../../agent/errors.js';
import { loadDesiredState } from '../../agent/model/load.js';
import {
  parseIpAddresses,
  parseIpLinks,
  parseIpRoutes,
  type InterfaceAddress,
  type IpLink,
  type KernelRoute,
  type LinkObservation,
  type LinkState,
  type VlanSupport,
} from '../../agent/observe/link.js';
import { formatAction } from '../../agent/plan/actions.js';
import { planLink, stateAfter, type LinkAction, type Transit } from '../../agent/plan/link.js';

const fixtures = path.resolve(import.meta.dirname, '..', 'fixtures', 'iproute2');
const fixture = (name: string) => readFileSync(path.join(fixtures, name), 'utf8');
const link = (name: string): IpLink => parseIpLinks(fixture(name))[0]!;

const veth = () => link('lab-link-veth-transit.json');
const vethMtu1400 = () => link('lab-link-veth-transit-mtu1400.json');
const vethDown = () => link('lab-link-veth-transit-down.json');
/** The VLAN sample (eth0.5 on eth0, id 5), from another project: see the fixtures README. */
const vlanSample = () => parseIpLinks(`[${fixture('detnetctl-vlan-eth0.5-link.json')}]`)[0]!;
/** The four IPv4 and IPv6 global addresses plus link-local captured on transit. */
const extraAddresses = () => parseIpAddresses(fixture('lab-addr-transit-extra.json'), 'transit');
/** 172.16.0.18/24 only: the harness's address, the first of the capture. */
const harnessAddress = () => extraAddresses().slice(0, 1);
const capturedRoutes = () => parseIpRoutes(fixture('lab-route-transit.json'), 4);
/** The kernel's connected route of the harness's address, the second captured route. */
const connectedRoute = () =>
  capturedRoutes().filter((route) => route.destination === '172.16.0.0/24');

function transit(edit: Partial<Record<keyof Transit, unknown>> = {}): Transit {
  const document = {
    version: 1,
    site: { name: 'lab-a', subnets: ['10.1.0.0/16'] },
    transit: {
      interface: 'transit',
      address: '172.16.9.18/24',
      mtuBytes: 1400,
      routes: [
        { destination: '172.16.50.0/24', gateway: '172.16.0.1', onLink: true },
        { destination: '172.16.60.0/24', gateway: '172.16.9.1', metric: 50 },
      ],
      ...edit,
    },
  };
  for (const [key, value] of Object.entries(edit)) {
    if (value === undefined) delete (document.transit as Record<string, unknown>)[key];
  }
  const result = loadDesiredState(JSON.stringify(document));
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.state.transit!;
}

function observation(
  interfaces: Record<
    string,
    { link?: IpLink; addresses?: InterfaceAddress[]; routes?: KernelRoute[] }
  >,
  extra: { parent?: IpLink; vlanSupport?: VlanSupport; state?: LinkState } = {},
): LinkObservation {
  return {
    interfaces: new Map(
      Object.entries(interfaces).map(([name, seen]) => [
        name,
        { link: seen.link, addresses: seen.addresses ?? [], routes: seen.routes ?? [] },
      ]),
    ),
    parent: extra.parent,
    vlanSupport: extra.vlanSupport,
    state: extra.state ?? { interfaces: {} },
  };
}

const lines = (actions: LinkAction[]) => actions.map(formatAction);

t.test('a managed veth gets MTU, address and both routes, in that order', async (t) => {
  const actions = planLink({
    transit: transit(),
    observed: observation({
      transit: { link: veth(), addresses: harnessAddress(), routes: connectedRoute() },
    }),
  });
  t.same(lines(actions), [
    'link set-mtu transit [1400]: mtu 1500, want 1400',
    'link add-address transit [172.16.9.18/24]: address 172.16.9.18/24 missing',
    'link add-route transit [172.16.50.0/24 via 172.16.0.1 onlink]: route 172.16.50.0/24 missing',
    'link add-route transit [172.16.60.0/24 via 172.16.9.1 metric 50]: route 172.16.60.0/24 missing',
  ]);
  t.same(actions[2], {
    resource: 'link',
    type: 'add-route',
    target: 'transit',
    route: { destination: '172.16.50.0/24', gateway: '172.16.0.1', onLink: true, metric: 0 },
    detail: '[172.16.50.0/24 via 172.16.0.1 onlink]',
    reason: 'route 172.16.50.0/24 missing',
  });
});

t.test(
  'the captured converged link plans nothing, foreign addresses and routes included',
  async (t) => {
    const actions = planLink({
      transit: transit(),
      observed: observation({
        transit: { link: vethMtu1400(), addresses: extraAddresses(), routes: capturedRoutes() },
      }),
    });
    t.same(actions, []);
  },
);

t.test('a link that is down is set up', async (t) => {
  const actions = planLink({
    transit: transit(),
    observed: observation({
      transit: { link: vethDown(), addresses: extraAddresses(), routes: capturedRoutes() },
    }),
  });
  t.same(lines(actions), ['link set-up transit: link is down, want up']);
});

t.test('no mtuBytes leaves the MTU alone', async (t) => {
  const actions = planLink({
    transit: transit({ mtuBytes: undefined }),
    observed: observation({
      transit: { link: veth(), addresses: extraAddresses(), routes: capturedRoutes() },
    }),
  });
  t.same(actions, []);
});

t.test(
  'a route with another gateway or without onlink is replaced, reason saying both',
  async (t) => {
    const actions = planLink({
      transit: transit({
        routes: [
          { destination: '172.16.50.0/24', gateway: '172.16.0.254', onLink: true },
          { destination: '172.16.60.0/24', gateway: '172.16.9.1', onLink: true, metric: 50 },
        ],
      }),
      observed: observation({
        transit: { link: vethMtu1400(), addresses: extraAddresses(), routes: capturedRoutes() },
      }),
    });
    t.same(lines(actions), [
      'link replace-route transit [172.16.50.0/24 via 172.16.0.254 onlink]: route 172.16.50.0/24 via 172.16.0.1 onlink, want 172.16.50.0/24 via 172.16.0.254 onlink',
      'link replace-route transit [172.16.60.0/24 via 172.16.9.1 onlink metric 50]: route 172.16.60.0/24 via 172.16.9.1 metric 50, want 172.16.60.0/24 via 172.16.9.1 onlink metric 50',
    ]);
  },
);

t.test(
  'the same destination with another metric is another route: added, the old one kept',
  async (t) => {
    const actions = planLink({
      transit: transit({
        routes: [{ destination: '172.16.60.0/24', gateway: '172.16.9.1', metric: 60 }],
      }),
      observed: observation({
        transit: { link: vethMtu1400(), addresses: extraAddresses(), routes: capturedRoutes() },
      }),
    });
    t.same(lines(actions), [
      'link add-route transit [172.16.60.0/24 via 172.16.9.1 metric 60]: route 172.16.60.0/24 missing',
    ]);
  },
);

t.test('a foreign address in the desired subnet is never removed', async (t) => {
  // 172.16.9.30/24 was added by hand (captured), 172.16.9.18/24 is desired and not recorded.
  const actions = planLink({
    transit: transit({ address: '172.16.9.40/24' }),
    observed: observation({
      transit: { link: vethMtu1400(), addresses: extraAddresses(), routes: capturedRoutes() },
    }),
  });
  t.same(lines(actions), [
    'link add-address transit [172.16.9.40/24]: address 172.16.9.40/24 missing',
  ]);
});

const recorded = (
  entry: Partial<LinkState['interfaces'][string]>,
  name = 'transit',
): LinkState => ({
  interfaces: { [name]: { created: false, routes: [], ...entry } },
});

t.test(
  'the previous desired address in another subnet goes after the new one is added',
  async (t) => {
    const actions = planLink({
      transit: transit({ address: '172.16.10.18/24', routes: [] }),
      observed: observation(
        { transit: { link: vethMtu1400(), addresses: extraAddresses(), routes: capturedRoutes() } },
        { state: recorded({ address: '172.16.9.18/24' }) },
      ),
    });
    t.same(lines(actions), [
      'link add-address transit [172.16.10.18/24]: address 172.16.10.18/24 missing',
      'link remove-address transit [172.16.9.18/24]: address 172.16.9.18/24 was the desired address, want 172.16.10.18/24',
    ]);
  },
);

t.test(
  'the previous desired address in the same subnet goes first, so the new one is primary',
  async (t) => {
    const actions = planLink({
      transit: transit({ address: '172.16.9.19/24' }),
      observed: observation(
        { transit: { link: vethMtu1400(), addresses: extraAddresses(), routes: capturedRoutes() } },
        { state: recorded({ address: '172.16.9.18/24' }) },
      ),
    });
    t.same(
      actions.map((action) => action.type),
      ['remove-address', 'add-address'],
      'routes stay: other IPv4 addresses remain on the link',
    );
  },
);

t.test(
  'removing the last IPv4 address re-adds the IPv4 routes the kernel will flush',
  async (t) => {
    const onlyOurs = extraAddresses().filter((address) => address.address === '172.16.9.18/24');
    const actions = planLink({
      transit: transit({ address: '172.16.9.19/24' }),
      observed: observation(
        { transit: { link: vethMtu1400(), addresses: onlyOurs, routes: capturedRoutes() } },
        { state: recorded({ address: '172.16.9.18/24' }) },
      ),
    });
    t.same(lines(actions).slice(2), [
      'link add-route transit [172.16.50.0/24 via 172.16.0.1 onlink]: route 172.16.50.0/24 is flushed when the last IPv4 address goes',
      'link add-route transit [172.16.60.0/24 via 172.16.9.1 metric 50]: route 172.16.60.0/24 is flushed when the last IPv4 address goes',
    ]);
  },
);

t.test('a route we added and no longer want is deleted; a foreign one stays', async (t) => {
  const ours = { destination: '172.16.61.5/32', onLink: false, metric: 0 };
  const actions = planLink({
    transit: transit(),
    observed: observation(
      { transit: { link: vethMtu1400(), addresses: extraAddresses(), routes: capturedRoutes() } },
      { state: recorded({ routes: [ours] }) },
    ),
  });
  t.same(lines(actions), [
    'link delete-route transit [172.16.61.5/32]: route 172.16.61.5/32 added by tunnelwarden, no longer desired',
  ]);
});

t.test('a recorded route that someone re-pointed elsewhere is not ours to delete', async (t) => {
  const actions = planLink({
    transit: transit(),
    observed: observation(
      { transit: { link: vethMtu1400(), addresses: extraAddresses(), routes: capturedRoutes() } },
      {
        state: recorded({
          routes: [{ destination: '0.0.0.0/0', gateway: '172.16.9.1', onLink: false, metric: 0 }],
        }),
      },
    ),
  });
  t.same(actions, [], 'the captured default route goes via 172.16.0.1');
});

t.test(
  'without a transit section, a managed interface loses only our address and routes',
  async (t) => {
    const state = recorded({
      address: '172.16.9.18/24',
      routes: [
        { destination: '172.16.50.0/24', gateway: '172.16.0.1', onLink: true, metric: 0 },
        { destination: '172.16.70.0/24', gateway: '172.16.0.1', onLink: true, metric: 0 },
      ],
    });
    const actions = planLink({
      transit: undefined,
      observed: observation(
        { transit: { link: vethMtu1400(), addresses: extraAddresses(), routes: capturedRoutes() } },
        { state },
      ),
    });
    t.same(lines(actions), [
      'link remove-address transit [172.16.9.18/24]: address 172.16.9.18/24 set by tunnelwarden, interface no longer desired',
      'link delete-route transit [172.16.50.0/24 via 172.16.0.1 onlink]: route 172.16.50.0/24 added by tunnelwarden, no longer desired',
    ]);
  },
);

t.test(
  'without a transit section, a VLAN we created is deleted, one we did not is kept',
  async (t) => {
    const ours = planLink({
      transit: undefined,
      observed: observation(
        { 'eth0.5': { link: vlanSample() } },
        { state: recorded({ created: true, parent: 'eth0', vlanId: 5 }, 'eth0.5') },
      ),
    });
    t.same(lines(ours), ['link delete-vlan eth0.5: created by tunnelwarden, no longer desired']);

    const otherId = planLink({
      transit: undefined,
      observed: observation(
        { 'eth0.5': { link: vlanSample() } },
        { state: recorded({ created: true, parent: 'eth0', vlanId: 6 }, 'eth0.5') },
      ),
    });
    t.same(otherId, [], 'a VLAN with another id under our old name is not the one we made');
  },
);

t.test('a renamed transit releases the old interface before setting up the new one', async (t) => {
  const actions = planLink({
    transit: transit({ interface: 'transit', address: '172.16.0.18/24', routes: [] }),
    observed: observation(
      {
        transit: { link: vethMtu1400(), addresses: harnessAddress() },
        'eth0.5': { link: vlanSample() },
      },
      { state: recorded({ created: true, parent: 'eth0', vlanId: 5 }, 'eth0.5') },
    ),
  });
  t.same(lines(actions), ['link delete-vlan eth0.5: created by tunnelwarden, no longer desired']);
});

const vlanTransit = (edit: Partial<Record<keyof Transit, unknown>> = {}) =>
  transit({ interface: 'vlan4000', parent: 'transit', vlanId: 4000, mtuBytes: 1400, ...edit });

t.test('a missing VLAN is created on its parent, then MTU, up, address and routes', async (t) => {
  const actions = planLink({
    transit: vlanTransit(),
    observed: observation(
      { vlan4000: {} },
      { parent: veth(), vlanSupport: { available: true, how: 'loadable' } },
    ),
  });
  t.same(lines(actions), [
    'link create-vlan vlan4000 [VLAN 4000 on transit]: interface missing',
    'link set-mtu vlan4000 [1400]: mtu 1500, want 1400',
    'link set-up vlan4000: a new interface starts down, want up',
    'link add-address vlan4000 [172.16.9.18/24]: address 172.16.9.18/24 wanted on the new interface',
    'link add-route vlan4000 [172.16.50.0/24 via 172.16.0.1 onlink]: route 172.16.50.0/24 missing',
    'link add-route vlan4000 [172.16.60.0/24 via 172.16.9.1 metric 50]: route 172.16.60.0/24 missing',
  ]);
  t.match(actions[0], { type: 'create-vlan', parent: 'transit', vlanId: 4000 });
});

t.test('a VLAN whose MTU equals its parent gets no set-mtu', async (t) => {
  const actions = planLink({
    transit: vlanTransit({ mtuBytes: 1400 }),
    observed: observation(
      { vlan4000: {} },
      { parent: vethMtu1400(), vlanSupport: { available: true, how: 'loaded' } },
    ),
  });
  t.notOk(actions.some((action) => action.type === 'set-mtu'));
});

t.test(
  'an existing matching VLAN is managed like any interface, created by us or not',
  async (t) => {
    const actions = planLink({
      transit: transit({
        interface: 'eth0.5',
        parent: 'eth0',
        vlanId: 5,
        mtuBytes: 1500,
        routes: [],
      }),
      observed: observation(
        { 'eth0.5': { link: vlanSample() } },
        { parent: { ...veth(), name: 'eth0' } },
      ),
    });
    t.same(lines(actions), [
      'link set-up eth0.5: link is down, want up',
      'link add-address eth0.5 [172.16.9.18/24]: address 172.16.9.18/24 missing',
    ]);
  },
);

t.test('our VLAN with another id is deleted and created again', async (t) => {
  const actions = planLink({
    transit: transit({
      interface: 'eth0.5',
      parent: 'eth0',
      vlanId: 7,
      mtuBytes: undefined,
      routes: [],
    }),
    observed: observation(
      { 'eth0.5': { link: vlanSample() } },
      {
        parent: { ...veth(), name: 'eth0' },
        vlanSupport: { available: true, how: 'loaded' },
        state: recorded({ created: true, parent: 'eth0', vlanId: 5 }, 'eth0.5'),
      },
    ),
  });
  t.same(lines(actions).slice(0, 2), [
    'link delete-vlan eth0.5: is VLAN 5 on eth0, want VLAN 7 on eth0',
    'link create-vlan eth0.5 [VLAN 7 on eth0]: recreated with the desired parent and id',
  ]);
});

t.test('bad input on the host throws before any action, releases included', async (t) => {
  const release = recorded({ created: true, parent: 'eth0', vlanId: 5 }, 'eth0.5');
  const withRelease = { 'eth0.5': { link: vlanSample() } };
  const cases: [string, () => LinkAction[], object, RegExp][] = [
    [
      'parent missing',
      () =>
        planLink({
          transit: vlanTransit(),
          observed: observation({ vlan4000: {}, ...withRelease }, { state: release }),
        }),
      { kind: 'invalid-config', code: ErrorCode.linkParentMissing },
      /transit: parent interface transit of VLAN vlan4000 does not exist/,
    ],
    [
      'MTU above the parent',
      () =>
        planLink({
          transit: vlanTransit({ mtuBytes: 1500 }),
          observed: observation(
            { vlan4000: {} },
            { parent: vethMtu1400(), vlanSupport: { available: true, how: 'loaded' } },
          ),
        }),
      { kind: 'invalid-config', code: ErrorCode.linkMtuOutOfRange },
      /mtuBytes 1500 is above the MTU 1400 of parent transit/,
    ],
    [
      'kernel without 802.1Q',
      () =>
        planLink({
          transit: vlanTransit(),
          observed: observation(
            { vlan4000: {}, ...withRelease },
            {
              parent: veth(),
              vlanSupport: { available: false, cause: '/sys/module/8021q is absent' },
              state: release,
            },
          ),
        }),
      { kind: 'unsupported', code: ErrorCode.unsupportedKernel },
      /kernel lacks 802\.1Q \(module 8021q not available\), so VLAN vlan4000 cannot be created: \/sys\/module\/8021q is absent/,
    ],
    [
      'a foreign interface where the VLAN should be',
      () =>
        planLink({
          transit: vlanTransit(),
          observed: observation(
            { vlan4000: { link: { ...veth(), name: 'vlan4000' } } },
            { parent: veth() },
          ),
        }),
      { kind: 'invalid-config', code: ErrorCode.linkConflict },
      /vlan4000 exists as a veth interface, not VLAN 4000 on transit, and tunnelwarden did not create it/,
    ],
    [
      'a managed interface that does not exist',
      () => planLink({ transit: transit(), observed: observation({ transit: {} }) }),
      { kind: 'invalid-config', code: ErrorCode.linkInterfaceMissing },
      /interface transit does not exist/,
    ],
    [
      // Edited copy: a NIC whose driver caps the MTU at 1500 (max_mtu 1500), as many do.
      'MTU above the link max_mtu',
      () =>
        planLink({
          transit: transit({ mtuBytes: 9000 }),
          observed: observation({ transit: { link: { ...veth(), maxMtuBytes: 1500 } } }),
        }),
      { kind: 'invalid-config', code: ErrorCode.linkMtuOutOfRange },
      /mtuBytes 9000 is outside what transit accepts \(min_mtu 68, max_mtu 1500\)/,
    ],
    [
      // Edited copy: a device with min_mtu 1280 (IPv6-only tunnels report this).
      'MTU below the link min_mtu',
      () =>
        planLink({
          transit: transit({ mtuBytes: 1000 }),
          observed: observation({ transit: { link: { ...veth(), minMtuBytes: 1280 } } }),
        }),
      { kind: 'invalid-config', code: ErrorCode.linkMtuOutOfRange },
      /outside what transit accepts \(min_mtu 1280, max_mtu 65535\)/,
    ],
  ];
  for (const [name, plan, shape, message] of cases) {
    t.throws(plan, { ...shape, message }, name);
  }
});

t.test('stateAfter records claims and releases and drops empty entries', async (t) => {
  const empty: LinkState = { interfaces: {} };
  const route = { destination: '172.16.50.0/24', gateway: '172.16.0.1', onLink: true, metric: 0 };
  const base = { resource: 'link' as const, reason: 'test' };
  let state = stateAfter(empty, {
    ...base,
    type: 'create-vlan',
    target: 'vlan4000',
    parent: 'eth0',
    vlanId: 4000,
  });
  state = stateAfter(state, {
    ...base,
    type: 'add-address',
    target: 'vlan4000',
    address: '172.16.9.18/24',
  });
  state = stateAfter(state, { ...base, type: 'add-route', target: 'vlan4000', route });
  state = stateAfter(state, {
    ...base,
    type: 'replace-route',
    target: 'vlan4000',
    route: { ...route, gateway: '172.16.0.2' },
  });
  t.same(state, {
    interfaces: {
      vlan4000: {
        created: true,
        parent: 'eth0',
        vlanId: 4000,
        address: '172.16.9.18/24',
        routes: [{ ...route, gateway: '172.16.0.2' }],
      },
    },
  });
  t.same(empty, { interfaces: {} }, 'the input is not mutated');
  t.equal(
    stateAfter(state, { ...base, type: 'set-mtu', target: 'vlan4000', mtuBytes: 1400 }),
    state,
  );
  t.same(stateAfter(state, { ...base, type: 'delete-vlan', target: 'vlan4000' }), {
    interfaces: {},
  });

  let managed = stateAfter(empty, {
    ...base,
    type: 'add-address',
    target: 'transit',
    address: '172.16.9.18/24',
  });
  managed = stateAfter(managed, {
    ...base,
    type: 'remove-address',
    target: 'transit',
    address: '172.16.9.99/24',
  });
  t.equal(
    managed.interfaces.transit?.address,
    '172.16.9.18/24',
    'removing another address keeps ours',
  );
  managed = stateAfter(managed, {
    ...base,
    type: 'remove-address',
    target: 'transit',
    address: '172.16.9.18/24',
  });
  t.same(managed, { interfaces: {} }, 'an entry owning nothing is dropped');
});
