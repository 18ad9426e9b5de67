/**
 * Lab: two conns to the same peer with the same IKE settings. strongSwan merges the second
 * into the first's config and runs both CHILD_SAs under one IKE_SA; apply must still see both
 * conns as loaded and up, bring both up, and then take no action.
 */
import { writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { parseStrokeStatus } from '../../agent/observe/parse/stroke.js';
import { Lab, labSkipReason, REPO_ROOT } from './harness.js';
import { applyIn as apply, EXAMPLE_SITES, labDesired, writePsk, type Desired } from './ipsec-lab.js';

const skip = labSkipReason();
const CAPTURE = path.join(REPO_ROOT, 'test', 'fixtures', 'strongswan-5.9.8-libipsec', 'lab-stroke-statusall-merged-conns.txt');

/** The example plus a second conn between the same hosts for another subnet pair. */
function withSecondConn(example: string, local: string, remote: string): Desired {
  return labDesired(example, (desired) => {
    const first = desired.ipsec.connections[0];
    const second = structuredClone(first);
    second.name = `${first.name}-2`;
    second.local.subnets = [local];
    second.remote.subnets = [remote];
    delete second.probe;
    desired.ipsec.connections.push(second);
  });
}

t.test('two conns merged into one IKE_SA are both brought up, then left alone', { skip }, async (t) => {
  const lab = await Lab.create({ prefix: 'twmg', sites: EXAMPLE_SITES });
  t.teardown(() => lab.destroy());
  const a = lab.site('A');
  const b = lab.site('B');
  // kernel-libipsec routes each CHILD_SA via a local address inside its local subnet.
  await a.execOk(['ip', 'addr', 'add', '10.11.0.1/16', 'dev', 'site0']);
  await b.execOk(['ip', 'addr', 'add', '10.12.0.1/16', 'dev', 'site0']);
  const work = path.join(lab.dir, 'desired');
  await mkdir(work, { recursive: true });
  const fileA = path.join(work, 'a.json');
  const fileB = path.join(work, 'b.json');
  await writeFile(fileA, JSON.stringify(withSecondConn('site-a.json', '10.11.0.0/16', '10.12.0.0/16')));
  await writeFile(fileB, JSON.stringify(withSecondConn('site-b.json', '10.12.0.0/16', '10.11.0.0/16')));
  await writePsk([a, b], 'merged-lab-psk-0123456789');

  const resultB = await apply(b, fileB);
  t.equal(resultB.code, 0, resultB.stdout + resultB.stderr);
  const resultA = await apply(a, fileA);
  t.equal(resultA.code, 0, resultA.stdout + resultA.stderr);

  const statusall = (await a.execOk(['ipsec', 'statusall'])).stdout;
  if (process.env.TW_CAPTURE_FIXTURES === '1') writeFileSync(CAPTURE, statusall);
  const status = parseStrokeStatus(statusall);
  const children = status.ikeSas.flatMap((sa) => sa.children.filter((child) => child.state === 'INSTALLED'));
  t.same(children.map((child) => child.conn).sort(), ['a-to-b', 'a-to-b-2'], 'both CHILD_SAs installed');
  t.equal(new Set(status.ikeSas.map((sa) => sa.uniqueId)).size, 1, 'under one IKE_SA');
  t.ok(await a.ping('10.1.0.1', '10.2.0.1'), 'first subnet pair crosses');
  t.ok(await a.ping('10.11.0.1', '10.12.0.1'), 'second subnet pair crosses');

  for (const [site, file] of [
    [a, fileA],
    [b, fileB],
  ] as const) {
    const again = await apply(site, file);
    t.equal(again.stdout.trim(), 'No action: the host already matches the desired state.', again.stderr);
  }
});
