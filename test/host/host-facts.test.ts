/**
 * Host facts read from this very machine, checked against what Node itself reports.
 */
import { cpus, hostname, release, totalmem } from 'node:os';
import t from 'tap';
import { formatHostFacts, readHostFacts } from '../../agent/host/host-facts.js';

t.test('the facts of this machine agree with what Node sees', async (t) => {
  const facts = await readHostFacts();
  if (!facts) return t.fail('no host facts read');
  t.equal(facts.kernel, release());
  t.equal(facts.hostname, hostname());
  t.equal(facts.memoryBytes, totalmem());
  t.equal(facts.cpuCores, cpus().length);
  t.match(facts.os, /\S/, 'an operating system is named');
  t.match(formatHostFacts(facts), `kernel ${release()} `);
});
