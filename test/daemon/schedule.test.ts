/** The periodic pass: intervals become cron expressions that repeat at exactly that interval. */
import t from 'tap';
import { validate } from 'node-cron';
import { cronExpressionFor } from '../../agent/daemon/schedule.js';

t.test('intervals that divide a minute, an hour or a day become cron expressions', async (t) => {
  const cases: [number, string][] = [
    [1, '* * * * * *'],
    [15, '*/15 * * * * *'],
    [30, '*/30 * * * * *'],
    [60, '0 * * * * *'],
    [300, '0 */5 * * * *'],
    [3600, '0 0 * * * *'],
    [7200, '0 0 */2 * * *'],
    [86400, '0 0 0 * * *'],
  ];
  for (const [seconds, expected] of cases) {
    const result = cronExpressionFor(seconds);
    t.same(result, { expression: expected }, `${seconds} s`);
    if ('expression' in result) t.ok(validate(result.expression), `node-cron accepts ${result.expression}`);
  }
});

t.test('intervals cron cannot repeat evenly are refused with the allowed forms named', async (t) => {
  for (const seconds of [0, -5, 1.5, 45, 90, 7 * 60, 5000, 172800]) {
    const result = cronExpressionFor(seconds);
    t.ok('error' in result, `${seconds} s refused`);
  }
  const result = cronExpressionFor(45);
  t.match('error' in result ? result.error : '', /divisor of 60 s/);
});
