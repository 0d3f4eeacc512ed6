// What membership keeps in the state dir across restarts, in one small JSON file
// (<stateDir>/membership.json, mode 0600, written atomically: temporary file, fsync, rename):
// - `incarnation`: the last one this node used. The next run takes max(now, last + 1), so a node's
//   incarnation is strictly increasing across restarts even when the wall clock stepped back
//   (peers would otherwise drop the new run as a replay of the old one);
// - `peers`: the replay floors of each peer (core.ts floors/restore): a restarted node refuses the
//   heartbeats its previous run had accepted (a recorded heartbeat replayed to it is dropped).
//
// What remains: a peer's new incarnation is saved within a second, its seqs at most once every
// SAVE_EVERY_MS (and at stop), so after a crash a heartbeat accepted in the last 10 s before it
// can be replayed once to the next run (it says what that peer said then, until the peer's next
// heartbeat, an interval later, says what it says now); and a
// heartbeat the peer sent that this node never received (lost, or held back by an attacker on
// every LAN) is newer than any floor and is accepted once, as it would be while running.
import fs from 'node:fs';
import path from 'node:path';
import type { PeerFloor } from './core.js';
import { writeFileDurable, writeFileDurableSync } from '../native/load.js';

export const STATE_FILE = 'membership.json';
/**
 * The floors' seqs are written at most once per this many ms: each write is an fsync and a wake of
 * the daemon's thread (the idle cost); a new incarnation is written at the next refresh (≤ 1 s).
 */
export const SAVE_EVERY_MS = 10_000;

export interface MembershipFile {
  node: string;
  incarnation: number;
  peers: Record<string, PeerFloor>;
}

export function stateFile(stateDir: string): string {
  return path.join(stateDir, STATE_FILE);
}

/** The saved state of `node`, or null when there is none or it is unusable (another node's, damaged). */
export function readState(file: string, node: string): MembershipFile | null {
  let raw: string;
  try {
    const st = fs.statSync(file);
    if (!st.isFile() || st.size > 1024 * 1024) return null;
    raw = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const v = JSON.parse(raw) as Partial<MembershipFile>;
    if (typeof v !== 'object' || v === null || v.node !== node) return null;
    if (!Number.isSafeInteger(v.incarnation) || (v.incarnation as number) < 0) return null;
    const peers = typeof v.peers === 'object' && v.peers !== null && !Array.isArray(v.peers) ? v.peers : {};
    return { node, incarnation: v.incarnation as number, peers };
  } catch {
    return null;
  }
}

/** Writes atomically (tmp + fsync + rename + fsync of the directory); throws on failure. */
export function writeState(file: string, state: MembershipFile): void {
  writeFileDurableSync(file, JSON.stringify(state), 0o600);
}

/** A saved incarnation further ahead of the clock than this is not a clock step but a damaged file. */
export const MAX_CLOCK_STEP_MS = 24 * 60 * 60 * 1000;

/**
 * The same without blocking the event loop (heartbeats must go out on time while a busy disk takes
 * its time to fsync), in one task of the native addon: the floors are saved every second, and the
 * nine steps through fs.promises woke the JS thread nine times for it (issue 11, idle cost).
 */
export async function writeStateAsync(file: string, state: MembershipFile): Promise<void> {
  await writeFileDurable(file, JSON.stringify(state), 0o600);
}

/**
 * The incarnation of a new run: max(wall clock, last saved + 1). A saved value more than a day ahead
 * of the clock (a damaged file, 2^53-1...) is ignored rather than carried into every future run,
 * where the peers would drop it as future_incarnation.
 */
export function nextIncarnation(saved: MembershipFile | null, wallMs: number): number {
  const now = Math.floor(wallMs);
  if (saved === null || saved.incarnation + 1 > now + MAX_CLOCK_STEP_MS) return now;
  return Math.max(now, saved.incarnation + 1);
}
