/**
 * What tunnelwarden remembers about each conn's health between passes (and across restarts,
 * in a state file): the healing ladder's memory, the probe's record, recent byte counters and
 * the last heal. Pure updates; host/ reads and writes the file.
 */
import type { ProbeResult } from '../observe/probe.js';
import type { CounterSample } from './health.js';
import { freshMemory, type ConnHealMemory } from './heal.js';

export interface ProbeRecord {
  consecutiveLosses: number;
  sent: number;
  lost: number;
  lastRttMs?: number;
  lastAtMs?: number;
}

export interface LastHeal {
  atMs: number;
  action: string;
  reason: string;
}

export interface ConnHealthState {
  memory: ConnHealMemory;
  probe: ProbeRecord;
  counters: CounterSample[];
  lastHeal?: LastHeal;
  /** When each IKE_SA now CONNECTING (by unique id) was first seen so. */
  connectingSinceMs?: Record<string, number>;
}

export interface HealthStateFile {
  version: 1;
  conns: Record<string, ConnHealthState>;
}

/** Counter samples older than this are dropped. */
export const COUNTER_HISTORY_MS = 60_000;

export function freshConnHealth(): ConnHealthState {
  return { memory: freshMemory(), probe: { consecutiveLosses: 0, sent: 0, lost: 0 }, counters: [] };
}

/** A probe's outcome added to the record. */
export function recordProbe(record: ProbeRecord, result: ProbeResult, nowMs: number): ProbeRecord {
  return {
    consecutiveLosses: result.replied ? 0 : record.consecutiveLosses + 1,
    sent: record.sent + 1,
    lost: record.lost + (result.replied ? 0 : 1),
    lastRttMs: result.rttMs ?? record.lastRttMs,
    lastAtMs: nowMs,
  };
}

/** A counter sample appended, samples older than COUNTER_HISTORY_MS dropped. */
export function recordCounters(history: CounterSample[], sample: CounterSample): CounterSample[] {
  return [...history.filter((old) => sample.atMs - old.atMs <= COUNTER_HISTORY_MS), sample];
}

/**
 * When each IKE_SA now CONNECTING was first seen so: kept from `previous` for SAs still
 * CONNECTING, `nowMs` for new ones; SAs no longer CONNECTING are dropped.
 */
export function trackConnecting(
  previous: Record<string, number> | undefined,
  connectingIds: readonly number[],
  nowMs: number,
): Record<string, number> {
  return Object.fromEntries(connectingIds.map((id) => [String(id), previous?.[String(id)] ?? nowMs]));
}

/** Reads a parsed state file leniently: anything unexpected starts that part afresh. */
export function healthStateFrom(parsed: unknown): HealthStateFile {
  const file: HealthStateFile = { version: 1, conns: {} };
  const conns = (parsed as { conns?: unknown } | null)?.conns;
  if (!conns || typeof conns !== 'object') return file;
  for (const [name, value] of Object.entries(conns as Record<string, Partial<ConnHealthState>>)) {
    const fresh = freshConnHealth();
    file.conns[name] = {
      memory: { ...fresh.memory, ...(value?.memory ?? {}) },
      probe: { ...fresh.probe, ...(value?.probe ?? {}) },
      counters: Array.isArray(value?.counters) ? value.counters : [],
      ...(value?.lastHeal ? { lastHeal: value.lastHeal } : {}),
      ...(isTimeRecord(value?.connectingSinceMs) ? { connectingSinceMs: value.connectingSinceMs } : {}),
    };
  }
  return file;
}

function isTimeRecord(value: unknown): value is Record<string, number> {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((time) => typeof time === 'number' && Number.isFinite(time))
  );
}
