/**
 * Plans the masquerade resource: desired rules x observed iptables -> actions. Pure: no I/O.
 *
 * What we own: one chain, MASQUERADE_CHAIN, in the nat table, and the jumps to it from
 * POSTROUTING. One jump is wanted, `-A POSTROUTING -m comment --comment tunnelwarden -j TW-MASQ`,
 * appended (its position among foreign POSTROUTING rules is not managed). Every rule inside
 * our chain is ours: a rule added there by hand is removed at the next rewrite. Foreign rules
 * and chains are never touched.
 *
 * How a desired rule becomes chain rules. iptables takes a single `! -d` per rule, so
 * "masquerade SOURCE except to E1, E2" is written as one RETURN rule per excluded destination,
 * then the MASQUERADE rule, each with the rule's source (and out interface, if any):
 *
 *     -A TW-MASQ -s 10.1.0.0/16 -d 10.0.0.0/8 -m comment --comment "tunnelwarden: ..." -j RETURN
 *     -A TW-MASQ -s 10.1.0.0/16 -m comment --comment "tunnelwarden: ..." -j MASQUERADE
 *
 * A packet from SOURCE to an excluded destination leaves our chain at its RETURN, back in
 * POSTROUTING with its source address unchanged; any other packet from SOURCE is masqueraded.
 * Rules are evaluated in the order of the desired state and the first rule whose source (and
 * out interface) matches decides: its RETURN also skips the later rules. When two rules'
 * sources overlap with different exclusions, the plan warns about it.
 *
 * The chain is always rewritten whole, in one `iptables-restore --noflush` transaction (see
 * renderRestoreInput): `:TW-MASQ - [0:0]` creates or flushes only our chain, then its rules,
 * the jump when missing and deletions of extra jumps follow; the kernel sees all of it or
 * nothing.
 *
 * Backend. `legacy` and `nft` name one explicitly; `auto` takes the one that already holds
 * (foreign) rules, and when both or neither do, the one the plain `iptables` command uses,
 * warning when both hold rules. Our chain lives in one backend only: a copy found in the other
 * one is removed, with a reason saying why.
 *
 * Limitations: IPv4 only (an IPv6 rule is refused: ip6tables is not managed); foreign rules
 * placed before our jump in POSTROUTING (an unconditional MASQUERADE, an ACCEPT) still act
 * first; nft-native tables are not looked at when choosing the backend.
 */
import { ErrorCode, TunnelwardenError } from '../errors.js';
import { cidrsOverlap, formatCidrNetwork, parseCidr } from '../model/net.js';
import type { DesiredState } from '../model/schema.js';
import {
  backendCommand,
  IPTABLES_BACKENDS,
  type IptablesBackend,
  type IptablesRule,
  type IptablesTable,
  type MasqueradeObservation,
} from '../observe/masquerade.js';
import type { ActionBase } from './actions.js';

/** Our chain in the nat table; every name derived from it lives in this module. */
export const MASQUERADE_CHAIN = 'TW-MASQ';

/** The comment on our jump from POSTROUTING. */
export const JUMP_COMMENT = 'tunnelwarden';

const NAT_TABLE = 'nat';
const POSTROUTING = 'POSTROUTING';
const ANY_IPV4 = '0.0.0.0/0';

/** The exact jump we add, as iptables-save prints it after `-A POSTROUTING `. */
export const JUMP_SPEC = `-m comment --comment ${JUMP_COMMENT} -j ${MASQUERADE_CHAIN}`;

type MasqueradeSection = NonNullable<DesiredState['masquerade']>;
type MasqueradeRule = MasqueradeSection['rules'][number];

/** One rule of our chain as we want it. */
export interface ChainRule {
  source: string;
  destination?: string;
  outInterface?: string;
  comment: string;
  target: 'RETURN' | 'MASQUERADE';
}

/** Rewrites our chain (and fixes the jumps) in one transaction of `backend`. */
export interface WriteChainAction extends ActionBase {
  resource: 'masquerade';
  type: 'write-chain';
  backend: IptablesBackend;
  /** The rules of our chain, each as it follows `-A TW-MASQ `. */
  rules: string[];
  /** Append our jump to POSTROUTING (it is missing). */
  addJump: boolean;
  /** POSTROUTING jumps to our chain to delete (extra copies, or not our exact form). */
  deleteJumps: string[];
}

/** Removes our jumps and our chain from `backend`. */
export interface RemoveChainAction extends ActionBase {
  resource: 'masquerade';
  type: 'remove-chain';
  backend: IptablesBackend;
  deleteJumps: string[];
  /** False when a foreign rule still jumps to our chain: it is then only emptied. */
  deleteChain: boolean;
}

export type MasqueradeAction = WriteChainAction | RemoveChainAction;

/** What the planner returns: the actions, and warnings to log once per pass. */
export interface MasqueradePlan {
  actions: MasqueradeAction[];
  warnings: string[];
}

/** The backend a pass uses, and why. */
export interface BackendChoice {
  backend: IptablesBackend;
  reason: string;
  warning?: string;
}

function canonicalPrefix(text: string | undefined): string {
  if (text === undefined) return ANY_IPV4;
  const cidr = parseCidr(text);
  return cidr ? formatCidrNetwork(cidr) : text;
}

/** Refuses rules this resource cannot express (IPv6). Throws TunnelwardenError (unsupported). */
function checkIpv4(rules: readonly MasqueradeRule[]): void {
  rules.forEach((rule, index) => {
    const prefixes: [string, string][] = [
      ['source', rule.source],
      ...rule.excludeDestinations.map((destination, at): [string, string] => [
        `excludeDestinations[${at}]`,
        destination,
      ]),
    ];
    for (const [field, prefix] of prefixes) {
      if (parseCidr(prefix)?.family === 6) {
        throw new TunnelwardenError(
          'unsupported',
          ErrorCode.masqueradeUnsupported,
          `masquerade.rules[${index}].${field} ${prefix}: IPv6 masquerade is not supported ` +
            '(tunnelwarden manages iptables, not ip6tables); nothing was changed',
          { details: { resource: 'masquerade', rule: index } },
        );
      }
    }
  });
}

/** The rules of our chain for the desired rules, in evaluation order. */
export function desiredChainRules(rules: readonly MasqueradeRule[]): ChainRule[] {
  return rules.flatMap((rule) => {
    const source = canonicalPrefix(rule.source);
    const via = rule.outInterface === undefined ? {} : { outInterface: rule.outInterface };
    const out = rule.outInterface === undefined ? '' : ` out ${rule.outInterface}`;
    const keep: ChainRule[] = rule.excludeDestinations.map((excluded) => {
      const destination = canonicalPrefix(excluded);
      return {
        source,
        destination,
        ...via,
        comment: `tunnelwarden: ${source}${out} keeps its source to ${destination}`,
        target: 'RETURN',
      };
    });
    const masquerade: ChainRule = {
      source,
      ...via,
      comment: `tunnelwarden: masquerade ${source}${out}`,
      target: 'MASQUERADE',
    };
    return [...keep, masquerade];
  });
}

/** Double-quotes a token for iptables-restore when it holds blanks or quotes. */
function quoteToken(token: string): string {
  return /^[^\s"\\]+$/.test(token) ? token : `"${token.replace(/(["\\])/g, '\\$1')}"`;
}

/**
 * The rule as iptables-save prints it after `-A CHAIN `, options in save's order, so that the
 * plan shows the same text an operator sees in `iptables-save`.
 */
export function renderRuleSpec(rule: ChainRule): string {
  const parts: string[] = [];
  if (rule.source !== ANY_IPV4) parts.push('-s', rule.source);
  if (rule.destination !== undefined && rule.destination !== ANY_IPV4)
    parts.push('-d', rule.destination);
  if (rule.outInterface !== undefined) parts.push('-o', rule.outInterface);
  parts.push('-m', 'comment', '--comment', quoteToken(rule.comment), '-j', rule.target);
  return parts.join(' ');
}

/** True when the observed rule is exactly `wanted`: no other match, option or negation. */
export function sameRule(observed: IptablesRule, wanted: ChainRule): boolean {
  return (
    !observed.source?.negated &&
    canonicalPrefix(observed.source?.cidr) === wanted.source &&
    !observed.destination?.negated &&
    canonicalPrefix(observed.destination?.cidr) === canonicalPrefix(wanted.destination) &&
    !observed.outInterface?.negated &&
    observed.outInterface?.name === wanted.outInterface &&
    observed.inInterface === undefined &&
    observed.protocol === undefined &&
    observed.comment === wanted.comment &&
    observed.target === wanted.target &&
    !observed.goto &&
    observed.targetOptions.length === 0 &&
    observed.otherTokens.length === 0
  );
}

/** True when the POSTROUTING rule is our exact jump. */
export function isOurJump(rule: IptablesRule): boolean {
  return (
    rule.target === MASQUERADE_CHAIN &&
    !rule.goto &&
    rule.comment === JUMP_COMMENT &&
    rule.source === undefined &&
    rule.destination === undefined &&
    rule.inInterface === undefined &&
    rule.outInterface === undefined &&
    rule.protocol === undefined &&
    rule.targetOptions.length === 0 &&
    rule.otherTokens.length === 0
  );
}

/** Our part of one backend's nat table. */
export interface OwnedState {
  chainExists: boolean;
  chainRules: IptablesRule[];
  /** POSTROUTING rules that jump (or go) to our chain, ours or not in form. */
  jumps: IptablesRule[];
  /** Rules in other chains than POSTROUTING that jump to our chain (foreign references). */
  foreignReferences: IptablesRule[];
  /** Rules in every table that are not ours; `auto` picks the backend that has any. */
  foreignRuleCount: number;
}

/** Splits one backend's tables into what is ours and how many rules are foreign. */
export function ownedState(tables: readonly IptablesTable[]): OwnedState {
  const nat = tables.find((table) => table.name === NAT_TABLE);
  const state: OwnedState = {
    chainExists: nat?.chains.some((chain) => chain.name === MASQUERADE_CHAIN) ?? false,
    chainRules: [],
    jumps: [],
    foreignReferences: [],
    foreignRuleCount: 0,
  };
  for (const table of tables) {
    for (const rule of table.rules) {
      const inNat = table === nat;
      if (inNat && rule.chain === MASQUERADE_CHAIN) {
        state.chainRules.push(rule);
      } else if (inNat && rule.target === MASQUERADE_CHAIN && rule.chain === POSTROUTING) {
        state.jumps.push(rule);
      } else {
        if (inNat && rule.target === MASQUERADE_CHAIN) state.foreignReferences.push(rule);
        state.foreignRuleCount += 1;
      }
    }
  }
  return state;
}

function holdsOurs(state: OwnedState): boolean {
  return state.chainExists || state.jumps.length > 0;
}

const rulesText = (count: number) => `${count} rule${count === 1 ? '' : 's'}`;

/**
 * Picks the backend for `setting`. `auto`, in this order: the one backend holding foreign
 * rules; when both do, the one `iptables` uses, with a warning; when neither does, the one
 * already holding our chain (no needless move), else the one `iptables` uses (else the only
 * one installed, else nft).
 */
export function chooseBackend(
  setting: MasqueradeSection['backend'],
  observed: MasqueradeObservation,
): BackendChoice {
  if (setting !== 'auto') return { backend: setting, reason: 'set in the desired state' };

  const states = {
    legacy: ownedState(observed.legacy.tables),
    nft: ownedState(observed.nft.tables),
  };
  const counts = { legacy: states.legacy.foreignRuleCount, nft: states.nft.foreignRuleCount };
  const withRules = IPTABLES_BACKENDS.filter((backend) => counts[backend] > 0);
  if (withRules.length === 1) {
    const backend = withRules[0]!;
    return {
      backend,
      reason: `the host's rules are in ${backend} (${rulesText(counts[backend])})`,
    };
  }

  const installed = IPTABLES_BACKENDS.filter((backend) => observed[backend].installed);
  const fallback = observed.defaultBackend ?? (installed.length === 1 ? installed[0]! : 'nft');
  const why =
    observed.defaultBackend === undefined
      ? `${fallback}, as iptables itself is absent`
      : `${fallback}, the one iptables uses`;
  if (withRules.length === 2) {
    return {
      backend: fallback,
      reason: `both backends hold rules; ${why}`,
      warning:
        `iptables rules exist in both backends (legacy: ${rulesText(counts.legacy)}, nft: ` +
        `${rulesText(counts.nft)}); masquerade uses ${why}. Both act in the kernel: check that ` +
        "the other backend's rules do not NAT the same traffic, or set masquerade.backend",
    };
  }

  const holdingOurs = IPTABLES_BACKENDS.filter((backend) => holdsOurs(states[backend]));
  if (holdingOurs.length === 1) {
    const backend = holdingOurs[0]!;
    return { backend, reason: `no foreign iptables rules; our chain is already in ${backend}` };
  }
  return { backend: fallback, reason: `no foreign iptables rules; ${why}` };
}

/** Warnings for rules whose overlapping sources make their order matter (first match wins). */
function overlapWarnings(rules: readonly MasqueradeRule[]): string[] {
  const warnings: string[] = [];
  rules.forEach((later, laterIndex) => {
    rules.slice(0, laterIndex).forEach((earlier, earlierIndex) => {
      const sameWay =
        earlier.outInterface === undefined ||
        later.outInterface === undefined ||
        earlier.outInterface === later.outInterface;
      const earlierSource = parseCidr(earlier.source);
      const laterSource = parseCidr(later.source);
      const overlap = earlierSource && laterSource && cidrsOverlap(earlierSource, laterSource);
      if (!sameWay || !overlap) return;
      const exclusions = (rule: MasqueradeRule) =>
        rule.excludeDestinations
          .map((prefix) => canonicalPrefix(prefix))
          .sort()
          .join(',');
      if (exclusions(earlier) === exclusions(later)) return;
      warnings.push(
        `masquerade.rules[${laterIndex}]: source ${later.source} overlaps ` +
          `rules[${earlierIndex}] (${earlier.source}) with other excluded destinations; for ` +
          `the overlap rules[${earlierIndex}] decides, as the first matching rule`,
      );
    });
  });
  return warnings;
}

function describeRule(rule: IptablesRule): string {
  return `-A ${rule.chain} ${rule.spec}`;
}

/** Why our chain's rules differ from `wanted`; empty when they are the same, in order. */
function chainDifferences(state: OwnedState, wanted: readonly ChainRule[]): string[] {
  if (!state.chainExists) return [`chain ${MASQUERADE_CHAIN} missing`];
  const observed = state.chainRules;
  const inOrder =
    observed.length === wanted.length &&
    observed.every((rule, index) => sameRule(rule, wanted[index]!));
  if (inOrder) return [];
  if (observed.length === 0) return [`chain ${MASQUERADE_CHAIN} empty`];

  const missing = wanted.filter((rule) => !observed.some((candidate) => sameRule(candidate, rule)));
  const unexpected = observed.filter(
    (rule) => !wanted.some((candidate) => sameRule(rule, candidate)),
  );
  const reasons = [
    ...missing.map((rule) => `missing rule "${rule.comment}"`),
    ...unexpected.map((rule) => `unexpected rule "${describeRule(rule)}"`),
  ];
  return reasons.length > 0 ? reasons : [`rules of ${MASQUERADE_CHAIN} out of order or repeated`];
}

/** Jumps to delete so that exactly one of our exact form remains: other forms and copies. */
function surplusJumps(jumps: readonly IptablesRule[]): IptablesRule[] {
  const ours = jumps.filter(isOurJump);
  const others = jumps.filter((jump) => !isOurJump(jump));
  return [...others, ...ours.slice(1)];
}

function targetOf(backend: IptablesBackend): string {
  return `${backend}:${NAT_TABLE}/${MASQUERADE_CHAIN}`;
}

/** Why our chain cannot be deleted from `backend`, when foreign rules jump to it. */
function keptChainWarning(backend: IptablesBackend, state: OwnedState): string | undefined {
  if (!state.chainExists || state.foreignReferences.length === 0) return undefined;
  const rules = state.foreignReferences.map((rule) => `"${describeRule(rule)}"`).join(', ');
  return (
    `masquerade: ${MASQUERADE_CHAIN} in ${backend} is kept (emptied) because foreign rules ` +
    `jump to it: ${rules}`
  );
}

function removal(
  backend: IptablesBackend,
  state: OwnedState,
  reason: string,
): RemoveChainAction | undefined {
  const deleteJumps = state.jumps.map((jump) => jump.spec);
  const deleteChain = state.foreignReferences.length === 0;
  const nothingLeft =
    deleteJumps.length === 0 &&
    (!state.chainExists || (!deleteChain && state.chainRules.length === 0));
  if (nothingLeft) return undefined;
  return {
    resource: 'masquerade',
    type: 'remove-chain',
    target: targetOf(backend),
    backend,
    deleteJumps,
    deleteChain,
    reason,
    ...(deleteChain ? {} : { detail: '[chain kept, emptied: foreign rules jump to it]' }),
  };
}

/**
 * Plans the masquerade resource. Throws TunnelwardenError when a rule is IPv6 (unsupported) or
 * the backend to use is not installed (iptablesMissing); nothing is planned then.
 */
export function planMasquerade(
  desired: DesiredState,
  observed: MasqueradeObservation,
): MasqueradePlan {
  const rules = desired.masquerade?.rules ?? [];
  checkIpv4(rules);
  const states = {
    legacy: ownedState(observed.legacy.tables),
    nft: ownedState(observed.nft.tables),
  };
  const actions: MasqueradeAction[] = [];
  const warnings: string[] = [];

  if (rules.length === 0) {
    for (const backend of IPTABLES_BACKENDS) {
      const action = removal(backend, states[backend], 'no masquerade rules in the desired state');
      if (action) actions.push(action);
      const warning = keptChainWarning(backend, states[backend]);
      if (warning) warnings.push(warning);
    }
    return { actions, warnings };
  }

  const choice = chooseBackend(desired.masquerade?.backend ?? 'auto', observed);
  if (choice.warning) warnings.push(choice.warning);
  warnings.push(...overlapWarnings(rules));
  const { backend } = choice;
  if (!observed[backend].installed) {
    throw new TunnelwardenError(
      'unsupported',
      ErrorCode.iptablesMissing,
      `masquerade: ${backendCommand(backend, 'save')} is not installed (backend ${backend}: ` +
        `${choice.reason}); Debian: apt-get install iptables`,
      { details: { resource: 'masquerade', backend } },
    );
  }

  const state = states[backend];
  const wanted = desiredChainRules(rules);
  const reasons = chainDifferences(state, wanted);
  const hasOurJump = state.jumps.some(isOurJump);
  const extraJumps = surplusJumps(state.jumps);
  if (!hasOurJump) reasons.push(`jump from ${POSTROUTING} missing`);
  if (extraJumps.length > 0) {
    reasons.push(`${extraJumps.length} extra jump(s) to ${MASQUERADE_CHAIN} in ${POSTROUTING}`);
  }
  if (reasons.length > 0) {
    actions.push({
      resource: 'masquerade',
      type: 'write-chain',
      target: targetOf(backend),
      backend,
      rules: wanted.map(renderRuleSpec),
      addJump: !hasOurJump,
      deleteJumps: extraJumps.map((jump) => jump.spec),
      reason: reasons.join('; '),
      detail: `[${wanted.length} chain rules; backend ${backend}: ${choice.reason}]`,
    });
  }

  for (const other of IPTABLES_BACKENDS.filter((candidate) => candidate !== backend)) {
    if (!holdsOurs(states[other])) continue;
    const reason = `masquerade uses ${backend}; our chain must live in one backend only`;
    const action = removal(other, states[other], reason);
    if (action) actions.push(action);
    const warning = keptChainWarning(other, states[other]);
    if (warning) warnings.push(warning);
  }
  return { actions, warnings };
}

/**
 * The iptables-restore input (for `--noflush`) that performs the action in one transaction.
 * Declaring `:TW-MASQ - [0:0]` creates our chain or flushes it, and nothing else.
 */
export function renderRestoreInput(action: MasqueradeAction): string {
  const lines = [`*${NAT_TABLE}`];
  if (action.type === 'write-chain') {
    lines.push(`:${MASQUERADE_CHAIN} - [0:0]`);
    lines.push(...action.rules.map((spec) => `-A ${MASQUERADE_CHAIN} ${spec}`));
    lines.push(...action.deleteJumps.map((spec) => `-D ${POSTROUTING} ${spec}`));
    if (action.addJump) lines.push(`-A ${POSTROUTING} ${JUMP_SPEC}`);
  } else {
    lines.push(...action.deleteJumps.map((spec) => `-D ${POSTROUTING} ${spec}`));
    lines.push(`:${MASQUERADE_CHAIN} - [0:0]`);
    if (action.deleteChain) lines.push(`-X ${MASQUERADE_CHAIN}`);
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}
