/**
 * `tunnelwarden validate` and the road-warrior files (the built program, `npm run build`
 * first): checked when the certificate is present, only noted when it is absent (validating
 * off-host), required with --host-checks; expired and mismatched certificates exit 1.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { issue, makeKey, makeServerPki, pkiSkipReason } from '../fixtures/roadwarrior/pki.js';

const skip = pkiSkipReason();
const repo = path.resolve(import.meta.dirname, '..', '..');
const bin = path.join(repo, 'dist', 'agent', 'cli', 'bin.js');
const dir = mkdtempSync(path.join(tmpdir(), 'tw-validate-certs-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function cli(...args: string[]) {
  const result = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: repo });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function desiredFile(
  name: string,
  files: { certificate: string; privateKey: string; ca: string },
): string {
  const document = JSON.parse(readFileSync(path.join(repo, 'config', 'roadwarrior.json'), 'utf8'));
  delete document.$schema;
  Object.assign(document.ipsec.roadWarrior, files);
  // The clients' password files must exist too, or validate notes them: made here, 0600.
  for (const client of document.ipsec.roadWarrior.clients) {
    const passwordFile = path.join(dir, `${client.eapId}.password`);
    writeFileSync(passwordFile, `pw-${client.eapId}\n`, { mode: 0o600 });
    client.password = { file: passwordFile };
  }
  const file = path.join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(document));
  return file;
}

t.before(() => {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run "npm run build" first`);
});

t.test('off-host, validate notes the absent certificate and still exits 0', async (t) => {
  const example = path.join('config', 'roadwarrior.json');
  const result = cli('validate', example);
  t.equal(result.code, 0, result.stderr);
  t.equal(result.stdout, `${example}: valid\n`);
  t.match(
    result.stderr,
    `${example}: note: ipsec.roadWarrior: /etc/ipsec.d/certs/vpn.example.com.pem does not exist here, ` +
      'so the certificate checks did not run (validate --host-checks requires the files)',
  );
});

t.test('with --host-checks the absent files are errors and validate exits 1', async (t) => {
  const example = path.join('config', 'roadwarrior.json');
  const result = cli('validate', '--host-checks', example);
  t.equal(result.code, 1);
  t.match(
    result.stderr,
    `${example}: error: ipsec.roadWarrior.certificate: /etc/ipsec.d/certs/vpn.example.com.pem does not exist`,
  );
  t.match(result.stderr, `${example}: invalid (3 errors in the road-warrior files)`);
  t.equal(result.stdout, '');
});

t.test(
  'present and matching files validate; expired or mismatched ones exit 1',
  { skip },
  async (t) => {
    const pki = makeServerPki(dir, 'vpn.example.com');
    const good = desiredFile('good', {
      certificate: pki.serverCert,
      privateKey: pki.serverKey,
      ca: pki.ca,
    });
    const expiredCert = issue(dir, 'expired', {
      keyFile: pki.serverKey,
      caFile: pki.ca,
      caKeyFile: pki.caKey,
      commonName: 'vpn.example.com',
      sans: ['vpn.example.com'],
      flags: ['serverAuth'],
      notBefore: new Date('2020-01-01T00:00:00Z'),
      notAfter: new Date('2021-06-30T00:00:00Z'),
    });
    const expired = desiredFile('expired', {
      certificate: expiredCert,
      privateKey: pki.serverKey,
      ca: pki.ca,
    });
    const mismatched = desiredFile('mismatched', {
      certificate: pki.serverCert,
      privateKey: makeKey(dir, 'stranger', 'rsa'),
      ca: pki.ca,
    });

    const ok = cli('validate', good);
    t.equal(ok.code, 0, ok.stderr);
    t.equal(ok.stderr, '', 'no note and no warning');

    const result = cli('validate', good, expired, mismatched);
    t.equal(result.code, 1);
    t.equal(result.stdout, `${good}: valid\n`);
    t.match(
      result.stderr,
      `${expired}: error: ipsec.roadWarrior.certificate: the server certificate expired on 2021-06-30; clients refuse it`,
    );
    t.match(
      result.stderr,
      `${mismatched}: error: ipsec.roadWarrior.privateKey: does not match the server certificate`,
    );
  },
);
