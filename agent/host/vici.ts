/**
 * A client for vici, the control socket of strongSwan's charon (`/run/charon.vici`). charon
 * answers over it for every connection it knows, those loaded from ipsec.conf through stroke
 * included: list SAs and conns, initiate and terminate, and stream ike-/child-updown events.
 *
 * Why our own: no maintained vici client is installable from the npm registry (`npm view`
 * finds none of `vici`, `node-vici`, `strongswan-vici`, `@hola.org/strongswan-vici`; the last
 * two are described on the web, but the registry does not serve them), while the protocol is
 * small and fully described in strongSwan's vici README. This client and its codec (vici-codec.ts) are
 * written from that description.
 *
 * The protocol has no request ids: one command may be outstanding per connection, and events
 * can arrive at any time in between. So:
 * - Calls on one client run one at a time, in call order. A streamed command (register for its
 *   event, send the command, collect events until the response, unregister) is one call.
 * - Every call has a deadline, counted from the call. A call that expires while queued simply
 *   fails; one that expires on the wire also closes the connection, because a late answer
 *   could not be told from the answer to the next call.
 * - Subscriptions get a connection of their own, so events never queue behind commands.
 * - A dead connection (charon stopped or restarted, socket gone) fails the current and every
 *   later call with `viciUnavailable`; the caller reconnects with `ViciClient.connect`.
 *
 * Errors are TunnelwardenError: viciUnavailable, viciTimedOut, viciCommandFailed (charon said
 * `success = no`; its `errmsg` is in the message), viciUnknownCommand (command or event this
 * charon does not know), viciMalformed, viciUnencodable.
 *
 * Limitations:
 * - Unix sockets only (charon's default); vici over TCP is not supported.
 * - Requests and answers are never logged, only command names and durations (load-shared
 *   would carry a secret).
 */
import type { Logger } from 'pino';
import { asTunnelwardenError, ErrorCode, TunnelwardenError } from '../errors.js';
import { PacketType, type ViciMessage } from './vici-codec.js';
import {
  commandResponse,
  registration,
  ViciConnection,
  type ViciEvent,
} from './vici-connection.js';

export type { ViciMessage, ViciValue } from './vici-codec.js';
export type { ViciEvent } from './vici-connection.js';

/** Where charon's vici plugin listens by default (`/var/run` links to `/run`). */
export const DEFAULT_VICI_SOCKET = '/run/charon.vici';

/** Deadline of a call that charon answers at once (list, version, register). */
export const DEFAULT_VICI_TIMEOUT_MS = 15_000;

/** How long `initiate` and `terminate` let charon work unless told otherwise. */
export const DEFAULT_SA_CHANGE_TIMEOUT_MS = 30_000;

/** Time beyond charon's own `timeout` that the client waits for charon's verdict. */
const CHARON_VERDICT_MARGIN_MS = 5_000;

/** Log lines of an initiate/terminate kept for the error when it fails. */
const CONTROL_LOG_LINES_KEPT = 10;

/** Events a subscriber may ask for. */
export type ViciEventName =
  'ike-updown' | 'child-updown' | 'ike-rekey' | 'child-rekey' | 'ike-update' | 'log';

export interface ViciConnectOptions {
  /** Deadline for connecting and default deadline of each call. */
  timeoutMs?: number;
  /** Receives one debug line per call (command name and duration, never contents). */
  logger?: Logger;
}

export interface ViciCallOptions {
  timeoutMs?: number;
}

/** A streamed command's answer: the events it streamed, then its response. */
export interface ViciStreamedAnswer {
  events: ViciMessage[];
  response: ViciMessage;
}

export interface ListSasOptions extends ViciCallOptions {
  /** Only IKE_SAs of this conn. */
  ike?: string;
  /** Only the IKE_SA with this unique id. */
  ikeId?: number;
  /** Skip IKE_SAs that are busy instead of waiting for them. */
  noblock?: boolean;
}

export interface InitiateOptions {
  /** CHILD_SA config name; for ipsec.conf conns, the conn name. */
  child: string;
  /** IKE_SA config name to look the CHILD_SA up under. */
  ike?: string;
  /**
   * How long charon may work on it (vici `timeout`): a positive number of ms, after which
   * charon answers "not established" (the SA may still come up later), or -1 to have charon
   * only queue the initiation and answer at once. Default DEFAULT_SA_CHANGE_TIMEOUT_MS. vici's
   * own default, 0 (wait forever), is never sent.
   */
  timeoutMs?: number;
}

export interface TerminateOptions {
  /** IKE_SA config name: terminate its IKE_SAs, or with `child` only its CHILD_SAs. */
  ike?: string;
  /** CHILD_SA config name: terminate matching CHILD_SAs only. */
  child?: string;
  /** Terminate the IKE_SA with this unique id. */
  ikeId?: number;
  /** Terminate the CHILD_SA with this unique id. */
  childId?: number;
  /** Delete the IKE_SA without waiting for the peer's answer to the DELETE. */
  force?: boolean;
  /** As for `initiate`. */
  timeoutMs?: number;
}

export interface TerminateResult {
  /** SAs that matched the selector. */
  matches: number;
  /** SAs terminated (or, with timeoutMs -1, queued for termination). */
  terminated: number;
}

export interface SubscribeOptions {
  /** Deadline for connecting and registering. */
  timeoutMs?: number;
}

/** A live subscription on a connection of its own. */
export interface ViciSubscription {
  /** Closes the connection; no event is delivered afterwards. Idempotent. */
  close(): void;
  /**
   * Settles once the subscription ends: with undefined after `close()`, with the error when the
   * connection died (viciUnavailable) or the listener threw. Never rejects.
   */
  readonly ended: Promise<TunnelwardenError | undefined>;
}

/** Checks a positive timeout, or -1 when `allowNoWait`; throws a bug-kind error otherwise. */
function checkTimeout(timeoutMs: number, what: string, allowNoWait = false): number {
  if ((Number.isInteger(timeoutMs) && timeoutMs > 0) || (allowNoWait && timeoutMs === -1))
    return timeoutMs;
  const allowed = allowNoWait ? 'a positive integer or -1' : 'a positive integer';
  throw new TunnelwardenError(
    'bug',
    ErrorCode.internal,
    `${what}: timeoutMs must be ${allowed}, got ${timeoutMs}`,
  );
}

function count(response: ViciMessage, key: string): number {
  const value = response[key];
  const parsed = typeof value === 'string' ? Number.parseInt(value, 10) : Number.NaN;
  return Number.isNaN(parsed) ? 0 : parsed;
}

/** A vici client on one connection to charon. Create with `ViciClient.connect`. */
export class ViciClient {
  private constructor(
    private readonly connection: ViciConnection,
    private readonly defaultTimeoutMs: number,
    private readonly logger: Logger | undefined,
  ) {}

  /**
   * Connects to charon's vici socket. Throws viciUnavailable (no socket, nobody listening) or
   * viciTimedOut.
   */
  static async connect(
    socketPath = DEFAULT_VICI_SOCKET,
    options: ViciConnectOptions = {},
  ): Promise<ViciClient> {
    const timeoutMs = checkTimeout(
      options.timeoutMs ?? DEFAULT_VICI_TIMEOUT_MS,
      'ViciClient.connect',
    );
    const connection = await ViciConnection.open(socketPath, timeoutMs);
    return new ViciClient(connection, timeoutMs, options.logger);
  }

  get socketPath(): string {
    return this.connection.socketPath;
  }

  /** False once the connection died or was closed; then every call fails with viciUnavailable. */
  get isOpen(): boolean {
    return this.connection.isOpen;
  }

  /**
   * Sends one command and returns charon's response. Throws viciCommandFailed when the response
   * has `success` other than `yes`, viciUnknownCommand, viciUnavailable, viciTimedOut.
   */
  request(
    command: string,
    message: ViciMessage = {},
    options: ViciCallOptions = {},
  ): Promise<ViciMessage> {
    return this.call(command, options.timeoutMs, async () => {
      const reply = await this.connection.exchange({
        type: PacketType.cmdRequest,
        name: command,
        message,
      });
      return commandResponse(command, reply);
    });
  }

  /**
   * Runs a streamed command: registers for `event`, sends the command, collects the events
   * until the response, unregisters. Throws like `request`.
   */
  requestStreamed(
    command: string,
    event: string,
    message: ViciMessage = {},
    options: ViciCallOptions = {},
  ): Promise<ViciStreamedAnswer> {
    return this.call(command, options.timeoutMs, () => this.streamed(command, event, message));
  }

  /** charon's `version` answer (daemon, version, sysname, release, machine). */
  version(options: ViciCallOptions = {}): Promise<ViciMessage> {
    return this.request('version', {}, options);
  }

  /**
   * The IKE_SAs charon holds, one `list-sa` event each (`{ <conn>: { uniqueid, state, ...,
   * child-sas: {...} } }`), unchanged. See observe/vici-sas.ts for the typed view.
   */
  async listSas(options: ListSasOptions = {}): Promise<ViciMessage[]> {
    const message: ViciMessage = {};
    if (options.ike !== undefined) message.ike = options.ike;
    if (options.ikeId !== undefined) message['ike-id'] = String(options.ikeId);
    if (options.noblock === true) message.noblock = 'yes';
    return (await this.requestStreamed('list-sas', 'list-sa', message, options)).events;
  }

  /** The connections charon has loaded (ipsec.conf ones included), one `list-conn` event each. */
  async listConns(options: { ike?: string } & ViciCallOptions = {}): Promise<ViciMessage[]> {
    const message: ViciMessage = options.ike === undefined ? {} : { ike: options.ike };
    return (await this.requestStreamed('list-conns', 'list-conn', message, options)).events;
  }

  /**
   * Initiates a CHILD_SA (and its IKE_SA if needed). Resolves when charon reports it
   * established (or, with timeoutMs -1, queued). Throws viciCommandFailed with charon's errmsg
   * and its last control-log lines in `details.log` when it fails or does not finish in time.
   */
  async initiate(options: InitiateOptions): Promise<void> {
    const charonTimeoutMs = checkTimeout(
      options.timeoutMs ?? DEFAULT_SA_CHANGE_TIMEOUT_MS,
      'initiate',
      true,
    );
    const message: ViciMessage = { child: options.child, timeout: String(charonTimeoutMs) };
    if (options.ike !== undefined) message.ike = options.ike;
    await this.controlCall('initiate', message, charonTimeoutMs);
  }

  /**
   * Terminates the IKE_SAs or CHILD_SAs matching the selectors (at least one is needed).
   * Throws viciCommandFailed when nothing matched ("no matching SAs to terminate found") or not
   * everything could be terminated in time.
   */
  async terminate(options: TerminateOptions): Promise<TerminateResult> {
    const charonTimeoutMs = checkTimeout(
      options.timeoutMs ?? DEFAULT_SA_CHANGE_TIMEOUT_MS,
      'terminate',
      true,
    );
    const message: ViciMessage = { timeout: String(charonTimeoutMs) };
    if (options.ike !== undefined) message.ike = options.ike;
    if (options.child !== undefined) message.child = options.child;
    if (options.ikeId !== undefined) message['ike-id'] = String(options.ikeId);
    if (options.childId !== undefined) message['child-id'] = String(options.childId);
    if (options.force === true) message.force = 'yes';
    const response = await this.controlCall('terminate', message, charonTimeoutMs);
    return { matches: count(response, 'matches'), terminated: count(response, 'terminated') };
  }

  /**
   * Opens a second connection and delivers the named events to `listener` until closed or
   * until the connection dies (see `ViciSubscription.ended`). Resolves once charon confirmed
   * every registration. The listener must not throw: if it does, the subscription ends with
   * that error.
   */
  async subscribe(
    events: readonly ViciEventName[],
    listener: (event: ViciEvent) => void,
    options: SubscribeOptions = {},
  ): Promise<ViciSubscription> {
    const timeoutMs = checkTimeout(options.timeoutMs ?? this.defaultTimeoutMs, 'subscribe');
    const connection = await ViciConnection.open(this.socketPath, timeoutMs);
    const ended = new Promise<TunnelwardenError | undefined>((resolve) =>
      connection.onEnd(resolve),
    );
    let listenerError: TunnelwardenError | undefined;
    connection.eventSink = (event) => {
      try {
        listener(event);
      } catch (thrown) {
        listenerError = asTunnelwardenError(thrown);
        connection.close();
      }
    };

    try {
      await connection.serialise(`register ${events.join(', ')}`, timeoutMs, async () => {
        for (const event of events) await registration(connection, event, true);
      });
    } catch (thrown) {
      connection.close();
      throw thrown;
    }
    return {
      close: () => connection.close(),
      ended: ended.then((error) => error ?? listenerError),
    };
  }

  /** Closes the connection; calls still queued fail with viciUnavailable. Idempotent. */
  close(): void {
    this.connection.close();
  }

  /** initiate/terminate: streamed with control-log, deadline a margin beyond charon's own. */
  private async controlCall(
    command: string,
    message: ViciMessage,
    charonTimeoutMs: number,
  ): Promise<ViciMessage> {
    const deadlineMs =
      charonTimeoutMs === -1 ? this.defaultTimeoutMs : charonTimeoutMs + CHARON_VERDICT_MARGIN_MS;
    return this.call(command, deadlineMs, async () => {
      const log: string[] = [];
      const keepLine = (event: ViciMessage) => {
        if (typeof event.msg !== 'string') return;
        log.push(event.msg);
        if (log.length > CONTROL_LOG_LINES_KEPT) log.shift();
      };
      return (await this.streamed(command, 'control-log', message, keepLine, log)).response;
    });
  }

  private async call<T>(
    command: string,
    timeoutMs: number | undefined,
    body: () => Promise<T>,
  ): Promise<T> {
    const deadlineMs = checkTimeout(timeoutMs ?? this.defaultTimeoutMs, command);
    const startedAt = performance.now();
    try {
      return await this.connection.serialise(command, deadlineMs, body);
    } finally {
      const durationMs = Math.round(performance.now() - startedAt);
      this.logger?.debug(
        { command, socket: this.socketPath, duration_ms: durationMs },
        'vici call',
      );
    }
  }

  /** The streamed exchange; only inside `call`. */
  private async streamed(
    command: string,
    event: string,
    message: ViciMessage,
    onEvent?: (message: ViciMessage) => void,
    log: readonly string[] = [],
  ): Promise<ViciStreamedAnswer> {
    const events: ViciMessage[] = [];
    await registration(this.connection, event, true);
    this.connection.eventSink = (incoming) => {
      if (incoming.name !== event) return;
      if (onEvent === undefined) events.push(incoming.message);
      else onEvent(incoming.message);
    };
    let answer: ViciStreamedAnswer;
    try {
      const reply = await this.connection.exchange({
        type: PacketType.cmdRequest,
        name: command,
        message,
      });
      answer = { events, response: commandResponse(command, reply, log) };
    } catch (thrown) {
      // Unregister anyway, but the command's own failure is what the caller needs to see.
      this.connection.eventSink = undefined;
      if (this.connection.isOpen)
        await registration(this.connection, event, false).catch(() => undefined);
      throw thrown;
    }
    this.connection.eventSink = undefined;
    await registration(this.connection, event, false);
    return answer;
  }
}
