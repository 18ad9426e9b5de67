/** SA health findings for one conn, from hand-built observations and a real captured status. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { loadDesiredState } from '../../agent/model/load.js';
import type { SiteToSiteConnection } from '../../agent/model/schema.js';
import { parseStrokeStatus } from '../../agent/observe/parse/stroke.js';
import type { ChildSa, IkeSa } from '../../agent/observe/parse/types.js';
import { findConnProblems, type ConnHealthInput } from '../../agent/plan/health.js';

const repo = path.resolve(import.meta.dirname, '..', '..');
const fixtures = path.join(repo, 'test', 'fixtures', 'strongswan-5.9.8-libipsec');

function connection(edit: (conn: any) => void = () => {}): SiteToSiteConnection {
  const document = JSON.parse(readFileSync(path.join(repo, 'config', 'site-a.json'), 'utf8'));
  edit(document.ipsec.connections[0]);
  const result = loadDesiredState(JSON.stringify(document));
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.state.ipsec!.connections[0]!;
}

function child(uniqueId: number, state: ChildSa['state'] = 'INSTALLED', extra: Partial<ChildSa> = {}): ChildSa {
  return { conn: 'a-to-b', uniqueId, state, udpEncap: true, localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'], ...extra };
}

function ike(uniqueId: number, state: IkeSa['state'], ago: number | undefined, children: ChildSa[]): IkeSa {
  return { conn: 'a-to-b', uniqueId, state, establishedSecondsAgo: ago, children };
}

function input(ikeSas: IkeSa[], extra: Partial<ConnHealthInput> = {}): ConnHealthInput {
  return { connection: connection(), ikeSas, kernelIpsec: false, ...extra };
}

const kinds = (findings: { kind: string }[]) => findings.map((finding) => finding.kind);

t.test('the real established capture is healthy', async (t) => {
  const status = parseStrokeStatus(readFileSync(path.join(fixtures, 'stroke-statusall-established.txt'), 'utf8'));
  t.same(findConnProblems(input(status.ikeSas.filter((sa) => sa.conn === 'a-to-b'))), []);
});

t.test('the real routed-plus-half-open capture: the CONNECTING SA is not yet stale', async (t) => {
  const status = parseStrokeStatus(readFileSync(path.join(fixtures, 'stroke-status-routed-idle.txt'), 'utf8'));
  const sas = status.ikeSas.filter((sa) => sa.conn === 'a-to-b');
  t.same(kinds(findConnProblems(input(sas))), [], 'established 3 s ago: a handover, not stale');
  const aged = sas.map((sa) => (sa.state === 'ESTABLISHED' ? { ...sa, establishedSecondsAgo: 60 } : sa));
  const findings = findConnProblems(input(aged));
  t.same(kinds(findings), ['stale-half-open']);
  t.same(findings[0]!.ikeSaIds, [2]);
  t.match(findings[0]!.evidence, 'IKE_SA #2 CONNECTING beside #3 ESTABLISHED 60 s ago');
});

t.test('no IKE_SA is a finding only on the side that initiates', async (t) => {
  t.same(kinds(findConnProblems(input([]))), ['no-ike-sa']);
  const responder = { ...input([]), connection: connection((conn) => (conn.initiate = false)) };
  t.same(findConnProblems(responder), []);
  t.same(findConnProblems(input([ike(5, 'CONNECTING', undefined, [])])), [], 'a first attempt in flight');
});

t.test('an ESTABLISHED IKE_SA without an INSTALLED CHILD_SA is a finding', async (t) => {
  const findings = findConnProblems(input([ike(1, 'ESTABLISHED', 30, [child(3, 'INSTALLING')])]));
  t.same(kinds(findings), ['child-sa-missing']);
  t.match(findings[0]!.evidence, '#1 ESTABLISHED without an INSTALLED CHILD_SA ({3} INSTALLING)');
});

t.test('duplicate IKE_SAs: the newest that carries traffic is kept', async (t) => {
  const findings = findConnProblems(
    input([ike(1, 'ESTABLISHED', 500, [child(1)]), ike(4, 'ESTABLISHED', 20, []), ike(3, 'ESTABLISHED', 100, [child(2)])]),
  );
  t.same(kinds(findings), ['duplicate-ike-sa']);
  t.same(findings[0]!.ikeSaIds, [4, 1], 'keeps #3: newest with an INSTALLED CHILD_SA');
});

t.test('duplicate CHILD_SAs with the same selectors keep the newest, except during a rekey', async (t) => {
  const findings = findConnProblems(input([ike(1, 'ESTABLISHED', 300, [child(2), child(7), child(5)])]));
  t.same(kinds(findings), ['duplicate-child-sa']);
  t.same(findings[0]!.childSaIds, [5, 2]);
  const rekey = findConnProblems(input([ike(1, 'ESTABLISHED', 300, [child(2, 'REKEYED'), child(7)])]));
  t.same(rekey, [], 'a REKEYED CHILD_SA beside its successor is normal');
  const distinct = child(9, 'INSTALLED', { localTs: ['10.11.0.0/16'] });
  t.same(findConnProblems(input([ike(1, 'ESTABLISHED', 300, [child(2), distinct])])), [], 'different selectors');
});

t.test('with kernel IPsec, an INSTALLED CHILD_SA needs its xfrm states and policies', async (t) => {
  const sa = ike(1, 'ESTABLISHED', 60, [child(1, 'INSTALLED', { spiIn: 'f7ec1834', spiOut: 'dd9339c1' })]);
  const policies = [
    { src: '10.1.0.0/16', dst: '10.2.0.0/16', dir: 'out' as const, tmpl: [] },
    { src: '10.2.0.0/16', dst: '10.1.0.0/16', dir: 'in' as const, tmpl: [] },
  ];
  const state = (spi: string) => ({ src: '172.16.0.18', dst: '172.16.0.2', proto: 'esp', spi });
  const healthy = input([sa], { kernelIpsec: true, xfrmStates: [state('f7ec1834'), state('dd9339c1')], xfrmPolicies: policies });
  t.same(findConnProblems(healthy), []);
  const noState = findConnProblems({ ...healthy, xfrmStates: [state('f7ec1834')] });
  t.same(kinds(noState), ['xfrm-state-missing']);
  t.match(noState[0]!.evidence, 'no SA with SPI dd9339c1');
  const noPolicy = findConnProblems({ ...healthy, xfrmPolicies: policies.slice(1) });
  t.same(kinds(noPolicy), ['xfrm-policy-missing']);
  t.same(findConnProblems({ ...healthy, kernelIpsec: false, xfrmStates: [] }), [], 'libipsec: xfrm is not consulted');
});

t.test('outbound bytes growing while inbound stay frozen over the window is a finding', async (t) => {
  const sa = ike(1, 'ESTABLISHED', 60, [child(1)]);
  const sample = (atMs: number, bytesIn: number, bytesOut: number, spiIn = 'aa') => ({ atMs, spiIn, bytesIn, bytesOut });
  const frozen = findConnProblems(input([sa], { counterHistory: [sample(0, 100, 100), sample(5_000, 100, 300), sample(12_000, 100, 900)] }));
  t.same(kinds(frozen), ['inbound-frozen']);
  t.match(frozen[0]!.evidence, 'over 12 s CHILD_SA with SPI aa sent 800 bytes and received none');
  t.same(findConnProblems(input([sa], { counterHistory: [sample(0, 100, 100), sample(12_000, 150, 900)] })), [], 'inbound moved');
  t.same(findConnProblems(input([sa], { counterHistory: [sample(0, 100, 100), sample(8_000, 100, 900)] })), [], 'window not reached');
  t.same(findConnProblems(input([sa], { counterHistory: [sample(0, 100, 100, 'old'), sample(12_000, 0, 900, 'new')] })), [], 'rekeyed');
  t.same(findConnProblems(input([sa], { counterHistory: [sample(0, 100, 100), sample(12_000, 100, 100)] })), [], 'idle');
});

t.test('the probe fails a conn only after lossThreshold losses in a row', async (t) => {
  const sa = ike(1, 'ESTABLISHED', 60, [child(1)]);
  const withProbe = (losses: number) => input([sa], { probe: { consecutiveLosses: losses } });
  t.same(findConnProblems(withProbe(1)), [], 'threshold of site-a.json is 2');
  const findings = findConnProblems(withProbe(2));
  t.same(kinds(findings), ['probe-failing']);
  t.match(findings[0]!.evidence, '2 probes in a row to 10.2.0.1 went unanswered');
  const noProbe = { ...withProbe(9), connection: connection((conn) => delete conn.probe) };
  t.same(findConnProblems(noProbe), [], 'no probe configured');
});

t.test('an IKE_SA CONNECTING for a minute with none ESTABLISHED is stuck, on the initiating side', async (t) => {
  const connecting = [ike(21, 'CONNECTING', undefined, [])];
  const aged = (ms: number) => input(connecting, { connectingForMs: new Map([[21, ms]]) });
  t.same(findConnProblems(aged(59_000)), [], 'under a minute: an exchange still in flight');
  const findings = findConnProblems(aged(61_000));
  t.same(kinds(findings), ['stuck-connecting']);
  t.equal(findings[0]!.evidence, 'IKE_SA #21 for 61 s CONNECTING with none ESTABLISHED');
  t.same(findConnProblems(input(connecting)), [], 'no age known yet: not stuck');
  const responder = { ...aged(300_000), connection: connection((conn) => (conn.initiate = false)) };
  t.same(findConnProblems(responder), [], 'the responder waits for its peer');
  const beside = input([ike(3, 'ESTABLISHED', 5, [child(1)]), ...connecting], { connectingForMs: new Map([[21, 300_000]]) });
  t.same(findConnProblems(beside), [], 'beside an ESTABLISHED IKE_SA it is a half-open SA, judged by that rule');
});
