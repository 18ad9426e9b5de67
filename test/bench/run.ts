/**
 * `npm run bench` / `npm run bench:quick`: runs the scale, daemon and recovery benchmarks (each
 * a script of its own in this folder, run as a child so a lab failure cannot take the others
 * down), then prints them as one table and writes it to bench-results/bench.json. Quotes
 * medians; states the machine. Fails only when a benchmark breaks, never on a number.
 *
 *   node --import tsx test/bench/run.ts [--quick]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { formatHostFacts, readHostFacts } from '../../agent/host/host-facts.js';
import { strongswanVersion } from '../lab/ipsec-lab.js';

const repo = path.resolve(import.meta.dirname, '..', '..');
const out = path.join(repo, 'bench-results');
const quick = process.argv.includes('--quick');
const BENCHES = ['scale', 'daemon-bench', 'recovery'] as const;

interface Row {
  area: string;
  item: string;
  value: string;
  goal: string;
}

function runBench(name: (typeof BENCHES)[number]): unknown {
  const jsonFile = path.join(out, `${name}.json`);
  rmSync(jsonFile, { force: true });
  const args = ['--import', 'tsx', path.join('test', 'bench', `${name}.ts`), '--json', jsonFile];
  if (quick) args.push('--quick');
  console.log(`\n=== ${name}${quick ? ' (quick)' : ''}`);
  const result = spawnSync(process.execPath, args, { cwd: repo, stdio: 'inherit' });
  if (result.status !== 0 || !existsSync(jsonFile)) throw new Error(`${name} failed (exit ${result.status})`);
  return JSON.parse(readFileSync(jsonFile, 'utf8'));
}

mkdirSync(out, { recursive: true });
const [scale, daemon, recovery] = BENCHES.map(runBench) as [any, any, any];
const rows: Row[] = [];
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

for (const result of recovery.results as any[]) {
  rows.push({
    area: 'recovery',
    item: `${result.fault} (${result.by})`,
    value: `median ${result.medianS.toFixed(2)} s, worst ${result.worstS.toFixed(2)} s`,
    goal: result.by === 'tunnelwarden run' && result.fault.startsWith('peer') ? '< 2 s median' : result.by === 'tunnelwarden run' ? '< 1 s (local drift)' : '',
  });
}
const ours = (recovery.results as any[]).find((r) => r.by === 'tunnelwarden run' && r.fault.startsWith('peer'));
for (const [by, goal] of [
  ['strongSwan alone, dpddelay 30 s', '>= 90x'],
  ['strongSwan alone, tuned hard', '>= 4x'],
] as const) {
  const theirs = (recovery.results as any[]).find((r) => r.by === by);
  if (ours && theirs) rows.push({ area: 'recovery', item: `ratio ${by} / tunnelwarden`, value: `${(theirs.medianS / ours.medianS).toFixed(1)}x`, goal });
}
rows.push({ area: 'reaction', item: 'desired-file write to change live in charon', value: `median ${s(daemon.writeToLiveMs.median)}`, goal: '< 1 s' });
rows.push({ area: 'cost', item: 'CPU per no-op pass', value: `${daemon.noopPass.cpuMs.toFixed(1)} ms (+${daemon.noopPass.commandsCpuMs.toFixed(1)} ms in commands)`, goal: '< 50 ms' });
rows.push({ area: 'cost', item: 'CPU per changing pass', value: `${daemon.changingPassCpuMs.toFixed(1)} ms`, goal: '' });
rows.push({
  area: 'cost',
  item: `idle over ${daemon.idle.windowS} s, ${daemon.connections} conns`,
  value: `RSS ${daemon.idle.rssMb.toFixed(1)} MB (max ${daemon.idle.maxRssMb.toFixed(1)}), CPU ${daemon.idle.cpuMs.toFixed(0)} ms (${daemon.idle.cpuPercent.toFixed(2)} %)`,
  goal: 'RSS < 80 MB',
});
for (const row of scale as any[]) {
  const previous = (scale as any[]).find((candidate) => candidate.item === row.item && candidate.size * 10 === row.size);
  const growth = previous ? `, x${(row.medianMs / previous.medianMs).toFixed(1)} for 10x` : '';
  const goal =
    row.item === 'plan + render' && row.size === 1000 ? '< 200 ms' : row.item === 'parse statusall' && row.size === 10_000 ? '< 100 ms' : '';
  rows.push({ area: 'scale', item: `${row.item}, ${row.size}`, value: `median ${row.medianMs.toFixed(2)} ms${growth}`, goal });
}

const facts = await readHostFacts();
const machine = `${facts ? formatHostFacts(facts) : 'host facts not readable'}, strongSwan ${strongswanVersion()}, node ${process.version}`;
const widths = [10, 74, 54];
console.log(`\n=== tunnelwarden benchmark${quick ? ' (quick: one round each, small sizes)' : ''}: ${machine}`);
console.log(['area', 'item', 'value', 'goal'].map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(''));
for (const row of rows) console.log([row.area, row.item, row.value, row.goal].map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(''));
writeFileSync(path.join(out, 'bench.json'), `${JSON.stringify({ machine, quick, rows }, null, 2)}\n`);
console.log(`\nwritten: ${path.join('bench-results', 'bench.json')}`);
