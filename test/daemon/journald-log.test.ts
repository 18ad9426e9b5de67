/**
 * The daemon's log lines: JSON with a journald priority prefix per level (so journalctl -p
 * selects by level), secrets redacted, and the CLI's logger unchanged (plain JSON).
 */
import { Writable } from 'node:stream';
import t from 'tap';
import { createLogger, journaldPriority } from '../../agent/log.js';

function collect() {
  const lines: string[] = [];
  return { lines, write: (text: string) => lines.push(...text.split('\n').filter(Boolean)) };
}

t.test('each level gets the journald priority prefix systemd expects', async (t) => {
  const sink = collect();
  const logger = createLogger({ level: 'trace', journald: sink.write });
  logger.trace('trace line');
  logger.debug('debug line');
  logger.info('info line');
  logger.warn('warn line');
  logger.error('error line');
  logger.fatal('fatal line');
  t.same(
    sink.lines.map((line) => line.slice(0, 3)),
    ['<7>', '<7>', '<6>', '<4>', '<3>', '<2>'],
  );
  for (const line of sink.lines) {
    const parsed = JSON.parse(line.slice(3));
    t.equal(parsed.name, 'tunnelwarden', 'the rest of the line is the JSON object');
  }
});

t.test('a child logger keeps the prefix of each line it writes', async (t) => {
  const sink = collect();
  const logger = createLogger({ level: 'debug', journald: sink.write }).child({ pass: 7 });
  logger.warn({ resource: 'ipsec', reason: 'x' }, 'pass retry scheduled');
  logger.debug({ resource: 'ipsec' }, 'command ran');
  t.equal(sink.lines[0]?.slice(0, 3), '<4>');
  t.equal(sink.lines[1]?.slice(0, 3), '<7>');
  t.equal(JSON.parse(sink.lines[0]!.slice(3)).pass, 7);
});

t.test('the priority mapping follows syslog severities', async (t) => {
  t.equal(journaldPriority(60), 2);
  t.equal(journaldPriority(50), 3);
  t.equal(journaldPriority(40), 4);
  t.equal(journaldPriority(30), 6);
  t.equal(journaldPriority(20), 7);
  t.equal(journaldPriority(10), 7);
});

t.test('secret fields are redacted in daemon lines', async (t) => {
  const sink = collect();
  const logger = createLogger({ level: 'info', journald: sink.write });
  logger.info({ psk: 'fixture-psk-value', conn: { password: 'fixture-eap-password' } }, 'x');
  t.notMatch(sink.lines.join('\n'), /fixture-psk-value|fixture-eap-password/);
  t.match(sink.lines[0], /\[redacted\]/);
});

t.test('the CLI logger still writes plain JSON lines without a prefix', async (t) => {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      chunks.push(String(chunk));
      callback();
    },
  });
  const logger = createLogger({ level: 'info', destination });
  logger.warn('plain');
  t.equal(chunks.length, 1);
  t.equal(JSON.parse(chunks[0]!).msg, 'plain');
});
