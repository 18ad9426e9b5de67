/** `tunnelwarden run` refuses a schedule it cannot keep before anything starts. */
import t from 'tap';
import { main } from '../../agent/cli/main.js';

t.test('an interval cron cannot repeat evenly is a usage error (exit 2) naming the option', async (t) => {
  const written: string[] = [];
  const original = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string) => {
    written.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  let code: number;
  try {
    code = await main(['run', '--config', '/nonexistent/desired.json', '--interval-seconds', '45']);
  } finally {
    process.stderr.write = original;
  }
  t.equal(code, 2);
  t.match(written.join(''), /--interval-seconds: a pass every 45 s cannot be scheduled evenly/);
});
