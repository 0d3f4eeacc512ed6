// `croft lab chaos`: a campaign of seeded random faults against a lab running the user's modules,
// one fault after another (chaos-plan.ts: the schedule; chaos-faults.ts: inject and heal), under
// load whose oracles live outside the nodes (chaos-load.ts), with the invariants checked after
// every round:
//   - no acknowledged record of a mirror's writer lost, none acknowledged twice (two writers);
//   - no commit through a database mirror's VIP lost;
//   - never two nodes writing (a record acknowledged by two writers, or missing from a later one's);
//   - a farm client first answered by its bucket's owner, and no connection broken on a node that
//     did not fail;
//   - after the heal, convergence within `convergeMs` (every mirror PRIM/SECOND, every farm node
//     a member on every node), and `croft mirror verify` identical.
// The first violation ends the campaign (the cluster's state is then what a person must look at):
// it is reported with the seed, the round and the history of faults, and `--seed` replays them.
import { loadConfig } from '../../src/config/index.js';
import type { ModuleConfig } from '../../src/config/types.js';
import type { FarmStatus } from '../../farm/runtime.js';
import type { MirrorStatusView } from '../cli/mirror.js';
import { type FaultKind, reportLines, type RoundRecord, schedule } from './chaos-plan.js';
import { type FaultContext, inject, unsupported } from './chaos-faults.js';
import type { NodeDisks } from './chaos-disks.js';
import { checkCommits, Collector, FarmRound, isPostgres, MirrorLoad, mirrorView, postgresCommitter, postgresSql } from './chaos-load.js';
import type { Lab } from './index.js';
import { nodeApiRequest } from './node-api.js';
import { sleep, waitFor } from './wait.js';

export interface ChaosOptions {
  lab: Lab;
  rounds: number;
  seed: number;
  kinds: readonly FaultKind[];
  /** Each fault lasts between these (ms). Default [1500, 3000]. */
  holdMs?: [number, number];
  /** Load before each fault (ms). Default 500. */
  settleMs?: number;
  /** The bound on convergence after a heal (ms). Default 30000. */
  convergeMs?: number;
  /** The redis witness's host pid, when the campaign runs one (witness-down, two-primaries check). */
  witnessPid?: number | null;
  /** The mirror nodes' own disks (chaosLab): needed by disk-full. */
  disks?: Map<string, NodeDisks> | null;
  log(line: string): void;
}

export interface ChaosResult {
  seed: number;
  rounds: RoundRecord[];
  violation: { round: number; messages: string[] } | null;
  report: string[];
}

const primaryState = (v: MirrorStatusView | null | undefined) => v?.state === 'PRIM' || v?.state === 'ALONE';

async function farmView(lab: Lab, node: string, module: string): Promise<FarmStatus | undefined> {
  try {
    const r = await nodeApiRequest<{ farm?: FarmStatus }>(lab.stateDir, node, 'GET', `/api/v1/modules/${module}`, 800);
    return r.status === 200 ? r.body.farm : undefined;
  } catch {
    return undefined;
  }
}

class Campaign {
  readonly mirrors: ModuleConfig[];
  readonly farms: ModuleConfig[];
  readonly loads = new Map<string, MirrorLoad>();
  /** Latest view of each mirror module per node (tend loop). */
  readonly views = new Map<string, Map<string, MirrorStatusView | null>>();
  readonly twoPrimaries: string[] = [];
  /** Each mirror's PRIM at the last convergence check. */
  readonly prims = new Map<string, string>();
  private collector: Collector | null = null;
  private tending = false;
  private tendLoop: Promise<void> | null = null;

  constructor(readonly o: ChaosOptions) {
    const config = loadConfig(o.lab.configDir);
    this.mirrors = config.modules.filter((m) => m.kind === 'mirror');
    this.farms = config.modules.filter((m) => m.kind === 'farm' && m.farm?.vip);
  }

  get lab(): Lab { return this.o.lab; }

  async start(): Promise<void> {
    const { lab } = this;
    if (this.mirrors.length > 0) {
      this.collector = await Collector.start(lab);
      for (const m of this.mirrors) {
        const load = new MirrorLoad(lab, m, this.collector, this.collector.address);
        this.loads.set(m.name, load);
        await this.primary(m);
      }
    }
    this.tending = true;
    this.tendLoop = this.tend();
    for (const m of this.mirrors) {
      const load = this.loads.get(m.name)!;
      await waitFor(`${m.name}: the writer acknowledging`, () => load.maxAcked > 0, 30_000, 50);
      if (isPostgres(m) && m.mirror!.vip) {
        const vip = m.mirror!.vip;
        await waitFor(`${m.name}: PostgreSQL answers through ${vip}`, async () => (await postgresSql(lab, vip, 'select 1')).stdout.trim() === '1', 120_000, 200);
        const t = await postgresSql(lab, vip, 'create table if not exists croft_chaos (n integer primary key)');
        if (t.code !== 0) throw new Error(`${m.name}: create table through ${vip}: ${t.stderr}`);
        await postgresSql(lab, vip, 'truncate croft_chaos');
        load.committer = postgresCommitter(lab, vip);
        load.committer.start();
        await waitFor(`${m.name}: commits through ${vip}`, () => load.committer!.ok() && load.committer!.acks.length > 0, 30_000, 50);
      }
    }
    await this.converge(60_000);
  }

  /** A mirror module with a primary: `croft prim` on its first node when both wait. */
  private async primary(m: ModuleConfig): Promise<void> {
    const { lab } = this;
    const nodes = m.nodes;
    await waitFor(`${m.name}: its nodes answer`, async () => (await Promise.all(nodes.map((n) => mirrorView(lab, n, m.name)))).every((v) => v !== null), 60_000, 100);
    const views = await Promise.all(nodes.map((n) => mirrorView(lab, n, m.name)));
    if (!views.some(primaryState)) {
      const r = await lab.exec(nodes[0]!, ['croft', 'prim', m.name]);
      if (r.code !== 0) throw new Error(`croft prim ${m.name} on ${nodes[0]}: ${r.stderr.trim()}`);
    }
  }

  private async tend(): Promise<void> {
    while (this.tending) {
      for (const m of this.mirrors) {
        const views = new Map<string, MirrorStatusView | null>();
        await Promise.all(m.nodes.map(async (n) => { views.set(n, await mirrorView(this.lab, n, m.name)); }));
        this.views.set(m.name, views);
        const prims = [...views].filter(([, v]) => primaryState(v)).map(([n]) => n);
        if (this.o.witnessPid != null && prims.length > 1) this.twoPrimaries.push(`${m.name}: ${prims.join(' and ')} primary at once (${new Date().toISOString()})`);
        await this.loads.get(m.name)!.tend(views);
      }
      await sleep(100);
    }
  }

  /** What is not converged yet (empty: converged). */
  async unconverged(): Promise<string[]> {
    const out: string[] = [];
    for (const m of this.mirrors) {
      const views = await Promise.all(m.nodes.map((n) => mirrorView(this.lab, n, m.name)));
      const prim = m.nodes.find((_, i) => views[i]?.state === 'PRIM');
      if (prim) this.prims.set(m.name, prim);
      const states = views.map((v) => v?.state ?? 'no answer').sort();
      // The link up too: a PRIM whose stream just broke still says PRIM for a moment.
      if (states.join() !== 'PRIM,SECOND' || !views.every((v) => v!.link)) out.push(`${m.name}: ${m.nodes.map((n, i) => `${n} ${views[i]?.state ?? 'no answer'}`).join(', ')}`);
    }
    for (const f of this.farms) {
      for (const n of f.nodes) {
        const st = await farmView(this.lab, n, f.name);
        if (!st?.active || st.members.join() !== [...f.nodes].sort().join()) out.push(`${f.name} on ${n}: members ${st?.members.join(',') ?? 'no answer'}`);
      }
    }
    return out;
  }

  /** Converged: three checks in a row with nothing left (a state about to change is not converged). */
  async converge(boundMs: number): Promise<{ ms: number } | { stuck: string[] }> {
    const t0 = Date.now();
    let last: string[] = [];
    let good = 0;
    let firstGood = 0;
    while (Date.now() - t0 <= boundMs) {
      last = await this.unconverged();
      if (last.length > 0) good = 0;
      else if (good++ === 0) firstGood = Date.now();
      if (good === 3) return { ms: firstGood - t0 };
      await sleep(50);
    }
    return { stuck: last };
  }

  primaryOf(m: ModuleConfig): string | null {
    const v = this.views.get(m.name);
    return v ? ([...v].find(([, x]) => x?.state === 'PRIM')?.[0] ?? null) : null;
  }

  /** The node a planned fault hits: the first mirror's primary or secondary, or a node (of `among`) by rotation. */
  target(role: 'primary' | 'secondary' | 'any', pick: number, among?: string[]): string {
    const nodes = among?.length ? among : this.lab.nodes;
    const m = this.mirrors[0];
    if (m && role !== 'any') {
      const prim = this.primaryOf(m);
      if (prim) return role === 'primary' ? prim : m.nodes.find((n) => n !== prim)!;
    }
    return nodes[pick % nodes.length]!;
  }

  async stop(): Promise<void> {
    this.tending = false;
    await this.tendLoop;
    for (const l of this.loads.values()) {
      await l.committer?.stop().catch(() => undefined);
      l.committer?.kill();
      l.stopWriter();
    }
    this.collector?.stop();
  }
}

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const holdMs = o.holdMs ?? [1500, 3000];
  const settleMs = o.settleMs ?? 500;
  const convergeMs = o.convergeMs ?? 30_000;
  const ctx: FaultContext = { lab: o.lab, witnessPid: o.witnessPid ?? null, disks: o.disks ?? null };
  for (const k of o.kinds) {
    const why = unsupported(k, ctx);
    if (why) throw new Error(why);
  }
  const plan = schedule({ rounds: o.rounds, seed: o.seed, kinds: o.kinds, holdMs });
  const c = new Campaign(o);
  const records: RoundRecord[] = [];
  const history: string[] = [];
  let violation: ChaosResult['violation'] = null;
  o.log(`chaos: seed ${o.seed}, ${o.rounds} rounds of ${o.kinds.join(',')}; mirrors: ${c.mirrors.map((m) => m.name).join(',') || '-'}; farms: ${c.farms.map((m) => m.name).join(',') || '-'}; convergence bound ${convergeMs} ms`);
  await c.start();
  const sources = o.lab.clientAddresses();
  const ownersOf = new Map<string, Map<string, string> | string>();
  try {
    for (const p of plan) {
      const target = c.target(p.role, p.pick, p.kind === 'disk-full' ? [...(o.disks?.keys() ?? [])] : undefined);
      const seen = new Map([...c.loads].map(([k, l]) => [k, l.violations.length]));
      const twoBefore = c.twoPrimaries.length;
      const farms = c.farms.map((f) => new FarmRound(o.lab, f, sources));
      const violations: string[] = [];
      const notes: string[] = [];
      let failed: string[] = [];
      let failoverMs: number | null = null;
      let recoveryMs: number | null = null;
      // Where a round's time goes (CROFT_CHAOS_TRACE=1 prints it).
      const phases: string[] = [];
      let tPhase = Date.now();
      const phase = (name: string) => { const now = Date.now(); phases.push(`${name} ${now - tPhase}`); tPhase = now; };
      try {
        // A late consequence of the last fault (a loss noticed at the ack timeout) settles first.
        const before = await c.converge(convergeMs);
        if ('stuck' in before) violations.push(`not converged before round ${p.round}: ${before.stuck.join('; ')}`);
        for (const f of farms) violations.push(...await f.ready());
        const owners = await Promise.all(c.farms.map(async (f) => {
          if (!ownersOf.has(f.name)) ownersOf.set(f.name, await FarmRound.owners(o.lab, f, sources));
          return ownersOf.get(f.name)!;
        }));
        phase('clients');
        await sleep(settleMs);
        const t0 = Date.now();
        const line = `round ${p.round}: ${p.kind} ${target}${p.role !== 'any' ? ` (${p.role})` : ''} for ${p.holdMs} ms`;
        history.push(line);
        const inj = await inject(p.kind, target, ctx, p.pick);
        failed = inj.failed;
        if (inj.note) notes.push(inj.note);
        phase('inject');
        await sleep(p.holdMs);
        await inj.heal();
        phase('hold+heal');
        const tHeal = Date.now();
        const conv = await c.converge(convergeMs);
        phase('converge');
        if ('stuck' in conv) violations.push(`not converged ${convergeMs} ms after the heal: ${conv.stuck.join('; ')}`);
        else recoveryMs = conv.ms;
        for (const m of c.mirrors) {
          const load = c.loads.get(m.name)!;
          const fo = load.failoverAfter(t0);
          if (fo !== null && (failoverMs === null || fo < failoverMs)) failoverMs = fo;
          // The writer runs again on the primary (restarted after a failover).
          let prim = c.prims.get(m.name);
          if (prim && recoveryMs !== null) {
            const acked = load.maxAcked;
            await waitFor(`${m.name}: records acknowledged again`, () => load.maxAcked > acked, 15_000, 20).catch(() => violations.push(`${m.name}: no record acknowledged within 15 s after convergence`));
            phase('writer');
            violations.push(...await load.checkRecords(prim));
            phase('records');
            // A verify refused because the mirror is not connected, or cut short because its link
            // broke: the cluster was not converged after all (a lease lost late, a stream broken
            // after the checks, a peer declared down near the end of a loss): converge again
            // within what is left of the bound, then verify. Past the bound it counts.
            const unsettled = (e: string | undefined) => e !== undefined && /not connected|verify runs on the PRIM|closed the verify session/.test(e);
            for (;;) {
              let v = await load.verify(prim);
              if (v.length > 0 && !unsettled(v[0])) {
                // A verify while the application runs can see a file the application removes
                // between the listing and the checksum: only a difference found again counts.
                await sleep(500);
                const again = await load.verify(prim);
                if (again.length === 0) notes.push(`${m.name}: a verify difference gone 0.5 s later (${v[0]!.slice(0, 200)})`);
                v = again.length === 0 ? [] : unsettled(again[0]) ? again : [...v, `and again 0.5 s later: ${again[0]}`];
              }
              if (v.length === 0 || !unsettled(v[0]) || Date.now() - tHeal > convergeMs) { violations.push(...v); break; }
              const again = await c.converge(Math.max(0, convergeMs - (Date.now() - tHeal)));
              if ('stuck' in again) { violations.push(`not converged ${convergeMs} ms after the heal: ${again.stuck.join('; ')}`); break; }
              recoveryMs = Date.now() - tHeal;
              notes.push(`${m.name}: disconnected again after the first convergence`);
              prim = c.prims.get(m.name)!;
            }
            phase('verify');
          }
          if (load.committer && m.mirror!.vip) {
            const before = load.committer.acks.length;
            await waitFor(`${m.name}: commits again`, () => load.committer!.ok() && load.committer!.acks.length > before, 20_000, 20)
              .catch((e: Error) => violations.push(`${m.name}: no commit through the VIP within 20 s after convergence (${e.message})`));
            violations.push(...await checkCommits(o.lab, m.mirror!.vip, load.committer, m.name));
            phase('commits');
          }
          violations.push(...load.violations.slice(seen.get(m.name)));
        }
        // Two nodes saying PRIM or ALONE at once is not two nodes writing (a resumed zombie says
        // PRIM until it hears it lost): the records decide; the moments are counted for the reader.
        if (c.twoPrimaries.length > twoBefore) notes.push(`two nodes said primary in ${c.twoPrimaries.length - twoBefore} samples`);
        for (const [i, f] of farms.entries()) {
          const r = await f.finish(failed, owners[i]!);
          violations.push(...r.violations);
          const broken = r.conns.filter((x) => x.events.length > 0).length;
          if (broken) notes.push(`${f.module.name}: ${broken} of ${r.conns.length} clients reconnected`);
        }
        phase('farm');
        if (process.env.CROFT_CHAOS_TRACE) notes.push(`ms: ${phases.join(', ')}`);
      } finally {
        for (const f of farms) f.kill();
      }
      const rec: RoundRecord = { round: p.round, kind: p.kind, target, holdMs: p.holdMs, failoverMs, recoveryMs, violations, notes };
      records.push(rec);
      o.log(`round ${p.round}/${o.rounds}: ${p.kind} ${target}${p.role !== 'any' ? ` (${p.role})` : ''} ${p.holdMs} ms; `
        + `failover ${failoverMs ?? '-'} ms; converged ${recoveryMs ?? '-'} ms after the heal; ${violations.length ? `${violations.length} VIOLATION(S)` : 'invariants hold'}${notes.length ? `; ${notes.join('; ')}` : ''}`);
      if (violations.length > 0) {
        violation = { round: p.round, messages: violations };
        o.log(`VIOLATION in round ${p.round} (seed ${o.seed}; replay: --seed ${o.seed} --rounds ${p.round}):`);
        for (const v of violations.slice(0, 20)) o.log(`  ${v}`);
        if (violations.length > 20) o.log(`  ... ${violations.length - 20} more`);
        o.log('fault history:');
        for (const h of history) o.log(`  ${h}`);
        break;
      }
    }
  } finally {
    await c.stop();
  }
  const report = reportLines(records);
  const loads = [...c.loads.values()];
  report.push(`${records.length} rounds, seed ${o.seed}; records acknowledged: ${loads.map((l) => `${l.module.name} ${l.maxAcked} (${l.writers} writer starts)`).join(', ') || '-'}`
    + `; commits: ${loads.filter((l) => l.committer).map((l) => `${l.module.name} ${l.committer!.acks.length} of ${l.committer!.attempted} sent`).join(', ') || '-'}`);
  return { seed: o.seed, rounds: records, violation, report };
}
