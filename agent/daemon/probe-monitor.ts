/**
 * Between passes, the daemon probes every conn it initiates that has a probe, at the conn's
 * `intervalMs`. A lost probe is confirmed at once by another (not after a whole interval);
 * when `lossThreshold` are lost in a row it asks for a pass (and again at every interval
 * while the losses go on), whose health check reads the
 * count from here instead of probing again (see ProbeLog) and heals. After a heal the record
 * starts afresh with a probe at once (startAfresh), so a tunnel that dies again soon after is
 * seen as quickly as the first time. This is what brings a tunnel whose peer lost its state
 * back within seconds instead of DPD's minutes.
 */
import type { Logger } from 'pino';
import type { DesiredState, SiteToSiteConnection } from '../model/schema.js';
import type { CommandRunner } from '../host/exec.js';
import { probeOnce } from '../observe/probe.js';
import type { ProbeLog, ProbeReading } from '../apply/reconciler.js';

export interface ProbeMonitor extends ProbeLog {
  /** Probes exactly the conns of this desired state that initiate and have a probe. */
  follow(desired: DesiredState): void;
  stop(): void;
}

interface Follower {
  connection: SiteToSiteConnection;
  timer?: NodeJS.Timeout;
  stopped: boolean;
  reading?: ProbeReading;
  /** Bumped by startAfresh; a probe sent under an older generation is ignored. */
  generation: number;
}

export function createProbeMonitor(options: {
  run: CommandRunner;
  logger: Logger;
  /** Called when a conn reached its loss threshold; the daemon triggers a pass. */
  onDead: (conn: string) => void;
}): ProbeMonitor {
  const followers = new Map<string, Follower>();

  async function probe(follower: Follower): Promise<void> {
    const probeConfig = follower.connection.probe!;
    const sentAtMs = Date.now();
    const generation = follower.generation;
    const result = await probeOnce(options.run, probeConfig).catch(() => ({ replied: false }));
    if (follower.stopped || follower.generation !== generation) return;
    const previous = follower.reading;
    const losses = result.replied ? 0 : (previous?.consecutiveLosses ?? 0) + 1;
    const lossesSinceMs = losses === 0 ? undefined : losses === 1 ? sentAtMs : previous?.lossesSinceMs;
    follower.reading = {
      consecutiveLosses: losses,
      atMs: Date.now(),
      ...(lossesSinceMs === undefined ? {} : { lossesSinceMs }),
    };
    if (!result.replied && losses < probeConfig.lossThreshold) {
      schedule(follower, 0); // confirm a loss at once
      return;
    }
    if (losses >= probeConfig.lossThreshold) {
      // Asked again every interval while the tunnel stays dead: a heal held back by its
      // backoff gets its next chance without waiting for the schedule.
      const log = losses === probeConfig.lossThreshold ? options.logger.warn : options.logger.debug;
      log.call(
        options.logger,
        { resource: 'ipsec', conn: follower.connection.name, losses, target: probeConfig.target },
        'probe lost; asking for a pass',
      );
      options.onDead(follower.connection.name);
    }
    schedule(follower, probeConfig.intervalMs);
  }

  function schedule(follower: Follower, delayMs: number): void {
    if (follower.stopped) return;
    follower.timer = setTimeout(() => void probe(follower), delayMs);
    follower.timer.unref();
  }

  function unfollow(name: string): void {
    const follower = followers.get(name);
    if (!follower) return;
    follower.stopped = true;
    clearTimeout(follower.timer);
    followers.delete(name);
  }

  return {
    follow(desired) {
      const wanted = new Map(
        (desired.ipsec?.connections ?? [])
          .filter((connection) => connection.initiate && connection.probe)
          .map((connection) => [connection.name, connection]),
      );
      for (const name of [...followers.keys()]) {
        const current = followers.get(name)!;
        const next = wanted.get(name);
        if (!next || JSON.stringify(next.probe) !== JSON.stringify(current.connection.probe)) unfollow(name);
      }
      for (const [name, connection] of wanted) {
        if (followers.has(name)) continue;
        const follower: Follower = { connection, stopped: false, generation: 0 };
        followers.set(name, follower);
        schedule(follower, connection.probe!.intervalMs);
      }
    },
    latest: (conn) => followers.get(conn)?.reading,
    startAfresh(conn) {
      const follower = followers.get(conn);
      if (!follower || follower.stopped) return;
      follower.generation += 1;
      follower.reading = undefined;
      clearTimeout(follower.timer);
      schedule(follower, 0);
    },
    stop() {
      for (const name of [...followers.keys()]) unfollow(name);
    },
  };
}
