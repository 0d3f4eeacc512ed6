// The farm's decisions on one node, pure: which effect comes next, and which buckets are this
// node's. The runtime (farm/runtime.ts) feeds it what it wants (module active or not, the members
// it sees) and what it believes the kernel holds, and carries out the one action returned; the
// simulator (test/sim/farm.sim.test.ts) runs the same runtime against faulty fakes.
//
// What the kernel holds is tracked per part as present, absent or unknown: an effect that failed
// may have happened or not (a VIP half added, an nft that timed out after committing). Bring-up
// needs a part present; tear-down needs it absent, so an unknown part is set up again on the way
// up and removed again on the way down (every effect is idempotent).
import type { NodeConfig, ModuleConfig } from '../src/config/types.js';
import { assignBuckets, bucketsOf } from './assign.js';
import { farmMembers, membersKey, type NodeModuleView } from './members.js';

export type Part = 'absent' | 'present' | 'unknown';

/** What this node's kernel holds for the farm, as far as the runtime knows. */
export interface FarmPlane {
  filter: Part;
  vip: Part;
  /** ARP responder running (ARP and IPv6 neighbour discovery) and gratuitous ARP / unsolicited NA sent. */
  announce: Part;
  /** The owned set in the filter; null when unknown (a set update failed, or no filter). */
  owned: readonly number[] | null;
  /** The takeover set (owned buckets of a dead node: RST for what nobody tracks); null when unknown. */
  takeover: readonly number[] | null;
}

export const EMPTY_PLANE: FarmPlane = { filter: 'absent', vip: 'absent', announce: 'absent', owned: [], takeover: [] };

/** What the runtime wants the kernel to hold. */
export interface FarmWant {
  /** The module is not STOP on this node: filter, VIP and ARP exist. */
  active: boolean;
  /** This node's buckets (sorted); [] while it is not an UP member. */
  owned: readonly number[];
  /** Those of `owned` taken over from a node that died (FarmShare.takeover), sorted. */
  takeover: readonly number[];
  /** A responder answers for the VIPs (ARP, IPv6 neighbour discovery): true in the daemon. */
  arp: boolean;
}

/**
 * One effect on the kernel. Each type says what must be true before it (its ordering duty);
 * nextAction() only returns an action whose duty holds, and checkDuty() states the duty so the
 * simulator and the tests check it against what the fakes really hold.
 */
export type FarmAction =
  /** The filter's tables with no owned bucket. First on the way up: nothing before it. */
  | { type: 'filter-empty' }
  /**
   * The VIP (and the virtual MAC's receive entry). After the filter is present: a VIP with no
   * filter would make this node accept every client's new connections, every other node's too.
   */
  | { type: 'add-vip' }
  /**
   * The ARP responder, then gratuitous ARP. After the VIP is present: clients are sent here only
   * once the node can take their packets.
   */
  | { type: 'announce' }
  /**
   * This node's owned set becomes exactly `owned`, in one nft transaction. After the filter is
   * present (the set lives in its table), and on the way up after the VIP and ARP (the start's
   * order), so a node is never given clients by its buckets before it can answer them.
   */
  | { type: 'apply-buckets'; owned: readonly number[]; takeover: readonly number[] }
  /** The kernel's tables made equal to croft's again (edited behind its back). Filter present. */
  | { type: 'reconcile' }
  /** The ARP responder stops. First on the way down: clients stop being sent here. */
  | { type: 'silence' }
  /** The VIP goes. After the ARP responder stopped. */
  | { type: 'remove-vip' }
  /**
   * The filter goes. After the VIP is absent: a VIP with no filter would accept every client.
   * Last on the way down.
   */
  | { type: 'remove-filter' };

export type FarmActionType = FarmAction['type'];

/** Periodic work the runtime's timers made due. */
export interface FarmDue {
  reconcile: boolean;
}

function sameSet(a: readonly number[] | null, b: readonly number[]): boolean {
  return a !== null && a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The next action that brings `plane` toward `want`, or null when they agree and nothing is due. */
export function nextAction(plane: FarmPlane, want: FarmWant, due: FarmDue = { reconcile: false }): FarmAction | null {
  if (want.active) {
    if (plane.filter !== 'present') return { type: 'filter-empty' };
    if (plane.vip !== 'present') return { type: 'add-vip' };
    if (want.arp && plane.announce !== 'present') return { type: 'announce' };
    // Before a bucket update: a table deleted behind croft's back fails every update until put back.
    if (due.reconcile) return { type: 'reconcile' };
    if (!sameSet(plane.owned, want.owned) || !sameSet(plane.takeover, want.takeover)) {
      return { type: 'apply-buckets', owned: want.owned, takeover: want.takeover };
    }
    return null;
  }
  if (plane.announce !== 'absent') return { type: 'silence' };
  if (plane.vip !== 'absent') return { type: 'remove-vip' };
  if (plane.filter !== 'absent') return { type: 'remove-filter' };
  return null;
}

/** The ordering duty of `action` against what is held now: null when it may run, else why not. */
export function checkDuty(action: FarmAction, held: FarmPlane): string | null {
  switch (action.type) {
    case 'filter-empty':
    case 'silence':
      return null;
    case 'add-vip':
    case 'apply-buckets':
    case 'reconcile':
      return held.filter === 'present' ? null : `${action.type} with the filter ${held.filter}`;
    case 'announce':
      return held.vip === 'present' ? null : `announce with the VIP ${held.vip}`;
    case 'remove-vip':
      return held.announce === 'absent' ? null : `remove-vip with the ARP responder ${held.announce}`;
    case 'remove-filter':
      return held.vip === 'absent' ? null : `remove-filter with the VIP ${held.vip}`;
  }
}

/** The plane after `action` succeeded. */
export function afterSuccess(plane: FarmPlane, action: FarmAction): FarmPlane {
  switch (action.type) {
    case 'filter-empty': return { ...plane, filter: 'present', owned: [], takeover: [] };
    case 'add-vip': return { ...plane, vip: 'present' };
    case 'announce': return { ...plane, announce: 'present' };
    case 'apply-buckets': return { ...plane, owned: [...action.owned], takeover: [...action.takeover] };
    case 'reconcile': return plane;
    case 'silence': return { ...plane, announce: 'absent' };
    case 'remove-vip': return { ...plane, vip: 'absent' };
    case 'remove-filter': return { ...plane, filter: 'absent', owned: [], takeover: [] };
  }
}

/** The plane after `action` failed: what it touched is unknown (it may have happened). */
export function afterFailure(plane: FarmPlane, action: FarmAction): FarmPlane {
  switch (action.type) {
    case 'filter-empty':
    case 'remove-filter': return { ...plane, filter: 'unknown', owned: null, takeover: null };
    case 'add-vip':
    case 'remove-vip': return { ...plane, vip: 'unknown' };
    case 'announce':
    case 'silence': return { ...plane, announce: 'unknown' };
    case 'apply-buckets':
    case 'reconcile': return { ...plane, owned: null, takeover: null };
  }
}

/** This node's share of the farm: members seen, the bucket map, and its own buckets. */
export interface FarmShare {
  key: string;
  members: string[];
  map: string[];
  owned: number[];
  /**
   * The owned buckets this node took over from a member that died, with that node, sorted by
   * bucket. Died: it left the members because the membership declared it down (no heartbeat),
   * while it was UP there; a planned leave (drain, stop, a failed checker) first leaves UP with the
   * node still up, so its buckets move silently and the old owner keeps serving what it has. Its
   * connections are gone with it: the new owner answers their packets with a RST (nft-render.ts)
   * until the dead node is up again or the bucket moves again.
   */
  takeover: Array<[bucket: number, from: string]>;
}

/** The buckets of share.takeover, sorted (what the kernel's takeover set holds). */
export function takeoverBuckets(share: FarmShare | null): number[] {
  return share ? share.takeover.map(([b]) => b) : [];
}

/**
 * The members and buckets from the view; `previous` is returned as is when the members did not
 * change and no dead node came back (the map costs B rendezvous hashes, and the view is polled
 * often).
 */
export function shareOf(module: ModuleConfig, nodes: readonly NodeConfig[], self: string,
  views: readonly NodeModuleView[], previous: FarmShare | null): FarmShare {
  const members = farmMembers(module, nodes, views);
  const key = membersKey(members);
  const up = new Set(views.filter((v) => v.up).map((v) => v.name));
  if (previous && previous.key === key) {
    const kept = previous.takeover.filter(([, from]) => !up.has(from));
    return kept.length === previous.takeover.length ? previous : { ...previous, takeover: kept };
  }
  const map = assignBuckets(module.farm!.buckets, members);
  const owned = bucketsOf(map, self);
  return { key, members: members.map((m) => m.name), map, owned, takeover: takeoverOf(previous, owned, self, up) };
}

/**
 * The buckets of `owned` taken over from a dead node: those still taken over (the dead node still
 * down), and those that came here from a member of `previous` that is down now.
 */
export function takeoverOf(previous: FarmShare | null, owned: readonly number[], self: string,
  up: ReadonlySet<string>): Array<[number, string]> {
  if (previous === null) return [];
  const before = new Map(previous.takeover);
  const out: Array<[number, string]> = [];
  for (const b of owned) {
    const kept = before.get(b);
    const from = kept ?? previous.map[b];
    if (from === undefined || from === '' || from === self || up.has(from)) continue;
    if (kept === undefined && !previous.members.includes(from)) continue;
    out.push([b, from]);
  }
  return out;
}
