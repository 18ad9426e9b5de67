/**
 * A scripted stand-in for charon's vici socket in a temp dir, for tests of the vici client and
 * of what listens to it: records every packet it receives, answers what its script says.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { encodeSegment, PacketType, SegmentReader, type ViciPacket } from '../../agent/host/vici-codec.js';

/** Bound for every wait of the tests using this; no assertion depends on a fixed sleep. */
export const WAIT_MS = 5_000;

export interface Received {
  connection: number;
  packet: ViciPacket;
}

/** What the stand-in does with one packet; `reply` sends a packet on the same connection. */
export type Script = (packet: ViciPacket, reply: (packet: ViciPacket) => void, connection: number) => void;

/** Confirms registrations, answers `version`, and leaves anything else unanswered. */
export const basicScript: Script = (packet, reply) => {
  if (packet.type === PacketType.eventRegister || packet.type === PacketType.eventUnregister) {
    reply({ type: PacketType.eventConfirm });
  } else if (packet.type === PacketType.cmdRequest && packet.name === 'version') {
    reply({ type: PacketType.cmdResponse, message: { daemon: 'charon', version: '5.9.8' } });
  }
};

export class FakeCharon {
  readonly received: Received[] = [];
  readonly sockets: Socket[] = [];

  private constructor(
    private readonly server: Server,
    readonly dir: string,
    readonly socketPath: string,
    private readonly ownsDir: boolean,
  ) {}

  /**
   * Listens on `socketPath` when given (its directory must exist and is left in place), else
   * on charon.vici in a temp dir of its own, removed by `stop`.
   */
  static async start(
    t: { teardown(fn: () => unknown): void },
    script: Script,
    socketPath?: string,
  ): Promise<FakeCharon> {
    const dir = socketPath ? path.dirname(socketPath) : await mkdtemp(path.join(tmpdir(), 'tw-vici-'));
    const listenPath = socketPath ?? path.join(dir, 'charon.vici');
    const server = createServer();
    const fake = new FakeCharon(server, dir, listenPath, socketPath === undefined);
    server.on('connection', (socket) => {
      const connection = fake.sockets.push(socket);
      const reader = new SegmentReader();
      socket.on('error', () => undefined);
      socket.on('data', (chunk) => {
        for (const packet of reader.push(chunk)) {
          fake.received.push({ connection, packet });
          script(packet, (answer) => socket.write(encodeSegment(answer)), connection);
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(listenPath, resolve));
    t.teardown(() => fake.stop());
    return fake;
  }

  /** Names of the packets received, as `TYPE name`, for asserting on the exchange. */
  trace(connection?: number): string[] {
    return this.received
      .filter((entry) => connection === undefined || entry.connection === connection)
      .map(({ packet }) => `${packet.type}${packet.name === undefined ? '' : ` ${packet.name}`}`);
  }

  /** Drops every client connection, as charon's death would. */
  dropClients(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  async stop(): Promise<void> {
    this.dropClients();
    if (this.server.listening) await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.ownsDir) await rm(this.dir, { recursive: true, force: true });
  }
}

export async function until(probe: () => boolean): Promise<boolean> {
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    if (probe()) return true;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return probe();
}

