/**
 * Turns the text of a desired-state file into a validated, frozen DesiredState, or into the
 * complete list of what is wrong with it (every error with its JSON path), never a partial
 * state. Pure: the caller reads the file.
 */
import type { z } from 'zod';
import { checkDesiredState, formatPath, type Finding, type JsonPath } from './checks.js';
import { desiredStateSchema, type DesiredState } from './schema.js';

export type LoadResult =
  | { ok: true; state: DesiredState; warnings: Finding[] }
  | { ok: false; errors: Finding[]; warnings: Finding[] };

/** Parses and validates desired-state JSON text. Never throws. */
export function loadDesiredState(text: string): LoadResult {
  if (text.trim() === '') {
    return { ok: false, errors: [{ severity: 'error', path: [], message: 'is empty' }], warnings: [] };
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (thrown) {
    return {
      ok: false,
      errors: [{ severity: 'error', path: [], message: `is not JSON: ${jsonErrorWithoutText(text, thrown)}` }],
      warnings: [],
    };
  }
  return validateDesiredState(document);
}

/**
 * Why JSON.parse failed, with a line and column but never a stretch of the file: V8 quotes
 * the input in some messages ("Unexpected token 's', "{"psk": s..." is not valid JSON"), and
 * the input may hold a secret.
 */
function jsonErrorWithoutText(text: string, thrown: unknown): string {
  const message = thrown instanceof Error ? thrown.message : String(thrown);
  // Keep only the words before any quote of the input or position: "Unexpected token 's'",
  // "Unterminated string", "Expected property name or '}'".
  const reason = (message.split(/ in JSON|, "|"/)[0] ?? 'invalid JSON').trim();
  const position = /at position (\d+)/.exec(message)?.[1];
  const token = /^Unexpected token '(.)'/.exec(message)?.[1];
  let offset = position !== undefined ? Number(position) : undefined;
  if (offset === undefined && token !== undefined) {
    offset = firstOffsetOutsideStrings(text, token);
  }
  if (offset === undefined) return reason;
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - before.lastIndexOf('\n');
  return `${reason.replace(/^Unexpected token '.'/, 'unexpected character')} at line ${line}, column ${column}`;
}

/** Offset of the first `character` outside a JSON string literal, if any. */
function firstOffsetOutsideStrings(text: string, character: string): number | undefined {
  let inString = false;
  for (let index = 0; index < text.length; index += 1) {
    const current = text[index];
    if (inString) {
      if (current === '\\') index += 1;
      else if (current === '"') inString = false;
    } else if (current === '"') {
      inString = true;
    } else if (current === character) {
      return index;
    }
  }
  return undefined;
}

/** Validates an already-parsed document. Never throws. */
export function validateDesiredState(document: unknown): LoadResult {
  const parsed = desiredStateSchema.safeParse(document);
  if (!parsed.success) {
    return { ok: false, errors: zodFindings(parsed.error.issues, []), warnings: [] };
  }
  const findings = checkDesiredState(parsed.data);
  const errors = findings.filter((finding) => finding.severity === 'error');
  const warnings = findings.filter((finding) => finding.severity === 'warning');
  if (errors.length > 0) return { ok: false, errors, warnings };
  return { ok: true, state: deepFreeze(parsed.data), warnings };
}

/** One line per finding: `error: ipsec.connections[0].psk: contains a double quote ...`. */
export function formatFinding(finding: Finding): string {
  return `${finding.severity}: ${formatPath(finding.path)}: ${finding.message}`;
}

type ZodIssue = z.core.$ZodIssue;

/**
 * Flattens zod issues into findings. A failed union ("a secret is {value} or {file}") is
 * reported through the branch that came closest, so the reader sees the real reason
 * ("contains a double quote") instead of "invalid input".
 */
function zodFindings(issues: readonly ZodIssue[], prefix: JsonPath): Finding[] {
  const findings: Finding[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path.map((part) => (typeof part === 'symbol' ? String(part) : part))];
    if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      const closest = [...issue.errors].sort((a, b) => unionDistance(a) - unionDistance(b))[0]!;
      if (unionDistance(closest) < 1000) {
        findings.push(...zodFindings(closest, path));
        continue;
      }
      findings.push({
        severity: 'error',
        path,
        message: 'matches none of the allowed forms (for a secret: {"value": "..."} or {"file": "/path"})',
      });
      continue;
    }
    findings.push({ severity: 'error', path, message: issue.message });
  }
  return findings;
}

/** How far a union branch was from matching: wrong type or wrong keys at its top is far. */
function unionDistance(issues: readonly ZodIssue[]): number {
  let distance = 0;
  for (const issue of issues) {
    const atTop = issue.path.length === 0;
    distance += atTop && (issue.code === 'unrecognized_keys' || issue.code === 'invalid_type') ? 1000 : 1;
    if (issue.path.length === 1 && issue.code === 'invalid_type' && issue.input === undefined) {
      distance += 1000; // a required key of this branch is missing: not the branch meant
    }
  }
  return distance;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
