/**
 * One socket to charon's vici plugin, below ViciClient (vici.ts): connecting, the framing of
 * vici-codec.ts, the one-call-at-a-time queue with deadlines, the routing of incoming packets
 * (a reply to the call waiting for it, events to the current event sink), and the checks of a
 * command's response and of an event (un)registration. See vici.ts for the rules it enforces.
 */
import { createConnection, type Socket } from 'node:net';
import { asTunnelwardenError, ErrorCode, TunnelwardenError } from '../errors.js';
import {
  encodeSegment,
  PacketType,
  packetTypeName,
  SegmentReader,
  type ViciMessage,
  type ViciPacket,
} from './vici-codec.js';

/** An event as charon raised it. */
export interface ViciEvent {
  name: string;
  message: ViciMessage;
}

/** The error of a connection that cannot be opened or is gone. */
function unavailable(socketPath: string, reason: string, cause?: unknown): TunnelwardenError {
  return new TunnelwardenError(
    'command-failed',
    ErrorCode.viciUnavailable,
    `vici at ${socketPath}: ${reason}`,
    { cause, details: { socketPath } },
  );
}

function describeSocketError(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'ENOENT':
      return 'no socket there (charon not running, or without the vici plugin)';
    case 'ECONNREFUSED':
      return 'nothing accepts connections there (charon not running)';
    case 'EACCES':
      return 'permission denied';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'charon closed the connection';
    default:
      return error.message;
  }
}

/**
 * One socket to charon: framing, the one-call-at-a-time queue with deadlines, and the routing
 * of incoming packets (replies to the waiting call, events to the event sink).
 */
export class ViciConnection {
  private readonly reader = new SegmentReader();
  private waiting:
    | { resolve: (packet: ViciPacket) => void; reject: (error: TunnelwardenError) => void }
    | undefined;
  private ended = false;
  /** Why the connection ended; undefined while open or when the caller closed it. */
  private failure: TunnelwardenError | undefined;
  private tail: Promise<void> = Promise.resolve();
  private readonly endListeners: ((error: TunnelwardenError | undefined) => void)[] = [];
  /** Receives every EVENT packet; replaced by streamed calls and subscriptions. */
  eventSink: ((event: ViciEvent) => void) | undefined;

  private constructor(
    private readonly socket: Socket,
    readonly socketPath: string,
  ) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      this.end(unavailable(socketPath, describeSocketError(error), error));
    });
    socket.on('close', () => this.end(unavailable(socketPath, 'charon closed the connection')));
  }

  /** Connects, failing with viciUnavailable or viciTimedOut. */
  static open(socketPath: string, timeoutMs: number): Promise<ViciConnection> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ path: socketPath });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(
          new TunnelwardenError(
            'command-failed',
            ErrorCode.viciTimedOut,
            `vici at ${socketPath}: no connection within ${timeoutMs} ms`,
            { details: { socketPath, timeoutMs } },
          ),
        );
      }, timeoutMs);
      socket.once('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(unavailable(socketPath, describeSocketError(error), error));
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new ViciConnection(socket, socketPath));
      });
    });
  }

  get isOpen(): boolean {
    return !this.ended;
  }

  /** Calls `listener` once when the connection ends: with undefined when the caller closed it. */
  onEnd(listener: (error: TunnelwardenError | undefined) => void): void {
    if (this.ended) listener(this.failure);
    else this.endListeners.push(listener);
  }

  /**
   * Runs `body` when every earlier call is done, within `timeoutMs` counted from now. See the
   * module header for what an expired deadline does.
   */
  serialise<T>(what: string, timeoutMs: number, body: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let started = false;
      let settled = false;
      const settle = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        outcome();
      };
      const timer = setTimeout(() => {
        const queued = started ? '' : ' (still queued behind earlier calls)';
        const error = new TunnelwardenError(
          'command-failed',
          ErrorCode.viciTimedOut,
          `vici ${what} got no answer within ${timeoutMs} ms${queued}`,
          { details: { socketPath: this.socketPath, timeoutMs } },
        );
        settle(() => reject(error));
        if (started) this.end(unavailable(this.socketPath, `closed after ${what} timed out`));
      }, timeoutMs);

      this.tail = this.tail.then(async () => {
        if (settled) return;
        started = true;
        try {
          const value = await body();
          settle(() => resolve(value));
        } catch (thrown) {
          settle(() => reject(asTunnelwardenError(thrown)));
        }
      });
    });
  }

  /** Sends `packet` and waits for the next packet that is not an event. Only inside `serialise`. */
  exchange(packet: ViciPacket): Promise<ViciPacket> {
    if (this.ended) {
      return Promise.reject(unavailable(this.socketPath, 'connection is closed', this.failure));
    }
    const segment = encodeSegment(packet);
    return new Promise<ViciPacket>((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.write(segment);
    });
  }

  /** Closes the connection; pending and later calls fail with viciUnavailable. Idempotent. */
  close(): void {
    this.end(undefined);
  }

  private receive(chunk: Buffer): void {
    let packets: ViciPacket[];
    try {
      packets = this.reader.push(chunk);
    } catch (thrown) {
      this.end(asTunnelwardenError(thrown));
      return;
    }
    for (const packet of packets) {
      if (packet.type === PacketType.event) {
        this.eventSink?.({ name: packet.name ?? '', message: packet.message ?? {} });
        if (this.ended) return;
        continue;
      }
      const waiting = this.waiting;
      this.waiting = undefined;
      if (waiting === undefined) {
        const reason = `unexpected ${packetTypeName(packet.type)} with no call waiting`;
        this.end(
          new TunnelwardenError(
            'unsupported',
            ErrorCode.viciMalformed,
            `vici at ${this.socketPath}: ${reason}`,
          ),
        );
        return;
      }
      waiting.resolve(packet);
    }
  }

  /**
   * Marks the connection dead (`reason` undefined: closed by the caller), destroys the socket
   * and fails the waiting call. Only the first call counts.
   */
  private end(reason: TunnelwardenError | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = reason;
    this.socket.destroy();
    this.eventSink = undefined;
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.reject(reason ?? unavailable(this.socketPath, 'connection closed by the caller'));
    for (const listener of this.endListeners.splice(0)) listener(reason);
  }
}

/** Throws unless `reply` is a CMD_RESPONSE whose `success`, if present, is `yes`. */
export function commandResponse(
  command: string,
  reply: ViciPacket,
  log: readonly string[] = [],
): ViciMessage {
  if (reply.type === PacketType.cmdUnknown) {
    throw new TunnelwardenError(
      'unsupported',
      ErrorCode.viciUnknownCommand,
      `charon does not know the vici command '${command}'`,
      {
        details: { command },
      },
    );
  }
  if (reply.type !== PacketType.cmdResponse) {
    throw new TunnelwardenError(
      'unsupported',
      ErrorCode.viciMalformed,
      `vici ${command} was answered with ${packetTypeName(reply.type)}`,
      { details: { command } },
    );
  }
  const response = reply.message ?? {};
  const success = response.success;
  if (success !== undefined && success !== 'yes') {
    const errmsg = typeof response.errmsg === 'string' ? response.errmsg : 'no errmsg given';
    throw new TunnelwardenError(
      'command-failed',
      ErrorCode.viciCommandFailed,
      `vici ${command} failed: ${errmsg}`,
      {
        details: { command, errmsg, ...(log.length > 0 ? { log: [...log] } : {}) },
      },
    );
  }
  return response;
}

/** Sends EVENT_REGISTER or EVENT_UNREGISTER and checks the confirmation. */
export async function registration(
  connection: ViciConnection,
  event: string,
  register: boolean,
): Promise<void> {
  const type = register ? PacketType.eventRegister : PacketType.eventUnregister;
  const reply = await connection.exchange({ type, name: event });
  if (reply.type === PacketType.eventConfirm) return;
  if (reply.type === PacketType.eventUnknown) {
    throw new TunnelwardenError(
      'unsupported',
      ErrorCode.viciUnknownCommand,
      `charon has no vici event '${event}'`,
      {
        details: { event },
      },
    );
  }
  throw new TunnelwardenError(
    'unsupported',
    ErrorCode.viciMalformed,
    `vici ${packetTypeName(type)} ${event} was answered with ${packetTypeName(reply.type)}`,
    { details: { event } },
  );
}
