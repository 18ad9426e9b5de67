/**
 * Maps the state words strongSwan prints (`ike_sa_state_names`, `child_sa_state_names`) to the
 * typed states; any other word becomes UNKNOWN. Pure and total.
 */

import type { ChildSaState, IkeSaState } from './types.js';

const IKE_SA_STATES: ReadonlySet<string> = new Set<IkeSaState>([
  'CREATED',
  'CONNECTING',
  'ESTABLISHED',
  'PASSIVE',
  'REKEYING',
  'REKEYED',
  'DELETING',
  'DESTROYING',
]);

const CHILD_SA_STATES: ReadonlySet<string> = new Set<ChildSaState>([
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
  return word !== undefined && IKE_SA_STATES.has(word) ? (word as IkeSaState) : 'UNKNOWN';
}

/** The CHILD_SA state named by `word` ("INSTALLED"), or UNKNOWN. */
export function toChildSaState(word: string | undefined): ChildSaState {
  return word !== undefined && CHILD_SA_STATES.has(word) ? (word as ChildSaState) : 'UNKNOWN';
}
