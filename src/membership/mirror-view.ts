// What heartbeats carry of a mirror module: its state and the facts its peer decides on. Both the
// membership core (codec) and the mirror wing use these types, so they live in the core.

/**
 * Mirror states, in SafeKit's words:
 *   STOP    croft does not want the module running here; nothing mounted, no VIP, no script.
 *   WAIT    wanted, but not (yet) primary nor an in-sync secondary: waiting for the peer, for the
 *           witness, for a reintegration to finish (as its target), or leaving PRIM/ALONE (the
 *           application is stopped, or fenced, and unmounted here).
 *   ALONE   primary without a replica: the application runs here, writes are recorded in the dirty
 *           log; also the state of the source of a reintegration in progress.
 *   PRIM    primary with an in-sync SECOND: every write is mirrored synchronously.
 *   SECOND  in-sync replica of a PRIM (reached only through a finished reintegration).
 */
export type MirrorState = 'STOP' | 'WAIT' | 'ALONE' | 'PRIM' | 'SECOND';

/** What a node announces of its mirror module in its heartbeats (`announce(m)` in machine.ts). */
export interface PeerView {
  state: MirrorState;
  dataUpToDate: boolean;
  /** Its data generation (DataGenerations): a higher one than ours means it wrote without us. */
  generation: number;
  /** It would take the primary role if the choice were its own (mirror/machine.ts `eligible`). */
  eligible: boolean;
  /** Started with `croft prim`: wins the choice of the primary against a peer that was not. */
  forced: boolean;
}
