/** `tunnelwarden run` refuses a schedule it cannot keep before anything starts. */
import t from 'tap';
import { main } from '../../agent/cli/main.js';

/** Runs the CLI with `args`; returns its exit code and what it wrote on stderr. */
async function runCli(args: string[]): Promise<{ code: number; stderr: string }> {
  const written: string[] = [];
  const original = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string) => {
    written.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await main(args), stderr: written.join('') };
  } finally {
    process.stderr.write = original;
  }
}

t.test('an interval cron cannot repeat evenly is a usage error (exit 2) naming the option', async (t) => {
  const { code, stderr } = await runCli(['run', '--config', '/nonexistent/desired.json', '--interval-seconds', '45']);
  t.equal(code, 2);
  t.match(stderr, /--interval-seconds: a pass every 45 s cannot be scheduled evenly/);
});

t.test('an interval that is not a whole number is a usage error quoting what was given', async (t) => {
  for (const given of ['abc', '1.5', '-5', '']) {
    const { code, stderr } = await runCli(['run', '--config', '/nonexistent/desired.json', '--interval-seconds', given]);
    t.equal(code, 2, given);
    t.match(stderr, `--interval-seconds: "${given}" is not a whole number of seconds`);
  }
});
