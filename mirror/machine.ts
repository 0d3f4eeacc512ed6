// The mirror module's state machine (STOP, WAIT, ALONE, PRIM, SECOND), pure: events in, actions out,
// time passed in. The shape follows src/module/machine.ts: a table of handlers (HANDLERS) that only
// update the facts (peer, witness, link, data, scripts, health) and the goal, then `settle`
// (settle.ts), which alone decides state changes and launches scripts. Which state goes to which, on
// what, and what each change does, in the order rules written on MirrorAction (mirror/types.ts), is
// the transition table of mirror/transitions.ts: start there.
//
// Who is primary. Both nodes compute the same choice from the same facts (`chosen`):
//   - a node running the application (PRIM/ALONE) stays primary while it is eligible, unless its
//     peer runs it too (a healed split brain): then the tie-break decides and the loser gives up;
//   - else an eligible node (wanted, up-to-date data, dependencies healthy, not `second`, not handing
//     over) is chosen when its peer is not eligible, or wins the tie-break: `croft prim` first, then
//     prim_preference, then the smaller node name;
//   - without a peer, an eligible node is chosen once it has seen its peer since start or waited
//     peerWaitMs for it.
// A chosen node contends for the witness; it enters ALONE only with a valid verdict (or no witness).
//
// Invariants with a witness (checked in checkInvariants, and across two nodes by the simulation):
//   - PRIM/ALONE only with a valid verdict at every step: a redis lease is held by one node at a
//     time and our verdict lapses (own clock, safety margin) before the lease can pass, so never two
//     PRIM/ALONE. The driver ticks the machine at nextWakeMs so a lapse is seen in time.
//   - A primary whose verdict lapses gives up at once: fence, VIP off, WAIT, then stop_prim, unmount,
//     and quarantine of what it wrote alone.
//   - The application never runs with stale data: PRIM/ALONE only with data up-to-date; a target
//     records `stale` before a reintegration starts; SECOND only after its reintegration finished.
//
// Data generations (types.ts DataGenerations). Entering ALONE records generation
// max(generation, peerGeneration) + 1 before the dirty log and the mount; a finished reintegration
// gives the target the source's; announcements carry it, and a peer's generation above ours is
// recorded at once. The rule (`behind`, in `eligible`): a node whose generation is below the
// peer's announced one, now or as recorded before its restart, is never primary on its own, even
// if it has not seen its peer since its restart; two primaries meeting: the newer generation wins.
//
// The witness rule (redis; a ping witness stores nothing, so without mutual exclusion two branches
// remain possible by design and the loser's is quarantined when they meet). A node learns of a
// newer generation from its peer's announcements, and also from the witness: a redis verdict
// carries peerGeneration, the highest generation the peer registered, recorded like an announced
// one. For the witness to know every generation written without the peer:
//   a node writes alone under generation g only after a verdict that allowed, of a contention
//   whose context (`witnessContext`, fixed per epoch) carried a generation >= g.
// RedisWitness registers the context's generation in the same atomic step that takes or renews the
// lease, so such a verdict means "redis holds g for us, and the lease is ours". A chosen node
// contends from the start with the generation it will write under (max(generation,
// peerGeneration) + 1), so the way up costs no extra round trip; a PRIM that loses its SECOND
// enters ALONE `awaitingWitness`: it contends again (a new epoch, the lease kept) with its next
// generation, and records it and starts the dirty log only when the verdict comes (meanwhile
// writes wait in the data plane: failMode 'block'; a verdict that refuses makes it give up).
// Why the order "witness, then the local record, then writes" and not the record first: a record
// the witness never got (redis down, a crash) would let this node believe in a generation number
// that its peer may then take for its own branch (it reads nothing newer in redis), and the two
// equal numbers would hide the peer's writes. Registered but unwritten generations (the node
// stopped being chosen, or died, after its verdict) make the peer believe it is behind; the peer's
// own announcement corrects it (its record is exact: it writes only under a recorded generation),
// and without one a person runs `croft prim`. Redis must persist the generations (appendonly).
// Without any record of a newer generation (no witness, ping) the survivor cannot know: a person
// who knows runs `croft prim` on the right node.

import assert from 'node:assert/strict';
import { createHealth, healthStep, type Health, resetHealth } from '../src/module/health.js';
// maxloop at the mirror: stopping here means the peer takes over.
import { countFailure, pruneRestartWindow, scriptEnded } from '../src/module/restart-window.js';
import { reintegrationDoneByPeer } from './rules.js';
import { isPrimary } from './election.js';
import { checkInvariants } from './invariants.js';
import { abortReintegration, setData, type Draft, type EventOf } from './draft.js';
import { settle } from './settle.js';
import type { Move } from './transitions.js';
import type {
  DataStatus,
  MirrorAction,
  MirrorEvent,
  MirrorMachineConfig,
  MirrorScript,
  MirrorState,
  PeerView,
} from './types.js';

// The queries (election.ts) and the transition table (transitions.ts), for the runtime and tests.
export { announce, aloneGeneration, behind, checkerHealth, chosen, dependenciesHealthy, eligible, isPrimary, nextWakeMs, verdictValid, winsTie, witnessContext, witnessHoldsNext } from './election.js';
export { TABLE, TRANSITIONS, isTransition, isValidTransition, type Cause, type Move } from './transitions.js';

export type AppPhase = 'stopped' | 'started' | 'dirty';

export interface MirrorMachine {
  readonly cfg: MirrorMachineConfig;
  readonly state: MirrorState;
  readonly sinceMs: number;
  readonly cause: string;
  /** The goal, from commands and failure policies. */
  readonly target: 'run' | 'stop';
  /** `second`: started with `croft second`, never primary on its own until it is SECOND once. */
  readonly role: 'auto' | 'second';
  /** Started with `croft prim`: wins the choice of the primary (until it is primary once). */
  readonly forced: boolean;
  /**
   * `croft prim`: the highest generation known (ours, recorded or announced by the peer) when it
   * was run. The person's choice overrides the peer's data up to it, never a newer generation the
   * peer writes after (that withdraws the `croft prim`). In memory: after a restart, run it again.
   */
  readonly forcedOver: number;
  /** Handing the primary role to the peer (swap, prim_preference): not eligible meanwhile. */
  readonly yielding: boolean;
  readonly data: DataStatus;
  /** This node's data generation, as recorded (DataGenerations in types.ts). */
  readonly generation: number;
  /** The highest generation the peer announced, as recorded (survives restarts). */
  readonly peerGeneration: number;
  /** This node wrote while ALONE since its last finished reintegration as source. */
  readonly diverged: boolean;
  readonly quarantinePending: boolean;
  /** Last announcement of the peer; null when lost or not heard since start. */
  readonly peer: PeerView | null;
  /** The peer was heard since the module was started here (the peer wait is over). */
  readonly peerSeen: boolean;
  /** As SECOND: the peer was seen PRIM since (so a later ALONE means it went on without us). */
  readonly peerWasPrim: boolean;
  /** Until when a started node that has not heard its peer waits for it before it may go ALONE. */
  readonly waitPeerUntilMs: number;
  /** The replication stream to the peer is up. */
  readonly link: boolean;
  readonly reintegrating: 'none' | 'source' | 'target';
  /** As target: the generation the source announced when this reintegration began. */
  readonly targetOf: number;
  readonly contending: boolean;
  /** Number of the current (or last) contention; verdicts of another one are ignored. */
  readonly witnessEpoch: number;
  /** The generation the driver passes to the witness in this contention (`witnessContext`). */
  readonly contendGeneration: number;
  /** The highest generation a redis verdict that allowed confirmed for us (in memory: 0 at start). */
  readonly witnessHolds: number;
  /** ALONE after PRIM, redis: writes held until the witness holds the next generation (no dirty log yet). */
  readonly awaitingWitness: boolean;
  readonly verdict: { allowed: boolean; validUntilMs: number; detail: string };
  readonly running: MirrorScript | null;
  readonly app: AppPhase;
  readonly mounted: boolean;
  readonly fenced: boolean;
  readonly vip: boolean;
  readonly restartWanted: boolean;
  readonly restartTimesMs: readonly number[];
  readonly health: Readonly<Record<string, Health>>;
  readonly checkersRunning: 'none' | 'dependencies' | 'all';
}

export function createMirrorMachine(cfg: MirrorMachineConfig, nowMs = 0): MirrorMachine {
  assert.notEqual(cfg.node, cfg.peer, 'a mirror has two distinct nodes');
  assert.ok(cfg.primPreference === null || cfg.primPreference === cfg.node || cfg.primPreference === cfg.peer, 'prim_preference names one of the two nodes');
  assert.ok(cfg.peerWaitMs >= 0, 'peerWaitMs must be >= 0');
  assert.ok(Number.isInteger(cfg.restart.maxloop) && cfg.restart.maxloop >= 0, 'maxloop must be >= 0');
  const health: Record<string, Health> = {};
  for (const c of cfg.checkers) {
    assert.ok(!(c.name in health), `duplicate checker name ${c.name}`);
    assert.ok(!(c.kind === 'app' && c.onFailure === 'wait'), `checker ${c.name}: on_failure wait needs kind dependency`);
    health[c.name] = createHealth(c.rise, c.fall);
  }
  return {
    cfg,
    state: 'STOP',
    sinceMs: nowMs,
    cause: 'initial',
    target: 'stop',
    role: 'auto',
    forced: false,
    forcedOver: 0,
    yielding: false,
    data: 'unknown',
    generation: 0,
    peerGeneration: 0,
    diverged: false,
    quarantinePending: false,
    peer: null,
    peerSeen: false,
    peerWasPrim: false,
    waitPeerUntilMs: 0,
    link: false,
    reintegrating: 'none',
    targetOf: 0,
    contending: false,
    witnessEpoch: 0,
    contendGeneration: 0,
    witnessHolds: 0,
    awaitingWitness: false,
    verdict: { allowed: false, validUntilMs: 0, detail: 'not contending' },
    running: null,
    app: 'stopped',
    mounted: false,
    fenced: false,
    vip: false,
    restartWanted: false,
    restartTimesMs: [],
    health,
    checkersRunning: 'none',
  };
}

// ---------------------------------------------------------------------------------------------
// The step

type Handler<T extends MirrorEvent['type']> = (d: Draft, ev: EventOf<T>, nowMs: number, out: MirrorAction[]) => void;
type HandlerTable = { [S in MirrorState]: { [T in MirrorEvent['type']]: Handler<T> } };

function ignore(): void {}
const noScriptIn = (s: MirrorState) => (_d: Draft, ev: EventOf<'script_done'>) =>
  assert.fail(`script_done ${ev.script} in ${s}: no script runs in ${s}`);
const dataNotIn = (s: MirrorState) => () => assert.fail(`data event in ${s}: the record is read at start (STOP or WAIT)`);
const setRecord = (d: Draft, ev: EventOf<'data'>) => {
  d.data = ev.status;
  d.generation = ev.generation ?? 0;
  d.peerGeneration = ev.peerGeneration ?? 0;
};

/**
 * The handler table: what each event does in each state. Handlers only update facts and the goal;
 * `settle` then moves the state (through the transition table, transitions.ts), so "one script at
 * a time", the action order and "primary only with a valid verdict" live in one place. `ignore`
 * cells drop an event that is stale there.
 */
const HANDLERS: HandlerTable = {
  STOP: {
    command: (d, ev, _n, out) => command(d, ev, out),
    peer: (d, ev, _n, out) => peerHeard(d, ev, out),
    peer_lost: (d) => peerLost(d),
    witness: ignore, // not contending in STOP: a late verdict
    replication: (d, ev) => link(d, ev), // a late reintegration_done: none runs in STOP
    script_done: noScriptIn('STOP'),
    probe: ignore, // no checker runs in STOP
    data: setRecord,
    tick: ignore,
  },
  WAIT: {
    command: (d, ev, _n, out) => command(d, ev, out),
    peer: (d, ev, _n, out) => peerHeard(d, ev, out),
    peer_lost: (d, _ev, _n, out) => {
      peerLost(d);
      abortReintegration(d, out);
    },
    witness: (d, ev, _n, out) => witness(d, ev, out),
    replication: (d, ev, _n, out) => {
      if (ev.what !== 'reintegration_done') return link(d, ev, out);
      if (d.reintegrating !== 'target') return; // stale: aborted meanwhile
      // The event carries no session: believed only when the peer we know satisfies the rule
      // the driver fed it on (rules.ts reintegrationDoneByPeer; seed 4269).
      if (d.peer === null || !reintegrationDoneByPeer(d, d.peer)) return;
      d.reintegrating = 'none';
      d.finished = 'target';
      // The source's generation: this node now holds every write of it (PRIM and SECOND share one).
      setData(d, 'up-to-date', out, Math.max(d.generation, d.peerGeneration, d.peer?.generation ?? 0));
      d.cause = 'reintegration done: in sync with the primary';
    },
    script_done: (d, ev, nowMs) => scriptDone(d, ev, nowMs),
    probe: (d, ev, nowMs, out) => probe(d, ev, nowMs, out),
    data: setRecord,
    tick: ignore,
  },
  ALONE: {
    command: (d, ev, _n, out) => command(d, ev, out),
    peer: (d, ev, _n, out) => peerHeard(d, ev, out),
    peer_lost: (d, _ev, _n, out) => {
      peerLost(d);
      abortReintegration(d, out);
    },
    witness: (d, ev, _n, out) => witness(d, ev, out),
    replication: (d, ev, _n, out) => {
      if (ev.what !== 'reintegration_done') return link(d, ev, out);
      if (d.reintegrating !== 'source') return; // stale: aborted meanwhile
      d.reintegrating = 'none';
      d.finished = 'source';
      d.diverged = false;
      out.push({ type: 'dirty_log', op: 'clear' });
      d.cause = 'reintegration done: the peer is in sync';
    },
    script_done: (d, ev, nowMs) => scriptDone(d, ev, nowMs),
    probe: (d, ev, nowMs, out) => probe(d, ev, nowMs, out),
    data: dataNotIn('ALONE'),
    tick: ignore,
  },
  PRIM: {
    command: (d, ev, _n, out) => command(d, ev, out),
    peer: (d, ev, _n, out) => peerHeard(d, ev, out),
    peer_lost: (d) => {
      peerLost(d);
      d.cause = 'peer lost';
    },
    witness: (d, ev, _n, out) => witness(d, ev, out),
    replication: (d, ev, _n, out) => {
      if (ev.what === 'reintegration_done') return; // none runs in PRIM: stale
      link(d, ev, out);
      if (ev.what === 'link_broken') d.cause = 'replication link broken';
    },
    script_done: (d, ev, nowMs) => scriptDone(d, ev, nowMs),
    probe: (d, ev, nowMs, out) => probe(d, ev, nowMs, out),
    data: dataNotIn('PRIM'),
    tick: ignore,
  },
  SECOND: {
    command: (d, ev, _n, out) => command(d, ev, out),
    peer: (d, ev, _n, out) => {
      peerHeard(d, ev, out);
      if (ev.peer.state === 'PRIM') d.peerWasPrim = true;
      // ALONE after PRIM: the primary went on without us (it saw the link break first).
      if (ev.peer.state === 'ALONE' && d.peerWasPrim) {
        setData(d, 'stale', out);
        d.cause = 'peer runs ALONE: this replica misses its writes';
      } else if (!isPrimary(ev.peer.state)) {
        d.cause = `peer left PRIM (now ${ev.peer.state})`;
      }
    },
    peer_lost: (d) => {
      // Replication is synchronous: every write the PRIM acknowledged is here.
      peerLost(d);
      d.cause = 'peer lost';
    },
    witness: (d, ev, _n, out) => witness(d, ev, out),
    replication: (d, ev, _n, out) => {
      if (ev.what === 'reintegration_done') return; // stale
      link(d, ev, out);
      if (ev.what === 'link_broken') {
        setData(d, 'stale', out); // the PRIM goes ALONE and writes without us
        d.cause = 'replication link broken';
      }
    },
    script_done: noScriptIn('SECOND'),
    probe: (d, ev, nowMs, out) => probe(d, ev, nowMs, out),
    data: dataNotIn('SECOND'),
    tick: ignore,
  },
};

/** The handler the table gives for an event in a state (the unit tests walk every cell). */
export function handlerName(s: MirrorState, t: MirrorEvent['type']): string {
  return HANDLERS[s][t] === ignore ? 'ignore' : 'handle';
}

/**
 * One step: the event's handler, then settle. `changes`: the cells of the transition table
 * (transitions.ts) this step took, with their causes, in the order of its transition actions.
 */
export function mirrorStep(m: MirrorMachine, event: MirrorEvent, nowMs: number): { state: MirrorMachine; actions: MirrorAction[]; changes: readonly Move[] } {
  const d: Draft = { ...m, health: { ...m.health }, restartTimesMs: [...m.restartTimesMs], finished: 'none', changes: [] };
  const out: MirrorAction[] = [];
  pruneRestartWindow(d, nowMs);
  const handler = HANDLERS[m.state][event.type] as Handler<typeof event.type>;
  handler(d, event as never, nowMs, out);
  settle(d, nowMs, out);
  const { finished: _finished, changes, ...next } = d;
  checkInvariants(m, next, event, out, nowMs);
  return { state: next, actions: out, changes };
}

function peerHeard(d: Draft, ev: EventOf<'peer'>, out: MirrorAction[]): void {
  d.peer = ev.peer;
  // Recorded at once: after a restart, the record alone must tell that the peer went on without us.
  // Only a generation above ours matters (and costs an fsync).
  if (ev.peer.generation > Math.max(d.peerGeneration, d.generation)) setData(d, d.data, out, d.generation, ev.peer.generation);
  // A newer generation learnt from the witness is an upper bound (registered, maybe never written:
  // it registers before it records); the peer's own announcement is exact, as it writes only under
  // a recorded generation. So it corrects a witness's generation that made us believe we are behind.
  else if (d.peerGeneration > d.generation && ev.peer.generation < d.peerGeneration) setData(d, d.data, out, d.generation, ev.peer.generation);
  if (d.target === 'run') d.peerSeen = true;
  if (d.yielding && isPrimary(ev.peer.state)) d.yielding = false; // the hand-over is done
}

function peerLost(d: Draft): void {
  d.peer = null;
  d.cause = 'peer lost';
  d.link = false; // the data plane's stream cannot outlive the peer
  d.yielding = false;
}

function link(d: Draft, ev: EventOf<'replication'>, out?: MirrorAction[]): void {
  if (ev.what === 'link_up') d.link = true;
  if (ev.what === 'link_broken') {
    d.link = false;
    if (out) abortReintegration(d, out);
  }
}

function witness(d: Draft, ev: EventOf<'witness'>, out: MirrorAction[]): void {
  // The peer registered a newer generation with the witness: it may have written without us (the
  // registration comes before its writes). Recorded, as an announced one, whatever the epoch: the
  // witness's record only grows, so a late answer is still true. Not while we hear the peer: its
  // announcements are exact (a registered generation may be one it never wrote, and two nodes
  // that hear each other would otherwise take each other's registrations for writes, in turn).
  const pg = ev.peerGeneration;
  if (pg !== undefined && d.peer === null && pg > Math.max(d.peerGeneration, d.generation)) {
    setData(d, d.data, out, d.generation, pg);
    d.cause = `witness: the peer registered generation ${pg} (ours ${d.generation})`;
  }
  // A verdict that arrives after we stopped contending, or that answers an earlier contention (we
  // released the lease since, and the peer may hold it now), proves nothing now.
  if (!d.contending || ev.epoch !== d.witnessEpoch) return;
  if (ev.allowed && !d.verdict.allowed) d.cause = `witness allows: ${ev.detail}`;
  d.verdict = { allowed: ev.allowed, validUntilMs: ev.validUntilMs, detail: ev.detail };
  // Redis allows only with the context's generation registered (mirror/witness.ts).
  if (ev.allowed && d.cfg.witness === 'redis') d.witnessHolds = Math.max(d.witnessHolds, d.contendGeneration);
}

function command(d: Draft, ev: EventOf<'command'>, out: MirrorAction[]): void {
  const cause = `command ${ev.command} (${ev.cause})`;
  const refuse = (reason: string) => {
    out.push({ type: 'refused', command: ev.command, reason });
  };
  const run = () => {
    // A person starting the module again after a maxloop stop wants a fresh count.
    if (d.target === 'stop') d.restartTimesMs = [];
    d.target = 'run';
    d.cause = cause;
  };
  switch (ev.command) {
    case 'start':
      if (d.target === 'run') return;
      run();
      d.role = 'auto';
      return;
    case 'stop':
      d.target = 'stop';
      d.role = 'auto';
      d.forced = false;
      d.yielding = false;
      d.restartWanted = false;
      d.cause = cause;
      return;
    case 'prim':
      if (isPrimary(d.state)) return refuse(`already ${d.state}`);
      if (d.state === 'SECOND') return refuse('this node is SECOND: run swap on the PRIM');
      if (d.peer !== null && isPrimary(d.peer.state)) return refuse(`the peer is ${d.peer.state}: use swap, or stop it first`);
      if (d.reintegrating === 'target') return refuse('a reintegration into this node is in progress: stop the module first');
      run();
      d.role = 'auto';
      d.forced = true;
      d.yielding = false;
      // A person declares this node's data the reference, over every generation known now: its next
      // ALONE starts one above them (aloneGeneration), registered with the witness first. The record
      // keeps its generations: adopting the peer's number here (a record the witness never got)
      // would give two different data one number, and hide the writes the peer makes under it
      // after this command (it may be taking over right now, unseen).
      d.forcedOver = Math.max(d.generation, d.peerGeneration, d.peer?.generation ?? 0);
      setData(d, 'up-to-date', out);
      return;
    case 'second':
      if (d.state === 'PRIM') return swap(d, cause, refuse);
      if (d.state === 'ALONE') return refuse('ALONE: no in-sync peer to take over (stop the module instead)');
      if (d.state === 'SECOND') return;
      run();
      d.role = 'second';
      d.forced = false;
      return;
    case 'swap':
      return swap(d, cause, refuse);
  }
}

function swap(d: Draft, cause: string, refuse: (reason: string) => void): void {
  if (d.state !== 'PRIM') return refuse(`swap needs this node PRIM (it is ${d.state}): run it on the PRIM`);
  if (d.peer?.state !== 'SECOND' || !d.peer.eligible) return refuse('swap needs an in-sync SECOND that may take over');
  d.yielding = true;
  d.forced = false;
  d.cause = cause;
}

function scriptDone(d: Draft, ev: EventOf<'script_done'>, nowMs: number): void {
  // stop_prim leaves the application stopped whatever its status: the unmount that follows is
  // forced by the driver (it kills what still holds files open).
  const failed = scriptEnded(d, ev, 'stop_prim');
  if (failed !== null && d.target === 'run' && isPrimary(d.state)) countFailure(d, nowMs, failed);
  // The application is judged from the end of its start: failures an app checker saw while
  // start_prim ran (a VM booting, a server loading) were not acted on, and a health left `failed`
  // by them would hide a crash right after the start (only a change to failed restarts).
  if (ev.script === 'start_prim' && ev.ok) {
    for (const c of d.cfg.checkers) if (c.kind === 'app') d.health[c.name] = resetHealth(d.health[c.name]!);
  }
}

function probe(d: Draft, ev: EventOf<'probe'>, nowMs: number, out: MirrorAction[]): void {
  const c = d.cfg.checkers.find((x) => x.name === ev.checker);
  assert.ok(c, `probe of unknown checker ${ev.checker}`);
  if (d.checkersRunning === 'none' || (d.checkersRunning === 'dependencies' && c.kind !== 'dependency')) return; // stale
  const { h, changed } = healthStep(d.health[c.name]!, ev.ok);
  d.health[c.name] = h;
  if (!changed) return;
  out.push({ type: 'checker_change', checker: c.name, healthy: h.state === 'healthy', detail: ev.detail });
  if (h.state === 'healthy') return;
  if (c.kind === 'dependency') {
    d.cause = `dependency ${c.name} failed: ${ev.detail}`; // not eligible now: a primary steps down
    return;
  }
  if (!isPrimary(d.state) || d.app !== 'started') return;
  if (c.onFailure === 'stop') {
    d.target = 'stop';
    d.restartWanted = false;
    d.cause = `checker ${c.name} failed: ${ev.detail}; on_failure stop`;
    return;
  }
  countFailure(d, nowMs, `checker ${c.name} failed: ${ev.detail}`);
}
