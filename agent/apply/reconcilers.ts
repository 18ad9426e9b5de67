/** The reconcilers of every resource tunnelwarden manages, in visiting order. */
import { createIpsecReconciler } from './ipsec-reconciler.js';
import { createLinkReconciler } from './link.js';
import { createLxdReconciler } from './lxd.js';
import { createMasqueradeReconciler } from './masquerade.js';
import type { ReconcilerFactory } from './reconciler.js';

/** One factory per resource; the pass sorts them by RESOURCE_ORDER. */
export const RECONCILER_FACTORIES: readonly ReconcilerFactory[] = [
  () => createIpsecReconciler(),
  () => createLinkReconciler(),
  () => createLxdReconciler(),
  () => createMasqueradeReconciler(),
];
