/**
 * Client profiles as each client reads them: the .mobileconfig through a strict XML and
 * property-list reader written here (and Python's plistlib when python3 is on the machine), the
 * strongSwan bundle's conn and secret line, and the NetworkManager keyfile as GKeyFile text.
 * The CA bytes are a stand-in (random bytes, not a certificate): the renderer only carries
 * them; test/plan/client-profile-command.test.ts runs the command with a real CA.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { loadDesiredState } from '../../agent/model/load.js';
import type { RoadWarrior } from '../../agent/model/schema.js';
import {
  caPath,
  defaultRemoteAddress,
  escapeXml,
  networkManagerParts,
  renderClientProfile,
  renderMobileconfig,
  serverIdentity,
  strongswanParts,
  type ClientProfileInput,
} from '../../agent/plan/client-profile.js';

const CA_DER = randomBytes(700);
const NASTY_PASSWORD = `p<a>s&s'w"o\\rd ]]> &amp; é 😀`;

function roadWarrior(overrides: Record<string, unknown> = {}): RoadWarrior {
  const result = loadDesiredState(
    JSON.stringify({
      version: 1,
      site: { name: 'site-a', subnets: ['10.1.0.0/16'] },
      ipsec: {
        roadWarrior: {
          name: 'ikev2-vpn',
          serverId: 'vpn.example.com',
          certificate: '/etc/ipsec.d/certs/vpn.pem',
          privateKey: '/etc/ipsec.d/private/vpn.pem',
          ca: '/etc/ipsec.d/cacerts/ca.pem',
          offeredSubnets: ['10.0.0.0/8'],
          virtualIpPool: '10.10.10.0/24',
          dns: ['10.1.0.1'],
          clients: [
            { eapId: 'client_a', password: { value: 'unused' }, virtualIp: '10.10.10.2' },
            { eapId: 'bob@example.com', password: { value: 'unused' }, virtualIp: '10.10.10.3' },
          ],
          ...overrides,
        },
      },
    }),
  );
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.state.ipsec!.roadWarrior!;
}

function input(overrides: Partial<ClientProfileInput> = {}): ClientProfileInput {
  const service = roadWarrior();
  return {
    siteName: 'site-a',
    roadWarrior: service,
    client: service.clients[0]!,
    remoteAddress: 'vpn.example.com',
    caCertificateDer: CA_DER,
    caCommonName: 'Example <Test> CA & Co',
    ...overrides,
  };
}

// ---------------------------------------------------------------------------------------------
// A strict reader for the XML subset a property list uses. It refuses what a conforming XML
// parser refuses (unbalanced or crossed tags, a raw "<" or "&" in text, unknown entities,
// attributes without quotes, text outside the root) and reads plist types strictly.

type XmlNode = {
  name: string;
  attributes: Record<string, string>;
  children: XmlNode[];
  text: string;
};
type Plist = string | number | boolean | Buffer | Plist[] | Map<string, Plist>;

function decodeText(raw: string): string {
  if (/<|&(?!(amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)/.test(raw)) {
    throw new Error(`ill-formed character data: ${JSON.stringify(raw.slice(0, 40))}`);
  }
  return raw.replace(/&(amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);/g, (_, entity: string) => {
    const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
    if (named[entity]) return named[entity]!;
    return String.fromCodePoint(
      entity.startsWith('#x') ? parseInt(entity.slice(2), 16) : parseInt(entity.slice(1), 10),
    );
  });
}

function parseXml(text: string): XmlNode {
  let rest = text;
  const declaration = /^<\?xml version="1\.0" encoding="UTF-8"\?>\n/.exec(rest);
  if (!declaration) throw new Error('missing XML declaration');
  rest = rest.slice(declaration[0].length);
  const doctype = /^<!DOCTYPE plist PUBLIC "[^"]*" "[^"]*">\s*/.exec(rest);
  if (!doctype) throw new Error('missing plist DOCTYPE');
  rest = rest.slice(doctype[0].length);

  const root: XmlNode = { name: '#document', attributes: {}, children: [], text: '' };
  const stack = [root];
  const token = /<(\/?)([A-Za-z][A-Za-z0-9]*)((?:\s+[A-Za-z]+="[^"<&]*")*)\s*(\/?)>|([^<]+)|(<)/y;
  let match: RegExpExecArray | null;
  while (token.lastIndex < rest.length && (match = token.exec(rest))) {
    const [, closing, name, attributeText, selfClosing, textPart, stray] = match;
    const top = stack.at(-1)!;
    if (stray) throw new Error(`stray "<" at ${token.lastIndex}`);
    if (textPart !== undefined) {
      if (top === root) {
        if (textPart.trim() !== '') throw new Error('text outside the root element');
        continue;
      }
      top.text += decodeText(textPart);
      continue;
    }
    if (closing) {
      if (top.name !== name || attributeText || selfClosing)
        throw new Error(`</${name}> closes <${top.name}>`);
      stack.pop();
      continue;
    }
    const attributes: Record<string, string> = {};
    for (const [, key, value] of attributeText!.matchAll(/([A-Za-z]+)="([^"]*)"/g))
      attributes[key!] = decodeText(value!);
    const node: XmlNode = { name: name!, attributes, children: [], text: '' };
    if (top === root && root.children.length > 0) throw new Error('a second root element');
    top.children.push(node);
    if (!selfClosing) stack.push(node);
  }
  if (token.lastIndex !== rest.length && rest.slice(token.lastIndex).trim() !== '')
    throw new Error('unparsed tail');
  if (stack.length !== 1) throw new Error(`unclosed <${stack.at(-1)!.name}>`);
  return root.children[0]!;
}

function plistValue(node: XmlNode): Plist {
  const leaf = () => {
    if (node.children.length > 0) throw new Error(`<${node.name}> must not hold elements`);
    return node.text;
  };
  switch (node.name) {
    case 'string':
      return leaf();
    case 'integer': {
      const text = leaf();
      if (!/^-?[0-9]+$/.test(text)) throw new Error(`bad integer ${text}`);
      return Number(text);
    }
    case 'true':
    case 'false':
      if (leaf() !== '') throw new Error(`<${node.name}/> must be empty`);
      return node.name === 'true';
    case 'data': {
      const compact = leaf().replace(/\s+/g, '');
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 !== 0)
        throw new Error('bad base64 data');
      return Buffer.from(compact, 'base64');
    }
    case 'array':
      if (node.text.trim() !== '') throw new Error('text in <array>');
      return node.children.map(plistValue);
    case 'dict': {
      if (node.text.trim() !== '') throw new Error('text in <dict>');
      if (node.children.length % 2 !== 0) throw new Error('<dict> with a key and no value');
      const map = new Map<string, Plist>();
      for (let index = 0; index < node.children.length; index += 2) {
        const key = node.children[index]!;
        if (key.name !== 'key' || key.children.length > 0)
          throw new Error(`<dict> expects <key>, got <${key.name}>`);
        if (map.has(key.text)) throw new Error(`duplicate key ${key.text}`);
        map.set(key.text, plistValue(node.children[index + 1]!));
      }
      return map;
    }
    default:
      throw new Error(`not a plist element: <${node.name}>`);
  }
}

function readPlist(xml: string): Map<string, Plist> {
  const root = parseXml(xml);
  if (root.name !== 'plist' || root.attributes.version !== '1.0' || root.children.length !== 1) {
    throw new Error('root must be <plist version="1.0"> with one value');
  }
  const value = plistValue(root.children[0]!);
  if (!(value instanceof Map)) throw new Error('top-level value must be a dict');
  return value;
}

const dict = (value: Plist | undefined) => {
  if (!(value instanceof Map)) throw new Error('expected a dict');
  return value;
};

// ---------------------------------------------------------------------------------------------

t.test('the strict reader refuses ill-formed XML and loose plists', async (t) => {
  const wrap = (body: string) =>
    '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "x">\n' +
    `<plist version="1.0">${body}</plist>\n`;
  t.ok(readPlist(wrap('<dict><key>a</key><string>x &amp; y</string></dict>')));
  for (const body of [
    '<dict><key>a</key><string>x & y</string></dict>',
    '<dict><key>a</key><string>x < y</string></dict>',
    '<dict><key>a</key><string>x</dict></string>',
    '<dict><key>a</key></dict>',
    '<dict><key>a</key><string>&nbsp;</string></dict>',
    '<dict><key>a</key><integer>1.5</integer></dict>',
    '<dict><string>x</string><string>y</string></dict>',
  ]) {
    t.throws(() => readPlist(wrap(body)), body);
  }
});

t.test(
  'the mobileconfig is a well-formed plist with the VPN and CA payloads Apple needs',
  async (t) => {
    const profile = readPlist(renderMobileconfig(input()));
    t.equal(profile.get('PayloadType'), 'Configuration');
    t.equal(profile.get('PayloadVersion'), 1);
    t.equal(profile.get('PayloadRemovalDisallowed'), false);
    t.match(
      profile.get('PayloadUUID'),
      /^[0-9A-F]{8}-[0-9A-F]{4}-5[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$/,
    );
    const content = profile.get('PayloadContent') as Plist[];
    t.equal(content.length, 2);

    const vpn = dict(
      content.find((payload) => dict(payload).get('PayloadType') === 'com.apple.vpn.managed'),
    );
    t.equal(vpn.get('VPNType'), 'IKEv2');
    for (const key of [
      'PayloadIdentifier',
      'PayloadUUID',
      'PayloadVersion',
      'PayloadDisplayName',
      'UserDefinedName',
    ]) {
      t.ok(vpn.has(key), `VPN payload has ${key}`);
    }
    const ikev2 = dict(vpn.get('IKEv2'));
    t.equal(ikev2.get('RemoteAddress'), 'vpn.example.com');
    t.equal(ikev2.get('RemoteIdentifier'), 'vpn.example.com');
    t.equal(ikev2.get('LocalIdentifier'), 'client_a');
    t.equal(ikev2.get('AuthenticationMethod'), 'None');
    t.equal(ikev2.get('ExtendedAuthEnabled'), 1);
    t.equal(ikev2.get('AuthName'), 'client_a');
    t.equal(ikev2.get('ServerCertificateIssuerCommonName'), 'Example <Test> CA & Co');
    t.same(Object.fromEntries(dict(ikev2.get('IKESecurityAssociationParameters'))), {
      EncryptionAlgorithm: 'AES-256',
      IntegrityAlgorithm: 'SHA2-256',
      DiffieHellmanGroup: 14,
    });

    const ca = dict(
      content.find((payload) => dict(payload).get('PayloadType') === 'com.apple.security.root'),
    );
    t.ok(
      Buffer.isBuffer(ca.get('PayloadContent')) &&
        CA_DER.equals(ca.get('PayloadContent') as Buffer),
      'CA DER embedded',
    );
    t.not(ca.get('PayloadUUID'), vpn.get('PayloadUUID'), 'payloads have their own UUIDs');
  },
);

t.test(
  'the password appears in the mobileconfig only when given, escaped and intact',
  async (t) => {
    const without = renderMobileconfig(input());
    t.notMatch(without, 'AuthPassword');
    const withPassword = renderMobileconfig(input({ password: NASTY_PASSWORD }));
    const ikev2 = dict(
      dict((readPlist(withPassword).get('PayloadContent') as Plist[])[0]).get('IKEv2'),
    );
    t.equal(ikev2.get('AuthPassword'), NASTY_PASSWORD);
    t.notMatch(withPassword, NASTY_PASSWORD, 'never written raw into the XML');
  },
);

t.test('Python plistlib reads the mobileconfig the same way', async (t) => {
  const python = spawnSync('python3', ['-c', 'import sys'], { encoding: 'utf8' });
  if (python.error || python.status !== 0) {
    t.skip('python3 is not installed; the strict reader above still checks the XML');
    return;
  }
  const script =
    'import plistlib, sys, json, base64\n' +
    'p = plistlib.loads(sys.stdin.buffer.read())\n' +
    'vpn, ca = p["PayloadContent"]\n' +
    'print(json.dumps({"local": vpn["IKEv2"]["LocalIdentifier"], "password": vpn["IKEv2"]["AuthPassword"],' +
    ' "ca": base64.b64encode(ca["PayloadContent"]).decode()}))\n';
  const result = spawnSync('python3', ['-c', script], {
    input: renderMobileconfig(input({ password: NASTY_PASSWORD })),
    encoding: 'utf8',
  });
  t.equal(result.status, 0, result.stderr);
  t.same(JSON.parse(result.stdout), {
    local: 'client_a',
    password: NASTY_PASSWORD,
    ca: CA_DER.toString('base64'),
  });
});

t.test('identifiers and UUIDs are stable per client and differ between clients', async (t) => {
  const service = roadWarrior();
  const uuids = (text: string) =>
    [...text.matchAll(/<key>PayloadUUID<\/key>\s*<string>([^<]+)</g)].map((m) => m[1]);
  const first = renderMobileconfig(input());
  t.equal(renderMobileconfig(input()), first, 'same input, same bytes');
  const other = renderMobileconfig(input({ client: service.clients[1]! }));
  t.equal(new Set([...uuids(first), ...uuids(other)]).size, 6, 'six distinct UUIDs');
  t.match(other, '<string>com.tunnelwarden.site-a.ikev2-vpn.bob-example-com</string>');
});

t.test('the server id reaches Apple without the @ that only strongSwan reads', async (t) => {
  const service = roadWarrior({ serverId: '@vpn.example.com' });
  const xml = renderMobileconfig(input({ roadWarrior: service, client: service.clients[0]! }));
  const ikev2 = dict(dict((readPlist(xml).get('PayloadContent') as Plist[])[0]).get('IKEv2'));
  t.equal(ikev2.get('RemoteIdentifier'), 'vpn.example.com');
  t.same(serverIdentity('@vpn.example.com'), { kind: 'fqdn', value: 'vpn.example.com' });
  t.same(serverIdentity('FD00::1'), { kind: 'ip', value: 'fd00::1' });
  t.same(serverIdentity('vpn@example.com'), { kind: 'email', value: 'vpn@example.com' });
  t.equal(serverIdentity('%any'), undefined);
  t.equal(defaultRemoteAddress('vpn@example.com'), undefined);
  t.equal(defaultRemoteAddress('172.16.0.18'), '172.16.0.18');
});

t.test(
  'the strongSwan bundle has the CA, a conn that selects the client conn, and the secret',
  async (t) => {
    const parts = strongswanParts(input({ password: 'pw-a' }));
    t.same(
      parts.map((part) => [part.path, part.action]),
      [
        [caPath(roadWarrior()), 'write'],
        ['/etc/ipsec.conf', 'append'],
        ['/etc/ipsec.secrets', 'append'],
      ],
    );
    const pem = parts[0]!.content;
    t.match(
      pem,
      /^-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=]{64}\n)+[A-Za-z0-9+/=]{1,64}\n-----END CERTIFICATE-----\n$/,
    );
    t.ok(
      Buffer.from(pem.replace(/-----[A-Z ]+-----|\n/g, ''), 'base64').equals(CA_DER),
      'PEM holds the CA bytes',
    );
    const options = Object.fromEntries(
      parts[1]!.content
        .split('\n')
        .filter((line) => line.startsWith('\t'))
        .map((line) => line.trim().split('=', 2)),
    );
    t.equal(parts[1]!.content.split('\n')[0], 'conn ikev2-vpn');
    t.same(options, {
      keyexchange: 'ikev2',
      left: '%any',
      leftid: 'client_a',
      leftauth: 'eap-mschapv2',
      eap_identity: 'client_a',
      leftsourceip: '%config',
      leftdns: '%config4',
      right: 'vpn.example.com',
      rightid: 'vpn.example.com',
      rightauth: 'pubkey',
      rightsubnet: '10.0.0.0/8',
      ike: 'aes256-sha256-modp2048!',
      esp: 'aes256-sha256!',
      auto: 'add',
    });
    t.equal(parts[2]!.content, 'client_a : EAP "pw-a"\n');
    t.equal(parts[2]!.mode, 0o600);
  },
);

t.test('without a password the strongSwan secret is a commented placeholder', async (t) => {
  const secret = strongswanParts(input())[2]!.content;
  t.match(secret, /^# client_a : EAP "<password>"/);
  const bundle = renderClientProfile('strongswan', input());
  t.match(
    bundle,
    /^# tunnelwarden client profile: client_a of ikev2-vpn at site-a, for strongSwan/,
  );
  t.match(bundle, '\n# ==> /etc/ipsec.d/cacerts/ikev2-vpn-ca.pem (write, mode 0644): the CA');
  t.match(bundle, '\n# ==> /etc/ipsec.conf (append): the conn');
});

/** Reads GKeyFile text the way GLib does for string values. */
function readKeyfile(text: string): Map<string, Map<string, string>> {
  const groups = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const group = /^\[([^\]]+)\]$/.exec(line);
    if (group) {
      if (groups.has(group[1]!)) throw new Error(`group ${group[1]} twice`);
      groups.set(group[1]!, (current = new Map()));
      continue;
    }
    const pair = /^([A-Za-z0-9-]+)=(.*)$/.exec(line);
    if (!pair || !current) throw new Error(`not a keyfile line: ${line}`);
    const value = pair[2]!.replace(
      /\\(.)/g,
      (_, c: string) => ({ s: ' ', n: '\n', t: '\t', r: '\r', '\\': '\\' })[c] ?? `\\${c}`,
    );
    current.set(pair[1]!, value);
  }
  return groups;
}

t.test(
  'the NetworkManager keyfile names the strongswan plugin, EAP and both identities',
  async (t) => {
    const [ca, connection] = networkManagerParts(input());
    t.equal(ca!.path, caPath(roadWarrior()));
    t.equal(connection!.path, '/etc/NetworkManager/system-connections/ikev2-vpn.nmconnection');
    t.equal(connection!.mode, 0o600, 'NetworkManager ignores keyfiles others can read');
    const keyfile = readKeyfile(connection!.content);
    t.same([...keyfile.keys()], ['connection', 'vpn', 'ipv4', 'ipv6']);
    t.equal(keyfile.get('connection')!.get('type'), 'vpn');
    t.match(
      keyfile.get('connection')!.get('uuid'),
      /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    const vpn = Object.fromEntries(keyfile.get('vpn')!);
    t.match(vpn, {
      'service-type': 'org.freedesktop.NetworkManager.strongswan',
      address: 'vpn.example.com',
      certificate: caPath(roadWarrior()),
      'remote-identity': 'vpn.example.com',
      'local-identity': 'client_a',
      method: 'eap',
      user: 'client_a',
      'password-flags': '2',
      virtual: 'yes',
    });
  },
);

t.test(
  'the NetworkManager keyfile stores the password only when given, escaped for GKeyFile',
  async (t) => {
    const password = ` back\\slash and spaces `;
    const keyfile = readKeyfile(networkManagerParts(input({ password }))[1]!.content);
    t.equal(keyfile.get('vpn')!.get('password-flags'), '0');
    t.equal(keyfile.get('vpn-secrets')!.get('password'), password);
    t.notOk(readKeyfile(networkManagerParts(input())[1]!.content).has('vpn-secrets'));
  },
);

t.test(
  'no profile format carries private key material or a password it was not given',
  async (t) => {
    for (const format of ['mobileconfig', 'strongswan', 'networkmanager'] as const) {
      const text = renderClientProfile(format, input());
      t.notMatch(text, /PRIVATE KEY/, format);
      t.notMatch(text, 'unused', `${format}: the desired password is not read by the renderer`);
    }
  },
);

t.test(
  'XML escaping covers the five special characters and refuses what XML cannot hold',
  async (t) => {
    t.equal(escapeXml(`<a href="x">&'`), '&lt;a href=&quot;x&quot;&gt;&amp;&apos;');
    t.throws(() => escapeXml('bell \u0007'));
    t.throws(() => escapeXml('lone \ud800 surrogate'));
    t.equal(escapeXml('emoji 😀 ok'), 'emoji 😀 ok');
  },
);
