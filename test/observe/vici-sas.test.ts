import { readFileSync } from 'node:fs';
import t from 'tap';
import type { ViciMessage } from '../../agent/host/vici-codec.js';
import {
  connsFromViciRekeyEvent,
  ikeSasFromVici,
  ikeSasFromViciEvent,
} from '../../agent/observe/vici-sas.js';

/** A vici answer captured in the lab by test/lab/vici.test.ts (strongSwan 5.9.8, libipsec). */
function captured<T = ViciMessage[]>(name: string): T {
  return JSON.parse(
    readFileSync(new URL(`../fixtures/vici/${name}`, import.meta.url), 'utf8'),
  ) as T;
}

t.test('an established IKE_SA with one CHILD_SA maps field by field', async (t) => {
  t.strictSame(ikeSasFromVici(captured('list-sas-established.json')), [
    {
      conn: 'a-to-b',
      uniqueId: 1,
      state: 'ESTABLISHED',
      ikeVersion: 2,
      establishedSecondsAgo: 1,
      localAddress: '172.16.0.18',
      localId: '172.16.0.18',
      remoteAddress: '172.16.0.2',
      remoteId: '172.16.0.2',
      localPort: 4500,
      remotePort: 4500,
      initiatorSpi: 'a70f8160128b240e',
      responderSpi: '08b8ad56a6a55179',
      isInitiator: true,
      reauthInSeconds: 10259,
      children: [
        {
          conn: 'a-to-b',
          uniqueId: 1,
          state: 'INSTALLED',
          mode: 'TUNNEL',
          reqid: 1,
          protocol: 'ESP',
          udpEncap: true,
          spiIn: '294dfa2a',
          spiOut: '154b35db',
          localTs: ['10.1.0.0/16'],
          remoteTs: ['10.2.0.0/16'],
          bytesIn: 252,
          bytesOut: 252,
          packetsIn: 3,
          packetsOut: 3,
          lastInSecondsAgo: 0,
          lastOutSecondsAgo: 0,
          installedSecondsAgo: 1,
          rekeyInSeconds: 2826,
          expiresInSeconds: 3599,
        },
      ],
    },
  ]);
});

t.test('a half-open IKE_SA maps as CONNECTING with no CHILD_SA', async (t) => {
  const [ikeSa, ...others] = ikeSasFromVici(captured('list-sas-connecting.json'));
  t.equal(others.length, 0);
  t.equal(ikeSa?.state, 'CONNECTING');
  t.equal(ikeSa?.localId, '%any');
  t.equal(ikeSa?.localPort, 500);
  t.equal(ikeSa?.responderSpi, '0000000000000000');
  t.equal(ikeSa?.establishedSecondsAgo, undefined, 'not established, so no age');
  t.strictSame(ikeSa?.children, []);
});

t.test('no IKE_SA listed maps to an empty list', async (t) => {
  t.strictSame(ikeSasFromVici(captured('list-sas-none.json')), []);
});

t.test('updown events map to the IKE_SA they name and whether it went up', async (t) => {
  const up = ikeSasFromViciEvent(captured<ViciMessage>('event-child-updown-up.json'));
  t.equal(up?.up, true);
  t.equal(up?.ikeSa.conn, 'a-to-b');
  t.equal(up?.ikeSa.children.length, 1);
  t.equal(up?.ikeSa.children[0]?.state, 'INSTALLED');

  const down = ikeSasFromViciEvent(captured<ViciMessage>('event-ike-updown-down.json'));
  t.equal(down?.up, false, 'charon sends no up key when the SA went down');
  t.equal(down?.ikeSa.state, 'DELETING');
  t.strictSame(down?.ikeSa.children, [], 'ike-updown has no child-sas section');

  t.equal(ikeSasFromViciEvent({ up: 'yes' }), undefined, 'an event naming no IKE_SA');
});

t.test('rekey events name the conn whose SA was rekeyed', async (t) => {
  t.strictSame(connsFromViciRekeyEvent(captured<ViciMessage>('event-ike-rekey.json')), ['a-to-b']);
  t.strictSame(connsFromViciRekeyEvent(captured<ViciMessage>('event-child-rekey.json')), [
    'a-to-b',
  ]);
  t.strictSame(connsFromViciRekeyEvent({}), [], 'an empty event names no conn');
  t.strictSame(connsFromViciRekeyEvent({ up: 'yes' }), [], 'a plain value is no conn');
});

// The inputs below are written by hand to reach the edges; they are not captures.

t.test('IKE_SAs from several events come out ordered by unique id, children too', async (t) => {
  const events: ViciMessage[] = [
    { 'b-conn': { uniqueid: '7', state: 'ESTABLISHED' } },
    {
      'a-conn': {
        uniqueid: '3',
        state: 'ESTABLISHED',
        'child-sas': {
          'a-conn-9': { name: 'a-conn', uniqueid: '9', state: 'REKEYED' },
          'a-conn-4': { name: 'a-conn', uniqueid: '4', state: 'INSTALLED' },
        },
      },
    },
  ];
  const mapped = ikeSasFromVici(events);
  t.strictSame(
    mapped.map((ikeSa) => `${ikeSa.conn}[${ikeSa.uniqueId}]`),
    ['a-conn[3]', 'b-conn[7]'],
  );
  t.strictSame(
    mapped[0]?.children.map((child) => `${child.conn}{${child.uniqueId}} ${child.state}`),
    ['a-conn{4} INSTALLED', 'a-conn{9} REKEYED'],
  );
});

t.test('odd input is skipped or left undefined, never thrown', async (t) => {
  const events: ViciMessage[] = [
    {
      stray: 'a value where an IKE_SA section belongs',
      'no-id': { state: 'ESTABLISHED' },
      odd: {
        uniqueid: '5',
        state: 'SOMETHING_NEW',
        version: '3',
        'local-host': Uint8Array.of(0xff),
        'initiator-spi': '0xABCDEF',
        'responder-spi': 'not hex',
        established: '-1',
        'child-sas': {
          'odd-6': {
            uniqueid: '6',
            state: 'INSTALLED',
            protocol: 'IPCOMP',
            'local-ts': ['10.0.0.0/8', Uint8Array.of(0xff)],
          },
          'odd-x': { state: 'INSTALLED' },
          list: ['not a section'],
        },
      },
    },
  ];
  const [ikeSa, ...others] = ikeSasFromVici(events);
  t.equal(others.length, 0, 'only the IKE_SA with a unique id');
  t.equal(ikeSa?.state, 'UNKNOWN');
  t.equal(ikeSa?.ikeVersion, undefined);
  t.equal(ikeSa?.localAddress, undefined, 'bytes are not an address');
  t.equal(ikeSa?.initiatorSpi, 'abcdef', 'lowercase, without 0x');
  t.equal(ikeSa?.responderSpi, undefined);
  t.equal(ikeSa?.establishedSecondsAgo, undefined);
  t.equal(ikeSa?.isInitiator, false);
  t.strictSame(ikeSa?.children, [
    {
      conn: 'odd',
      uniqueId: 6,
      state: 'INSTALLED',
      udpEncap: false,
      localTs: ['10.0.0.0/8'],
      remoteTs: [],
    },
  ]);
});
