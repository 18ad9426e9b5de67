/**
 * Parser for `swanctl --list-pols` (strongSwan 5.9, swanctl's commands/list_pols.c): the trap,
 * drop and pass policies charon installed, one entry per policy:
 *
 *     a-to-b/a-to-b, TUNNEL
 *       local:  10.1.0.0/16
 *       remote: 10.2.0.0/16
 *
 * Pure and total: no I/O, never throws, unknown lines are skipped, regexes are anchored.
 */

import { splitLines, splitWords } from './text.js';
import type { SwanctlPolicy } from './types.js';

/** Policy header "a-to-b/a-to-b, TUNNEL" (conn/child for traps; shunts may lack the conn). */
const POLICY_HEADER = /^(\S+), ([A-Z_]+)$/;
/** Policy selectors "  local:  10.1.0.0/16". */
const POLICY_SELECTORS = /^ {2}(local|remote): +(.*)$/s;

/**
 * Parses `swanctl --list-pols`: the trap, drop and pass policies charon installed.
 * Pure, total, linear; empty text gives [].
 */
export function parseSwanctlListPols(text: string): SwanctlPolicy[] {
  const policies: SwanctlPolicy[] = [];
  let policy: SwanctlPolicy | undefined;

  for (const line of splitLines(text)) {
    const header = POLICY_HEADER.exec(line);
    if (header !== null) {
      const name = header[1]!;
      const slash = name.indexOf('/');
      policy = {
        ...(slash < 0 ? {} : { conn: name.slice(0, slash) }),
        child: slash < 0 ? name : name.slice(slash + 1),
        mode: header[2]!,
        localTs: [],
        remoteTs: [],
      };
      policies.push(policy);
      continue;
    }

    const selectors = POLICY_SELECTORS.exec(line);
    if (selectors !== null && policy !== undefined) {
      if (selectors[1] === 'local') policy.localTs = splitWords(selectors[2]!);
      else policy.remoteTs = splitWords(selectors[2]!);
    }
  }
  return policies;
}
