import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import fc from 'fast-check';
import t from 'tap';
import { loadDesiredState } from '../../agent/model/load.js';
import { secretProblems, type DesiredState } from '../../agent/model/schema.js';
import {
  MANAGED_HEADER,
  eapPasswordPath,
  pskPath,
  renderedConnNames,
  renderIpsecConf,
  renderIpsecSecrets,
  secretFields,
  type ResolvedSecrets,
} from '../../agent/plan/ipsec-render.js';

const CONFIG_DIR = new URL('../../config/', import.meta.url);
const GOLDEN_DIR = new URL('../fixtures/golden/', import.meta.url);
const UPDATE_GOLDEN = process.env.TW_UPDATE_GOLDEN === '1';
const REGENERATE =
  'TW_UPDATE_GOLDEN=1 npx tap run --disable-coverage test/plan/ipsec-render.test.ts, ' +
  'then review `git diff test/fixtures/golden`';

function exampleText(name: string): string {
  return readFileSync(new URL(`${name}.json`, CONFIG_DIR), 'utf8');
}

function stateOf(text: string): DesiredState {
  const result = loadDesiredState(text);
  if (!result.ok) throw new Error(`example did not load: ${JSON.stringify(result.errors)}`);
  return result.state;
}

function example(name: string): DesiredState {
  return stateOf(exampleText(name));
}

/**
 * Stand-ins for the secret files the examples point at ({"file": ...}), keyed by JSON path as
 * the host's secret resolver would hand them over.
 */
const TEST_SECRETS: Record<string, ResolvedSecrets> = {
  'site-a': new Map([[pskPath(0), 'test-psk-a-to-b']]),
  'site-b': new Map([[pskPath(0), 'test-psk-a-to-b']]),
  roadwarrior: new Map([
    [eapPasswordPath(0), 'test-password-client-a'],
    [eapPasswordPath(1), 'test-password-client-b'],
  ]),
};

/**
 * The golden text for `actual` and the message to show when they differ. With
 * TW_UPDATE_GOLDEN=1 the golden file is rewritten first, so the comparison holds.
 */
function golden(file: string, actual: string): { expected: string; message: string } {
  const url = new URL(file, GOLDEN_DIR);
  if (UPDATE_GOLDEN) {
    mkdirSync(GOLDEN_DIR, { recursive: true });
    writeFileSync(url, actual);
  }
  const message =
    `differs from test/fixtures/golden/${file}; if the change is meant, ${REGENERATE}`;
  try {
    return { expected: readFileSync(url, 'utf8'), message };
  } catch {
    return { expected: '', message: `test/fixtures/golden/${file} is missing; ${REGENERATE}` };
  }
}

/** The `conn NAME` headers of an ipsec.conf text, in order. */
function connHeaders(conf: string): string[] {
  return [...conf.matchAll(/^conn (\S+)$/gm)].map((match) => match[1]!);
}

/**
 * Reads an ipsec.secrets line the way strongSwan's stroke plugin does: ids up to the first
 * " : ", a type token, then a secret that runs from a double quote to the next double quote
 * (no escapes). Returns undefined when the line would not parse as one quoted secret.
 */
function strongswanSecret(line: string): { ids: string; type: string; secret: string } | undefined {
  const separator = line.indexOf(' : ');
  if (separator < 0) return undefined;
  const rest = line.slice(separator + 3).replace(/^[ \t]+/, '');
  const typeEnd = rest.indexOf(' ');
  if (typeEnd < 0) return undefined;
  const quoted = rest.slice(typeEnd).replace(/^[ \t]+/, '');
  if (!quoted.startsWith('"')) return undefined;
  const close = quoted.indexOf('"', 1);
  if (close < 0 || quoted.slice(close + 1).trim() !== '') return undefined;
  return {
    ids: line.slice(0, separator),
    type: rest.slice(0, typeEnd),
    secret: quoted.slice(1, close),
  };
}

/** Turns a JSON document's key order around at every level. */
function reversedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reversedKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value)
      .reverse()
      .map(([key, child]) => [key, reversedKeys(child)]),
  );
}

t.test('site-a renders to its golden ipsec.conf and ipsec.secrets', async (t) => {
  const state = example('site-a');
  for (const [file, actual] of [
    ['site-a.conf', renderIpsecConf(state)],
    ['site-a.secrets', renderIpsecSecrets(state, TEST_SECRETS['site-a']!)],
  ] as const) {
    const { expected, message } = golden(file, actual);
    t.equal(actual, expected, message);
  }
});

t.test('site-b renders to its golden ipsec.conf', async (t) => {
  const actual = renderIpsecConf(example('site-b'));
  const { expected, message } = golden('site-b.conf', actual);
  t.equal(actual, expected, message);
});

t.test('the road-warrior example renders to its golden ipsec.conf and ipsec.secrets', async (t) => {
  const state = example('roadwarrior');
  for (const [file, actual] of [
    ['roadwarrior.conf', renderIpsecConf(state)],
    ['roadwarrior.secrets', renderIpsecSecrets(state, TEST_SECRETS.roadwarrior!)],
  ] as const) {
    const { expected, message } = golden(file, actual);
    t.equal(actual, expected, message);
  }
});

t.test('an ECDSA server key is announced as ECDSA, which charon needs to load it', async (t) => {
  const secrets = renderIpsecSecrets(example('roadwarrior'), TEST_SECRETS.roadwarrior!, { keyType: 'ECDSA' });
  t.equal(secrets.split('\n')[1], ': ECDSA /etc/ipsec.d/private/vpn.example.com.pem');
});

t.test('each road-warrior client conn pins its EAP identity and its one virtual IP', async (t) => {
  const conf = renderIpsecConf(example('roadwarrior'));
  const client = conf.split('\n\n').find((section) => section.startsWith('conn ikev2-vpn-client_b'))!;
  t.same(client.trimEnd().split('\n').slice(1), [
    '\talso=ikev2-vpn',
    '\trightid=client_b',
    '\teap_identity=client_b',
    '\trightsourceip=10.10.10.3',
    '\tauto=add',
  ]);
  t.notMatch(conf, '%identity', 'no conn asks the client which identity to check');
});

t.test(
  'secretFields lists every secret of the examples under the paths the renderer reads',
  async (t) => {
    for (const name of ['site-a', 'site-b', 'roadwarrior']) {
      const paths = secretFields(example(name)).map((field) => field.path);
      t.same(paths, [...TEST_SECRETS[name]!.keys()], name);
    }
  },
);

t.test('rendering is deterministic, whatever the key order of the document', async (t) => {
  for (const name of ['site-a', 'site-b', 'roadwarrior']) {
    const state = example(name);
    const shuffled = stateOf(JSON.stringify(reversedKeys(JSON.parse(exampleText(name)))));
    t.equal(renderIpsecConf(state), renderIpsecConf(state), `${name} conf twice`);
    t.equal(renderIpsecConf(shuffled), renderIpsecConf(state), `${name} conf, keys reversed`);
    t.equal(
      renderIpsecSecrets(shuffled, TEST_SECRETS[name]!),
      renderIpsecSecrets(state, TEST_SECRETS[name]!),
      `${name} secrets, keys reversed`,
    );
  }
});

t.test('both files start with the managed-file header and end with one newline', async (t) => {
  const state = example('site-a');
  for (const text of [renderIpsecConf(state), renderIpsecSecrets(state, TEST_SECRETS['site-a']!)]) {
    t.equal(text.split('\n')[0], MANAGED_HEADER);
    t.match(text, /[^\n]\n$/);
  }
});

t.test(
  'a secret with "#", "\'", spaces and unicode is rendered inside double quotes intact',
  async (t) => {
    const state = example('site-a');
    const secret = " it's # not a comment; $(x) `y` grüße 😀 \u200F ";
    const text = renderIpsecSecrets(state, new Map([[pskPath(0), secret]]));
    t.equal(text, `${MANAGED_HEADER}\n172.16.0.18 172.16.0.2 : PSK "${secret}"\n`);
    t.same(strongswanSecret(text.split('\n')[1]!), {
      ids: '172.16.0.18 172.16.0.2',
      type: 'PSK',
      secret,
    });
  },
);

t.test('every secret the schema accepts survives the trip through ipsec.secrets', async (t) => {
  const state = example('roadwarrior');
  const accepted = fc
    .string({ unit: 'binary', minLength: 1, maxLength: 64 })
    .filter((text) => secretProblems(text).length === 0);
  fc.assert(
    fc.property(accepted, accepted, (first, second) => {
      const secrets = new Map([
        [eapPasswordPath(0), first],
        [eapPasswordPath(1), second],
      ]);
      const lines = renderIpsecSecrets(state, secrets).split('\n');
      return (
        lines.length === 5 &&
        strongswanSecret(lines[2]!)?.secret === first &&
        strongswanSecret(lines[3]!)?.secret === second &&
        strongswanSecret(lines[2]!)?.ids === 'client_a' &&
        strongswanSecret(lines[3]!)?.ids === 'client_b'
      );
    }),
    { numRuns: 500 },
  );
  t.pass('every generated secret read back unchanged');
});

t.test('the strongSwan-style reader refuses a line a double quote would break', async (t) => {
  t.equal(strongswanSecret('a b : PSK "one"two"'), undefined);
  t.equal(strongswanSecret('a b : PSK unquoted'), undefined);
  t.same(strongswanSecret('a b : PSK "x : y"'), { ids: 'a b', type: 'PSK', secret: 'x : y' });
});

t.test('a missing secret makes rendering throw, naming its path', async (t) => {
  t.throws(() => renderIpsecSecrets(example('site-a'), new Map()), {
    message: 'secret at ipsec.connections[0].psk was not resolved',
  });
  const onlyFirst = new Map([[eapPasswordPath(0), 'test-password-client-a']]);
  t.throws(() => renderIpsecSecrets(example('roadwarrior'), onlyFirst), {
    message: 'secret at ipsec.roadWarrior.clients[1].password was not resolved',
  });
});

t.test('no secret value ends up in the ipsec.conf text', async (t) => {
  for (const name of ['site-a', 'site-b', 'roadwarrior']) {
    const conf = renderIpsecConf(example(name));
    for (const secret of TEST_SECRETS[name]!.values()) t.notMatch(conf, secret, name);
  }
});

t.test('renderedConnNames names exactly the conn sections of the file, in order', async (t) => {
  const both = stateOf(
    JSON.stringify({
      ...JSON.parse(exampleText('roadwarrior')),
      ipsec: {
        ...JSON.parse(exampleText('roadwarrior')).ipsec,
        connections: JSON.parse(exampleText('site-a')).ipsec.connections,
      },
    }),
  );
  const cases: [string, DesiredState, string[]][] = [
    ['site-a', example('site-a'), ['a-to-b']],
    ['site-b', example('site-b'), ['b-to-a']],
    [
      'roadwarrior',
      example('roadwarrior'),
      ['ikev2-vpn', 'ikev2-vpn-client_a', 'ikev2-vpn-client_b'],
    ],
    [
      'site-to-site and road warrior',
      both,
      ['a-to-b', 'ikev2-vpn', 'ikev2-vpn-client_a', 'ikev2-vpn-client_b'],
    ],
  ];
  for (const [label, state, names] of cases) {
    t.same(renderedConnNames(state), names, `${label}: names`);
    t.same(connHeaders(renderIpsecConf(state)), names, `${label}: conn headers`);
  }
});

t.test('a state without ipsec renders files holding only the header', async (t) => {
  const state = stateOf(
    JSON.stringify({ version: 1, site: { name: 's', subnets: ['10.9.0.0/16'] } }),
  );
  t.equal(renderIpsecConf(state), `${MANAGED_HEADER}\n`);
  t.equal(renderIpsecSecrets(state, new Map()), `${MANAGED_HEADER}\n`);
  t.same(renderedConnNames(state), []);
});

t.test('several subnets are one comma-separated list, each as its network address', async (t) => {
  const text = JSON.parse(exampleText('site-a'));
  text.ipsec.connections[0].local.subnets = ['10.1.0.0/16', '10.11.0.0/16'];
  text.ipsec.connections[0].remote.subnets = ['10.2.0.0/16', 'fd00:2::/64'];
  const conf = renderIpsecConf(stateOf(JSON.stringify(text)));
  t.match(conf, /^\tleftsubnet=10\.1\.0\.0\/16,10\.11\.0\.0\/16$/m);
  t.match(conf, /^\trightsubnet=10\.2\.0\.0\/16,fd00:2::\/64$/m);
});

t.test(
  'every line of the rendered examples is a header, a section start or a setting',
  async (t) => {
    const line =
      /^(|# .*|config setup|conn [A-Za-z][A-Za-z0-9_-]*|\t[a-z_]+=[^\s"#]+|\t[a-z_]+="[^"\n]*")$/;
    for (const name of ['site-a', 'site-b', 'roadwarrior']) {
      const stray = renderIpsecConf(example(name))
        .split('\n')
        .filter((text) => !line.test(text));
      t.same(stray, [], name);
    }
  },
);
