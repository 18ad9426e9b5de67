/**
 * The desired-state watcher against a real temporary directory: every way a file gets
 * replaced (write in place, rename-over save, delete and recreate, a ConfigMap `..data`
 * symlink swap) reports the new content once; identical content reports nothing; a burst of
 * 100 edits within a second ends with the last content after few reads.
 */
import { mkdtemp, readFile, rename, rm, symlink, unlink, writeFile, mkdir, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { watchDesiredFile } from '../../agent/daemon/file-watcher.js';
import { sha256 } from '../../agent/host/files.js';
import { createLogger } from '../../agent/log.js';

const logger = createLogger({ level: 'silent' });
const WAIT_LIMIT_MS = 5_000;

async function waitUntil(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_LIMIT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${WAIT_LIMIT_MS} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Waits until the watcher has made no read for longer than its debounce cap (500 ms), so a test
 * can claim that nothing more was reported. Bounded by WAIT_LIMIT_MS.
 */
async function quiet(watcherReads: () => number): Promise<void> {
  const quietMs = 700;
  let reads = watcherReads();
  let since = Date.now();
  await waitUntil('the watcher to go quiet', () => {
    if (watcherReads() !== reads) {
      reads = watcherReads();
      since = Date.now();
    }
    return Date.now() - since > quietMs;
  });
}

async function watched(t: { teardown: (fn: () => unknown) => void }, layout: (dir: string) => Promise<string>) {
  const dir = await mkdtemp(path.join(tmpdir(), 'tw-watch-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = await layout(dir);
  const changes: string[] = [];
  const watcher = watchDesiredFile({ path: file, onChange: (hash) => changes.push(hash), logger });
  t.teardown(() => watcher.close());
  await watcher.ready;
  return { dir, file, changes, watcher };
}

const plainFile = async (dir: string) => {
  const file = path.join(dir, 'desired.json');
  await writeFile(file, '{"version": 1, "n": 0}\n');
  return file;
};

t.test('a write in place is reported with the new content hash', async (t) => {
  const { file, changes } = await watched(t, plainFile);
  await writeFile(file, '{"version": 1, "n": 1}\n');
  await waitUntil('change reported', () => changes.length === 1);
  t.same(changes, [sha256('{"version": 1, "n": 1}\n')]);
});

t.test('an editor rename-over save is reported', async (t) => {
  const { dir, file, changes } = await watched(t, plainFile);
  const temporary = path.join(dir, '.desired.json.tmp123');
  await writeFile(temporary, '{"version": 1, "n": 2}\n');
  await rename(temporary, file);
  await waitUntil('change reported', () => changes.length >= 1);
  t.equal(changes.at(-1), sha256('{"version": 1, "n": 2}\n'));
});

t.test('delete then recreate reports the deletion and the new content', async (t) => {
  const { file, changes, watcher } = await watched(t, plainFile);
  await unlink(file);
  await waitUntil('deletion reported', () => changes.length === 1);
  t.match(changes[0], /^missing:ENOENT$/);
  await writeFile(file, '{"version": 1, "n": 3}\n');
  await waitUntil('recreation reported', () => changes.length === 2);
  t.equal(changes[1], sha256('{"version": 1, "n": 3}\n'));
  await quiet(() => watcher.reads);
  t.equal(changes.length, 2, 'nothing more');
});

t.test('a Kubernetes ConfigMap ..data symlink swap is reported', async (t) => {
  const { dir, file, changes } = await watched(t, async (dir) => {
    await mkdir(path.join(dir, '..2026_01_01_00_00_00.1'));
    await writeFile(path.join(dir, '..2026_01_01_00_00_00.1', 'desired.json'), '{"version": 1, "n": 4}\n');
    await symlink('..2026_01_01_00_00_00.1', path.join(dir, '..data'));
    await symlink('..data/desired.json', path.join(dir, 'desired.json'));
    return path.join(dir, 'desired.json');
  });
  t.equal(await readFile(file, 'utf8'), '{"version": 1, "n": 4}\n', 'layout as kubelet makes it');
  // kubelet's swap: a new timestamped dir, a new symlink beside ..data, renamed over it.
  await mkdir(path.join(dir, '..2026_01_01_00_01_00.2'));
  await writeFile(path.join(dir, '..2026_01_01_00_01_00.2', 'desired.json'), '{"version": 1, "n": 5}\n');
  await symlink('..2026_01_01_00_01_00.2', path.join(dir, '..data_tmp'));
  await rename(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  await rm(path.join(dir, '..2026_01_01_00_00_00.1'), { recursive: true });
  await waitUntil('swap reported', () => changes.length >= 1);
  t.equal(changes.at(-1), sha256('{"version": 1, "n": 5}\n'));
});

t.test('identical content (a touch, a save without edits) reports nothing', async (t) => {
  const { file, changes, watcher } = await watched(t, plainFile);
  const readsBefore = watcher.reads;
  await utimes(file, new Date(), new Date());
  await writeFile(file, '{"version": 1, "n": 0}\n');
  await waitUntil('the file was looked at', () => watcher.reads > readsBefore);
  await quiet(() => watcher.reads);
  t.same(changes, []);
});

t.test('100 edits within a second end with the last content after few reads', async (t) => {
  const { file, changes, watcher } = await watched(t, plainFile);
  const startedAt = Date.now();
  for (let n = 1; n <= 100; n += 1) {
    await writeFile(file, `{"version": 1, "n": ${n}}\n`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const spentMs = Date.now() - startedAt;
  t.ok(spentMs < 1_500, `the edits took ${spentMs} ms`);
  const last = sha256('{"version": 1, "n": 100}\n');
  await waitUntil('last content reported', () => changes.at(-1) === last);
  await quiet(() => watcher.reads);
  t.equal(changes.at(-1), last, 'the last report is the last content');
  t.ok(changes.length <= 10, `few reports (${changes.length}) for 100 edits`);
  t.ok(watcher.reads <= 12, `few reads (${watcher.reads}) for 100 edits`);
});
