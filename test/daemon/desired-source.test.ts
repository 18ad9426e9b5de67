/**
 * The daemon's desired state: a valid file is enforced; a missing, half-written or invalid
 * file logs every error with its file and JSON path (once per content) while the last valid
 * state stays enforced; a restarted daemon falls back to the saved copy.
 */
import t from 'tap';
import { createDesiredSource, withoutQuotedText } from '../../agent/daemon/desired-source.js';
import { sha256 } from '../../agent/host/files.js';
import { collectingLogger, desiredText, memoryFiles } from './helpers.js';

const FILE = '/etc/tunnelwarden/desired.json';
const SAVED = '/var/lib/tunnelwarden/last-valid-desired.json';

t.test('a valid file is enforced and saved 0600', async (t) => {
  const files = memoryFiles({ [FILE]: desiredText(1) });
  const { logger, entries } = collectingLogger();
  const source = createDesiredSource({ path: FILE, savedCopyPath: SAVED, files: files.store, logger });
  const snapshot = await source.load();
  t.ok(snapshot.fileValid);
  t.equal(snapshot.state?.ipsec?.connections[0]?.remote.subnets[0], '10.2.0.0/16');
  t.equal(snapshot.sha256, sha256(desiredText(1)));
  t.equal(files.contents.get(SAVED), desiredText(1));
  t.equal(files.modes.get(SAVED), 0o600);
  t.ok(entries().some((entry) => entry.msg === 'desired state loaded' && entry.file === FILE));
});

t.test('an invalid edit logs every error with path and keeps the last valid state', async (t) => {
  const files = memoryFiles({ [FILE]: desiredText(1) });
  const { logger, entries } = collectingLogger();
  const source = createDesiredSource({ path: FILE, files: files.store, logger });
  const valid = await source.load();
  const broken = JSON.parse(desiredText(1));
  broken.ipsec.connections[0].remote.subnets = ['10.1.0.0/33'];
  broken.ipsec.connections[0].local.address = '172.16.0.300';
  files.contents.set(FILE, JSON.stringify(broken));

  const snapshot = await source.load();
  t.notOk(snapshot.fileValid);
  t.equal(snapshot.state, valid.state, 'the last valid state is still enforced');
  t.match(snapshot.problem, /invalid \(\d+ errors?\)/);
  const errors = entries().filter((entry) => entry.msg === 'desired state error');
  t.ok(errors.length >= 2, 'each error has its own line');
  t.ok(errors.every((entry) => entry.file === FILE && entry.priority === 3), 'with the file, at error priority');
  t.ok(errors.some((entry) => entry.field === 'ipsec.connections[0].local.address'));
  t.ok(errors.some((entry) => entry.field === 'ipsec.connections[0].remote.subnets[0]'));
  const summary = entries().find((entry) => entry.msg === 'desired state invalid; last valid state kept');
  t.equal(summary?.enforcing, valid.sha256?.slice(0, 12));

  const before = entries().length;
  await source.load();
  const again = entries().slice(before);
  t.same(again.map((entry) => entry.msg), ['desired state still invalid'], 'the same bad content: one reminder');
  t.equal(again[0]?.priority, 4);
});

t.test('a half-written file is invalid JSON, and no stretch of its text reaches the log', async (t) => {
  const inlineSecret = 'half-written-secret-XYZ';
  const files = memoryFiles({ [FILE]: desiredText(1) });
  const { logger, lines } = collectingLogger();
  const source = createDesiredSource({ path: FILE, files: files.store, logger });
  const valid = await source.load();
  const full = desiredText(2, inlineSecret);
  const cut = full.slice(0, full.indexOf(inlineSecret) + 8);
  for (const text of [cut, `${cut}" x}`, full.replace(`"${inlineSecret}"`, `${inlineSecret}`)]) {
    files.contents.set(FILE, text);
    const snapshot = await source.load();
    t.notOk(snapshot.fileValid);
    t.equal(snapshot.state, valid.state);
  }
  t.notMatch(lines.join('\n'), inlineSecret.slice(0, 8), 'no part of the secret in any line');
  t.match(lines.join('\n'), /is not JSON/);
});

t.test('V8 JSON messages lose their quoted stretch of text', async (t) => {
  t.equal(
    withoutQuotedText('is not JSON: Unexpected token \'s\', "{"a": secret}" is not valid JSON'),
    'is not JSON: unexpected character (text not shown)',
  );
  t.equal(
    withoutQuotedText('is not JSON: Unexpected token \'h\', ..." "value": half-writt"... is not valid JSON'),
    'is not JSON: unexpected character (text not shown)',
  );
  t.equal(withoutQuotedText('is not JSON: Unterminated string in JSON at position 30'), 'is not JSON: Unterminated string in JSON at position 30');
});

t.test('a missing file keeps the last valid state and is logged once, then reminded', async (t) => {
  const files = memoryFiles({ [FILE]: desiredText(1) });
  const { logger, entries } = collectingLogger();
  const source = createDesiredSource({ path: FILE, files: files.store, logger });
  const valid = await source.load();
  files.contents.delete(FILE);
  const snapshot = await source.load();
  await source.load();
  t.equal(snapshot.state, valid.state);
  t.equal(snapshot.problem, 'cannot read: no such file');
  const messages = entries().map((entry) => entry.msg);
  t.ok(messages.includes('desired state unreadable; last valid state kept'));
  t.ok(messages.includes('desired state still unreadable'));
});

t.test('a restart facing a broken file enforces the saved copy of the last valid state', async (t) => {
  const files = memoryFiles({ [FILE]: '{"version": 1, "site": ', [SAVED]: desiredText(3) });
  const { logger, entries } = collectingLogger();
  const source = createDesiredSource({ path: FILE, savedCopyPath: SAVED, files: files.store, logger });
  const snapshot = await source.load();
  t.notOk(snapshot.fileValid);
  t.equal(snapshot.state?.ipsec?.connections[0]?.remote.subnets[0], '10.4.0.0/16');
  t.ok(entries().some((entry) => entry.msg === 'enforcing the last valid desired state saved by an earlier run'));
});

t.test('with neither a valid file nor a saved copy there is nothing to enforce', async (t) => {
  const files = memoryFiles({});
  const { logger } = collectingLogger();
  const source = createDesiredSource({ path: FILE, savedCopyPath: SAVED, files: files.store, logger });
  const snapshot = await source.load();
  t.equal(snapshot.state, undefined);
  t.notOk(snapshot.fileValid);
});
