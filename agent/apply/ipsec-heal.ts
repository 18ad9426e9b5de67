/**
 * Executes the heals of the health ladder. Deletes go through vici with `force` when charon's
 * socket answers, so a dead peer cannot hold them up; stroke is the fallback.
 * Every heal that restarts something ends by initiating the conn and waiting (bounded) for it.
 */
import { openSaControl, type SaControl } from '../host/sa-control.js';
import type { IpsecHealAction } from '../plan/actions.js';
import { awaitEstablished, controlStrongswan, type IpsecApplyContext } from './ipsec.js';

async function withControl<T>(context: IpsecApplyContext, work: (control: SaControl) => Promise<T>): Promise<T> {
  const control = await openSaControl(context.run, context.logger);
  try {
    return await work(control);
  } finally {
    control.close();
  }
}

async function restartIkeSa(context: IpsecApplyContext, conn: string): Promise<void> {
  await withControl(context, async (control) => {
    await control.terminateConn(conn);
    await control.initiate(conn);
  });
  await awaitEstablished(context, conn);
}

async function restartCharon(context: IpsecApplyContext, conn: string): Promise<void> {
  await controlStrongswan(context, 'restart');
  await withControl(context, (control) => control.initiate(conn));
  await awaitEstablished(context, conn);
}

/** Executes one heal. Throws TunnelwardenError when charon refuses or does not answer. */
export async function applyHealAction(action: IpsecHealAction, context: IpsecApplyContext): Promise<void> {
  switch (action.type) {
    case 'terminate-ike-sa':
      return withControl(context, (control) => control.terminateIkeSa(action.target, action.uniqueId));
    case 'terminate-child-sa':
      return withControl(context, (control) => control.terminateChildSa(action.target, action.uniqueId));
    case 'restart-ike-sa':
      return restartIkeSa(context, action.target);
    case 'reload-config':
      await context.run(['ipsec', 'reload']);
      await context.run(['ipsec', 'rereadsecrets']);
      return restartIkeSa(context, action.target);
    case 'restart-charon':
      return restartCharon(context, action.target);
  }
}
