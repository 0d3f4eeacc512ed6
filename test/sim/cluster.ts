// A simulated cluster for the membership core (TigerBeetle's VOPR is the model): N nodes running the
// real pure core and the real codec, a clock that moves only when told, a network per LAN with loss,
// delay, duplication, reordering and directional cuts, crashes and restarts, and an adversary that
// replays captured datagrams and injects forged ones. Invariants are checked after every step; a
// violation throws an InvariantError. Used by the seeded simulator and by the golden scenarios.
import assert from 'node:assert/strict';
import { decodeHeartbeat, encodeHeartbeat } from '../../src/membership/codec.js';
import {
  createMembership, currentView, isConverged, membershipStep, moduleStates, type MembershipState,
} from '../../src/membership/core.js';
import type { Heartbeat, MembershipAction, MembershipEvent, ModuleStatus } from '../../src/membership/types.js';
import type { Rng } from './prng.js';

export class InvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvariantError';
  }
}

function invariant(cond: unknown, message: string): asserts cond {
  if (!cond) throw new InvariantError(message);
}

export interface LanNet {
  lossRate: number;
  dupRate: number;
  delayMinMs: number;
  /** delayMax > delayMin reorders datagrams (each gets its own delay). */
  delayMaxMs: number;
}

export interface SimOptions {
  nodes: number;
  lans: number;
  intervalMs: number;
  timeoutMs: number;
  rng: Rng;
  /** A LAN that the caller promises to keep free of loss and cuts, with delay <= maxCleanDelayMs. */
  cleanLan?: number | null;
  /** First tick of each node at a random phase (simulator) or all at 0 (scenarios). */
  randomPhase?: boolean;
  /** Keep a trace of peer_up/peer_down/view_change/drop lines (scenarios). */
  trace?: boolean;
}

type SimEvent =
  | { kind: 'tick'; node: string; gen: number }
  | { kind: 'deliver'; to: string; lan: number; bytes: Buffer; origin: 'net' | 'replay' | 'forge'; toGen?: number };

interface Queued {
  atMs: number;
  order: number;
  ev: SimEvent;
}

export interface SimNode {
  name: string;
  alive: boolean;
  /** Number of starts; ticks and captures of an older gen are ignored. */
  gen: number;
  incarnation: number;
  state: MembershipState | null;
  /** What this node's current run was last told by local_modules (gossip check). */
  lastModules: Record<string, ModuleStatus>;
  /** Last time it was dead (crash time, or restart time); null if never. */
  lastDeadMs: number | null;
  lastEpoch: number;
}

interface Capture {
  from: string;
  to: string;
  lan: number;
  toGen: number;
  bytes: Buffer;
}

export const CLUSTER_NAME = 'sim';
export const KEY = Buffer.from('sim-cluster-key-0123456789abcdef');
export const WRONG_KEY = Buffer.from('not-the-cluster-key-0123456789ab');
const CAPTURES_MAX = 256;

/** A binary heap ordered by (atMs, order): deterministic tie-breaking by insertion order. */
class EventQueue {
  private items: Queued[] = [];
  private next = 0;
  get size(): number {
    return this.items.length;
  }
  push(atMs: number, ev: SimEvent): void {
    const it: Queued = { atMs, order: this.next++, ev };
    const a = this.items;
    a.push(it);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(a[i] as Queued, a[p] as Queued)) break;
      [a[i], a[p]] = [a[p] as Queued, a[i] as Queued];
      i = p;
    }
  }
  peek(): Queued | undefined {
    return this.items[0];
  }
  pop(): Queued | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && less(a[l] as Queued, a[m] as Queued)) m = l;
        if (r < a.length && less(a[r] as Queued, a[m] as Queued)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m] as Queued, a[i] as Queued];
        i = m;
      }
    }
    return top;
  }
}

function less(x: Queued, y: Queued): boolean {
  return x.atMs < y.atMs || (x.atMs === y.atMs && x.order < y.order);
}

export class SimCluster {
  nowMs = 0;
  readonly names: string[];
  readonly nodes = new Map<string, SimNode>();
  readonly lans: number;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly tickMs: number;
  readonly net: LanNet[];
  readonly cleanLan: number | null;
  /** Directional cuts: `${lan}:${from}>${to}`. */
  private readonly cuts = new Set<string>();
  private readonly queue = new EventQueue();
  private readonly rng: Rng;
  private readonly captures: Capture[] = [];
  private readonly randomPhase: boolean;
  readonly traceLines: string[] | null;
  /** Counters, for the test's own sanity checks (an adversary that never hit anything proves nothing). */
  readonly stats = { steps: 0, delivered: 0, accepted: 0, replaysDropped: 0, forgesDropped: 0, peerDowns: 0 };

  constructor(opts: SimOptions) {
    assert.ok(opts.nodes >= 1 && opts.nodes <= 9 && opts.lans >= 1 && opts.lans <= 4);
    this.names = Array.from({ length: opts.nodes }, (_, i) => `n${i + 1}`);
    this.lans = opts.lans;
    this.intervalMs = opts.intervalMs;
    this.timeoutMs = opts.timeoutMs;
    this.tickMs = Math.max(1, Math.min(opts.intervalMs, Math.floor(opts.timeoutMs / 5)));
    this.rng = opts.rng;
    this.cleanLan = opts.cleanLan ?? null;
    this.randomPhase = opts.randomPhase ?? false;
    this.traceLines = opts.trace ? [] : null;
    this.net = Array.from({ length: opts.lans }, () => ({ lossRate: 0, dupRate: 0, delayMinMs: 1, delayMaxMs: 1 }));
    for (const name of this.names) {
      this.nodes.set(name, { name, alive: false, gen: 0, incarnation: 0, state: null, lastModules: {}, lastDeadMs: null, lastEpoch: 0 });
    }
  }

  /** Largest delay a caller may give the clean LAN so that one LAN alone keeps every peer up. */
  get maxCleanDelayMs(): number {
    return Math.floor(this.intervalMs / 2);
  }

  node(name: string): SimNode {
    const n = this.nodes.get(name);
    assert.ok(n, `no node ${name}`);
    return n;
  }

  liveNames(): string[] {
    return this.names.filter((n) => this.node(n).alive);
  }

  // ---- faults and commands ----

  /** Starts a dead node with a larger incarnation than any of its previous runs (a restart). */
  start(name: string, incarnationStep = 1): void {
    const n = this.node(name);
    assert.ok(!n.alive, `${name} already alive`);
    n.alive = true;
    n.gen += 1;
    n.incarnation += incarnationStep;
    n.lastModules = {};
    n.lastEpoch = 0;
    if (n.gen > 1) n.lastDeadMs = this.nowMs;
    n.state = createMembership({
      self: name, nodes: this.names, lans: this.lans, cluster: CLUSTER_NAME,
      intervalMs: this.intervalMs, timeoutMs: this.timeoutMs, incarnation: n.incarnation, nowMs: this.nowMs,
    });
    const phase = this.randomPhase ? Math.floor(this.rng() * this.tickMs) : 0;
    this.queue.push(this.nowMs + phase, { kind: 'tick', node: name, gen: n.gen });
  }

  kill(name: string): void {
    const n = this.node(name);
    assert.ok(n.alive, `${name} already dead`);
    n.alive = false;
    n.state = null;
    n.lastDeadMs = this.nowMs;
  }

  cut(lan: number, from: string, to: string): void {
    assert.ok(lan !== this.cleanLan, 'the clean LAN is never cut');
    this.cuts.add(`${lan}:${from}>${to}`);
  }

  heal(lan: number, from: string, to: string): void {
    this.cuts.delete(`${lan}:${from}>${to}`);
  }

  healAll(): void {
    this.cuts.clear();
  }

  isCut(lan: number, from: string, to: string): boolean {
    return this.cuts.has(`${lan}:${from}>${to}`);
  }

  setNet(lan: number, net: LanNet): void {
    if (lan === this.cleanLan) {
      assert.ok(net.lossRate === 0 && net.delayMaxMs <= this.maxCleanDelayMs, 'the clean LAN stays clean');
    }
    assert.ok(net.delayMinMs >= 0 && net.delayMaxMs >= net.delayMinMs);
    this.net[lan] = { ...net };
  }

  setModules(name: string, modules: Record<string, ModuleStatus>): void {
    const n = this.node(name);
    assert.ok(n.alive);
    n.lastModules = { ...modules };
    this.stepNode(n, { type: 'local_modules', modules });
  }

  /** Replays a datagram that `to` (in its current run) already accepted from `from` (any if null). */
  replay(to: string, from: string | null, otherLan = false): boolean {
    const n = this.node(to);
    if (!n.alive) return false;
    // Any old capture, not only the latest: old incarnations and old seqs must both be refused.
    const matching = this.captures.filter((c) => c.to === to && c.toGen === n.gen && (from === null || c.from === from));
    if (matching.length === 0) return false;
    const c = matching[Math.floor(this.rng() * matching.length)] as Capture;
    const lan = otherLan && this.lans > 1 ? (c.lan + 1) % this.lans : c.lan;
    this.queue.push(this.nowMs, { kind: 'deliver', to, lan, bytes: c.bytes, origin: 'replay', toGen: n.gen });
    return true;
  }

  /** Injects a heartbeat that would change state if accepted, signed with the wrong key (or garbled). */
  forge(to: string, claimFrom: string, lan = 0): void {
    const hb: Heartbeat = {
      cluster: CLUSTER_NAME, from: claimFrom, lan, incarnation: 2 ** 40, seq: 2 ** 40,
      view: { epoch: 999, members: [claimFrom] }, modules: { evil: { state: 'PRIM', sinceMs: 0 } },
    };
    let bytes = encodeHeartbeat(hb, WRONG_KEY);
    if (this.rng() < 0.3) {
      // A real packet, altered in transit (one byte flipped somewhere).
      bytes = Buffer.from(encodeHeartbeat(hb, KEY));
      const pos = Math.floor(this.rng() * bytes.length);
      bytes[pos] = (bytes[pos] ?? 0) ^ (1 + Math.floor(this.rng() * 255));
    }
    this.queue.push(this.nowMs, { kind: 'deliver', to, lan, bytes, origin: 'forge' });
  }

  // ---- running ----

  /** Processes every event due at or before `untilMs`, then sets the clock to `untilMs`. */
  runUntil(untilMs: number): void {
    for (;;) {
      const top = this.queue.peek();
      if (!top || top.atMs > untilMs) break;
      this.queue.pop();
      this.nowMs = top.atMs;
      this.process(top.ev);
      this.stats.steps += 1;
    }
    this.nowMs = untilMs;
  }

  private process(ev: SimEvent): void {
    if (ev.kind === 'tick') {
      const n = this.node(ev.node);
      if (!n.alive || n.gen !== ev.gen) return; // the timer of a crashed run
      this.stepNode(n, { type: 'tick' });
      this.queue.push(this.nowMs + this.tickMs, ev);
      return;
    }
    const n = this.node(ev.to);
    if (!n.alive || !n.state) return; // nobody listening
    // A replay aimed at a run that has since restarted is out of scope (see the report: a fresh run knows
    // no seqs yet); the adversary only replays what the target's current run already accepted.
    if (ev.toGen !== undefined && ev.toGen !== n.gen) return;
    this.stats.delivered += 1;
    const decoded = decodeHeartbeat(ev.bytes, KEY);
    if (!decoded.ok) {
      invariant(ev.origin === 'forge', `a genuine datagram was rejected by the codec (${decoded.reason})`);
      this.stats.forgesDropped += 1;
      this.trace(`${n.name}: drop ${decoded.reason} (codec)`);
      return;
    }
    invariant(ev.origin !== 'forge', 'a forged datagram passed the codec');
    const before = n.state;
    const snapshot = ev.origin === 'replay' ? JSON.stringify(before) : '';
    const actions = this.stepNode(n, { type: 'heartbeat', lan: ev.lan, hb: decoded.hb });
    const dropped = actions.some((a) => a.type === 'drop');
    if (ev.origin === 'replay') {
      invariant(dropped && actions.length === 1, `a replayed datagram was not dropped: ${JSON.stringify(actions)}`);
      invariant(n.state === before && JSON.stringify(n.state) === snapshot, 'a replayed datagram changed state');
      this.stats.replaysDropped += 1;
    } else if (!dropped) {
      this.stats.accepted += 1;
      this.captures.push({ from: decoded.hb.from, to: n.name, lan: ev.lan, toGen: n.gen, bytes: ev.bytes });
      if (this.captures.length > CAPTURES_MAX) this.captures.shift();
    }
  }

  private stepNode(n: SimNode, event: MembershipEvent): MembershipAction[] {
    assert.ok(n.state);
    const before = n.state;
    const { state, actions } = membershipStep(before, event, this.nowMs);
    n.state = state;
    for (const a of actions) this.perform(n, before, a);
    this.checkNode(n);
    return actions;
  }

  private perform(n: SimNode, before: MembershipState, a: MembershipAction): void {
    switch (a.type) {
      case 'send':
        this.broadcast(n, a.hb);
        return;
      case 'peer_down': {
        this.stats.peerDowns += 1;
        // Never down while some LAN brought an accepted heartbeat within timeoutMs.
        const p = before.peers.find((x) => x.name === a.node);
        invariant(p, `peer_down for unknown ${a.node}`);
        for (const t of p.lastHeardMs) {
          invariant(t === null || this.nowMs - t >= this.timeoutMs,
            `${n.name} declared ${a.node} down at ${this.nowMs} but heard it at ${t}`);
        }
        if (this.cleanLan !== null) {
          // A clean LAN alone keeps a live peer up: down only if the peer was dead within timeoutMs.
          const x = this.node(a.node);
          invariant(!x.alive || (x.lastDeadMs !== null && this.nowMs - x.lastDeadMs <= this.timeoutMs),
            `${n.name} declared ${a.node} down at ${this.nowMs} although LAN ${this.cleanLan} is clean and it is alive`);
        }
        this.trace(`${n.name}: peer_down ${a.node} (${a.cause})`);
        return;
      }
      case 'peer_up':
        this.trace(`${n.name}: peer_up ${a.node} (${a.cause})`);
        return;
      case 'view_change':
        this.trace(`${n.name}: view epoch=${a.view.epoch} [${a.view.members.join(' ')}] (${a.cause})`);
        return;
      case 'drop':
        this.trace(`${n.name}: drop ${a.reason} from ${a.from} lan${a.lan}`);
        return;
    }
  }

  private broadcast(n: SimNode, hb: Omit<Heartbeat, 'lan'>): void {
    for (let lan = 0; lan < this.lans; lan++) {
      const bytes = encodeHeartbeat({ ...hb, lan }, KEY);
      const net = this.net[lan] as LanNet;
      for (const to of this.names) {
        if (to === n.name || this.isCut(lan, n.name, to)) continue;
        if (net.lossRate > 0 && this.rng() < net.lossRate) continue;
        const copies = net.dupRate > 0 && this.rng() < net.dupRate ? 2 : 1;
        for (let c = 0; c < copies; c++) {
          const delay = net.delayMinMs + Math.floor(this.rng() * (net.delayMaxMs - net.delayMinMs + 1));
          this.queue.push(this.nowMs + delay, { kind: 'deliver', to, lan, bytes, origin: 'net' });
        }
      }
    }
  }

  private trace(line: string): void {
    if (this.traceLines) this.traceLines.push(`@${this.nowMs} ${line}`);
  }

  // ---- invariants ----

  /** After every step of a node: self up, views of configured nodes only, epochs never go back. */
  private checkNode(n: SimNode): void {
    const s = n.state;
    assert.ok(s);
    const v = currentView(s);
    invariant(v.members.includes(n.name), `${n.name} is not in its own view`);
    invariant(v.members.every((m) => this.nodes.has(m)), `${n.name} has an unknown member: ${v.members.join(',')}`);
    invariant(new Set(v.members).size === v.members.length, `${n.name} view has duplicates`);
    invariant(v.members.every((m, i) => i === 0 || (v.members[i - 1] as string) < m), `${n.name} view not sorted`);
    invariant(v.epoch >= n.lastEpoch, `${n.name} epoch went back from ${n.lastEpoch} to ${v.epoch}`);
    n.lastEpoch = v.epoch;
    invariant(s.peers.every((p) => p.name !== n.name), `${n.name} tracks itself as a peer`);
  }

  /** After a heal and a quiet period: one view, converged, live pairs up, module states gossiped. */
  checkConverged(): void {
    const live = this.liveNames();
    const views = live.map((name) => currentView(this.node(name).state as MembershipState).members.join(' '));
    for (const [i, name] of live.entries()) {
      const s = this.node(name).state as MembershipState;
      invariant(views[i] === live.join(' '), `${name} has view [${views[i]}], live nodes are [${live.join(' ')}]`);
      invariant(isConverged(s), `${name} is not converged`);
      const ms = moduleStates(s);
      for (const other of live) {
        const want = this.node(other).lastModules;
        invariant(JSON.stringify(ms[other]) === JSON.stringify(want),
          `${name} sees ${other}'s modules as ${JSON.stringify(ms[other])}, want ${JSON.stringify(want)}`);
      }
    }
  }

  /** A one-line summary per live node (scenarios' `status`). */
  status(): string[] {
    return this.names.map((name) => {
      const n = this.node(name);
      if (!n.alive || !n.state) return `${name}: dead`;
      const v = currentView(n.state);
      const ms = moduleStates(n.state);
      const mods = Object.entries(ms)
        .filter(([, m]) => Object.keys(m).length > 0)
        .map(([node, m]) => `${node}{${Object.entries(m).map(([k, x]) => `${k}=${x.state}`).join(',')}}`)
        .join(' ');
      return `${name}: epoch=${v.epoch} [${v.members.join(' ')}] ${isConverged(n.state) ? 'converged' : 'not-converged'}${mods ? ` modules ${mods}` : ''}`;
    });
  }
}
