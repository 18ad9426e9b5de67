/**
 * Lab: ViciClient against real charon in a two-site lab with a hand-written PSK ipsec.conf.
 * The conn is loaded by stroke and driven over vici: listed, initiated, watched through
 * ike-/child-updown and ike-/child-rekey events, listed as SAs (and mapped), terminated; then
 * charon is killed and the client must fail fast with the typed error, and a new client must
 * work once starter has restarted charon.
 *
 * Most steps connect from this test process to site A's socket through the host path of the
 * site's private /run (pathname unix sockets do not belong to a network namespace); one step
 * runs the client inside site A on the default path /run/charon.vici.
 *
 * With TW_CAPTURE_FIXTURES=1 the list-sas answers and the events are written to
 * test/fixtures/vici/ as JSON.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { ErrorCode, TunnelwardenError } from '../../agent/errors.js';
import { ViciClient, type ViciEvent, type ViciMessage } from '../../agent/host/vici.js';
import {
  connsFromViciRekeyEvent,
  ikeSasFromVici,
  ikeSasFromViciEvent,
} from '../../agent/observe/vici-sas.js';
import { Lab, labSkipReason, REPO_ROOT, type Site } from './harness.js';

const skip = labSkipReason();
const PREFIX = 'twv';
const CONN = 'a-to-b';
const A_TRANSIT = '172.16.0.18';
const B_TRANSIT = '172.16.0.2';
const A_SUBNET = '10.1.0.0/16';
const B_SUBNET = '10.2.0.0/16';
const PSK_SECRETS = `${A_TRANSIT} ${B_TRANSIT} : PSK "vici-lab-only-not-a-secret"\n`;
/** Bound of every poll here; no assertion rests on a fixed sleep. */
const WAIT_MS = 20_000;
const FIXTURE_DIR = path.join(REPO_ROOT, 'test', 'fixtures', 'vici');
const TSX_LOADER = path.join(REPO_ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs');

/** One IKEv2 PSK tunnel between the site subnets, added but not started (auto=add). */
function ipsecConf(me: string, peer: string, mySubnet: string, peerSubnet: string): string {
  return [
    'config setup',
    '',
    `conn ${CONN}`,
    '\tkeyexchange=ikev2',
    '\tauthby=secret',
    `\tleft=${me}`,
    `\tleftid=${me}`,
    `\tleftsubnet=${mySubnet}`,
    `\tright=${peer}`,
    `\trightid=${peer}`,
    `\trightsubnet=${peerSubnet}`,
    '\tauto=add',
    '',
  ].join('\n');
}

/** Polls `probe` every 100 ms until it holds or WAIT_MS passed; returns the last verdict. */
async function eventually(probe: () => Promise<boolean> | boolean): Promise<boolean> {
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    if (await probe()) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return probe();
}

async function ipsecStatus(site: Site): Promise<string> {
  return (await site.execOk(['ipsec', 'status'])).stdout;
}

/** Runs an ES module snippet with node inside the site; the snippet may import .ts via tsx. */
async function nodeInSite(site: Site, source: string): Promise<string> {
  const argv = ['node', '--import', `file://${TSX_LOADER}`, '--input-type=module', '-e', source];
  return (await site.execOk(argv, { timeoutMs: 60_000 })).stdout;
}

async function capture(name: string, value: unknown): Promise<void> {
  if (process.env.TW_CAPTURE_FIXTURES !== '1') return;
  await mkdir(FIXTURE_DIR, { recursive: true });
  await writeFile(path.join(FIXTURE_DIR, name), `${JSON.stringify(value, null, 2)}\n`);
}

function updowns(events: ViciEvent[]): string[] {
  return events.map((event) => {
    const mapped = ikeSasFromViciEvent(event.message);
    return `${event.name} ${mapped?.up === true ? 'up' : 'down'} ${mapped?.ikeSa.conn ?? '?'}`;
  });
}

t.test(
  'the vici client lists, initiates, watches and terminates a real conn',
  { skip },
  async (t) => {
    const lab = await Lab.create({
      prefix: PREFIX,
      sites: [
        { name: 'A', transitAddress: `${A_TRANSIT}/24`, subnetAddress: '10.1.0.1/16' },
        { name: 'B', transitAddress: `${B_TRANSIT}/24`, subnetAddress: '10.2.0.1/16' },
      ],
    });
    t.teardown(() => lab.destroy());
    const a = lab.site('A');
    const b = lab.site('B');
    await a.writeFile('/etc/ipsec.conf', ipsecConf(A_TRANSIT, B_TRANSIT, A_SUBNET, B_SUBNET));
    await b.writeFile('/etc/ipsec.conf', ipsecConf(B_TRANSIT, A_TRANSIT, B_SUBNET, A_SUBNET));
    await a.writeFile('/etc/ipsec.secrets', PSK_SECRETS, 0o600);
    await b.writeFile('/etc/ipsec.secrets', PSK_SECRETS, 0o600);
    await Promise.all([a.startStrongswan(), b.startStrongswan()]);

    const socketA = path.join(a.runDir, 'charon.vici');
    t.ok(await eventually(() => a.exists('/run/charon.vici')), 'charon opened its vici socket');
    const client = await ViciClient.connect(socketA, { timeoutMs: 10_000 });
    t.teardown(() => client.close());

    await t.test(
      'inside site A, the client on the default socket lists the ipsec.conf conn',
      async (t) => {
        const moduleUrl = `file://${path.join(REPO_ROOT, 'agent', 'host', 'vici.ts')}`;
        const source = [
          `import { ViciClient } from ${JSON.stringify(moduleUrl)};`,
          'const client = await ViciClient.connect();',
          'try {',
          '  const conns = await client.listConns();',
          '  process.stdout.write(JSON.stringify({ path: client.socketPath, conns }));',
          '} finally {',
          '  client.close();',
          '}',
        ].join('\n');
        const answer = JSON.parse(await nodeInSite(a, source)) as {
          path: string;
          conns: ViciMessage[];
        };
        t.equal(answer.path, '/run/charon.vici');
        t.equal(answer.conns.length, 1, 'one conn loaded');
        const conn = answer.conns[0]?.[CONN] as ViciMessage | undefined;
        t.ok(conn, `the conn is named ${CONN}`);
        t.strictSame(conn?.local_addrs, [A_TRANSIT]);
        t.strictSame(conn?.remote_addrs, [B_TRANSIT]);
        const child = (conn?.children as ViciMessage | undefined)?.[CONN] as
          ViciMessage | undefined;
        t.strictSame(child?.['local-ts'], [A_SUBNET]);
        t.strictSame(child?.['remote-ts'], [B_SUBNET]);
        await capture('list-conns-ipsec-conf.json', answer.conns);
      },
    );

    await t.test('list-sas answers no SA before anything is initiated', async (t) => {
      const sas = await client.listSas();
      t.strictSame(sas, []);
      await capture('list-sas-none.json', sas);
    });

    await t.test('initiate brings the conn up, and ipsec status agrees', async (t) => {
      await client.initiate({ child: CONN, timeoutMs: 15_000 });
      const status = await ipsecStatus(a);
      t.match(status, new RegExp(`${CONN}\\[\\d+\\]: ESTABLISHED`), 'IKE_SA established');
      t.match(status, new RegExp(`${CONN}\\{\\d+\\}:  INSTALLED`), 'CHILD_SA installed');
    });

    await t.test('initiating an unknown conn fails with charon errmsg', async (t) => {
      const error = await client
        .initiate({ child: 'no-such-conn' })
        .catch((thrown: unknown) => thrown);
      t.ok(error instanceof TunnelwardenError);
      t.equal((error as TunnelwardenError).code, ErrorCode.viciCommandFailed);
      t.match((error as Error).message, /CHILD_SA config 'no-such-conn' not found/);
      t.ok(client.isOpen, 'the connection survives a failed command');
    });

    await t.test(
      'list-sas returns the SA; the mapper sees ESTABLISHED/INSTALLED and the TS',
      async (t) => {
        t.ok(
          await eventually(() => a.ping('10.1.0.1', '10.2.0.1')),
          'traffic flows through the tunnel',
        );
        const sas = await client.listSas({ ike: CONN });
        await capture('list-sas-established.json', sas);
        const [ikeSa, ...others] = ikeSasFromVici(sas);
        t.equal(others.length, 0, 'one IKE_SA');
        t.equal(ikeSa?.conn, CONN);
        t.equal(ikeSa?.state, 'ESTABLISHED');
        t.equal(ikeSa?.ikeVersion, 2);
        t.equal(ikeSa?.localAddress, A_TRANSIT);
        t.equal(ikeSa?.remoteAddress, B_TRANSIT);
        t.equal(ikeSa?.isInitiator, true, 'site A initiated');
        t.equal(ikeSa?.children.length, 1, 'one CHILD_SA');
        const child = ikeSa?.children[0];
        t.equal(child?.conn, CONN);
        t.equal(child?.state, 'INSTALLED');
        t.equal(child?.mode, 'TUNNEL');
        t.equal(child?.protocol, 'ESP');
        t.strictSame(child?.localTs, [A_SUBNET]);
        t.strictSame(child?.remoteTs, [B_SUBNET]);
        t.match(child?.spiIn, /^[0-9a-f]{8}$/);
        t.ok((child?.packetsIn ?? 0) > 0, 'inbound packets counted');
        t.ok(child?.lastInSecondsAgo !== undefined, 'time since the last inbound packet known');

        const status = await ipsecStatus(a);
        t.match(
          status,
          `${CONN}{${child?.uniqueId}}:`,
          'the same CHILD_SA unique id as stroke shows',
        );
      },
    );

    await t.test(
      'a subscriber sees ike-updown and child-updown as the conn goes down and up, then both rekeys',
      async (t) => {
        const events: ViciEvent[] = [];
        const subscription = await client.subscribe(
          ['ike-updown', 'child-updown', 'ike-rekey', 'child-rekey'],
          (event) => events.push(event),
        );
        t.teardown(() => subscription.close());

        const terminated = await client.terminate({ ike: CONN, timeoutMs: 15_000 });
        t.strictSame(terminated, { matches: 1, terminated: 1 });
        const sawDown = await eventually(() => updowns(events).includes(`ike-updown down ${CONN}`));
        t.ok(sawDown, 'ike-updown reported the IKE_SA down');
        await capture(
          'event-ike-updown-down.json',
          events.find((event) => event.name === 'ike-updown')?.message,
        );
        t.ok(
          updowns(events).includes(`child-updown down ${CONN}`),
          'child-updown reported the CHILD_SA down',
        );

        events.length = 0;
        await client.initiate({ child: CONN, timeoutMs: 15_000 });
        const sawUp = await eventually(() => updowns(events).includes(`child-updown up ${CONN}`));
        t.ok(sawUp, 'child-updown reported the CHILD_SA up');
        t.ok(
          updowns(events).includes(`ike-updown up ${CONN}`),
          'ike-updown reported the IKE_SA up',
        );
        const childUp = events.find((event) => event.name === 'child-updown');
        const mapped = childUp === undefined ? undefined : ikeSasFromViciEvent(childUp.message);
        t.equal(
          mapped?.ikeSa.children[0]?.state,
          'INSTALLED',
          'the event carries the installed CHILD_SA',
        );
        await capture('event-child-updown-up.json', childUp?.message);

        events.length = 0;
        await a.exec(['swanctl', '--rekey', '--ike', CONN]);
        const ikeRekey = await eventually(() => events.some((event) => event.name === 'ike-rekey'));
        t.ok(ikeRekey, 'ike-rekey reported the IKE_SA rekeyed');
        const ikeRekeyEvent = events.find((event) => event.name === 'ike-rekey')?.message;
        t.strictSame(ikeRekeyEvent && connsFromViciRekeyEvent(ikeRekeyEvent), [CONN]);
        await capture('event-ike-rekey.json', ikeRekeyEvent);

        events.length = 0;
        await a.exec(['swanctl', '--rekey', '--child', CONN]);
        const childRekey = await eventually(() =>
          events.some((event) => event.name === 'child-rekey'),
        );
        t.ok(childRekey, 'child-rekey reported the CHILD_SA rekeyed');
        const childRekeyEvent = events.find((event) => event.name === 'child-rekey')?.message;
        t.strictSame(childRekeyEvent && connsFromViciRekeyEvent(childRekeyEvent), [CONN]);
        await capture('event-child-rekey.json', childRekeyEvent);
        t.ok(
          await eventually(() => a.ping('10.1.0.1', '10.2.0.1')),
          'traffic still crosses after both rekeys',
        );

        subscription.close();
        t.equal(await subscription.ended, undefined);
      },
    );

    await t.test('terminate takes the conn down', async (t) => {
      const result = await client.terminate({ ike: CONN, timeoutMs: 15_000 });
      t.equal(result.terminated, 1);
      t.strictSame(await client.listSas(), [], 'no SA listed');
      t.notMatch(await ipsecStatus(a), /ESTABLISHED/, 'ipsec status shows none either');

      const again = await client.terminate({ ike: CONN }).catch((thrown: unknown) => thrown);
      t.equal((again as TunnelwardenError).code, ErrorCode.viciCommandFailed);
      t.match((again as Error).message, /no matching SAs to terminate found/);
    });

    await t.test(
      'initiate with timeoutMs -1 returns at once; list-sas shows CONNECTING',
      async (t) => {
        await b.stopStrongswan();
        const startedAt = Date.now();
        await client.initiate({ child: CONN, timeoutMs: -1 });
        t.ok(Date.now() - startedAt < 5_000, 'charon answered without waiting for the peer');

        let sas: ViciMessage[] = [];
        const connecting = await eventually(async () => {
          sas = await client.listSas({ ike: CONN });
          return ikeSasFromVici(sas)[0]?.state === 'CONNECTING';
        });
        t.ok(connecting, 'the IKE_SA is CONNECTING while the peer is silent');
        await capture('list-sas-connecting.json', sas);
        t.strictSame(ikeSasFromVici(sas)[0]?.children, [], 'no CHILD_SA yet');

        const result = await client.terminate({ ike: CONN, force: true, timeoutMs: 5_000 });
        t.equal(result.matches, 1);
        t.ok(
          await eventually(async () => (await client.listSas()).length === 0),
          'the half-open SA is gone',
        );
      },
    );

    await t.test(
      'after charon is killed the next call fails fast; a new client works later',
      async (t) => {
        const subscription = await client.subscribe(['ike-updown'], () => undefined);
        const killed = await a.killCharon('SIGKILL');
        t.ok(killed, 'charon of site A was running');

        const startedAt = Date.now();
        const error = await client
          .listSas({ timeoutMs: 10_000 })
          .catch((thrown: unknown) => thrown);
        t.ok(error instanceof TunnelwardenError, 'a TunnelwardenError');
        t.equal((error as TunnelwardenError).code, ErrorCode.viciUnavailable);
        t.ok(Date.now() - startedAt < 10_000, 'well before the call deadline');
        t.notOk(client.isOpen);
        t.equal(
          (await subscription.ended)?.code,
          ErrorCode.viciUnavailable,
          'the subscription ended too',
        );

        // starter restarts a crashed charon after about 5 s; then a fresh client can talk to it.
        let version: ViciMessage | undefined;
        const reconnected = await eventually(async () => {
          try {
            const fresh = await ViciClient.connect(socketA, { timeoutMs: 2_000 });
            try {
              version = await fresh.version();
            } finally {
              fresh.close();
            }
            return true;
          } catch (thrown) {
            if (thrown instanceof TunnelwardenError && thrown.code === ErrorCode.viciUnavailable)
              return false;
            throw thrown;
          }
        });
        t.ok(reconnected, 'a new client reaches the restarted charon');
        t.equal(version?.daemon, 'charon');
      },
    );
  },
);
