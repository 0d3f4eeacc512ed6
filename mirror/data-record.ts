// The persistent record of a mirror node's data (types.ts DataStatus and DataGenerations), in
// <stateDir>/mirror/<module>/data.json. The machine's `record_data` must be durable before the next
// action (a crash in a reintegration must leave a node that knows its data is partial), so a write
// goes to a temporary file, is fsync'd, renamed over the record, and the directory is fsync'd.
import fs from 'node:fs';
import path from 'node:path';
import type { DataStatus } from './types.js';

export interface DataRecord {
  status: DataStatus;
  generation: number;
  peerGeneration: number;
}

/** A node that never recorded anything: croft will not elect it (`croft prim` decides). */
export const NO_RECORD: DataRecord = { status: 'unknown', generation: 0, peerGeneration: 0 };

const statuses: readonly DataStatus[] = ['up-to-date', 'stale', 'unknown'];
const isGeneration = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** The record in `text`, or null when it is not one (checked field by field). */
export function parseDataRecord(text: string): DataRecord | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  if (typeof o.status !== 'string' || !statuses.includes(o.status as DataStatus)) return null;
  if (!isGeneration(o.generation) || !isGeneration(o.peerGeneration)) return null;
  return { status: o.status as DataStatus, generation: o.generation, peerGeneration: o.peerGeneration };
}

export function formatDataRecord(r: DataRecord): string {
  return `${JSON.stringify({ status: r.status, generation: r.generation, peerGeneration: r.peerGeneration, writtenAt: new Date().toISOString() })}\n`;
}

/**
 * Reads the record. A missing file is NO_RECORD (first start). An unreadable or corrupt one is
 * NO_RECORD too, with `problem` set: `unknown` is the safe reading (never elected on its own).
 */
export function readDataRecord(file: string): { record: DataRecord; problem: string | null } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { record: NO_RECORD, problem: code === 'ENOENT' ? null : `cannot read ${file}: ${code ?? String(e)}` };
  }
  const record = parseDataRecord(text);
  return record ? { record, problem: null } : { record: NO_RECORD, problem: `${file} is not a data record; read as unknown` };
}

/** Writes the record durably: temporary file, fsync, rename, fsync of the directory. */
export function writeDataRecord(file: string, r: DataRecord): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, formatDataRecord(r));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  const dfd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
}
