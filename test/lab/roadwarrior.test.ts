/**
 * Lab: the road-warrior service end to end. Site A runs `tunnelwarden apply` with a site-to-site
 * conn to site B and the road-warrior service of config/roadwarrior.json (certificates made by
 * this suite with strongSwan's pki tool, passwords in 0600 files). Sites C and D act as laptops:
 * strongSwan configured from `tunnelwarden client-profile --format strongswan` output, IKEv2 with
 * EAP-MSCHAPv2. Checked: the fixed virtual IP and a ping into site A's subnet; a wrong password
 * rejected; clients added, changed and removed while every other SA keeps its IKE_SA unique id
 * and SPIs; `validate` and `apply` refusing an expired or mismatched certificate.
 *
 * Addressing (kernel-libipsec routes every CHILD_SA's remote selector through its TUN device in
 * table 220, so no two selectors of one site may collide): the laptops' own subnets are outside
 * 10.0.0.0/8, the offered subnet, and each client has a /32 of its own in 10.10.10.0/24.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { parseStrokeStatus } from '../../agent/observe/parse/stroke.js';
import type { IkeSa } from '../../agent/observe/parse/types.js';
import { issue, makeKey, makeServerPki, pkiSkipReason } from '../fixtures/roadwarrior/pki.js';
import { Lab, labSkipReason, REPO_ROOT, type ExecResult, type Site } from './harness.js';

const skip = labSkipReason() ?? pkiSkipReason();
const CLI = path.join(REPO_ROOT, 'dist', 'agent', 'cli', 'bin.js');
const SERVER_ADDRESS = '172.16.0.18';
const PSK_FILE = '/etc/tunnelwarden/secrets/a-to-b.psk';
const TEST_PSK = 'twr-lab-psk-not-a-real-secret';
const PASSWORDS: Record<string, string> = {
  client_a: 'twr-Lab-pw-a #1',
  client_b: 'twr-Lab-pw-b #2',
};
const CONN = 'ikev2-vpn';
const POLL_LIMIT_MS = 20_000;

type Desired = Record<string, any>;

function example(name: string): Desired {
  const desired = JSON.parse(readFileSync(path.join(REPO_ROOT, 'config', name), 'utf8'));
  delete desired.$schema;
  delete desired.transit;
  delete desired.masquerade;
  delete desired.lxd;
  return desired;
}

/** Site A: site-a.json's conn to B plus the road-warrior service, with the given clients. */
function siteADesired(clients: string[], virtualIps: Record<string, string> = {}): Desired {
  const desired = example('site-a.json');
  const service = example('roadwarrior.json').ipsec.roadWarrior;
  service.clients = service.clients
    .filter((client: Desired) => clients.includes(client.eapId))
    .map((client: Desired) => ({
      ...client,
      virtualIp: virtualIps[client.eapId] ?? client.virtualIp,
    }));
  desired.ipsec.roadWarrior = service;
  return desired;
}

async function apply(site: Site, file: string, desired: Desired) {
  await writeFile(file, JSON.stringify(desired, null, 2));
  return site.exec(['node', CLI, 'apply', file, '--log-level', 'info'], { timeoutMs: 90_000 });
}

/** Asserts a command exited 0, with its output as diagnostics instead of in the name. */
function exitsZero(t: Test, result: ExecResult, what: string): void {
  t.equal(result.code, 0, what, { stdout: result.stdout, stderr: result.stderr });
}

async function status(site: Site) {
  return parseStrokeStatus((await site.execOk(['ipsec', 'statusall'])).stdout);
}

/** Unique id and SPIs of the ESTABLISHED IKE_SA of each conn, and of its CHILD_SAs. */
async function saIdentity(site: Site, conns: string[]): Promise<Record<string, string>> {
  const observed = await status(site);
  const describe = (sa: IkeSa) =>
    `#${sa.uniqueId} ${sa.initiatorSpi}/${sa.responderSpi} ` +
    sa.children.map((child) => `{${child.uniqueId}} ${child.spiIn}/${child.spiOut}`).join(' ');
  return Object.fromEntries(
    conns.map((conn) => {
      const sa = observed.ikeSas.find(
        (candidate) => candidate.conn === conn && candidate.state === 'ESTABLISHED',
      );
      return [conn, sa ? describe(sa) : 'none'];
    }),
  );
}

async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  limitMs = POLL_LIMIT_MS,
): Promise<boolean> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The parts of a `client-profile --format strongswan` bundle. */
function bundleParts(
  bundle: string,
): { path: string; append: boolean; mode: number; content: string }[] {
  const parts: { path: string; append: boolean; mode: number; content: string }[] = [];
  for (const line of bundle.split('\n')) {
    const header = /^# ==> (\S+) \((append|write, mode (\d+))\): /.exec(line);
    if (header) {
      const append = header[2] === 'append';
      parts.push({
        path: header[1]!,
        append,
        mode: append ? 0 : parseInt(header[3]!, 8),
        content: '',
      });
    } else if (parts.length > 0) {
      parts.at(-1)!.content += `${line}\n`;
    }
  }
  return parts;
}

/** A laptop: strongSwan configured only from a client-profile bundle (plus its pristine files). */
class Laptop {
  private pristine: Record<string, string> = {};
  constructor(readonly site: Site) {}

  async configure(bundle: string, extraSecret?: string): Promise<void> {
    if ((await this.site.strongswanPids()).length > 0) await this.site.stopStrongswan();
    for (const file of ['/etc/ipsec.conf', '/etc/ipsec.secrets']) {
      this.pristine[file] ??= await this.site.readFile(file);
    }
    for (const part of bundleParts(bundle)) {
      if (part.append) {
        const mode = part.path.endsWith('.secrets') ? 0o600 : 0o644;
        const extra = part.path.endsWith('.secrets') && extraSecret ? `${extraSecret}\n` : '';
        await this.site.writeFile(
          part.path,
          `${this.pristine[part.path] ?? ''}\n${part.content}${extra}`,
          mode,
        );
      } else {
        await this.site.writeFile(part.path, part.content, part.mode);
      }
    }
    await this.site.startStrongswan();
  }

  up() {
    return this.site.exec(['ipsec', 'up', CONN], { timeoutMs: 60_000 });
  }

  async virtualIps(): Promise<string[]> {
    const text = (await this.site.execOk(['ip', '-o', '-4', 'addr', 'show'])).stdout;
    return [...text.matchAll(/inet (10\.10\.10\.\d+)\/32/g)].map((match) => match[1]!);
  }

  async established(): Promise<IkeSa | undefined> {
    return (await status(this.site)).ikeSas.find(
      (sa) => sa.conn === CONN && sa.state === 'ESTABLISHED',
    );
  }
}

t.test('the road-warrior service in a four-site lab', { skip }, async (t) => {
  const lab = await Lab.create({
    prefix: 'twr',
    sites: [
      { name: 'A', transitAddress: `${SERVER_ADDRESS}/24`, subnetAddress: '10.1.0.1/16' },
      { name: 'B', transitAddress: '172.16.0.2/24', subnetAddress: '10.2.0.1/16' },
      { name: 'C', transitAddress: '172.16.0.50/24', subnetAddress: '192.168.50.1/24' },
      { name: 'D', transitAddress: '172.16.0.51/24', subnetAddress: '192.168.51.1/24' },
    ],
  });
  t.teardown(() => lab.destroy());
  const [a, b] = [lab.site('A'), lab.site('B')];
  const laptopC = new Laptop(lab.site('C'));
  const laptopD = new Laptop(lab.site('D'));
  const work = path.join(lab.dir, 'work');
  await mkdir(work, { recursive: true });
  const fileA = path.join(work, 'site-a.json');
  const fileB = path.join(work, 'site-b.json');
  const service = example('roadwarrior.json').ipsec.roadWarrior;

  // Credentials: PKI made here, copied to the paths config/roadwarrior.json names.
  const pki = makeServerPki(work, service.serverId);
  await a.writeFile(service.certificate, readFileSync(pki.serverCert, 'utf8'));
  await a.writeFile(service.privateKey, readFileSync(pki.serverKey, 'utf8'), 0o600);
  await a.writeFile(service.ca, readFileSync(pki.ca, 'utf8'));
  for (const client of service.clients) {
    await a.writeFile(client.password.file, `${PASSWORDS[client.eapId]}\n`, 0o600);
  }
  for (const site of [a, b]) await site.writeFile(PSK_FILE, `${TEST_PSK}\n`, 0o600);

  const profile = async (eapId: string, includePassword: boolean) => {
    const args = [
      'client-profile',
      eapId,
      '--config',
      fileA,
      '--format',
      'strongswan',
      '--remote-address',
      SERVER_ADDRESS,
    ];
    const result = await a.execOk([
      'node',
      CLI,
      ...args,
      ...(includePassword ? ['--include-password'] : []),
    ]);
    return result.stdout;
  };
  const others = ['a-to-b', `${CONN}-client_a`];
  let serverFiles: { certificate: string; privateKey: string } | undefined;
  const desiredA = (clients: string[], virtualIps: Record<string, string> = {}) => {
    const desired = siteADesired(clients, virtualIps);
    if (serverFiles) Object.assign(desired.ipsec.roadWarrior, serverFiles);
    return desired;
  };

  await t.test(
    'apply on both sites brings up the site-to-site tunnel and loads every client conn',
    async (t) => {
      const resultB = await apply(b, fileB, example('site-b.json'));
      exitsZero(t, resultB, 'apply on site B exits 0');
      const resultA = await apply(a, fileA, desiredA(['client_a']));
      exitsZero(t, resultA, 'apply on site A exits 0');
      const observed = await status(a);
      t.ok(
        observed.connections.some((conn) => conn.name === `${CONN}-client_a`),
        'client conn loaded',
      );
      t.notOk(
        observed.connections.some((conn) => conn.name === CONN),
        'the template stays unloaded',
      );
      const secrets = await a.readFile('/etc/ipsec.d/tunnelwarden.secrets');
      t.match(secrets, `\n: RSA ${service.privateKey}\n`, 'the RSA key is announced as RSA');
      t.equal(
        (await a.execOk(['stat', '-c', '%a', '/etc/ipsec.d/tunnelwarden.secrets'])).stdout.trim(),
        '600',
      );
      t.notMatch(
        resultA.stdout + resultA.stderr,
        PASSWORDS.client_a!,
        'no password in apply output',
      );
      const log = await a.readFile('/var/log/charon.log');
      t.notMatch(log, 'not confirmed by certificate', 'charon accepts the server id as certified');
    },
  );

  await t.test(
    'a laptop configured from the strongSwan profile gets its fixed virtual IP and reaches site A',
    async (t) => {
      await laptopC.configure(await profile('client_a', true));
      exitsZero(t, await laptopC.up(), 'ipsec up on laptop C exits 0');
      t.same(await laptopC.virtualIps(), ['10.10.10.2'], 'virtual IP 10.10.10.2 installed');
      t.ok(
        await laptopC.site.ping('10.10.10.2', '10.1.0.1'),
        'ping 10.10.10.2 -> 10.1.0.1 crosses the tunnel',
      );
      const sa = (await status(a)).ikeSas.find(
        (candidate) => candidate.conn === `${CONN}-client_a`,
      );
      t.equal(sa?.state, 'ESTABLISHED');
      t.equal(sa?.remoteId, 'client_a');
      t.same(sa?.children[0]?.remoteTs, ['10.10.10.2/32']);
      t.ok(await a.ping('10.1.0.1', '10.2.0.1'), 'the site-to-site tunnel carries traffic too');
    },
  );

  await t.test('a second apply takes no action and restarts nothing', async (t) => {
    const before = await saIdentity(a, others);
    const result = await apply(a, fileA, desiredA(['client_a']));
    exitsZero(t, result, 'apply exits 0');
    t.equal(result.stdout.trim(), 'No action: the host already matches the desired state.');
    t.same(await saIdentity(a, others), before);
  });

  await t.test(
    'a wrong password is rejected and the connected client is not disturbed',
    async (t) => {
      const before = await saIdentity(a, others);
      await laptopD.configure(
        await profile('client_a', false),
        'client_a : EAP "not-the-password"',
      );
      const up = await laptopD.up();
      t.match(up.stdout, `establishing connection '${CONN}' failed`, 'ipsec up fails', {
        stdout: up.stdout,
      });
      t.match(up.stdout, /EAP-MS-CHAPv2 failed/, 'EAP-MSCHAPv2 is what failed');
      t.equal(await laptopD.established(), undefined, 'no IKE_SA on the laptop');
      t.same(await laptopD.virtualIps(), [], 'no virtual IP');
      t.same(await saIdentity(a, others), before, 'client_a and a-to-b SAs unchanged');
      const log = await a.readFile('/var/log/charon.log');
      t.ok(
        /<ikev2-vpn-client_a\|\d+> EAP-MS-CHAPv2 verification failed/.test(log),
        'the server logged the failed verification',
      );
    },
  );

  await t.test(
    'a client added while another is connected touches only the new client',
    async (t) => {
      const before = await saIdentity(a, others);
      const laptopBefore = (await laptopC.established())?.uniqueId;
      const result = await apply(a, fileA, desiredA(['client_a', 'client_b']));
      exitsZero(t, result, 'apply exits 0');
      t.match(
        result.stdout,
        `ipsec write-conf /etc/ipsec.d/tunnelwarden.conf [added: ${CONN}-client_b]`,
      );
      t.notMatch(
        result.stdout,
        /terminate|initiate|start-strongswan/,
        'nothing torn down or started',
      );
      const after = await saIdentity(a, others);
      t.comment(`SAs before adding client_b: ${JSON.stringify(before)}`);
      t.comment(`SAs after adding client_b:  ${JSON.stringify(after)}`);
      t.same(after, before, 'IKE_SA unique ids and SPIs of client_a and a-to-b unchanged');
      t.equal(
        (await laptopC.established())?.uniqueId,
        laptopBefore,
        "the laptop's own IKE_SA is the same",
      );
      t.ok(await laptopC.site.ping('10.10.10.2', '10.1.0.1'), 'client_a still reaches site A');

      await laptopD.configure(await profile('client_b', true));
      exitsZero(t, await laptopD.up(), 'ipsec up on laptop D exits 0');
      t.same(await laptopD.virtualIps(), ['10.10.10.3']);
      t.ok(await laptopD.site.ping('10.10.10.3', '10.1.0.1'), 'client_b reaches site A');
      t.same(await saIdentity(a, others), before, 'still unchanged after client_b connected');
    },
  );

  await t.test(
    "a client's changed virtual IP touches only that client and applies when it reconnects",
    async (t) => {
      const before = await saIdentity(a, others);
      const result = await apply(
        a,
        fileA,
        desiredA(['client_a', 'client_b'], { client_b: '10.10.10.4' }),
      );
      exitsZero(t, result, 'apply exits 0');
      t.match(result.stdout, `[changed: ${CONN}-client_b]`);
      t.same(await saIdentity(a, others), before, 'client_a and a-to-b unchanged');
      t.comment(
        `client_b right after the change: ${JSON.stringify(await saIdentity(a, [`${CONN}-client_b`]))}`,
      );
      await laptopD.site.exec(['ipsec', 'down', CONN]);
      t.ok(
        await waitFor('laptop D down', async () => (await laptopD.established()) === undefined),
        'laptop D went down',
      );
      exitsZero(t, await laptopD.up(), 'laptop D reconnects');
      t.same(await laptopD.virtualIps(), ['10.10.10.4'], 'the new address after reconnecting');
      t.ok(await laptopD.site.ping('10.10.10.4', '10.1.0.1'));
      t.same(await saIdentity(a, others), before, 'client_a and a-to-b still unchanged');
    },
  );

  await t.test(
    "a client claiming another client's IKE identity with its own password is rejected",
    async (t) => {
      // The server pins each client conn's EAP identity (no EAP-Identity round), so the password
      // checked is that of the identity that chose the conn. With eap_identity=%identity on the
      // server this same client would get client_a's conn and virtual IP.
      const before = await saIdentity(a, others);
      const spoofing = (await profile('client_a', false)).replace(
        '\teap_identity=client_a\n',
        '\teap_identity=client_b\n',
      );
      await laptopD.configure(spoofing, `client_b : EAP "${PASSWORDS.client_b}"`);
      const up = await laptopD.up();
      t.match(up.stdout, `establishing connection '${CONN}' failed`, 'ipsec up fails', {
        stdout: up.stdout,
      });
      t.same(await laptopD.virtualIps(), [], "no virtual IP, client_a's least of all");
      t.same(await saIdentity(a, others), before, 'client_a and a-to-b unchanged');
      await laptopD.configure(await profile('client_b', true));
      exitsZero(t, await laptopD.up(), 'laptop D reconnects as client_b');
    },
  );

  await t.test(
    'a certificate renewed under new file names is loaded without dropping any SA',
    async (t) => {
      const before = await saIdentity(a, [...others, `${CONN}-client_b`]);
      const renewedKey = makeKey(work, 'renewed');
      const renewed = issue(work, 'renewed', {
        keyFile: renewedKey,
        caFile: pki.ca,
        caKeyFile: pki.caKey,
        commonName: `${service.serverId} renewed`,
        sans: [service.serverId],
        flags: ['serverAuth', 'ikeIntermediate'],
      });
      serverFiles = {
        certificate: '/etc/ipsec.d/certs/vpn.example.com-renewed.pem',
        privateKey: '/etc/ipsec.d/private/vpn.example.com-renewed.pem',
      };
      await a.writeFile(serverFiles.certificate, readFileSync(renewed, 'utf8'));
      await a.writeFile(serverFiles.privateKey, readFileSync(renewedKey, 'utf8'), 0o600);
      const result = await apply(
        a,
        fileA,
        desiredA(['client_a', 'client_b'], { client_b: '10.10.10.4' }),
      );
      exitsZero(t, result, 'apply exits 0');
      t.match(result.stdout, `ipsec write-conf /etc/ipsec.d/tunnelwarden.conf [changed: ${CONN}]`);
      t.match(result.stdout, 'ipsec reread-secrets charon');
      t.same(
        await saIdentity(a, [...others, `${CONN}-client_b`]),
        before,
        'every SA kept its unique id and SPIs',
      );
      const loaded = (await a.execOk(['ipsec', 'statusall'])).stdout;
      for (const conn of [`${CONN}-client_a`, `${CONN}-client_b`]) {
        t.match(
          loaded,
          `${conn}:    cert:  "CN=${service.serverId} renewed"`,
          `${conn} serves the renewed certificate`,
        );
      }
      await laptopD.site.exec(['ipsec', 'down', CONN]);
      const up = await laptopD.up();
      t.match(
        up.stdout,
        `received end entity cert "CN=${service.serverId} renewed"`,
        'a client receives it',
        { stdout: up.stdout },
      );
      t.match(
        up.stdout,
        `connection '${CONN}' established successfully`,
        'and authenticates the server with the new key',
      );
      const again = await apply(
        a,
        fileA,
        desiredA(['client_a', 'client_b'], { client_b: '10.10.10.4' }),
      );
      t.equal(again.stdout.trim(), 'No action: the host already matches the desired state.');
    },
  );

  await t.test('a removed client loses its SA and conn; the others keep theirs', async (t) => {
    const before = await saIdentity(a, others);
    const result = await apply(a, fileA, desiredA(['client_a'], {}));
    exitsZero(t, result, 'apply exits 0');
    t.match(result.stdout, `ipsec terminate ${CONN}-client_b`);
    const observed = await status(a);
    t.notOk(
      observed.connections.some((conn) => conn.name === `${CONN}-client_b`),
      'conn unloaded',
    );
    t.notOk(
      observed.ikeSas.some((sa) => sa.conn === `${CONN}-client_b`),
      'SA gone on the server',
    );
    t.ok(
      await waitFor('laptop D told', async () => (await laptopD.established()) === undefined),
      'laptop D saw the delete',
    );
    t.notMatch(await a.readFile('/etc/ipsec.d/tunnelwarden.secrets'), 'client_b', 'secret removed');
    t.same(await saIdentity(a, others), before, 'client_a and a-to-b unchanged');
    t.ok(await laptopC.site.ping('10.10.10.2', '10.1.0.1'));
  });

  await t.test('validate and apply refuse an expired or mismatched certificate', async (t) => {
    const expired = issue(work, 'expired', {
      keyFile: pki.serverKey,
      caFile: pki.ca,
      caKeyFile: pki.caKey,
      commonName: service.serverId,
      sans: [service.serverId],
      flags: ['serverAuth'],
      notBefore: new Date('2020-01-01T00:00:00Z'),
      notAfter: new Date('2021-01-01T00:00:00Z'),
    });
    await a.writeFile('/etc/ipsec.d/certs/expired.pem', readFileSync(expired, 'utf8'));
    await a.writeFile(
      '/etc/ipsec.d/private/stranger.pem',
      readFileSync(makeKey(work, 'stranger'), 'utf8'),
      0o600,
    );
    const withFiles = (certificate: string, privateKey: string) => {
      const desired = desiredA(['client_a']);
      Object.assign(desired.ipsec.roadWarrior, { certificate, privateKey });
      return desired;
    };
    const expiredFile = path.join(work, 'expired.json');
    const mismatchedFile = path.join(work, 'mismatched.json');
    await writeFile(
      expiredFile,
      JSON.stringify(withFiles('/etc/ipsec.d/certs/expired.pem', service.privateKey)),
    );
    await writeFile(
      mismatchedFile,
      JSON.stringify(withFiles(service.certificate, '/etc/ipsec.d/private/stranger.pem')),
    );

    const validated = await a.exec(['node', CLI, 'validate', fileA, expiredFile, mismatchedFile]);
    t.equal(validated.code, 1);
    t.equal(validated.stdout, `${fileA}: valid\n`);
    t.match(
      validated.stderr,
      `${expiredFile}: error: ipsec.roadWarrior.certificate: the server certificate expired on 2021-01-01`,
    );
    t.match(
      validated.stderr,
      `${mismatchedFile}: error: ipsec.roadWarrior.privateKey: does not match the server certificate`,
    );

    const before = await saIdentity(a, others);
    const confBefore = await a.readFile('/etc/ipsec.d/tunnelwarden.conf');
    const refused = await a.exec(['node', CLI, 'apply', mismatchedFile], { timeoutMs: 90_000 });
    t.equal(refused.code, 4, 'apply exits 4', { stdout: refused.stdout, stderr: refused.stderr });
    t.match(
      refused.stderr,
      /ipsec: error: ipsec\.roadWarrior\.privateKey: does not match the server certificate .*\[TW_CERTIFICATE_INVALID\]/,
    );
    t.equal(await a.readFile('/etc/ipsec.d/tunnelwarden.conf'), confBefore, 'conf file untouched');
    t.same(await saIdentity(a, others), before, 'SAs untouched');
  });
});
