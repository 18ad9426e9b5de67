/**
 * The road-warrior parts of the command line: the certificate checks `validate` runs, and the
 * `client-profile` command. Kept apart from main.ts, which only wires them in.
 */
import { ErrorCode, TunnelwardenError } from '../errors.js';
import { formatFinding } from '../model/load.js';
import { parseIp } from '../model/net.js';
import type { DesiredState } from '../model/schema.js';
import { checkRoadWarriorCredentials, readCaCertificate } from '../host/certificates.js';
import { hostFiles } from '../host/files.js';
import { resolveSecrets } from '../host/secrets.js';
import {
  defaultRemoteAddress,
  renderClientProfile,
  type ClientProfileFormat,
} from '../plan/client-profile.js';
import { eapPasswordPath } from '../plan/ipsec-render.js';

/**
 * Runs the road-warrior certificate checks for `validate` and prints their findings on stderr
 * (`FILE: error: ipsec.roadWarrior.certificate: ...`). Without `required`, a state whose
 * certificate file is absent here (validating off-host) is only noted. Returns false on errors.
 */
export async function validateHostFiles(
  file: string,
  state: DesiredState,
  required: boolean,
  err: (line: string) => void,
): Promise<boolean> {
  const check = await checkRoadWarriorCredentials(state, {
    mode: required ? 'required' : 'when-present',
    nowMs: Date.now(),
  });
  if (check.skipped) {
    err(
      `${file}: note: ipsec.roadWarrior: ${check.skipped} (validate --host-checks requires the files)`,
    );
  }
  for (const finding of [...check.warnings, ...check.errors])
    err(`${file}: ${formatFinding(finding)}`);
  if (check.errors.length === 0) return true;
  const count = check.errors.length;
  err(`${file}: invalid (${count} error${count === 1 ? '' : 's'} in the road-warrior files)`);
  return false;
}

export interface ClientProfileOptions {
  format: ClientProfileFormat;
  includePassword?: boolean;
  remoteAddress?: string;
}

const DNS_NAME = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$/;

/**
 * The profile text for client `eapId`. Reads the CA certificate and, with `includePassword`,
 * the client's password; warnings (a password file others can read) go to `err`. Throws
 * TunnelwardenError (invalid-config) naming what is missing.
 */
export async function buildClientProfile(
  state: DesiredState,
  eapId: string,
  options: ClientProfileOptions,
  err: (line: string) => void,
): Promise<string> {
  const unavailable = (message: string) =>
    new TunnelwardenError('invalid-config', ErrorCode.clientProfileUnavailable, message);
  const roadWarrior = state.ipsec?.roadWarrior;
  if (!roadWarrior) throw unavailable('the desired state has no ipsec.roadWarrior service');
  const client = roadWarrior.clients.find((candidate) => candidate.eapId === eapId);
  if (!client) {
    const known = roadWarrior.clients.map((candidate) => candidate.eapId).join(', ') || 'none';
    throw unavailable(`no road-warrior client "${eapId}" (clients: ${known})`);
  }

  const remoteAddress = options.remoteAddress ?? defaultRemoteAddress(roadWarrior.serverId);
  if (remoteAddress === undefined) {
    throw unavailable(
      `the server id "${roadWarrior.serverId}" is not an address clients can dial; pass --remote-address`,
    );
  }
  if (parseIp(remoteAddress) === undefined && !DNS_NAME.test(remoteAddress)) {
    throw unavailable(`--remote-address "${remoteAddress}" is not an IP address or DNS name`);
  }

  let ca: Awaited<ReturnType<typeof readCaCertificate>>;
  try {
    ca = await readCaCertificate(roadWarrior);
  } catch (thrown) {
    const reason = (thrown as NodeJS.ErrnoException).code ?? (thrown as Error).message;
    throw unavailable(`cannot read the CA certificate ${roadWarrior.ca}: ${reason}`);
  }

  let password: string | undefined;
  if (options.includePassword) {
    // Resolve only this client's secret, so an unrelated unreadable secret file does not matter.
    const onlyClient: DesiredState = {
      ...state,
      ipsec: {
        ...state.ipsec!,
        connections: [],
        roadWarrior: { ...roadWarrior, clients: [client] },
      },
    };
    const resolution = await resolveSecrets(onlyClient, hostFiles);
    if (!resolution.ok) {
      throw unavailable(resolution.errors.map((finding) => finding.message).join('; '));
    }
    for (const warning of resolution.warnings)
      err(`warning: ${eapId} password: ${warning.message}`);
    password = resolution.secrets.get(eapPasswordPath(0));
  }

  const profile = renderClientProfile(options.format, {
    siteName: state.site.name,
    roadWarrior,
    client,
    remoteAddress,
    caCertificateDer: ca.der,
    ...(ca.commonName !== undefined ? { caCommonName: ca.commonName } : {}),
    ...(password !== undefined ? { password } : {}),
  });
  if (!options.includePassword) {
    err(`note: the profile for ${eapId} holds no password; --include-password adds it`);
  }
  return profile;
}
