/**
 * Applying start-strongswan (agent/apply/ipsec.ts) with a scripted runner: which command brings
 * charon back depends on whether starter still runs.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { applyIpsecAction, DEFAULT_IPSEC_WAITS } from '../../agent/apply/ipsec.js';
import type { CommandRunner } from '../../agent/host/exec.js';
import { DEFAULT_PATHS } from '../../agent/model/paths.js';
import type { IpsecAction } from '../../agent/plan/actions.js';
import { collectingLogger, memoryFiles } from '../daemon/helpers.js';

const repo = path.resolve(import.meta.dirname, '..', '..');
const statusall = readFileSync(
  path.join(repo, 'test', 'fixtures', 'strongswan-5.9.8-libipsec', 'stroke-statusall-established.txt'),
  'utf8',
);

const start: IpsecAction = {
  resource: 'ipsec',
  type: 'start-strongswan',
  target: 'charon',
  expectLoaded: ['a-to-b'],
  reason: 'charon is not running',
};

/** Runs start-strongswan on a host with these files; returns the commands other than statusall. */
async function commandsOfStart(files: Record<string, string>, starterUnitActive = false): Promise<string[]> {
  const ran: string[] = [];
  const run: CommandRunner = async (argv) => {
    const line = argv.join(' ');
    if (line === 'ipsec statusall') return { exitCode: 0, stdout: statusall, stderr: '', durationMs: 1 };
    ran.push(line);
    const active = line.startsWith('systemctl is-active') ? starterUnitActive : true;
    return { exitCode: active ? 0 : 3, stdout: '', stderr: '', durationMs: 1 };
  };
  await applyIpsecAction(start, {
    run,
    files: memoryFiles(files).store,
    logger: collectingLogger().logger,
    paths: DEFAULT_PATHS,
    renderedSecrets: '',
    waits: DEFAULT_IPSEC_WAITS,
  });
  return ran;
}

t.test('without starter, strongSwan is started', async (t) => {
  t.same(await commandsOfStart({}), ['ipsec start']);
  t.same(await commandsOfStart({ '/run/starter.charon.pid': '4242\n' }), ['ipsec start'], 'a stale pid file');
});

t.test('with starter alive but charon gone, strongSwan is restarted rather than waited for', async (t) => {
  const alive = { '/run/starter.charon.pid': '4242\n', '/proc/4242': '' };
  t.same(await commandsOfStart(alive), ['ipsec restart']);
});

t.test('under systemd the starter unit decides, through systemctl', async (t) => {
  const systemd = { '/run/systemd/system': '' };
  t.same(await commandsOfStart(systemd, false), [
    'systemctl is-active --quiet strongswan-starter.service',
    'systemctl start strongswan-starter.service',
  ]);
  t.same(await commandsOfStart(systemd, true), [
    'systemctl is-active --quiet strongswan-starter.service',
    'systemctl restart strongswan-starter.service',
  ]);
});
