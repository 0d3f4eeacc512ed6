// The mirror machine's draft (the state being changed by one step) and the few changes that the
// event handlers (machine.ts), settle (settle.ts) and the transitions (transitions.ts) share:
// recording the data status and generations, aborting a reintegration, starting to write alone,
// releasing the resources, launching a script.
import assert from 'node:assert/strict';
import { resetHealth, type Health } from '../src/module/health.js';
import { isPrimary } from './election.js';
import type { MirrorMachine } from './machine.js';
import type { Move } from './transitions.js';
import type { DataStatus, MirrorAction, MirrorEvent, MirrorScript, MirrorState } from './types.js';

export type Draft = { -readonly [K in keyof MirrorMachine]: MirrorMachine[K] } & {
  health: Record<string, Health>;
  restartTimesMs: number[];
  /** This step finished a reintegration as source (settle: ALONE -> PRIM) or as target (WAIT -> SECOND). */
  finished: 'none' | 'source' | 'target';
  /** The cells of the transition table (transitions.ts) this step took, in order. */
  changes: Move[];
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

/** ALONE: a new generation, recorded, then the dirty log (writes alone from here). */
export function startWritingAlone(d: Draft, out: MirrorAction[]): void {
  d.awaitingWitness = false;
  d.diverged = true;
  newGeneration(d, out);
  out.push({ type: 'dirty_log', op: 'start' });
}

/** The way down, after stop_prim: VIP, unmount, then the quarantine of a give-up. */
export function releaseResources(d: Draft, out: MirrorAction[]): void {
  if (d.vip) {
    d.vip = false;
    out.push({ type: 'vip_remove' });
  }
  if (d.mounted) {
    d.mounted = false;
    d.fenced = false;
    out.push({ type: 'unmount' });
  }
  if (d.quarantinePending) {
    d.quarantinePending = false;
    d.diverged = false;
    out.push({ type: 'quarantine', reason: 'gave up the primary role: what this node wrote alone is kept aside' });
  }
}

export function runScript(d: Draft, out: MirrorAction[], script: MirrorScript, entering: MirrorState): void {
  assert.equal(d.running, null, 'one script at a time');
  d.running = script;
  if (script === 'start_prim') {
    d.app = 'dirty'; // half started until its script_done says ok
    // A (re)started application is judged afresh: an old failure must not count against it.
    for (const c of d.cfg.checkers) if (c.kind === 'app') d.health[c.name] = resetHealth(d.health[c.name]!);
  }
  out.push({ type: 'run_script', script, entering });
}
