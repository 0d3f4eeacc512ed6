// What a mirror module shows of itself (croft status, croft mirror status, the API): the shapes, and
// the detail built from the machine and the data plane's counters. No decision here.
import type { ModuleConfig } from '../src/config/types.js';
import type { AckLatencyHistogram } from '../src/native/index.js';
import type { DirtyLogHealth, ReintegrationStatus } from './driver-dataplane.js';
import type { MirrorDataPlanePort } from './effects.js';
import type { MirrorMachine } from './machine.js';
import type { VerifyCounters, VerifyOutcome } from './verify-schedule.js';
import type { DataStatus, MirrorScript, MirrorState, PeerView } from './types.js';

/** Outward status, the same shape as ModuleRuntime's (src/module/types.ts ModuleStatus). */
export interface MirrorModuleStatus {
  module: string;
  state: MirrorState;
  sinceMs: number;
  scriptRunning: MirrorScript | null;
  restarts: number;
  checkers: { name: string; type: string; health: 'unknown' | 'healthy' | 'failed'; lastDetail: string; lastProbeMs: number | null }[];
}

export interface LastReintegration {
  full: boolean;
  /** Dirty bytes and entries in the log when it started (0 for a full sync: no log used). */
  dirtyBytesAtStart: number;
  dirtyEntriesAtStart: number;
  bytesCopied: number;
  bytesSent: number;
  durationMs: number;
  finishedAtMs: number;
}

export interface MirrorDetail {
  module: string;
  node: string;
  peer: string;
  state: MirrorState;
  sinceMs: number;
  cause: string;
  role: 'primary' | 'secondary' | 'none';
  target: 'run' | 'stop';
  data: DataStatus;
  generation: number;
  peerGeneration: number;
  /** What the peer last announced (null: lost or not heard). */
  peerView: PeerView | null;
  link: boolean;
  ack: 'received' | 'durable';
  /** When the application's calls wait for the peer (config `mode`). */
  mode: 'every-change' | 'on-sync';
  dirs: string[];
  mounted: boolean;
  fenced: boolean;
  vip: string | null;
  /** Every VIP of the module (IPv4 and IPv6): the primary holds them all. */
  vips: string[];
  vipHeld: boolean;
  /** The application here: its script running, or how the last one left it ('failed': start_prim failed, or a stop_prim did). */
  application: 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';
  witness: { type: string; contending: boolean; allowed: boolean; validUntilMs: number; detail: string };
  /** ALONE only: bytes of the dirty zones its peer lacks (null in other states). */
  dirtyBytes: number | null;
  dirtyTrusted: boolean | null;
  /** The dirty logs' health while mounted (null otherwise): failing means changes fail with EIO. */
  dirtyLog: DirtyLogHealth | null;
  reintegrating: 'none' | 'source' | 'target';
  reintegration: (ReintegrationStatus & { etaMs: number | null }) | null;
  lastReintegration: LastReintegration | null;
  /** Reintegrations this node ran as the source since its daemon started: by outcome, and the file bytes they copied. */
  reintegrationTotals: { done: number; failed: number; bytesCopied: number };
  /** The reintegration cap (`resync_max_bytes_per_s`), or null. */
  resyncMaxBytesPerS: number | null;
  /** Verify: the last one here (scheduled or on demand), the counts of their results, and `verify_every` (null: on demand only). */
  verify: { last: VerifyOutcome | null; counters: VerifyCounters; everyMs: number | null };
  /** Per dir: the paths under it that are not replicated (`exclude`). */
  excludes: string[][];
  /**
   * This node's replicas (SECOND), one per dir. refused: handshakes that failed (wrong key, not a
   * croft peer, too slow); tampered: sessions ended on a record that failed authentication;
   * rejected: connections closed at once (not the peer's address, or the session cap).
   */
  replicas: ({ sessions: number; connected: boolean; appliedOps: number; lastError: string | null; refused: number; tampered: number; rejected: number } | null)[];
  /** This node's streams to the peer's replicas (PRIM, ALONE), one per mounted dir. */
  /** mode, ackLevel: as the mount reports them (ackLevel null until a stream was attached). */
  links: { connected: boolean; lostReason: string | null; tampered: number; mode: 'every-change' | 'on-sync'; ackLevel: 'received' | 'durable' | null;
    /** Bytes sent on this dir's streams (changes and reintegrations); live changes the peer acknowledged; their ack latency. */
    bytesSent: number; ackedOps: number; ackLatency: AckLatencyHistogram }[];
}

/** Payload of the 'transition' event (as ModuleRuntime's). */
export interface MirrorTransitionEvent {
  module: string;
  from: MirrorState;
  to: MirrorState;
  cause: string;
}

export interface DetailInput {
  module: ModuleConfig;
  node: string;
  peer: string;
  m: MirrorMachine;
  dp: MirrorDataPlanePort;
  vipHeld: boolean;
  dirtyBytes: number | null;
  dirtyTrusted: boolean | null;
  dirtyLog: DirtyLogHealth | null;
  lastReintegration: LastReintegration | null;
  reintegrationTotals: MirrorDetail['reintegrationTotals'];
  verify: MirrorDetail['verify'];
}

export function mirrorDetail(i: DetailInput): MirrorDetail {
  const { m, dp } = i;
  const mirror = i.module.mirror!;
  const r = dp.reintegrationStatus();
  const reintegration = r ? { ...r, etaMs: r.running && r.rateBytesPerSec > 0 ? Math.round((r.bytesToGo / r.rateBytesPerSec) * 1000) : null } : null;
  return {
    module: i.module.name,
    node: i.node,
    peer: i.peer,
    state: m.state,
    sinceMs: m.sinceMs,
    cause: m.cause,
    role: m.state === 'PRIM' || m.state === 'ALONE' ? 'primary' : m.state === 'SECOND' ? 'secondary' : 'none',
    target: m.target,
    data: m.data,
    generation: m.generation,
    peerGeneration: m.peerGeneration,
    peerView: m.peer,
    link: m.link,
    ack: mirror.ack,
    mode: mirror.mode,
    dirs: mirror.dirs,
    mounted: dp.mounted,
    fenced: dp.fenced,
    vip: mirror.vip,
    vips: [...mirror.vips],
    vipHeld: i.vipHeld,
    application: m.running === 'start_prim' ? 'starting' : m.running === 'stop_prim' ? 'stopping'
      : m.app === 'started' ? 'running' : m.app === 'dirty' ? 'failed' : 'stopped',
    witness: { type: mirror.witness.type, contending: m.contending, allowed: m.verdict.allowed, validUntilMs: m.verdict.validUntilMs, detail: m.verdict.detail },
    dirtyBytes: i.dirtyBytes,
    dirtyTrusted: i.dirtyTrusted,
    dirtyLog: i.dirtyLog,
    reintegrating: m.reintegrating,
    reintegration,
    lastReintegration: i.lastReintegration,
    reintegrationTotals: i.reintegrationTotals,
    resyncMaxBytesPerS: mirror.resyncMaxBytesPerS,
    verify: i.verify,
    excludes: mirror.excludes,
    replicas: dp.replicaStatus().map((s) =>
      s ? { sessions: s.sessions, connected: s.connected, appliedOps: s.appliedOps, lastError: s.lastError, refused: s.refused, tampered: s.tampered, rejected: s.rejectedPeers + s.rejectedBusy } : null),
    links: dp.linkStatus().map((l) => ({ connected: l.connected, lostReason: l.lostReason, tampered: l.tampered, mode: l.mode, ackLevel: l.ackLevel,
      bytesSent: l.bytesSent, ackedOps: l.ackedOps, ackLatency: l.ackLatency })),
  };
}
