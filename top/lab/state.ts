// state.json: what a lab is made of, written as it is built so a half-built lab can be torn down.
import fs from 'node:fs';
import path from 'node:path';
import { CroftError } from '../../src/errors.js';

export interface NetemSettings {
  delayMs?: number;
  jitterMs?: number;
  lossPercent?: number;
}

export interface LinkNetem extends NetemSettings {
  /** `tc` when the kernel has sch_netem, `relay` for the userspace stand-in (netem_relay.py). */
  method: 'tc' | 'relay';
  /** Pid of the relay process (method relay), in the switch namespace. */
  relayPid?: number;
}

export interface LabNodeState {
  name: string;
  index: number;
  namespace: string;
  /** One per LAN. */
  addresses: string[];
  /** One per LAN, with `lab up --ipv6` (else absent). */
  addresses6?: string[];
  /** Persistent mount namespace file. */
  mountNs: string;
  /** PID namespace file (pidns.ts); its init's host pid. */
  pidNs: string;
  initPid?: number;
  /** Private folders bound over the standard paths, by standard path. */
  dirs: Record<string, string>;
  daemonPid?: number;
  /** The daemon command (argv, run inside the node), so `lab start` restarts the same thing. */
  daemonCommand?: string[];
  daemonLog: string;
  /** Per LAN index (as string keys in JSON). */
  netem: Record<string, LinkNetem>;
  /** `lab crash` took its links down: `lab start` brings them back (index.ts). */
  crashed?: boolean;
}

export interface LabState {
  version: 1;
  name: string;
  stateDir: string;
  createdAt: string;
  lans: number;
  switchNamespace: string;
  nodes: LabNodeState[];
  /** addresses6: with `lab up --ipv6` (else absent). */
  client: { namespace: string; addresses: string[]; addresses6?: string[] };
  /** Every namespace created so far, in creation order. */
  namespaces: string[];
  configDir: string;
  /** Whether daemons run in this lab (false with --no-daemons). */
  daemons: boolean;
}

export function statePath(stateDir: string): string {
  return path.join(stateDir, 'state.json');
}

export function writeState(state: LabState): void {
  const file = statePath(state.stateDir);
  fs.writeFileSync(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  fs.renameSync(`${file}.tmp`, file); // atomic: a reader never sees half a file
}

export function readState(stateDir: string): LabState | undefined {
  let text: string;
  try {
    text = fs.readFileSync(statePath(stateDir), 'utf8');
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as LabState;
  } catch (e) {
    throw new CroftError('CROFT_ERR_LAB', `${statePath(stateDir)} is not valid JSON; run lab down to remove the lab`, { cause: e });
  }
}
