/**
 * `tunnelwarden client-profile` as a user runs it (the built program, `npm run build` first):
 * with a CA and server key made by the test, each format embeds that CA and never the server
 * key, the password appears only with --include-password, and unknown clients or services fail
 * with exit 1 and a line naming the cause.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { makeServerPki, pkiSkipReason } from '../fixtures/roadwarrior/pki.js';

const skip = pkiSkipReason();
const repo = path.resolve(import.meta.dirname, '..', '..');
const bin = path.join(repo, 'dist', 'agent', 'cli', 'bin.js');
const PASSWORD = 'cli-test-password-A1';

const dir = mkdtempSync(path.join(tmpdir(), 'tw-client-profile-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function cli(...args: string[]) {
  const result = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: repo });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The road-warrior example with its files pointed at the test's PKI and password file. */
function desiredFile(files: ReturnType<typeof makeServerPki>): string {
  const document = JSON.parse(readFileSync(path.join(repo, 'config', 'roadwarrior.json'), 'utf8'));
  delete document.$schema;
  const service = document.ipsec.roadWarrior;
  Object.assign(service, {
    certificate: files.serverCert,
    privateKey: files.serverKey,
    ca: files.ca,
  });
  const passwordFile = path.join(dir, 'client_a.password');
  writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  service.clients[0].password = { file: passwordFile };
  service.clients[1].password = { file: path.join(dir, 'missing.password') };
  const file = path.join(dir, 'desired.json');
  writeFileSync(file, JSON.stringify(document));
  return file;
}

t.before(() => {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run "npm run build" first`);
});

t.test(
  'client-profile embeds the CA and never the server key, in every format',
  { skip },
  async (t) => {
    const files = makeServerPki(dir, 'vpn.example.com');
    const config = desiredFile(files);
    const caBase64 = readFileSync(files.ca, 'utf8').replace(/-----[A-Z ]+-----|\s/g, '');
    const keyLines = readFileSync(files.serverKey, 'utf8')
      .split('\n')
      .filter((line) => !line.startsWith('-----') && line);

    for (const format of ['mobileconfig', 'strongswan', 'networkmanager']) {
      const result = cli('client-profile', 'client_a', '--config', config, '--format', format);
      t.equal(result.code, 0, `${format}: ${result.stderr}`);
      t.ok(result.stdout.replace(/\s/g, '').includes(caBase64), `${format}: the CA is embedded`);
      t.notOk(
        keyLines.some((line) => result.stdout.includes(line)),
        `${format}: no line of the server key`,
      );
      t.notMatch(result.stdout, /PRIVATE KEY/, `${format}: no private key block`);
      t.notMatch(result.stdout, PASSWORD, `${format}: no password without --include-password`);
      t.match(result.stderr, 'holds no password; --include-password adds it');
    }
    const mobileconfig = cli('client-profile', 'client_a', '--config', config);
    t.match(
      mobileconfig.stdout,
      /^<\?xml version="1\.0" encoding="UTF-8"\?>\n/,
      'mobileconfig is the default',
    );
    t.match(mobileconfig.stdout, '<string>tunnelwarden test CA</string>', 'CA common name shown');
  },
);

t.test(
  '--include-password puts the password from its file into the profile',
  { skip },
  async (t) => {
    const config = desiredFile(makeServerPki(dir, 'vpn.example.com'));
    const mobileconfig = cli(
      'client-profile',
      'client_a',
      '--config',
      config,
      '--include-password',
    );
    t.equal(mobileconfig.code, 0, mobileconfig.stderr);
    t.match(mobileconfig.stdout, `<key>AuthPassword</key>\n\t\t\t\t<string>${PASSWORD}</string>`);
    const strongswan = cli(
      'client-profile',
      'client_a',
      '--config',
      config,
      '--format',
      'strongswan',
      '--include-password',
    );
    t.match(strongswan.stdout, `\nclient_a : EAP "${PASSWORD}"\n`);
    t.equal(strongswan.stderr, '', 'nothing to warn about: the password file is 0600');
  },
);

t.test('--remote-address replaces the dialled address, not the server id', { skip }, async (t) => {
  const config = desiredFile(makeServerPki(dir, 'vpn.example.com'));
  const result = cli(
    'client-profile',
    'client_a',
    '--config',
    config,
    '--format',
    'strongswan',
    '--remote-address',
    '172.16.0.18',
  );
  t.match(result.stdout, '\tright=172.16.0.18\n');
  t.match(result.stdout, '\trightid=vpn.example.com\n');
  const bad = cli(
    'client-profile',
    'client_a',
    '--config',
    config,
    '--remote-address',
    '172.16.0.018',
  );
  t.equal(bad.code, 1);
  t.match(
    bad.stderr,
    '--remote-address "172.16.0.018" is not an IP address or DNS name [TW_CLIENT_PROFILE_UNAVAILABLE]',
  );
});

t.test(
  'an unknown client, an unreadable password or no service exits 1 naming the cause',
  { skip },
  async (t) => {
    const config = desiredFile(makeServerPki(dir, 'vpn.example.com'));
    const unknown = cli('client-profile', 'mallory', '--config', config);
    t.equal(unknown.code, 1);
    t.match(
      unknown.stderr,
      'no road-warrior client "mallory" (clients: client_a, client_b) [TW_CLIENT_PROFILE_UNAVAILABLE]',
    );
    t.equal(unknown.stdout, '');

    const missing = cli('client-profile', 'client_b', '--config', config, '--include-password');
    t.equal(missing.code, 1);
    t.match(missing.stderr, /missing\.password does not exist \[TW_CLIENT_PROFILE_UNAVAILABLE\]/);
    t.equal(missing.stdout, '', 'nothing half-printed');

    const siteA = cli(
      'client-profile',
      'client_a',
      '--config',
      path.join(repo, 'config', 'site-a.json'),
    );
    t.equal(siteA.code, 1);
    t.match(siteA.stderr, 'the desired state has no ipsec.roadWarrior service');

    const badFormat = cli('client-profile', 'client_a', '--config', config, '--format', 'pdf');
    t.equal(badFormat.code, 2, 'usage error');
  },
);
