// Driver: the replication data plane of one mirror module on this node (src/native/mirror.ts): the
// replicas that listen while this node is not primary, the mounts over every replicated directory
// while it is, the dirty logs, reintegration, verify and the quarantine of what was written alone.
// One object per module; every method is called by the runtime's action queue, one at a time.
import fs from 'node:fs';
import path from 'node:path';
import { CroftError } from '../src/errors.js';
import { localProtocol } from '../src/protocol.js';
import {
  MirrorMount,
  MirrorReplica,
  lazyUnmount,
  quarantineCopy,
  type AckLevel,
  type SyncMode,
  type MirrorPeerOptions,
  type MirrorReplicaOptions,
  type MirrorLinkStatus,
  type MirrorReintegrationStatus,
  type MirrorVerifyReport,
  type MirrorReplicaStatus,
} from '../src/native/index.js';

/** A reintegration as the mounts report it (src/native), summed over the dirs: phase lists each one's. */
export type ReintegrationStatus = Omit<MirrorReintegrationStatus, 'phase' | 'bytesSkipped'> & { phase: string };

/** What verify reports (src/native MirrorVerifyReport), summed over the dirs. */
export type VerifyResult = Omit<MirrorVerifyReport, 'differencesTotal'>;

export interface DataPlaneOptions {
  module: string;
  dirs: string[];
  /** <cluster.stateDir>/mirror/<module> */
  stateDir: string;
  /** This node's address on the replication LAN (the replica listens there). */
  host: string;
  /** The peer's address on the replication LAN. */
  peerHost: string;
  /** Every configured address of the peer: the only ones the replicas accept connections from. */
  peerAddresses?: string[];
  /** dirs[i] replicates on port + i. */
  port: number;
  key: Buffer;
  ack: AckLevel;
  /** When the application's calls wait for the peer (config `mode`). */
  mode: SyncMode;
  /** Extended attributes through the mount (config `xattrs`, default true). */
  xattrs?: boolean;
  ackTimeoutMs: number;
  zoneBytes: number;
  /** Per dir: paths relative to it that stay local (config exclude). */
  excludes?: string[][];
  /** Cap on a reintegration's file data, bytes per second, shared by the dirs (null: none). */
  resyncMaxBytesPerS?: number | null;
  /** The data plane's own report that the peer was lost (ack timeout, stream closed). */
  onPeerLost: (reason: string) => void;
  log: { info(o: object, m?: string): void; warn(o: object, m?: string): void; error(o: object, m?: string): void };
}

/**
 * Health of the dirty logs (issue 8, finding 11): while failing, changes they cannot record fail
 * with EIO in the application; the counters are since the logs were opened (this mount).
 */
export interface DirtyLogHealth {
  failing: boolean;
  writeFailures: number;
  marksRefused: number;
  lastError: string | null;
}

/** How long a mount waits for the dirty log a just-unmounted mount still holds, and how often it looks. */
const LOG_BUSY_WAIT_MS = 10_000;
const LOG_BUSY_STEP_MS = 50;

export class MirrorDataPlane {
  readonly o: DataPlaneOptions;
  #replicas: (MirrorReplica | null)[];
  #mounts: MirrorMount[] = [];
  /**
   * The dirty paths of each directory, read from its mount just before the unmount: a fenced mount
   * whose unmount had to be lazy may keep its dirty log open (a write held by the fence pins the
   * FUSE session), and the quarantine that follows must not depend on reopening it.
   */
  #dirtyAtUnmount = new Map<number, string[]>();
  #fenced = false;
  #writingAlone = false;
  /** Replicas that could not start (address in use...): retried by ensureReplicas. */
  #replicaError: string | null = null;

  constructor(o: DataPlaneOptions) {
    this.o = o;
    this.#replicas = o.dirs.map(() => null);
  }

  dirtyDir(i: number): string {
    return path.join(this.o.stateDir, 'dirty', String(i));
  }

  peerOptions(i: number): MirrorPeerOptions {
    return { host: this.o.peerHost, port: this.o.port + i, key: this.o.key, ackLevel: this.o.ack, ackTimeoutMs: this.o.ackTimeoutMs, connectTimeoutMs: 1000,
      protocol: localProtocol().current };
  }

  get mounted(): boolean {
    return this.#mounts.length > 0;
  }

  get fenced(): boolean {
    return this.#fenced;
  }

  /**
   * At daemon start: detach what a killed daemon left mounted (ENOTCONN mounts), create the
   * replicated directories and the state folders.
   */
  async prepare(): Promise<void> {
    for (const [i, dir] of this.o.dirs.entries()) {
      await lazyUnmount(dir);
      fs.mkdirSync(dir, { recursive: true });
      fs.mkdirSync(this.dirtyDir(i), { recursive: true });
    }
    fs.mkdirSync(path.join(this.o.stateDir, 'quarantine'), { recursive: true, mode: 0o700 });
    fs.chmodSync(path.join(this.o.stateDir, 'quarantine'), 0o700);
  }

  /** Replicas listen whenever this node is not primary and the module runs (idempotent). */
  ensureReplicas(): void {
    if (this.mounted) return;
    for (const [i, dir] of this.o.dirs.entries()) {
      if (this.#replicas[i]) continue;
      // With this node's own dirty log: what it wrote as primary before it crashed or gave up is
      // copied over by the reintegration into it too (and the log cleared when done).
      const opts: MirrorReplicaOptions & { dirtyLog: { dir: string; zoneBytes: number } } = {
        dir, host: this.o.host, port: this.o.port + i, key: this.o.key, dirtyLog: { dir: this.dirtyDir(i), zoneBytes: this.o.zoneBytes },
        allowedPeers: this.o.peerAddresses ?? [this.o.peerHost],
        protocol: localProtocol().current,
      };
      try {
        this.#replicas[i] = MirrorReplica.start(opts);
        this.#replicaError = null;
      } catch (e) {
        const msg = (e as Error).message;
        if (msg !== this.#replicaError) this.o.log.error({ event: 'mirror_replica_error', module: this.o.module, dir, err: msg }, `mirror replica over ${dir}: ${msg}`);
        this.#replicaError = msg;
      }
    }
  }

  stopReplicas(): void {
    for (const [i, r] of this.#replicas.entries()) {
      r?.stop();
      this.#replicas[i] = null;
    }
  }

  replicasRunning(): boolean {
    return this.#replicas.every((r) => r !== null);
  }

  /** Every replica holds a session with the primary. */
  replicasConnected(): boolean {
    return this.#replicas.every((r) => r !== null && r.status().connected);
  }

  replicaStatus(): (MirrorReplicaStatus | null)[] {
    return this.#replicas.map((r) => (r ? r.status() : null));
  }

  /**
   * Promotes the data plane: the replicas stop, then each directory is mounted alone with its
   * durable dirty log. Alone, not connected to the peer's replica: the machine enters ALONE, and
   * the peer becomes an in-sync SECOND only through a reintegration (MirrorMount.reintegrate runs
   * on a mount that runs alone, then mirrors synchronously on its stream).
   */
  async mount(): Promise<void> {
    this.stopReplicas();
    try {
      for (const [i, dir] of this.o.dirs.entries()) {
        const exclude = this.o.excludes?.[i] ?? [];
        const m = await this.#mountWhenLogFree(() => MirrorMount.mount({ dir, failMode: this.#writingAlone ? 'alone' : 'block', mode: this.o.mode,
          ...(this.o.xattrs === false ? { xattrs: false } : {}), dirtyLog: { dir: this.dirtyDir(i), zoneBytes: this.o.zoneBytes }, ...(exclude.length > 0 ? { exclude } : {}) }), dir);
        m.onEvent((ev) => this.o.onPeerLost(ev.reason));
        this.#mounts.push(m);
      }
    } catch (e) {
      await this.unmount();
      throw e;
    }
    this.#fenced = false;
  }

  /**
   * Mounts, waiting up to LOG_BUSY_WAIT_MS while the dirty log is still held by the mount this
   * node just unmounted: a task of that mount still running on the libuv pool (a dirty-log clear
   * waiting for the mount's last operation, a reintegration told to abort) keeps the mount's
   * internals, and with them the log's lock, until it ends. Seen by `croft lab chaos` (seed
   * 20261207 with all nine fault kinds, round 3): a demotion then a promotion 3 ms apart found the
   * log open and stopped the module.
   */
  async #mountWhenLogFree(mount: () => Promise<MirrorMount>, dir: string): Promise<MirrorMount> {
    const t0 = Date.now();
    for (;;) {
      try {
        const m = await mount();
        if (Date.now() - t0 >= LOG_BUSY_STEP_MS) {
          this.o.log.info({ event: 'mirror_mount_waited', module: this.o.module, dir, waitedMs: Date.now() - t0 }, `mount of ${dir} waited ${Date.now() - t0} ms for its dirty log`);
        }
        return m;
      } catch (e) {
        if (!/it is already open/.test((e as Error).message) || Date.now() - t0 >= LOG_BUSY_WAIT_MS) throw e;
        await new Promise((r) => setTimeout(r, LOG_BUSY_STEP_MS));
      }
    }
  }

  /**
   * Whether a change the peer cannot acknowledge is recorded in the dirty log and returns
   * (`alone`: the machine said `dirty_log start`), or waits (`block`: PRIM, or ALONE while the
   * witness does not hold the new generation yet). Kept for the mounts made later. A fenced mount
   * stays blocked.
   */
  setWritingAlone(alone: boolean): void {
    this.#writingAlone = alone;
    if (this.#fenced) return;
    for (const m of this.#mounts) m.setFailMode(alone ? 'alone' : 'block');
  }

  /**
   * Fencing: from now on no write through the mount is acknowledged: failMode 'fence' and the
   * peer dropped, so every change (and every one waiting for an ack) fails with EIO at once; the
   * application sees its writes fail and stop_prim finds no process stuck in a write.
   */
  fence(): void {
    for (const m of this.#mounts) {
      m.setFailMode('fence');
      m.dropPeer('fenced: this node gave up the primary role');
    }
    this.#fenced = true;
  }

  /** Unmounts every directory (lazily when busy: the application was stopped, or was killed). */
  async unmount(): Promise<void> {
    const mounts = this.#mounts;
    this.#mounts = [];
    for (const m of mounts) {
      try {
        this.#dirtyAtUnmount.set(this.o.dirs.indexOf(m.dir), m.dirtyPaths());
      } catch {
        // the log is gone with the session: the quarantine reopens it
      }
      try {
        await m.unmount();
      } catch (e) {
        this.o.log.warn({ event: 'mirror_unmount_lazy', module: this.o.module, dir: m.dir, err: (e as Error).message }, `unmount of ${m.dir} failed, detaching lazily`);
        await lazyUnmount(m.dir);
      }
    }
    this.#fenced = false;
  }

  /** Each mount's stream to the peer (empty when not mounted). */
  /** Each mount's stream, with the mode and ack level the mount itself reports. */
  linkStatus(): (MirrorLinkStatus & { mode: SyncMode; ackLevel: AckLevel | null })[] {
    return this.#mounts.map((m) => {
      const s = m.status();
      return { ...s.link, mode: s.mode, ackLevel: s.ackLevel };
    });
  }

  /** Every mount holds a connected stream to the peer. */
  linkConnected(): boolean {
    return this.mounted && this.#mounts.every((m) => m.status().link.connected);
  }

  dirtyTrusted(): boolean {
    return this.#mounts.every((m) => m.dirtyTrusted());
  }

  /** The dirty logs' health over every mount (null without one): failing if any is, counters summed. */
  dirtyLogStatus(): DirtyLogHealth | null {
    const all = this.#mounts.map((m) => m.dirtyLogStatus()).filter((s) => s !== null);
    if (all.length === 0) return null;
    return {
      failing: all.some((s) => s.failing),
      writeFailures: all.reduce((n, s) => n + s.writeFailures, 0),
      marksRefused: all.reduce((n, s) => n + s.marksRefused, 0),
      lastError: all.find((s) => s.lastError !== null)?.lastError ?? null,
    };
  }

  /** Bytes of the dirty zones still to copy (one lstat per dirty path, off the JS thread). */
  async dirtyBytesAsync(): Promise<number> {
    if (this.#fenced) return 0; // an lstat on a fenced mount is pointless: its data goes to quarantine
    const all = await Promise.all(this.#mounts.map((m) => m.dirtyBytesAsync()));
    return all.reduce((s, b) => s + b, 0);
  }

  dirtyEntries(): number {
    return this.#mounts.reduce((s, m) => s + m.dirtyEntries().length, 0);
  }

  async clearDirty(): Promise<void> {
    for (const m of this.#mounts) await m.clearDirty();
  }

  /** Copies the dirty zones (or, full, everything that differs) to the peer while writes go on. */
  async reintegrate(full: boolean): Promise<ReintegrationStatus[]> {
    const cap = this.o.resyncMaxBytesPerS ?? null;
    // The dirs copy at once: each gets its share of the cap, so together they stay under it.
    const each = cap === null ? undefined : Math.max(1, Math.floor(cap / Math.max(1, this.#mounts.length)));
    return Promise.all(this.#mounts.map((m, i) => m.reintegrate({ peer: this.peerOptions(i), full, ...(each === undefined ? {} : { maxBytesPerS: each }) })));
  }

  abortReintegration(reason: string): void {
    for (const m of this.#mounts) {
      try {
        m.abortReintegration(reason);
      } catch {
        // nothing runs, or no such API: nothing to abort
      }
    }
  }

  reintegrationStatus(): ReintegrationStatus | null {
    const all: ReintegrationStatus[] = [];
    for (const m of this.#mounts) {
      try {
        all.push(m.reintegrationStatus());
      } catch {
        return null;
      }
    }
    if (all.length === 0) return null;
    const sum = (k: keyof ReintegrationStatus) => all.reduce((s, x) => s + (x[k] as number), 0);
    return {
      running: all.some((x) => x.running),
      phase: all.map((x) => x.phase).join(','),
      full: all.some((x) => x.full),
      bytesToGo: sum('bytesToGo'),
      bytesCopied: sum('bytesCopied'),
      bytesSent: sum('bytesSent'),
      entriesToGo: sum('entriesToGo'),
      entriesDone: sum('entriesDone'),
      passes: Math.max(...all.map((x) => x.passes)),
      rateBytesPerSec: sum('rateBytesPerSec'),
      startedAtMs: all.every((x) => x.startedAtMs !== null) ? Math.min(...all.map((x) => x.startedAtMs!)) : null,
      finishedAtMs: all.every((x) => x.finishedAtMs !== null) ? Math.max(...all.map((x) => x.finishedAtMs!)) : null,
      error: all.map((x) => x.error).find((e) => e) ?? null,
    };
  }

  async verify(): Promise<VerifyResult> {
    if (!this.mounted) throw new CroftError('CROFT_ERR_USAGE', `${this.o.module} is not mounted on this node: run verify on the primary`);
    const results = await Promise.all(this.#mounts.map((m, i) => m.verify(this.peerOptions(i))));
    return {
      identical: results.every((r) => r.identical),
      entriesCompared: results.reduce((s, r) => s + r.entriesCompared, 0),
      bytesCompared: results.reduce((s, r) => s + r.bytesCompared, 0),
      differences: results.flatMap((r, i) => r.differences.map((d) => ({ path: path.join(this.o.dirs[i]!, d.path), what: d.what }))),
    };
  }

  /**
   * Copies the files of this node's dirty log entries from the unmounted directories into
   * <state>/quarantine/<ISO time>/<dir>/<path> before anything overwrites them. Never deletes.
   * Returns the number of paths copied. The replicas must not run (they would change the files).
   */
  async quarantine(): Promise<{ folder: string; copied: number; failed: string[] }> {
    const stamp = new Date().toISOString().replace(/:/g, '-');
    const top = path.join(this.o.stateDir, 'quarantine');
    const folder = path.join(top, stamp);
    // Root's copies of someone's data: readable by root only (an older install made it 0755).
    await fs.promises.mkdir(top, { recursive: true, mode: 0o700 });
    await fs.promises.chmod(top, 0o700);
    await fs.promises.mkdir(folder, { mode: 0o700 });
    let copied = 0;
    const failed: string[] = [];
    for (const [i, dir] of this.o.dirs.entries()) {
      const paths = new Set(this.#dirtyAtUnmount.get(i) ?? []);
      let log: Awaited<ReturnType<typeof MirrorMount.openDirtyLog>> | null = null;
      // A lazily detached mount releases its log when its FUSE session ends: wait a little for it.
      for (let attempt = 0; ; attempt++) {
        try {
          log = await MirrorMount.openDirtyLog(this.dirtyDir(i), this.o.zoneBytes);
          break;
        } catch (e) {
          if (attempt >= 10) {
            if (this.#dirtyAtUnmount.has(i)) break; // the paths read before the unmount are complete (fenced: nothing new is recorded)
            throw e;
          }
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      if (log) {
        try {
          for (const p of log.dirtyPaths()) paths.add(p);
        } finally {
          log.close();
        }
      }
      // Copied off the JS thread (a large file must not hold the heartbeats) by the native side,
      // through the directory held open: no symlink in the unmounted tree is followed (its
      // owner may have planted one), only files and symlinks carry data (a fifo would block),
      // directories 0700, modes and times kept. See quarantineCopy.
      const r = await quarantineCopy(dir, [...paths].filter((p) => p !== '').sort(), path.join(folder, dir.replace(/^\/+/, '')));
      copied += r.copied;
      failed.push(...r.failed.map((f) => path.join(dir, f)));
    }
    this.#dirtyAtUnmount.clear();
    return { folder, copied, failed };
  }

  /** Stops everything this node runs of the module (daemon stop): replicas; mounts are the runtime's. */
  async close(): Promise<void> {
    this.stopReplicas();
  }
}
