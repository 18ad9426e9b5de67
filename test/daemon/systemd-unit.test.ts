/**
 * The shipped unit and the install targets: `systemd-analyze verify` is clean, the offline
 * security exposure is at most 2.5, the unit says what the daemon relies on, and
 * `make install` / `make uninstall` into a DESTDIR put exactly their files in place and take
 * them away. Nothing here boots or talks to systemd.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';

const repo = path.resolve(import.meta.dirname, '..', '..');
const unitPath = path.join(repo, 'systemd', 'tunnelwarden.service');
const analyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((candidate) => existsSync(candidate));
const noAnalyze = analyze ? false : 'systemd-analyze is not installed (Debian package systemd)';
const MAX_EXPOSURE = 2.5;

t.test('systemd-analyze verify finds nothing to say about the unit', { skip: noAnalyze }, async (t) => {
  const result = spawnSync(analyze!, ['verify', unitPath], { encoding: 'utf8' });
  t.equal(result.status, 0, result.stderr);
  t.equal(result.stderr.trim(), '', 'no warnings');
});

t.test(`the unit's offline security exposure is at most ${MAX_EXPOSURE}`, { skip: noAnalyze }, async (t) => {
  const result = spawnSync(analyze!, ['security', '--offline=true', '--no-pager', unitPath], { encoding: 'utf8' });
  const match = /Overall exposure level for tunnelwarden\.service: (\d+\.\d+)/.exec(result.stdout);
  t.ok(match, 'the overall exposure line is printed');
  const exposure = Number(match?.[1]);
  t.ok(exposure <= MAX_EXPOSURE, `exposure ${exposure}`);
  t.comment(`systemd-analyze security --offline=true: exposure ${exposure}`);
});

t.test('the unit declares what the daemon relies on', async (t) => {
  const unit = readFileSync(unitPath, 'utf8');
  for (const line of [
    'Type=notify',
    'NotifyAccess=all',
    'WatchdogSec=90',
    'Restart=on-failure',
    'SyslogIdentifier=tunnelwarden',
    'After=network-online.target strongswan-starter.service',
    'Wants=network-online.target',
    'CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW',
    'ProtectSystem=strict',
    'StateDirectory=tunnelwarden',
    'RuntimeDirectory=tunnelwarden',
  ]) {
    t.ok(unit.split('\n').includes(line), line);
  }
  t.match(unit, /^StartLimitIntervalSec=\d+$/m);
  t.match(unit, /^StartLimitBurst=\d+$/m);
});

const built = existsSync(path.join(repo, 'dist', 'agent', 'cli', 'bin.js'));
const noMake = spawnSync('make', ['--version']).status === 0 ? false : 'make is not installed';

t.test('make install and uninstall put exactly their files in place and remove them', { skip: !built ? 'not built (npm run build)' : noMake }, async (t) => {
  const destdir = mkdtempSync(path.join(tmpdir(), 'tw-install-'));
  t.teardown(() => rmSync(destdir, { recursive: true, force: true }));
  // -o build: use the dist/ already built instead of rebuilding it under other tests' feet.
  const install = spawnSync('make', ['-s', '-o', 'build', '-o', 'node_modules', 'install', `DESTDIR=${destdir}`], {
    cwd: repo,
    encoding: 'utf8',
    timeout: 240_000,
  });
  t.equal(install.status, 0, install.stdout + install.stderr);
  const lib = path.join(destdir, 'usr/local/lib/tunnelwarden');
  t.ok(existsSync(path.join(lib, 'dist/agent/cli/bin.js')), 'program installed');
  t.ok(existsSync(path.join(lib, 'node_modules/pino/package.json')), 'runtime modules installed');
  t.notOk(existsSync(path.join(lib, 'node_modules/tap')), 'no dev modules');
  t.match(readFileSync(path.join(destdir, 'usr/local/bin/tunnelwarden'), 'utf8'), /exec \S+ \/usr\/local\/lib\/tunnelwarden\/dist\/agent\/cli\/bin\.js "\$@"/);
  t.equal(statSync(path.join(destdir, 'etc/tunnelwarden')).mode & 0o777, 0o700);
  t.same(readdirSync(path.join(destdir, 'etc/tunnelwarden')).sort(), ['desired-state.schema.json', 'desired.example.json']);
  const unit = readFileSync(path.join(destdir, 'etc/systemd/system/tunnelwarden.service'), 'utf8');
  t.match(unit, /^ExecStart=\S*node --max-semi-space-size=2 \/usr\/local\/lib\/tunnelwarden\/dist\/agent\/cli\/bin\.js run --config \/etc\/tunnelwarden\/desired\.json$/m);
  const version = spawnSync('node', [path.join(lib, 'dist/agent/cli/bin.js'), '--version'], { encoding: 'utf8' });
  t.equal(version.status, 0, 'the installed program runs');

  const uninstall = spawnSync('make', ['-s', 'uninstall', `DESTDIR=${destdir}`], { cwd: repo, encoding: 'utf8' });
  t.equal(uninstall.status, 0, uninstall.stderr);
  const left: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else left.push(path.relative(destdir, full));
    }
  };
  walk(destdir);
  t.same(left, [], 'no file left behind');
  t.notOk(existsSync(path.join(destdir, 'etc/tunnelwarden')), 'the emptied config dir is gone');
});
