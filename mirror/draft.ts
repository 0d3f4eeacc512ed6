// The mirror machine's draft (the state being changed by one step) and the few changes both the
// event handlers (machine.ts) and settle (settle.ts) make: recording the data status and
// generations, and aborting a reintegration.
import type { Health } from '../src/module/health.js';
import { isPrimary } from './election.js';
import type { MirrorMachine } from './machine.js';
import type { DataStatus, MirrorAction, MirrorEvent } from './types.js';

export type Draft = { -readonly [K in keyof MirrorMachine]: MirrorMachine[K] } & {
  health: Record<string, Health>;
  restartTimesMs: number[];
  /** This step finished a reintegration as source (settle: ALONE -> PRIM) or as target (WAIT -> SECOND). */
  finished: 'none' | 'source' | 'target';
};
export type EventOf<T extends MirrorEvent['type']> = Extract<MirrorEvent, { type: T }>;

export function setData(d: Draft, status: DataStatus, out: MirrorAction[], generation = d.generation, peerGeneration = d.peerGeneration): void {
  if (d.data === status && d.generation === generation && d.peerGeneration === peerGeneration) return;
  d.data = status;
  d.generation = generation;
  d.peerGeneration = peerGeneration;
  out.push({ type: 'record_data', status, generation, peerGeneration });
}

/** Entering ALONE: a new generation, recorded before the dirty log and the mount. */
export function newGeneration(d: Draft, out: MirrorAction[]): void {
  setData(d, d.data, out, Math.max(d.generation, d.peerGeneration) + 1);
}

/**
 * As target: the source's reintegration ended without us (it gave up, or left ALONE and came back
 * under a new generation) when it no longer announces the generation we began from, ALONE or PRIM.
 * Stop ours; a new one begins if the peer is ALONE (settleIdle), from its current generation.
 */
export function abortStaleTarget(d: Draft, out: MirrorAction[]): void {
  const p = d.peer;
  if (d.reintegrating !== 'target' || p === null) return;
  if (isPrimary(p.state) && p.generation === d.targetOf) return;
  d.cause = `the peer's reintegration ended (now ${p.state}, generation ${p.generation}, begun from ${d.targetOf})`;
  abortReintegration(d, out);
}

export function abortReintegration(d: Draft, out: MirrorAction[]): void {
  if (d.reintegrating === 'none') return;
  d.reintegrating = 'none';
  out.push({ type: 'reintegrate_abort' });
}
