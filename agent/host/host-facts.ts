/**
 * Facts about the machine tunnelwarden runs on (operating system, kernel, CPU, memory), for
 * `tunnelwarden status` and the benchmark's machine line: what a support request needs next
 * to the VPN's own state. Read through systeminformation, loaded only when asked for, so the
 * daemon, which never asks, does not carry it in memory.
 */

export interface HostFacts {
  hostname: string;
  /** Distribution and release as os-release names them, "Debian GNU/Linux 12". */
  os: string;
  kernel: string;
  arch: string;
  cpuModel: string;
  cpuCores: number;
  memoryBytes: number;
}

/**
 * Reads the host's facts. Side effects: reads /etc/os-release and /proc, may run `uname`.
 * Never throws: a host whose facts cannot be read gets undefined, since no caller depends on
 * them to do its job.
 */
export async function readHostFacts(): Promise<HostFacts | undefined> {
  try {
    const { default: si } = await import('systeminformation');
    const [os, cpu, memory] = await Promise.all([si.osInfo(), si.cpu(), si.mem()]);
    return {
      hostname: os.hostname,
      os: [os.distro, os.release].filter((part) => part !== '').join(' '),
      kernel: os.kernel,
      arch: os.arch,
      cpuModel: [cpu.manufacturer, cpu.brand].filter((part) => part !== '').join(' '),
      cpuCores: cpu.cores,
      memoryBytes: memory.total,
    };
  } catch {
    return undefined;
  }
}

/** "vm: Debian GNU/Linux 12, kernel 6.1.0-28-amd64 x64, 2 cores AMD EPYC, 23.5 GiB". Pure. */
export function formatHostFacts(facts: HostFacts): string {
  const gib = (facts.memoryBytes / 1024 ** 3).toFixed(1);
  return (
    `${facts.hostname}: ${facts.os}, kernel ${facts.kernel} ${facts.arch}, ` +
    `${facts.cpuCores} cores ${facts.cpuModel}, ${gib} GiB`
  );
}
