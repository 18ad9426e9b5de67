/**
 * The data-path probe: one ping from a local-subnet address to an address in the remote
 * subnets, which only crosses if the tunnel really carries traffic. The parser is pure; the
 * call runs iputils `ping` through the command runner.
 */
import type { CommandRunner } from '../host/exec.js';

export interface ProbeResult {
  replied: boolean;
  rttMs?: number;
}

/** The reply line of iputils ping: `64 bytes from 10.2.0.1: icmp_seq=1 ttl=64 time=0.513 ms`. */
const replyLine = /^\d+ bytes from [^\s:]+: .*\btime[=<]([0-9.]+) ms/m;

/** Reads one ping's output. Pure. */
export function parsePingOutput(stdout: string): ProbeResult {
  const match = replyLine.exec(stdout);
  if (!match) return { replied: false };
  const rttMs = Number(match[1]);
  return Number.isFinite(rttMs) ? { replied: true, rttMs } : { replied: true };
}

/** Sends one probe and waits at most `timeoutMs` for the reply. Never throws for a lost probe. */
export async function probeOnce(
  run: CommandRunner,
  probe: { source: string; target: string; timeoutMs: number },
): Promise<ProbeResult> {
  const waitSeconds = (probe.timeoutMs / 1000).toFixed(3);
  const result = await run(['ping', '-n', '-c', '1', '-W', waitSeconds, '-I', probe.source, probe.target], {
    allowFailure: true,
    timeoutMs: probe.timeoutMs + 2_000,
  });
  return parsePingOutput(result.stdout);
}
