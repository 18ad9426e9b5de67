/**
 * Resolves the secrets a desired state refers to: inline values as they are, `{file}` secrets
 * read from disk (one trailing newline dropped). Problems come back as findings with the JSON
 * path of the field, never with the secret's value.
 */
import type { Finding } from '../model/checks.js';
import { secretProblems, type DesiredState } from '../model/schema.js';
import { secretFields, type ResolvedSecrets } from '../plan/ipsec-render.js';
import type { FileStore } from './files.js';

export type SecretResolution =
  | { ok: true; secrets: ResolvedSecrets; warnings: Finding[] }
  | { ok: false; errors: Finding[] };

function pathParts(path: string): (string | number)[] {
  return path
    .replace(/\[(\d+)\]/g, '.$1')
    .split('.')
    .map((part) => (/^\d+$/.test(part) ? Number(part) : part));
}

/** Reads every secret of the state. Never throws for a missing or bad file: it reports it. */
export async function resolveSecrets(state: DesiredState, files: FileStore): Promise<SecretResolution> {
  const secrets = new Map<string, string>();
  const errors: Finding[] = [];
  const warnings: Finding[] = [];

  for (const { path, secret } of secretFields(state)) {
    if ('value' in secret) {
      secrets.set(path, secret.value);
      continue;
    }
    const filePath = [...pathParts(path), 'file'];
    let text: string | undefined;
    try {
      text = await files.read(secret.file);
    } catch (thrown) {
      const reason = (thrown as NodeJS.ErrnoException).code ?? (thrown as Error).message;
      errors.push({ severity: 'error', path: filePath, message: `cannot read ${secret.file}: ${reason}` });
      continue;
    }
    if (text === undefined) {
      errors.push({ severity: 'error', path: filePath, message: `${secret.file} does not exist` });
      continue;
    }
    const value = text.replace(/\r?\n$/, '');
    const problems = secretProblems(value);
    for (const problem of problems) {
      errors.push({ severity: 'error', path: filePath, message: `the secret in ${secret.file} ${problem}` });
    }
    if (problems.length > 0) continue;
    const mode = await files.mode(secret.file);
    if (mode !== undefined && (mode & 0o077) !== 0) {
      warnings.push({
        severity: 'warning',
        path: filePath,
        message: `${secret.file} is readable by others (mode ${mode.toString(8)}); chmod 600 it`,
      });
    }
    secrets.set(path, value);
  }

  return errors.length > 0 ? { ok: false, errors } : { ok: true, secrets, warnings };
}
