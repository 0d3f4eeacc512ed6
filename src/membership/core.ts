// The membership core: events in, actions out, time passed in. No I/O, no clock reads, no randomness,
// so the simulator (test/sim) and the golden scenarios drive exactly the code the daemon runs.
//
// Rules:
// - a heartbeat goes out every sendEveryMs (on tick; intervalMs by default), and at once when the local modules or the view
//   change, so a change reaches the peers in one hop instead of one interval;
// - a peer is up from its first accepted heartbeat and down when no heartbeat was accepted from it on
//   ANY LAN for timeoutMs (one healthy LAN keeps it up);
// - replay protection per (peer, LAN): accept a larger incarnation than the peer's known one (it
//   restarted), or the same incarnation with a seq larger than the last accepted on that LAN;
// - incarnations are wall-clock start times (ms), kept strictly increasing across restarts by the
//   daemon (membership/persist.ts): one above the receiver's wall clock + INCARNATION_AHEAD_MS is
//   dropped (future_incarnation), so 2^53-1 or a clock far ahead cannot become the floor;
// - recovery from a bad floor: if the accepted incarnation goes silent for timeoutMs while a lower
//   one keeps arriving, the lower one is accepted when it is newer than the floor held before the
//   higher one came (`prev`). So one bogus incarnation below the bound (a key holder's, or a peer that
//   lost its state dir and whose clock stepped back) costs at most timeoutMs of that peer, never
//   blocks it for good; and a recorded heartbeat the receiver already accepted is still refused;
// - the floors (incarnation, seq per LAN, prev) can be saved and restored (`floors`, `restore`), so
//   a restarted receiver refuses what its previous run accepted (membership/persist.ts).
// - the view is the sorted list of up members with self, its epoch grows by one on every change.
// - versions (rolling upgrade, src/protocol.ts): a heartbeat whose protocol range does not overlap
//   this node's is dropped ('version'); one without `proto` is protocol 2's. From protocol 3 on,
//   heartbeats carry the range, the package version and the config signature, kept per peer.
import assert from 'node:assert/strict';
import type { ConfigSignature } from '../config/signature.js';
import { compatible, PROTOCOL_MIN, PROTOCOL_VERSION, type ProtocolRange } from '../protocol.js';
import type {
  DropReason, Heartbeat, MembershipAction, MembershipEvent, ModuleStatus, PeerInfo, View,
} from './types.js';

export interface MembershipOptions {
  self: string;
  /** Every node of cluster.yaml, self included. */
  nodes: string[];
  /** Number of LANs (heartbeats carry the LAN index 0..lans-1). */
  lans: number;
  cluster: string;
  intervalMs: number;
  timeoutMs: number;
  /** How often a heartbeat goes out when nothing changes (default intervalMs; the UDP driver's pump sends every interval from what it was given, so the core only refreshes it, less often). */
  sendEveryMs?: number;
  /** Larger on every run of the same node (the daemon uses its start time in ms). */
  incarnation: number;
  nowMs: number;
  /** The floors a previous run of this node saved (unknown peers and bad entries are ignored). */
  restore?: Record<string, PeerFloor>;
  /** The protocol versions this node speaks (default: this build's). */
  protocol?: ProtocolRange;
  /** Announced from protocol 3 on (defaults: "unknown", an empty signature). */
  pkg?: string;
  cfg?: ConfigSignature;
}

/** The protocol range of a heartbeat that announces none: the builds before protocol 3. */
export const LEGACY_PROTO: [number, number] = [2, 2];
const NO_SIGNATURE: ConfigSignature = { cluster: '0000000000000000', modules: {} };

/** An incarnation above the receiver's wall clock by more than this is refused (clock skew allowance). */
export const INCARNATION_AHEAD_MS = 10 * 60 * 1000;

/** What replay protection remembers of one peer: saved across restarts of the receiver. */
export interface PeerFloor {
  incarnation: number;
  /** Per LAN: the last accepted seq of `incarnation`. */
  lastSeq: (number | null)[];
  /** The floor held before a larger incarnation replaced it (the way back from a bogus one). */
  prev: { incarnation: number; lastSeq: (number | null)[] } | null;
}

type PeerStatus = 'down' | 'up';

interface PeerState {
  name: string;
  status: PeerStatus;
  /** The peer's incarnation whose seqs `lastSeq` counts; null before its first accepted heartbeat. */
  incarnation: number | null;
  /** Per LAN: seq of the last accepted heartbeat of `incarnation` on that LAN. */
  lastSeq: (number | null)[];
  /** The floor before `incarnation` replaced it (see the rules above); null when none. */
  prev: { incarnation: number; lastSeq: (number | null)[] } | null;
  /** Per LAN: core time of the last accepted heartbeat. */
  lastHeardMs: (number | null)[];
  view: View | null;
  modules: Record<string, ModuleStatus>;
  proto: [number, number] | null;
  pkg: string | null;
  cfg: ConfigSignature | null;
}

export interface MembershipState {
  readonly self: string;
  readonly cluster: string;
  /** Configured nodes, sorted. */
  readonly nodes: readonly string[];
  readonly lans: number;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly sendEveryMs: number;
  readonly incarnation: number;
  /** Seq of the last heartbeat sent (0: none yet). */
  seq: number;
  nextSendMs: number;
  view: View;
  modules: Record<string, ModuleStatus>;
  readonly protocol: ProtocolRange;
  readonly pkg: string;
  cfg: ConfigSignature;
  /** Every configured node but self, sorted by name. */
  peers: PeerState[];
}

// ---- peer transitions, as a table (keepalived style): what an input does in each state ----

type PeerInput =
  | 'heartbeat'   // accepted, same incarnation as known (or first ever)
  | 'restarted'   // accepted, larger incarnation than known: the peer's daemon restarted
  | 'silence';    // no accepted heartbeat on any LAN for timeoutMs

interface PeerTransition {
  to: PeerStatus;
  emit: 'peer_up' | 'peer_down' | null;
  cause: string;
}

const PEER_TRANSITIONS: Record<PeerStatus, Record<PeerInput, PeerTransition>> = {
  down: {
    heartbeat: { to: 'up', emit: 'peer_up', cause: 'heartbeat' },
    restarted: { to: 'up', emit: 'peer_up', cause: 'restarted' },
    silence: { to: 'down', emit: null, cause: '' },
  },
  up: {
    heartbeat: { to: 'up', emit: null, cause: '' },
    // Still up (no gap longer than timeoutMs), but whoever depends on its state must know it restarted.
    restarted: { to: 'up', emit: 'peer_up', cause: 'restarted' },
    silence: { to: 'down', emit: 'peer_down', cause: 'timeout' },
  },
};

// ---- construction and reads ----

export function createMembership(opts: MembershipOptions): MembershipState {
  assert.ok(opts.nodes.includes(opts.self), `self ${opts.self} not in nodes`);
  assert.equal(new Set(opts.nodes).size, opts.nodes.length, 'duplicate node names');
  assert.ok(Number.isInteger(opts.lans) && opts.lans >= 1, 'lans must be >= 1');
  assert.ok(opts.intervalMs > 0 && opts.timeoutMs > opts.intervalMs, 'need 0 < intervalMs < timeoutMs');
  assert.ok(Number.isSafeInteger(opts.incarnation) && opts.incarnation >= 0, 'incarnation must be a safe integer >= 0');
  const nodes = [...opts.nodes].sort();
  const restored = (name: string): Pick<PeerState, 'incarnation' | 'lastSeq' | 'prev'> => {
    const f = opts.restore && Object.prototype.hasOwnProperty.call(opts.restore, name) ? checkFloor(opts.restore[name], opts.lans) : null;
    return f ?? { incarnation: null, lastSeq: new Array<number | null>(opts.lans).fill(null), prev: null };
  };
  return {
    self: opts.self,
    cluster: opts.cluster,
    nodes,
    lans: opts.lans,
    intervalMs: opts.intervalMs,
    timeoutMs: opts.timeoutMs,
    sendEveryMs: opts.sendEveryMs ?? opts.intervalMs,
    incarnation: opts.incarnation,
    seq: 0,
    nextSendMs: opts.nowMs,
    view: { epoch: 1, members: [opts.self] },
    modules: {},
    protocol: opts.protocol ?? { current: PROTOCOL_VERSION, min: PROTOCOL_MIN },
    pkg: opts.pkg ?? 'unknown',
    cfg: opts.cfg ?? NO_SIGNATURE,
    peers: nodes.filter((n) => n !== opts.self).map((name) => ({
      name,
      status: 'down' as PeerStatus,
      ...restored(name),
      lastHeardMs: new Array<number | null>(opts.lans).fill(null),
      view: null,
      modules: {},
      proto: null,
      pkg: null,
      cfg: null,
    })),
  };
}

function isSeqList(v: unknown): v is (number | null)[] {
  return Array.isArray(v) && v.length <= 64 && v.every((x) => x === null || (Number.isSafeInteger(x) && (x as number) >= 0));
}

/** Per-LAN seqs for `lans` LANs; if the LAN count changed, every LAN gets the largest (stricter). */
function fitLans(seqs: (number | null)[], lans: number): (number | null)[] {
  if (seqs.length === lans) return [...seqs];
  const known = seqs.filter((x): x is number => x !== null);
  return new Array<number | null>(lans).fill(known.length ? Math.max(...known) : null);
}

/** A saved floor checked field by field (the file may be damaged); null when unusable. */
function checkFloor(v: unknown, lans: number): Pick<PeerState, 'incarnation' | 'lastSeq' | 'prev'> | null {
  if (typeof v !== 'object' || v === null) return null;
  const f = v as Partial<PeerFloor>;
  if (!Number.isSafeInteger(f.incarnation) || (f.incarnation as number) < 0 || !isSeqList(f.lastSeq)) return null;
  let prev: PeerState['prev'] = null;
  if (f.prev !== null && f.prev !== undefined) {
    const pv = f.prev;
    if (typeof pv !== 'object' || !Number.isSafeInteger(pv.incarnation) || pv.incarnation < 0 || !isSeqList(pv.lastSeq)) return null;
    prev = { incarnation: pv.incarnation, lastSeq: fitLans(pv.lastSeq, lans) };
  }
  return { incarnation: f.incarnation as number, lastSeq: fitLans(f.lastSeq, lans), prev };
}

/** The replay floors to save (peers never heard are left out). */
export function floors(state: MembershipState): Record<string, PeerFloor> {
  const out: Record<string, PeerFloor> = {};
  for (const p of state.peers) {
    if (p.incarnation === null) continue;
    out[p.name] = {
      incarnation: p.incarnation,
      lastSeq: [...p.lastSeq],
      prev: p.prev === null ? null : { incarnation: p.prev.incarnation, lastSeq: [...p.prev.lastSeq] },
    };
  }
  return out;
}

export function peers(state: MembershipState): PeerInfo[] {
  return state.peers.map((p) => ({
    name: p.name,
    up: p.status === 'up',
    lastHeardMs: [...p.lastHeardMs],
    incarnation: p.incarnation,
    view: p.view === null ? null : { epoch: p.view.epoch, members: [...p.view.members] },
    modules: { ...p.modules },
    proto: p.proto === null ? null : [p.proto[0], p.proto[1]],
    pkg: p.pkg,
    cfg: p.cfg,
  }));
}

export function currentView(state: MembershipState): View {
  return { epoch: state.view.epoch, members: [...state.view.members] };
}

function sameMembers(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((m, i) => m === b[i]);
}

/** True when every member of my view (up peers) last announced exactly my member set. */
export function isConverged(state: MembershipState): boolean {
  for (const m of state.view.members) {
    if (m === state.self) continue;
    const p = state.peers.find((x) => x.name === m);
    if (!p || p.status !== 'up' || p.view === null || !sameMembers(p.view.members, state.view.members)) return false;
  }
  return true;
}

/** Own modules and those last announced by up peers; down peers map to {}. */
export function moduleStates(state: MembershipState): Record<string, Record<string, ModuleStatus>> {
  const out: Record<string, Record<string, ModuleStatus>> = {};
  out[state.self] = { ...state.modules };
  for (const p of state.peers) out[p.name] = p.status === 'up' ? { ...p.modules } : {};
  return out;
}

// ---- the step ----

function clone(state: MembershipState): MembershipState {
  // Views and module maps are replaced, never mutated, so sharing them is safe.
  return {
    ...state,
    peers: state.peers.map((p) => ({ ...p, lastSeq: [...p.lastSeq], lastHeardMs: [...p.lastHeardMs] })),
    // `prev` is replaced, never mutated, so sharing it is safe.
  };
}

/**
 * The core time at which a tick next has something to do: a heartbeat due, or an up peer's silence
 * reaching the timeout. A driver that ticks then (and on every event) detects a death on time
 * instead of up to one polling period late, and does not wake in between. With `watched`, the
 * silences a driver watches by other means (node, LAN) are left out: an up peer's deadline counts
 * only when its latest arrival is on a LAN not watched.
 */
export function nextTickMs(s: MembershipState, watched?: (node: string, lan: number) => boolean): number {
  let t = s.nextSendMs;
  for (const p of s.peers) {
    if (p.status !== 'up') continue;
    const last = lastHeardAnyMs(p);
    if (last === null) continue;
    // The latest arrival is on watched LANs only: whoever watches them (the UDP driver's pump) has
    // that deadline, as late as or later than what the core knows, and calls a tick when it passes.
    if (watched && p.lastHeardMs.every((h, lan) => h !== last || watched(p.name, lan))) continue;
    t = Math.min(t, last + s.timeoutMs);
  }
  return t;
}

function lastHeardAnyMs(p: PeerState): number | null {
  let last: number | null = null;
  for (const t of p.lastHeardMs) if (t !== null && (last === null || t > last)) last = t;
  return last;
}

function sameModules(a: Record<string, ModuleStatus>, b: Record<string, ModuleStatus>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => {
    const x = a[k];
    const y = b[k];
    return x !== undefined && y !== undefined && x.state === y.state && x.sinceMs === y.sinceMs && sameMirror(x.mirror, y.mirror);
  });
}

/** A mirror's announcement changes without a state change (data status, generation, eligibility). */
function sameMirror(a: ModuleStatus['mirror'], b: ModuleStatus['mirror']): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.state === b.state && a.dataUpToDate === b.dataUpToDate && a.generation === b.generation
    && a.eligible === b.eligible && a.forced === b.forced;
}

function applyTransition(p: PeerState, input: PeerInput, actions: MembershipAction[]): boolean {
  const t = PEER_TRANSITIONS[p.status][input];
  const changed = t.to !== p.status;
  p.status = t.to;
  if (t.to === 'down') p.modules = {};
  if (t.emit === 'peer_up') actions.push({ type: 'peer_up', node: p.name, cause: t.cause });
  if (t.emit === 'peer_down') actions.push({ type: 'peer_down', node: p.name, cause: t.cause });
  return changed;
}

function recomputeView(s: MembershipState, cause: string, actions: MembershipAction[]): boolean {
  const members = [s.self, ...s.peers.filter((p) => p.status === 'up').map((p) => p.name)].sort();
  if (sameMembers(members, s.view.members)) return false;
  s.view = { epoch: s.view.epoch + 1, members };
  actions.push({ type: 'view_change', view: { epoch: s.view.epoch, members: [...members] }, cause });
  return true;
}

function send(s: MembershipState, nowMs: number, actions: MembershipAction[]): void {
  s.seq += 1;
  s.nextSendMs = nowMs + s.sendEveryMs;
  actions.push({
    type: 'send',
    hb: {
      cluster: s.cluster,
      from: s.self,
      incarnation: s.incarnation,
      seq: s.seq,
      view: { epoch: s.view.epoch, members: [...s.view.members] },
      modules: { ...s.modules },
      // A node speaking protocol 2 (the test-only lowering) sends what protocol 2 sent.
      ...(s.protocol.current >= 3 ? { proto: [s.protocol.current, s.protocol.min] as [number, number], pkg: s.pkg, cfg: s.cfg } : {}),
    },
  });
}

function drop(s: MembershipState, reason: DropReason, hb: Heartbeat, lan: number): Extract<MembershipAction, { type: 'drop' }> {
  if (reason !== 'version') return { type: 'drop', reason, from: hb.from, lan };
  const [cur, min] = hb.proto ?? LEGACY_PROTO;
  return { type: 'drop', reason, from: hb.from, lan,
    detail: `${hb.from} speaks protocol ${min === cur ? cur : `${min}..${cur}`}${hb.pkg ? ` (croft ${hb.pkg})` : ''}, `
      + `this node ${s.protocol.min}..${s.protocol.current} (croft ${s.pkg}): no version in common; upgrade the older node one release at a time` };
}

/** Newer than a floor on `lan`: a larger incarnation, or the same one with a larger seq. */
function newerThan(hb: Heartbeat, lan: number, inc: number, lastSeq: (number | null)[]): boolean {
  if (hb.incarnation !== inc) return hb.incarnation > inc;
  const last = lastSeq[lan] ?? null;
  return last === null || hb.seq > last;
}

/**
 * A lower incarnation than the floor, accepted in place of it: the floor has been silent for
 * timeoutMs and the heartbeat is newer than the floor held before it (any, if there was none).
 */
function isRollback(s: MembershipState, p: PeerState, lan: number, hb: Heartbeat, nowMs: number): boolean {
  if (p.incarnation === null || hb.incarnation >= p.incarnation) return false;
  const last = lastHeardAnyMs(p);
  if (last !== null && nowMs - last < s.timeoutMs) return false;
  return p.prev === null || newerThan(hb, lan, p.prev.incarnation, p.prev.lastSeq);
}

/** Why a verified heartbeat must be dropped, or null to accept it. Reads only. */
function dropReason(s: MembershipState, lan: number, hb: Heartbeat, nowMs: number, wallMs: number | undefined): DropReason | null {
  if (hb.cluster !== s.cluster) return 'wrong_cluster';
  if (hb.from === s.self) return 'self';
  const p = s.peers.find((x) => x.name === hb.from);
  if (!p) return 'unknown_node';
  if (hb.lan !== lan || !Number.isInteger(lan) || lan < 0 || lan >= s.lans) return 'wrong_lan';
  if (wallMs !== undefined && hb.incarnation > wallMs + INCARNATION_AHEAD_MS) return 'future_incarnation';
  if (p.incarnation !== null && !newerThan(hb, lan, p.incarnation, p.lastSeq) && !isRollback(s, p, lan, hb, nowMs)) return 'replay';
  const [current, min] = hb.proto ?? LEGACY_PROTO;
  if (!compatible(s.protocol, { current, min })) return 'version';
  return null;
}

export function membershipStep(
  state: MembershipState,
  event: MembershipEvent,
  nowMs: number,
): { state: MembershipState; actions: MembershipAction[] } {
  const actions: MembershipAction[] = [];
  switch (event.type) {
    case 'tick': {
      const s = clone(state);
      const downs: string[] = [];
      for (const p of s.peers) {
        if (p.status !== 'up') continue;
        const last = lastHeardAnyMs(p);
        if (last === null || nowMs - last >= s.timeoutMs) {
          applyTransition(p, 'silence', actions);
          downs.push(p.name);
        }
      }
      const viewChanged = downs.length > 0 && recomputeView(s, downs.map((n) => `${n} down`).join(', '), actions);
      if (viewChanged || nowMs >= s.nextSendMs) send(s, nowMs, actions);
      return { state: s, actions };
    }
    case 'local_config': {
      const s = clone(state);
      s.cfg = event.cfg;
      send(s, nowMs, actions);
      return { state: s, actions };
    }
    case 'local_modules': {
      if (sameModules(state.modules, event.modules)) return { state, actions };
      const s = clone(state);
      s.modules = { ...event.modules };
      send(s, nowMs, actions);
      return { state: s, actions };
    }
    case 'heartbeat': {
      const { hb, lan } = event;
      const reason = dropReason(state, lan, hb, nowMs, event.wallMs);
      if (reason !== null) {
        // A dropped heartbeat leaves the state untouched (same object): replays cannot change anything.
        actions.push(drop(state, reason, hb, lan));
        return { state, actions };
      }
      const s = clone(state);
      const p = s.peers.find((x) => x.name === hb.from);
      assert.ok(p);
      let input: PeerInput = 'heartbeat';
      const sameRun = p.incarnation === hb.incarnation;
      if (p.incarnation === null || hb.incarnation > p.incarnation) {
        if (p.incarnation !== null) {
          input = 'restarted';
          p.prev = { incarnation: p.incarnation, lastSeq: p.lastSeq };
        }
        p.incarnation = hb.incarnation;
        p.lastSeq = new Array<number | null>(s.lans).fill(null);
      } else if (hb.incarnation < p.incarnation) {
        // Rollback (isRollback): the silent floor was bogus; `prev` stays the floor before it.
        input = 'restarted';
        p.incarnation = hb.incarnation;
        p.lastSeq = new Array<number | null>(s.lans).fill(null);
      }
      p.lastSeq[lan] = hb.seq;
      p.lastHeardMs[lan] = nowMs;
      p.view = { epoch: hb.view.epoch, members: [...hb.view.members] };
      p.modules = { ...hb.modules };
      // A run of a node speaks one protocol: a protocol 3 node sends protocol 2's heartbeat (no
      // `proto`) to a peer it takes for protocol 2, so within one incarnation a heartbeat without
      // `proto` never lowers what the peer announced. Else two protocol 3 nodes that each heard the
      // other's downgraded heartbeat first would talk protocol 2 forever.
      if (hb.proto) {
        p.proto = [hb.proto[0], hb.proto[1]];
        p.pkg = hb.pkg ?? null;
        p.cfg = hb.cfg ?? null;
      } else if (!(sameRun && p.proto !== null && p.proto[0] >= 3)) {
        p.proto = [LEGACY_PROTO[0], LEGACY_PROTO[1]];
        p.pkg = null;
        p.cfg = null;
      }
      const changed = applyTransition(p, input, actions);
      if (changed && recomputeView(s, `${p.name} up`, actions)) send(s, nowMs, actions);
      return { state: s, actions };
    }
  }
}
