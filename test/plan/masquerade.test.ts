/**
 * The masquerade planner: desired rules x observed iptables -> actions. Observations are real
 * iptables-save captures from a lab site (test/fixtures/iptables, see its README): converged,
 * drifted by hand, extra jumps, our chain in the other backend; a few situations no capture
 * shows are made by editing parsed captures, and say so.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ErrorCode } from '../../agent/errors.js';
import { loadDesiredState } from '../../agent/model/load.js';
import type { DesiredState } from '../../agent/model/schema.js';
import {
  parseIptablesSave,
  type IptablesBackend,
  type MasqueradeObservation,
} from '../../agent/observe/masquerade.js';
import {
  chooseBackend,
  desiredChainRules,
  JUMP_SPEC,
  planMasquerade,
  renderRestoreInput,
  renderRuleSpec,
  type MasqueradeAction,
} from '../../agent/plan/masquerade.js';

const fixtures = path.resolve(import.meta.dirname, '..', 'fixtures', 'iptables');
const fixture = (name: string) => readFileSync(path.join(fixtures, name), 'utf8');

/** The two rules the captures were made with (see the fixtures' README). */
const CAPTURED_RULES = [
  { source: '10.1.0.0/16', excludeDestinations: ['10.0.0.0/8'] },
  {
    source: '10.11.0.0/16',
    excludeDestinations: ['10.0.0.0/8', '192.168.0.0/16'],
    outInterface: 'transit',
  },
];
const FIRST_RULE_ONLY = CAPTURED_RULES.slice(0, 1);

function desired(masquerade: Record<string, unknown> | undefined): DesiredState {
  const document: Record<string, unknown> = {
    version: 1,
    site: { name: 'site-a', subnets: ['10.1.0.0/16'] },
  };
  if (masquerade) document.masquerade = masquerade;
  const result = loadDesiredState(JSON.stringify(document));
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.state;
}

function observed(
  files: { legacy?: string; nft?: string },
  iptablesUses: IptablesBackend | 'no iptables' = 'nft',
): MasqueradeObservation {
  const defaultBackend = iptablesUses === 'no iptables' ? undefined : iptablesUses;
  const backend = (name: string | undefined) => ({
    installed: true,
    tables: parseIptablesSave(name === undefined ? '' : fixture(name)),
  });
  return { legacy: backend(files.legacy), nft: backend(files.nft), defaultBackend };
}

const summary = (actions: MasqueradeAction[]) =>
  actions.map((action) => `${action.type} ${action.target}`);

function only(actions: MasqueradeAction[]): MasqueradeAction {
  if (actions.length !== 1)
    throw new Error(`expected one action, got ${summary(actions).join(', ')}`);
  return actions[0]!;
}

t.test('the rendered rules are exactly what iptables-save printed after apply', async (t) => {
  const capturedChain = fixture('legacy-save-nat-applied.txt')
    .split('\n')
    .filter((line) => line.startsWith('-A TW-MASQ '))
    .map((line) => line.slice('-A TW-MASQ '.length));
  t.same(desiredChainRules(CAPTURED_RULES).map(renderRuleSpec), capturedChain);
  t.ok(fixture('nft-save-nat-applied.txt').includes(`-A POSTROUTING ${JUMP_SPEC}\n`), 'jump form');
});

t.test('each excluded destination gets a RETURN before the MASQUERADE of its rule', async (t) => {
  t.same(
    desiredChainRules(CAPTURED_RULES).map((rule) => `${rule.target} ${rule.destination ?? '*'}`),
    [
      'RETURN 10.0.0.0/8',
      'MASQUERADE *',
      'RETURN 10.0.0.0/8',
      'RETURN 192.168.0.0/16',
      'MASQUERADE *',
    ],
  );
});

t.test('a source of 0.0.0.0/0 renders without -s, as iptables-save prints it', async (t) => {
  const [rule] = desiredChainRules([{ source: '0.0.0.0/0', excludeDestinations: [] }]);
  t.equal(
    renderRuleSpec(rule!),
    '-m comment --comment "tunnelwarden: masquerade 0.0.0.0/0" -j MASQUERADE',
  );
});

t.test('a converged host plans nothing, with either backend', async (t) => {
  for (const backend of ['legacy', 'nft'] as const) {
    const plan = planMasquerade(
      desired({ backend, rules: CAPTURED_RULES }),
      observed({ [backend]: `${backend}-save-applied.txt` }),
    );
    t.same(plan, { actions: [], warnings: [] }, backend);
  }
});

t.test('a fresh host gets our chain and the jump in one write', async (t) => {
  const action = only(
    planMasquerade(desired({ backend: 'nft', rules: FIRST_RULE_ONLY }), observed({})).actions,
  );
  t.match(action, {
    type: 'write-chain',
    target: 'nft:nat/TW-MASQ',
    backend: 'nft',
    addJump: true,
    deleteJumps: [],
    reason: 'chain TW-MASQ missing; jump from POSTROUTING missing',
  });
  t.equal(
    renderRestoreInput(action),
    [
      '*nat',
      ':TW-MASQ - [0:0]',
      '-A TW-MASQ -s 10.1.0.0/16 -d 10.0.0.0/8 -m comment --comment "tunnelwarden: 10.1.0.0/16 keeps its source to 10.0.0.0/8" -j RETURN',
      '-A TW-MASQ -s 10.1.0.0/16 -m comment --comment "tunnelwarden: masquerade 10.1.0.0/16" -j MASQUERADE',
      '-A POSTROUTING -m comment --comment tunnelwarden -j TW-MASQ',
      'COMMIT',
      '',
    ].join('\n'),
  );
});

t.test('a rule deleted by hand makes the chain rewritten, naming the missing rule', async (t) => {
  for (const backend of ['legacy', 'nft'] as const) {
    const action = only(
      planMasquerade(
        desired({ backend, rules: CAPTURED_RULES }),
        observed({ [backend]: `${backend}-save-nat-rule-deleted.txt` }),
      ).actions,
    );
    t.match(action, {
      type: 'write-chain',
      addJump: false,
      deleteJumps: [],
      reason: 'missing rule "tunnelwarden: masquerade 10.1.0.0/16"',
    });
    t.equal((action as { rules: string[] }).rules.length, 5, backend);
  }
});

t.test('a flushed chain is refilled and its jump left alone', async (t) => {
  for (const backend of ['legacy', 'nft'] as const) {
    const action = only(
      planMasquerade(
        desired({ backend, rules: CAPTURED_RULES }),
        observed({ [backend]: `${backend}-save-nat-chain-flushed.txt` }),
      ).actions,
    );
    t.match(
      action,
      { type: 'write-chain', addJump: false, reason: 'chain TW-MASQ empty' },
      backend,
    );
  }
});

t.test('a removed jump is added back with the chain rewritten as is', async (t) => {
  for (const backend of ['legacy', 'nft'] as const) {
    const action = only(
      planMasquerade(
        desired({ backend, rules: CAPTURED_RULES }),
        observed({ [backend]: `${backend}-save-nat-jump-removed.txt` }),
      ).actions,
    );
    t.match(
      action,
      { type: 'write-chain', addJump: true, reason: 'jump from POSTROUTING missing' },
      backend,
    );
  }
});

t.test(
  'extra jumps from POSTROUTING are deleted, a foreign chain jumping to ours is not',
  async (t) => {
    const action = only(
      planMasquerade(
        desired({ backend: 'nft', rules: FIRST_RULE_ONLY }),
        observed({ nft: 'nft-save-nat-extra-jumps.txt' }),
      ).actions,
    );
    t.match(action, {
      type: 'write-chain',
      addJump: false,
      deleteJumps: ['-j TW-MASQ', JUMP_SPEC],
      reason: '2 extra jump(s) to TW-MASQ in POSTROUTING',
    });
    const input = renderRestoreInput(action);
    t.match(
      input,
      '-D POSTROUTING -j TW-MASQ\n-D POSTROUTING -m comment --comment tunnelwarden -j TW-MASQ\n',
    );
    t.notMatch(input, 'FOREIGN-CHAIN');

    const after = planMasquerade(
      desired({ backend: 'nft', rules: FIRST_RULE_ONLY }),
      observed({ nft: 'nft-save-nat-extra-jumps-fixed.txt' }),
    );
    t.same(after, { actions: [], warnings: [] }, 'converged after the fix');
  },
);

t.test('rules in our chain that we do not want are named and replaced', async (t) => {
  // Made from a capture: the converged chain with one rule added by hand and two swapped.
  const observation = observed({ nft: 'nft-save-nat-applied.txt' });
  const nat = observation.nft.tables.find((table) => table.name === 'nat')!;
  const [foreign] = parseIptablesSave(
    '*nat\n-A TW-MASQ -s 10.9.0.0/16 -p tcp -j MASQUERADE\nCOMMIT\n',
  )[0]!.rules;
  nat.rules.push(foreign!);
  let action = only(
    planMasquerade(desired({ backend: 'nft', rules: CAPTURED_RULES }), observation).actions,
  );
  t.equal(action.reason, 'unexpected rule "-A TW-MASQ -s 10.9.0.0/16 -p tcp -j MASQUERADE"');

  nat.rules.pop();
  const ours = nat.rules.filter((rule) => rule.chain === 'TW-MASQ');
  const first = nat.rules.indexOf(ours[0]!);
  const second = nat.rules.indexOf(ours[1]!);
  [nat.rules[first], nat.rules[second]] = [ours[1]!, ours[0]!];
  action = only(
    planMasquerade(desired({ backend: 'nft', rules: CAPTURED_RULES }), observation).actions,
  );
  t.equal(action.reason, 'rules of TW-MASQ out of order or repeated');
});

t.test('a changed rule in the desired state rewrites the chain', async (t) => {
  const rules = [{ source: '10.1.0.0/16', excludeDestinations: ['10.0.0.0/8', '172.16.0.0/12'] }];
  const action = only(
    planMasquerade(
      desired({ backend: 'nft', rules }),
      observed({ nft: 'before-move-nft-save.txt' }),
    ).actions,
  );
  t.equal(
    action.reason,
    'missing rule "tunnelwarden: 10.1.0.0/16 keeps its source to 172.16.0.0/12"',
  );
});

t.test('removing the section removes our jump and chain in one transaction', async (t) => {
  for (const masquerade of [undefined, { backend: 'nft', rules: [] }]) {
    const action = only(
      planMasquerade(desired(masquerade), observed({ nft: 'nft-save-nat-applied.txt' })).actions,
    );
    t.match(action, {
      type: 'remove-chain',
      target: 'nft:nat/TW-MASQ',
      deleteJumps: [JUMP_SPEC],
      deleteChain: true,
      reason: 'no masquerade rules in the desired state',
    });
    t.equal(
      renderRestoreInput(action),
      [
        '*nat',
        '-D POSTROUTING -m comment --comment tunnelwarden -j TW-MASQ',
        ':TW-MASQ - [0:0]',
        '-X TW-MASQ',
        'COMMIT',
        '',
      ].join('\n'),
    );
  }
  t.same(
    planMasquerade(desired(undefined), observed({ nft: 'nft-save-nat-removed.txt' })).actions,
    [],
  );
  t.same(planMasquerade(desired(undefined), observed({})).actions, [], 'nothing of ours anywhere');
});

t.test('a chain a foreign rule jumps to is emptied, kept, and named in a warning', async (t) => {
  const before = planMasquerade(
    desired(undefined),
    observed({ nft: 'nft-save-nat-extra-jumps-fixed.txt' }),
  );
  t.match(only(before.actions), {
    type: 'remove-chain',
    deleteChain: false,
    deleteJumps: [JUMP_SPEC],
  });
  t.notMatch(renderRestoreInput(before.actions[0]!), '-X');
  t.match(before.warnings, [/TW-MASQ in nft is kept \(emptied\).*-A FOREIGN-CHAIN -j TW-MASQ/]);

  const after = planMasquerade(
    desired(undefined),
    observed({ nft: 'nft-save-nat-removed-referenced.txt' }),
  );
  t.same(after.actions, [], 'nothing more to do');
  t.equal(after.warnings.length, 1);
});

t.test('auto uses the backend that holds the host rules and moves our chain there', async (t) => {
  const plan = planMasquerade(
    desired({ backend: 'auto', rules: FIRST_RULE_ONLY }),
    observed({ legacy: 'before-move-legacy-save.txt', nft: 'before-move-nft-save.txt' }),
  );
  t.same(summary(plan.actions), ['write-chain legacy:nat/TW-MASQ', 'remove-chain nft:nat/TW-MASQ']);
  t.match(plan.actions[0], { detail: /backend legacy: the host's rules are in legacy \(1 rule\)/ });
  t.match(plan.actions[1], {
    reason: 'masquerade uses legacy; our chain must live in one backend only',
  });
  t.same(plan.warnings, []);

  const after = planMasquerade(
    desired({ backend: 'auto', rules: FIRST_RULE_ONLY }),
    observed({ legacy: 'after-move-legacy-save.txt', nft: 'after-move-nft-save.txt' }),
  );
  t.same(after, { actions: [], warnings: [] }, 'converged after the move');
});

t.test('auto warns when both backends hold rules and uses the one iptables uses', async (t) => {
  const files = { legacy: 'both-backends-legacy-save.txt', nft: 'both-backends-nft-save.txt' };
  const plan = planMasquerade(
    desired({ backend: 'auto', rules: CAPTURED_RULES }),
    observed(files, 'nft'),
  );
  t.same(plan.actions, [], 'ours already in nft');
  t.match(plan.warnings, [
    /both backends \(legacy: 5 rules, nft: 5 rules\); masquerade uses nft, the one iptables uses/,
  ]);

  const viaLegacy = planMasquerade(
    desired({ backend: 'auto', rules: CAPTURED_RULES }),
    observed(files, 'legacy'),
  );
  t.same(summary(viaLegacy.actions), [
    'write-chain legacy:nat/TW-MASQ',
    'remove-chain nft:nat/TW-MASQ',
  ]);
});

t.test(
  'auto on a host without foreign rules stays where our chain is, else follows iptables',
  async (t) => {
    const observation = observed({ nft: 'before-move-nft-save.txt' }, 'legacy');
    t.match(chooseBackend('auto', observation), {
      backend: 'nft',
      reason: /our chain is already in nft/,
    });
    t.match(chooseBackend('auto', observed({}, 'legacy')), {
      backend: 'legacy',
      reason: /the one iptables uses/,
    });
    t.match(chooseBackend('auto', observed({}, 'no iptables')), {
      backend: 'nft',
      reason: /iptables itself is absent/,
    });
    const onlyLegacy = { ...observed({}, 'no iptables'), nft: { installed: false, tables: [] } };
    t.equal(chooseBackend('auto', onlyLegacy).backend, 'legacy', 'the only one installed');
  },
);

t.test('an explicit backend moves our chain out of the other one', async (t) => {
  const plan = planMasquerade(
    desired({ backend: 'legacy', rules: CAPTURED_RULES }),
    observed({ nft: 'nft-save-applied.txt' }),
  );
  t.same(summary(plan.actions), ['write-chain legacy:nat/TW-MASQ', 'remove-chain nft:nat/TW-MASQ']);
});

t.test('a backend that is not installed fails the resource, planning nothing', async (t) => {
  const observation = { ...observed({}), legacy: { installed: false, tables: [] } };
  t.throws(
    () => planMasquerade(desired({ backend: 'legacy', rules: FIRST_RULE_ONLY }), observation),
    {
      code: ErrorCode.iptablesMissing,
      message: /iptables-legacy-save is not installed/,
    },
  );
  t.same(
    planMasquerade(desired(undefined), observation).actions,
    [],
    'nothing to remove: no error',
  );
});

t.test('an IPv6 rule is refused by name, planning nothing', async (t) => {
  const rules = [...FIRST_RULE_ONLY, { source: '2001:db8::/64', excludeDestinations: [] }];
  t.throws(() => planMasquerade(desired({ backend: 'nft', rules }), observed({})), {
    code: ErrorCode.masqueradeUnsupported,
    message: /masquerade\.rules\[1\]\.source 2001:db8::\/64: IPv6 masquerade is not supported/,
  });
});

t.test(
  'overlapping sources with different exclusions warn that the first rule decides',
  async (t) => {
    const rules = [
      { source: '10.1.0.0/16', excludeDestinations: ['10.0.0.0/8'] },
      { source: '10.1.5.0/24', excludeDestinations: [] },
      { source: '10.1.6.0/24', excludeDestinations: ['10.0.0.0/8'], outInterface: 'transit' },
    ];
    const plan = planMasquerade(desired({ backend: 'nft', rules }), observed({}));
    t.same(plan.warnings.length, 1);
    t.match(
      plan.warnings[0],
      /^masquerade\.rules\[1\]: source 10\.1\.5\.0\/24 overlaps rules\[0\]/,
    );
  },
);
