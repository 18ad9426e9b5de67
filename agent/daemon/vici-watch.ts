/**
 * Listens to charon's vici events so the daemon heals the moment an SA goes down (deleted by
 * the peer, expired, terminated by hand) instead of at the next scheduled pass, and looks at
 * once when one comes up (a peer that lost its state and initiated anew leaves a duplicate).
 * Every ike-updown, child-updown, ike-rekey or child-rekey event asks for a pass (a rekey that
 * collides with the peer's, or a peer that reauthenticates, can leave a duplicate behind); so
 * does the subscription ending (charon stopped or restarted) and every new subscription (events
 * from before it were not heard). While charon's socket is absent it tries again every
 * RECONNECT_DELAY_MS.
 */
import type { Logger } from 'pino';
import { DEFAULT_VICI_SOCKET, ViciClient, type ViciSubscription } from '../host/vici.js';
import { connsFromViciRekeyEvent, ikeSasFromViciEvent } from '../observe/vici-sas.js';

/** Short: a missing socket answers at once, and events are missed until the next try. */
export const RECONNECT_DELAY_MS = 500;
const WATCHED_EVENTS = ['ike-updown', 'child-updown', 'ike-rekey', 'child-rekey'] as const;

export interface ViciWatch {
  /**
   * Tries to subscribe now instead of at the next retry, when not subscribed (a pass that has
   * just started charon calls this, so its events are heard from the start). No-op otherwise.
   */
  listenNow(): void;
  stop(): void;
}

export function watchViciEvents(options: {
  logger: Logger;
  /** Called with the conn name (or "charon") whenever an SA went up or down. */
  onChange: (what: string) => void;
  socketPath?: string;
  /** Default RECONNECT_DELAY_MS. */
  reconnectDelayMs?: number;
}): ViciWatch {
  let stopped = false;
  let subscription: ViciSubscription | undefined;
  let timer: NodeJS.Timeout | undefined;
  let wasConnected = false;
  /** True from a connection attempt until its subscription ends (or the attempt fails). */
  let busy = false;

  const retryLater = () => {
    busy = false;
    if (stopped) return;
    timer = setTimeout(() => void connect(), options.reconnectDelayMs ?? RECONNECT_DELAY_MS);
    timer.unref();
  };

  async function connect(): Promise<void> {
    busy = true;
    let client: ViciClient | undefined;
    try {
      client = await ViciClient.connect(options.socketPath ?? DEFAULT_VICI_SOCKET, { timeoutMs: 5_000 });
      subscription = await client.subscribe(WATCHED_EVENTS, (event) => {
        if (event.name === 'ike-rekey' || event.name === 'child-rekey') {
          const [conn] = connsFromViciRekeyEvent(event.message);
          if (conn === undefined) return;
          options.logger.info({ resource: 'ipsec', conn, event: event.name }, 'SA rekeyed');
          options.onChange(conn);
          return;
        }
        const change = ikeSasFromViciEvent(event.message);
        if (!change) return;
        options.logger.info(
          { resource: 'ipsec', conn: change.ikeSa.conn, event: event.name, up: change.up },
          change.up ? 'SA came up' : 'SA went down',
        );
        options.onChange(change.ikeSa.conn);
      });
    } catch (thrown) {
      if (wasConnected) options.logger.debug({ err: thrown }, 'vici not reachable yet');
      retryLater();
      return;
    } finally {
      client?.close();
    }
    if (stopped) {
      subscription.close();
      return;
    }
    wasConnected = true;
    options.logger.debug({ socket: options.socketPath ?? DEFAULT_VICI_SOCKET }, 'listening to vici events');
    // Whatever happened while nobody listened (charon just started, a peer initiated in the
    // meantime) left no event behind: look now.
    options.onChange('charon');
    const error = await subscription.ended;
    if (stopped) return;
    options.logger.info({ code: error?.code }, 'vici event stream ended; charon stopped or restarted');
    options.onChange('charon');
    retryLater();
  }

  void connect();
  return {
    listenNow() {
      if (stopped || busy) return;
      clearTimeout(timer);
      void connect();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      subscription?.close();
    },
  };
}
