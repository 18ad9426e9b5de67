/**
 * Host-side checks of the road-warrior service's credential files: the server certificate, its
 * private key and the CA that issued it. They run in `validate` and in every ipsec pass, read
 * the files with node:crypto (no openssl command) and report findings with the JSON path of the
 * field that names the file, never key material.
 *
 * What is checked, and why it bites in the field:
 * - every file exists, is readable and parses (PEM or DER);
 * - the key belongs to the certificate (same public key), else charon cannot sign IKE_AUTH;
 * - a DNS, IP or email SAN equals the server id: strongSwan does not take a wildcard SAN or the
 *   subject CN as proof of `leftid` (it then silently falls back to the subject DN) and clients
 *   compare the id they dial with the SANs;
 * - the key is RSA or ECDSA (what our `: RSA` / `: ECDSA` secrets line can load), and RSA when
 *   Apple clients are expected (their built-in IKEv2 client rejects an ECDSA server by default);
 * - validity: an error once expired or not yet valid, a warning EXPIRY_WARNING_DAYS before;
 * - the CA is a CA certificate, issued the server certificate and its signature verifies;
 * - warnings: no serverAuth extended key usage (macOS and Windows want it), a key file that
 *   others can read.
 *
 * Limitations: one-level chains only (the CA file must hold the direct issuer); revocation is
 * not checked; a passphrase-protected key is reported as an error because our secrets line
 * carries no passphrase.
 */
import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { Finding, JsonPath } from '../model/checks.js';
import { formatIp, parseIp } from '../model/net.js';
import type { DesiredState, RoadWarrior } from '../model/schema.js';
import { serverIdentity } from '../plan/client-profile.js';
import type { ServerCredentials, ServerKeyType } from '../plan/ipsec-render.js';

/** A certificate expiring within this many days gets a warning. */
export const EXPIRY_WARNING_DAYS = 30;
const DAY_MS = 86_400_000;
const SERVER_AUTH_EKU = '1.3.6.1.5.5.7.3.1';

/** Reads a whole file; rejects with the Node errno error (ENOENT, EACCES...) when it cannot. */
export type ReadFileBytes = (path: string) => Promise<Buffer>;
/** Permission bits of a file, or undefined when it cannot be stat'ed. */
export type FileModeOf = (path: string) => Promise<number | undefined>;

/**
 * `required`: every file must be there and readable (the agent on its host, `validate
 * --host-checks`). `when-present`: for `validate` without the flag, which also runs off-host:
 * nothing is checked when the certificate file is absent, and a file this user may not read
 * (a root-only key) is a warning saying what was skipped instead of an error.
 */
export type HostCheckMode = 'required' | 'when-present';

export interface CredentialCheckOptions {
  mode: HostCheckMode;
  nowMs: number;
  readFileBytes?: ReadFileBytes;
  fileModeOf?: FileModeOf;
}

/** The outcome; empty (no findings) when the state has no road-warrior service. */
export interface CredentialCheck {
  errors: Finding[];
  warnings: Finding[];
  /** What rendering needs of the server's files; undefined when the key could not be read. */
  serverCredentials?: ServerCredentials;
  /** Why nothing was checked (`when-present` mode, certificate absent). */
  skipped?: string;
}

const readFileFromHost: ReadFileBytes = (path) => readFile(path);
const modeFromHost: FileModeOf = async (path) => {
  try {
    return (await stat(path)).mode & 0o7777;
  } catch {
    return undefined;
  }
};

type Field = 'certificate' | 'privateKey' | 'ca' | 'serverId';

/** Collects findings under `ipsec.roadWarrior.<field>`. */
interface Report {
  error(field: Field, message: string): void;
  warning(field: Field, message: string): void;
}

/**
 * Checks the road-warrior credential files of `state` against its desired road-warrior
 * section. Read-only; never throws for a bad or missing file (that is a finding).
 */
export async function checkRoadWarriorCredentials(
  state: DesiredState,
  options: CredentialCheckOptions,
): Promise<CredentialCheck> {
  const roadWarrior = state.ipsec?.roadWarrior;
  const result: CredentialCheck = { errors: [], warnings: [] };
  if (!roadWarrior) return result;
  const finding = (severity: 'error' | 'warning', field: Field, message: string) =>
    (severity === 'error' ? result.errors : result.warnings).push({
      severity,
      path: ['ipsec', 'roadWarrior', field] satisfies JsonPath,
      message,
    });
  const report: Report = {
    error: (field, message) => finding('error', field, message),
    warning: (field, message) => finding('warning', field, message),
  };

  // 1. Read the three files; in when-present mode an absent certificate means "not this host".
  const files = await readCredentialFiles(roadWarrior, options, report);
  if ('skipped' in files) return { ...result, skipped: files.skipped };

  // 2. Parse what was read.
  const certificate = parseCertificate(files.certificate, roadWarrior.certificate, (message) =>
    report.error('certificate', message),
  );
  const ca = parseCertificate(files.ca, roadWarrior.ca, (message) => report.error('ca', message));
  const privateKey = parsePrivateKey(files.privateKey, roadWarrior.privateKey, (message) =>
    report.error('privateKey', message),
  );

  // 3. Each file on its own, then how they relate.
  if (certificate) checkServerCertificate(certificate, roadWarrior, options.nowMs, report);
  if (privateKey) {
    const keyType = checkServerKeyType(privateKey, roadWarrior, report);
    if (keyType) result.serverCredentials = { keyType };
    if (certificate && !samePublicKey(certificate, privateKey)) {
      report.error(
        'privateKey',
        `does not match the server certificate ${roadWarrior.certificate} (their public keys differ)`,
      );
    }
    const mode = await (options.fileModeOf ?? modeFromHost)(roadWarrior.privateKey);
    if (mode !== undefined && (mode & 0o077) !== 0) {
      const file = roadWarrior.privateKey;
      report.warning(
        'privateKey',
        `${file} is readable by others (mode ${mode.toString(8)}); chmod 600 it`,
      );
    }
  }
  if (ca) checkCa(ca, certificate, roadWarrior, options.nowMs, report);
  return result;
}

type CredentialFiles = Partial<Record<'certificate' | 'privateKey' | 'ca', Buffer>>;

async function readCredentialFiles(
  roadWarrior: RoadWarrior,
  options: CredentialCheckOptions,
  report: Report,
): Promise<CredentialFiles | { skipped: string }> {
  const read = options.readFileBytes ?? readFileFromHost;
  const files: CredentialFiles = {};
  for (const field of ['certificate', 'privateKey', 'ca'] as const) {
    const path = roadWarrior[field];
    try {
      files[field] = await read(path);
    } catch (thrown) {
      const code = (thrown as NodeJS.ErrnoException).code;
      const lenient = options.mode === 'when-present';
      if (field === 'certificate' && code === 'ENOENT' && lenient) {
        return { skipped: `${path} does not exist here, so the certificate checks did not run` };
      }
      if (code === 'EACCES' && lenient) {
        const skipped = 'its checks were skipped; run as root';
        report.warning(field, `cannot read ${path} as this user (permission denied): ${skipped}`);
      } else if (code === 'ENOENT') {
        report.error(field, `${path} does not exist`);
      } else {
        report.error(field, `cannot read ${path}: ${code ?? (thrown as Error).message}`);
      }
    }
  }
  return files;
}

/** Validity, identity and extended key usage of the server certificate. */
function checkServerCertificate(
  certificate: X509Certificate,
  roadWarrior: RoadWarrior,
  nowMs: number,
  report: Report,
): void {
  checkValidity(certificate, 'server certificate', nowMs, 'certificate', report);
  const identityProblem = serverIdProblem(certificate, roadWarrior.serverId);
  if (identityProblem) report.error('serverId', identityProblem);
  const extendedKeyUsage = certificate.keyUsage as string[] | undefined;
  if (!extendedKeyUsage?.includes(SERVER_AUTH_EKU)) {
    report.warning(
      'certificate',
      'has no serverAuth extended key usage; macOS and Windows clients reject an IKEv2 server ' +
        'certificate without it',
    );
  }
}

/** The CA's own validity, that it is a CA, and that it issued the server certificate. */
function checkCa(
  ca: X509Certificate,
  certificate: X509Certificate | undefined,
  roadWarrior: RoadWarrior,
  nowMs: number,
  report: Report,
): void {
  checkValidity(ca, 'CA certificate', nowMs, 'ca', report);
  if (!ca.ca) {
    const problem = 'is not a CA certificate (basicConstraints CA:TRUE is missing)';
    report.error('ca', `${roadWarrior.ca} ${problem}`);
  }
  if (certificate && !issuedBy(certificate, ca)) {
    report.error(
      'ca',
      `did not issue the server certificate: it was issued by "${oneLine(certificate.issuer)}", ` +
        `the CA in ${roadWarrior.ca} is "${oneLine(ca.subject)}"`,
    );
  }
}

/** The CA certificate of the road-warrior service as DER bytes and its common name, for profiles. */
export async function readCaCertificate(
  roadWarrior: RoadWarrior,
  readFileBytes: ReadFileBytes = readFileFromHost,
): Promise<{ der: Buffer; commonName?: string }> {
  const certificate = new X509Certificate(await readFileBytes(roadWarrior.ca));
  const commonName = /(?:^|\n)CN=([^\n]*)/.exec(certificate.subject)?.[1];
  return { der: certificate.raw, ...(commonName ? { commonName } : {}) };
}

function parseCertificate(
  bytes: Buffer | undefined,
  path: string,
  error: (message: string) => void,
) {
  if (bytes === undefined) return undefined;
  try {
    return new X509Certificate(bytes);
  } catch {
    error(`${path} is not an X.509 certificate (PEM or DER)`);
    return undefined;
  }
}

function parsePrivateKey(
  bytes: Buffer | undefined,
  path: string,
  error: (message: string) => void,
) {
  if (bytes === undefined) return undefined;
  const head = bytes.subarray(0, 256).toString('latin1');
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: *4,ENCRYPTED/.test(head)) {
    error(
      `${path} is encrypted: charon would need its passphrase, which our secrets file does not carry`,
    );
    return undefined;
  }
  const pem = head.includes('-----BEGIN');
  const attempts: Parameters<typeof createPrivateKey>[0][] = pem
    ? [bytes]
    : (['pkcs8', 'pkcs1', 'sec1'] as const).map((type) => ({
        key: bytes,
        format: 'der' as const,
        type,
      }));
  for (const attempt of attempts) {
    try {
      return createPrivateKey(attempt);
    } catch {
      // try the next encoding
    }
  }
  error(`${path} is not a private key (PEM, or DER as PKCS#8, PKCS#1 or SEC1)`);
  return undefined;
}

function checkValidity(
  certificate: X509Certificate,
  what: string,
  nowMs: number,
  field: Field,
  report: Report,
): void {
  const notBeforeMs = Date.parse(certificate.validFrom);
  const notAfterMs = Date.parse(certificate.validTo);
  const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  if (nowMs > notAfterMs) {
    report.error(field, `the ${what} expired on ${day(notAfterMs)}; clients refuse it`);
  } else if (nowMs < notBeforeMs) {
    const until = 'clients refuse it until then';
    report.error(field, `the ${what} is not valid before ${day(notBeforeMs)}; ${until}`);
  } else if (notAfterMs - nowMs < EXPIRY_WARNING_DAYS * DAY_MS) {
    const days = Math.floor((notAfterMs - nowMs) / DAY_MS);
    const inDays = `in ${days} day${days === 1 ? '' : 's'}`;
    report.warning(field, `the ${what} expires on ${day(notAfterMs)}, ${inDays}; renew it`);
  }
}

/** One entry of a certificate's subjectAltName as Node prints it (`DNS:a, IP Address:1.2.3.4`). */
interface SubjectAltName {
  type: string;
  value: string;
}

/**
 * Splits Node's subjectAltName text. Node quotes a value as a JSON string when it holds a
 * separator or quote, so a crafted SAN cannot smuggle in a second entry.
 */
export function parseSubjectAltNames(text: string | undefined): SubjectAltName[] {
  const names: SubjectAltName[] = [];
  let rest = text ?? '';
  while (rest.length > 0) {
    const colon = rest.indexOf(':');
    if (colon < 0) break;
    const type = rest.slice(0, colon);
    rest = rest.slice(colon + 1);
    let value: string;
    if (rest.startsWith('"')) {
      const end = closingQuote(rest);
      value = JSON.parse(rest.slice(0, end + 1)) as string;
      rest = rest.slice(end + 1);
    } else {
      const comma = rest.indexOf(', ');
      value = comma < 0 ? rest : rest.slice(0, comma);
      rest = comma < 0 ? '' : rest.slice(comma);
    }
    names.push({ type, value });
    rest = rest.replace(/^, /, '');
  }
  return names;
}

function closingQuote(text: string): number {
  for (let index = 1; index < text.length; index += 1) {
    if (text[index] === '\\') index += 1;
    else if (text[index] === '"') return index;
  }
  return text.length - 1;
}

/** Why the certificate does not certify `serverId` the way strongSwan checks it, if it does not. */
function serverIdProblem(certificate: X509Certificate, serverId: string): string | undefined {
  const identity = serverIdentity(serverId);
  if (!identity) return '%any cannot be certified; set the name or address clients dial';
  const sans = parseSubjectAltNames(certificate.subjectAltName);
  const listed =
    sans.length > 0 ? sans.map((san) => `${san.type}:${san.value}`).join(', ') : 'none';
  const matches = sans.some((san) => {
    if (identity.kind === 'ip') {
      const ip = parseIp(san.value);
      return san.type === 'IP Address' && ip !== undefined && formatIp(ip) === identity.value;
    }
    const type = identity.kind === 'fqdn' ? 'DNS' : 'email';
    return san.type === type && san.value.toLowerCase() === identity.value.toLowerCase();
  });
  if (matches) return undefined;
  const wildcard = sans.some((san) => san.type === 'DNS' && san.value.startsWith('*.'));
  return (
    `"${serverId}" is not a subjectAltName of the server certificate (its SANs: ${listed}); ` +
    'strongSwan would fall back to the subject DN as its id and clients would reject it' +
    (wildcard ? ' (strongSwan does not accept a wildcard SAN as proof of its id)' : '')
  );
}

/** The ipsec.secrets key type; reports keys our secrets line cannot load or Apple rejects. */
function checkServerKeyType(
  key: KeyObject,
  roadWarrior: RoadWarrior,
  report: Report,
): ServerKeyType | undefined {
  if (key.asymmetricKeyType === 'rsa') return 'RSA';
  if (key.asymmetricKeyType !== 'ec') {
    const type = key.asymmetricKeyType ?? 'unknown';
    report.error(
      'privateKey',
      `is a ${type} key; the road-warrior service takes RSA or ECDSA keys`,
    );
    return undefined;
  }
  if (roadWarrior.appleClients) {
    report.error(
      'privateKey',
      'is an ECDSA key, but appleClients is true: macOS and iOS reject an ECDSA server ' +
        'certificate with their default IKEv2 settings; use an RSA key, or set appleClients to false',
    );
  }
  return 'ECDSA';
}

function spki(publicKey: KeyObject): Buffer {
  return publicKey.export({ type: 'spki', format: 'der' });
}

function samePublicKey(certificate: X509Certificate, key: KeyObject): boolean {
  return spki(certificate.publicKey).equals(spki(createPublicKey(key)));
}

/** True when `ca`'s name is the certificate's issuer and its key verifies the signature. */
function issuedBy(certificate: X509Certificate, ca: X509Certificate): boolean {
  return certificate.checkIssued(ca) && certificate.verify(ca.publicKey);
}

function oneLine(name: string): string {
  return name.split('\n').join(', ');
}
