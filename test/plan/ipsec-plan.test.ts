/**
 * The ipsec planner: desired state x observed host -> actions, on hand-built observations of
 * the situations the lab produces (nothing installed, fresh host, converged, drifted).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { loadDesiredState } from '../../agent/model/load.js';
import { DEFAULT_PATHS } from '../../agent/model/paths.js';
import type { DesiredState } from '../../agent/model/schema.js';
import type { IpsecObservation } from '../../agent/observe/ipsec.js';
import { includeLine } from '../../agent/observe/ipsec.js';
import { parseStrokeStatus } from '../../agent/observe/parse/stroke.js';
import type { IkeSa, StrongswanStatus } from '../../agent/observe/parse/types.js';
import { connSections, ikeSasByConn, planIpsec } from '../../agent/plan/ipsec.js';
import { renderIpsecConf } from '../../agent/plan/ipsec-render.js';

const repo = path.resolve(import.meta.dirname, '..', '..');
const SECRETS_SHA = 'a'.repeat(64);

function example(name: string, edit: (document: any) => void = () => {}): DesiredState {
  const document = JSON.parse(readFileSync(path.join(repo, 'config', name), 'utf8'));
  edit(document);
  const result = loadDesiredState(JSON.stringify(document));
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.state;
}

function emptyStatus(): StrongswanStatus {
  return { plugins: [], listeningAddresses: [], connections: [], routed: [], ikeSas: [] };
}

/** What the host looks like once site A's desired state is applied and the tunnel is up. */
function convergedA(desired: DesiredState): IpsecObservation {
  const status = emptyStatus();
  status.connections.push({
    name: 'a-to-b',
    localAddress: '172.16.0.18',
    remoteAddress: '172.16.0.2',
    children: [{ name: 'a-to-b', localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'] }],
  });
  status.ikeSas.push(ikeSa(1, 'ESTABLISHED', ['10.1.0.0/16']));
  return {
    installed: true,
    ourConf: renderIpsecConf(desired),
    ourSecretsSha256: SECRETS_SHA,
    ourSecretsMode: 0o600,
    ipsecConfIncludesOurs: true,
    ipsecSecretsIncludesOurs: true,
    charonRunning: true,
    status,
  };
}

function ikeSa(uniqueId: number, state: IkeSa['state'], localTs: string[]): IkeSa {
  return {
    conn: 'a-to-b',
    uniqueId,
    state,
    children:
      state === 'ESTABLISHED'
        ? [{ conn: 'a-to-b', uniqueId, state: 'INSTALLED', udpEncap: true, localTs, remoteTs: ['10.2.0.0/16'] }]
        : [],
  };
}

function plan(desired: DesiredState, observed: IpsecObservation) {
  return planIpsec({
    desired,
    observed,
    paths: DEFAULT_PATHS,
    renderedConf: renderIpsecConf(desired),
    renderedSecretsSha256: SECRETS_SHA,
    renderedSecretsEntries: 1,
  });
}

const kinds = (actions: { type: string; target: string }[]) =>
  actions.map((action) => `${action.type} ${action.target}`);

t.test('a converged host plans nothing', async (t) => {
  const desired = example('site-a.json');
  t.same(plan(desired, convergedA(desired)), []);
});

t.test('a fresh host gets files, includes, a started charon and an initiation, in order', async (t) => {
  const desired = example('site-a.json');
  const observed: IpsecObservation = {
    ...convergedA(desired),
    ourConf: undefined,
    ourSecretsSha256: undefined,
    ourSecretsMode: undefined,
    ipsecConfIncludesOurs: false,
    ipsecSecretsIncludesOurs: false,
    charonRunning: false,
    status: emptyStatus(),
  };
  const actions = plan(desired, observed);
  t.same(kinds(actions), [
    'ensure-include /etc/ipsec.conf',
    'ensure-include /etc/ipsec.secrets',
    'write-secrets /etc/ipsec.d/tunnelwarden.secrets',
    'write-conf /etc/ipsec.d/tunnelwarden.conf',
    'start-strongswan charon',
    'initiate a-to-b',
  ]);
  t.equal((actions[0] as { line: string }).line, includeLine('/etc/ipsec.d/tunnelwarden.conf'));
  t.same((actions[3] as { changes: unknown }).changes, { added: ['a-to-b'], changed: [], removed: [] });
});

t.test('nothing desired and nothing of ours on the host plans nothing, even without strongSwan', async (t) => {
  const desired = example('site-a.json', (document) => delete document.ipsec);
  const observed = { ...convergedA(desired), installed: false, ourConf: undefined, charonRunning: false };
  t.same(plan(desired, observed), []);
});

t.test('strongSwan missing while conns are desired is an unsupported error', async (t) => {
  const desired = example('site-a.json');
  const observed = { ...convergedA(desired), installed: false, charonRunning: false };
  t.throws(() => plan(desired, observed), { code: 'TW_STRONGSWAN_MISSING' });
});

t.test('the responder side never initiates', async (t) => {
  const desired = example('site-b.json');
  const observed: IpsecObservation = {
    ...convergedA(desired),
    ourConf: renderIpsecConf(desired),
    status: {
      ...emptyStatus(),
      connections: [
        {
          name: 'b-to-a',
          localAddress: '172.16.0.2',
          remoteAddress: '172.16.0.18',
          children: [{ name: 'b-to-a', localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] }],
        },
      ],
    },
  };
  t.same(plan(desired, observed), []);
});

t.test('a hand edit of our conf file is rewritten and reloaded', async (t) => {
  const desired = example('site-a.json');
  const observed = convergedA(desired);
  observed.ourConf = observed.ourConf!.replace('dpddelay=30s', 'dpddelay=300s');
  const actions = plan(desired, observed);
  t.same(kinds(actions), [
    'write-conf /etc/ipsec.d/tunnelwarden.conf',
    'reload-conns charon',
    'terminate a-to-b',
    'initiate a-to-b',
  ]);
});

t.test('changed secrets are rewritten and reread, without touching the SAs', async (t) => {
  const desired = example('site-a.json');
  const observed = { ...convergedA(desired), ourSecretsSha256: 'b'.repeat(64) };
  t.same(kinds(plan(desired, observed)), [
    'write-secrets /etc/ipsec.d/tunnelwarden.secrets',
    'reread-secrets charon',
  ]);
});

t.test('a secrets file readable by others is rewritten 0600', async (t) => {
  const desired = example('site-a.json');
  const actions = plan(desired, { ...convergedA(desired), ourSecretsMode: 0o644 });
  t.equal(actions[0]?.type, 'write-secrets');
  t.match(actions[0]?.reason, /mode 644/);
});

t.test('a conn charon lost is reloaded and initiated', async (t) => {
  const desired = example('site-a.json');
  const observed = convergedA(desired);
  observed.status = emptyStatus();
  t.same(kinds(plan(desired, observed)), ['reload-conns charon', 'initiate a-to-b']);
});

t.test('a conn loaded with stale traffic selectors is reloaded', async (t) => {
  const desired = example('site-a.json');
  const observed = convergedA(desired);
  observed.status.connections[0]!.children[0]!.remoteTs = ['10.9.0.0/16'];
  const actions = plan(desired, observed);
  t.equal(actions[0]?.type, 'reload-conns');
  t.match(actions[0]?.reason, /a-to-b loaded with traffic selectors 10\.1\.0\.0\/16 === 10\.9\.0\.0\/16/);
});

t.test('a new local subnet re-establishes the CHILD_SA of an initiated conn', async (t) => {
  const before = example('site-a.json');
  const after = example('site-a.json', (document) =>
    document.ipsec.connections[0].local.subnets.push('10.11.0.0/16'),
  );
  const observed = convergedA(before);
  const actions = plan(after, observed);
  t.same(kinds(actions), [
    'write-conf /etc/ipsec.d/tunnelwarden.conf',
    'reload-conns charon',
    'terminate a-to-b',
    'initiate a-to-b',
  ]);
  t.same((actions[0] as { changes: unknown }).changes, { added: [], changed: ['a-to-b'], removed: [] });
});

t.test('a CHILD_SA with old selectors and an unchanged file is re-established', async (t) => {
  const desired = example('site-a.json');
  const observed = convergedA(desired);
  observed.status.ikeSas = [ikeSa(4, 'ESTABLISHED', ['10.1.0.0/24'])];
  const actions = plan(desired, observed);
  t.same(kinds(actions), ['terminate a-to-b', 'initiate a-to-b']);
  t.match(actions[0]?.reason, /CHILD_SA a-to-b\{4\} carries 10\.1\.0\.0\/24 === 10\.2\.0\.0\/16/);
});

t.test('an IKE_SA still CONNECTING is awaited, not initiated twice', async (t) => {
  const desired = example('site-a.json');
  const observed = convergedA(desired);
  observed.status.ikeSas = [ikeSa(2, 'CONNECTING', [])];
  t.same(kinds(plan(desired, observed)), ['await-established a-to-b']);
});

t.test('an ESTABLISHED IKE_SA without a CHILD_SA gets one initiated', async (t) => {
  const desired = example('site-a.json');
  const observed = convergedA(desired);
  observed.status.ikeSas = [{ ...ikeSa(3, 'ESTABLISHED', []), children: [] }];
  const actions = plan(desired, observed);
  t.same(kinds(actions), ['initiate a-to-b']);
  t.match(actions[0]?.reason, /#3 is ESTABLISHED but has no INSTALLED CHILD_SA/);
});

t.test('a removed conn is terminated before the file drops it, then unloaded', async (t) => {
  const before = example('site-a.json');
  const after = example('site-a.json', (document) => (document.ipsec.connections = []));
  const actions = plan(after, convergedA(before));
  t.same(kinds(actions), [
    'terminate a-to-b',
    'write-conf /etc/ipsec.d/tunnelwarden.conf',
    'reload-conns charon',
  ]);
  const reload = actions[2] as { expectLoaded: string[]; expectUnloaded: string[] };
  t.same(reload.expectLoaded, []);
  t.same(reload.expectUnloaded, ['a-to-b']);
});

t.test('conns we do not own are never planned for', async (t) => {
  const desired = example('site-a.json');
  const observed = convergedA(desired);
  observed.status.connections.push({ name: 'foreign', localAddress: '%any', remoteAddress: '192.0.2.1', children: [] });
  observed.status.ikeSas.push({ ...ikeSa(9, 'CONNECTING', []), conn: 'foreign' });
  t.same(plan(desired, observed), []);
});

t.test('connSections reads conn sections and ignores comments and config setup', async (t) => {
  const text = '# c\nconfig setup\n\tuniqueids=yes\n\nconn x\n\tleft=1.2.3.4\n  # note\n\tauto=add\nconn y\n\tright=%any\n';
  t.same([...connSections(text).entries()], [
    ['x', 'conn x\nleft=1.2.3.4\nauto=add'],
    ['y', 'conn y\nright=%any'],
  ]);
  t.same([...connSections(undefined).keys()], []);
});

t.test('a loaded address spelt differently is the same address, not a stale conn', async (t) => {
  const desired = example('site-a.json', (document) => {
    document.ipsec.connections[0].remote.address = '2001:DB8:0::2';
    delete document.ipsec.connections[0].remote.id;
  });
  const observed = convergedA(desired);
  observed.status.connections[0]!.remoteAddress = '2001:db8::2';
  t.same(plan(desired, observed), []);
  observed.status.connections[0]!.remoteAddress = '2001:db8::3';
  t.match(plan(desired, observed)[0]?.reason, /loaded with remote address 2001:db8::3, want 2001:DB8:0::2/);
});

t.test('a conn strongSwan merged into another conn is loaded and up, so nothing is planned', async (t) => {
  const capture = readFileSync(
    path.join(repo, 'test', 'fixtures', 'strongswan-5.9.8-libipsec', 'lab-stroke-statusall-merged-conns.txt'),
    'utf8',
  );
  const desired = example('site-a.json', (document) => {
    const second = structuredClone(document.ipsec.connections[0]);
    second.name = 'a-to-b-2';
    second.local.subnets = ['10.11.0.0/16'];
    second.remote.subnets = ['10.12.0.0/16'];
    delete second.probe;
    document.ipsec.connections.push(second);
  });
  const observed = { ...convergedA(desired), status: parseStrokeStatus(capture) };
  t.same(plan(desired, observed), []);
  const withoutSecondChild = parseStrokeStatus(capture);
  withoutSecondChild.ikeSas[0]!.children.pop();
  t.same(kinds(plan(desired, { ...observed, status: withoutSecondChild })), ['initiate a-to-b-2']);
});

t.test("road warriors without charon's eap-mschapv2 plugin are an unsupported error", async (t) => {
  const desired = example('roadwarrior.json');
  const captured = parseStrokeStatus(
    readFileSync(
      path.join(repo, 'test', 'fixtures', 'strongswan-5.9.8-libipsec', 'stroke-statusall-established.txt'),
      'utf8',
    ),
  );
  const observed = (plugins: string[]): IpsecObservation => ({
    ...convergedA(desired),
    status: { ...captured, plugins },
  });
  t.ok(captured.plugins.includes('eap-mschapv2'), 'the captured charon has the plugin');
  t.doesNotThrow(() => plan(desired, observed(captured.plugins)));
  const without = captured.plugins.filter((plugin) => plugin !== 'eap-mschapv2');
  t.throws(() => plan(desired, observed(without)), {
    code: 'TW_STRONGSWAN_PLUGIN_MISSING',
    message: /eap-mschapv2.*libcharon-extauth-plugins/,
  });
  t.doesNotThrow(
    () => plan(desired, observed([])),
    'a status without its plugin list (plain ipsec status) is not taken as missing',
  );
  const siteA = example('site-a.json');
  t.doesNotThrow(
    () => plan(siteA, { ...convergedA(siteA), status: { ...convergedA(siteA).status, plugins: without } }),
    'site-to-site conns alone do not need it',
  );
});

t.test('ikeSasByConn gives each conn its IKE_SAs, with only its own CHILD_SAs', async (t) => {
  const child = (conn: string, uniqueId: number) => ({
    conn,
    uniqueId,
    state: 'INSTALLED' as const,
    udpEncap: true,
    localTs: ['10.1.0.0/16'],
    remoteTs: ['10.2.0.0/16'],
  });
  const sas = [
    { conn: 'a-to-b', uniqueId: 1, state: 'ESTABLISHED' as const, children: [child('a-to-b', 1), child('a-to-b-extra', 2)] },
    { conn: 'a-to-c', uniqueId: 2, state: 'CONNECTING' as const, children: [] },
    { conn: 'a-to-b', uniqueId: 3, state: 'ESTABLISHED' as const, children: [child('a-to-b', 3)] },
  ];
  const lookup = ikeSasByConn(sas);
  t.same(lookup('a-to-b').map((sa) => sa.uniqueId), [1, 3]);
  t.same(lookup('a-to-c').map((sa) => [sa.uniqueId, sa.state]), [[2, 'CONNECTING']]);
  t.same(lookup('absent'), []);
  t.same(lookup('a-to-b')[0]!.children.map((c) => c.conn), ['a-to-b'], "only the conn's own CHILD_SAs");
  t.same(lookup('a-to-b-extra').map((sa) => [sa.uniqueId, sa.conn, sa.children.map((c) => c.uniqueId)]), [[1, 'a-to-b', [2]]], 'a merged conn rides its host IKE_SA');
});
