/**
 * Parsing LXD's API answers (metadata of responses captured from LXD 5.0.2) and the thin
 * observe call over a stub client.
 */
import t from 'tap';
import { ErrorCode, TunnelwardenError } from '../../agent/errors.js';
import type { LxdClient } from '../../agent/host/lxd-client.js';
import { observeLxd, parseNetwork, parseServerInfo } from '../../agent/observe/lxd.js';
import { capturedMetadata } from '../fixtures/lxd/replay-server.js';

const SOCKET = '/var/lib/lxd/unix.socket';

function thrownBy(run: () => unknown): TunnelwardenError {
  try {
    run();
  } catch (thrown) {
    if (thrown instanceof TunnelwardenError) return thrown;
    throw thrown;
  }
  throw new Error('expected a throw');
}

t.test('the captured GET /1.0 is LXD 5.0.2 speaking API 1.0', async (t) => {
  t.same(parseServerInfo(capturedMetadata('get-server'), SOCKET), {
    server: 'lxd',
    serverVersion: '5.0.2',
    apiVersion: '1.0',
  });
});

t.test('Incus is recognised by environment.server', async (t) => {
  // Derived from the LXD capture: only environment.server and server_version changed.
  const metadata = capturedMetadata('get-server');
  metadata.environment.server = 'incus';
  metadata.environment.server_version = '6.0.0';
  t.equal(parseServerInfo(metadata, '/var/lib/incus/unix.socket').server, 'incus');
});

t.test('a server that is neither LXD nor Incus is refused by name', async (t) => {
  const metadata = capturedMetadata('get-server');
  metadata.environment.server = 'somethingelse';
  const error = thrownBy(() => parseServerInfo(metadata, SOCKET));
  t.equal(error.code, ErrorCode.lxdNotLxd);
  t.match(error.message, 'names the server "somethingelse", neither "lxd" nor "incus"');
  t.equal(thrownBy(() => parseServerInfo({ hello: 'world' }, SOCKET)).code, ErrorCode.lxdNotLxd);
  t.equal(thrownBy(() => parseServerInfo(null, SOCKET)).code, ErrorCode.lxdNotLxd);
});

t.test('an untrusted client is told to run as root or in the lxd group', async (t) => {
  // Derived: what LXD leaves of GET /1.0 for an untrusted client (no environment).
  const metadata = capturedMetadata('get-server');
  metadata.auth = 'untrusted';
  delete metadata.environment;
  const error = thrownBy(() => parseServerInfo(metadata, SOCKET));
  t.equal(error.code, ErrorCode.lxdUnavailable);
  t.match(error.message, /does not trust this client/);
});

t.test('a managed bridge parses with its whole config', async (t) => {
  t.same(parseNetwork(capturedMetadata('get-network-nat-unset'), SOCKET), {
    name: 'twbr0',
    type: 'bridge',
    managed: true,
    status: 'Created',
    config: {
      'ipv4.address': '10.77.0.1/24',
      'ipv4.dhcp': 'false',
      'ipv6.address': 'none',
      'user.note': 'kept-by-hand',
    },
  });
});

t.test('an interface LXD only reports parses as unmanaged with an empty config', async (t) => {
  const network = parseNetwork(capturedMetadata('get-network-unmanaged'), SOCKET);
  t.equal(network.name, 'site0');
  t.equal(network.managed, false);
  t.same(network.config, {});
  t.equal(network.status, '');
});

t.test('a network of a foreign shape is refused', async (t) => {
  const metadata = capturedMetadata('get-network-nat-true');
  metadata.config['ipv4.nat'] = true;
  t.match(thrownBy(() => parseNetwork(metadata, SOCKET)).message, 'non-string value for ipv4.nat');
  t.equal(thrownBy(() => parseNetwork({ name: 'x' }, SOCKET)).code, ErrorCode.lxdNotLxd);
  t.equal(
    thrownBy(() => parseNetwork({ name: 'x', type: 'bridge', config: [] }, SOCKET)).code,
    ErrorCode.lxdNotLxd,
  );
});

t.test('observeLxd asks who the server is, then reads each named network', async (t) => {
  const asked: string[] = [];
  const client: LxdClient = {
    socketPath: SOCKET,
    async server() {
      asked.push('server');
      return capturedMetadata('get-server');
    },
    async network(name) {
      asked.push(`network ${name}`);
      if (name !== 'twbr0') return undefined;
      return { metadata: capturedMetadata('get-network-nat-true'), etag: '"e1"' };
    },
    async patchNetworkConfig() {
      throw new Error('observe must not patch');
    },
  };
  const observed = await observeLxd(client, ['twbr0', 'gone0']);
  t.same(asked, ['server', 'network twbr0', 'network gone0']);
  t.equal(observed.server.server, 'lxd');
  t.equal(observed.socketPath, SOCKET);
  t.match(observed.networks, [
    { name: 'twbr0', found: true, etag: '"e1"', network: { config: { 'ipv4.nat': 'true' } } },
    { name: 'gone0', found: false },
  ]);
});
