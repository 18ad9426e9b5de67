/**
 * The masquerade observer: its iptables-save and `iptables -V` parsers on real output captured
 * in a lab site with both backends (test/fixtures/iptables, see its README), and its thin call
 * against a fake runner that answers with captured output.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import t from 'tap';
import { ErrorCode, TunnelwardenError } from '../../agent/errors.js';
import type { CommandResult, CommandRunner } from '../../agent/host/exec.js';
import {
  observeMasquerade,
  parseIptablesSave,
  parseIptablesVersion,
  tokenizeRule,
  type IptablesTable,
} from '../../agent/observe/masquerade.js';

const fixtures = path.resolve(import.meta.dirname, '..', 'fixtures', 'iptables');
const fixture = (name: string) => readFileSync(path.join(fixtures, name), 'utf8');
const silent = pino({ level: 'silent' });

function table(tables: IptablesTable[], name: string): IptablesTable {
  const found = tables.find((candidate) => candidate.name === name);
  if (!found) throw new Error(`no table ${name}`);
  return found;
}

const rulesOf = (nat: IptablesTable, chain: string) =>
  nat.rules.filter((rule) => rule.chain === chain);

t.test('the nat table of legacy iptables-save parses into chains and rules', async (t) => {
  const tables = parseIptablesSave(fixture('legacy-save-nat-applied.txt'));
  t.same(
    tables.map((parsed) => parsed.name),
    ['nat'],
  );
  const nat = table(tables, 'nat');
  t.same(nat.chains, [
    { name: 'PREROUTING', policy: 'ACCEPT' },
    { name: 'INPUT', policy: 'ACCEPT' },
    { name: 'OUTPUT', policy: 'ACCEPT' },
    { name: 'POSTROUTING', policy: 'ACCEPT' },
    { name: 'FOREIGN-CHAIN', policy: undefined },
    { name: 'TW-MASQ', policy: undefined },
  ]);
  t.equal(nat.rules.length, 10);
  t.same(
    rulesOf(nat, 'TW-MASQ').map((rule) => rule.target),
    ['RETURN', 'MASQUERADE', 'RETURN', 'RETURN', 'MASQUERADE'],
  );
});

t.test('a RETURN rule of our chain gives its addresses, comment and target', async (t) => {
  const nat = table(parseIptablesSave(fixture('legacy-save-nat-applied.txt')), 'nat');
  const rule = rulesOf(nat, 'TW-MASQ')[0]!;
  t.same(rule, {
    chain: 'TW-MASQ',
    spec:
      '-s 10.1.0.0/16 -d 10.0.0.0/8 -m comment --comment ' +
      '"tunnelwarden: 10.1.0.0/16 keeps its source to 10.0.0.0/8" -j RETURN',
    source: { cidr: '10.1.0.0/16', negated: false },
    destination: { cidr: '10.0.0.0/8', negated: false },
    comment: 'tunnelwarden: 10.1.0.0/16 keeps its source to 10.0.0.0/8',
    target: 'RETURN',
    goto: false,
    targetOptions: [],
    otherTokens: [],
  });
});

t.test('an out interface, a negated destination and target options are kept apart', async (t) => {
  const nat = table(parseIptablesSave(fixture('nft-save-nat-applied.txt')), 'nat');
  const withInterface = rulesOf(nat, 'TW-MASQ')[4]!;
  t.same(withInterface.outInterface, { name: 'transit', negated: false });
  t.equal(withInterface.target, 'MASQUERADE');

  const snat = rulesOf(nat, 'FOREIGN-CHAIN')[0]!;
  t.same(snat.destination, { cidr: '10.0.0.0/8', negated: true });
  t.same(snat.source, { cidr: '10.50.0.0/16', negated: false });
  t.equal(snat.target, 'SNAT');
  t.same(snat.targetOptions, ['--to-source', '172.16.0.18']);

  const dnat = rulesOf(nat, 'PREROUTING')[0]!;
  t.same(dnat.protocol, { name: 'tcp', negated: false });
  t.same(dnat.otherTokens, ['-m', 'tcp', '--dport', '8080']);
  t.same(dnat.targetOptions, ['--to-destination', '10.1.0.10:80']);
});

t.test('the jump from POSTROUTING is a rule whose target is our chain', async (t) => {
  const nat = table(parseIptablesSave(fixture('nft-save-nat-applied.txt')), 'nat');
  const jumps = rulesOf(nat, 'POSTROUTING').filter((rule) => rule.target === 'TW-MASQ');
  t.same(
    jumps.map((rule) => ({ spec: rule.spec, comment: rule.comment })),
    [{ spec: '-m comment --comment tunnelwarden -j TW-MASQ', comment: 'tunnelwarden' }],
  );
});

t.test('legacy and nft print the same rules for the same apply', async (t) => {
  const legacy = table(parseIptablesSave(fixture('legacy-save-nat-applied.txt')), 'nat');
  const nft = table(parseIptablesSave(fixture('nft-save-nat-applied.txt')), 'nat');
  t.same(nft.rules, legacy.rules);
  t.same(nft.chains, legacy.chains);
});

t.test('a full save lists every table and unescapes quoted comments', async (t) => {
  for (const name of ['legacy-save-applied.txt', 'nft-save-applied.txt']) {
    const tables = parseIptablesSave(fixture(name));
    t.same(
      tables.map((parsed) => parsed.name),
      ['filter', 'nat'],
      name,
    );
    const input = table(tables, 'filter').rules[0]!;
    t.equal(input.comment, 'say "hi"', name);
    t.same(input.inInterface, { name: 'transit', negated: false }, name);
    t.same(input.otherTokens, ['-m', 'multiport', '--dports', '500,4500'], name);
  }
});

t.test('a namespace without tables gives no tables', async (t) => {
  t.same(parseIptablesSave(fixture('legacy-save-fresh.txt')), []);
  t.same(parseIptablesSave(fixture('nft-save-fresh.txt')), []);
});

t.test(
  'the parser is total: odd lines are skipped, a missing COMMIT keeps the table',
  async (t) => {
    // Hand-written input, not a capture: damaged output no iptables version prints.
    const text = [
      '-A POSTROUTING -j MASQUERADE',
      '*nat',
      'garbage here',
      ':POSTROUTING ACCEPT [0:0]',
      '-A POSTROUTING -s',
      '-A POSTROUTING ! -o transit -j',
    ].join('\n');
    const tables = parseIptablesSave(text);
    t.equal(tables.length, 1);
    const [dangling, negated] = tables[0]!.rules;
    t.same(dangling?.otherTokens, ['-s']);
    t.same(negated?.outInterface, { name: 'transit', negated: true });
    t.same(negated?.otherTokens, ['-j']);
    t.equal(negated?.target, undefined);
  },
);

t.test('rule tokens split on blanks, with quoted strings and escapes as one token', async (t) => {
  t.same(tokenizeRule('-m comment --comment "a \\"b\\" c\\\\" -j X'), [
    '-m',
    'comment',
    '--comment',
    'a "b" c\\',
    '-j',
    'X',
  ]);
  t.same(tokenizeRule('  -s  1.2.3.4/32 --comment ""'), ['-s', '1.2.3.4/32', '--comment', '']);
});

t.test('iptables -V names the backend', async (t) => {
  t.equal(parseIptablesVersion(fixture('iptables-version.txt')), 'nft');
  t.equal(parseIptablesVersion(fixture('iptables-nft-version.txt')), 'nft');
  t.equal(parseIptablesVersion(fixture('iptables-legacy-version.txt')), 'legacy');
  // Hand-written: iptables before 1.8 printed no backend and had only x_tables.
  t.equal(parseIptablesVersion('iptables v1.6.1\n'), 'legacy');
  t.equal(parseIptablesVersion('ip6tables v1.8.9 (nf_tables)\n'), undefined);
  t.equal(parseIptablesVersion(''), undefined);
});

/** A runner answering from a table of argv -> result or error. */
function fakeRunner(answers: Record<string, CommandResult | Error>): CommandRunner {
  return async (argv) => {
    const answer = answers[argv.join(' ')];
    if (answer === undefined) throw new Error(`unexpected command ${argv.join(' ')}`);
    if (answer instanceof Error) throw answer;
    return answer;
  };
}

const ok = (stdout: string): CommandResult => ({ exitCode: 0, stdout, stderr: '', durationMs: 1 });
const missing = (file: string) =>
  new TunnelwardenError('unsupported', ErrorCode.commandMissing, `${file} is not installed`);

t.test('observing reads both backends and the default one', async (t) => {
  const observed = await observeMasquerade(
    fakeRunner({
      'iptables-legacy-save': ok(fixture('both-backends-legacy-save.txt')),
      'iptables-nft-save': ok(fixture('both-backends-nft-save.txt')),
      'iptables -V': ok(fixture('iptables-version.txt')),
    }),
    silent,
  );
  t.equal(observed.defaultBackend, 'nft');
  t.equal(observed.legacy.installed, true);
  t.same(
    observed.legacy.tables.map((parsed) => parsed.name),
    ['filter', 'nat'],
  );
  t.equal(table(observed.nft.tables, 'nat').rules.length, 10);
});

t.test('a backend whose save command is missing is observed as not installed', async (t) => {
  const observed = await observeMasquerade(
    fakeRunner({
      'iptables-legacy-save': missing('iptables-legacy-save'),
      'iptables-nft-save': ok(fixture('nft-save-fresh.txt')),
      'iptables -V': missing('iptables'),
    }),
    silent,
  );
  t.same(observed.legacy, { installed: false, tables: [] });
  t.same(observed.nft, { installed: true, tables: [] });
  t.equal(observed.defaultBackend, undefined);
});

t.test('a save command that fails makes the observation fail', async (t) => {
  const failure = new TunnelwardenError(
    'command-failed',
    ErrorCode.commandFailed,
    'iptables-nft-save exited with 1',
  );
  await t.rejects(
    observeMasquerade(
      fakeRunner({
        'iptables-legacy-save': ok(''),
        'iptables-nft-save': failure,
        'iptables -V': ok(fixture('iptables-version.txt')),
      }),
      silent,
    ),
    { code: ErrorCode.commandFailed },
  );
});
