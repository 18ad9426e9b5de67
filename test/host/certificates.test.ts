/**
 * The road-warrior credential checks against certificates and keys made by the test with
 * strongSwan's pki tool: matching and mismatched keys, SANs, key types, validity (really expired
 * certificates, and the warning window with a moved clock), CA relations, missing, unreadable
 * and malformed files, and the two modes of validate.
 */
import { createPrivateKey } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import {
  checkRoadWarriorCredentials,
  EXPIRY_WARNING_DAYS,
  parseSubjectAltNames,
  readCaCertificate,
  type CredentialCheck,
  type CredentialCheckOptions,
} from '../../agent/host/certificates.js';
import { formatFinding } from '../../agent/model/load.js';
import { loadDesiredState } from '../../agent/model/load.js';
import type { DesiredState } from '../../agent/model/schema.js';
import {
  issue,
  makeCa,
  makeKey,
  makeServerPki,
  pkiSkipReason,
} from '../fixtures/roadwarrior/pki.js';

const skip = pkiSkipReason();
const SERVER_ID = 'vpn.example.com';
const DAY_MS = 86_400_000;

const dir = mkdtempSync(path.join(tmpdir(), 'tw-certificates-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const files = skip ? undefined : makeServerPki(dir, SERVER_ID);

/** A desired state whose road-warrior service uses the given files (default: the good set). */
function state(overrides: Record<string, unknown> = {}): DesiredState {
  const document = {
    version: 1,
    site: { name: 'site-a', subnets: ['10.1.0.0/16'] },
    ipsec: {
      roadWarrior: {
        serverId: SERVER_ID,
        certificate: files!.serverCert,
        privateKey: files!.serverKey,
        ca: files!.ca,
        offeredSubnets: ['10.0.0.0/8'],
        virtualIpPool: '10.10.10.0/24',
        clients: [{ eapId: 'client_a', password: { value: 'pw' }, virtualIp: '10.10.10.2' }],
        ...overrides,
      },
    },
  };
  const result = loadDesiredState(JSON.stringify(document));
  if (!result.ok)
    throw new Error(`test state invalid: ${result.errors.map(formatFinding).join('; ')}`);
  return result.state;
}

async function check(
  desired: DesiredState,
  options: Partial<CredentialCheckOptions> = {},
): Promise<CredentialCheck> {
  return checkRoadWarriorCredentials(desired, { mode: 'required', nowMs: Date.now(), ...options });
}

const lines = (findings: CredentialCheck['errors']) => findings.map(formatFinding);

t.test(
  'a server certificate, its key and its CA that belong together give no finding',
  { skip },
  async (t) => {
    const result = await check(state());
    t.same(result.errors, []);
    t.same(result.warnings, []);
    t.equal(result.serverCredentials?.keyType, 'RSA');
  },
);

t.test('a state without a road-warrior service needs no files', async (t) => {
  const result = await checkRoadWarriorCredentials(
    { version: 1, site: { name: 's', subnets: ['10.1.0.0/16'] } } as DesiredState,
    { mode: 'required', nowMs: Date.now() },
  );
  t.same(result, { errors: [], warnings: [] });
});

t.test(
  'a key that belongs to another certificate is reported as not matching',
  { skip },
  async (t) => {
    const otherKey = makeKey(dir, 'other', 'rsa');
    const result = await check(state({ privateKey: otherKey }));
    t.same(lines(result.errors), [
      `error: ipsec.roadWarrior.privateKey: does not match the server certificate ${files!.serverCert} ` +
        '(their public keys differ)',
    ]);
  },
);

t.test('a server id missing from the SANs is an error that lists the SANs', { skip }, async (t) => {
  const result = await check(state({ serverId: 'other.example.com' }));
  t.equal(result.errors.length, 1);
  t.match(
    formatFinding(result.errors[0]!),
    /^error: ipsec\.roadWarrior\.serverId: "other\.example\.com" is not a subjectAltName/,
  );
  t.match(result.errors[0]!.message, `(its SANs: DNS:${SERVER_ID})`);
});

t.test('a wildcard SAN does not certify the server id, as in strongSwan', { skip }, async (t) => {
  const key = makeKey(dir, 'wild', 'rsa');
  const cert = issue(dir, 'wild', {
    keyFile: key,
    caFile: files!.ca,
    caKeyFile: files!.caKey,
    commonName: SERVER_ID,
    sans: ['*.example.com'],
    flags: ['serverAuth'],
  });
  const result = await check(state({ certificate: cert, privateKey: key }));
  t.equal(result.errors.length, 1);
  t.match(result.errors[0]!.message, 'strongSwan does not accept a wildcard SAN');
});

t.test(
  'IP, @-prefixed and email server ids match SANs of their own kind only',
  { skip },
  async (t) => {
    const key = makeKey(dir, 'kinds', 'rsa');
    const cert = issue(dir, 'kinds', {
      keyFile: key,
      caFile: files!.ca,
      caKeyFile: files!.caKey,
      commonName: 'kinds',
      sans: ['vpn.example.com', '172.16.0.18', 'fd00::18', 'vpn@example.com'],
      flags: ['serverAuth'],
    });
    const withId = (serverId: string) =>
      check(state({ serverId, certificate: cert, privateKey: key }));
    for (const serverId of [
      '172.16.0.18',
      'fd00:0:0::18',
      '@vpn.example.com',
      'VPN.example.com',
      'vpn@example.com',
    ]) {
      t.same((await withId(serverId)).errors, [], `${serverId} is certified`);
    }
    for (const serverId of ['172.16.0.19', 'example.com', 'vpn@other.example.com']) {
      t.equal((await withId(serverId)).errors.length, 1, `${serverId} is not certified`);
    }
  },
);

t.test(
  'an ECDSA key is named ECDSA, and is an error only when Apple clients are expected',
  { skip },
  async (t) => {
    const key = makeKey(dir, 'ec', 'ecdsa');
    const cert = issue(dir, 'ec', {
      keyFile: key,
      caFile: files!.ca,
      caKeyFile: files!.caKey,
      commonName: SERVER_ID,
      sans: [SERVER_ID],
      flags: ['serverAuth'],
    });
    const apple = await check(state({ certificate: cert, privateKey: key, appleClients: true }));
    t.equal(apple.serverCredentials?.keyType, 'ECDSA');
    t.match(lines(apple.errors), [
      /^error: ipsec\.roadWarrior\.privateKey: is an ECDSA key, but appleClients is true: macOS and iOS reject/,
    ]);
    t.equal(apple.errors.length, 1);
    const noApple = await check(state({ certificate: cert, privateKey: key, appleClients: false }));
    t.equal(noApple.serverCredentials?.keyType, 'ECDSA');
    t.same(noApple.errors, []);
  },
);

t.test(
  'an expired certificate is an error, even with everything else right',
  { skip },
  async (t) => {
    const cert = issue(dir, 'expired', {
      keyFile: files!.serverKey,
      caFile: files!.ca,
      caKeyFile: files!.caKey,
      commonName: SERVER_ID,
      sans: [SERVER_ID],
      flags: ['serverAuth'],
      notBefore: new Date('2020-01-01T00:00:00Z'),
      notAfter: new Date('2021-01-01T00:00:00Z'),
    });
    const result = await check(state({ certificate: cert }));
    t.same(lines(result.errors), [
      'error: ipsec.roadWarrior.certificate: the server certificate expired on 2021-01-01; clients refuse it',
    ]);
  },
);

t.test('a certificate not valid yet is an error', { skip }, async (t) => {
  const cert = issue(dir, 'future', {
    keyFile: files!.serverKey,
    caFile: files!.ca,
    caKeyFile: files!.caKey,
    commonName: SERVER_ID,
    sans: [SERVER_ID],
    flags: ['serverAuth'],
    notBefore: new Date('2099-01-01T00:00:00Z'),
    notAfter: new Date('2100-01-01T00:00:00Z'),
  });
  const result = await check(state({ certificate: cert }));
  t.match(lines(result.errors), [
    /certificate: the server certificate is not valid before 2099-01-01/,
  ]);
});

t.test(
  `a warning comes ${EXPIRY_WARNING_DAYS} days before expiry, not earlier`,
  { skip },
  async (t) => {
    const notAfterMs = Date.parse(
      new (await import('node:crypto')).X509Certificate(readFileSync(files!.serverCert)).validTo,
    );
    const inside = await check(state(), {
      nowMs: notAfterMs - (EXPIRY_WARNING_DAYS - 1) * DAY_MS - 1000,
    });
    t.same(inside.errors, []);
    t.match(lines(inside.warnings), [
      /certificate: the server certificate expires on \d{4}-\d\d-\d\d, in 29 days; renew it/,
    ]);
    const outside = await check(state(), {
      nowMs: notAfterMs - (EXPIRY_WARNING_DAYS + 1) * DAY_MS,
    });
    t.same(outside.warnings, []);
    const after = await check(state(), { nowMs: notAfterMs + 1000 });
    t.match(lines(after.errors), [/certificate: the server certificate expired on/]);
  },
);

t.test(
  'a CA that did not issue the server certificate is an error naming both',
  { skip },
  async (t) => {
    const otherCaKey = makeKey(dir, 'other-ca', 'rsa');
    const otherCa = makeCa(dir, 'other-ca', otherCaKey, 'some other CA');
    const result = await check(state({ ca: otherCa }));
    t.same(lines(result.errors), [
      'error: ipsec.roadWarrior.ca: did not issue the server certificate: it was issued by ' +
        '"CN=tunnelwarden test CA", the CA in ' +
        otherCa +
        ' is "CN=some other CA"',
    ]);
  },
);

t.test(
  'a CA with the right name but another key does not pass for the issuer',
  { skip },
  async (t) => {
    const impostorKey = makeKey(dir, 'impostor', 'rsa');
    const impostor = makeCa(dir, 'impostor', impostorKey, 'tunnelwarden test CA');
    const result = await check(state({ ca: impostor }));
    t.equal(result.errors.length, 1);
    t.match(result.errors[0]!.message, 'did not issue the server certificate');
  },
);

t.test('a server certificate given as the CA is reported as no CA', { skip }, async (t) => {
  const result = await check(state({ ca: files!.serverCert }));
  t.match(lines(result.errors), [
    /ca: .* is not a CA certificate \(basicConstraints CA:TRUE is missing\)/,
    /ca: did not issue/,
  ]);
});

t.test('DER certificates and keys are read like PEM ones', { skip }, async (t) => {
  const derKey = path.join(dir, 'server-der.key');
  writeFileSync(
    derKey,
    createPrivateKey(readFileSync(files!.serverKey)).export({ type: 'pkcs1', format: 'der' }),
  );
  const derCert = issue(dir, 'server-der', {
    keyFile: files!.serverKey,
    caFile: files!.ca,
    caKeyFile: files!.caKey,
    commonName: SERVER_ID,
    sans: [SERVER_ID],
    flags: ['serverAuth'],
    outform: 'der',
  });
  chmodSync(derKey, 0o600);
  const result = await check(state({ certificate: derCert, privateKey: derKey }));
  t.same(result.errors, []);
  t.equal(result.serverCredentials?.keyType, 'RSA');
});

t.test('missing files are errors in required mode, one per file', { skip }, async (t) => {
  const result = await check(
    state({
      certificate: '/nonexistent/tw/cert.pem',
      privateKey: '/nonexistent/tw/key.pem',
      ca: '/nonexistent/tw/ca.pem',
    }),
  );
  t.same(lines(result.errors), [
    'error: ipsec.roadWarrior.certificate: /nonexistent/tw/cert.pem does not exist',
    'error: ipsec.roadWarrior.privateKey: /nonexistent/tw/key.pem does not exist',
    'error: ipsec.roadWarrior.ca: /nonexistent/tw/ca.pem does not exist',
  ]);
  t.equal(result.serverCredentials?.keyType, undefined);
});

t.test(
  'off-host (when-present mode) an absent certificate skips every check',
  { skip },
  async (t) => {
    const result = await check(state({ certificate: '/nonexistent/tw/cert.pem' }), {
      mode: 'when-present',
    });
    t.same(result.errors, []);
    t.same(result.warnings, []);
    t.equal(
      result.skipped,
      '/nonexistent/tw/cert.pem does not exist here, so the certificate checks did not run',
    );
  },
);

t.test(
  'a key this user may not read is a warning in when-present mode, an error in required',
  { skip },
  async (t) => {
    const denied = async (file: string) => {
      if (file === files!.serverKey) throw Object.assign(new Error('EACCES'), { code: 'EACCES' });
      return readFileSync(file);
    };
    const lenient = await check(state(), { mode: 'when-present', readFileBytes: denied });
    t.same(lenient.errors, []);
    t.same(lines(lenient.warnings), [
      `warning: ipsec.roadWarrior.privateKey: cannot read ${files!.serverKey} as this user (permission ` +
        'denied): its checks were skipped; run as root',
    ]);
    const strict = await check(state(), { mode: 'required', readFileBytes: denied });
    t.same(lines(strict.errors), [
      `error: ipsec.roadWarrior.privateKey: cannot read ${files!.serverKey}: EACCES`,
    ]);
  },
);

t.test('files that are not certificates or keys say so', { skip }, async (t) => {
  const junk = path.join(dir, 'junk.pem');
  writeFileSync(
    junk,
    '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n',
    { mode: 0o600 },
  );
  const result = await check(state({ certificate: junk, privateKey: junk }));
  t.same(lines(result.errors), [
    `error: ipsec.roadWarrior.certificate: ${junk} is not an X.509 certificate (PEM or DER)`,
    `error: ipsec.roadWarrior.privateKey: ${junk} is not a private key (PEM, or DER as PKCS#8, PKCS#1 or SEC1)`,
  ]);
});

t.test(
  'a passphrase-protected key is an error: our secrets line carries no passphrase',
  { skip },
  async (t) => {
    const encrypted = path.join(dir, 'encrypted.key');
    const pem = createPrivateKey(readFileSync(files!.serverKey)).export({
      type: 'pkcs8',
      format: 'pem',
      cipher: 'aes-256-cbc',
      passphrase: 'not-a-real-passphrase',
    });
    writeFileSync(encrypted, pem, { mode: 0o600 });
    const result = await check(state({ privateKey: encrypted }));
    t.same(lines(result.errors), [
      `error: ipsec.roadWarrior.privateKey: ${encrypted} is encrypted: charon would need its passphrase, ` +
        'which our secrets file does not carry',
    ]);
  },
);

t.test(
  'a key file others can read and a certificate without serverAuth are warnings',
  { skip },
  async (t) => {
    const key = makeKey(dir, 'loose', 'rsa');
    chmodSync(key, 0o644);
    const cert = issue(dir, 'loose', {
      keyFile: key,
      caFile: files!.ca,
      caKeyFile: files!.caKey,
      commonName: SERVER_ID,
      sans: [SERVER_ID],
    });
    const result = await check(state({ certificate: cert, privateKey: key }));
    t.same(result.errors, []);
    t.same(lines(result.warnings), [
      'warning: ipsec.roadWarrior.certificate: has no serverAuth extended key usage; macOS and Windows ' +
        'clients reject an IKEv2 server certificate without it',
      `warning: ipsec.roadWarrior.privateKey: ${key} is readable by others (mode 644); chmod 600 it`,
    ]);
  },
);

t.test('no finding ever carries key material', { skip }, async (t) => {
  const keyBody = readFileSync(files!.serverKey, 'utf8').split('\n').slice(1, 3);
  const otherKey = makeKey(dir, 'leak', 'rsa');
  const result = await check(state({ privateKey: otherKey, serverId: 'x.example.com' }));
  const text = JSON.stringify(result);
  for (const line of [...keyBody, ...readFileSync(otherKey, 'utf8').split('\n').slice(1, 3)]) {
    t.notOk(text.includes(line), 'a key line is absent');
  }
});

t.test(
  'readCaCertificate returns the DER bytes and the common name of the CA',
  { skip },
  async (t) => {
    const ca = await readCaCertificate(state().ipsec!.roadWarrior!);
    t.equal(ca.commonName, 'tunnelwarden test CA');
    const pemBody = readFileSync(files!.ca, 'utf8').replace(/-----[A-Z ]+-----|\s/g, '');
    t.equal(ca.der.toString('base64'), pemBody);
  },
);

t.test('SAN text is split as Node prints it, quoted values included', async (t) => {
  t.same(parseSubjectAltNames('DNS:a.example, IP Address:172.16.0.18, email:x@y.example'), [
    { type: 'DNS', value: 'a.example' },
    { type: 'IP Address', value: '172.16.0.18' },
    { type: 'email', value: 'x@y.example' },
  ]);
  t.same(parseSubjectAltNames('DNS:"evil.example, DNS:vpn.example.com", DNS:b.example'), [
    { type: 'DNS', value: 'evil.example, DNS:vpn.example.com' },
    { type: 'DNS', value: 'b.example' },
  ]);
  t.same(parseSubjectAltNames(undefined), []);
});
