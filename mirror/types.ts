// Contract of the mirror module kind's decision core (mirror/machine.ts) and of its split-brain
// witnesses (mirror/witness.ts). The daemon feeds MirrorEvents in and carries MirrorActions out, in
// order: the replication data plane (crates/, through the napi binding), the VIP, the scripts.
import type { FailureAction, RestartPolicy } from '../src/config/types.js';

export type { MirrorState, PeerView } from '../src/membership/mirror-view.js';
import type { MirrorState, PeerView } from '../src/membership/mirror-view.js';

export type MirrorScript = 'start_prim' | 'stop_prim';

/**
 * What this node's persistent record says of its replicated data.
 *   up-to-date  it holds every acknowledged write (it was the last PRIM/ALONE, or an in-sync SECOND
 *               of a primary that stopped or was lost, or a person said so with `croft prim`);
 *   stale       it misses writes (a reintegration into it began and did not finish, or the primary
 *               went on without it);
 *   unknown     no record (first start): croft will not elect it; `croft prim` on the right node.
 */
export type DataStatus = 'up-to-date' | 'stale' | 'unknown';

/**
 * Data generations (as DRBD's generation identifiers, a number here). The persistent record holds,
 * with the status, this node's `generation` and the highest generation its peer ever announced
 * (`peerGeneration`, recorded only when above ours: it means the peer wrote without us). A node that starts writing without its peer (enters ALONE) first records
 * max(generation, peerGeneration) + 1, durably, before the dirty log and the mount; a finished
 * reintegration gives the target the source's generation, so an in-sync PRIM and SECOND share one.
 * A record without generations (first start) is generation 0.
 */
export interface DataGenerations {
  generation: number;
  peerGeneration: number;
}

export type WitnessKind = 'none' | 'ping' | 'redis';

export type MirrorCommand = 'start' | 'stop' | 'prim' | 'second' | 'swap';

export interface MirrorCheckerConfig {
  name: string;
  /**
   * `dependency`: runs whenever the module is wanted (WAIT, SECOND, PRIM, ALONE); while failed the
   * node is not eligible as primary (a primary steps down and its peer takes over).
   * `app`: runs only on the primary; its failure applies onFailure (restart or stop).
   */
  kind: 'dependency' | 'app';
  onFailure: FailureAction;
  rise: number;
  fall: number;
}

export interface MirrorMachineConfig {
  module: string;
  /** This node's name. */
  node: string;
  /** The other node of the mirror. */
  peer: string;
  witness: WitnessKind;
  /** Node that should run the application when both are healthy (after a reintegration). */
  primPreference: string | null;
  /**
   * After `start`, how long a node that has not heard its peer yet waits before it may go ALONE:
   * two nodes started together must see each other first, or without a witness both would go
   * ALONE. The daemon passes about twice the heartbeat timeout.
   */
  peerWaitMs: number;
  checkers: MirrorCheckerConfig[];
  restart: RestartPolicy;
}

export type MirrorEvent =
  /** A person or the API asked for it (SafeKit's start, stop, prim, second, swap). */
  | { type: 'command'; command: MirrorCommand; cause: string }
  /** The peer's announcement, from its heartbeats: its mirror state (sent on change, may repeat). */
  | { type: 'peer'; peer: PeerView }
  /** Membership declared the peer down (no heartbeat on any LAN for the timeout). */
  | { type: 'peer_lost' }
  /**
   * A witness verdict, with the `epoch` of the `witness contend` action it answers: a verdict of an
   * earlier contention (in flight when the machine released and contended again) is ignored, as
   * is any verdict while the machine does not contend. `allowed`
   * holds until validUntilMs on this node's clock (mirror/witness.ts computes it with a margin): the
   * driver must deliver a `tick` at that time at the latest (see nextWakeMs).
   */
  | { type: 'witness'; allowed: boolean; validUntilMs: number; detail: string; epoch: number; peerGeneration?: number }
  /**
   * From the replication data plane: the authenticated TCP stream to the peer is up or broken; a
   * reintegration this node took part in (as source or target) finished: every dirty zone and all
   * metadata were copied and acknowledged.
   */
  | { type: 'replication'; what: 'link_up' | 'link_broken' | 'reintegration_done' }
  /** A script the machine launched ended (timedOut implies !ok). */
  | { type: 'script_done'; script: MirrorScript; ok: boolean; exitCode: number | null; timedOut: boolean }
  /** One probe result of a checker (health.ts applies rise/fall). */
  | { type: 'probe'; checker: string; ok: boolean; detail: string }
  /** The persistent record of the local data, read by the daemon at start (STOP or WAIT only). */
  | { type: 'data'; status: DataStatus; generation?: number; peerGeneration?: number }
  /** Time passed: witness validity, the peer wait, the restart window. */
  | { type: 'tick' };

/**
 * What the driver must do, strictly in the order given, each done before the next starts (a failed
 * data-plane action is reported back as an event, e.g. `link_broken`). The actions around a state
 * change come from its cause in the transition table (mirror/transitions.ts, EFFECTS); checkInvariants
 * (mirror/invariants.ts) replays every step's actions against these rules. The order rules:
 *
 * - On the way up (entering ALONE): `dirty_log start` → `mount` → `vip_add` → `run_script
 *   start_prim`. The mount must be there before the application opens its files; the VIP comes
 *   before start_prim because an application may bind to it (PostgreSQL's listen_addresses), and it
 *   is the last *resource* taken, so clients reach this node only once its data is promoted.
 * - On the way down (graceful: stop, swap, failed dependency): `run_script stop_prim` → (its
 *   script_done) → `vip_remove` → `unmount`: the exact reverse, the VIP the first resource given
 *   back. The state stays PRIM/ALONE until the unmount, so the peer cannot promote itself while
 *   the application may still be writing (stop_prim may flush, e.g. a PostgreSQL checkpoint).
 * - Giving up (the witness verdict lapsed, or a healed split brain lost): `fence` (the data plane
 *   fails every further write with EIO, at once) → `vip_remove` → `transition` to WAIT → `run_script
 *   stop_prim` → ... → `unmount` → `quarantine`. The lease may pass to the peer any time after our
 *   verdict lapsed, so nothing may be written here from that instant: no waiting for a script.
 * - `record_data` must be durable (fsync) before the next action: `record_data stale` always
 *   precedes `reintegrate target`, so a crash in the middle of a reintegration leaves a node that
 *   knows its data is partial; entering ALONE, the `record_data` of the new generation precedes
 *   `dirty_log start` and `mount`, so no write is made alone under an unrecorded generation.
 */
export type MirrorAction =
  /** One event per state change (logged with node, module, from, to, cause). */
  | { type: 'transition'; from: MirrorState; to: MirrorState; cause: string }
  /** Which checkers run now: none (STOP), dependencies (WAIT, SECOND), all (PRIM, ALONE). */
  | { type: 'run_checkers'; which: 'none' | 'dependencies' | 'all' }
  /** A checker's health changed (logs, metrics). */
  | { type: 'checker_change'; checker: string; healthy: boolean; detail: string }
  /**
   * Contend for the witness (poll Witness.check() and feed its verdicts) or stop (Witness.close()
   * releases a redis lease). The machine contends only where it is, or is about to become, primary.
   * `epoch` grows with each contention; the driver echoes it in the verdicts of that contention.
   */
  | { type: 'witness'; contend: boolean; epoch: number }
  /** Persist the data status and generations (durably, before the next action). */
  | { type: 'record_data'; status: DataStatus; generation: number; peerGeneration: number }
  /**
   * Start recording changed zones in the durable dirty log (entering ALONE), or clear it (the
   * reintegration it described finished: the peer has all of it).
   */
  | { type: 'dirty_log'; op: 'start' | 'clear' }
  /** Promote the data plane: take the handle under each directory, mount FUSE over it. */
  | { type: 'mount' }
  /** Make every further write through the mount fail (EIO) at once, before anything else. */
  | { type: 'fence' }
  /** Unmount (after stop_prim; a fenced mount included); the directory is again the replica's. */
  | { type: 'unmount' }
  /** Add the VIP and send gratuitous ARP. */
  | { type: 'vip_add' }
  | { type: 'vip_remove' }
  /** Launch this script now (at most one at a time). `entering`: the state it leads to (CROFT_STATE). */
  | { type: 'run_script'; script: MirrorScript; entering: MirrorState }
  /**
   * Start a reintegration: as source (the primary copies dirty zones, or everything that differs
   * without a trustworthy log, while mirroring new writes), or as target (receive in place).
   */
  | { type: 'reintegrate'; role: 'source' | 'target' }
  /** The reintegration in progress stops (peer lost, link broken, stopped); the dirty log stays. */
  | { type: 'reintegrate_abort' }
  /**
   * Copy what this node wrote while ALONE (the files of its dirty log) into the quarantine folder:
   * it gave up, and its peer's version will overwrite it. Never deleted.
   */
  | { type: 'quarantine'; reason: string }
  /** A command that cannot apply now (the daemon returns it to the caller as an error). */
  | { type: 'refused'; command: MirrorCommand; reason: string };

/** A verdict of a witness: may this node run the application without its peer? */
export interface WitnessVerdict {
  allowed: boolean;
  /** For logs: which address answered, who holds the lease, what failed. */
  detail: string;
  /**
   * Until when (epoch ms, this node's clock) `allowed` may be relied upon: for a lease, its
   * acquisition time plus ttl minus the safety margin; for ping, the check time plus the validity.
   */
  validUntilMs: number;
  /**
   * The highest data generation the peer recorded with the witness (redis: stored in the lease),
   * when the witness knows one: a survivor learns its peer wrote without it.
   */
  peerGeneration?: number;
}

/** What a node tells the witness when it contends: its data generation (stored with a redis lease). */
export interface WitnessContext {
  generation: number;
}

export interface Witness {
  check(ctx?: WitnessContext): Promise<WitnessVerdict>;
  /** Stop using the witness (a redis lease held is released). */
  close(): Promise<void>;
}
