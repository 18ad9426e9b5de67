/**
 * Actions are the plan as data: what a pass would do, each with the resource it touches, its
 * target and the reason. `tunnelwarden plan` prints them; apply/ executes them. Actions never
 * carry a secret's value: the secrets file is rendered again at apply time.
 */

/** Which part of the host an action changes, in the order a pass visits them. */
export type Resource = 'link' | 'lxd' | 'masquerade' | 'ipsec';

/** What every action of every resource has. */
export interface ActionBase {
  resource: Resource;
  type: string;
  target: string;
  reason: string;
  /** A short readable addition for the one-line form, e.g. "[added: a-to-b]". */
  detail?: string;
}

/** Conn names by what happens to them when our ipsec file is rewritten. */
export interface ConnChanges {
  added: string[];
  changed: string[];
  removed: string[];
}

export type IpsecAction =
  | { resource: 'ipsec'; type: 'ensure-include'; target: string; line: string; reason: string; detail?: string }
  | {
      resource: 'ipsec';
      type: 'write-conf';
      target: string;
      content: string;
      changes: ConnChanges;
      reason: string;
      detail?: string;
    }
  | { resource: 'ipsec'; type: 'write-secrets'; target: string; entries: number; reason: string; detail?: string }
  | {
      resource: 'ipsec';
      type: 'start-strongswan';
      target: 'charon';
      expectLoaded: string[];
      reason: string;
      detail?: string;
    }
  | {
      resource: 'ipsec';
      type: 'reload-conns';
      target: 'charon';
      expectLoaded: string[];
      expectUnloaded: string[];
      reason: string;
      detail?: string;
    }
  | { resource: 'ipsec'; type: 'reread-secrets'; target: 'charon'; reason: string; detail?: string }
  | { resource: 'ipsec'; type: 'terminate'; target: string; reason: string; detail?: string }
  | { resource: 'ipsec'; type: 'initiate'; target: string; reason: string; detail?: string }
  | { resource: 'ipsec'; type: 'await-established'; target: string; reason: string; detail?: string }
  | IpsecHealAction;

/** Heals from the health ladder (plan/heal.ts) as ipsec actions; `target` is the conn. */
export type IpsecHealAction =
  | {
      resource: 'ipsec';
      type: 'terminate-ike-sa' | 'terminate-child-sa';
      target: string;
      uniqueId: number;
      reason: string;
      detail?: string;
    }
  | {
      resource: 'ipsec';
      type: 'restart-ike-sa' | 'reload-config' | 'restart-charon';
      target: string;
      reason: string;
      detail?: string;
    };

/** Fields left out of printed and JSON plans: bulky file contents. */
const HIDDEN_FIELDS: ReadonlySet<string> = new Set(['content']);

/** The action without bulky fields, for printing and JSON output. */
export function describeAction(action: ActionBase): Record<string, unknown> {
  return Object.fromEntries(Object.entries(action).filter(([key]) => !HIDDEN_FIELDS.has(key)));
}

/** One readable line: `ipsec initiate a-to-b: no IKE_SA`. */
export function formatAction(action: ActionBase): string {
  const detail = action.detail ? ` ${action.detail}` : '';
  return `${action.resource} ${action.type} ${action.target}${detail}: ${action.reason}`;
}
