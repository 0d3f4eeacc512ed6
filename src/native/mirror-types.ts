// The public shapes of the mirror's data plane (src/native/mirror.ts): options, statuses and
// reports, as the rest of croft sees them. No code.

export type AckLevel = 'received' | 'durable';
/**
 * What a change does when the peer cannot acknowledge it: wait (`block`), record it as dirty and
 * return (`alone`), or fail with EIO at once (`fence`: this node gave up the primary role).
 */
export type FailMode = 'block' | 'alone' | 'fence';
/**
 * When an application's call waits for the peer (DESIGN.md, "Replication contracts"):
 * `every-change`: every change is on the peer before its call returns; `on-sync`: changes stream
 * in order, and fsync, fdatasync, O_SYNC/O_DSYNC writes, msync and close return only once all
 * before them is acknowledged.
 */
export type SyncMode = 'every-change' | 'on-sync';

export interface MirrorPeerOptions {
  host: string;
  port: number;
  /** The cluster key both nodes hold (HMAC-SHA256 handshake). */
  key: Buffer;
  /** `received`: acked once applied on the peer; `durable`: once fsync'd there. */
  ackLevel: AckLevel;
  /** Beyond this without an ack the peer is lost (default 2000). */
  ackTimeoutMs?: number;
  /** Default 2000. */
  connectTimeoutMs?: number;
  /** The newest protocol version this node speaks (default: this build's; src/protocol.ts localProtocol). */
  protocol?: number;
}

/** This build's mirror protocol versions, and the handshakes refused for their version (both sides). */
export interface MirrorProtocolStatus {
  current: number;
  min: number;
  versionRefusals: number;
}

export interface MirrorMountOptions {
  /** The replicated directory; the mirror is mounted over it, at the same path. */
  dir: string;
  /** Absent: run alone from the start (every change is recorded as dirty). */
  peer?: MirrorPeerOptions;
  /** Default 'alone'. */
  failMode?: FailMode;
  /** Default 'every-change'. */
  mode?: SyncMode;
  /** FUSE worker threads (default 4, at most 64). */
  threads?: number;
  /**
   * Paths relative to `dir` that stay local (config `dirs: [{ path, exclude }]`): changes under
   * them are not sent nor recorded as dirty, reintegration and verify skip them on both sides,
   * and a rename or link between one and a replicated path fails with EXDEV.
   */
  exclude?: string[];
  /**
   * Extended attributes through the mount (default true; config `xattrs`). False: every xattr
   * call fails with EOPNOTSUPP, as on a filesystem without them, and the kernel stops asking the
   * server for security.capability before each write (a round trip per write() saved).
   */
  xattrs?: boolean;
  /**
   * Track dirty changes in the durable zone log kept in `dir` (its own directory, say
   * /var/lib/croft/mirror/<module>, outside the replicated one) instead of in memory. `zoneBytes`:
   * a power of two from 64 KiB to 1 MiB. The log is opened off the JS thread before the mount.
   */
  dirtyLog?: MirrorDirtyLogOptions;
}

export interface MirrorDirtyLogOptions {
  dir: string;
  zoneBytes: number;
}

/** One dirty path of the durable log, as reintegration needs it. */
export interface MirrorDirtyEntry {
  /** Relative to the replicated directory ('' for the directory itself). */
  path: string;
  /** `[start, len]` byte ranges, zone-aligned, merged, sorted; `len === -1`: to the end of the file. */
  zones: [number, number][];
  /** The entry itself changed (created, removed, renamed, linked, truncated, metadata). */
  entryChanged: boolean;
}

export interface MirrorLinkStatus {
  connected: boolean;
  lostReason: string | null;
  sentSeq: number;
  ackedSeq: number;
  bytesSent: number;
  /** Changes acknowledged through the dirty tracker instead of the peer. */
  aloneOps: number;
  /** Sessions ended because a record from the peer failed authentication (tampered, forged, replayed). */
  tampered: number;
  /** Live changes (not a reintegration's) the peer acknowledged, over every stream. */
  ackedOps: number;
  /** Send-to-ack latency of live changes: a histogram with fixed buckets. */
  ackLatency: AckLatencyHistogram;
}

/** A Prometheus-style histogram: `cumulative[i]` samples ≤ `boundsSec[i]`, the last entry +Inf. */
export interface AckLatencyHistogram {
  boundsSec: number[];
  cumulative: number[];
  sumSec: number;
  count: number;
}

export interface MirrorStatus {
  dir: string;
  /** null when mounted without a peer. */
  ackLevel: AckLevel | null;
  mode: SyncMode;
  failMode: FailMode;
  /** false after unmount() (the counters are then the last ones). */
  mounted: boolean;
  link: MirrorLinkStatus;
}

export interface MirrorEvent {
  kind: 'peerLost';
  reason: string;
}

export interface MirrorReplicaOptions {
  dir: string;
  /** IP address to listen on. */
  host: string;
  /** 0: any free port (read it from `replica.port`). */
  port: number;
  key: Buffer;
  /**
   * This node's own dirty log (in its state directory), when it was primary before it crashed:
   * a reintegration into this replica copies its entries too and clears it when done.
   */
  dirtyLog?: MirrorDirtyLogOptions;
  /**
   * The IP addresses the primary may connect from (the peer node's configured addresses); a
   * connection from any other is closed at once and counted (`rejectedPeers`). Absent or empty: any.
   */
  allowedPeers?: string[];
  /** The newest protocol version this node speaks (default: this build's). */
  protocol?: number;
}

export interface MirrorReintegrateOptions {
  peer: MirrorPeerOptions; // the target's replica
  /** true: compare whole trees (size+mtime, then zone checksums); false: copy what the dirty logs list */
  full: boolean;
  /** Freeze and finish when fewer bytes than this remain to copy (default 4 MiB). */
  freezeBelowBytes?: number;
  /** Cap on the file data copied, bytes per second (config `resync_max_bytes_per_s`; absent: none). */
  maxBytesPerS?: number;
}

export type MirrorReintegrationPhase = 'idle' | 'scan' | 'copy' | 'final' | 'done' | 'failed';

export interface MirrorReintegrationStatus {
  running: boolean;
  phase: MirrorReintegrationPhase;
  full: boolean;
  /** Estimate of the file bytes still to copy in the current pass. */
  bytesToGo: number;
  /** File data sent. */
  bytesCopied: number;
  /** Everything sent on the reintegration's stream. */
  bytesSent: number;
  /** File data a full sync found equal by checksum (not sent). */
  bytesSkipped: number;
  entriesToGo: number;
  entriesDone: number;
  passes: number;
  rateBytesPerSec: number;
  startedAtMs: number | null; // epoch ms
  finishedAtMs: number | null; // epoch ms
  error: string | null;
}

export interface MirrorVerifyReport {
  identical: boolean;
  entriesCompared: number;
  bytesCompared: number;
  /** The first 1000 differences. */
  differences: { path: string; what: string }[];
  /** Every difference found (differences lists the first 1000). */
  differencesTotal: number;
}

export interface MirrorReplicaStatus {
  /** Authenticated sessions so far. */
  sessions: number;
  /** Connections refused in the handshake (wrong key, not a croft peer, version). */
  refused: number;
  /** Of `refused`: the primary's protocol version is older than this node speaks. */
  refusedVersion: number;
  appliedOps: number;
  ackedSeq: number;
  connected: boolean;
  lastError: string | null;
  /** Reintegrations into this replica that finished. */
  reintegrations: number;
  /** Bytes received from primaries (operations and queries). */
  bytesReceived: number;
  /** Sessions ended because a record failed authentication (tampered, forged, replayed). */
  tampered: number;
  /** Connections closed at once: not from the peer's addresses. */
  rejectedPeers: number;
  /** Connections closed at once: the session cap was reached. */
  rejectedBusy: number;
  /** Failed accepts (each followed by a back-off). */
  acceptErrors: number;
  /** Applying sessions shut down because a newer one of the primary took over. */
  superseded: number;
  /** Connections being served now (handshake or session). */
  activeSessions: number;
}

/**
 * The dirty log's health (issue 8, finding 11). While `failing`, a change the log cannot record
 * durably (a full or broken disk under its directory) fails with EIO in the application and is
 * not applied; the log repairs itself once it can write again.
 */
export interface MirrorDirtyLogStatus {
  trusted: boolean;
  failing: boolean;
  /** Writes, fdatasyncs, compactions or clears of the log that failed since it was opened. */
  writeFailures: number;
  /** Changes refused (EIO) since it was opened because their record could not be made durable. */
  marksRefused: number;
  lastError: string | null;
}
