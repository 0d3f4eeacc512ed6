// The mirror's data plane (crates/croft-mirror through crates/croft-napi): a FUSE filesystem
// mounted over a replicated directory that sends every change to the peer and returns only after
// its ack, and the peer's replica that applies them.
//
// Threads: mounting and unmounting run on the libuv pool; the FUSE handlers are Rust threads that
// never wait on JavaScript (events reach JS through a non-blocking ThreadsafeFunction). So the JS
// thread may use synchronous fs calls on a mount served by this same process: the FUSE thread
// answers without JS. One exception: with failMode 'block' and the peer lost, a change waits
// until setFailMode('alone') or unmount(), which a JS thread stuck in a sync call can never make:
// under 'block', use only asynchronous fs calls on the mount from the process that serves it.
//
// Leftover mounts: a MirrorMount garbage-collected without unmount() is detached lazily, and every
// mount still live when the process exits normally (end of the event loop, process.exit(), an
// uncaught exception) is detached by an atexit handler of the addon. On SIGKILL (or SIGTERM/SIGINT
// without a handler) nothing runs: the kernel aborts the FUSE connection when the process's
// /dev/fuse descriptor closes, the mount point then answers ENOTCONN ("Transport endpoint is not
// connected") and stays in /proc/mounts until `lazyUnmount(dir)` (`fusermount3 -u -z`).
// Keep a reference to every MirrorMount and MirrorReplica in use: one collected by the GC is
// unmounted, or stopped (their native Drop), which is the safe end for a forgotten one.
import assert from 'node:assert/strict';
import { CroftError, isErrorCode, type ErrorCode } from '../errors.js';
import { loadNative, nativeError } from './load.js';

export * from './mirror-types.js';
import type {
  FailMode, MirrorDirtyEntry, MirrorProtocolStatus, MirrorDirtyLogStatus, MirrorEvent, MirrorMountOptions,
  MirrorPeerOptions, MirrorReintegrateOptions, MirrorReintegrationStatus, MirrorReplicaOptions, MirrorReplicaStatus, MirrorStatus, MirrorVerifyReport, SyncMode,
} from './mirror-types.js';
import { reintegrationFromNative, type NativeDirtyReader, type NativeMirrorBinding, type NativeMirrorDirtyLog, type NativeMirrorMount, type NativeMirrorReplica } from './mirror-binding.js';

function assertPeer(peer: MirrorPeerOptions): void {
  assertPort(peer.port, 1);
  assert.ok(Buffer.isBuffer(peer.key) && peer.key.length > 0, 'peer.key must be a non-empty Buffer');
  assert.ok(peer.ackLevel === 'received' || peer.ackLevel === 'durable', `bad ackLevel ${String(peer.ackLevel)}`);
  assertMs('ackTimeoutMs', peer.ackTimeoutMs);
  assertMs('connectTimeoutMs', peer.connectTimeoutMs);
}

function binding(): NativeMirrorBinding {
  return loadNative() as unknown as NativeMirrorBinding;
}

function isMirrorCode(code: unknown): code is ErrorCode {
  return isErrorCode(code) && code.startsWith('CROFT_ERR_MIRROR_');
}

/** The addon's error as a CroftError: its CROFT_ERR_MIRROR_* code and message as they are, else CROFT_ERR_NATIVE. */
function mirrorError(what: string, err: unknown): CroftError {
  const code = (err as { code?: unknown } | null)?.code;
  if (err instanceof Error && isMirrorCode(code)) return new CroftError(code, err.message, { cause: err });
  return nativeError(what, err);
}

function assertFailMode(mode: string): asserts mode is FailMode {
  assert.ok(mode === 'block' || mode === 'alone' || mode === 'fence', `failMode must be 'block', 'alone' or 'fence', got ${mode}`);
}

function assertSyncMode(mode: string): asserts mode is SyncMode {
  assert.ok(mode === 'every-change' || mode === 'on-sync', `mode must be 'every-change' or 'on-sync', got ${mode}`);
}

const ZONE_BYTES_MIN = 64 * 1024;
const ZONE_BYTES_MAX = 1024 * 1024;

function assertDirtyLogOptions(dir: string, zoneBytes: number): void {
  assert.ok(dir.length > 0, 'dirtyLog.dir is empty');
  assert.ok(
    Number.isInteger(zoneBytes) && zoneBytes >= ZONE_BYTES_MIN && zoneBytes <= ZONE_BYTES_MAX && (zoneBytes & (zoneBytes - 1)) === 0,
    `zoneBytes must be a power of two from 64 KiB to 1 MiB, got ${zoneBytes}`,
  );
}

function entriesFromNative(raw: ReturnType<NativeDirtyReader['dirtyEntries']>): MirrorDirtyEntry[] {
  return raw.map((e) => ({
    path: e.path,
    zones: e.zones.map((z): [number, number] => {
      assert.equal(z.length, 2, 'a dirty zone is [start, len]');
      return [z[0] as number, z[1] as number];
    }),
    entryChanged: e.entryChanged,
  }));
}

async function clearDirty(native: NativeDirtyReader, dir: string): Promise<void> {
  try {
    await native.clearDirty();
  } catch (err) {
    throw mirrorError(`clearing the dirty log ${dir}`, err);
  }
}

/**
 * A dirty log opened without a mount (`MirrorMount.openDirtyLog`): after a crash, the daemon
 * reads what changed while alone before it mounts again. It holds the log's lock (a mount of the
 * same log fails with CROFT_ERR_MIRROR_DIRTY_LOG) until close().
 */
export class MirrorDirtyLog {
  readonly dir: string;
  readonly #native: NativeMirrorDirtyLog;

  /** @internal: use MirrorMount.openDirtyLog(). */
  constructor(dir: string, native: NativeMirrorDirtyLog) {
    this.dir = dir;
    this.#native = native;
  }

  /** The dirty paths (relative to the replicated directory), sorted. */
  dirtyPaths(): string[] {
    return this.#native.dirtyPaths();
  }

  dirtyEntries(): MirrorDirtyEntry[] {
    return entriesFromNative(this.#native.dirtyEntries());
  }

  /**
   * Bytes still to copy: the dirty ranges clipped to the sizes of the regular files under
   * `dataDir` (the replicated directory) now, from lstat of `dataDir/<path>`; other kinds and
   * missing paths count 0 (recreated or removed as entries).
   */
  dirtyBytes(dataDir: string): number {
    return this.#native.dirtyBytes(dataDir);
  }

  /** False when the log may miss changes (new log, corrupt, a failed write): compare whole trees. */
  dirtyTrusted(): boolean {
    return this.#native.dirtyTrusted();
  }

  /** Forgets every entry durably and trusts the log from now on (off the JS thread). */
  clearDirty(): Promise<void> {
    return clearDirty(this.#native, this.dir);
  }

  /** Releases the log (and its lock); idempotent. The other methods throw afterwards. */
  close(): void {
    this.#native.close();
  }
}

function assertPort(port: number, min: number): void {
  assert.ok(Number.isInteger(port) && port >= min && port <= 65535, `port must be ${min}..65535, got ${port}`);
}

function assertMs(name: string, ms: number | undefined): void {
  if (ms === undefined) return;
  assert.ok(Number.isInteger(ms) && ms >= 1 && ms <= 0xffffffff, `${name} must be a positive integer, got ${ms}`);
}

/**
 * The mirror mounted over a directory: every change made through it is applied locally and sent
 * to the peer in order; the call returns once the peer acknowledged it (or, the peer lost, as
 * `failMode` says): every call in mode `every-change`, the calls that make data durable (fsync,
 * O_SYNC writes, close...) in mode `on-sync`. Reads are local.
 */
export class MirrorMount {
  readonly dir: string;
  readonly #native: NativeMirrorMount;
  readonly #listeners = new Set<(event: MirrorEvent) => void>();
  #unmounted = false;

  /** The dirty log's directory, or null when dirty paths are tracked in memory. */
  readonly dirtyLogDir: string | null;

  private constructor(native: NativeMirrorMount, dirtyLogDir: string | null) {
    this.#native = native;
    this.dir = native.dir;
    this.dirtyLogDir = dirtyLogDir;
  }

  /**
   * Connects to the peer (if any), then mounts over `opts.dir`, off the JS thread. Rejects with a
   * CroftError CROFT_ERR_MIRROR_DIR, _MOUNT, _PEER_UNREACHABLE, _PEER_AUTH or _DIRTY_LOG (the
   * dirty log cannot be opened, or is already open); nothing is mounted then.
   */
  static async mount(opts: MirrorMountOptions): Promise<MirrorMount> {
    assert.ok(opts.dir.length > 0, 'dir is empty');
    if (opts.failMode !== undefined) assertFailMode(opts.failMode);
    if (opts.mode !== undefined) assertSyncMode(opts.mode);
    if (opts.threads !== undefined) {
      assert.ok(Number.isInteger(opts.threads) && opts.threads >= 1 && opts.threads <= 64, `threads must be 1..64, got ${opts.threads}`);
    }
    const peer = opts.peer;
    if (peer !== undefined) assertPeer(peer);
    if (opts.dirtyLog !== undefined) assertDirtyLogOptions(opts.dirtyLog.dir, opts.dirtyLog.zoneBytes);
    const what = `mounting the mirror over ${opts.dir}`;
    let native: NativeMirrorMount;
    try {
      const request = {
        dir: opts.dir,
        ...(peer === undefined ? {} : { peer: { ...peer } }),
        ...(opts.failMode === undefined ? {} : { failMode: opts.failMode }),
        ...(opts.mode === undefined ? {} : { mode: opts.mode }),
        ...(opts.threads === undefined ? {} : { threads: opts.threads }),
        ...(opts.exclude === undefined || opts.exclude.length === 0 ? {} : { exclude: [...opts.exclude] }),
        ...(opts.xattrs === undefined ? {} : { xattrs: opts.xattrs === true }),
        ...(opts.dirtyLog === undefined ? {} : { dirtyLog: { dir: opts.dirtyLog.dir, zoneBytes: opts.dirtyLog.zoneBytes } }),
      };
      native = await binding().MirrorMount.mount(request);
    } catch (err) {
      throw mirrorError(what, err);
    }
    return new MirrorMount(native, opts.dirtyLog?.dir ?? null);
  }

  /**
   * Opens (creating it if needed) a mirror's dirty log without mounting, off the JS thread:
   * after a crash, to read what changed while alone. Rejects with CROFT_ERR_MIRROR_DIRTY_LOG
   * (not writable, corrupt beyond replay, already open by a mount or another reader).
   */
  static async openDirtyLog(dir: string, zoneBytes: number): Promise<MirrorDirtyLog> {
    assertDirtyLogOptions(dir, zoneBytes);
    try {
      return new MirrorDirtyLog(dir, await binding().MirrorMount.openDirtyLog(dir, zoneBytes));
    } catch (err) {
      throw mirrorError(`opening the dirty log ${dir}`, err);
    }
  }

  /** State and counters (after unmount(), the last ones with `mounted: false`). */
  status(): MirrorStatus {
    const s = this.#native.status();
    const failMode = s.failMode;
    assertFailMode(failMode);
    const mode = s.mode;
    assertSyncMode(mode);
    const ackLevel = s.ackLevel ?? null;
    assert.ok(ackLevel === null || ackLevel === 'received' || ackLevel === 'durable', `bad ackLevel ${ackLevel}`);
    return {
      dir: s.dir,
      ackLevel,
      mode,
      failMode,
      mounted: s.mounted,
      link: {
        connected: s.link.connected,
        lostReason: s.link.lostReason ?? null,
        sentSeq: s.link.sentSeq,
        ackedSeq: s.link.ackedSeq,
        bytesSent: s.link.bytesSent,
        aloneOps: s.link.aloneOps,
        tampered: s.link.tampered,
        ackedOps: s.link.ackedOps,
        ackLatency: {
          boundsSec: s.link.ackLatencyBoundsUs.map((us) => us / 1e6),
          cumulative: s.link.ackLatencyBuckets,
          sumSec: s.link.ackLatencySumUs / 1e6,
          count: s.link.ackLatencyBuckets[s.link.ackLatencyBuckets.length - 1] ?? 0,
        },
      },
    };
  }

  /**
   * Paths (relative to `dir`) changed while the peer could not acknowledge them, sorted. Without
   * `dirtyLog` in memory only (not crash-safe), still readable after unmount(); with it, the
   * paths of the log's entries, until unmount().
   */
  dirtyPaths(): string[] {
    if (this.dirtyLogDir !== null) this.#logDir('dirtyPaths()');
    return this.#native.dirtyPaths();
  }

  #logDir(what: string): string {
    assert.ok(this.dirtyLogDir !== null, `${what} needs a mount with the dirtyLog option`);
    assert.ok(!this.#unmounted, `${what} after unmount(): the log is closed, reopen it with MirrorMount.openDirtyLog()`);
    return this.dirtyLogDir;
  }

  /** The durable log's entries, sorted by path (mounted with `dirtyLog` only, until unmount()). */
  dirtyEntries(): MirrorDirtyEntry[] {
    this.#logDir('dirtyEntries()');
    return entriesFromNative(this.#native.dirtyEntries());
  }

  /**
   * Bytes still to copy: the dirty ranges clipped to the sizes of the regular files now, from
   * lstat of `dir/<path>` (through the mount while mounted, the plain directory after unmount);
   * other kinds and missing paths count 0. Synchronous: one lstat per dirty path.
   */
  dirtyBytes(): number {
    this.#logDir('dirtyBytes()');
    return this.#native.dirtyBytes();
  }

  /** dirtyBytes() off the JS thread (the lstat calls run on the libuv pool). */
  async dirtyBytesAsync(): Promise<number> {
    this.#logDir('dirtyBytesAsync()');
    try {
      return await this.#native.dirtyBytesAsync();
    } catch (err) {
      throw mirrorError(`computing the dirty bytes of ${this.dir}`, err);
    }
  }

  /** False when the log may miss changes (new log, corrupt): compare whole trees. */
  dirtyTrusted(): boolean {
    this.#logDir('dirtyTrusted()');
    return this.#native.dirtyTrusted();
  }

  /** The dirty log's health and failure counters; null without a dirty log or after unmount(). */
  dirtyLogStatus(): MirrorDirtyLogStatus | null {
    const s = this.#native.dirtyLogStatus();
    return s === null || s === undefined ? null : { ...s, lastError: s.lastError ?? null };
  }

  /**
   * Forgets every entry durably and trusts the log from now on (off the JS thread): call it once
   * the peer is known equal (after a full sync or a reintegration). Only what the peer holds is
   * forgotten: once a stream was attached, the log is kept unless the stream is connected with
   * every change sent acknowledged (a change in flight must stay recorded: chaos finding (2),
   * docs/investigations/chaos-divergence.md). Rejects with CROFT_ERR_MIRROR_DIRTY_LOG.
   */
  clearDirty(): Promise<void> {
    return clearDirty(this.#native, this.#logDir('clearDirty()'));
  }

  /**
   * 'alone' releases every change blocked on a lost peer (each is recorded as dirty and returns);
   * 'fence' fails them, and every later change the peer does not acknowledge, with EIO.
   */
  setFailMode(mode: FailMode): void {
    assertFailMode(mode);
    assert.ok(!this.#unmounted, 'setFailMode() after unmount()');
    this.#native.setFailMode(mode);
  }

  /** Declares the peer lost now (membership saw it die before the ack timeout). */
  dropPeer(reason: string): void {
    assert.ok(!this.#unmounted, 'dropPeer() after unmount()');
    this.#native.dropPeer(reason);
  }

  /**
   * Brings the target's replica (`opts.peer`) up to date while the application keeps writing
   * through this mount, which must run alone (peer lost, or mounted without one), then mirrors
   * synchronously again on that stream: resolves once the target is in sync and every later
   * change waits for its ack. Runs off the JS thread (Rust, on the libuv pool). `full: false`
   * copies what the dirty logs of both sides list (needs the `dirtyLog` option); `full: true`
   * compares whole trees. Rejects with CROFT_ERR_MIRROR_REINTEGRATION: the mount stays alone and
   * its dirty log still lists everything.
   */
  async reintegrate(opts: MirrorReintegrateOptions): Promise<MirrorReintegrationStatus> {
    assert.ok(!this.#unmounted, 'reintegrate() after unmount()');
    assertPeer(opts.peer);
    assert.equal(typeof opts.full, 'boolean', 'full must be a boolean');
    if (opts.freezeBelowBytes !== undefined) {
      assert.ok(Number.isFinite(opts.freezeBelowBytes) && opts.freezeBelowBytes >= 0, `bad freezeBelowBytes ${opts.freezeBelowBytes}`);
    }
    if (opts.maxBytesPerS !== undefined) {
      assert.ok(Number.isInteger(opts.maxBytesPerS) && opts.maxBytesPerS >= 1, `bad maxBytesPerS ${opts.maxBytesPerS}`);
    }
    const request = {
      peer: { ...opts.peer },
      full: opts.full,
      ...(opts.freezeBelowBytes === undefined ? {} : { freezeBelowBytes: opts.freezeBelowBytes }),
      ...(opts.maxBytesPerS === undefined ? {} : { maxBytesPerS: opts.maxBytesPerS }),
    };
    try {
      return reintegrationFromNative(await this.#native.reintegrate(request));
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code;
      if (err instanceof Error && isMirrorCode(code)) throw new CroftError(code, err.message, { cause: err });
      throw new CroftError('CROFT_ERR_MIRROR_REINTEGRATION', `reintegration of ${this.dir}: ${String(err)}`, { cause: err });
    }
  }

  /** Progress of the current or last reintegration (cheap; 'idle' before the first). */
  reintegrationStatus(): MirrorReintegrationStatus {
    return reintegrationFromNative(this.#native.reintegrationStatus());
  }

  /** Stops a running reintegration: its promise rejects, the mount stays alone. No-op otherwise. */
  abortReintegration(reason: string): void {
    if (this.#unmounted) return;
    this.#native.abortReintegration(reason);
  }

  /**
   * Compares this side with the peer's replica while mirrored (type, size, mode, owner, symlink
   * target, xattrs, zone checksums), one file at a time with changes held back for that file,
   * over a second, query-only session. Off the JS thread. Rejects with CROFT_ERR_MIRROR_VERIFY
   * (not mirrored, peer unreachable).
   */
  async verify(peer: MirrorPeerOptions): Promise<MirrorVerifyReport> {
    assert.ok(!this.#unmounted, 'verify() after unmount()');
    assertPeer(peer);
    try {
      const r = await this.#native.verify({ ...peer });
      return {
        identical: r.identical,
        entriesCompared: r.entriesCompared,
        bytesCompared: r.bytesCompared,
        differences: r.differences.map((d) => ({ path: d.path, what: d.what })),
        differencesTotal: r.differencesTotal,
      };
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code;
      if (err instanceof Error && isMirrorCode(code)) throw new CroftError(code, err.message, { cause: err });
      throw new CroftError('CROFT_ERR_MIRROR_VERIFY', `verify of ${this.dir}: ${String(err)}`, { cause: err });
    }
  }

  /**
   * Calls `listener` on the JS thread for each event (today: the peer lost), including events from
   * before the first listener was added. Returns a function that removes it. A listener that
   * throws raises an uncaught exception, as an EventEmitter listener would.
   */
  onEvent(listener: (event: MirrorEvent) => void): () => void {
    if (this.#listeners.size === 0 && !this.#unmounted) {
      this.#native.onEvent((raw) => {
        assert.equal(raw.kind, 'peerLost', `unknown mirror event ${raw.kind}`);
        const event: MirrorEvent = { kind: 'peerLost', reason: raw.reason };
        for (const l of [...this.#listeners]) l(event);
      });
    }
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /**
   * Unmounts (off the JS thread) and closes the stream; idempotent. Stop the application first:
   * a busy mount is detached lazily and this rejects with CROFT_ERR_MIRROR_UNMOUNT. A dirty log
   * is closed once the mirror is gone (read it again with MirrorMount.openDirtyLog()).
   */
  async unmount(): Promise<void> {
    this.#unmounted = true;
    this.#listeners.clear();
    try {
      await this.#native.unmount();
    } catch (err) {
      throw mirrorError(`unmounting the mirror over ${this.dir}`, err);
    }
  }
}

/** The peer's side: applies the primary's changes in place to `dir` (no mount there) and acks them. */
export class MirrorReplica {
  readonly dir: string;
  readonly #native: NativeMirrorReplica;

  private constructor(dir: string, native: NativeMirrorReplica) {
    this.dir = dir;
    this.#native = native;
  }

  /** Opens `dir` and listens; throws CROFT_ERR_MIRROR_REPLICA (no directory, address in use). */
  static start(opts: MirrorReplicaOptions): MirrorReplica {
    assertPort(opts.port, 0);
    assert.ok(Buffer.isBuffer(opts.key) && opts.key.length > 0, 'key must be a non-empty Buffer');
    if (opts.dirtyLog !== undefined) assertDirtyLogOptions(opts.dirtyLog.dir, opts.dirtyLog.zoneBytes);
    try {
      return new MirrorReplica(opts.dir, binding().MirrorReplica.start({ ...opts }));
    } catch (err) {
      throw mirrorError(`starting the mirror replica over ${opts.dir}`, err);
    }
  }

  /** The bound port (the real one when started with port 0). */
  get port(): number {
    return this.#native.port;
  }

  /** Counters (after stop(), the final ones). */
  status(): MirrorReplicaStatus {
    const s = this.#native.status();
    return {
      sessions: s.sessions,
      refused: s.refused,
      refusedVersion: s.refusedVersion,
      appliedOps: s.appliedOps,
      ackedSeq: s.ackedSeq,
      connected: s.connected,
      lastError: s.lastError ?? null,
      reintegrations: s.reintegrations,
      bytesReceived: s.bytesReceived,
      tampered: s.tampered,
      rejectedPeers: s.rejectedPeers,
      rejectedBusy: s.rejectedBusy,
      acceptErrors: s.acceptErrors,
      superseded: s.superseded,
      activeSessions: s.activeSessions,
    };
  }

  /** Stops listening and closes the session (the primary then sees the peer lost); idempotent. */
  stop(): void {
    this.#native.stop();
  }
}

/** This build's mirror protocol versions and the handshakes refused for their version so far. */
export function mirrorProtocol(): MirrorProtocolStatus {
  const p = binding().mirrorProtocol();
  return { current: p.current, min: p.min, versionRefusals: p.versionRefusals };
}

/**
 * `fusermount3 -u -z <dir>` off the JS thread: detaches a FUSE mount even while busy or after its
 * server died (SIGKILL leaves ENOTCONN). Resolves quietly when nothing is mounted there.
 */
export async function lazyUnmount(dir: string): Promise<void> {
  try {
    await binding().mirrorLazyUnmount(dir);
  } catch (err) {
    throw nativeError(`lazy unmount of ${dir}`, err);
  }
}

/**
 * Copies the files and symlinks at `paths` (relative to `dir`, which must not be mounted) into
 * `<dest>/<path>` off the JS thread, for the quarantine: never through a symlink inside `dir`
 * (resolved beneath it by the kernel, so its owner cannot make root copy a file from elsewhere),
 * directories created 0700, file modes and times kept (set-id bits dropped). Directories, fifos,
 * sockets, devices and gone paths are skipped; `failed` lists "<path>: <error>" for the others.
 */
export async function quarantineCopy(dir: string, paths: string[], dest: string): Promise<{ copied: number; failed: string[] }> {
  try {
    return await binding().mirrorQuarantineCopy(dir, paths, dest);
  } catch (err) {
    throw nativeError(`quarantine of ${dir}`, err);
  }
}
