/**
 * Lab: `tunnelwarden apply` with the example desired states brings a real two-site tunnel up,
 * a second apply takes no action, a subnet added on both sides becomes a live traffic
 * selector, and removing the connection unloads it while a foreign conn stays loaded.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { parseStrokeStatus } from '../../agent/observe/parse/stroke.js';
import { Lab, labSkipReason, type Site } from './harness.js';
import { applyIn, EXAMPLE_SITES, labDesired, writePsk, type Desired } from './ipsec-lab.js';

const skip = labSkipReason();
const TEST_PSK = 'lab-psk-Zq8#v1 with spaces';
const FOREIGN_CONN = [
  '',
  'conn foreign-by-hand',
  '\tleft=172.16.0.18',
  '\tright=172.16.0.99',
  '\tleftsubnet=10.1.0.0/24',
  '\trightsubnet=10.99.0.0/16',
  '\tauthby=secret',
  '\tauto=add',
  '',
].join('\n');

async function apply(site: Site, file: string, desired: Desired) {
  await writeFile(file, JSON.stringify(desired, null, 2));
  return applyIn(site, file, 'info');
}

async function status(site: Site) {
  return parseStrokeStatus((await site.execOk(['ipsec', 'statusall'])).stdout);
}

t.test('apply reconciles strongSwan connections in a two-site lab', { skip }, async (t) => {
  const lab = await Lab.create({ prefix: 'twi', sites: EXAMPLE_SITES });
  t.teardown(() => lab.destroy());
  const a = lab.site('A');
  const b = lab.site('B');
  const work = path.join(lab.dir, 'desired');
  await mkdir(work, { recursive: true });
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const fileA = path.join(work, 'site-a.json');
  const fileB = path.join(work, 'site-b.json');
  const desiredA = labDesired('site-a.json');
  const desiredB = labDesired('site-b.json');
  await writePsk([a, b], TEST_PSK);
  await a.writeFile('/etc/ipsec.conf', (await a.readFile('/etc/ipsec.conf')) + FOREIGN_CONN);
  const ipsecConfBefore = await a.readFile('/etc/ipsec.conf');

  await t.test('an invalid desired state exits 1 and changes nothing', async (t) => {
    const broken = structuredClone(desiredA);
    broken.ipsec.connections[0].remote.subnets = ['10.1.0.0/24'];
    const result = await apply(a, fileA, broken);
    t.equal(result.code, 1, result.stderr);
    t.match(result.stderr, /ipsec\.connections\[0\]\.remote\.subnets\[0\]: overlaps local subnet/);
    t.match(result.stderr, /invalid \(\d+ errors?\); nothing was changed/);
    t.equal(await a.readFile('/etc/ipsec.conf'), ipsecConfBefore, 'ipsec.conf untouched');
    t.notOk(await a.exists('/etc/ipsec.d/tunnelwarden.conf'), 'no conf file written');
    t.notOk(await a.exists('/etc/ipsec.d/tunnelwarden.secrets'), 'no secrets file written');
  });

  await t.test('apply on both sites brings the tunnel up and traffic crosses it', async (t) => {
    const resultB = await apply(b, fileB, desiredB);
    t.equal(resultB.code, 0, `site B apply: ${resultB.stdout}${resultB.stderr}`);
    const resultA = await apply(a, fileA, desiredA);
    t.equal(resultA.code, 0, `site A apply: ${resultA.stdout}${resultA.stderr}`);
    t.match(resultA.stdout, /ipsec initiate a-to-b/);
    t.comment(`site A apply printed:\n${resultA.stdout}`);

    for (const [site, name] of [
      [a, 'a-to-b'],
      [b, 'b-to-a'],
    ] as const) {
      const observed = await status(site);
      const sa = observed.ikeSas.find((candidate) => candidate.conn === name);
      t.equal(sa?.state, 'ESTABLISHED', `${name} IKE_SA established`);
      t.equal(sa?.children[0]?.state, 'INSTALLED', `${name} CHILD_SA installed`);
    }
    t.ok(await a.ping('10.1.0.1', '10.2.0.1'), 'ping 10.1.0.1 -> 10.2.0.1 crosses the tunnel');

    const secretsMode = (await a.execOk(['stat', '-c', '%a', '/etc/ipsec.d/tunnelwarden.secrets'])).stdout.trim();
    t.equal(secretsMode, '600', 'secrets file is root-only');
    t.notMatch(resultA.stdout + resultA.stderr + resultB.stdout + resultB.stderr, 'Zq8#v1', 'no PSK in output');
    t.notMatch(await a.readFile('/etc/ipsec.d/tunnelwarden.conf'), 'Zq8#v1', 'no PSK in the conf file');
  });

  await t.test('a second apply takes no action', async (t) => {
    for (const [site, file, desired] of [
      [b, fileB, desiredB],
      [a, fileA, desiredA],
    ] as const) {
      const pidsBefore = await site.strongswanPids();
      const result = await apply(site, file, desired);
      t.equal(result.code, 0, result.stderr);
      t.equal(result.stdout.trim(), 'No action: the host already matches the desired state.');
      t.same(await site.strongswanPids(), pidsBefore, 'charon not restarted');
    }
  });

  await t.test('a subnet added on both sides becomes a live traffic selector', async (t) => {
    desiredA.ipsec.connections[0].local.subnets.push('10.11.0.0/16');
    desiredB.ipsec.connections[0].remote.subnets.push('10.11.0.0/16');
    await a.execOk(['ip', 'addr', 'add', '10.11.0.1/16', 'dev', 'site0']);
    const resultB = await apply(b, fileB, desiredB);
    t.equal(resultB.code, 0, resultB.stdout + resultB.stderr);
    const resultA = await apply(a, fileA, desiredA);
    t.equal(resultA.code, 0, resultA.stdout + resultA.stderr);

    const observed = await status(a);
    const child = observed.ikeSas
      .filter((sa) => sa.conn === 'a-to-b' && sa.state === 'ESTABLISHED')
      .flatMap((sa) => sa.children)
      .find((candidate) => candidate.state === 'INSTALLED');
    t.same(child?.localTs.slice().sort(), ['10.1.0.0/16', '10.11.0.0/16']);
    t.ok(await a.ping('10.11.0.1', '10.2.0.1'), 'ping from the new subnet crosses the tunnel');
  });

  await t.test('removing the connection unloads it and leaves a foreign conn loaded', async (t) => {
    desiredA.ipsec.connections = [];
    const result = await apply(a, fileA, desiredA);
    t.equal(result.code, 0, result.stdout + result.stderr);
    const observed = await status(a);
    t.notOk(observed.connections.some((conn) => conn.name === 'a-to-b'), 'a-to-b unloaded');
    t.notOk(observed.ikeSas.some((sa) => sa.conn === 'a-to-b'), 'a-to-b SAs gone');
    t.ok(observed.connections.some((conn) => conn.name === 'foreign-by-hand'), 'foreign conn loaded');
    t.match(await a.readFile('/etc/ipsec.conf'), FOREIGN_CONN, 'foreign conn text untouched');
    const again = await apply(a, fileA, desiredA);
    t.equal(again.stdout.trim(), 'No action: the host already matches the desired state.');
  });
});
