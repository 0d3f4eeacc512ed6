// One PID namespace per node, as on a real machine: a node's scripts see in /proc, pidof and pkill
// only that node's processes, and a pid they record names a process of that node. The namespace is
// held by a small init (pid 1: it reaps the orphans re-parented to it, as init does) and bound to
// a file beside the mount-ns file, so everything run on the node (daemon, lab exec) enters it.
// Killing the init kills every process of the namespace (the kernel's rule for a PID namespace's
// init): that is `lab kill`; a fresh init (a fresh namespace) is made for what runs next.
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import readline from 'node:readline';
import { CroftError } from '../../src/errors.js';
import { mntDir } from './mounts.js';
import { netnsPath } from './names.js';
import { run } from './run.js';
import { nsInode, pidsIn } from './procs.js';

export function pidNsFile(stateDir: string, node: string): string {
  return path.join(mntDir(stateDir), `${node}.pid`);
}

/**
 * pid 1 of the node: replaces the node's /proc (whatever was mounted there: the host's, or the proc
 * of an earlier namespace of the node) by this namespace's, says ready, then reaps forever. perl is
 * part of every Debian system (perl-base); sh cannot reap children it did not start.
 */
const INIT_SCRIPT = [
  'while umount -l /proc 2>/dev/null; do :; done',
  'mount -t proc proc /proc',
  'echo ready',
  // wait() returns -1 with no child: then sleep (a SIGCHLD of a re-parented orphan cuts it short).
  `exec perl -e '$SIG{CHLD} = sub {}; while (1) { while (wait() > 0) {} sleep 1 }'`,
].join('\n');

/** Host pid of the process with pid nodePid in the PID namespace of that inode (NSpid's last field). */
function hostPidIn(ino: number, nodePid: number): number | undefined {
  for (const pid of pidsIn([], [], [ino])) {
    try {
      const m = /^NSpid:\s+(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m && m[1]!.trim().split(/\s+/).at(-1) === String(nodePid)) return pid;
    } catch { /* gone */ }
  }
  return undefined;
}

/** Pid (in the host's namespace) of pid 1 of the namespace bound at file, if it runs. */
export function initPidOf(file: string): number | undefined {
  const ino = nsInode(file);
  return ino === undefined ? undefined : hostPidIn(ino, 1);
}

/** Starts the node's init in a new PID namespace bound to pidNsFile; resolves once /proc is the node's. */
export async function startNodeInit(stateDir: string, node: string, netns: string, mountNs: string, logFile: string): Promise<number> {
  const file = pidNsFile(stateDir, node);
  // The file of a namespace whose init died still holds the dead namespace: unbind it first.
  if (nsInode(file) !== undefined) await run(['umount', file]);
  fs.writeFileSync(file, '');
  const log = fs.openSync(logFile, 'a');
  try {
    // unshare binds the namespace in the host's mount namespace (under the private mnt/, as the
    // mount-ns files), then its child, pid 1, enters the node's mount namespace. --kill-child: an
    // unshare killed takes the namespace with it.
    const child = spawn('nsenter', [`--net=${netnsPath(netns)}`, '--', 'unshare', `--pid=${file}`, '--fork', '--kill-child', '--',
      'nsenter', `--mount=${mountNs}`, '--', 'sh', '-c', INIT_SCRIPT], { detached: true, stdio: ['ignore', 'pipe', log] });
    const lines = readline.createInterface({ input: child.stdout! });
    const ready = await new Promise<boolean>((resolve) => {
      child.once('error', () => resolve(false));
      child.once('exit', () => resolve(false));
      lines.once('line', (l) => resolve(l === 'ready'));
    });
    lines.close();
    child.stdout!.destroy(); // the init writes nothing more
    child.unref();
    const pid = ready ? initPidOf(file) : undefined;
    if (pid === undefined) {
      throw new CroftError('CROFT_ERR_LAB', `cannot start the PID namespace of ${node} (see ${logFile})`);
    }
    return pid;
  } finally {
    fs.closeSync(log);
  }
}

/** SIGKILL of the node's init: the kernel kills every process of its namespace. Returns their pids. */
export async function killNodeInit(stateDir: string, node: string, waitMs = 5000): Promise<number[]> {
  const ino = nsInode(pidNsFile(stateDir, node));
  if (ino === undefined) return [];
  const members = pidsIn([], [], [ino]);
  const init = initPidOf(pidNsFile(stateDir, node));
  if (init !== undefined) {
    try { process.kill(init, 'SIGKILL'); } catch { /* already gone */ }
  }
  const deadline = Date.now() + waitMs;
  while (pidsIn([], [], [ino]).length > 0) {
    if (Date.now() > deadline) {
      // Which ones, and where each waits in the kernel: for the person looking into it.
      const left = pidsIn([], [], [ino]).slice(0, 8).map((pid) => {
        const read = (f: string) => { try { return fs.readFileSync(`/proc/${pid}/${f}`, 'utf8').trim(); } catch { return '?'; } };
        const stat = read('stat');
        return `${pid} ${read('comm')} state ${stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)} wchan ${read('wchan')}`;
      });
      throw new CroftError('CROFT_ERR_LAB', `processes of ${node}'s PID namespace survive its init's death: ${left.join('; ')}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return members;
}

/** The host's pid of the process that has pid `nodePid` in the node's PID namespace. */
export function hostPidOf(stateDir: string, node: string, nodePid: number): number | undefined {
  const ino = nsInode(pidNsFile(stateDir, node));
  return ino === undefined ? undefined : hostPidIn(ino, nodePid);
}
