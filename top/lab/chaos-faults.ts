// The faults of `croft lab chaos` (chaos.ts), each injected on a lab with the lab's own tools
// (index.ts: kill, crash, cut, partition, netem; the daemon's pid for SIGSTOP/SIGCONT; the
// witness's pid), and healed by the function `inject` returns. See FAULT_HELP (chaos-plan.ts).
import fs from 'node:fs';
import { CroftError } from '../../src/errors.js';
import { emptyDisk, fillDisk, type NodeDisks } from './chaos-disks.js';
import type { FaultKind } from './chaos-plan.js';
import type { Lab } from './index.js';
import { sleep } from './wait.js';

export interface FaultContext {
  lab: Lab;
  /** The redis witness the campaign runs in the client namespace (its host pid), if any. */
  witnessPid: number | null;
  /** The mirror nodes' own disks, in a lab built for the campaign (chaos-disks.ts); null otherwise. */
  disks: Map<string, NodeDisks> | null;
}

export interface Injected {
  /** The nodes the fault made fail (a connection on another node must not break). */
  failed: string[];
  /** Ends the fault: the node restarted, links up, the daemon resumed... */
  heal(): Promise<void>;
  /** What the fault hit, when the kind alone does not say (the round's line shows it). */
  note?: string;
}

/** The parent pid of a process (from /proc), or null. */
function parentOf(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    return ppid > 1 ? ppid : null;
  } catch {
    return null;
  }
}

const LOSS = ['loss', '15%'];
const DELAY = ['delay', '40ms', '10ms'];

/** Whether the kind can run in this campaign (a reason when not). */
export function unsupported(kind: FaultKind, ctx: FaultContext): string | null {
  if (kind === 'witness-down' && ctx.witnessPid === null) return 'witness-down needs a redis witness (--witness redis)';
  if (kind === 'disk-full' && (ctx.disks === null || ctx.disks.size === 0)) {
    return 'disk-full needs a lab built by the campaign with a mirror module (--config DIR): its nodes get disks of their own';
  }
  return null;
}

/** `pick` (the plan's draw) chooses, for disk-full, the mirror's data (even) or its state (odd). */
export async function inject(kind: FaultKind, node: string, ctx: FaultContext, pick = 0): Promise<Injected> {
  const { lab } = ctx;
  switch (kind) {
    case 'kill':
      await lab.kill(node);
      return { failed: [node], heal: async () => { await lab.start(node); } };
    case 'crash':
      await lab.crash(node);
      return { failed: [node], heal: async () => { await lab.start(node); } };
    case 'cut':
      await lab.cut(node);
      return { failed: [node], heal: () => lab.heal(node) };
    case 'partition': {
      await lab.partition([[node]]);
      // Without a quorum each side of a farm serves every bucket during a partition (documented):
      // a partition fails every node for the connection invariant.
      return { failed: lab.nodes, heal: () => lab.partition([]) };
    }
    case 'pause': {
      const pid = (await lab.status()).nodes.find((n) => n.name === node)?.daemonPid;
      if (pid === undefined) throw new CroftError('CROFT_ERR_LAB', `no daemon pid for ${node}`);
      // The daemon's parent is the nsenter that forked it into the node's PID namespace: seeing its
      // child stopped, nsenter stops itself too (job control) and would never reap the daemon once
      // killed (a later `lab kill` then finds the namespace stuck): it is continued first.
      const parent = parentOf(pid);
      process.kill(pid, 'SIGSTOP');
      return {
        failed: [node],
        heal: async () => {
          for (const p of [parent, pid]) {
            try { if (p !== null) process.kill(p, 'SIGCONT'); } catch { /* it died meanwhile: reported by convergence */ }
          }
        },
      };
    }
    case 'loss':
    case 'delay':
      await lab.netem(node, kind === 'loss' ? LOSS : DELAY);
      return { failed: [node], heal: () => lab.netem(node, ['clear']) };
    case 'witness-down': {
      const pid = ctx.witnessPid;
      if (pid === null) throw new CroftError('CROFT_ERR_LAB', 'no witness to stop');
      process.kill(pid, 'SIGSTOP');
      return { failed: [], heal: async () => { process.kill(pid, 'SIGCONT'); await sleep(50); } };
    }
    case 'disk-full': {
      const disks = ctx.disks?.get(node);
      if (!disks) throw new CroftError('CROFT_ERR_LAB', `${node} has no disk of its own (no mirror module runs there)`);
      const disk = pick % 2 === 0 ? disks.data[(pick >> 1) % disks.data.length]! : disks.state;
      const ballast = await fillDisk(lab, node, disk);
      // The node's applications and daemon go on (failing writes is what they must handle): only
      // that node's connections may break.
      return { failed: [node], heal: () => emptyDisk(lab, node, ballast), note: `full: ${disk.dir}` };
    }
  }
}
