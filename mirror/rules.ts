// The mirror's rules that the driver used to decide by itself, as pure functions of facts and
// `nowMs`: mirror/runtime.ts feeds them what its data plane and the peer's announcement say. The
// seeded simulation (test/sim/mirror.sim.test.ts) drives that very runtime over fake effects, so a
// bug here or in the runtime's use of them is a bug it can find (planted by hand: accepting an
// ALONE announcement as the end of a reintegration fails seed 1 — the pair never settles; dropping
// linkRule's grace fails seed 1 — the SECOND records itself stale at its PRIM's crash and never
// takes over). No I/O, no clock of their own.
import type { MirrorMachine } from './machine.js';
import type { MirrorEvent, PeerView } from './types.js';

/** After a reintegration could not start (or the stream was lost), the link is held down this long before trying again. */
export const LINK_RETRY_MS = 500;

/**
 * A target learns that its reintegration finished when the source announces PRIM: the source
 * enters PRIM only once every dirty zone and all metadata were acknowledged by us. Only a PRIM of
 * the generation this reintegration began from (`targetOf`): the event carries no session, and a
 * late one of an earlier reintegration (the source gave up, went ALONE again and began another)
 * cannot be told apart while the source is ALONE (seed 4269). The driver feeds
 * `reintegration_done` on such an announcement, and the machine believes the event only when this
 * rule holds of the peer it knows.
 */
export function reintegrationDoneByPeer(m: Pick<MirrorMachine, 'reintegrating' | 'targetOf'>, view: PeerView): boolean {
  return m.reintegrating === 'target' && view.state === 'PRIM' && view.generation === m.targetOf;
}

/**
 * What a driver feeds the machine after the peer's announcement `view` (itself fed as a `peer`
 * event first): the end of a reintegration into this node, by reintegrationDoneByPeer, or nothing.
 * mirror/runtime.ts and the golden scenarios' pair (test/sim/mirror.pair.ts) both call this one.
 */
export function afterPeerView(m: Pick<MirrorMachine, 'reintegrating' | 'targetOf'>, view: PeerView): MirrorEvent | null {
  return reintegrationDoneByPeer(m, view) ? { type: 'replication', what: 'reintegration_done' } : null;
}

/** What the driver knows of the replication stream when it asks for the link. */
export interface LinkFacts {
  /** The mirror's directories are mounted here (this node writes them: PRIM or ALONE). */
  mounted: boolean;
  /** The mount is fenced: no write is acknowledged here any more. */
  fenced: boolean;
  /** The stream from our mount to the peer's replica is connected. */
  streamConnected: boolean;
  /** Our replicas hold the peer's stream (this node is not mounted). */
  replicasConnected: boolean;
  /** Two heartbeat timeouts: how long a lost stream from a PRIM peer is not yet a lost link. */
  graceMs: number;
}

/** What the link rule remembers between two calls (start with `initialLinkMemory`). */
export interface LinkMemory {
  /** The link is held down until then (a failed start or a lost stream, see `linkHoldDown`). */
  holdUntilMs: number;
  /** Since when our replicas have no stream from a PRIM peer (null: they have, or the peer is not PRIM). */
  replicaLostSinceMs: number | null;
}

export const initialLinkMemory: LinkMemory = { holdUntilMs: 0, replicaLostSinceMs: null };

/** A reintegration failed to start or the stream was lost: no new try before LINK_RETRY_MS. */
export function linkHoldDown(mem: LinkMemory, nowMs: number): LinkMemory {
  return { ...mem, holdUntilMs: nowMs + LINK_RETRY_MS };
}

/**
 * The `link` the machine needs:
 *   - primary, mounted: the stream to the peer's replica is connected, or a reintegration runs; when
 *     alone (no stream), once the peer announces WAIT with data not up to date (a failed start
 *     holds the link down a while before a new try: the peer's replica listens only once it
 *     became the target);
 *   - not primary: the peer is heard and not STOP, and if it is PRIM our replica holds its stream,
 *     or lost it less than two heartbeat timeouts ago. A PRIM killed closes the stream at once but
 *     is declared down only after the heartbeat timeout: a SECOND that took the closed stream for
 *     "the PRIM goes on without me" would record itself stale and never fail over. A PRIM that
 *     does go on without us announces ALONE within a heartbeat (the machine then records stale).
 */
export function linkRule(m: MirrorMachine, facts: LinkFacts, mem: LinkMemory, nowMs: number): { up: boolean; mem: LinkMemory } {
  const p = m.peer;
  if (p === null || p.state === 'STOP') return { up: false, mem };
  if (facts.mounted) {
    if (facts.fenced) return { up: false, mem };
    if (m.reintegrating === 'source') return { up: true, mem };
    if (facts.streamConnected) return { up: true, mem };
    return { up: nowMs >= mem.holdUntilMs && p.state === 'WAIT' && !p.dataUpToDate, mem };
  }
  if (m.state === 'ALONE' || m.state === 'PRIM') return { up: false, mem }; // mounting in progress
  if (p.state !== 'PRIM' || facts.replicasConnected) {
    return { up: true, mem: mem.replicaLostSinceMs === null ? mem : { ...mem, replicaLostSinceMs: null } };
  }
  const since = mem.replicaLostSinceMs ?? nowMs;
  return { up: nowMs - since < facts.graceMs, mem: since === mem.replicaLostSinceMs ? mem : { ...mem, replicaLostSinceMs: since } };
}

/** The facts behind the choice of a reintegration's kind. */
export interface ReintegrationFacts {
  /** The dirty log is trusted (it recorded every change since the peer last held our data). */
  trusted: boolean;
  /** Our data generation. */
  generation: number;
  /** The peer's announced generation (null: not heard). */
  peerGeneration: number | null;
  /** Why the next reintegration must compare whole trees (verify found the peer diverged), or null. */
  fullNext: string | null;
}

/**
 * Full (compare whole trees) or the dirty log's zones. The log describes what changed since the
 * peer last held our data: enough only when the peer has not written a generation of its own since
 * (a peer at our generation or above wrote alone too: a healed split brain), and when the log is
 * trusted.
 */
export function chooseReintegration(f: ReintegrationFacts): { full: boolean; why: string } {
  if (!f.trusted) return { full: true, why: 'the dirty log is not trusted' };
  if (f.peerGeneration === null || f.peerGeneration >= f.generation) {
    return { full: true, why: `the peer's data generation ${f.peerGeneration ?? '?'} is not behind ours (${f.generation})` };
  }
  if (f.fullNext !== null) return { full: true, why: f.fullNext };
  return { full: false, why: 'dirty log' };
}
