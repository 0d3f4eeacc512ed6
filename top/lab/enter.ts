// How anything runs "on" a node: nsenter into its network, its persistent mount namespace and its
// PID namespace (pidns.ts); on the client, the network namespace only. PATH gets croft (so `croft status` works inside).
import fs from 'node:fs';
import path from 'node:path';
import { CROFT_LIB_PATH } from '../../src/module/scripts.js';
import { croftJs, repoRoot } from './paths.js';
import { netnsPath } from './names.js';

export interface EnterTarget {
  netns: string;
  /** Persistent mount namespace file (nodes only). */
  mountNs?: string;
  /** PID namespace file (nodes only). */
  pidNs?: string;
}

export function enterArgv(target: EnterTarget, argv: string[], cwd?: string): string[] {
  const args = ['nsenter', `--net=${netnsPath(target.netns)}`];
  // Entering a mount namespace moves the cwd to its root; keep the caller's, which exists in both.
  if (target.mountNs !== undefined) args.push(`--mount=${target.mountNs}`, `--wd=${cwd ?? '/'}`);
  if (target.pidNs === undefined) return [...args, '--', ...argv];
  // Entering a PID namespace, nsenter forks and waits for the command: a SIGKILL of nsenter (a
  // timeout, lab kill) would leave the command running, so it dies with nsenter (pdeathsig).
  return [...args, `--pid=${target.pidNs}`, '--', 'setpriv', '--pdeathsig', 'KILL', '--', ...argv];
}

/** A `croft` command for PATH (bin/ only holds croft.js). */
export function ensureCroftShim(stateDir: string): string {
  const dir = path.join(stateDir, 'bin');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'croft');
  fs.writeFileSync(file, `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(croftJs)} "$@"\n`, { mode: 0o755 });
  return dir;
}

export function labEnv(stateDir: string, labName: string, target: string, extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const binDirs = [path.join(stateDir, 'bin'), path.join(repoRoot, 'bin')];
  return {
    ...process.env,
    ...extra,
    PATH: [...binDirs, process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'].join(':'),
    CROFT_LAB: labName,
    CROFT_LAB_TARGET: target,
    // As croft gives its scripts: a module script run by hand in a node (lab exec) finds the
    // library although its folder, copied to the lab's config, has no ../lib beside it.
    CROFT_LIB: CROFT_LIB_PATH,
  };
}
