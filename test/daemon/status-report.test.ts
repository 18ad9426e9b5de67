/**
 * `tunnelwarden status`: rows per desired connection from real captured `ipsec statusall`
 * output, and the readable tables with the daemon's last pass.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { connectionRows, formatStatusReport, formatTable, type StatusReport } from '../../agent/daemon/status-report.js';
import { loadDesiredState } from '../../agent/model/load.js';
import type { DesiredState } from '../../agent/model/schema.js';
import { parseStrokeStatus } from '../../agent/observe/parse/stroke.js';

const repo = path.resolve(import.meta.dirname, '..', '..');
const fixture = (name: string) =>
  parseStrokeStatus(readFileSync(path.join(repo, 'test', 'fixtures', 'strongswan-5.9.8-libipsec', name), 'utf8'));

function siteA(): DesiredState {
  const result = loadDesiredState(readFileSync(path.join(repo, 'config', 'site-a.json'), 'utf8'));
  if (!result.ok) throw new Error('site-a.json invalid');
  return result.state;
}

t.test('an established conn shows its IKE_SA, CHILD_SA and observed traffic selectors', async (t) => {
  const rows = connectionRows(siteA(), fixture('lab-stroke-statusall-established.txt'));
  t.equal(rows.length, 1);
  t.match(rows[0], {
    conn: 'a-to-b',
    role: 'initiate',
    loaded: true,
    ikeSa: 'ESTABLISHED',
    ikeSaCount: 1,
    childSasInstalled: 1,
    desiredLocalTs: ['10.1.0.0/16'],
    observedLocalTs: ['10.1.0.0/16'],
    observedRemoteTs: ['10.2.0.0/16'],
  });
});

t.test('a conn that is down shows no SA and nothing observed', async (t) => {
  const rows = connectionRows(siteA(), fixture('lab-stroke-status-after-down.txt'));
  t.equal(rows[0]?.ikeSa, 'none');
  t.equal(rows[0]?.childSasInstalled, 0);
  t.same(rows[0]?.observedLocalTs, []);
});

t.test("a conn's probe record and last heal come from the health state", async (t) => {
  const health = {
    version: 1 as const,
    conns: {
      'a-to-b': {
        memory: { rung: 1, attempts: 1, nextAttemptAtMs: 0, healTimesMs: [], capped: false },
        probe: { consecutiveLosses: 0, sent: 40, lost: 3, lastRttMs: 0.41 },
        counters: [],
        lastHeal: { atMs: Date.UTC(2026, 11, 3, 19, 0, 0), action: 'restart-ike-sa', reason: 'probe-failing: 2 lost' },
      },
    },
  };
  const [row] = connectionRows(siteA(), fixture('lab-stroke-statusall-established.txt'), health);
  t.same(row?.probe, { sent: 40, lost: 3, consecutiveLosses: 0, lastRttMs: 0.41 });
  t.same(row?.lastHeal, { at: '2026-12-03T19:00:00.000Z', action: 'restart-ike-sa', reason: 'probe-failing: 2 lost' });
  const text = formatStatusReport({
    configPath: 'x',
    charonRunning: true,
    resources: [],
    connections: [row!],
    daemon: undefined,
  });
  t.match(text, 'a-to-b: probe 3/40 lost, 0 in a row, last RTT 0.41 ms');
  t.match(text, /^host: facts not readable$/m, 'a report without host facts says so');
  t.match(text, 'a-to-b: last heal restart-ike-sa at 2026-12-03T19:00:00.000Z: probe-failing: 2 lost');
  t.notOk(connectionRows(siteA(), fixture('lab-stroke-statusall-established.txt'))[0]?.probe, 'no record, no probe');
});

t.test('the report reads as tables with the last pass of the daemon', async (t) => {
  const report: StatusReport = {
    configPath: '/etc/tunnelwarden/desired.json',
    host: {
      hostname: 'dc1-gw',
      os: 'Debian GNU/Linux 12',
      kernel: '6.1.0-28-amd64',
      arch: 'x64',
      cpuModel: 'AMD EPYC',
      cpuCores: 2,
      memoryBytes: 8 * 1024 ** 3,
    },
    charonRunning: true,
    resources: [
      { resource: 'link', state: 'not-managed', pending: [] },
      { resource: 'ipsec', state: 'drifted', pending: ['ipsec initiate a-to-b: no IKE_SA'] },
    ],
    connections: connectionRows(siteA(), fixture('lab-stroke-statusall-established.txt')),
    daemon: {
      pid: 4242,
      running: true,
      startedAt: '2026-12-03T19:00:00.000Z',
      configPath: '/etc/tunnelwarden/desired.json',
      enforcingSha256: 'abcdef012345',
      desiredProblem: null,
      lastPass: {
        id: 12,
        triggers: ['schedule'],
        startedAt: '2026-12-03T19:10:00.000Z',
        durationMs: 31,
        outcome: 'converged',
        actions: 0,
        applied: [],
        remaining: [],
        failures: [],
      },
      lastChangeAt: '2026-12-03T19:01:00.000Z',
      passes: 12,
      failedPasses: 0,
    },
  };
  const text = formatStatusReport(report, new Date('2026-12-03T19:10:30.000Z'));
  t.match(text, /^host: dc1-gw: Debian GNU\/Linux 12, kernel 6\.1\.0-28-amd64 x64, 2 cores AMD EPYC, 8\.0 GiB$/m);
  t.match(text, /daemon: pid 4242 running/);
  t.match(text, /last pass: #12 converged at 2026-12-03T19:10:00.000Z \(30 s ago\), 31 ms, 0 actions, triggered by schedule/);
  t.match(text, /^ipsec\s+drifted\s+1 pending: ipsec initiate a-to-b: no IKE_SA$/m);
  t.match(text, /^CONN\s+ROLE\s+DESIRED\s+LOADED\s+IKE_SA\s+CHILD_SAS\s+OBSERVED$/m);
  t.match(text, /^a-to-b\s+initiate\s+10\.1\.0\.0\/16 === 10\.2\.0\.0\/16\s+yes\s+ESTABLISHED\s+1\s+10\.1\.0\.0\/16 === 10\.2\.0\.0\/16$/m);
});

t.test('table columns line up', async (t) => {
  t.same(formatTable(['A', 'BB'], [['xxx', 'y'], ['z', 'wwww']]), ['A    BB', 'xxx  y', 'z    wwww']);
});
