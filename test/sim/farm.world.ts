// One seeded simulation run of the farm: several nodes, each running the real farm runtime
// (farm/runtime.ts) over faulty fakes of its kernel (an nft that fails or is slow, a VIP that fails
// before or after it acted), a simulated clock, heartbeats that are lost or delayed (each node sees
// the others' module states through them, as the daemon does), crashes (a power cut: the node's
// kernel state is gone with its daemon) and restarts, checker failures and planned stops with a
// drain. Invariants are checked at every effect and after every step:
//   - a node's VIP is never present without its filter (filter before VIP on the way up, VIP gone
//     before the filter on the way down), its ARP responder never without its VIP, its buckets never
//     set without its filter, and no two effects of one node at once;
//   - a drain is said drained within drain_ms;
//   - after the faults stop and the view is stable: every bucket has exactly one owner, an UP node
//     (none when no node is UP or the quorum is lost), and every node holds what its state wants.
// Everything random comes from the seed, so a seed replays.
import { createHash } from 'node:crypto';
import { silentLogger } from '../../src/log/logger.js';
import type { ClusterConfig, ModuleConfig } from '../../src/config/types.js';
import type { NodeModuleView } from '../../farm/members.js';
import { FarmRuntime, type FarmClock, type FarmEffects } from '../../farm/runtime.js';
import { chance, mulberry32, pick, randInt, type Rng } from './prng.js';

/** One IPv4 VIP mostly; sometimes one IPv6, or both (a module with several VIPs). */
function vipsFor(rng: Rng): { vip: string; vips: string[] } {
  const vips = pick(rng, [['10.0.0.100'], ['10.0.0.100'], ['10.0.0.100'], ['fd00::100'], ['10.0.0.100', 'fd00::100']]);
  return { vip: vips[0]!, vips };
}

type ModState = 'STOP' | 'WAIT' | 'UP';

interface Timer { atMs: number; seq: number; fn: () => void; cancelled: boolean }

/** A clock that moves only when the run takes its next event. */
class Scheduler {
  nowMs = 0;
  steps = 0;
  #seq = 0;
  #queue: Timer[] = [];

  at(atMs: number, fn: () => void): Timer {
    const t: Timer = { atMs: Math.max(atMs, this.nowMs), seq: this.#seq++, fn, cancelled: false };
    // Sorted by (atMs, seq): equal times keep their order of scheduling, so a seed replays.
    let i = this.#queue.length;
    while (i > 0 && (this.#queue[i - 1]!.atMs > t.atMs)) i--;
    this.#queue.splice(i, 0, t);
    return t;
  }

  /** Runs the next event; false when none is left before `untilMs`. */
  next(untilMs: number): boolean {
    while (this.#queue.length && this.#queue[0]!.cancelled) this.#queue.shift();
    const t = this.#queue[0];
    if (!t || t.atMs > untilMs) {
      this.nowMs = Math.max(this.nowMs, untilMs);
      return false;
    }
    this.#queue.shift();
    this.nowMs = t.atMs;
    this.steps++;
    t.fn();
    return true;
  }
}

/** What one node's kernel really holds (the fakes' truth, not the runtime's belief). */
interface Kernel { filter: boolean; vip: boolean; arp: boolean; owned: number[]; takeover: number[] }

interface Heard { atMs: number; sentMs: number; state: ModState }

interface SimNode {
  name: string;
  alive: boolean;
  /** Bumped at each crash: timers and effects of a dead daemon never call back. */
  gen: number;
  state: ModState;
  kernel: Kernel;
  rt: FarmRuntime | null;
  heard: Map<string, Heard>;
  busy: string | null;
  /** Ends of the live connections to the VIP (ms). */
  connEnds: number[];
  drain: { startMs: number; untilMs: number; said: number | null } | null;
  /** Pending WAIT -> UP (checkers pass again) or stop_both: cancelled by the next change. */
  pending: Timer | null;
}

export interface FarmFaults {
  nftFail: number;
  vipFail: number;
  slow: number;
  loss: number;
  countFail: number;
}

export interface FarmSimResult {
  seed: number;
  nodes: number;
  buckets: number;
  steps: number;
  effectsFailed: number;
  heartbeatsLost: number;
  crashes: number;
  drains: number;
  drainedEarly: number;
  stableChecks: number;
  /** apply-buckets with a non-empty takeover set (after a node was declared down). */
  takeovers: number;
  digest: string;
}

export class FarmSimError extends Error {}

export class FarmSim {
  readonly rng: Rng;
  readonly sched = new Scheduler();
  readonly nodes: SimNode[];
  readonly module: ModuleConfig;
  readonly cluster: Pick<ClusterConfig, 'nodes' | 'heartbeat'>;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly drainMs: number;
  faults: FarmFaults;
  readonly stats = { effectsFailed: 0, heartbeatsLost: 0, crashes: 0, drains: 0, drainedEarly: 0, stableChecks: 0, takeovers: 0 };
  readonly #log = silentLogger();
  readonly #trace = createHash('sha256');

  constructor(rng: Rng) {
    this.rng = rng;
    const n = randInt(rng, 2, 5);
    const names = Array.from({ length: n }, (_, i) => `n${i + 1}`);
    this.intervalMs = pick(rng, [50, 100, 200]);
    this.timeoutMs = this.intervalMs * randInt(rng, 3, 8);
    this.drainMs = chance(rng, 0.25) ? 0 : this.intervalMs * randInt(rng, 1, 10);
    const weights: Record<string, number> = {};
    for (const name of names) if (chance(rng, 0.2)) weights[name] = randInt(rng, 0, 3);
    this.module = {
      file: 'sim/web.yaml', name: 'web', kind: 'farm', nodes: names,
      farm: {
        ...vipsFor(rng), interface: 'eth0', macMode: 'invisible',
        virtualMac: '02:00:00:00:00:01', buckets: randInt(rng, 1, 48), balance: 'source-ip', ports: [],
        seed: 1, quorum: chance(rng, 0.5) ? 'majority' : 'none', drainMs: this.drainMs, weights,
      },
    } as unknown as ModuleConfig;
    this.cluster = {
      nodes: names.map((name) => ({ name, weight: chance(rng, 0.2) ? 2 : 1 })) as unknown as ClusterConfig['nodes'],
      heartbeat: { intervalMs: this.intervalMs, timeoutMs: this.timeoutMs } as ClusterConfig['heartbeat'],
    };
    this.faults = { nftFail: 0, vipFail: 0, slow: 0, loss: 0, countFail: 0 };
    this.nodes = names.map((name) => ({
      name, alive: false, gen: 0, state: 'STOP', kernel: { filter: false, vip: false, arp: false, owned: [], takeover: [] },
      rt: null, heard: new Map(), busy: null, connEnds: [], drain: null, pending: null,
    }));
  }

  /** The first invariant broken; kept, since a throw inside a runtime's effect call is caught there. */
  violation: FarmSimError | null = null;

  /** Fails the run with the step it happened at. */
  fail(node: SimNode | null, what: string): never {
    const err = new FarmSimError(`step ${this.sched.steps} (t=${this.sched.nowMs} ms)${node ? ` ${node.name}` : ''}: ${what}`);
    this.violation ??= err;
    throw err;
  }

  #clock(node: SimNode): FarmClock {
    const gen = node.gen;
    return {
      now: () => this.sched.nowMs,
      setTimeout: (fn, ms) => this.sched.at(this.sched.nowMs + ms, () => { if (node.gen === gen) fn(); }),
      clearTimeout: (t: unknown) => { (t as Timer).cancelled = true; },
    };
  }

  /** The kernel's truth after each change: the ordering duties of farm/plan.ts, seen from outside. */
  checkKernel(node: SimNode): void {
    const k = node.kernel;
    if (k.vip && !k.filter) this.fail(node, 'the VIP is present without the filter (VIP before filter, or filter removed before the VIP)');
    if (k.arp && !k.vip) this.fail(node, 'the ARP responder answers for a VIP that is not present');
    if (k.owned.length && !k.filter) this.fail(node, 'buckets held without the filter');
    if (k.takeover.some((b) => !k.owned.includes(b))) this.fail(node, `takeover [${k.takeover.join(',')}] not all owned`);
  }

  #effects(node: SimNode): FarmEffects {
    const gen = node.gen;
    const k = () => node.kernel;
    /**
     * One effect: refused when another of this node runs; done after a delay (slow: up to 4
     * heartbeat timeouts); may fail before acting or after it (an nft that timed out after its commit).
     */
    const effect = <T>(what: string, failRate: number, act: () => T): Promise<T> => {
      if (node.busy !== null) this.fail(node, `${what} while ${node.busy} runs: the runtime must do one effect at a time`);
      node.busy = what;
      const delayMs = chance(this.rng, this.faults.slow) ? randInt(this.rng, 1, 4 * this.timeoutMs) : randInt(this.rng, 0, 3);
      const outcome = chance(this.rng, failRate) ? (chance(this.rng, 0.5) ? 'fail-before' : 'fail-after') : 'ok';
      return new Promise<T>((resolve, reject) => {
        this.sched.at(this.sched.nowMs + delayMs, () => {
          if (node.gen !== gen) return; // the daemon died meanwhile: nothing answers
          node.busy = null;
          this.#trace.update(`${this.sched.nowMs} ${node.name} ${what} ${outcome}\n`);
          if (outcome === 'fail-before') {
            this.stats.effectsFailed++;
            reject(new Error(`${what}: simulated failure`));
            return;
          }
          const value = act();
          this.checkKernel(node);
          if (outcome === 'fail-after') {
            this.stats.effectsFailed++;
            reject(new Error(`${what}: simulated failure after acting`));
          } else resolve(value);
        });
      });
    };
    return {
      installFilter: () => effect('filter-empty', this.faults.nftFail, () => { k().filter = true; k().owned = []; k().takeover = []; }),
      applyBuckets: (owned, takeover) => effect('apply-buckets', this.faults.nftFail, () => {
        if (!k().filter) this.fail(node, 'buckets applied with no filter (nft would fail: no such table)');
        k().owned = [...owned];
        k().takeover = [...takeover];
        if (takeover.length > 0) {
          this.stats.takeovers++;
          // Only a node declared down (a crash, or heartbeats lost) gives its buckets over with RSTs.
          if (this.stats.crashes + this.stats.heartbeatsLost === 0) this.fail(node, `takeover [${takeover.join(',')}] with no node ever down`);
        }
      }),
      reconcileFilter: () => effect('reconcile', this.faults.nftFail, () => {
        if (!k().filter) this.fail(node, 'reconcile with no filter');
        return { fixed: 'nothing', reasons: [] };
      }),
      removeFilter: () => effect('remove-filter', this.faults.nftFail, () => { k().filter = false; k().owned = []; k().takeover = []; }),
      addVip: () => effect('add-vip', this.faults.vipFail, () => { k().vip = true; }),
      removeVip: () => effect('remove-vip', this.faults.vipFail, () => { k().vip = false; }),
      announce: () => effect('announce', this.faults.vipFail, () => {
        k().arp = true;
      }),
      silence: () => effect('silence', 0, () => { k().arp = false; }),
      countConnections: () => {
        if (chance(this.rng, this.faults.countFail)) throw new Error('cannot read /proc/net/tcp (simulated)');
        return node.connEnds.filter((end) => end > this.sched.nowMs).length;
      },
    };
  }

  /** What `node` knows of every node's module state: its own, and the others' from heartbeats. */
  #views(node: SimNode): NodeModuleView[] {
    return this.nodes.map((m) => {
      if (m === node) return { name: m.name, up: true, state: node.state };
      const h = node.heard.get(m.name);
      const up = h !== undefined && this.sched.nowMs - h.atMs <= this.timeoutMs;
      return { name: m.name, up, state: up ? h.state : undefined };
    });
  }

  /** The daemon starts on `node` (module STOP): a new runtime over an empty kernel. */
  boot(node: SimNode): void {
    node.alive = true;
    node.state = 'STOP';
    node.heard = new Map();
    node.rt = new FarmRuntime({
      module: this.module, self: node.name, cluster: this.cluster, effects: this.#effects(node),
      clock: this.#clock(node), views: () => this.#views(node), log: this.#log,
    });
    node.rt.open();
    this.#heartbeat(node, node.gen, randInt(this.rng, 0, this.intervalMs - 1));
  }

  #heartbeat(node: SimNode, gen: number, inMs: number): void {
    this.sched.at(this.sched.nowMs + inMs, () => {
      if (node.gen !== gen) return;
      const sentMs = this.sched.nowMs;
      for (const peer of this.nodes) {
        if (peer === node) continue;
        if (chance(this.rng, this.faults.loss)) { this.stats.heartbeatsLost++; continue; }
        const state = node.state;
        const delayMs = randInt(this.rng, 0, this.faults.loss > 0 ? 2 * this.intervalMs : this.intervalMs / 5);
        this.sched.at(sentMs + delayMs, () => {
          const h = peer.heard.get(node.name);
          // Older than what was heard (reordered): the membership's replay window drops it.
          if (peer.alive && (!h || h.sentMs < sentMs)) peer.heard.set(node.name, { atMs: this.sched.nowMs, sentMs, state });
        });
      }
      this.#heartbeat(node, gen, this.intervalMs);
    });
  }

  /** A power cut: the daemon and its timers are gone, and so is the kernel's state. */
  crash(node: SimNode): void {
    node.gen++;
    node.alive = false;
    node.rt = null;
    node.busy = null;
    node.state = 'STOP';
    node.kernel = { filter: false, vip: false, arp: false, owned: [], takeover: [] };
    node.drain = null;
    node.pending = null;
    node.connEnds = [];
    this.stats.crashes++;
  }

  #to(node: SimNode, to: ModState): void {
    const from = node.state;
    if (from === to) return;
    node.state = to;
    this.#trace.update(`${this.sched.nowMs} ${node.name} ${from}->${to}\n`);
    node.rt!.transition(from, to);
  }

  #later(node: SimNode, inMs: number, fn: () => void): void {
    if (node.pending) node.pending.cancelled = true;
    const gen = node.gen;
    node.pending = this.sched.at(this.sched.nowMs + inMs, () => {
      node.pending = null;
      if (node.gen === gen) fn();
    });
  }

  /** STOP -> WAIT (start_both), then UP once the checkers pass. */
  start(node: SimNode): void {
    if (!node.alive || node.state !== 'STOP' || node.drain) return;
    this.#to(node, 'WAIT');
    this.#later(node, randInt(this.rng, 0, 3 * this.intervalMs), () => this.#to(node, 'UP'));
  }

  /** A checker fails: UP -> WAIT (buckets leave), back UP later. Failures never drain. */
  checkerFails(node: SimNode): void {
    if (!node.alive || node.state !== 'UP') return;
    this.#to(node, 'WAIT');
    this.#later(node, randInt(this.rng, 1, 5 * this.intervalMs), () => this.#to(node, 'UP'));
  }

  /** A planned stop: UP -> WAIT, drain (the farm runtime counts clients), stop_both, STOP. */
  stop(node: SimNode): void {
    if (!node.alive || node.state === 'STOP' || node.drain) return;
    const wasUp = node.state === 'UP';
    this.#to(node, 'WAIT');
    if (!wasUp || this.drainMs === 0) {
      this.#later(node, randInt(this.rng, 0, 20), () => this.#to(node, 'STOP'));
      return;
    }
    this.stats.drains++;
    const now = this.sched.nowMs;
    node.connEnds = Array.from({ length: randInt(this.rng, 0, 4) }, () => now + randInt(this.rng, 0, Math.round(1.5 * this.drainMs)));
    const drain = { startMs: now, untilMs: now + this.drainMs, said: null as number | null };
    node.drain = drain;
    const stopBoth = () => {
      node.drain = null;
      this.#later(node, randInt(this.rng, 0, 20), () => this.#to(node, 'STOP'));
    };
    // The module machine's own deadline (ModuleRuntime: untilMs + 1): the farm must have said drained.
    this.#later(node, this.drainMs + 1, () => {
      if (node.drain !== drain) return;
      this.fail(node, `drain not said drained within drain_ms (${this.drainMs} ms, started at ${drain.startMs})`);
    });
    node.rt!.drain(this.drainMs, {
      draining: () => node.drain === drain,
      drained: () => {
        if (node.drain !== drain) return;
        const tookMs = this.sched.nowMs - drain.startMs;
        if (tookMs > this.drainMs) this.fail(node, `drained after ${tookMs} ms > drain_ms ${this.drainMs}`);
        if (tookMs < this.drainMs) this.stats.drainedEarly++;
        drain.said = this.sched.nowMs;
        stopBoth();
      },
    });
  }

  /** After the faults stopped and the view settled: the map's invariants. */
  checkStable(): void {
    this.stats.stableChecks++;
    const alive = this.nodes.filter((n) => n.alive);
    const farm = this.module.farm!;
    const weightOf = (name: string) => farm.weights[name] ?? this.cluster.nodes.find((c) => c.name === name)!.weight ?? 1;
    const up = alive.filter((n) => n.state === 'UP' && weightOf(n.name) > 0);
    const names = [...this.module.nodes].sort();
    const quorum = farm.quorum === 'none' || alive.length * 2 > names.length
      || (alive.length * 2 === names.length && alive.some((n) => n.name === names[0]));
    for (let b = 0; b < farm.buckets; b++) {
      const owners = alive.filter((n) => n.kernel.filter && n.kernel.owned.includes(b));
      if (!quorum || up.length === 0) {
        if (owners.length) this.fail(null, `stable view with no serving member, yet bucket ${b} is owned by ${owners.map((n) => n.name)}`);
        continue;
      }
      if (owners.length !== 1) this.fail(null, `stable view: bucket ${b} has ${owners.length} owners (${owners.map((n) => n.name).join(',')}); UP: ${up.map((n) => n.name)}`);
      if (!up.includes(owners[0]!)) this.fail(owners[0]!, `stable view: owns bucket ${b} but is ${owners[0]!.state} (weight ${weightOf(owners[0]!.name)})`);
    }
    // Every node alive and in the view again: no dead node left whose clients need a RST.
    if (alive.length === this.nodes.length) {
      for (const n of alive) if (n.kernel.takeover.length) this.fail(n, `stable view with every node alive, yet takeover [${n.kernel.takeover.join(',')}]`);
    }
    // The responder answers ARP (IPv4 VIPs) and neighbour solicitations (IPv6 ones): always there.
    const arp = true;
    for (const n of alive) {
      const k = n.kernel;
      const want = n.state !== 'STOP';
      if (k.filter !== want || k.vip !== want || k.arp !== (want && arp)) {
        this.fail(n, `stable view: ${n.state} but the kernel holds filter=${k.filter} vip=${k.vip} arp=${k.arp}`);
      }
    }
  }

  digest(): string {
    return this.#trace.digest('hex');
  }
}

/** Takes events (each one a step, after which the runtimes' promises settle) until `untilMs`. */
export async function runUntil(sim: FarmSim, untilMs: number): Promise<void> {
  while (sim.sched.next(untilMs)) {
    // The fakes resolved or rejected a promise: let the runtimes' continuations run, then check.
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (sim.violation) throw sim.violation;
    for (const n of sim.nodes) if (n.alive) sim.checkKernel(n);
  }
}

export async function runSeed(seed: number): Promise<FarmSimResult> {
  const rng = mulberry32(seed);
  const sim = new FarmSim(rng);
  for (const n of sim.nodes) sim.boot(n);
  for (const n of sim.nodes) if (chance(rng, 0.8)) sim.start(n);
  const rounds = randInt(rng, 1, 3);
  for (let round = 0; round < rounds; round++) {
    // Faults on: failing and slow effects, lost and late heartbeats, crashes, failures, stops.
    sim.faults = {
      nftFail: chance(rng, 0.6) ? rng() * 0.3 : 0,
      vipFail: chance(rng, 0.5) ? rng() * 0.3 : 0,
      slow: chance(rng, 0.4) ? rng() * 0.2 : 0,
      loss: chance(rng, 0.6) ? rng() * 0.5 : 0,
      countFail: chance(rng, 0.2) ? rng() * 0.5 : 0,
    };
    const faultyUntilMs = sim.sched.nowMs + randInt(rng, 5, 30) * sim.intervalMs;
    while (sim.sched.nowMs < faultyUntilMs) {
      const node = pick(rng, sim.nodes);
      const r = rng();
      if (r < 0.3) sim.start(node);
      else if (r < 0.45) sim.checkerFails(node);
      else if (r < 0.65) sim.stop(node);
      else if (r < 0.75) { if (node.alive && sim.nodes.filter((n) => n.alive).length > 1) sim.crash(node); }
      else if (r < 0.85) { if (!node.alive) sim.boot(node); }
      await runUntil(sim, sim.sched.nowMs + randInt(rng, 1, 3 * sim.intervalMs));
    }
    // Faults off; restarted daemons start their module; then long enough for every pending
    // transition, drain, slow effect, retry and heartbeat timeout to be over.
    sim.faults = { nftFail: 0, vipFail: 0, slow: 0, loss: 0, countFail: 0 };
    for (const n of sim.nodes) {
      if (n.alive || !chance(rng, 0.7)) continue;
      sim.boot(n);
      if (chance(rng, 0.6)) sim.start(n);
    }
    await runUntil(sim, sim.sched.nowMs + 4 * sim.timeoutMs + 10 * sim.intervalMs + 2 * sim.drainMs);
    sim.checkStable();
  }
  return {
    seed, nodes: sim.nodes.length, buckets: sim.module.farm!.buckets, steps: sim.sched.steps, ...sim.stats, digest: sim.digest(),
  };
}

/** Runs a seed; on failure, adds the one line that replays it. */
export async function runSeedOrExplain(seed: number): Promise<FarmSimResult> {
  try {
    return await runSeed(seed);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    console.error(`farm simulation failed: ${msg}\nCROFT_SEED=${seed} to replay`);
    throw new Error(`${msg} (CROFT_SEED=${seed} to replay)`, { cause: err });
  }
}
