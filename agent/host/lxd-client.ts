/**
 * A small client of the LXD (or Incus) REST API on its unix socket: HTTP/1.1 over
 * `node:http` with `socketPath`, one fresh connection per request, a deadline on every
 * request and a cap on the answer's size. It reads and patches networks; it never PUTs a
 * whole network, so keys it was not asked to change stay as they are.
 *
 * Every LXD answer is a JSON envelope `{type: "sync"|"async"|"error", error_code, error,
 * operation, metadata}`. This module checks the envelope, waits for an async operation to
 * finish, and hands the `metadata` on unparsed; observe/lxd.ts parses it.
 *
 * Throws TunnelwardenError: lxdUnavailable (no socket, nobody listening, no permission),
 * lxdTimedOut, lxdNotLxd (the socket does not answer like LXD), lxdRequestFailed (LXD
 * answered with an error).
 *
 * Limitations: the default project only; no TLS (the unix socket is local and trusted).
 */
import { stat } from 'node:fs/promises';
import http from 'node:http';
import type { Logger } from 'pino';
import { ErrorCode, TunnelwardenError } from '../errors.js';

/** Where LXD and Incus put their socket, in the order they are looked for. */
export const LXD_SOCKET_CANDIDATES: readonly string[] = Object.freeze([
  '/var/lib/lxd/unix.socket', // LXD from the Debian package
  '/var/snap/lxd/common/lxd/unix.socket', // LXD from the snap
  '/var/lib/incus/unix.socket', // Incus
]);

/** Deadline of one request unless the client is told otherwise. */
export const DEFAULT_LXD_REQUEST_TIMEOUT_MS = 15_000;

/** Largest answer read; `GET /1.0` is about 10 KiB, a network well under 1 KiB. */
const MAX_ANSWER_BYTES = 4 * 1024 * 1024;

/** Seconds the server may take to finish an async operation, asked in `/wait?timeout=`. */
const OPERATION_WAIT_SECONDS = 30;

/** An answer whose envelope was checked: the HTTP status, the ETag header and the metadata. */
export interface LxdAnswer {
  status: number;
  etag: string | undefined;
  metadata: unknown;
}

/**
 * What `patchNetworkConfig` did: merged the keys, or changed nothing because the ETag was
 * stale or the network does not exist (any more).
 */
export type PatchOutcome = 'patched' | 'etag-mismatch' | 'not-found';

/** The calls tunnelwarden makes on LXD. */
export interface LxdClient {
  readonly socketPath: string;
  /** `GET /1.0`: the server's own description, unparsed. Read-only. */
  server(): Promise<unknown>;
  /**
   * `GET /1.0/networks/NAME`: the network unparsed and its ETag, or undefined when LXD has no
   * network of that name (404). Read-only.
   */
  network(name: string): Promise<{ metadata: unknown; etag: string | undefined } | undefined>;
  /**
   * `PATCH /1.0/networks/NAME` with `{"config": config}` and `If-Match: etag`: LXD merges the
   * given keys into the network's config and leaves every other key alone. Returns
   * 'etag-mismatch' (and changes nothing) when the network changed since `etag` was read,
   * 'not-found' when it does not exist.
   */
  patchNetworkConfig(
    name: string,
    config: Readonly<Record<string, string>>,
    etag: string | undefined,
  ): Promise<PatchOutcome>;
}

export interface LxdClientOptions {
  /** Deadline of each request. */
  timeoutMs?: number;
  /** Gets one debug line per request (method, path, status, duration_ms). */
  logger?: Logger;
}

/**
 * The first of `candidates` that exists, or undefined when none does. Whether it really is
 * LXD's socket is found out by the first request.
 */
export async function findLxdSocket(
  candidates: readonly string[] = LXD_SOCKET_CANDIDATES,
): Promise<string | undefined> {
  for (const candidate of candidates) {
    if (
      await stat(candidate).then(
        () => true,
        () => false,
      )
    )
      return candidate;
  }
  return undefined;
}

/** Makes a client of the API on `socketPath`. Opens nothing until the first call. */
export function createLxdClient(socketPath: string, options: LxdClientOptions = {}): LxdClient {
  const timeoutMs = options.timeoutMs ?? DEFAULT_LXD_REQUEST_TIMEOUT_MS;
  const call = (method: string, path: string, extra: RequestExtra = {}) =>
    callApi({ socketPath, timeoutMs, logger: options.logger }, method, path, extra);
  const networkPath = (name: string) => `/1.0/networks/${encodeURIComponent(name)}`;

  return {
    socketPath,

    async server() {
      return (await call('GET', '/1.0')).metadata;
    },

    async network(name) {
      const answer = await call('GET', networkPath(name), { allowStatus: [404] });
      if (answer.status === 404) return undefined;
      return { metadata: answer.metadata, etag: answer.etag };
    },

    async patchNetworkConfig(name, config, etag) {
      const answer = await call('PATCH', networkPath(name), {
        body: { config },
        ifMatch: etag,
        allowStatus: [404, 412],
      });
      if (answer.status === 404) return 'not-found';
      return answer.status === 412 ? 'etag-mismatch' : 'patched';
    },
  };
}

interface Connection {
  socketPath: string;
  timeoutMs: number;
  logger: Logger | undefined;
}

interface RequestExtra {
  body?: unknown;
  ifMatch?: string;
  /** Error statuses returned as answers instead of thrown. */
  allowStatus?: number[];
}

/** What came back on the wire, before the envelope is looked at. */
interface RawAnswer {
  status: number;
  etag: string | undefined;
  text: string;
}

/** One request with its envelope checked; an async operation is waited for. */
async function callApi(
  connection: Connection,
  method: string,
  path: string,
  extra: RequestExtra,
): Promise<LxdAnswer> {
  const raw = await exchange(connection, method, path, extra);
  const envelope = readEnvelope(connection.socketPath, method, path, raw);

  if (envelope.type === 'error') {
    if (extra.allowStatus?.includes(envelope.status)) {
      return { status: envelope.status, etag: raw.etag, metadata: undefined };
    }
    throw apiError(connection.socketPath, method, path, envelope.status, envelope.error);
  }
  if (envelope.type === 'async') {
    return awaitOperation(connection, method, path, envelope.operation);
  }
  return { status: raw.status, etag: raw.etag, metadata: envelope.metadata };
}

/** Waits for an async operation with the server-side `/wait` and checks how it ended. */
async function awaitOperation(
  connection: Connection,
  method: string,
  path: string,
  operation: string,
): Promise<LxdAnswer> {
  if (!/^\/1\.0\/operations\/[A-Za-z0-9-]+$/.test(operation)) {
    throw notLxd(
      connection.socketPath,
      `${method} ${path} started an operation with an odd URL "${operation}"`,
    );
  }
  const waitMs = Math.max(connection.timeoutMs, OPERATION_WAIT_SECONDS * 1000) + 5_000;
  const waited = await callApi(
    { ...connection, timeoutMs: waitMs },
    'GET',
    `${operation}/wait?timeout=${OPERATION_WAIT_SECONDS}`,
    {},
  );
  const state = (waited.metadata ?? {}) as {
    status_code?: unknown;
    status?: unknown;
    err?: unknown;
  };
  if (state.status_code === 200) return { status: 200, etag: undefined, metadata: waited.metadata };
  const why = typeof state.err === 'string' && state.err !== '' ? state.err : String(state.status);
  throw new TunnelwardenError(
    'command-failed',
    ErrorCode.lxdRequestFailed,
    `LXD ${method} ${path} did not succeed: operation ${operation} ended ` +
      `${String(state.status)}: ${why}`,
    { details: { socketPath: connection.socketPath, method, path, operation } },
  );
}

interface Envelope {
  type: 'sync' | 'async' | 'error';
  status: number;
  error: string;
  operation: string;
  metadata: unknown;
}

/** Checks that the answer is LXD's JSON envelope. Throws lxdNotLxd otherwise. */
function readEnvelope(socketPath: string, method: string, path: string, raw: RawAnswer): Envelope {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.text);
  } catch {
    const start = raw.text.slice(0, 60).replace(/\s+/g, ' ');
    throw notLxd(
      socketPath,
      `the answer to ${method} ${path} (HTTP ${raw.status}) is not JSON: "${start}"`,
    );
  }
  const object = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<
    string,
    unknown
  >;
  const type = object.type;
  if (type !== 'sync' && type !== 'async' && type !== 'error') {
    throw notLxd(
      socketPath,
      `the answer to ${method} ${path} (HTTP ${raw.status}) is JSON without LXD's "type" field`,
    );
  }
  const errorCode =
    typeof object.error_code === 'number' && object.error_code > 0 ? object.error_code : raw.status;
  return {
    type,
    status: type === 'error' ? errorCode : raw.status,
    error: typeof object.error === 'string' ? object.error : '',
    operation: typeof object.operation === 'string' ? object.operation : '',
    metadata: object.metadata,
  };
}

/** One HTTP request over the unix socket with a deadline. Resolves with any HTTP status. */
function exchange(
  connection: Connection,
  method: string,
  path: string,
  extra: RequestExtra,
): Promise<RawAnswer> {
  const { socketPath, timeoutMs, logger } = connection;
  const body = extra.body === undefined ? undefined : JSON.stringify(extra.body);
  const headers: Record<string, string> = { Host: 'lxd', Accept: 'application/json' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = String(Buffer.byteLength(body));
  }
  if (extra.ifMatch !== undefined) headers['If-Match'] = extra.ifMatch;
  const startedAt = performance.now();

  return new Promise<RawAnswer>((resolve, reject) => {
    let settled = false;
    const finish = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      outcome();
    };
    const fail = (error: TunnelwardenError) => {
      finish(() => reject(error));
      request.destroy();
    };

    const request = http.request(
      { socketPath, method, path, headers, agent: false },
      (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_ANSWER_BYTES) {
            fail(
              notLxd(
                socketPath,
                `the answer to ${method} ${path} is larger than ${MAX_ANSWER_BYTES} bytes`,
              ),
            );
            return;
          }
          chunks.push(chunk);
        });
        response.on('error', (error) => {
          void transportError(socketPath, method, path, error).then(fail);
        });
        response.on('end', () => {
          const status = response.statusCode ?? 0;
          const etagHeader = response.headers.etag;
          logger?.debug(
            {
              resource: 'lxd',
              method,
              path,
              status,
              duration_ms: Math.round(performance.now() - startedAt),
            },
            'lxd request',
          );
          finish(() =>
            resolve({
              status,
              etag: typeof etagHeader === 'string' ? etagHeader : undefined,
              text: Buffer.concat(chunks).toString('utf8'),
            }),
          );
        });
      },
    );

    const deadline = setTimeout(() => {
      fail(
        new TunnelwardenError(
          'command-failed',
          ErrorCode.lxdTimedOut,
          `LXD did not answer ${method} ${path} on ${socketPath} within ${timeoutMs} ms`,
          { details: { socketPath, method, path, timeoutMs } },
        ),
      );
    }, timeoutMs);

    request.on('error', (error) => {
      void transportError(socketPath, method, path, error).then(fail);
    });
    request.end(body);
  });
}

/** Turns a socket or HTTP-parser error into the error a reader can act on. */
async function transportError(
  socketPath: string,
  method: string,
  path: string,
  error: Error,
): Promise<TunnelwardenError> {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  const details = { socketPath, method, path, errno: code };
  const unavailable = (message: string) =>
    new TunnelwardenError('command-failed', ErrorCode.lxdUnavailable, message, {
      cause: error,
      details,
    });
  switch (code) {
    case 'ENOENT':
      return unavailable(`no LXD daemon: the socket ${socketPath} does not exist`);
    case 'ECONNREFUSED': {
      // Connecting to a path that is not a socket is refused too: say which it is.
      const isSocket = await stat(socketPath).then(
        (stats) => stats.isSocket(),
        () => true,
      );
      if (!isSocket) return notLxd(socketPath, 'it is not a unix socket', error);
      return unavailable(
        `no LXD daemon listening on ${socketPath} (connection refused: a stale socket)`,
      );
    }
    case 'EACCES':
    case 'EPERM':
      return unavailable(
        `no permission to use ${socketPath} (run as root or as a member of the lxd group)`,
      );
    case 'ECONNRESET':
    case 'EPIPE':
      return unavailable(
        `the connection to ${socketPath} broke during ${method} ${path}: ${error.message}`,
      );
  }
  if (code.startsWith('HPE_')) {
    return notLxd(socketPath, `the answer to ${method} ${path} is not HTTP (${code})`, error);
  }
  return unavailable(`cannot talk to ${socketPath}: ${error.message}`);
}

function notLxd(socketPath: string, why: string, cause?: unknown): TunnelwardenError {
  return new TunnelwardenError(
    'unsupported',
    ErrorCode.lxdNotLxd,
    `${socketPath} does not answer like LXD or Incus: ${why}`,
    { cause, details: { socketPath } },
  );
}

function apiError(
  socketPath: string,
  method: string,
  path: string,
  status: number,
  error: string,
): TunnelwardenError {
  // A server-side failure may pass; a refused request (4xx) will be refused again.
  return new TunnelwardenError(
    status >= 500 ? 'command-failed' : 'unsupported',
    ErrorCode.lxdRequestFailed,
    `LXD refused ${method} ${path} (${status}): ${error || 'no reason given'}`,
    { details: { socketPath, method, path, status, lxdError: error } },
  );
}
