// The pure part of `croft lab chaos` (chaos.ts): the fault kinds, the seeded generator, the schedule
// of faults a seed gives, and the per-kind figures of the report. Nothing here touches the lab, so
// the same seed gives the same schedule on any machine (what happens under each fault depends on
// timing: a replay repeats the faults, their order, targets and durations, not the scheduler).
import { CroftError } from '../../src/errors.js';

export const FAULT_KINDS = ['kill', 'crash', 'cut', 'partition', 'pause', 'loss', 'delay', 'disk-full', 'witness-down'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** What each fault does (the CLI's help and the README say the same). */
export const FAULT_HELP: Record<FaultKind, string> = {
  kill: 'SIGKILL of the node\'s daemon and applications; its kernel stays up (peers get RSTs); restarted at heal',
  crash: 'links down at the switch, then everything killed: nothing leaves the node; booted and restarted at heal',
  cut: 'the node\'s links down at the switch for the hold time (it stays alive, alone)',
  partition: 'the node cannot reach the other nodes for the hold time (the client still reaches every node)',
  pause: 'the node\'s daemon stopped (SIGSTOP) for the hold time, then resumed (SIGCONT): a zombie primary',
  loss: 'packet loss (15%) on the node\'s links for the hold time',
  delay: 'delay (40 ms, jitter 10 ms) on the node\'s links for the hold time',
  'disk-full': 'the filesystem under a mirror node\'s data, or under its mirror state (dirty logs), full for the hold time (each a tmpfs of its own in a lab the campaign built)',
  'witness-down': 'the redis witness stopped (SIGSTOP: unreachable, connections hang) for the hold time',
};

/** Which node a fault hits: a mirror's primary, its secondary, or any node (by the rotation of nodes). */
export type TargetRole = 'primary' | 'secondary' | 'any';

export interface PlannedFault {
  round: number;
  kind: FaultKind;
  role: TargetRole;
  /** Index into the nodes for role 'any' (modulo their count). */
  pick: number;
  /** How long the fault lasts before it heals (kill and crash: how long the node stays down). */
  holdMs: number;
}

/** `kill,crash,...`: each a known kind, none twice; a clear usage error otherwise. */
export function parseFaults(text: string): FaultKind[] {
  const out: FaultKind[] = [];
  for (const raw of text.split(',')) {
    const k = raw.trim();
    if (k === '') continue;
    if (!(FAULT_KINDS as readonly string[]).includes(k)) {
      throw new CroftError('CROFT_ERR_USAGE', `--faults: unknown fault ${JSON.stringify(k)} (known: ${FAULT_KINDS.join(', ')})`);
    }
    if (out.includes(k as FaultKind)) throw new CroftError('CROFT_ERR_USAGE', `--faults: ${k} named twice`);
    out.push(k as FaultKind);
  }
  if (out.length === 0) throw new CroftError('CROFT_ERR_USAGE', '--faults needs at least one fault');
  return out;
}

/** mulberry32: a small, fast, well-spread 32-bit generator; the whole state is the seed. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** A float in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  shuffle<T>(items: readonly T[]): T[] {
    const a = [...items];
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a;
  }
}

export interface ScheduleOptions {
  rounds: number;
  seed: number;
  kinds: readonly FaultKind[];
  /** Shortest and longest hold (ms); each fault draws its own in between. */
  holdMs: [number, number];
}

/**
 * The faults of a campaign. Kinds come in shuffled blocks (each block holds every kind once), so
 * that any `rounds` >= the number of kinds covers them all; a target role per fault: a mirror's
 * primary half of the time (failovers), its secondary a quarter, any node the rest.
 */
export function schedule(o: ScheduleOptions): PlannedFault[] {
  if (!Number.isInteger(o.rounds) || o.rounds < 1) throw new CroftError('CROFT_ERR_USAGE', `--rounds must be 1 or more, got ${o.rounds}`);
  const rng = new Rng(o.seed);
  const out: PlannedFault[] = [];
  let block: FaultKind[] = [];
  for (let round = 1; round <= o.rounds; round++) {
    if (block.length === 0) block = rng.shuffle(o.kinds);
    const kind = block.shift()!;
    const r = rng.next();
    const role: TargetRole = r < 0.5 ? 'primary' : r < 0.75 ? 'secondary' : 'any';
    const pick = rng.int(1 << 16);
    const [lo, hi] = o.holdMs;
    out.push({ round, kind, role, pick, holdMs: lo + rng.int(Math.max(1, hi - lo + 1)) });
  }
  return out;
}

/** A seed from the clock, when none is given (printed, so the campaign can be replayed). */
export function freshSeed(): number {
  return (Date.now() ^ (process.pid << 16)) >>> 0 || 1;
}

export function summary(values: number[]): { n: number; min: number; median: number; max: number } | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, min: s[0]!, median: s[Math.floor(s.length / 2)]!, max: s[s.length - 1]! };
}

export interface RoundRecord {
  round: number;
  kind: FaultKind;
  target: string;
  holdMs: number;
  /** Fault to the first acknowledgement from another node (a mirror's failover), when there was one. */
  failoverMs: number | null;
  /** Heal to converged (every mirror PRIM/SECOND, every farm node UP). */
  recoveryMs: number | null;
  violations: string[];
  notes: string[];
}

/** The report's lines, one per fault kind (`# ` lines in the tests). */
export function reportLines(rounds: readonly RoundRecord[]): string[] {
  const out: string[] = [];
  const fmt = (s: ReturnType<typeof summary>) => (s ? `min ${s.min} / median ${s.median} / max ${s.max} ms (${s.n})` : 'none');
  for (const kind of FAULT_KINDS) {
    const rs = rounds.filter((r) => r.kind === kind);
    if (rs.length === 0) continue;
    const bad = rs.filter((r) => r.violations.length > 0).length;
    out.push(`${kind}: ${rs.length} rounds, ${bad} with violations; failover ${fmt(summary(rs.flatMap((r) => (r.failoverMs === null ? [] : [r.failoverMs]))))}; `
      + `recovery ${fmt(summary(rs.flatMap((r) => (r.recoveryMs === null ? [] : [r.recoveryMs]))))}`);
  }
  return out;
}
