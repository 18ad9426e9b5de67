/**
 * The command line as a user meets it: exit codes, messages naming the file and the field,
 * help and version. Runs the built program (`npm run build` first; test/run.sh does).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';

const repo = path.resolve(import.meta.dirname, '..', '..');
const bin = path.join(repo, 'dist', 'agent', 'cli', 'bin.js');
const scratch = mkdtempSync(path.join(tmpdir(), 'tw-cli-'));

function cli(...args: string[]) {
  const result = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: repo });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function scratchFile(name: string, content: string): string {
  const file = path.join(scratch, name);
  writeFileSync(file, content);
  return file;
}

t.before(() => {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run "npm run build" first`);
});

t.test('validate config/*.json passes over the committed JSON Schema', async (t) => {
  const result = cli('validate', 'config/desired-state.schema.json', 'config/site-b.json');
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout, 'config/desired-state.schema.json: a JSON Schema, not a desired state: skipped');
  t.match(result.stdout, 'config/site-b.json: valid');
});

t.test('validate reads the secret files it can, and notes those it cannot', async (t) => {
  const document = JSON.parse(readFileSync(path.join(repo, 'config', 'site-b.json'), 'utf8'));
  const pskFile = path.join(scratch, 'b.psk');
  document.ipsec.connections[0].psk = { file: pskFile };
  const file = scratchFile('secret-file.json', JSON.stringify(document));

  const absent = cli('validate', file);
  t.equal(absent.code, 0, absent.stderr);
  t.match(absent.stderr, `note: ipsec.connections[0].psk.file: ${pskFile} does not exist (not checked here`);
  t.equal(cli('validate', '--host-checks', file).code, 1, '--host-checks requires the file');

  writeFileSync(pskFile, 'Sekrit"Quote\nsecond line\n', { mode: 0o600 });
  const broken = cli('validate', file);
  t.equal(broken.code, 1);
  t.match(broken.stderr, 'error: ipsec.connections[0].psk.file: the secret in');
  t.match(broken.stderr, 'contains a double quote');
  t.notMatch(broken.stderr + broken.stdout, 'Sekrit', 'never the secret itself');

  writeFileSync(pskFile, 'a-usable-secret-0123456789\n');
  chmodSync(pskFile, 0o644);
  const loose = cli('validate', file);
  t.equal(loose.code, 0, loose.stderr);
  t.match(loose.stderr, 'is readable by others (mode 644); chmod 600 it');
});

t.test('validate accepts every example in config/', async (t) => {
  const examples = ['site-a.json', 'site-b.json', 'roadwarrior.json'].map((name) => path.join('config', name));
  const result = cli('validate', ...examples);
  t.equal(result.code, 0, result.stderr);
  for (const example of examples) t.match(result.stdout, `${example}: valid`);
});

t.test('validate lists every error with its path and exits 1', async (t) => {
  const document = JSON.parse(readFileSync(path.join(repo, 'config', 'site-a.json'), 'utf8'));
  document.ipsec.connections[0].remote.subnets = ['10.1.0.0/24'];
  document.ipsec.connections[0].name = 'a to b';
  document.transit.vlanId = 0;
  const result = cli('validate', scratchFile('bad.json', JSON.stringify(document)));
  t.equal(result.code, 1);
  t.match(result.stderr, /bad\.json: error: transit\.vlanId: VLAN ids run from 1 to 4094/);
  t.match(result.stderr, /bad\.json: error: ipsec\.connections\[0\]\.name: not a safe connection name/);
  t.match(result.stderr, /bad\.json: invalid \(2 errors\)\n/);
  t.notMatch(result.stderr, /nothing was changed/, 'validate never changes anything, so it does not say so');
});

t.test('validate prints warnings and still exits 0', async (t) => {
  const document = JSON.parse(readFileSync(path.join(repo, 'config', 'site-a.json'), 'utf8'));
  document.ipsec.connections[0].reauth = true;
  const result = cli('validate', scratchFile('warn.json', JSON.stringify(document)));
  t.equal(result.code, 0, result.stderr);
  t.match(result.stderr, /warning: ipsec\.connections\[0\]\.reauth: reauthentication tears/);
});

t.test('unusable files get one line naming the file and the cause', async (t) => {
  const cases: [string, RegExp][] = [
    [scratchFile('empty.json', ''), /empty\.json: error: \(document\): is empty/],
    [scratchFile('text.json', 'conn a-to-b'), /text\.json: error: \(document\): is not JSON: /],
    [path.join(scratch, 'absent.json'), /absent\.json: cannot read: no such file/],
    [scratch, /: cannot read: is a directory/],
  ];
  for (const [file, expected] of cases) {
    for (const command of ['validate', 'plan', 'apply']) {
      const result = cli(command, file);
      t.equal(result.code, 1, `${command} ${file}`);
      t.match(result.stderr, expected, `${command} ${path.basename(file)}`);
      t.equal(result.stdout, '', 'nothing on stdout');
    }
  }
});

t.test('a file root cannot read is reported, when not running as root', { skip: process.getuid?.() === 0 ? 'root reads any file' : undefined }, async (t) => {
  const file = scratchFile('secret.json', '{}');
  chmodSync(file, 0o000);
  t.match(cli('validate', file).stderr, /permission denied/);
});

t.test('schema prints the committed JSON Schema', async (t) => {
  const result = cli('schema');
  t.equal(result.code, 0);
  t.equal(result.stdout, readFileSync(path.join(repo, 'config', 'desired-state.schema.json'), 'utf8'));
});

t.test('--version prints the package version and --help lists the commands', async (t) => {
  const manifest = JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8'));
  t.equal(cli('--version').stdout.trim(), manifest.version);
  const help = cli('--help');
  t.equal(help.code, 0);
  for (const command of ['validate', 'plan', 'apply', 'schema']) t.match(help.stdout, command);
  for (const command of ['validate', 'plan', 'apply', 'schema']) {
    const commandHelp = cli(command, '--help');
    t.equal(commandHelp.code, 0, `${command} --help`);
    t.match(commandHelp.stdout, `Usage: tunnelwarden ${command}`);
  }
});

t.test('an unknown command or option is a usage error', async (t) => {
  t.equal(cli('frobnicate').code, 2);
  t.equal(cli('plan', '--no-such-flag', 'x.json').code, 2);
});

t.test('observe parses captured outputs given as files into JSON', async (t) => {
  const fixtures = path.join('test', 'fixtures', 'strongswan-5.9.8-libipsec');
  const result = cli(
    'observe',
    '--ipsec-statusall',
    path.join(fixtures, 'stroke-statusall-established.txt'),
    '--swanctl-list-sas',
    path.join(fixtures, 'swanctl-list-sas-established.txt'),
  );
  t.equal(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout);
  t.same(Object.keys(report), ['ipsecStatusall', 'swanctlListSas'], 'only what was given');
  t.equal(report.ipsecStatusall.ikeSas[0].state, 'ESTABLISHED');
  t.equal(report.ipsecStatusall.ikeSas[0].children[0].spiIn, 'f7ec1834');
  t.equal(report.swanctlListSas[0].children[0].bytesIn, 336);
  const missing = cli('observe', '--xfrm-state', path.join(scratch, 'none.txt'));
  t.equal(missing.code, 1);
  t.match(missing.stderr, /none\.txt: cannot read: no such file \[TW_INPUT_UNREADABLE\]/);
});
