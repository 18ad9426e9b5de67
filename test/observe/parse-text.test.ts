import t from 'tap';
import {
  parseCount,
  parseDurationSeconds,
  splitEndpoints,
  splitLines,
  splitWords,
  withoutUndefined,
} from '../../agent/observe/parse/text.js';
import { toChildSaState, toIkeSaState } from '../../agent/observe/parse/states.js';

t.test('durations in the forms strongSwan prints convert to whole seconds', async (t) => {
  t.equal(parseDurationSeconds('68s'), 68);
  t.equal(parseDurationSeconds('59 seconds'), 59);
  t.equal(parseDurationSeconds('3 minutes'), 180);
  t.equal(parseDurationSeconds('2 hours'), 7200);
  t.equal(parseDurationSeconds('3 days'), 259_200);
  t.equal(parseDurationSeconds('1 second'), 1);
  t.equal(parseDurationSeconds('1 day'), 86_400);
});

t.test('anything else is not a duration', async (t) => {
  for (const text of [
    undefined,
    '',
    's',
    '3',
    '3 fortnights',
    '-3 minutes',
    '3  minutes',
    '3 Minutes',
    '3 constructor',
    '3 minutes ago',
  ]) {
    t.equal(parseDurationSeconds(text), undefined, JSON.stringify(text));
  }
  t.equal(parseDurationSeconds(`${'9'.repeat(15)} days`), undefined, 'beyond safe integers');
});

t.test('counts are non-negative safe integers or nothing', async (t) => {
  t.equal(parseCount('0'), 0);
  t.equal(parseCount('336'), 336);
  t.equal(parseCount(String(Number.MAX_SAFE_INTEGER)), Number.MAX_SAFE_INTEGER);
  t.equal(parseCount('9007199254740993'), undefined, 'would round');
  for (const text of [undefined, '', '-1', '1.5', '0x10', ' 1', '1e3']) {
    t.equal(parseCount(text), undefined, JSON.stringify(text));
  }
});

t.test('lines split at LF, CRLF and a lone CR', async (t) => {
  t.strictSame(splitLines('a\nb\r\nc\rd'), ['a', 'b', 'c', 'd']);
  t.strictSame(splitLines(''), []);
  t.strictSame(splitLines(undefined), []);
  t.strictSame(splitLines(42), []);
});

t.test('word lists split on any run of blanks and drop empties', async (t) => {
  t.strictSame(splitWords(' 10.1.0.0/16  10.5.0.0/24\t'), ['10.1.0.0/16', '10.5.0.0/24']);
  t.strictSame(splitWords('   '), []);
});

t.test('endpoint pairs split at the first "..." not followed by another dot', async (t) => {
  t.strictSame(splitEndpoints('172.16.0.18...172.16.0.2'), {
    left: '172.16.0.18',
    right: '172.16.0.2',
  });
  t.strictSame(splitEndpoints('2001:db8::...fd00::'), { left: '2001:db8::', right: 'fd00::' });
  t.strictSame(splitEndpoints('vpn.example.com....%any'), {
    left: 'vpn.example.com.',
    right: '%any',
  });
  t.strictSame(splitEndpoints('%any...%any'), { left: '%any', right: '%any' });
  t.equal(splitEndpoints('172.16.0.18..172.16.0.2'), undefined);
});

t.test('withoutUndefined drops exactly the undefined keys', async (t) => {
  t.strictSame(withoutUndefined({ a: 1, b: undefined, c: 0, d: '', e: null }), {
    a: 1,
    c: 0,
    d: '',
    e: null,
  });
});

t.test('state words map to their state, anything else to UNKNOWN', async (t) => {
  t.equal(toIkeSaState('ESTABLISHED'), 'ESTABLISHED');
  t.equal(toIkeSaState('INSTALLED'), 'UNKNOWN', 'a CHILD_SA state is not an IKE_SA state');
  t.equal(toIkeSaState('constructor'), 'UNKNOWN');
  t.equal(toChildSaState('REKEYED'), 'REKEYED');
  t.equal(toChildSaState('ESTABLISHED'), 'UNKNOWN');
  t.equal(toChildSaState(undefined), 'UNKNOWN');
});
