/**
 * The one error type of tunnelwarden. Every failure carries a stable `code` (listed below), a
 * `kind` that decides whether retrying can help, and the underlying `cause` when there is one.
 * Exit codes are chosen only at the CLI edge, from the kind.
 */

/** What went wrong, in classes that decide retry and exit code. */
export type ErrorKind = 'invalid-config' | 'command-failed' | 'verification' | 'unsupported' | 'bug';

/** Stable error codes; tests and log consumers match on these, never on messages. */
export const ErrorCode = {
  desiredStateUnreadable: 'TW_DESIRED_UNREADABLE',
  inputFileUnreadable: 'TW_INPUT_UNREADABLE',
  desiredStateNotJson: 'TW_DESIRED_NOT_JSON',
  desiredStateInvalid: 'TW_DESIRED_INVALID',
  secretUnreadable: 'TW_SECRET_UNREADABLE',
  commandFailed: 'TW_COMMAND_FAILED',
  commandTimedOut: 'TW_COMMAND_TIMED_OUT',
  commandMissing: 'TW_COMMAND_MISSING',
  fileWriteFailed: 'TW_FILE_WRITE_FAILED',
  strongswanMissing: 'TW_STRONGSWAN_MISSING',
  strongswanPluginMissing: 'TW_STRONGSWAN_PLUGIN_MISSING',
  charonNotAnswering: 'TW_CHARON_NOT_ANSWERING',
  viciUnavailable: 'TW_VICI_UNAVAILABLE',
  viciTimedOut: 'TW_VICI_TIMED_OUT',
  viciCommandFailed: 'TW_VICI_COMMAND_FAILED',
  viciUnknownCommand: 'TW_VICI_UNKNOWN_COMMAND',
  viciMalformed: 'TW_VICI_MALFORMED',
  viciUnencodable: 'TW_VICI_UNENCODABLE',
  verificationFailed: 'TW_VERIFICATION_FAILED',
  unsupportedKernel: 'TW_UNSUPPORTED_KERNEL',
  iptablesMissing: 'TW_IPTABLES_MISSING',
  masqueradeUnsupported: 'TW_MASQUERADE_UNSUPPORTED',
  linkInterfaceMissing: 'TW_LINK_INTERFACE_MISSING',
  linkParentMissing: 'TW_LINK_PARENT_MISSING',
  linkMtuOutOfRange: 'TW_LINK_MTU_OUT_OF_RANGE',
  linkConflict: 'TW_LINK_CONFLICT',
  ipOutputUnparsable: 'TW_IP_OUTPUT_UNPARSABLE',
  lxdUnavailable: 'TW_LXD_UNAVAILABLE',
  lxdTimedOut: 'TW_LXD_TIMED_OUT',
  lxdNotLxd: 'TW_LXD_NOT_LXD',
  lxdRequestFailed: 'TW_LXD_REQUEST_FAILED',
  lxdNetworkNotFound: 'TW_LXD_NETWORK_NOT_FOUND',
  lxdNetworkUnsupported: 'TW_LXD_NETWORK_UNSUPPORTED',
  certificateInvalid: 'TW_CERTIFICATE_INVALID',
  clientProfileUnavailable: 'TW_CLIENT_PROFILE_UNAVAILABLE',
  internal: 'TW_INTERNAL',
} as const;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

const retryableKinds: ReadonlySet<ErrorKind> = new Set(['command-failed', 'verification']);

/** An error with a stable code and a kind; `retryable` follows from the kind. */
export class TunnelwardenError extends Error {
  readonly code: ErrorCodeValue;
  readonly kind: ErrorKind;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    kind: ErrorKind,
    code: ErrorCodeValue,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TunnelwardenError';
    this.kind = kind;
    this.code = code;
    this.details = Object.freeze({ ...(options.details ?? {}) });
  }

  get retryable(): boolean {
    return retryableKinds.has(this.kind);
  }
}

/** Wraps anything thrown into a TunnelwardenError, keeping the original as cause. */
export function asTunnelwardenError(thrown: unknown): TunnelwardenError {
  if (thrown instanceof TunnelwardenError) return thrown;
  const message = thrown instanceof Error ? thrown.message : String(thrown);
  return new TunnelwardenError('bug', ErrorCode.internal, message, { cause: thrown });
}
