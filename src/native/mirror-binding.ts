// The raw exports of the napi binding (crates/croft-napi/src/mirror/), as it returns them (optional
// fields where Rust has Option), and the conversion of a reintegration status to the public shape.
import assert from 'node:assert/strict';
import type {
  MirrorDirtyLogOptions, MirrorDirtyLogStatus, MirrorLinkStatus, MirrorPeerOptions, MirrorProtocolStatus, MirrorReintegrationPhase, MirrorReintegrationStatus,
  MirrorReplicaOptions, MirrorReplicaStatus, MirrorStatus, MirrorVerifyReport,
} from './mirror-types.js';

export type NativeReintegrationStatus = Omit<MirrorReintegrationStatus, 'phase' | 'startedAtMs' | 'finishedAtMs' | 'error'> & {
  phase: string;
  startedAtMs?: number | null;
  finishedAtMs?: number | null;
  error?: string | null;
};

const PHASES: readonly MirrorReintegrationPhase[] = ['idle', 'scan', 'copy', 'final', 'done', 'failed'];

export function reintegrationFromNative(s: NativeReintegrationStatus): MirrorReintegrationStatus {
  const phase = PHASES.find((p) => p === s.phase);
  assert.ok(phase !== undefined, `unknown reintegration phase ${s.phase}`);
  return {
    running: s.running,
    phase,
    full: s.full,
    bytesToGo: s.bytesToGo,
    bytesCopied: s.bytesCopied,
    bytesSent: s.bytesSent,
    bytesSkipped: s.bytesSkipped,
    entriesToGo: s.entriesToGo,
    entriesDone: s.entriesDone,
    passes: s.passes,
    rateBytesPerSec: s.rateBytesPerSec,
    startedAtMs: s.startedAtMs ?? null,
    finishedAtMs: s.finishedAtMs ?? null,
    error: s.error ?? null,
  };
}


export interface NativeDirtyReader {
  dirtyPaths(): string[];
  dirtyEntries(): { path: string; zones: number[][]; entryChanged: boolean }[];
  dirtyTrusted(): boolean;
  clearDirty(): Promise<void>;
}

export interface NativeMirrorDirtyLog extends NativeDirtyReader {
  dirtyBytes(dataDir: string): number;
  close(): void;
}

export interface NativeMirrorMount extends Omit<NativeDirtyReader, 'dirtyPaths'> {
  dirtyLogStatus(): (Omit<MirrorDirtyLogStatus, 'lastError'> & { lastError?: string | null }) | null;
  dirtyBytes(): number;
  dirtyBytesAsync(): Promise<number>;
  readonly dir: string;
  status(): Omit<MirrorStatus, 'ackLevel' | 'mode' | 'failMode' | 'link'> & {
    ackLevel?: string | null;
    mode: string;
    failMode: string;
    link: Omit<MirrorLinkStatus, 'lostReason' | 'ackLatency'> & { lostReason?: string | null; ackLatencyBuckets: number[]; ackLatencyBoundsUs: number[]; ackLatencySumUs: number };
  };
  dirtyPaths(): string[];
  setFailMode(mode: string): void;
  dropPeer(reason: string): void;
  onEvent(callback: (event: { kind: string; reason: string }) => void): void;
  unmount(): Promise<void>;
  reintegrate(opts: { peer: MirrorPeerOptions; full: boolean; freezeBelowBytes?: number; maxBytesPerS?: number }): Promise<NativeReintegrationStatus>;
  reintegrationStatus(): NativeReintegrationStatus;
  abortReintegration(reason: string): void;
  verify(peer: MirrorPeerOptions): Promise<MirrorVerifyReport>;
}

export interface NativeMirrorReplica {
  readonly port: number;
  status(): Omit<MirrorReplicaStatus, 'lastError'> & { lastError?: string | null };
  stop(): void;
}

export interface NativeMirrorBinding {
  MirrorMount: {
    mount(opts: {
      dir: string;
      peer?: MirrorPeerOptions;
      failMode?: string;
      mode?: string;
      threads?: number;
      dirtyLog?: MirrorDirtyLogOptions;
    }): Promise<NativeMirrorMount>;
    openDirtyLog(dir: string, zoneBytes: number): Promise<NativeMirrorDirtyLog>;
  };
  MirrorReplica: { start(opts: MirrorReplicaOptions): NativeMirrorReplica };
  mirrorLazyUnmount(dir: string): Promise<void>;
  mirrorProtocol(): MirrorProtocolStatus;
  mirrorQuarantineCopy(dir: string, paths: string[], dest: string): Promise<{ copied: number; failed: string[] }>;
}
