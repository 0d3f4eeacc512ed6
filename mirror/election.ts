// The mirror machine's queries (pure, read-only): what a node announces, whether it is eligible,
// behind, wins the tie-break, is chosen as primary, and what the witness allows. machine.ts decides
// the transitions from them; the runtime and the simulator read them (re-exported by machine.ts).
import type { HealthState } from '../src/module/health.js';
import type { MirrorMachine } from './machine.js';
import type { MirrorState, PeerView, WitnessContext } from './types.js';

export function isPrimary(s: MirrorState): boolean {
  return s === 'PRIM' || s === 'ALONE';
}

/** What this node announces in its heartbeats. */
export function announce(m: MirrorMachine): PeerView {
  return { state: m.state, dataUpToDate: m.data === 'up-to-date', generation: m.generation, eligible: eligible(m), forced: m.forced };
}

/**
 * What the driver passes to Witness.check in the current contention: the generation this node
 * writes under, or will write under once the verdict allows (fixed for the contention's epoch).
 */
export function witnessContext(m: MirrorMachine): WitnessContext {
  return { generation: m.contendGeneration };
}

/** The generation a node writes under when it goes alone next (recorded once the witness holds it). */
export function aloneGeneration(m: MirrorMachine): number {
  return Math.max(m.generation, m.peerGeneration) + 1;
}

/** The witness rule (head of machine.ts): a redis witness must hold g before we write alone under g. */
export function witnessHoldsNext(m: MirrorMachine): boolean {
  return m.cfg.witness !== 'redis' || m.witnessHolds >= aloneGeneration(m);
}

/** True when the witness lets this node run the application now (always without a witness). */
export function verdictValid(m: MirrorMachine, nowMs: number): boolean {
  if (m.cfg.witness === 'none') return true;
  return m.contending && m.verdict.allowed && nowMs < m.verdict.validUntilMs;
}

/**
 * When the driver must call `mirrorStep(m, {type:'tick'}, t)` at the latest (a verdict lapses, the
 * peer wait ends), or null. The driver also ticks every second or so for the restart window.
 */
export function nextWakeMs(m: MirrorMachine, nowMs: number): number | null {
  const times: number[] = [];
  if (m.cfg.witness !== 'none' && m.contending && m.verdict.allowed && m.verdict.validUntilMs > nowMs) times.push(m.verdict.validUntilMs);
  if (m.target === 'run' && !m.peerSeen && m.waitPeerUntilMs > nowMs) times.push(m.waitPeerUntilMs);
  return times.length > 0 ? Math.min(...times) : null;
}

export function checkerHealth(m: MirrorMachine): Record<string, HealthState> {
  const out: Record<string, HealthState> = {};
  for (const c of m.cfg.checkers) out[c.name] = m.health[c.name]!.state;
  return out;
}

export function dependenciesHealthy(m: MirrorMachine): boolean {
  return m.cfg.checkers.every((c) => c.kind !== 'dependency' || m.health[c.name]!.state === 'healthy');
}

/** Would take the primary role if the choice were its own. */
export function eligible(m: MirrorMachine): boolean {
  return m.target === 'run' && m.role === 'auto' && !m.yielding && m.data === 'up-to-date' && !behind(m) && dependenciesHealthy(m);
}

/**
 * The generation rule: the peer announced (now, or before a restart: the record keeps it) a higher
 * generation than ours, so it wrote without us and we miss those writes. Such a node is never
 * primary on its own, whether or not it has heard its peer since its restart; it waits to be the
 * target of the peer's reintegration, or for `croft prim`.
 */
export function behind(m: MirrorMachine): boolean {
  // `croft prim` overrides what was known when it was run, and only that (see forcedOver).
  const ours = m.forced ? Math.max(m.generation, m.forcedOver) : m.generation;
  return ours < m.peerGeneration || (m.peer !== null && ours < m.peer.generation);
}

/** The tie-break between two eligible nodes (or two primaries): generation of primaries, forced, generation, preference, name. */
export function winsTie(m: MirrorMachine, peer: PeerView): boolean {
  // Two primaries of different generations (a healed split brain): the newer data stays primary.
  const primaries = isPrimary(m.state) && isPrimary(peer.state);
  if (primaries && m.generation !== peer.generation) return m.generation > peer.generation;
  // Else `croft prim` first: a forced node may hold an older generation than its peer, which it
  // overrides (up to forcedOver: `behind` withdraws it past that).
  if (m.forced !== peer.forced) return m.forced;
  if (m.generation !== peer.generation) return m.generation > peer.generation;
  const pref = m.cfg.primPreference;
  if (pref !== null) return pref === m.cfg.node;
  return m.cfg.node < m.cfg.peer;
}

/** Should this node be the primary, from what it knows now (see the head of machine.ts). */
export function chosen(m: MirrorMachine, nowMs: number): boolean {
  if (!eligible(m)) return false;
  const p = m.peer;
  if (p === null) return m.peerSeen || nowMs >= m.waitPeerUntilMs;
  if (isPrimary(p.state)) return isPrimary(m.state) && winsTie(m, p);
  if (isPrimary(m.state) || !p.eligible) return true;
  return winsTie(m, p);
}

