// The farm runtime of one module on this node: it owns the farm's effect order, its timers and its
// drain loop, and holds no I/O of its own. Its world comes in as parameters (TigerBeetle's replica
// generic over its world): the kernel effects (farm/effects.ts in the daemon, faulty fakes in
// test/sim/farm.sim.test.ts), the clock and its timers, and the membership view. What to do next
// is decided by farm/plan.ts (pure); this file carries the actions out one at a time, in order:
//   start (the module leaves STOP): filter with no bucket, then the VIP, then ARP responder and
//     gratuitous ARP; members change: the owned set replaced in one nft transaction;
//   stop (the module reaches STOP): ARP responder, then the VIP, then the filter.
// A failed effect leaves its part unknown and is tried again after one heartbeat interval.
import type { Clock } from '../src/clock.js';
import type { ClusterConfig, ModuleConfig } from '../src/config/types.js';
import type { Logger } from '../src/log/logger.js';
import { loadOf } from './assign.js';
import type { NodeModuleView } from './members.js';
import {
  afterFailure, afterSuccess, EMPTY_PLANE, nextAction, shareOf, takeoverBuckets,
  type FarmAction, type FarmDue, type FarmPlane, type FarmShare, type FarmWant,
} from './plan.js';

/** The kernel side of a farm on this node. Every call is idempotent; a rejection is an operating error. */
export interface FarmEffects {
  /** filter-empty: the filter's tables, with no owned bucket (replaces what the kernel has). */
  installFilter(): Promise<void>;
  /**
   * apply-buckets: the owned set becomes exactly `owned`, and the takeover set
   * (those of them taken over from a dead node) `takeover`, in one transaction.
   */
  applyBuckets(owned: readonly number[], takeover: readonly number[]): Promise<void>;
  /** reconcile: the kernel's tables made equal to croft's; what was fixed ('nothing' when equal). */
  reconcileFilter(): Promise<{ fixed: string; reasons: string[] }>;
  removeFilter(): Promise<void>;
  addVip(): Promise<void>;
  removeVip(): Promise<void>;
  /** announce: the ARP responder answers for the VIP, then gratuitous ARP is sent. */
  announce(): Promise<void>;
  /** silence: the ARP responder stops. */
  silence(): Promise<void>;
  /** Live connections to the VIP on this node; throws when they cannot be counted. */
  countConnections(): number;
}

/** Time and timers (src/clock.ts): monotonicClock in the daemon, a simulated one in the simulator. */
export type FarmClock = Pick<Clock, 'now' | 'setTimeout' | 'clearTimeout'>;

export interface FarmStatus {
  active: boolean;
  vip: string | null;
  /** Every VIP of the module (IPv4 and IPv6). */
  vips: string[];
  ifname: string | null;
  members: string[];
  ownedBuckets: number;
  /** Of ownedBuckets, those taken over from a dead node (plan.ts FarmShare.takeover). */
  takeoverBuckets: number;
  buckets: number;
  load: Record<string, number>;
  /** Takeovers this node made since it started: a shown share took buckets over from a node that died. */
  takeovers: number;
  /** Buckets taken over from dead nodes over those takeovers. */
  takeoverBucketsTotal: number;
}

export interface FarmRuntimeOptions {
  module: ModuleConfig;
  self: string;
  cluster: Pick<ClusterConfig, 'nodes' | 'heartbeat'>;
  effects: FarmEffects;
  clock: FarmClock;
  /** The module's state on every node, as this node sees it now (self: its own state). */
  views: () => NodeModuleView[];
  log: Logger;
  /** The interface the VIP is on, for status (known once the filter is built); null before. */
  ifname?: () => string | null;
}

/** How often a draining node counts its connections to the VIP. */
export const DRAIN_POLL_MS = 100;
/**
 * Every 10 s the kernel's tables are reconciled with croft's (edited behind its back) and the
 * buckets renewed: they lapse after OWNED_LAPSE_MS without a renewal (farm/driver.ts).
 */
export const RECONCILE_EVERY_MS = 10_000;
/** Three reconciles missed: the daemon is stuck (stopped, wedged), its node stops taking new clients. */
export const OWNED_LAPSE_MS = 3 * RECONCILE_EVERY_MS;

export class FarmRuntime {
  readonly module: ModuleConfig;
  readonly #o: FarmRuntimeOptions;
  #plane: FarmPlane = EMPTY_PLANE;
  #want: FarmWant;
  #due: FarmDue = { reconcile: false };
  /** The share the wanted buckets come from, and the one last applied (for status and logs). */
  #share: FarmShare | null = null;
  #shown: FarmShare | null = null;
  #cause = 'start';
  #running = false;
  #closed = false;
  #idle: Array<() => void> = [];
  #viewTimer: unknown = null;
  #tickTimer: unknown = null;
  #retryTimer: unknown = null;
  #drainTimer: unknown = null;
  /** True between a start's first action and its last, to log farm_start once the start is done. */
  #starting = false;
  #takeovers = 0;
  #takeoverBucketsTotal = 0;

  constructor(opts: FarmRuntimeOptions) {
    this.module = opts.module;
    this.#o = opts;
    const vip = opts.module.farm?.vip;
    if (!vip) throw new Error(`farm runtime of ${opts.module.name}: no VIP`);
    // The responder answers ARP for IPv4 VIPs and neighbour solicitations for IPv6 ones: always.
    this.#want = { active: false, owned: [], takeover: [], arp: true };
  }

  /**
   * Begins following the view (the daemon starts): peers' states arrive with their heartbeats.
   * Polled every `pollMs` (default half a heartbeat interval: within the failover budget; shareOf
   * makes an unchanged view cheap); a caller that calls refresh() on every change polls slowly.
   */
  open(pollMs?: number): void {
    const everyMs = pollMs ?? Math.max(10, Math.min(100, this.#o.cluster.heartbeat.intervalMs / 2));
    const poll = () => {
      this.#viewTimer = this.#o.clock.setTimeout(poll, everyMs);
      this.refresh('view');
    };
    this.#viewTimer = this.#o.clock.setTimeout(poll, everyMs);
  }

  /** The module changed state here: the filter and VIP exist whenever it is not STOP. */
  transition(from: string, to: string): void {
    if (this.#closed) return;
    if (from === 'STOP' && to !== 'STOP') this.#activate(true);
    if (to === 'STOP') this.#activate(false);
    this.refresh(`${this.module.name} ${from} -> ${to} here`);
  }

  /** Recompute the members from the view; the owned set follows them. */
  refresh(cause: string): void {
    if (this.#closed || !this.#want.active) return;
    const share = shareOf(this.module, this.#o.cluster.nodes, this.#o.self, this.#o.views(), this.#share);
    if (share === this.#share) return;
    this.#share = share;
    this.#cause = cause;
    this.#want = { ...this.#want, owned: share.owned, takeover: takeoverBuckets(share) };
    this.#showBuckets(); // the members changed, this node's set maybe not: then no nft call
    this.#pump();
  }

  /** Status and the farm_buckets line follow the share once the kernel holds its buckets. */
  #showBuckets(): void {
    const share = this.#share;
    const owned = this.#plane.owned;
    if (share === null || share === this.#shown || this.#plane.filter !== 'present' || owned === null) return;
    if (owned.length !== share.owned.length || !owned.every((b, i) => b === share.owned[i])) return;
    if (this.#plane.takeover?.length !== share.takeover.length) return;
    // A takeover: buckets of a dead node that the previous shown share did not hold already.
    const before = new Set(this.#shown?.takeover.map(([b]) => b) ?? []);
    const fresh = share.takeover.filter(([b]) => !before.has(b)).length;
    if (fresh > 0) {
      this.#takeovers++;
      this.#takeoverBucketsTotal += fresh;
    }
    this.#shown = share;
    const cause = this.#cause;
    const name = this.module.name;
    const from = [...new Set(share.takeover.map(([, n]) => n))];
    this.#o.log.info({ event: 'farm_buckets', module: name, members: share.members, owned: share.owned.length,
      takeover: share.takeover.length, cause },
    `farm ${name}: members [${share.members.join(' ')}], ${share.owned.length}/${share.map.length} buckets here (${cause})${
      from.length ? `; ${share.takeover.length} taken over from dead ${from.join(', ')}: untracked TCP packets there get a RST` : ''}`);
  }

  #activate(active: boolean): void {
    if (this.#want.active === active) return;
    this.#want = { ...this.#want, active, owned: [], takeover: [] };
    this.#share = null;
    this.#starting = active;
    if (this.#tickTimer) this.#o.clock.clearTimeout(this.#tickTimer);
    this.#tickTimer = null;
    if (active) this.#armTick();
    this.#pump();
  }

  /**
   * Every 10 s a reconcile, which renews the buckets; nothing else is periodic. They used to lapse
   * after the heartbeat timeout, renewed at the heartbeat's pace (an `nft` per interval); now the
   * owner netdev table (farm/driver.ts) takes a dead daemon's node out of the farm by itself, at
   * once, and the 30 s lapse is left for a daemon that is alive but stuck. A due flag, not a
   * queue: a slow reconcile does not pile the next ones up.
   */
  #armTick(): void {
    this.#tickTimer = this.#o.clock.setTimeout(() => {
      this.#armTick();
      this.#due = { ...this.#due, reconcile: true };
      this.#pump();
    }, RECONCILE_EVERY_MS);
  }

  /** Carries out the plan's actions one at a time until plane and want agree (or one fails). */
  #pump(): void {
    if (this.#running) return;
    this.#running = true;
    void this.#run();
  }

  async #run(): Promise<void> {
    for (;;) {
      const action = nextAction(this.#plane, this.#want, this.#due);
      if (action === null) {
        this.#due = { reconcile: false }; // no filter to reconcile: not due later either
        break;
      }
      if (action.type === 'reconcile') this.#due = { reconcile: false };
      try {
        const fixed = await this.#execute(action);
        this.#plane = afterSuccess(this.#plane, action);
        this.#logDone(action, fixed);
      } catch (err) {
        this.#plane = afterFailure(this.#plane, action);
        this.#o.log.error({ event: 'farm_error', module: this.module.name, what: action.type, err: (err as Error).message,
          code: (err as { code?: string }).code }, `farm ${this.module.name}: ${action.type} failed: ${(err as Error).message}`);
        this.#retryLater();
        break;
      }
    }
    this.#running = false;
    for (const resolve of this.#idle.splice(0)) resolve();
  }

  #retryLater(): void {
    if (this.#closed || this.#retryTimer) return;
    this.#retryTimer = this.#o.clock.setTimeout(() => {
      this.#retryTimer = null;
      this.#pump();
    }, this.#o.cluster.heartbeat.intervalMs);
  }

  async #execute(action: FarmAction): Promise<{ fixed: string; reasons: string[] } | null> {
    const e = this.#o.effects;
    switch (action.type) {
      case 'filter-empty': await e.installFilter(); return null;
      case 'add-vip': await e.addVip(); return null;
      case 'announce': await e.announce(); return null;
      case 'apply-buckets': await e.applyBuckets(action.owned, action.takeover); return null;
      case 'reconcile': return e.reconcileFilter();
      case 'silence': await e.silence(); return null;
      case 'remove-vip': await e.removeVip(); return null;
      case 'remove-filter': await e.removeFilter(); return null;
    }
  }

  #logDone(action: FarmAction, fixed: { fixed: string; reasons: string[] } | null): void {
    const log = this.#o.log;
    const name = this.module.name;
    const startDone = action.type === 'announce' || (action.type === 'add-vip' && !this.#want.arp);
    if (this.#starting && startDone) {
      this.#starting = false;
      const farm = this.module.farm!;
      const vips = farm.vips.length > 0 ? farm.vips : [farm.vip!];
      log.info({ event: 'farm_start', module: name, vip: farm.vip, vips, ifname: this.#o.ifname?.() ?? null, mac: farm.virtualMac },
        `farm ${name}: VIP ${vips.join(' ')} on ${this.#o.ifname?.() ?? '?'} (virtual MAC ${farm.virtualMac})`);
    }
    this.#showBuckets();
    if (action.type === 'reconcile' && fixed && fixed.fixed !== 'nothing') {
      log.warn({ event: 'farm_reconcile', module: name, fixed: fixed.fixed, reasons: fixed.reasons },
        `farm ${name}: the kernel's rules differed from croft's (${fixed.reasons.join('; ')}): fixed`);
    }
    if (action.type === 'remove-filter') {
      this.#shown = null;
      log.info({ event: 'farm_stop', module: name }, `farm ${name}: VIP and filter removed`);
    }
  }

  /**
   * A node draining before a planned stop: its buckets went to the other nodes, so every live
   * connection to the VIP here is one the application still serves. None left, or drainMs over:
   * `drained()` (stop_both may run). The loop ends by itself when `draining()` turns false (a
   * start cancelled the drain). When connections cannot be counted, the drain lasts drainMs.
   */
  drain(drainMs: number, hooks: { draining: () => boolean; drained: () => void }): void {
    if (this.#drainTimer) this.#o.clock.clearTimeout(this.#drainTimer);
    this.#drainTimer = null;
    const clock = this.#o.clock;
    const untilMs = clock.now() + drainMs;
    let counting = true;
    const poll = () => {
      this.#drainTimer = null;
      if (this.#closed || !hooks.draining()) return;
      const now = clock.now();
      if (counting) {
        try {
          if (this.#o.effects.countConnections() === 0) return hooks.drained();
        } catch (err) {
          counting = false;
          this.#o.log.warn({ event: 'farm_drain_error', module: this.module.name, err: (err as Error).message },
            `cannot count connections to ${this.module.farm!.vip}: draining for the whole drain_ms`);
        }
      }
      if (now >= untilMs) return hooks.drained();
      this.#drainTimer = clock.setTimeout(poll, counting ? Math.min(DRAIN_POLL_MS, untilMs - now) : untilMs - now);
    };
    poll();
  }

  /** Resolves when no action is running. */
  idle(): Promise<void> {
    return this.#running ? new Promise((resolve) => this.#idle.push(resolve)) : Promise.resolve();
  }

  /** The daemon stops: timers end, the farm is taken down (one try per action), then resolves. */
  async close(): Promise<void> {
    for (const t of [this.#viewTimer, this.#tickTimer, this.#retryTimer, this.#drainTimer]) if (t) this.#o.clock.clearTimeout(t);
    this.#viewTimer = this.#tickTimer = this.#retryTimer = this.#drainTimer = null;
    this.#activate(false);
    this.#closed = true;
    await this.idle();
  }

  /** What the kernel holds, as far as this runtime knows (for tests and the simulator). */
  plane(): FarmPlane {
    return this.#plane;
  }

  status(): FarmStatus {
    const map = this.#shown?.map ?? [];
    return {
      active: this.#plane.filter === 'present',
      vip: this.module.farm?.vip ?? null,
      vips: [...(this.module.farm?.vips ?? [])],
      ifname: this.#plane.filter === 'present' ? this.#o.ifname?.() ?? null : null,
      members: this.#shown?.members ?? [],
      ownedBuckets: map.filter((n) => n === this.#o.self).length,
      takeoverBuckets: this.#shown?.takeover.length ?? 0,
      buckets: this.module.farm?.buckets ?? 0,
      load: loadOf(map),
      takeovers: this.#takeovers,
      takeoverBucketsTotal: this.#takeoverBucketsTotal,
    };
  }
}
