/**
 * Scale benchmark (prints numbers, asserts nothing): for hub sites with N site-to-site
 * connections, the time to validate, plan and render the desired state, and to parse
 * `ipsec statusall` and `swanctl --list-sas` outputs of matching size, synthesised from the
 * real captures in test/fixtures (one IKE_SA with one CHILD_SA per connection; and a
 * 10,000-SA statusall). Medians of several rounds; the ratio column shows growth per 10x.
 *
 *   node --import tsx test/bench/scale.ts [--quick] [--json FILE]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadDesiredState } from '../../agent/model/load.js';
import { DEFAULT_PATHS } from '../../agent/model/paths.js';
import { parseStrokeStatus } from '../../agent/observe/parse/stroke.js';
import { parseSwanctlListSas } from '../../agent/observe/parse/swanctl.js';
import { planIpsec } from '../../agent/plan/ipsec.js';
import { renderIpsecConf, renderIpsecSecrets, secretFields } from '../../agent/plan/ipsec-render.js';

const repo = path.resolve(import.meta.dirname, '..', '..');
const fixtures = path.join(repo, 'test', 'fixtures', 'strongswan-5.9.8-libipsec');
const quick = process.argv.includes('--quick');
const jsonIndex = process.argv.indexOf('--json');
const jsonFile = jsonIndex > 0 ? process.argv[jsonIndex + 1] : undefined;
const sizes = quick ? [10, 100] : [10, 100, 1000];
const rounds = quick ? 1 : 7;

/** A hub's desired state with `count` spokes, each its own /24 pair. */
export function hubDesiredState(count: number): string {
  const connections = Array.from({ length: count }, (_, index) => ({
    name: `hub-to-s${index}`,
    local: { address: '172.16.0.1', subnets: ['10.0.0.0/16'] },
    remote: {
      address: `172.${17 + Math.floor(index / 250)}.${index % 250}.2`,
      subnets: [`10.${1 + Math.floor(index / 250)}.${index % 250}.0/24`],
    },
    psk: { value: `spoke-${index}-secret-0123456789` },
    initiate: true,
  }));
  return JSON.stringify({ version: 1, site: { name: 'hub', subnets: ['10.0.0.0/16'] }, ipsec: { connections } });
}

function ikeBlock(template: string, index: number): string {
  return template
    .replaceAll('a-to-b', `hub-to-s${index}`)
    .replaceAll('[1]', `[${index + 1}]`)
    .replaceAll('{1}', `{${index + 1}}`)
    .replaceAll('#1,', `#${index + 1},`);
}

/** `ipsec statusall` with `count` established conns, built from the real capture's lines. */
export function synthStatusall(count: number): string {
  const capture = readFileSync(path.join(fixtures, 'lab-stroke-statusall-established.txt'), 'utf8');
  const [head, rest] = capture.split('Connections:\n') as [string, string];
  const [connLines, saPart] = rest.split('Security Associations') as [string, string];
  const saLines = saPart.slice(saPart.indexOf('\n') + 1);
  const conns = Array.from({ length: count }, (_, i) => ikeBlock(connLines, i)).join('');
  const sas = Array.from({ length: count }, (_, i) => ikeBlock(saLines, i)).join('');
  return `${head}Connections:\n${conns}Security Associations (${count} up, 0 connecting):\n${sas}`;
}

/** `swanctl --list-sas` with `count` established SAs, from the real capture. */
export function synthListSas(count: number): string {
  const capture = readFileSync(path.join(fixtures, 'lab-swanctl-list-sas-established.txt'), 'utf8');
  return Array.from({ length: count }, (_, i) => ikeBlock(capture, i)).join('');
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function timeMs(work: () => unknown): number {
  const timings: number[] = [];
  for (let round = 0; round < rounds; round += 1) {
    const startedAt = performance.now();
    work();
    timings.push(performance.now() - startedAt);
  }
  return median(timings);
}

interface Row {
  item: string;
  size: number;
  medianMs: number;
}

const rows: Row[] = [];
for (const size of sizes) {
  const text = hubDesiredState(size);
  const loaded = loadDesiredState(text);
  if (!loaded.ok) throw new Error(`generated state invalid: ${JSON.stringify(loaded.errors.slice(0, 3))}`);
  const state = loaded.state;
  const secrets = new Map(secretFields(state).map(({ path: key, secret }) => [key, 'value' in secret ? secret.value : '']));
  const statusall = synthStatusall(size);
  const listSas = synthListSas(size);
  const observedStatus = parseStrokeStatus(statusall);
  if (parseStrokeStatus(statusall).ikeSas.length !== size) throw new Error('synthesised statusall parses wrong');
  if (parseSwanctlListSas(listSas).length !== size) throw new Error('synthesised list-sas parses wrong');

  rows.push({ item: 'validate', size, medianMs: timeMs(() => loadDesiredState(text)) });
  rows.push({
    item: 'plan + render',
    size,
    medianMs: timeMs(() => {
      const conf = renderIpsecConf(state);
      renderIpsecSecrets(state, secrets);
      planIpsec({
        desired: state,
        observed: {
          installed: true,
          ourConf: undefined,
          ourSecretsSha256: undefined,
          ourSecretsMode: undefined,
          ipsecConfIncludesOurs: true,
          ipsecSecretsIncludesOurs: true,
          charonRunning: true,
          status: observedStatus,
        },
        paths: DEFAULT_PATHS,
        renderedConf: conf,
        renderedSecretsSha256: '0'.repeat(64),
        renderedSecretsEntries: size,
      });
    }),
  });
  rows.push({ item: 'parse statusall', size, medianMs: timeMs(() => parseStrokeStatus(statusall)) });
  rows.push({ item: 'parse list-sas', size, medianMs: timeMs(() => parseSwanctlListSas(listSas)) });
}
const big = quick ? 1000 : 10_000;
const bigStatus = synthStatusall(big);
rows.push({ item: 'parse statusall', size: big, medianMs: timeMs(() => parseStrokeStatus(bigStatus)) });

const line = (cells: string[]) => console.log(cells.map((cell, i) => (i === 0 ? cell.padEnd(18) : cell.padStart(12))).join(''));
console.log(`scale benchmark (${quick ? 'quick: 1 round, small sizes' : `median of ${rounds} rounds`}), node ${process.version}`);
line(['item', 'size', 'median ms', 'x prev size']);
for (const row of rows) {
  const previous = rows.find((candidate) => candidate.item === row.item && candidate.size * 10 === row.size);
  const ratio = previous ? (row.medianMs / previous.medianMs).toFixed(1) : '';
  line([row.item, String(row.size), row.medianMs.toFixed(2), ratio]);
}
if (jsonFile) writeFileSync(jsonFile, `${JSON.stringify(rows, null, 2)}\n`);
