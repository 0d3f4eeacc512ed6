// The load and the oracles of `croft lab chaos` (chaos.ts), all outside the nodes: a collector in
// the lab's client namespace receives each record a writer on a mirror's primary fsync'd
// (chaos_writer.py); database mirrors also get commits through their VIP (committer.ts); farms get
// keep-alive clients from every client address (holders.ts). Each check returns violations as
// sentences (empty: the invariant holds).
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import type { ModuleConfig } from '../../src/config/types.js';
import type { MirrorStatusView, VerifyView } from '../cli/mirror.js';
import type { FarmMapView } from '../cli/farm.js';
import { bucketOf } from '../../farm/hash-input.js';
import { Committer } from './committer.js';
import { type Conn, Holders } from './holders.js';
import type { Lab } from './index.js';
import { nodeApiRequest } from './node-api.js';
import { chaosWriterScript, collectorScript } from './paths.js';

export const RECORDS_FILE = 'croft-chaos-records';

export async function mirrorView(lab: Lab, node: string, module: string): Promise<MirrorStatusView | null> {
  try {
    const r = await nodeApiRequest<MirrorStatusView>(lab.stateDir, node, 'GET', `/api/v1/modules/${module}/mirror`, 800);
    return r.status === 200 ? r.body : null;
  } catch {
    return null;
  }
}

/** One collector for every writer: lines "<ms> <module>@<node> <n>" or "<ms> <module>@<node> start <k> ok|bad ...". */
export class Collector {
  private constructor(private readonly child: ChildProcess, readonly address: string) {}
  private listeners: ((atMs: number, tag: string, rest: string) => void)[] = [];

  static async start(lab: Lab, port = 7071): Promise<Collector> {
    const child = lab.spawn('client', ['python3', collectorScript, String(port), '-'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const c = new Collector(child, `${lab.clientAddresses()[0]}:${port}`);
    readline.createInterface({ input: child.stdout! }).on('line', (l) => {
      const m = /^(\d+) (\S+) (.*)$/.exec(l);
      if (m) for (const f of c.listeners) f(Number(m[1]), m[2]!, m[3]!);
    });
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`the collector exited (${code})`)));
      child.stderr!.once('data', () => resolve());
    });
    return c;
  }

  on(f: (atMs: number, tag: string, rest: string) => void): void {
    this.listeners.push(f);
  }

  stop(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

export interface Ack { atMs: number; node: string; n: number; writer: number }

/** One run of the writer: where, and the records its file held when it started (null: not yet heard). */
interface WriterRun { node: string; k: number | null; maxAcked: number }

/** The writer of one mirror module, moved to whichever node is its primary, and its oracle. */
export class MirrorLoad {
  readonly acks: Ack[] = [];
  readonly violations: string[] = [];
  maxAcked = 0;
  /** Every writer started, in order (its index is its id in the collector's lines). */
  readonly runs: WriterRun[] = [];
  private writer: { node: string; child: ChildProcess } | null = null;
  private readonly file: string;
  private readonly ackedBy = new Map<number, number>();
  committer: Committer | null = null;

  constructor(private readonly lab: Lab, readonly module: ModuleConfig, collector: Collector, private readonly collectorAddress: string) {
    this.file = path.join(module.mirror!.dirs[0]!, RECORDS_FILE);
    collector.on((atMs, tag, rest) => {
      const m = /^(.*)@(\S+)#(\d+)$/.exec(tag);
      if (!m || m[1] !== module.name) return;
      const node = m[2]!;
      const id = Number(m[3]);
      const run = this.runs[id];
      if (!run) return;
      const start = /^start (\d+) (.*)$/.exec(rest);
      if (start) {
        run.k = Number(start[1]);
        if (start[2] !== 'ok') this.violations.push(`${module.name}: the records file on ${node} is damaged: ${start[2]}`);
        // Every record an earlier writer had acknowledged must be in this one's file.
        const before = Math.max(0, ...this.runs.slice(0, id).map((r) => r.maxAcked));
        if (run.k < before) this.violations.push(`${module.name}: acknowledged records lost: ${node} took over with records 1..${run.k}, ${before} were acknowledged`);
        return;
      }
      const n = Number(rest);
      // A report may arrive late (a segment lost when a link went down, retransmitted once it came
      // back): what counts is which writer acknowledged it, not when it arrived. A record that a
      // later writer's file lacked was lost (or written by two nodes at once); one acknowledged by
      // two writers was written twice.
      const later = this.runs.findIndex((r, j) => j > id && r.k !== null && r.k < n);
      if (later >= 0) this.violations.push(`${module.name}: record ${n} acknowledged on ${node} (writer ${id}) is not in the file writer ${later} found on ${this.runs[later]!.node} (1..${this.runs[later]!.k})`);
      const other = this.ackedBy.get(n);
      if (other !== undefined && other !== id) this.violations.push(`${module.name}: record ${n} acknowledged by two writers (${other} on ${this.runs[other]!.node}, ${id} on ${node}): two nodes writing`);
      this.ackedBy.set(n, id);
      if (n > run.maxAcked) run.maxAcked = n;
      if (n > this.maxAcked) this.maxAcked = n;
      this.acks.push({ atMs, node, n, writer: id });
    });
  }

  get writers(): number {
    return this.runs.length;
  }

  /** The node acknowledging most recently at or before `ms`. */
  lastNodeBefore(ms: number): string | null {
    for (let i = this.acks.length - 1; i >= 0; i--) if (this.acks[i]!.atMs <= ms) return this.acks[i]!.node;
    return null;
  }

  /** Fault at t0: ms to the first acknowledgement by another node than the one writing before. */
  failoverAfter(t0: number): number | null {
    const before = this.lastNodeBefore(t0);
    const first = this.acks.find((a) => a.atMs >= t0 && a.node !== before);
    return before !== null && first ? first.atMs - t0 : null;
  }

  /**
   * Keeps one writer on the primary: started where a node is PRIM or ALONE with its mirror mounted
   * (only when exactly one is), ended where the node is no longer primary (a demotion unmounts).
   */
  async tend(views: Map<string, MirrorStatusView | null>): Promise<void> {
    const primaries = [...views].filter(([, v]) => v && (v.state === 'PRIM' || v.state === 'ALONE') && v.mounted).map(([n]) => n);
    if (this.writer) {
      const v = views.get(this.writer.node);
      // A node that does not answer (paused, killed) keeps its writer: it dies with the node, or
      // acknowledges again once resumed, which the oracle must see.
      if (v && !(v.state === 'PRIM' || v.state === 'ALONE')) this.stopWriter();
    }
    if (this.writer === null && primaries.length === 1) this.startWriter(primaries[0]!);
  }

  private startWriter(node: string): void {
    const id = this.runs.length;
    this.runs.push({ node, k: null, maxAcked: 0 });
    const child = this.lab.spawn(node, ['python3', chaosWriterScript, this.file, `${this.module.name}@${node}#${id}`, this.collectorAddress],
      { stdio: ['pipe', 'ignore', 'ignore'], cwd: '/' });
    child.stdin!.on('error', () => undefined);
    const w = { node, child };
    this.writer = w;
    child.on('exit', () => { if (this.writer === w) this.writer = null; });
  }

  stopWriter(): void {
    const w = this.writer;
    if (!w) return;
    this.writer = null;
    w.child.stdin!.end();
    if (w.child.exitCode === null) w.child.kill('SIGKILL'); // nsenter: the writer dies with it (pdeathsig)
  }

  /** Every acknowledged record is in the primary's files, 1..L in order with nothing missing. */
  async checkRecords(prim: string): Promise<string[]> {
    const acked = this.maxAcked;
    // The files in name order (six digits: numeric order), as one text.
    const r = await this.lab.exec(prim, ['sh', '-c', 'cat "$0"/*', this.file], { timeoutMs: 20_000 });
    if (r.code !== 0) return [`${this.module.name}: cannot read ${this.file} on ${prim}: ${r.stderr.trim()}`];
    const text = r.stdout.endsWith('\n') ? r.stdout : r.stdout.slice(0, r.stdout.lastIndexOf('\n') + 1);
    const lines = text.split('\n').filter(Boolean);
    const bad = lines.findIndex((l, i) => l !== String(i + 1));
    if (bad >= 0) return [`${this.module.name}: ${prim}'s records file: line ${bad + 1} is ${JSON.stringify(lines[bad]!.slice(0, 20))}`];
    if (lines.length < acked) return [`${this.module.name}: acknowledged records lost: ${prim} holds 1..${lines.length}, ${acked} were acknowledged`];
    return [];
  }

  /** `croft mirror verify` (its API call, on the primary): both sides identical. */
  async verify(prim: string): Promise<string[]> {
    try {
      const r = await nodeApiRequest<VerifyView>(this.lab.stateDir, prim, 'POST', `/api/v1/modules/${this.module.name}/mirror/verify`, 60_000);
      if (r.status === 200 && r.body.identical) return [];
      const diffs = r.status === 200 ? r.body.differences.slice(0, 5).map((d) => `${d.path}: ${d.what}`).join(' | ') : JSON.stringify(r.body).slice(0, 300);
      return [`${this.module.name}: croft mirror verify on ${prim}: ${r.status === 200 ? `${r.body.differences.length} difference(s): ${diffs}` : `HTTP ${r.status} ${diffs}`}`];
    } catch (e) {
      return [`${this.module.name}: croft mirror verify on ${prim}: ${(e as Error).message}`];
    }
  }
}

/** PostgreSQL behind a mirror module's VIP (the shipped postgresql-mirror: role, password and database croft). */
export function isPostgres(module: ModuleConfig): boolean {
  const dir = path.dirname(module.file);
  return module.kind === 'mirror' && ['lib.sh', 'start_prim'].some((f) => {
    try { return /\bpg_ctl\b/.test(fs.readFileSync(path.join(dir, f), 'utf8')); } catch { return false; }
  });
}

const PG_ENV = { PGPASSWORD: 'croft', PGCONNECT_TIMEOUT: '2' };

export function postgresCommitter(lab: Lab, vip: string): Committer {
  return new Committer(lab, {
    argv: ['psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', vip, '-U', 'croft', '-d', 'croft'],
    env: PG_ENV,
    statement: (n) => `insert into croft_chaos (n) values (${n}) returning n;\n`,
  });
}

export async function postgresSql(lab: Lab, vip: string, sql: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return lab.exec('client', ['psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-h', vip, '-U', 'croft', '-d', 'croft', '-c', sql], { env: PG_ENV, timeoutMs: 20_000 });
}

/** Every committed row is in the table read through the VIP; no row never sent, none twice. */
export async function checkCommits(lab: Lab, vip: string, c: Committer, module: string): Promise<string[]> {
  await c.pause();
  try {
    const r = await postgresSql(lab, vip, 'select n from croft_chaos order by n');
    if (r.code !== 0) return [`${module}: select through the VIP ${vip}: ${r.stderr.trim()}`];
    const table = r.stdout.split('\n').filter(Boolean).map(Number);
    const have = new Set(table);
    const missing = c.acks.map((a) => a.n).filter((n) => !have.has(n));
    const out: string[] = [];
    if (missing.length) out.push(`${module}: committed rows lost: ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ` (${missing.length} in all)` : ''}`);
    if (table.some((n) => n < 1 || n > c.attempted)) out.push(`${module}: a row that was never sent`);
    if (have.size !== table.length) out.push(`${module}: a row twice`);
    return out;
  } finally {
    c.resume();
  }
}

/** Keep-alive clients of one farm module for one round, and their oracle. */
export class FarmRound {
  private readonly holders: Holders;
  constructor(lab: Lab, readonly module: ModuleConfig, sources: string[]) {
    const f = module.farm!;
    this.holders = new Holders(lab, f.vip!, sources, f.ports[0] ?? 80);
  }

  /**
   * Every client connected and answered by the owner of its bucket with every node a member (the
   * round starts converged).
   */
  async ready(): Promise<string[]> {
    try {
      await this.holders.ready(15_000);
    } catch (e) {
      return [`${this.module.name}: ${(e as Error).message}`];
    }
    return [];
  }

  /** Owners of each source with all the farm's nodes up, from `croft farm map` (the same every round: each starts converged). */
  static async owners(lab: Lab, module: ModuleConfig, sources: string[]): Promise<Map<string, string> | string> {
    const nodes = module.nodes;
    const r = await lab.exec(nodes[0]!, ['croft', 'farm', 'map', module.name, '--json', '--members', nodes.join(',')]);
    if (r.code !== 0) return `croft farm map ${module.name}: ${r.stderr.trim()}`;
    const map = JSON.parse(r.stdout) as FarmMapView & { map: string[] };
    return new Map(sources.map((s) => [s, map.map[bucketOf(map.balance, map.buckets, map.seed, s)]!]));
  }

  /** Stops the clients: connections broken on nodes that did not fail, first answers by a non-owner. */
  async finish(failed: string[], owners: Map<string, string> | string): Promise<{ violations: string[]; conns: Conn[] }> {
    const conns = await this.holders.stop();
    const out: string[] = [];
    if (typeof owners === 'string') out.push(`${this.module.name}: ${owners}`);
    for (const c of conns) {
      const first = c.answers[0];
      if (!first) { out.push(`${this.module.name}: client ${c.src} was never answered`); continue; }
      if (typeof owners !== 'string' && /^n\d+$/.test(first.node) && owners.get(c.src) !== first.node) {
        out.push(`${this.module.name}: client ${c.src} answered by ${first.node}, its bucket's owner is ${owners.get(c.src)}`);
      }
      if (!failed.includes(first.node) && c.events.length > 0) {
        out.push(`${this.module.name}: client ${c.src}'s connection on ${first.node} (which did not fail) ended: ${c.events.map((e) => e.what).join(', ')}`);
      }
    }
    return { violations: out, conns };
  }

  kill(): void {
    this.holders.kill();
  }
}
