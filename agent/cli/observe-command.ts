/**
 * `tunnelwarden observe`: the strongSwan and kernel IPsec state as tunnelwarden sees it, as
 * JSON. With file flags it parses captured outputs instead of running commands, so a user can
 * attach outputs to a report and anyone can replay them. xfrm output is parsed with its keys
 * dropped; raw output is never printed.
 */
import { readFile } from 'node:fs/promises';
import { ErrorCode, TunnelwardenError } from '../errors.js';
import type { CommandRunner } from '../host/exec.js';
import { parseStrokeStatus } from '../observe/parse/stroke.js';
import { parseSwanctlListSas } from '../observe/parse/swanctl.js';
import { parseXfrmPolicy, parseXfrmState } from '../observe/parse/xfrm.js';

/** Each source: its flag, the command that produces it, and its parser. */
export const OBSERVE_SOURCES = [
  { key: 'ipsecStatus', flag: '--ipsec-status', argv: ['ipsec', 'status'], parse: parseStrokeStatus },
  { key: 'ipsecStatusall', flag: '--ipsec-statusall', argv: ['ipsec', 'statusall'], parse: parseStrokeStatus },
  { key: 'swanctlListSas', flag: '--swanctl-list-sas', argv: ['swanctl', '--list-sas'], parse: parseSwanctlListSas },
  { key: 'xfrmState', flag: '--xfrm-state', argv: ['ip', 'xfrm', 'state'], parse: parseXfrmState },
  { key: 'xfrmPolicy', flag: '--xfrm-policy', argv: ['ip', 'xfrm', 'policy'], parse: parseXfrmPolicy },
] as const;

export type ObserveFiles = Partial<Record<(typeof OBSERVE_SOURCES)[number]['key'], string>>;

/**
 * Parses the given files; with none given, runs every source's command (a command that is
 * missing or fails is reported under `unavailable`, not thrown).
 */
export async function observeForReport(files: ObserveFiles, run: CommandRunner): Promise<Record<string, unknown>> {
  const fromFiles = OBSERVE_SOURCES.some((source) => files[source.key] !== undefined);
  const report: Record<string, unknown> = {};
  const unavailable: Record<string, string> = {};
  for (const source of OBSERVE_SOURCES) {
    let text: string | undefined;
    if (fromFiles) {
      const file = files[source.key];
      if (file === undefined) continue;
      try {
        text = await readFile(file, 'utf8');
      } catch (thrown) {
        const reason = (thrown as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (thrown as Error).message;
        throw new TunnelwardenError('invalid-config', ErrorCode.inputFileUnreadable, `${file}: cannot read: ${reason}`);
      }
    } else {
      try {
        const result = await run(source.argv, { allowFailure: true });
        if (result.exitCode !== 0) {
          unavailable[source.key] = `${source.argv.join(' ')} exited with ${result.exitCode}`;
          continue;
        }
        text = result.stdout;
      } catch (thrown) {
        unavailable[source.key] = (thrown as Error).message;
        continue;
      }
    }
    report[source.key] = source.parse(text);
  }
  if (Object.keys(unavailable).length > 0) report.unavailable = unavailable;
  return report;
}
