// The croft daemon of each node: started detached (own session), output appended to its log.
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { CroftError } from '../../src/errors.js';
import { croftJs } from './paths.js';
import { enterArgv, labEnv } from './enter.js';
import { NODE_CONFIG_PATH } from './mounts.js';
import { netnsPath } from './names.js';
import { alive, nsInode } from './procs.js';

async function waitInNetns(pid: number, netInode: number | undefined): Promise<number> {
  for (let i = 0; i < 200 && !alive(pid, netInode); i++) {
    if (!alive(pid)) return pid; // exited at once: status shows it dead, its log says why
    await new Promise((r) => setTimeout(r, 10));
  }
  return pid;
}

/** The daemon command for a node. CROFT_LAB_DAEMON_CMD (a shell command) replaces it, for tests. */
export function daemonCommand(node: string): string[] {
  const override = process.env.CROFT_LAB_DAEMON_CMD;
  if (override !== undefined && override.trim() !== '') return ['sh', '-c', override];
  return [process.execPath, croftJs, 'daemon', '--config', NODE_CONFIG_PATH, '--node', node];
}

export interface DaemonStart {
  labName: string;
  stateDir: string;
  node: string;
  netns: string;
  mountNs: string;
  command: string[];
  logFile: string;
}

/** Starts the daemon and returns its pid (nsenter execs it: same pid). */
export function startDaemon(d: DaemonStart): Promise<number> {
  const log = fs.openSync(d.logFile, 'a');
  try {
    fs.writeSync(log, `--- croft lab: starting ${d.command.join(' ')} at ${new Date().toISOString()}\n`);
    const [cmd, ...args] = enterArgv({ netns: d.netns, mountNs: d.mountNs }, d.command, '/');
    const child = spawn(cmd!, args, {
      detached: true, // setsid: lab down/kill, not the terminal, decide when it ends
      stdio: ['ignore', log, log],
      env: labEnv(d.stateDir, d.labName, d.node, { CROFT_LAB_NODE: d.node }),
    });
    return new Promise((resolve, reject) => {
      child.once('error', (e) => reject(new CroftError('CROFT_ERR_LAB', `cannot start the daemon of ${d.node}: ${e.message}`, { cause: e })));
      child.once('spawn', () => {
        child.unref();
        // nsenter needs a moment to enter the namespaces: return once the pid is the daemon's,
        // so a status right after start does not see a process still in the host namespace.
        waitInNetns(child.pid!, nsInode(netnsPath(d.netns))).then(resolve, reject);
      });
    });
  } finally {
    fs.closeSync(log);
  }
}
