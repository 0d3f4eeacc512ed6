// The croft daemon of each node: started detached (own session), output appended to its log.
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { CroftError } from '../../src/errors.js';
import { croftJs } from './paths.js';
import { enterArgv, labEnv } from './enter.js';
import { NODE_CONFIG_PATH } from './mounts.js';
import { netnsPath } from './names.js';
import { alive, nsInode } from './procs.js';

/** The child nsenter forked into the node's PID namespace: the daemon (its pid on the host). */
async function daemonOf(nsenterPid: number, netInode: number | undefined): Promise<number> {
  for (let i = 0; i < 200; i++) {
    let child: number | undefined;
    try {
      child = Number(fs.readFileSync(`/proc/${nsenterPid}/task/${nsenterPid}/children`, 'utf8').trim().split(' ')[0]) || undefined;
    } catch { /* nsenter gone */ }
    if (child !== undefined && alive(child, netInode)) return child;
    if (!alive(nsenterPid)) return nsenterPid; // exited at once: status shows it dead, its log says why
    await new Promise((r) => setTimeout(r, 10));
  }
  return nsenterPid;
}

/** Node's flags for a daemon: those of bin/croft.js's `#!` line (kept equal by test/unit/lab-daemon-flags.test.ts). */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--single-threaded-gc'];
/** The environment bin/croft.js's `#!` line sets (ibid.). */
export const DAEMON_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };

/** The daemon command for a node. CROFT_LAB_DAEMON_CMD (a shell command) replaces it, for tests. */
export function daemonCommand(node: string): string[] {
  const override = process.env.CROFT_LAB_DAEMON_CMD;
  if (override !== undefined && override.trim() !== '') return ['sh', '-c', override];
  return [process.execPath, ...DAEMON_NODE_FLAGS, croftJs, 'daemon', '--config', NODE_CONFIG_PATH, '--node', node];
}

export interface DaemonStart {
  labName: string;
  stateDir: string;
  node: string;
  netns: string;
  mountNs: string;
  pidNs: string;
  command: string[];
  logFile: string;
}

/** Starts the daemon in the node's namespaces and returns its pid (on the host). */
export function startDaemon(d: DaemonStart): Promise<number> {
  const log = fs.openSync(d.logFile, 'a');
  try {
    fs.writeSync(log, `--- croft lab: starting ${d.command.join(' ')} at ${new Date().toISOString()}\n`);
    const [cmd, ...args] = enterArgv({ netns: d.netns, mountNs: d.mountNs, pidNs: d.pidNs }, d.command, '/');
    const child = spawn(cmd!, args, {
      detached: true, // setsid: lab down/kill, not the terminal, decide when it ends
      stdio: ['ignore', log, log],
      env: labEnv(d.stateDir, d.labName, d.node, { ...DAEMON_ENV, CROFT_LAB_NODE: d.node }),
    });
    return new Promise((resolve, reject) => {
      child.once('error', (e) => reject(new CroftError('CROFT_ERR_LAB', `cannot start the daemon of ${d.node}: ${e.message}`, { cause: e })));
      child.once('spawn', () => {
        child.unref();
        // nsenter enters the namespaces, then forks the daemon into the PID namespace: return the
        // daemon's pid once it is there, so a status right after start sees the daemon.
        daemonOf(child.pid!, nsInode(netnsPath(d.netns))).then(resolve, reject);
      });
    });
  } finally {
    fs.closeSync(log);
  }
}
