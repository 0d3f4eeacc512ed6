// Processes inside the lab's namespaces, found as `ip netns pids` does: by comparing the inode of
// /proc/<pid>/ns/{net,mnt,pid} with the inode of the namespace file (nsfs bind mount).
import fs from 'node:fs';
import { CroftError } from '../../src/errors.js';

/** Inode of a namespace file (/run/netns/<ns> or a persistent mount-ns file), or undefined if absent. */
export function nsInode(file: string): number | undefined {
  try {
    const st = fs.statSync(file);
    // A plain file (not yet or no longer a bind mount of nsfs) is not a namespace.
    return st.dev === fs.statSync(`/proc/self/ns/net`).dev ? st.ino : undefined;
  } catch {
    return undefined;
  }
}

function nsOf(pid: number, kind: 'net' | 'mnt' | 'pid'): number | undefined {
  try {
    const m = /\[(\d+)\]/.exec(fs.readlinkSync(`/proc/${pid}/ns/${kind}`));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined; // gone, or a zombie (no namespaces left)
  }
}

function isZombie(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}

/** Pids (other than ours) whose network, mount or PID namespace is one of the given inodes. */
export function pidsIn(netInodes: number[], mntInodes: number[], pidInodes: number[] = []): number[] {
  const kinds = [['net', new Set(netInodes)], ['mnt', new Set(mntInodes)], ['pid', new Set(pidInodes)]] as const;
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    if (kinds.some(([kind, set]) => set.size > 0 && set.has(nsOf(pid, kind) ?? -1))) found.push(pid);
  }
  return found;
}

/** True if pid runs (not a zombie) and, when given, sits in that network namespace. */
export function alive(pid: number, netInode?: number): boolean {
  if (isZombie(pid)) return false;
  if (netInode === undefined) return true;
  return nsOf(pid, 'net') === netInode;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * SIGKILLs every process in those namespaces and waits until none is left. Rescans, because a
 * process may fork between the scan and the kill; bounded so a stuck process (D state) is reported.
 */
export async function killAllIn(netInodes: number[], mntInodes: number[], pidInodes: number[] = [], waitMs = 5000): Promise<number[]> {
  const killed = new Set<number>();
  const deadline = Date.now() + waitMs;
  for (;;) {
    const pids = pidsIn(netInodes, mntInodes, pidInodes);
    if (pids.length === 0) return [...killed];
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
        killed.add(pid);
      } catch { /* already gone */ }
    }
    if (Date.now() > deadline) {
      throw new CroftError('CROFT_ERR_LAB', `processes ${pids.join(', ')} survive SIGKILL (stuck in the kernel?); run lab down again later`);
    }
    await sleep(20);
  }
}
