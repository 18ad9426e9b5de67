/**
 * Where tunnelwarden reads and writes on the host. Defaults are the system paths; tests and
 * odd layouts pass their own. Pure data.
 */
export interface HostPaths {
  /** strongSwan's main config, which gets one `include` line for our file. */
  ipsecConf: string;
  /** strongSwan's main secrets file, which gets one `include` line for our secrets. */
  ipsecSecrets: string;
  /** Our connections; the whole file is ours. */
  ourConf: string;
  /** Our secrets, mode 0600; the whole file is ours. */
  ourSecrets: string;
  /** What tunnelwarden remembers between passes (interfaces it created, heal history). */
  stateDir: string;
  /** Presence means systemd is the init system (sd_booted's test). */
  systemdRunDir: string;
  /** strongSwan's starter writes its pid here while it runs. */
  starterPidFile: string;
  /** One directory per running process, named by pid. */
  procDir: string;
}

export const DEFAULT_PATHS: Readonly<HostPaths> = Object.freeze({
  ipsecConf: '/etc/ipsec.conf',
  ipsecSecrets: '/etc/ipsec.secrets',
  ourConf: '/etc/ipsec.d/tunnelwarden.conf',
  ourSecrets: '/etc/ipsec.d/tunnelwarden.secrets',
  stateDir: '/var/lib/tunnelwarden',
  systemdRunDir: '/run/systemd/system',
  starterPidFile: '/run/starter.charon.pid',
  procDir: '/proc',
});
