/**
 * Maps the state words strongSwan prints (`ike_sa_state_names`, `child_sa_state_names`) to the
 * typed states; any other word becomes UNKNOWN. Pure and total.
 *
 * The state returned is this module's own string, not the word read from the output, so the
 * thousands of SAs of a large status share one string per state instead of holding a copy each.
 */

import type { ChildSaState, IkeSaState } from './types.js';

/** Each state by its own name. */
function byName<State extends string>(states: readonly State[]): ReadonlyMap<string, State> {
  return new Map(states.map((state) => [state, state]));
}

const IKE_SA_STATES = byName<IkeSaState>([
  'CREATED',
  'CONNECTING',
  'ESTABLISHED',
  'PASSIVE',
  'REKEYING',
  'REKEYED',
  'DELETING',
  'DESTROYING',
]);

const CHILD_SA_STATES = byName<ChildSaState>([
  'CREATED',
  'ROUTED',
  'INSTALLING',
  'INSTALLED',
  'UPDATING',
  'REKEYING',
  'REKEYED',
  'RETRYING',
  'DELETING',
  'DELETED',
  'DESTROYING',
]);

/** The IKE_SA state named by `word` ("ESTABLISHED"), or UNKNOWN. */
export function toIkeSaState(word: string | undefined): IkeSaState {
  return (word === undefined ? undefined : IKE_SA_STATES.get(word)) ?? 'UNKNOWN';
}

/** The CHILD_SA state named by `word` ("INSTALLED"), or UNKNOWN. */
export function toChildSaState(word: string | undefined): ChildSaState {
  return (word === undefined ? undefined : CHILD_SA_STATES.get(word)) ?? 'UNKNOWN';
}
