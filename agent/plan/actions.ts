/**
 * Actions are the plan as data: what a pass would do, each with the resource it touches, its
 * target and the reason. `tunnelwarden plan` prints them; apply/ executes them. Actions never
 * carry a secret's value: the secrets file is rendered again at apply time.
 */

/** Which part of the host an action changes. */
export type Resource = 'ipsec' | 'link' | 'masquerade' | 'lxd';

/** Conn names by what happens to them when our ipsec file is rewritten. */
export interface ConnChanges {
  added: string[];
  changed: string[];
  removed: string[];
}

export type IpsecAction =
  | { resource: 'ipsec'; type: 'ensure-include'; target: string; line: string; reason: string }
  | {
      resource: 'ipsec';
      type: 'write-conf';
      target: string;
      content: string;
      changes: ConnChanges;
      reason: string;
    }
  | { resource: 'ipsec'; type: 'write-secrets'; target: string; entries: number; reason: string }
  | { resource: 'ipsec'; type: 'start-strongswan'; target: 'charon'; reason: string }
  | {
      resource: 'ipsec';
      type: 'reload-conns';
      target: 'charon';
      expectLoaded: string[];
      expectUnloaded: string[];
      reason: string;
    }
  | { resource: 'ipsec'; type: 'reread-secrets'; target: 'charon'; reason: string }
  | { resource: 'ipsec'; type: 'terminate'; target: string; reason: string }
  | { resource: 'ipsec'; type: 'initiate'; target: string; reason: string }
  | { resource: 'ipsec'; type: 'await-established'; target: string; reason: string };

export type Action = IpsecAction;

/** The action without bulky or sensitive fields, for printing and JSON output. */
export function describeAction(action: Action): Record<string, unknown> {
  if (action.type === 'write-conf') {
    const { content: _content, ...rest } = action;
    return rest;
  }
  return { ...action };
}

/** One readable line: `ipsec  initiate  a-to-b  (no IKE_SA ...)`. */
export function formatAction(action: Action): string {
  let detail = '';
  if (action.type === 'write-conf') {
    const parts = (['added', 'changed', 'removed'] as const)
      .filter((key) => action.changes[key].length > 0)
      .map((key) => `${key}: ${action.changes[key].join(', ')}`);
    if (parts.length > 0) detail = ` [${parts.join('; ')}]`;
  }
  if (action.type === 'write-secrets') detail = ` [${action.entries} entries, content not shown]`;
  return `${action.resource} ${action.type} ${action.target}${detail}: ${action.reason}`;
}
