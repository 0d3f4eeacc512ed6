// The configuration's signature, announced in every heartbeat (src/membership/codec.ts `cfg`) so
// that each node sees which nodes run another configuration, per module (`croft status`, the
// console, the "config mismatch" event: top/daemon/agreement.ts). A signature is the first 16 hex
// digits of a SHA-256: enough to tell two configurations apart, compact enough for the heartbeat
// (64 modules add about 3 KiB). It says nothing of secrets: the cluster key is not hashed (every
// node that can read a heartbeat holds the same one anyway).
//   cluster: the bytes of cluster.yaml;
//   module:  the bytes of its module file, then of each script it names (module scripts, script
//            checkers) that lives in the config folder, by path relative to the folder, sorted.
//            Scripts elsewhere (shipped ones in /usr/share/croft) are named by their path only:
//            the package version, also announced, says which they are.
// Bytes, not parsed values: a comment that differs is a difference an administrator wants to see,
// and `croft config push` makes the files the same.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Config, ModuleConfig } from './types.js';

export interface ConfigSignature {
  /** Of cluster.yaml. */
  cluster: string;
  /** Module name -> signature of its module file and scripts. */
  modules: Record<string, string>;
}

export const SIGNATURE_RE = /^[0-9a-f]{16}$/;

function digest(parts: readonly (string | Buffer)[]): string {
  const h = createHash('sha256');
  for (const p of parts) {
    const b = typeof p === 'string' ? Buffer.from(p, 'utf8') : p;
    // Length-prefixed, so that no two lists of parts hash alike.
    const len = Buffer.alloc(8);
    len.writeBigUInt64BE(BigInt(b.length));
    h.update(len).update(b);
  }
  return h.digest('hex').slice(0, 16);
}

function readOr(file: string): Buffer | string {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    return `unreadable: ${(e as NodeJS.ErrnoException).code ?? 'error'}`;
  }
}

/** The scripts a module names, as absolute paths. */
export function moduleScripts(m: ModuleConfig): string[] {
  const out = [m.scripts.startBoth, m.scripts.stopBoth, m.scripts.startPrim, m.scripts.stopPrim]
    .filter((s): s is string => typeof s === 'string' && s !== '');
  for (const c of m.checkers) if (c.type === 'script') out.push(c.path);
  return [...new Set(out)];
}

export function moduleSignature(dir: string, m: ModuleConfig): string {
  const parts: (string | Buffer)[] = ['croft module v1', readOr(m.file)];
  const inside: [string, string][] = [];
  for (const s of moduleScripts(m)) {
    const rel = path.relative(dir, s);
    if (rel.startsWith('..') || path.isAbsolute(rel)) parts.push(`outside:${s}`);
    else inside.push([rel, s]);
  }
  inside.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [rel, abs] of inside) parts.push(`script:${rel}`, readOr(abs));
  return digest(parts);
}

export function configSignature(config: Config): ConfigSignature {
  const modules: Record<string, string> = {};
  for (const m of config.modules) modules[m.name] = moduleSignature(config.dir, m);
  return { cluster: digest(['croft cluster v1', readOr(config.cluster.file)]), modules };
}

/** What differs between two signatures: 'cluster.yaml' and module names (missing on either side included), sorted. */
export function signatureDifferences(mine: ConfigSignature, theirs: ConfigSignature): string[] {
  const out: string[] = [];
  if (mine.cluster !== theirs.cluster) out.push('cluster.yaml');
  const names = new Set([...Object.keys(mine.modules), ...Object.keys(theirs.modules)]);
  const get = (r: Record<string, string>, n: string) => (Object.prototype.hasOwnProperty.call(r, n) ? r[n] : undefined);
  for (const n of [...names].sort()) if (get(mine.modules, n) !== get(theirs.modules, n)) out.push(n);
  return out;
}
