/**
 * What `validate` checks beyond the document itself: the secret files it names (when they
 * are on this host), and telling a JSON Schema file apart from a desired state, so that
 * `validate config/*.json` passes over the committed schema instead of failing on it.
 */
import { readFile } from 'node:fs/promises';
import { formatFinding } from '../model/load.js';
import type { DesiredState } from '../model/schema.js';
import { hostFiles } from '../host/files.js';
import { resolveSecrets } from '../host/secrets.js';

/** True when the file is a JSON Schema document (its `$schema` names a json-schema.org draft). */
export async function isJsonSchemaDocument(file: string): Promise<boolean> {
  try {
    const document = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    return (
      typeof document === 'object' &&
      document !== null &&
      typeof document.$schema === 'string' &&
      /^https?:\/\/json-schema\.org\//.test(document.$schema) &&
      !('version' in document)
    );
  } catch {
    return false;
  }
}

/**
 * Reads the secret files the state names. A missing file is a note (validate also runs off the
 * host) unless `required`; an unreadable or unusable one is an error. Never prints a secret.
 * Returns false when there was an error.
 */
export async function validateSecretFiles(
  file: string,
  state: DesiredState,
  required: boolean,
  err: (line: string) => void,
): Promise<boolean> {
  const resolution = await resolveSecrets(state, hostFiles);
  const findings = resolution.ok ? resolution.warnings : resolution.errors;
  let errors = 0;
  for (const finding of findings) {
    if (finding.severity === 'error' && !required && finding.message.endsWith('does not exist')) {
      err(`${file}: note: ${formatFinding(finding).replace(/^error: /, '')} (not checked here; --host-checks requires it)`);
      continue;
    }
    if (finding.severity === 'error') errors += 1;
    err(`${file}: ${formatFinding(finding)}`);
  }
  if (errors > 0) err(`${file}: invalid (${errors} error${errors === 1 ? '' : 's'} in secret files)`);
  return errors === 0;
}
