/** Shared pieces of the daemon tests: an in-memory file store and a log line collector. */
import type { FileStore } from '../../agent/host/files.js';
import { createLogger, type LogLevel } from '../../agent/log.js';

/** A FileStore over a Map, recording writes with their modes. */
export function memoryFiles(initial: Record<string, string> = {}) {
  const contents = new Map<string, string>(Object.entries(initial));
  const modes = new Map<string, number>();
  const store: FileStore = {
    async read(path) {
      return contents.get(path);
    },
    async mode(path) {
      return contents.has(path) ? (modes.get(path) ?? 0o644) : undefined;
    },
    async write(path, content, mode) {
      contents.set(path, content);
      modes.set(path, mode);
    },
  };
  return { store, contents, modes };
}

/** A JSON logger whose lines (parsed, prefix kept aside) the test can read. */
export function collectingLogger(level: LogLevel = 'debug') {
  const lines: string[] = [];
  const logger = createLogger({
    level,
    journald: (text) => lines.push(...text.split('\n').filter(Boolean)),
  });
  const entries = () =>
    lines.map((line) => ({ priority: Number(line.slice(1, 2)), ...JSON.parse(line.slice(3)) }) as Record<string, any>);
  return { logger, lines, entries };
}

/** A minimal valid desired state with one site-to-site conn; `n` varies its subnet. */
export function desiredText(n = 1, psk = 'fixture-psk-Zq8#v1 with spaces'): string {
  return `${JSON.stringify(
    {
      version: 1,
      site: { name: 'site-a', subnets: ['10.1.0.0/16'] },
      ipsec: {
        connections: [
          {
            name: 'a-to-b',
            local: { address: '172.16.0.18', subnets: ['10.1.0.0/16'] },
            remote: { address: '172.16.0.2', subnets: [`10.${n + 1}.0.0/16`] },
            psk: { value: psk },
            initiate: true,
          },
        ],
      },
    },
    null,
    2,
  )}\n`;
}
