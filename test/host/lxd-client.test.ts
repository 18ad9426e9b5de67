/**
 * The LXD client over a real unix socket, against a stand-in that replays responses captured
 * from LXD 5.0.2 byte for byte (test/fixtures/lxd), and against sockets that are not LXD.
 */
import { linkSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { ErrorCode, TunnelwardenError } from '../../agent/errors.js';
import { createLxdClient, findLxdSocket } from '../../agent/host/lxd-client.js';
import {
  captured,
  startReplayServer,
  type Answer,
  type SeenRequest,
} from '../fixtures/lxd/replay-server.js';

const ETAG_NAT_TRUE = '"5fc76a343140807fd01ffe9db295596d98006834702e3b804622489bca329b82"';

function scratchDir(t: Test): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'tw-lxd-client-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function standIn(t: Test, route: (request: SeenRequest) => Answer) {
  const socketPath = path.join(scratchDir(t), 'unix.socket');
  const server = await startReplayServer(socketPath, route);
  t.teardown(() => server.close());
  return { socketPath, server };
}

async function rejection(promise: Promise<unknown>): Promise<TunnelwardenError> {
  try {
    await promise;
  } catch (thrown) {
    if (thrown instanceof TunnelwardenError) return thrown;
    throw thrown;
  }
  throw new Error('expected a rejection');
}

t.test('server() returns the metadata of the chunked GET /1.0 answer', async (t) => {
  const { socketPath, server } = await standIn(t, () => captured('get-server'));
  const metadata = (await createLxdClient(socketPath).server()) as any;
  t.equal(metadata.api_version, '1.0');
  t.equal(metadata.environment.server, 'lxd');
  t.equal(metadata.environment.server_version, '5.0.2');
  t.equal(server.requests.length, 1);
  t.equal(server.requests[0]?.method, 'GET');
  t.equal(server.requests[0]?.path, '/1.0');
});

t.test('network() returns the network and the ETag header LXD sent with it', async (t) => {
  const { socketPath, server } = await standIn(t, () => captured('get-network-nat-true'));
  const answer = await createLxdClient(socketPath).network('twbr0');
  t.equal(answer?.etag, ETAG_NAT_TRUE);
  t.same((answer?.metadata as any).config, {
    'ipv4.address': '10.77.0.1/24',
    'ipv4.nat': 'true',
    'ipv6.address': 'none',
  });
  t.equal(server.requests[0]?.path, '/1.0/networks/twbr0');
});

t.test('network() returns undefined when LXD answers 404 Network not found', async (t) => {
  const { socketPath } = await standIn(t, () => captured('get-network-not-found'));
  t.equal(await createLxdClient(socketPath).network('nosuch'), undefined);
});

t.test('patchNetworkConfig() sends only the given key, with If-Match, as a PATCH', async (t) => {
  const { socketPath, server } = await standIn(t, () => captured('patch-network-ok'));
  const outcome = await createLxdClient(socketPath).patchNetworkConfig(
    'twbr0',
    { 'ipv4.nat': 'false' },
    ETAG_NAT_TRUE,
  );
  t.equal(outcome, 'patched');
  const request = server.requests[0];
  t.equal(request?.method, 'PATCH');
  t.equal(request?.path, '/1.0/networks/twbr0');
  t.equal(request?.headers['if-match'], ETAG_NAT_TRUE);
  t.equal(request?.headers['content-type'], 'application/json');
  t.same(JSON.parse(request?.body ?? ''), { config: { 'ipv4.nat': 'false' } });
});

t.test('patchNetworkConfig() reports a stale ETag (412) instead of throwing', async (t) => {
  const { socketPath } = await standIn(t, () => captured('patch-network-etag-mismatch'));
  const outcome = await createLxdClient(socketPath).patchNetworkConfig(
    'twbr0',
    { 'ipv4.nat': 'false' },
    '"0000"',
  );
  t.equal(outcome, 'etag-mismatch');
});

t.test('patchNetworkConfig() reports a network that does not exist (404)', async (t) => {
  const { socketPath } = await standIn(t, () => captured('get-network-not-found'));
  const outcome = await createLxdClient(socketPath).patchNetworkConfig(
    'nosuch',
    { 'ipv4.nat': 'false' },
    undefined,
  );
  t.equal(outcome, 'not-found');
});

t.test('a refused PATCH (400) throws with the reason LXD gave', async (t) => {
  const { socketPath } = await standIn(t, () => captured('patch-network-invalid-value'));
  const error = await rejection(
    createLxdClient(socketPath).patchNetworkConfig('twbr0', { 'ipv4.nat': 'maybe' }, ETAG_NAT_TRUE),
  );
  t.equal(error.code, ErrorCode.lxdRequestFailed);
  t.match(
    error.message,
    /PATCH \/1\.0\/networks\/twbr0 \(400\): Invalid value for network "twbr0" option "ipv4\.nat"/,
  );
  t.notOk(error.retryable, 'a refused request is not retried');
});

t.test('an async answer is followed by a wait on its operation', async (t) => {
  // LXD answers a network PATCH synchronously; the async envelope here is LXD's real answer
  // to creating a container, used to drive the same code path.
  const { socketPath, server } = await standIn(t, (request) =>
    request.method === 'PATCH' ? captured('post-instance-async') : captured('get-operation-wait'),
  );
  const outcome = await createLxdClient(socketPath).patchNetworkConfig(
    'twbr0',
    { 'ipv4.nat': 'false' },
    undefined,
  );
  t.equal(outcome, 'patched');
  t.same(
    server.requests.map((request) => `${request.method} ${request.path}`),
    [
      'PATCH /1.0/networks/twbr0',
      'GET /1.0/operations/ddb097a6-e7bd-419e-ab2e-75268b9ec7bd/wait?timeout=30',
    ],
  );
  t.equal(server.requests[0]?.headers['if-match'], undefined, 'no If-Match without an ETag');
});

t.test('a missing socket means no daemon', async (t) => {
  const socketPath = path.join(scratchDir(t), 'unix.socket');
  const error = await rejection(createLxdClient(socketPath).server());
  t.equal(error.code, ErrorCode.lxdUnavailable);
  t.match(error.message, `the socket ${socketPath} does not exist`);
  t.ok(error.retryable);
});

t.test('a stale socket nobody listens on means no daemon', async (t) => {
  const dir = scratchDir(t);
  const live = path.join(dir, 'live.socket');
  const stale = path.join(dir, 'unix.socket');
  const listener = net.createServer();
  await new Promise<void>((resolve) => listener.listen(live, resolve));
  linkSync(live, stale); // a second name that outlives the listener
  await new Promise<void>((resolve) => listener.close(() => resolve()));
  const error = await rejection(createLxdClient(stale).server());
  t.equal(error.code, ErrorCode.lxdUnavailable);
  t.match(error.message, /connection refused/);
});

t.test('a plain file where the socket should be is named as not a socket', async (t) => {
  const socketPath = path.join(scratchDir(t), 'unix.socket');
  writeFileSync(socketPath, 'not a socket\n');
  const error = await rejection(createLxdClient(socketPath).server());
  t.equal(error.code, ErrorCode.lxdNotLxd);
  t.match(
    error.message,
    `${socketPath} does not answer like LXD or Incus: it is not a unix socket`,
  );
});

t.test('another HTTP server on the socket is not taken for LXD', async (t) => {
  // Hand-written answer of a web server, not a capture.
  const html =
    'HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 22\r\n' +
    'Connection: close\r\n\r\n<h1>404 Not Found</h1>';
  const { socketPath } = await standIn(t, () => html);
  const error = await rejection(createLxdClient(socketPath).server());
  t.equal(error.code, ErrorCode.lxdNotLxd);
  t.match(
    error.message,
    /the answer to GET \/1\.0 \(HTTP 404\) is not JSON: "<h1>404 Not Found<\/h1>"/,
  );
});

t.test('a JSON server without LXD envelope is not taken for LXD', async (t) => {
  // Hand-written answer of some JSON API, not a capture.
  const json = '{"status":"ok"}';
  const answer =
    'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n' +
    `Content-Length: ${json.length}\r\nConnection: close\r\n\r\n${json}`;
  const { socketPath } = await standIn(t, () => answer);
  const error = await rejection(createLxdClient(socketPath).network('twbr0'));
  t.equal(error.code, ErrorCode.lxdNotLxd);
  t.match(error.message, /JSON without LXD's "type" field/);
});

t.test('a socket that does not speak HTTP is not taken for LXD', async (t) => {
  const { socketPath } = await standIn(t, () => 'SSH-2.0-OpenSSH_9.2\r\n');
  const error = await rejection(createLxdClient(socketPath).server());
  t.equal(error.code, ErrorCode.lxdNotLxd);
  t.match(error.message, /is not HTTP \(HPE_/);
});

t.test('a connection closed without an answer is reported, not hung on', async (t) => {
  const { socketPath } = await standIn(t, () => 'close');
  const error = await rejection(createLxdClient(socketPath).server());
  t.equal(error.code, ErrorCode.lxdUnavailable);
  t.match(error.message, /connection to .* broke during GET \/1\.0/);
});

t.test('a daemon that never answers times out within the bound', async (t) => {
  const { socketPath } = await standIn(t, () => 'hang');
  const startedAt = performance.now();
  const error = await rejection(createLxdClient(socketPath, { timeoutMs: 300 }).server());
  const elapsedMs = performance.now() - startedAt;
  t.equal(error.code, ErrorCode.lxdTimedOut);
  t.match(error.message, `LXD did not answer GET /1.0 on ${socketPath} within 300 ms`);
  t.ok(elapsedMs >= 290 && elapsedMs < 3_000, `gave up after ${Math.round(elapsedMs)} ms`);
});

t.test('findLxdSocket returns the first candidate that exists', async (t) => {
  const dir = scratchDir(t);
  const [deb, snap, incus] = ['deb.socket', 'snap.socket', 'incus.socket'].map((name) =>
    path.join(dir, name),
  ) as [string, string, string];
  t.equal(await findLxdSocket([deb, snap, incus]), undefined, 'none exists');
  writeFileSync(incus, '');
  t.equal(await findLxdSocket([deb, snap, incus]), incus);
  writeFileSync(snap, '');
  t.equal(await findLxdSocket([deb, snap, incus]), snap, 'snap comes before Incus');
});
