import { readdirSync, readFileSync } from 'node:fs';
import t from 'tap';
import { desiredStateJsonSchema } from '../../agent/model/schema.js';

const CONFIG_DIR = new URL('../../config/', import.meta.url);
const SCHEMA_FILE = 'desired-state.schema.json';
const REGENERATE = 'npx tsx agent/cli/bin.ts schema > config/desired-state.schema.json';

const committedText = readFileSync(new URL(SCHEMA_FILE, CONFIG_DIR), 'utf8');
const committed = JSON.parse(committedText) as JsonSchema;
const exampleFiles = readdirSync(CONFIG_DIR)
  .filter((file) => file.endsWith('.json') && file !== SCHEMA_FILE)
  .sort();

/** The parts of JSON Schema that zod emits for this document and that the walk below reads. */
interface JsonSchema {
  type?: string;
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  pattern?: string;
  const?: unknown;
}

/**
 * Where `value` leaves the schema: keys the schema does not name, strings its patterns refuse,
 * and constants it does not hold. Not a full validator; enough to catch an example and the
 * committed schema drifting apart.
 */
function departures(value: unknown, schema: JsonSchema, path: string): string[] {
  if (schema.anyOf) {
    const branches = schema.anyOf.map((branch) => departures(value, branch, path));
    return branches.some((problems) => problems.length === 0)
      ? []
      : [`${path}: matches no anyOf branch (${branches.flat().join('; ')})`];
  }
  if (schema.const !== undefined && value !== schema.const) {
    return [`${path}: is not ${JSON.stringify(schema.const)}`];
  }
  if (typeof value === 'string' && schema.pattern !== undefined) {
    return new RegExp(schema.pattern, 'u').test(value) ? [] : [`${path}: fails ${schema.pattern}`];
  }
  if (Array.isArray(value)) {
    const items = schema.items;
    return items
      ? value.flatMap((item, index) => departures(item, items, `${path}[${index}]`))
      : [];
  }
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).flatMap(([key, child]) => {
      const property = schema.properties?.[key];
      return property
        ? departures(child, property, `${path}.${key}`)
        : [`${path}.${key}: not in the schema`];
    });
  }
  return [];
}

t.test('the committed JSON Schema is the one the code generates', async (t) => {
  const generated = `${JSON.stringify(desiredStateJsonSchema(), null, 2)}\n`;
  t.equal(
    committedText,
    generated,
    `config/${SCHEMA_FILE} is out of date with agent/model/schema.ts; regenerate it with ` +
      `\`${REGENERATE}\` and commit the result`,
  );
});

t.test('the schema describes an object of version 1 that needs a site', async (t) => {
  t.equal(committed.type, 'object');
  t.same(committed.properties?.version, { type: 'number', const: 1 });
  t.same((committed as { required?: string[] }).required, ['version', 'site']);
  t.equal((committed as { additionalProperties?: boolean }).additionalProperties, false);
});

t.test('every top-level key of every example is a property of the schema', async (t) => {
  t.ok(exampleFiles.length >= 3, `found ${exampleFiles.join(', ')}`);
  const known = Object.keys(committed.properties ?? {});
  for (const file of exampleFiles) {
    const example = JSON.parse(readFileSync(new URL(file, CONFIG_DIR), 'utf8')) as object;
    const unknown = Object.keys(example).filter((key) => !known.includes(key));
    t.same(unknown, [], `${file} top-level keys`);
  }
});

t.test('every example follows the schema all the way down', async (t) => {
  for (const file of exampleFiles) {
    const example: unknown = JSON.parse(readFileSync(new URL(file, CONFIG_DIR), 'utf8'));
    t.same(departures(example, committed, file), [], file);
  }
});

t.test('the schema walk notices an unknown key, a bad pattern and a wrong version', async (t) => {
  const example = JSON.parse(readFileSync(new URL('site-a.json', CONFIG_DIR), 'utf8'));
  example.version = 2;
  example.transit.mtu = 1400;
  example.ipsec.connections[0].name = 'a to b';
  example.ipsec.connections[0].psk = { path: '/etc/x' };
  t.same(departures(example, committed, 'doc'), [
    'doc.version: is not 1',
    'doc.transit.mtu: not in the schema',
    'doc.ipsec.connections[0].name: fails ^[A-Za-z][A-Za-z0-9_-]{0,47}$',
    'doc.ipsec.connections[0].psk: matches no anyOf branch (doc.ipsec.connections[0].psk.path: ' +
      'not in the schema; doc.ipsec.connections[0].psk.path: not in the schema)',
  ]);
});

t.test('every pattern in the schema compiles as a Unicode regular expression', async (t) => {
  const patterns: string[] = [];
  const collect = (node: unknown): void => {
    if (node === null || typeof node !== 'object') return;
    const pattern = (node as JsonSchema).pattern;
    if (typeof pattern === 'string') patterns.push(pattern);
    Object.values(node).forEach(collect);
  };
  collect(committed);
  t.ok(patterns.length >= 10, `${patterns.length} patterns`);
  for (const pattern of patterns) t.doesNotThrow(() => new RegExp(pattern, 'u'), pattern);
});
