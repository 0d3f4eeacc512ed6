// lab down: works from discovery alone (namespaces named croft-<lab>-*, mounts under the state
// dir), so a lab that crashed halfway or lost its state.json is still removed completely.
import fs from 'node:fs';
import { CroftError } from '../../src/errors.js';
import { runOk } from './run.js';
import { LAB_RUN_DIR, NETNS_DIR, netnsPath, parseNsName, stateDirOf } from './names.js';
import { mntDir, mountsUnder, unmountUnder } from './mounts.js';
import { killAllIn, nsInode } from './procs.js';

/** Namespaces of this lab that exist now. */
export function labNamespaces(name: string): string[] {
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(NETNS_DIR);
  } catch { /* no /run/netns: no namespaces */ }
  return entries.filter((ns) => parseNsName(ns)?.lab === name).sort();
}

/** Names of every lab with something left (a state dir or a namespace). */
export function allLabNames(): string[] {
  const names = new Set<string>();
  try {
    for (const e of fs.readdirSync(LAB_RUN_DIR)) names.add(e);
  } catch { /* none */ }
  try {
    for (const ns of fs.readdirSync(NETNS_DIR)) {
      const p = parseNsName(ns);
      if (p) names.add(p.lab);
    }
  } catch { /* none */ }
  return [...names].sort();
}

/** Persistent mount-ns and PID-ns files of this lab (still bound). */
function mountNsFiles(stateDir: string): string[] {
  const dir = mntDir(stateDir);
  return mountsUnder(dir).filter((p) => p !== dir);
}

export interface DownResult {
  /** False when nothing of the lab existed. */
  found: boolean;
  killed: number;
  namespaces: string[];
}

export async function teardown(name: string): Promise<DownResult> {
  const stateDir = stateDirOf(name);
  const namespaces = labNamespaces(name);
  const hasDir = fs.existsSync(stateDir);
  if (namespaces.length === 0 && !hasDir) return { found: false, killed: 0, namespaces: [] };

  // 1. Processes: everything in the lab's network namespaces or node mount or PID namespaces.
  const netInodes = namespaces.map((ns) => nsInode(netnsPath(ns))).filter((i): i is number => i !== undefined);
  const files = mountNsFiles(stateDir);
  const inodesOf = (list: string[]) => list.map((f) => nsInode(f)).filter((i): i is number => i !== undefined);
  const mntInodes = inodesOf(files.filter((f) => !f.endsWith('.pid')));
  const pidInodes = inodesOf(files.filter((f) => f.endsWith('.pid'))); // the nodes' PID namespaces (pidns.ts)
  const killed = await killAllIn(netInodes, mntInodes, pidInodes);

  // 2. Mounts: the mount-ns files, then the private bind of mnt/.
  await unmountUnder(stateDir);

  // 3. Namespaces.
  const errors: string[] = [];
  for (const ns of namespaces) {
    try {
      await runOk(['ip', 'netns', 'del', ns]);
    } catch (e) {
      if (fs.existsSync(netnsPath(ns))) errors.push((e as Error).message);
    }
  }

  // 4. The state dir, only once nothing is mounted under it (never delete through a mount).
  if (mountsUnder(stateDir).length > 0) errors.push(`mounts remain under ${stateDir}`);
  else fs.rmSync(stateDir, { recursive: true, force: true });

  if (errors.length > 0) throw new CroftError('CROFT_ERR_LAB', `lab ${name} only partly removed: ${errors.join('; ')}`);
  return { found: true, killed: killed.length, namespaces };
}

