// The mirror machine's transitions as one table (DRBD's is_valid_transition and after_state_ch, in
// small): which state goes to which, on what. settle.ts decides, from the facts, the state it wants
// next and why (a Cause); `change` checks that move against TABLE (a move not in it is a programmer
// error: it stops the process) and does what that cause does around the change, in the order rules
// written on MirrorAction (types.ts). The compiler checks the table: a row for every state, no
// state to itself, every cause used, every state entered, and `change(d, ..., to, cause)` only for
// a (to, cause) some row holds; the row (the current state) is checked at run time.
import assert from 'node:assert/strict';
import { resetHealth } from '../src/module/health.js';
import { abortReintegration, releaseResources, runScript, setData, startWritingAlone, type Draft } from './draft.js';
import { isPrimary, witnessHoldsNext } from './election.js';
import type { MirrorAction, MirrorState } from './types.js';

/** Why the state changes. Each is decided in settle.ts, where its conditions are written. */
export type Cause =
  /** The module is wanted (start, prim or second): wait for the peer, the witness, the election. */
  | 'start'
  /** stop command, on_failure stop or maxloop: stop_prim done, VIP removed, unmounted. */
  | 'stop'
  /**
   * Chosen as primary (election.ts `chosen`), with a valid witness verdict, and a redis witness
   * holds the generation it will write under: the way up (dirty log, mount, VIP, start_prim).
   * From SECOND it is a failover.
   */
  | 'elected'
  /** The reintegration into this node finished: an in-sync replica of the primary. */
  | 'in_sync'
  /** The reintegration from this node finished: the peer is an in-sync SECOND, writes are mirrored. */
  | 'peer_in_sync'
  /**
   * The SECOND is gone (peer lost, link broken, peer stopped): keep running, writes alone under a
   * new generation (with redis, once the witness holds it: `awaitingWitness` until then).
   */
  | 'replica_lost'
  /** No longer an in-sync replica of a running PRIM (peer left PRIM, link broken, data stale). */
  | 'out_of_sync'
  /**
   * No longer chosen (swap, prim_preference, failed dependency, behind): gracefully, stop_prim done,
   * then the VIP removed and the unmount, before the state changes (the peer may promote itself
   * only once nothing here can write).
   */
  | 'step_down'
  /**
   * The witness verdict lapsed, or the peer runs the application too and wins the tie-break (a
   * healed split brain): fenced and the VIP removed at once, while a script may still run (the
   * peer may be writing already); stop_prim, the unmount and the quarantine follow in WAIT.
   */
  | 'give_up';

/**
 * The table: row = from, column = to, cell = the causes of that move. A move not here never
 * happens. STOP is the initial state.
 */
export const TABLE = {
  STOP: { WAIT: ['start'] },
  WAIT: { STOP: ['stop'], ALONE: ['elected'], SECOND: ['in_sync'] },
  ALONE: { STOP: ['stop'], WAIT: ['step_down', 'give_up'], PRIM: ['peer_in_sync'] },
  PRIM: { STOP: ['stop'], WAIT: ['step_down', 'give_up'], ALONE: ['replica_lost'] },
  SECOND: { STOP: ['stop'], WAIT: ['out_of_sync'], ALONE: ['elected'] },
} as const satisfies { readonly [F in MirrorState]: { readonly [T in Exclude<MirrorState, F>]?: readonly Cause[] } };

/** Which checkers run in each state (STOP none, standby dependencies, primary all). */
export const CHECKERS_IN: { readonly [S in MirrorState]: 'none' | 'dependencies' | 'all' } = {
  STOP: 'none',
  WAIT: 'dependencies',
  SECOND: 'dependencies',
  ALONE: 'all',
  PRIM: 'all',
};

type Table = typeof TABLE;
type To<F extends MirrorState> = keyof Table[F] & MirrorState;
type CausesOf<F extends MirrorState, T extends To<F>> = Table[F][T] extends readonly (infer C extends Cause)[] ? C : never;
/** One cell of the table and one of its causes: a state change the machine can make. */
export type Move = {
  [F in MirrorState]: { [T in To<F>]: { [C in CausesOf<F, T>]: { readonly from: F; readonly to: T; readonly cause: C } }[CausesOf<F, T>] }[To<F>];
}[MirrorState];

// Compile-time checks of the table: an error here names the cause never used or the state never entered.
type Never<T extends never> = T;
export type TableChecks = [Never<Exclude<Cause, Move['cause']>>, Never<Exclude<MirrorState, Move['to']>>];

export const STATES = Object.keys(TABLE) as MirrorState[];

/** Every move of the table, as [from, to, causes] (the unit tests and the docs walk it). */
export const TRANSITIONS: readonly (readonly [MirrorState, MirrorState, readonly Cause[]])[] = STATES.flatMap((from) =>
  Object.entries(TABLE[from]).map(([to, causes]) => [from, to as MirrorState, causes as readonly Cause[]] as const),
);

export function isValidTransition(from: MirrorState, to: MirrorState, cause: Cause): boolean {
  const row: { readonly [T in MirrorState]?: readonly Cause[] } = TABLE[from];
  return row[to]?.includes(cause) ?? false;
}

/** A move from `from` to `to` on some cause (the transition actions, which carry no cause, are checked so). */
export function isTransition(from: MirrorState, to: MirrorState): boolean {
  const row: { readonly [T in MirrorState]?: readonly Cause[] } = TABLE[from];
  return row[to] !== undefined;
}

// ---------------------------------------------------------------------------------------------
// What each cause does around its state change (DRBD's after_state_ch). `before` runs in the old
// state (what must be given back before the state says so), `after` in the new one.

type Effect = (d: Draft, nowMs: number, out: MirrorAction[], from: MirrorState) => void;

const EFFECTS: { readonly [C in Cause]: { readonly before?: Effect; readonly after?: Effect } } = {
  start: {
    // The peer wait begins: two nodes started together must see each other before either is ALONE.
    before: (d, nowMs) => {
      d.peerSeen = d.peer !== null;
      d.waitPeerUntilMs = nowMs + d.cfg.peerWaitMs;
    },
  },
  stop: {
    before: (d, _n, out, from) => {
      releaseResources(d, out);
      abortReintegration(d, out);
      // A SECOND that stops while its PRIM runs on will miss what follows.
      if (from === 'SECOND' && d.peer !== null && isPrimary(d.peer.state)) setData(d, 'stale', out);
    },
  },
  elected: {
    // The way up: a new generation recorded, the dirty log, the mount, the VIP, start_prim.
    after: (d, _n, out) => {
      d.forced = false;
      startWritingAlone(d, out);
      d.mounted = true;
      out.push({ type: 'mount' });
      d.vip = true;
      out.push({ type: 'vip_add' });
      runScript(d, out, 'start_prim', 'ALONE');
    },
  },
  in_sync: {
    before: (d) => {
      d.role = 'auto';
      // The source's PRIM is usually what told us (runtime.ts): a later ALONE of it is then writes
      // without us, even though the runtime does not feed that PRIM announcement again.
      d.peerWasPrim = d.peer?.state === 'PRIM';
    },
  },
  peer_in_sync: {},
  replica_lost: {
    // The witness rule: with redis, writes wait (no dirty log) until the witness holds the next
    // generation; settle's updateWitness contends again with it at the end of this step.
    after: (d, _n, out) => {
      if (!witnessHoldsNext(d)) d.awaitingWitness = true;
      else startWritingAlone(d, out);
    },
  },
  out_of_sync: {},
  step_down: {
    before: (d, _n, out) => {
      releaseResources(d, out);
      abortReintegration(d, out);
    },
  },
  give_up: {
    // Fence first: the lease may pass to the peer any time after our verdict lapsed.
    before: (d, _n, out) => {
      if (d.mounted && !d.fenced) {
        d.fenced = true;
        out.push({ type: 'fence' });
      }
      if (d.vip) {
        d.vip = false;
        out.push({ type: 'vip_remove' });
      }
      abortReintegration(d, out);
      if (d.diverged) d.quarantinePending = true;
    },
  },
};

/** The target states a cause may lead to (some row of the table holds it). */
export type ToOn<C extends Cause> = Extract<Move, { cause: C }>['to'];

/** Validate, then apply: the move from the current state to `to` on `cause`, with its effects. */
export function change<C extends Cause>(d: Draft, nowMs: number, out: MirrorAction[], to: ToOn<C>, cause: C): void {
  const from = d.state;
  assert.ok(isValidTransition(from, to, cause), `no transition ${from} -> ${to} on ${cause}`);
  const effects = EFFECTS[cause];
  effects.before?.(d, nowMs, out, from);
  d.state = to;
  if (to !== 'ALONE') d.awaitingWitness = false;
  d.sinceMs = nowMs;
  d.changes.push({ from, to, cause } as Move);
  out.push({ type: 'transition', from, to, cause: d.cause });
  runCheckers(d, out, CHECKERS_IN[to]);
  effects.after?.(d, nowMs, out, from);
}

function runCheckers(d: Draft, out: MirrorAction[], which: 'none' | 'dependencies' | 'all'): void {
  if (which === d.checkersRunning) return;
  // Checkers that stop running forget what they saw, so that a stale failure never acts later.
  for (const c of d.cfg.checkers) {
    const keeps = which === 'all' || (which === 'dependencies' && c.kind === 'dependency');
    if (!keeps || (which === 'all' && c.kind === 'app')) d.health[c.name] = resetHealth(d.health[c.name]!);
  }
  d.checkersRunning = which;
  out.push({ type: 'run_checkers', which });
}
