// The trees of the reintegration benchmark, generated deterministically so that the data node and
// its peer build identical copies without copying one to the other, and the change applied to one
// of them (through croft's mirror on the data node, directly on the plain copy for rsync).
import fs from 'node:fs';
import path from 'node:path';

export type TreeKind = 'big' | 'small';

export interface TreeSpec {
  kind: TreeKind;
  /** big: files of fileMiB each, totalMiB in all; small: files of 100-400 bytes, 1000 per folder. */
  totalMiB: number;
  fileMiB: number;
  files: number;
  /** Bytes changed: big: this fraction of the tree in 64 KiB chunks; small: this many files rewritten. */
  changedFraction: number;
  changedFiles: number;
}

/** A small deterministic generator (xorshift32): the same stream on every node. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function fill(buf: Buffer, seed: number): Buffer {
  const next = prng(seed);
  for (let i = 0; i + 4 <= buf.length; i += 4) buf.writeUInt32LE(next(), i);
  return buf;
}

const MTIME = new Date('2026-01-01T00:00:00Z');

/** Builds the tree under `root` (which must not exist); every mtime fixed, so both copies match. */
export function buildTree(root: string, spec: TreeSpec): void {
  fs.mkdirSync(root, { recursive: true });
  if (spec.kind === 'big') {
    const n = Math.round(spec.totalMiB / spec.fileMiB);
    const chunk = Buffer.alloc(1 << 20);
    for (let f = 0; f < n; f++) {
      const file = path.join(root, `f${f}.bin`);
      const fd = fs.openSync(file, 'w');
      for (let m = 0; m < spec.fileMiB; m++) fs.writeSync(fd, fill(chunk, f * 100_003 + m + 1));
      fs.closeSync(fd);
      fs.utimesSync(file, MTIME, MTIME);
    }
  } else {
    for (let i = 0; i < spec.files; i++) {
      const dir = path.join(root, String(Math.floor(i / 1000)));
      if (i % 1000 === 0) fs.mkdirSync(dir);
      const file = path.join(dir, String(i));
      fs.writeFileSync(file, fill(Buffer.alloc(100 + (i % 301)), i + 7));
      fs.utimesSync(file, MTIME, MTIME);
    }
    for (let d = 0; d * 1000 < spec.files; d++) fs.utimesSync(path.join(root, String(d)), MTIME, MTIME);
  }
  fs.utimesSync(root, MTIME, MTIME);
}

/** Applies the change under `root` (a mount or a plain copy); returns the bytes written. */
export function changeTree(root: string, spec: TreeSpec): number {
  const next = prng(424242);
  let bytes = 0;
  if (spec.kind === 'big') {
    const n = Math.round(spec.totalMiB / spec.fileMiB);
    const chunkBytes = 64 * 1024;
    const chunksPerFile = (spec.fileMiB << 20) / chunkBytes;
    const total = Math.round((spec.totalMiB << 20) * spec.changedFraction / chunkBytes);
    const chosen = new Set<number>();
    while (chosen.size < total) chosen.add(next() % (n * chunksPerFile));
    const buf = Buffer.alloc(chunkBytes);
    for (const c of [...chosen].sort((a, b) => a - b)) {
      const fd = fs.openSync(path.join(root, `f${Math.floor(c / chunksPerFile)}.bin`), 'r+');
      fs.writeSync(fd, fill(buf, c + 99), 0, chunkBytes, (c % chunksPerFile) * chunkBytes);
      fs.closeSync(fd);
      bytes += chunkBytes;
    }
  } else {
    const chosen = new Set<number>();
    while (chosen.size < spec.changedFiles) chosen.add(next() % spec.files);
    for (const i of chosen) {
      const body = fill(Buffer.alloc(100 + ((i * 7) % 301)), i + 1_000_003);
      fs.writeFileSync(path.join(root, String(Math.floor(i / 1000)), String(i)), body);
      bytes += body.length;
    }
  }
  return bytes;
}
