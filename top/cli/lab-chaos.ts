// `croft lab chaos`: parses its options, builds the lab from --config (or opens lab --name), runs
// the campaign (top/lab/chaos.ts) and prints its rounds and report. Exit 0: every invariant held;
// 1: a violation (printed with the seed, the round and the fault history; the lab is kept).
import { CroftError } from '../../src/errors.js';
import { FAULT_KINDS, type FaultKind, freshSeed, parseFaults } from '../lab/chaos-plan.js';
import { chaosLab } from '../lab/chaos-setup.js';
import { runChaos } from '../lab/chaos.js';
import { Lab } from '../lab/index.js';
import type { LabOutput } from './lab.js';

export interface ChaosArgs {
  name?: string;
  config?: string;
  nodes?: number;
  clients?: number;
  witness?: string;
  rounds?: number;
  seed?: number;
  faults?: string;
  holdMs?: string;
  settleMs?: number;
  convergeMs?: number;
  json: boolean;
}

const usage = (msg: string): never => { throw new CroftError('CROFT_ERR_USAGE', msg); };

function holdRange(text: string | undefined): [number, number] | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+)(?:-(\d+))?$/.exec(text);
  if (!m) usage(`--hold-ms must be MS or MIN-MAX, got ${text}`);
  const lo = Number(m![1]);
  const hi = m![2] === undefined ? lo : Number(m![2]);
  if (lo < 100 || hi < lo || hi > 600_000) usage(`--hold-ms must lie within 100..600000 with MIN <= MAX, got ${text}`);
  return [lo, hi];
}

export async function chaosCommand(a: ChaosArgs, out: LabOutput): Promise<number> {
  if (a.witness !== undefined && a.witness !== 'redis') usage(`--witness must be redis, got ${a.witness}`);
  if (a.config === undefined && (a.witness || a.nodes !== undefined || a.clients !== undefined)) usage('--witness, --nodes and --clients build a lab: they need --config');
  const hold = holdRange(a.holdMs);
  const rounds = a.rounds ?? 30;
  if (rounds < 1) usage(`--rounds must be 1 or more, got ${rounds}`);
  const seed = a.seed ?? freshSeed();
  const named = a.faults === undefined ? null : parseFaults(a.faults);
  const built = a.config === undefined ? null : await chaosLab({
    name: a.name ?? 'chaos', config: a.config, nodes: a.nodes ?? 3, clients: a.clients ?? 32, intervalMs: 100, timeoutMs: 500,
    witness: a.witness === 'redis' ? 'redis' : 'config',
  });
  // By default every kind that applies: disk-full where the campaign built the mirror nodes' disks.
  const kinds: FaultKind[] = named ?? FAULT_KINDS.filter((k) => (k !== 'disk-full' || (built?.disks.size ?? 0) > 0) && (k !== 'witness-down' || a.witness === 'redis'));
  const lab = built?.lab ?? Lab.open(a.name ?? 'lab');
  let keep = false;
  try {
    const r = await runChaos({
      lab, rounds, seed, kinds, holdMs: hold, settleMs: a.settleMs, convergeMs: a.convergeMs, witnessPid: built?.witnessPid ?? null, disks: built?.disks ?? null,
      log: (l) => { if (!a.json) out.log(l); },
    });
    if (a.json) out.log(JSON.stringify(r, null, 2));
    else for (const l of r.report) out.log(`# ${l}`);
    keep = r.violation !== null;
    if (keep && built) out.error(`lab ${lab.name} kept for a look: croft lab status --name ${lab.name}; croft lab down --name ${lab.name}`);
    return keep ? 1 : 0;
  } finally {
    if (built && !keep) await built.close();
  }
}
