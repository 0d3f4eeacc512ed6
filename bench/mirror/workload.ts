// One storage workload on one directory, timed, as bench/mirror/run.ts asks for it; prints one
// JSON line. Run on the lab node that holds the data (n1). The directory is used as it is
// ("local", "bindfs": something else mounted it), or mounted here through croft's mirror
// ("--mirror"): to the replica that bench/mirror/replica.ts runs on the peer (--peer), or with no
// peer at all (the FUSE ceiling), in --mode every-change|on-sync, with the durable dirty log in
// --dirty-log DIR as the daemon mounts it (else dirty paths in memory). CROFT_MIRROR_TUNING in the
// environment tunes the mount's FUSE caches (crates/croft-mirror/src/fs/tuning.rs).
// The FUSE server of the mirror runs on Rust threads of this process: synchronous fs calls from
// the JS thread are safe under failMode 'alone' (src/native/mirror.ts).
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { MirrorMount, type AckLevel, type SyncMode } from '../../src/native/mirror.js';

export interface WorkloadResult {
  workload: string;
  ops: number;
  bytes: number;
  seconds: number;
  /** The mirror's link counters at the end (mirror mode only). */
  link?: { connected: boolean; aloneOps: number; bytesSent: number };
}

const { values: opt } = parseArgs({
  options: {
    dir: { type: 'string' },
    workload: { type: 'string' },
    mirror: { type: 'boolean', default: false },
    peer: { type: 'string' },
    port: { type: 'string' },
    key: { type: 'string' },
    ack: { type: 'string', default: 'received' },
    mode: { type: 'string', default: 'every-change' },
    'dirty-log': { type: 'string' },
    threads: { type: 'string' },
    'seq-mib': { type: 'string', default: '256' },
    'random-ops': { type: 'string', default: '2000' },
    'small-files': { type: 'string', default: '100000' },
  },
});

function need(k: 'dir' | 'workload'): string {
  const v = opt[k];
  if (typeof v !== 'string' || v === '') throw new Error(`--${k} is required`);
  return v;
}

/** Sequential 1 MiB writes into one new file, then fsync (counted in the time). */
function sequential(dir: string, mib: number): WorkloadResult {
  const buf = Buffer.alloc(1 << 20, 0x5a);
  const file = path.join(dir, 'seq.bin');
  const t = performance.now();
  const fd = fs.openSync(file, 'w');
  for (let i = 0; i < mib; i++) fs.writeSync(fd, buf, 0, buf.length, i * buf.length);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  const seconds = (performance.now() - t) / 1000;
  fs.rmSync(file);
  return { workload: 'seq-1mib', ops: mib, bytes: mib * buf.length, seconds };
}

/** Sequential 4 KiB writes into one new file (64 MiB), then fsync (counted in the time): small writes nobody syncs one by one (logs, append-only files). */
function sequential4k(dir: string): WorkloadResult {
  const buf = Buffer.alloc(4096, 0x4b);
  const file = path.join(dir, 'seq4k.bin');
  const n = (64 << 20) / buf.length;
  const t = performance.now();
  const fd = fs.openSync(file, 'w');
  for (let i = 0; i < n; i++) fs.writeSync(fd, buf, 0, buf.length, i * buf.length);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  const seconds = (performance.now() - t) / 1000;
  fs.rmSync(file);
  return { workload: 'seq-4k', ops: n, bytes: n * buf.length, seconds };
}

/** 4 KiB writes at pseudo-random aligned offsets of a 64 MiB file, each followed by fdatasync. */
function randomFsync(dir: string, ops: number): WorkloadResult {
  const file = path.join(dir, 'random.bin');
  const size = 64 << 20;
  const fd = fs.openSync(file, 'w+');
  fs.ftruncateSync(fd, size);
  fs.fsyncSync(fd);
  const buf = Buffer.alloc(4096, 0x33);
  let x = 12345;
  const t = performance.now();
  for (let i = 0; i < ops; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const block = x % (size / 4096);
    fs.writeSync(fd, buf, 0, buf.length, block * 4096);
    fs.fdatasyncSync(fd);
  }
  const seconds = (performance.now() - t) / 1000;
  fs.closeSync(fd);
  fs.rmSync(file);
  return { workload: 'random-4k-fsync', ops, bytes: ops * 4096, seconds };
}

/** Creates n files of 100 bytes, 1000 per directory. */
function smallFiles(dir: string, n: number): WorkloadResult {
  const root = path.join(dir, 'small');
  const body = Buffer.alloc(100, 0x61);
  const t = performance.now();
  fs.mkdirSync(root);
  for (let i = 0; i < n; i++) {
    if (i % 1000 === 0) fs.mkdirSync(path.join(root, String(i / 1000)));
    fs.writeFileSync(path.join(root, String(Math.floor(i / 1000)), String(i)), body);
  }
  const seconds = (performance.now() - t) / 1000;
  fs.rmSync(root, { recursive: true });
  return { workload: 'small-files', ops: n, bytes: n * body.length, seconds };
}

/**
 * 4 KiB reads at pseudo-random aligned offsets of a 256 MiB file written (and closed) before the
 * timing starts: what the kernel's page cache keeps across close and open (FOPEN_KEEP_CACHE).
 */
function randomRead(dir: string, ops: number): WorkloadResult {
  const file = path.join(dir, 'read.bin');
  const size = 256 << 20;
  const chunk = Buffer.alloc(1 << 20, 0x42);
  const w = fs.openSync(file, 'w');
  for (let i = 0; i < size / chunk.length; i++) fs.writeSync(w, chunk, 0, chunk.length, i * chunk.length);
  fs.fsyncSync(w);
  fs.closeSync(w);
  const buf = Buffer.alloc(4096);
  let x = 6789;
  const t = performance.now();
  const fd = fs.openSync(file, 'r');
  for (let i = 0; i < ops; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    fs.readSync(fd, buf, 0, buf.length, (x % (size / 4096)) * 4096);
  }
  fs.closeSync(fd);
  const seconds = (performance.now() - t) / 1000;
  fs.rmSync(file);
  return { workload: 'random-4k-read', ops, bytes: ops * 4096, seconds };
}

/** n small files made first (not timed), then timed: a walk that lists every folder and stats every file, twice. */
function walk(dir: string, n: number): WorkloadResult {
  const root = path.join(dir, 'walk');
  fs.mkdirSync(root);
  for (let i = 0; i < n; i++) {
    if (i % 1000 === 0) fs.mkdirSync(path.join(root, String(i / 1000)));
    fs.writeFileSync(path.join(root, String(Math.floor(i / 1000)), String(i)), 'x');
  }
  let seen = 0;
  const t = performance.now();
  for (let pass = 0; pass < 2; pass++) {
    for (const d of fs.readdirSync(root)) {
      for (const f of fs.readdirSync(path.join(root, d))) {
        fs.lstatSync(path.join(root, d, f));
        seen++;
      }
    }
  }
  const seconds = (performance.now() - t) / 1000;
  fs.rmSync(root, { recursive: true });
  return { workload: 'walk', ops: seen, bytes: 0, seconds };
}

async function main(): Promise<void> {
  const dir = need('dir');
  const workload = need('workload');
  let mount: MirrorMount | null = null;
  if (opt.mirror) {
    const ack = opt.ack as AckLevel;
    mount = await MirrorMount.mount({
      dir,
      ...(opt.peer ? { peer: { host: String(opt.peer), port: Number(opt.port), key: Buffer.from(String(opt.key), 'hex'), ackLevel: ack } } : {}),
      failMode: 'alone',
      mode: opt.mode as SyncMode,
      ...(opt.threads ? { threads: Number(opt.threads) } : {}),
      ...(opt['dirty-log'] ? { dirtyLog: { dir: String(opt['dirty-log']), zoneBytes: 262_144 } } : {}),
    });
  }
  try {
    const r = workload === 'seq-1mib' ? sequential(dir, Number(opt['seq-mib']))
      : workload === 'random-4k-fsync' ? randomFsync(dir, Number(opt['random-ops']))
        : workload === 'small-files' ? smallFiles(dir, Number(opt['small-files']))
          : workload === 'seq-4k' ? sequential4k(dir)
          : workload === 'random-4k-read' ? randomRead(dir, 20 * Number(opt['random-ops']))
            : workload === 'walk' ? walk(dir, Number(opt['small-files']))
          : (() => { throw new Error(`unknown workload ${workload}`); })();
    if (mount) {
      const l = mount.status().link;
      r.link = { connected: l.connected, aloneOps: l.aloneOps, bytesSent: l.bytesSent };
    }
    process.stdout.write(`${JSON.stringify(r)}\n`);
  } finally {
    await mount?.unmount();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack ?? err.message : String(err));
  process.exit(1);
});
