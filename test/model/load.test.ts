import { readdirSync, readFileSync } from 'node:fs';
import t from 'tap';
import { formatFinding, loadDesiredState, type LoadResult } from '../../agent/model/load.js';

const CONFIG_DIR = new URL('../../config/', import.meta.url);
const SCHEMA_FILE = 'desired-state.schema.json';
const EXAMPLE_NAMES = readdirSync(CONFIG_DIR)
  .filter((file) => file.endsWith('.json') && file !== SCHEMA_FILE)
  .map((file) => file.replace(/\.json$/, ''))
  .sort();

/** A parsed example document, edited freely by each test before it is loaded. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Document = any;

function example(name: string): Document {
  return JSON.parse(readFileSync(new URL(`${name}.json`, CONFIG_DIR), 'utf8'));
}

function edited(name: string, edit: (document: Document) => void): Document {
  const document = example(name);
  edit(document);
  return document;
}

/** What a reader of `tunnelwarden validate` sees: one formatted line per finding. */
function lines(result: LoadResult): { errors: string[]; warnings: string[] } {
  return {
    errors: result.ok ? [] : result.errors.map(formatFinding),
    warnings: result.warnings.map(formatFinding),
  };
}

function load(document: Document): { errors: string[]; warnings: string[] } {
  return lines(loadDesiredState(JSON.stringify(document)));
}

t.test('every example in config/ is valid and draws no warning', async (t) => {
  t.same(EXAMPLE_NAMES, ['roadwarrior', 'site-a', 'site-b'], 'the examples this suite knows');
  for (const name of EXAMPLE_NAMES) {
    const text = readFileSync(new URL(`${name}.json`, CONFIG_DIR), 'utf8');
    t.same(lines(loadDesiredState(text)), { errors: [], warnings: [] }, name);
    t.equal(loadDesiredState(text).ok, true, `${name} loads`);
  }
});

t.test('the examples keep the values they were written with and gain the defaults', async (t) => {
  const result = loadDesiredState(readFileSync(new URL('site-b.json', CONFIG_DIR), 'utf8'));
  if (!result.ok) return t.fail('site-b.json did not load');
  const connection = result.state.ipsec?.connections[0];
  t.equal(connection?.name, 'b-to-a');
  t.equal(connection?.dpd.action, 'clear');
  t.equal(connection?.rekey, true, 'rekey defaults to true');
  t.same(result.state.transit?.routes, [], 'routes default to none');
});

// Strings that break ipsec.conf, ipsec.secrets, a shell or a reader's eye.
const HOSTILE: Record<string, string> = {
  'a newline': 'a\nb',
  'a double quote': 'a"b',
  'a single quote': "a'b",
  'a hash': 'a#b',
  'a percent sign': 'a%b',
  'a semicolon': 'a;b',
  'a command substitution': '$(reboot)',
  backticks: '`reboot`',
  'a space': 'a b',
  'a 100 kB string': 'a'.repeat(100_000),
  'a non-ASCII letter': 'grüße',
  'an emoji': 'vpn😀',
  'a right-to-left mark': 'a\u200Fb',
};

const CONN_NAME =
  'not a safe connection name (a letter, then up to 47 letters, digits, "_" or "-")';
const IKE_ID =
  'not a safe IKE identity (an IP address, FQDN, @fqdn or user@fqdn of letters, digits and ' +
  '"@._:+-", or %any)';
const EAP_ID = 'not a safe EAP identity (letters, digits and "@._+-", at most 64)';
const INTERFACE = 'not a Linux interface name (1-15 of letters, digits, "_", "." and "-")';
const PATH = 'not an absolute path of letters, digits and "_.@+/-" (no spaces or quotes)';
const PATH_TOO_LONG = 'is longer than 4095 characters, the Linux limit';

interface StringField {
  what: string;
  example: string;
  path: string;
  set: (document: Document, value: string) => void;
  message: string;
  /** A different message for some hostile strings. */
  messageFor?: Record<string, string>;
}

const STRING_FIELDS: StringField[] = [
  {
    what: 'a site-to-site conn name',
    example: 'site-a',
    path: 'ipsec.connections[0].name',
    set: (d, v) => (d.ipsec.connections[0].name = v),
    message: CONN_NAME,
  },
  {
    what: 'the road-warrior conn name',
    example: 'roadwarrior',
    path: 'ipsec.roadWarrior.name',
    set: (d, v) => (d.ipsec.roadWarrior.name = v),
    message: CONN_NAME,
  },
  {
    what: 'a local IKE identity',
    example: 'site-a',
    path: 'ipsec.connections[0].local.id',
    set: (d, v) => (d.ipsec.connections[0].local.id = v),
    message: IKE_ID,
  },
  {
    what: 'a remote IKE identity',
    example: 'site-a',
    path: 'ipsec.connections[0].remote.id',
    set: (d, v) => (d.ipsec.connections[0].remote.id = v),
    message: IKE_ID,
  },
  {
    what: 'the road-warrior server identity',
    example: 'roadwarrior',
    path: 'ipsec.roadWarrior.serverId',
    set: (d, v) => (d.ipsec.roadWarrior.serverId = v),
    message: IKE_ID,
  },
  {
    what: 'a peer address',
    example: 'site-a',
    path: 'ipsec.connections[0].remote.address',
    set: (d, v) => (d.ipsec.connections[0].remote.address = v),
    message: 'not an IP address, a DNS name, or %any',
  },
  {
    what: 'an EAP identity',
    example: 'roadwarrior',
    path: 'ipsec.roadWarrior.clients[1].eapId',
    set: (d, v) => (d.ipsec.roadWarrior.clients[1].eapId = v),
    message: EAP_ID,
  },
  {
    what: 'the transit interface name',
    example: 'site-a',
    path: 'transit.interface',
    set: (d, v) => (d.transit.interface = v),
    message: INTERFACE,
  },
  {
    what: 'the VLAN parent interface name',
    example: 'site-a',
    path: 'transit.parent',
    set: (d, v) => (d.transit.parent = v),
    message: INTERFACE,
  },
  {
    what: 'a masquerade out-interface name',
    example: 'site-b',
    path: 'masquerade.rules[0].outInterface',
    set: (d, v) => (d.masquerade.rules[0].outInterface = v),
    message: INTERFACE,
  },
  {
    what: 'an LXD network name',
    example: 'site-a',
    path: 'lxd.networks[0].name',
    set: (d, v) => (d.lxd.networks[0].name = v),
    message: 'not an LXD network name',
  },
  {
    what: 'the site name',
    example: 'site-b',
    path: 'site.name',
    set: (d, v) => (d.site.name = v),
    message: 'not a site name (letters, digits, "_.-", at most 63)',
  },
  {
    what: 'a PSK file path',
    example: 'site-a',
    path: 'ipsec.connections[0].psk.file',
    set: (d, v) => (d.ipsec.connections[0].psk = { file: `/etc/tunnelwarden/${v}` }),
    message: PATH,
    messageFor: { 'a 100 kB string': PATH_TOO_LONG },
  },
  {
    what: 'an EAP password file path',
    example: 'roadwarrior',
    path: 'ipsec.roadWarrior.clients[0].password.file',
    set: (d, v) => (d.ipsec.roadWarrior.clients[0].password = { file: `/etc/${v}` }),
    message: PATH,
    messageFor: { 'a 100 kB string': PATH_TOO_LONG },
  },
  {
    what: 'the server certificate path',
    example: 'roadwarrior',
    path: 'ipsec.roadWarrior.certificate',
    set: (d, v) => (d.ipsec.roadWarrior.certificate = `/etc/ipsec.d/certs/${v}`),
    message: PATH,
    messageFor: { 'a 100 kB string': PATH_TOO_LONG },
  },
  {
    what: 'the server private key path',
    example: 'roadwarrior',
    path: 'ipsec.roadWarrior.privateKey',
    set: (d, v) => (d.ipsec.roadWarrior.privateKey = `/etc/ipsec.d/private/${v}`),
    message: PATH,
    messageFor: { 'a 100 kB string': PATH_TOO_LONG },
  },
  {
    what: 'the CA certificate path',
    example: 'roadwarrior',
    path: 'ipsec.roadWarrior.ca',
    set: (d, v) => (d.ipsec.roadWarrior.ca = `/etc/ipsec.d/cacerts/${v}`),
    message: PATH,
    messageFor: { 'a 100 kB string': PATH_TOO_LONG },
  },
  {
    what: 'the LXD socket path',
    example: 'site-b',
    path: 'lxd.socket',
    set: (d, v) => (d.lxd.socket = `/var/lib/lxd/${v}`),
    message: PATH,
    messageFor: { 'a 100 kB string': PATH_TOO_LONG },
  },
  {
    what: 'the charondebug list',
    example: 'site-a',
    path: 'ipsec.setup.charondebug',
    set: (d, v) => (d.ipsec.setup.charondebug = `ike 1, ${v}`),
    message: 'not a charondebug list such as "ike 1, knl 1, cfg 0"',
  },
];

for (const field of STRING_FIELDS) {
  t.test(`${field.what} with a hostile string is rejected at ${field.path}`, async (t) => {
    for (const [label, value] of Object.entries(HOSTILE)) {
      const message = field.messageFor?.[label] ?? field.message;
      const document = edited(field.example, (d) => field.set(d, value));
      t.same(load(document).errors, [`error: ${field.path}: ${message}`], label);
    }
  });
}

const SECRET_FIELDS = [
  {
    what: 'a PSK',
    example: 'site-a',
    path: 'ipsec.connections[0].psk.value',
    set: (d: Document, v: string) => (d.ipsec.connections[0].psk = { value: v }),
  },
  {
    what: 'an EAP password',
    example: 'roadwarrior',
    path: 'ipsec.roadWarrior.clients[1].password.value',
    set: (d: Document, v: string) => (d.ipsec.roadWarrior.clients[1].password = { value: v }),
  },
];

const SECRET_REJECTED: Record<string, string> = {
  'a newline': 'contains a control character (newline, tab, NUL...), which breaks ipsec.secrets',
  'a double quote': 'contains a double quote, which ipsec.secrets cannot quote',
  'a 100 kB string': 'is longer than 1024 characters',
};

for (const field of SECRET_FIELDS) {
  t.test(
    `${field.what} rejects only what ipsec.secrets cannot quote, at ${field.path}`,
    async (t) => {
      for (const [label, value] of Object.entries(HOSTILE)) {
        const rejected = SECRET_REJECTED[label];
        const result = loadDesiredState(
          JSON.stringify(edited(field.example, (d) => field.set(d, value))),
        );
        if (rejected !== undefined) {
          t.same(lines(result).errors, [`error: ${field.path}: ${rejected}`], label);
          continue;
        }
        t.same(lines(result), { errors: [], warnings: [] }, `${label} is accepted`);
      }
    },
  );

  t.test(`${field.what} is kept byte for byte when accepted`, async (t) => {
    const secret = ` sp'a#c%e;$(x)\`y\` grüße 😀 \u200F `;
    const result = loadDesiredState(
      JSON.stringify(edited(field.example, (d) => field.set(d, secret))),
    );
    if (!result.ok) return t.fail(`rejected: ${lines(result).errors.join('; ')}`);
    const stored =
      field.example === 'site-a'
        ? result.state.ipsec?.connections[0]?.psk
        : result.state.ipsec?.roadWarrior?.clients[1]?.password;
    t.same(stored, { value: secret });
  });

  t.test(
    `${field.what} that is empty, too long or holds a control character is rejected`,
    async (t) => {
      const cases: [string, string, string][] = [
        ['empty', '', 'is empty'],
        ['1025 characters', 'x'.repeat(1025), 'is longer than 1024 characters'],
        ['a tab', 'a\tb', SECRET_REJECTED['a newline']!],
        ['a carriage return', 'a\rb', SECRET_REJECTED['a newline']!],
        ['a NUL', 'a\u0000b', SECRET_REJECTED['a newline']!],
        ['a DEL', 'a\u007fb', SECRET_REJECTED['a newline']!],
      ];
      for (const [label, value, message] of cases) {
        const document = edited(field.example, (d) => field.set(d, value));
        t.same(load(document).errors, [`error: ${field.path}: ${message}`], label);
      }
      const longest = edited(field.example, (d) => field.set(d, 'x'.repeat(1024)));
      t.same(load(longest).errors, [], '1024 characters are accepted');
    },
  );
}

t.test('charondebug with a line break is rejected; spaces and tabs are fine', async (t) => {
  const message =
    'error: ipsec.setup.charondebug: not a charondebug list such as "ike 1, knl 1, cfg 0"';
  for (const value of ['ike 1\n', '\nike 1', 'ike\n1', 'ike 1,\nknl 1', 'ike\u00a01', 'ike 1\r']) {
    const document = edited('site-a', (d) => (d.ipsec.setup.charondebug = value));
    t.same(load(document).errors, [message], JSON.stringify(value));
  }
  for (const value of ['ike -2', 'ike 5', 'knl -4']) {
    const document = edited('site-a', (d) => (d.ipsec.setup.charondebug = value));
    t.same(load(document).errors, [message], `level out of -1..4: ${JSON.stringify(value)}`);
  }
  for (const value of ['ike 2,knl\t1', ' ike -1 ', 'any 0']) {
    const document = edited('site-a', (d) => (d.ipsec.setup.charondebug = value));
    t.same(load(document).errors, [], JSON.stringify(value));
  }
});

t.test('a remote subnet overlapping a local one is an error on the remote subnet', async (t) => {
  const document = edited('site-a', (d) => {
    d.ipsec.connections[0].remote.subnets = ['10.2.0.0/16', '10.1.128.0/17'];
  });
  t.same(load(document).errors, [
    'error: ipsec.connections[0].remote.subnets[1]: overlaps local subnet 10.1.0.0/16 ' +
      '(local.subnets[0]); traffic between them could not be routed through the tunnel',
  ]);
});

t.test('IKEv1 with several subnets on a side is an error on that side', async (t) => {
  const document = edited('site-a', (d) => {
    d.ipsec.connections[0].keyexchange = 'ikev1';
    d.ipsec.connections[0].local.subnets = ['10.1.0.0/16', '10.5.0.0/16'];
  });
  t.same(load(document).errors, [
    'error: ipsec.connections[0].local.subnets: IKEv1 negotiates one subnet pair per conn; ' +
      'with several, strongSwan silently uses only the first (use IKEv2, or one connection ' +
      'per subnet)',
  ]);
  const single = edited('site-a', (d) => (d.ipsec.connections[0].keyexchange = 'ikev1'));
  t.same(load(single).errors, []);
});

t.test('overlapping subnets within one list are an error on the later one', async (t) => {
  const document = edited('site-b', (d) => (d.site.subnets = ['10.2.0.0/16', '10.2.3.0/24']));
  t.same(load(document).errors, [
    'error: site.subnets[1]: overlaps 10.2.0.0/16 at site.subnets[0]',
  ]);
});

t.test('two connections with the same name are an error on the second', async (t) => {
  const document = edited('site-a', (d) => {
    const second = structuredClone(d.ipsec.connections[0]);
    second.remote.subnets = ['10.3.0.0/16'];
    delete second.probe;
    d.ipsec.connections.push(second);
  });
  t.same(load(document).errors, [
    'error: ipsec.connections[1].name: connection "a-to-b" is already defined at index 0',
  ]);
});

t.test('a site-to-site conn named like a road-warrior conn is an error', async (t) => {
  const document = edited('roadwarrior', (d) => {
    const siteA = example('site-a');
    delete siteA.ipsec.connections[0].probe;
    siteA.ipsec.connections[0].name = 'ikev2-vpn-client_b';
    d.ipsec.connections = siteA.ipsec.connections;
  });
  t.same(load(document).errors, [
    'error: ipsec.connections[0].name: "ikev2-vpn-client_b" clashes with a road-warrior ' +
      'connection name',
  ]);
});

t.test('two road-warrior clients with the same EAP identity are an error', async (t) => {
  const document = edited(
    'roadwarrior',
    (d) => (d.ipsec.roadWarrior.clients[1].eapId = 'client_a'),
  );
  t.same(load(document).errors, [
    'error: ipsec.roadWarrior.clients[1].eapId: EAP identity "client_a" is already defined at ' +
      'index 0',
    'error: ipsec.roadWarrior.clients[1].eapId: connection name derived from EAP identity ' +
      '"ikev2-vpn-client_a" is already defined at index 0',
  ]);
});

t.test('EAP identities that differ but give the same conn name are an error', async (t) => {
  const document = edited(
    'roadwarrior',
    (d) => (d.ipsec.roadWarrior.clients[1].eapId = 'client.a'),
  );
  t.same(load(document).errors, [
    'error: ipsec.roadWarrior.clients[1].eapId: connection name derived from EAP identity ' +
      '"ikev2-vpn-client_a" is already defined at index 0',
  ]);
});

t.test('two road-warrior clients with the same virtual IP are an error', async (t) => {
  const document = edited('roadwarrior', (d) => {
    d.ipsec.roadWarrior.virtualIpPool = 'fd00:10::/64';
    d.ipsec.roadWarrior.clients[0].virtualIp = 'fd00:10::2';
    d.ipsec.roadWarrior.clients[1].virtualIp = 'FD00:10:0::2';
  });
  t.same(load(document).errors, [
    'error: ipsec.roadWarrior.clients[1].virtualIp: virtual IP "fd00:10::2" is already defined ' +
      'at index 0',
  ]);
});

t.test(
  'a virtual IP outside the pool, or its network or broadcast address, is an error',
  async (t) => {
    const outside = edited(
      'roadwarrior',
      (d) => (d.ipsec.roadWarrior.clients[0].virtualIp = '10.10.11.2'),
    );
    t.same(load(outside).errors, [
      'error: ipsec.roadWarrior.clients[0].virtualIp: is outside the virtual IP pool 10.10.10.0/24',
    ]);
    const edges = edited('roadwarrior', (d) => {
      d.ipsec.roadWarrior.clients[0].virtualIp = '10.10.10.0';
      d.ipsec.roadWarrior.clients[1].virtualIp = '10.10.10.255';
    });
    t.same(load(edges).errors, [
      'error: ipsec.roadWarrior.clients[0].virtualIp: is the network or broadcast address',
      'error: ipsec.roadWarrior.clients[1].virtualIp: is the network or broadcast address',
    ]);
    const lastUsable = edited(
      'roadwarrior',
      (d) => (d.ipsec.roadWarrior.clients[1].virtualIp = '10.10.10.254'),
    );
    t.same(load(lastUsable).errors, [], 'the last usable address is fine');
  },
);

t.test('a probe target outside the remote subnets is an error', async (t) => {
  const document = edited('site-a', (d) => (d.ipsec.connections[0].probe.target = '10.3.0.1'));
  t.same(load(document).errors, [
    'error: ipsec.connections[0].probe.target: is not inside any remote subnet of this connection',
  ]);
  const wrongSource = edited('site-a', (d) => (d.ipsec.connections[0].probe.source = '10.2.0.9'));
  t.same(load(wrongSource).errors, [
    'error: ipsec.connections[0].probe.source: is not inside any local subnet of this connection',
  ]);
});

t.test('VLAN ids outside 1 to 4094 are an error; the ends of the range are fine', async (t) => {
  for (const vlanId of [0, 4095, -1, 65536]) {
    const document = edited('site-a', (d) => (d.transit.vlanId = vlanId));
    t.same(
      load(document).errors,
      ['error: transit.vlanId: VLAN ids run from 1 to 4094'],
      `${vlanId}`,
    );
  }
  for (const vlanId of [1, 4094]) {
    const document = edited('site-a', (d) => (d.transit.vlanId = vlanId));
    t.same(load(document).errors, [], `${vlanId}`);
  }
});

t.test('a VLAN id without a parent, or a parent without a VLAN id, is an error', async (t) => {
  const noParent = edited('site-a', (d) => delete d.transit.parent);
  t.same(load(noParent).errors, [
    'error: transit.parent: a VLAN id needs the parent interface it is tagged on',
  ]);
  const noVlanId = edited('site-a', (d) => delete d.transit.vlanId);
  t.same(load(noVlanId).errors, [
    'error: transit.vlanId: a parent interface is given but no VLAN id',
  ]);
});

t.test('a gateway outside the transit address needs onLink', async (t) => {
  const offLink = edited('site-a', (d) => {
    d.transit.routes[0].gateway = '172.16.1.1';
    d.transit.routes[0].onLink = false;
  });
  t.same(load(offLink).errors, [
    'error: transit.routes[0].gateway: gateway 172.16.1.1 is outside 172.16.0.18/24; set ' +
      '"onLink": true if the provider routes it on the link anyway',
  ]);
  const onLink = edited('site-a', (d) => (d.transit.routes[0].gateway = '172.16.1.1'));
  t.same(load(onLink).errors, [], 'the same gateway with onLink');
});

t.test('a subnet with host bits set is an error naming the subnet', async (t) => {
  const site = edited('site-a', (d) => (d.site.subnets = ['10.1.0.1/16']));
  t.same(load(site).errors, [
    'error: site.subnets[0]: host bits are set; write the network address',
  ]);
  const remote = edited('site-a', (d) => (d.ipsec.connections[0].remote.subnets = ['10.2.0.1/16']));
  t.same(load(remote).errors, [
    'error: ipsec.connections[0].remote.subnets[0]: host bits are set; write the network address',
  ]);
});

t.test('a misspelt algorithm keyword is an error naming the keyword', async (t) => {
  const document = edited(
    'site-a',
    (d) => (d.ipsec.connections[0].ike = ['aes256-sha265-modp2048']),
  );
  t.same(load(document).errors, [
    'error: ipsec.connections[0].ike[0]: "aes256-sha265-modp2048": unknown algorithm keyword ' +
      '"sha265"',
  ]);
});

t.test('an IKE proposal without a DH group is an error', async (t) => {
  const document = edited('site-a', (d) => (d.ipsec.connections[0].ike = ['aes256-sha256']));
  t.same(load(document).errors, [
    'error: ipsec.connections[0].ike[0]: "aes256-sha256": an IKE proposal needs a DH group',
  ]);
});

t.test('a strict "!" is only accepted on the last proposal of a list', async (t) => {
  const early = edited('site-a', (d) => {
    d.ipsec.connections[0].esp = ['aes256gcm16!', 'aes128gcm16'];
  });
  t.same(load(early).errors, [
    'error: ipsec.connections[0].esp[0]: "!" (strict) applies to the whole list and is only ' +
      'understood on the last proposal; charon would drop this proposal as invalid',
  ]);
  const last = edited(
    'site-a',
    (d) => (d.ipsec.connections[0].esp = ['aes256gcm16', 'aes128gcm16!']),
  );
  t.same(load(last).errors, []);
});

t.test('text that is not JSON is an error on the whole document', async (t) => {
  const { errors, warnings } = lines(loadDesiredState('{"version": 1,'));
  t.equal(errors.length, 1);
  t.match(errors[0], /^error: \(document\): is not JSON: \S/);
  t.same(warnings, []);
});

t.test('a JSON error gives line and column but never quotes the file, which may hold a secret', async (t) => {
  const cases: [string, string][] = [
    ['{"psk": TopSecretPsk99}', 'error: (document): is not JSON: unexpected character at line 1, column 9'],
    ['{\n  "psk": "TopSecretPsk99', 'error: (document): is not JSON: Unterminated string at line 2, column 25'],
    ['{"a": 1,}', 'error: (document): is not JSON: Expected double-quoted property name at line 1, column 9'],
  ];
  for (const [text, expected] of cases) {
    const { errors } = lines(loadDesiredState(text));
    t.same(errors, [expected], JSON.stringify(text));
    t.notMatch(errors[0], 'TopSecret');
  }
});

t.test('an empty or blank file is an error, not an empty desired state', async (t) => {
  for (const text of ['', ' \n\t\n']) {
    t.same(
      lines(loadDesiredState(text)),
      {
        errors: ['error: (document): is empty'],
        warnings: [],
      },
      JSON.stringify(text),
    );
  }
});

t.test('JSON that is not an object is an error on the whole document', async (t) => {
  t.same(lines(loadDesiredState('[]')).errors, [
    'error: (document): Invalid input: expected object, received array',
  ]);
  t.same(lines(loadDesiredState('null')).errors, [
    'error: (document): Invalid input: expected object, received null',
  ]);
});

t.test('any version but 1 is an error on version', async (t) => {
  for (const version of [2, 0, '1', undefined]) {
    const document = edited('site-b', (d) => (d.version = version));
    t.same(load(document).errors, ['error: version: only version 1 is understood'], `${version}`);
  }
});

t.test('unknown keys are errors at the object that holds them', async (t) => {
  const document = edited('site-a', (d) => {
    d.tunnels = [];
    d.transit.mtu = 1400;
    d.ipsec.connections[0].leftsubnet = '10.1.0.0/16';
  });
  // zod reports an object's own unknown keys after those of its children; order is not promised.
  t.same(load(document).errors.sort(), [
    'error: (document): Unrecognized key: "tunnels"',
    'error: ipsec.connections[0]: Unrecognized key: "leftsubnet"',
    'error: transit: Unrecognized key: "mtu"',
  ]);
});

t.test('a secret that is neither {value} nor {file} is an error on the secret', async (t) => {
  const forms: [string, unknown][] = [
    ['a bare string', 'plain'],
    ['an empty object', {}],
    ['both value and file', { value: 'x', file: '/etc/x' }],
  ];
  for (const [label, psk] of forms) {
    const document = edited('site-a', (d) => (d.ipsec.connections[0].psk = psk));
    t.same(
      load(document).errors,
      [
        'error: ipsec.connections[0].psk: matches none of the allowed forms (for a secret: ' +
          '{"value": "..."} or {"file": "/path"})',
      ],
      label,
    );
  }
});

t.test('weak algorithms are warned about, and the document stays valid', async (t) => {
  const modp1024 = edited(
    'site-a',
    (d) => (d.ipsec.connections[0].ike = ['aes256-sha256-modp1024']),
  );
  t.same(load(modp1024), {
    errors: [],
    warnings: ['warning: ipsec.connections[0].ike[0]: "aes256-sha256-modp1024" uses weak modp1024'],
  });
  const sha1 = edited(
    'site-a',
    (d) => (d.ipsec.connections[0].esp = ['aes128-sha256', 'aes256-sha1']),
  );
  t.same(load(sha1), {
    errors: [],
    warnings: ['warning: ipsec.connections[0].esp[1]: "aes256-sha1" uses weak sha1'],
  });
});

t.test('reauthentication is warned about', async (t) => {
  const document = edited('site-a', (d) => (d.ipsec.connections[0].reauth = true));
  t.same(load(document), {
    errors: [],
    warnings: [
      'warning: ipsec.connections[0].reauth: reauthentication tears the IKE_SA down and builds ' +
        'it again, dropping packets meanwhile; rekeying without reauth keeps traffic flowing',
    ],
  });
});

t.test('an IKE lifetime under an hour is warned about', async (t) => {
  const document = edited('site-a', (d) => (d.ipsec.connections[0].ikeLifetimeSeconds = 1800));
  t.same(load(document), {
    errors: [],
    warnings: [
      'warning: ipsec.connections[0].ikeLifetimeSeconds: 1800 s is short: frequent IKE rekeys ' +
        '(or reauths) cost packets; 3 hours or more is usual',
    ],
  });
  const hour = edited('site-a', (d) => (d.ipsec.connections[0].ikeLifetimeSeconds = 3600));
  t.same(load(hour).warnings, [], 'an hour is not warned about');
});

t.test('a VLAN MTU above what provider vSwitches carry is warned about', async (t) => {
  const document = edited('site-a', (d) => (d.transit.mtuBytes = 1500));
  t.same(load(document), {
    errors: [],
    warnings: [
      'warning: transit.mtuBytes: 1500 bytes on a VLAN: provider vSwitches often carry at most ' +
        '1400, and a larger MTU makes SSH hang at key exchange',
    ],
  });
  const noVlan = edited('site-b', (d) => (d.transit.mtuBytes = 1500));
  t.same(load(noVlan).warnings, [], 'without a VLAN the MTU is not warned about');
});

t.test('masquerade exclusions that miss a remote subnet are warned about', async (t) => {
  const document = edited('site-a', (d) => {
    d.masquerade.rules[0].excludeDestinations = ['10.3.0.0/16'];
  });
  t.same(load(document), {
    errors: [],
    warnings: [
      'warning: masquerade.rules[0].excludeDestinations: does not cover remote subnet ' +
        '10.2.0.0/16 of connection "a-to-b": traffic to the other site would leave masqueraded ' +
        'and miss the tunnel policy',
    ],
  });
});

t.test('a valid state is deeply frozen', async (t) => {
  const result = loadDesiredState(readFileSync(new URL('site-a.json', CONFIG_DIR), 'utf8'));
  if (!result.ok) return t.fail('site-a.json did not load');

  const unfrozen: string[] = [];
  const visit = (value: unknown, path: string): void => {
    if (value === null || typeof value !== 'object') return;
    if (!Object.isFrozen(value)) unfrozen.push(path);
    for (const [key, child] of Object.entries(value)) visit(child, `${path}.${key}`);
  };
  visit(result.state, 'state');
  t.same(unfrozen, []);

  const connection = result.state.ipsec!.connections[0]!;
  t.throws(() => connection.local.subnets.push('10.9.0.0/16'), TypeError);
  t.throws(() => {
    (connection.dpd as { action: string }).action = 'none';
  }, TypeError);
  t.equal(connection.dpd.action, 'restart');
});

t.test('an octal-looking address or prefix is rejected with the leading zero named', async (t) => {
  const zero = 'an IPv4 octet has a leading zero, which some tools read as octal; write it without';
  const document = edited('site-a', (d) => {
    d.site.subnets = ['010.1.0.0/16'];
    d.transit.address = '172.16.00.18/24';
    d.ipsec.connections[0].remote.address = '172.016.0.2';
    d.ipsec.connections[0].probe.target = '10.2.0.01';
  });
  t.same(load(document).errors, [
    `error: site.subnets[0]: ${zero}`,
    `error: transit.address: ${zero}`,
    `error: ipsec.connections[0].remote.address: ${zero}`,
    `error: ipsec.connections[0].probe.target: ${zero}`,
  ]);
  const otherwise = load(edited('site-a', (d) => (d.site.subnets = ['10.1.0.0/33']))).errors;
  t.same(otherwise, ['error: site.subnets[0]: not a CIDR prefix such as "10.1.0.0/16"'], 'other mistakes keep their message');
});
