// Driver of one mirror module on this node: feeds MirrorEvents (commands, the peer's announcements
// from the heartbeats, membership, the data plane, scripts, checkers, the witness, time) into the
// pure machine (machine.ts) and carries out its actions strictly one after the other, each finished
// before the next starts (the order rules on MirrorAction in types.ts). Long-running things (a
// script, a reintegration, witness checks) are launched by their action and report back as events.
//
// What this node announces (announce(m)) is released in the same queue, after the actions of the
// step that produced it: the peer never learns of a state whose actions are not done yet (it never
// sees WAIT from a node that has not fenced yet).
//
// The rules it applies to what its data plane and the peer say (the link, the end of a reintegration
// seen from the target, full or dirty-log reintegration) are pure functions in rules.ts. Its effects
// and its clock are parameters (effects.ts): the daemon gives the real ones, the seeded simulation
// (test/sim/mirror.world.ts) faulty fakes, so the simulation runs this very code. Beside it:
// status.ts (what it shows), dirty-watch.ts, witness-loop.ts, script-run.ts, reintegration-run.ts.
// Longer than 500 lines for one concept: the queue and, in #enqueue, the one table of what each
// action does, kept whole so the order duties read in one place.
import { EventEmitter } from 'node:events';
import path from 'node:path';
import type { ClusterConfig, ModuleConfig } from '../src/config/types.js';
import { CroftError } from '../src/errors.js';
import type { ModuleStateGetter } from '../src/module/checkers/index.js';
import { checkerStatuses, type ModuleLogger } from '../src/module/types.js';
import { MaintenanceGate, suppressedMessage } from '../src/module/maintenance.js';
import type { VerifyResult } from './driver-dataplane.js';
import { realMirrorEffects, type Clock, type MirrorDataPlanePort, type MirrorEffects, type MirrorHooks } from './effects.js';
import { announce, checkerHealth, createMirrorMachine, mirrorStep, nextWakeMs, witnessContext, type MirrorMachine } from './machine.js';
import { afterPeerView, initialLinkMemory, linkHoldDown, linkRule, type LinkMemory } from './rules.js';
import { DirtyWatch } from './dirty-watch.js';
import { ReintegrationRun } from './reintegration-run.js';
import { VerifySchedule, type VerifyCounters, type VerifyOutcome } from './verify-schedule.js';
import { runMirrorScript } from './script-run.js';
import { WitnessLoop } from './witness-loop.js';
import { mirrorDetail, type MirrorDetail, type MirrorModuleStatus, type MirrorTransitionEvent } from './status.js';
import type {
  MirrorAction,
  MirrorCommand,
  MirrorEvent,
  MirrorMachineConfig,
  MirrorScript,
  MirrorState,
  PeerView,
} from './types.js';

export type { LastReintegration, MirrorDetail, MirrorModuleStatus, MirrorTransitionEvent } from './status.js';

export interface MirrorRuntimeOptions {
  module: ModuleConfig;
  node: string;
  cluster: ClusterConfig;
  getModuleState: ModuleStateGetter;
  logger?: ModuleLogger;
  /** Where croft keeps this module's state (default <cluster.stateDir>/mirror/<module>). */
  stateDir?: string;
  /** Its effects on the world (default: the real ones, realMirrorEffects); the simulator gives fakes. */
  effects?: (hooks: MirrorHooks) => MirrorEffects;
  /** Sees every step of the machine, synchronously (the simulator's checks, traces). */
  onStep?: (ev: MirrorEvent, before: MirrorMachine, after: MirrorMachine, actions: readonly MirrorAction[]) => void;
}

const silentLogger: ModuleLogger = { info() {}, warn() {}, error() {} };
const TICK_MS = 1000;
const LINK_POLL_MS = 200;

type Job = { what: string; run: () => Promise<void> | void };

export class MirrorRuntime extends EventEmitter {
  readonly #cfg: ModuleConfig;
  readonly #mirror: NonNullable<ModuleConfig['mirror']>;
  readonly #node: string;
  readonly #peer: string;
  readonly #cluster: ClusterConfig;
  readonly #log: ModuleLogger;
  readonly #fx: MirrorEffects;
  readonly #dp: MirrorDataPlanePort;
  readonly #clock: Clock;
  readonly #onStep: MirrorRuntimeOptions['onStep'];
  readonly #dirty: DirtyWatch;
  readonly #witness: WitnessLoop;
  readonly #reint: ReintegrationRun;
  readonly #verify: VerifySchedule;
  readonly #stateDir: string;
  #m: MirrorMachine;
  #closed = false;
  #ready = false;
  /** Commands received before init() read the record: fed once it has. */
  #early: MirrorEvent[] = [];
  readonly #queue: Job[] = [];
  #draining = false;
  #idle: Promise<void> = Promise.resolve();
  #idleResolve: (() => void) | null = null;
  #announced: PeerView;
  #announcedAtMs: number;
  #linkFed = false;
  /** What the link rule (rules.ts linkRule) remembers: its hold-down and the replicas' grace. */
  #linkMem: LinkMemory = initialLinkMemory;
  #vipHeld = false;
  #mountFailed = false;
  #script: Promise<void> | null = null;
  #tickTimer: unknown = null;
  #linkTimer: unknown = null;
  #wakeTimer: unknown = null;
  readonly #last = new Map<string, { detail: string; atMs: number }>();
  readonly #counters = { scriptRuns: {} as Record<string, number>, probes: {} as Record<string, number> };
  /** Maintenance: checker results are not fed to the machine (src/module/maintenance.ts). */
  readonly #gate: MaintenanceGate;

  constructor(opts: MirrorRuntimeOptions) {
    super();
    const mirror = opts.module.mirror;
    if (!mirror) throw new CroftError('CROFT_ERR_CONFIG', `module ${opts.module.name} is not a mirror module`);
    this.#cfg = opts.module;
    this.#mirror = mirror;
    this.#node = opts.node;
    this.#cluster = opts.cluster;
    this.#log = opts.logger ?? silentLogger;
    const peer = opts.module.nodes.find((n) => n !== opts.node);
    if (!peer || opts.module.nodes.length !== 2) throw new CroftError('CROFT_ERR_CONFIG', `mirror ${opts.module.name} needs exactly two nodes`);
    this.#peer = peer;
    this.#stateDir = opts.stateDir ?? path.join(opts.cluster.stateDir, 'mirror', opts.module.name);
    this.#gate = new MaintenanceGate(opts.module.name, opts.module.checkers);
    const hooks: MirrorHooks = {
      peerLost: (reason) => this.#dataPlaneLost(reason),
      probe: (checker, result) => {
        const key = `${checker}:${result.ok ? 'ok' : 'fail'}`;
        this.#counters.probes[key] = (this.#counters.probes[key] ?? 0) + 1;
        this.#last.set(checker, { detail: result.detail, atMs: this.#now() });
        if (this.#gate.on) {
          const v = this.#gate.probe(checker, result.ok, result.detail);
          if (v === null) return;
          this.#log.warn({ event: 'suppressed', module: v.module, checker, healthy: v.healthy, detail: v.detail, wouldDo: v.wouldDo }, suppressedMessage(v));
          this.emit('suppressed', v);
          return;
        }
        this.#feed({ type: 'probe', checker, ok: result.ok, detail: result.detail });
      },
    };
    this.#fx = opts.effects
      ? opts.effects(hooks)
      : realMirrorEffects({ module: opts.module, node: opts.node, cluster: opts.cluster, getModuleState: opts.getModuleState, logger: this.#log, stateDir: this.#stateDir }, hooks);
    this.#dp = this.#fx.dataPlane;
    this.#clock = this.#fx.clock;
    this.#onStep = opts.onStep;
    this.#reint = new ReintegrationRun(opts.module.name, opts.node, peer, this.#dp, this.#clock, this.#log);
    this.#dirty = new DirtyWatch(opts.module.name, this.#dp, this.#clock, this.#log);
    this.#verify = new VerifySchedule(mirror.verifyEveryMs, this.#clock,
      () => (!this.#closed && this.#m.state === 'PRIM' && this.#m.link && this.#dp.mounted ? this.#verifyNow() : null),
      (o) => this.emit('verify_diverged', { module: opts.module.name, differences: o.differences, scheduled: o.scheduled, peer }));
    const w = mirror.witness;
    this.#witness = new WitnessLoop(opts.module.name, this.#fx.witness, this.#clock, w.type === 'none' ? 0 : Math.max(100, Math.floor((w.type === 'ping' ? w.validityMs : w.ttlMs) / 3)), this.#log);
    this.#announcedAtMs = this.#now();
    const mcfg: MirrorMachineConfig = {
      module: opts.module.name,
      node: opts.node,
      peer,
      witness: mirror.witness.type,
      primPreference: mirror.primPreference,
      peerWaitMs: mirror.peerWaitMs,
      checkers: opts.module.checkers.map((c) => ({
        name: c.name,
        kind: mirror.checkerScopes[c.name] ?? (c.type === 'module' ? 'dependency' : 'app'),
        onFailure: c.onFailure,
        rise: c.rise,
        fall: c.fall,
      })),
      restart: opts.module.restart,
    };
    this.#m = createMirrorMachine(mcfg, this.#now());
    this.#announced = announce(this.#m);
  }

  #now(): number {
    return this.#clock.now();
  }

  get peer(): string {
    return this.#peer;
  }

  /**
   * Maintenance: the checkers' verdicts are suppressed (a PRIM neither restarts, stops nor hands
   * over its application for a failed checker); commands and the peer's loss act as always.
   */
  setMaintenance(on: boolean): void {
    this.#gate.set(on);
  }

  maintenance(): boolean {
    return this.#gate.on;
  }

  /**
   * Once, before start: detaches what a killed daemon left mounted, creates the directories,
   * reads the data record and gives it to the machine; the timers start.
   */
  async init(): Promise<void> {
    await this.#dp.prepare();
    // A daemon that was killed (or crashed) while primary left its VIP on the interface: this node
    // is not primary now, so the address goes, or both nodes would answer ARP for it.
    if (this.#mirror.vip !== null) {
      try {
        if (await this.#fx.vip.held()) {
          await this.#fx.vip.remove();
          this.#log.warn({ event: 'mirror_vip', module: this.#cfg.name, vip: this.#mirror.vip, held: false },
            `VIP ${this.#mirror.vip} was left by an earlier run: removed`);
        }
      } catch (e) {
        this.#log.error({ event: 'mirror_vip_error', module: this.#cfg.name, err: (e as Error).message }, `cannot check the VIP left by an earlier run: ${(e as Error).message}`);
      }
    }
    const { record, problem } = this.#fx.readRecord();
    if (problem) this.#log.error({ event: 'mirror_record_unreadable', module: this.#cfg.name, problem }, problem);
    this.#log.info({ event: 'mirror_record', module: this.#cfg.name, ...record }, `mirror ${this.#cfg.name}: data ${record.status}, generation ${record.generation}`);
    this.#ready = true;
    this.#feed({ type: 'data', status: record.status, generation: record.generation, peerGeneration: record.peerGeneration });
    for (const ev of this.#early.splice(0)) this.#feed(ev);
    this.#tickTimer = this.#clock.setInterval(() => this.#feed({ type: 'tick' }), TICK_MS);
    this.#linkTimer = this.#clock.setInterval(() => this.#updateLink(), LINK_POLL_MS);
    this.#verify.start();
  }

  start(cause = 'command'): void {
    this.#command('start', cause);
  }

  stop(cause = 'command'): void {
    this.#command('stop', cause);
  }

  /** A mirror has no restart in place by command: stop here (the peer takes over), then start again. */
  restart(cause = 'command'): void {
    this.#command('stop', cause);
    this.#command('start', cause);
  }

  prim(cause = 'command'): string | null {
    return this.#command('prim', cause);
  }

  second(cause = 'command'): string | null {
    return this.#command('second', cause);
  }

  swap(cause = 'command'): string | null {
    return this.#command('swap', cause);
  }

  /** Feeds a command; returns the machine's reason when it refused it, else null. */
  #command(command: MirrorCommand, cause: string): string | null {
    const ev: MirrorEvent = { type: 'command', command, cause };
    if (!this.#ready) {
      this.#early.push(ev);
      return null;
    }
    const actions = this.#feed(ev);
    const refused = actions.find((a): a is Extract<MirrorAction, { type: 'refused' }> => a.type === 'refused');
    return refused ? refused.reason : null;
  }

  /** The peer's announcement (from its heartbeats), or null when membership lost it. */
  peerView(view: PeerView | null): void {
    if (!this.#ready) return;
    if (view === null) {
      if (this.#m.peer !== null) this.#feed({ type: 'peer_lost' });
      return;
    }
    const before = this.#m.peer;
    if (before !== null && JSON.stringify(before) === JSON.stringify(view)) return;
    this.#feed({ type: 'peer', peer: view });
    const next = afterPeerView(this.#m, view);
    if (next) this.#feed(next);
    this.#updateLink();
  }

  peerLost(): void {
    if (!this.#ready) return;
    if (this.#m.peer !== null || this.#m.link) this.#feed({ type: 'peer_lost' });
    this.#linkFed = false;
  }

  state(): MirrorState {
    return this.#m.state;
  }

  /** What the peer should see (released by the action queue; see the head of this file). */
  announced(): { view: PeerView; sinceMs: number } {
    return { view: this.#announced, sinceMs: this.#announcedAtMs };
  }

  status(): MirrorModuleStatus {
    const health = checkerHealth(this.#m);
    return {
      module: this.#cfg.name,
      state: this.#m.state,
      sinceMs: this.#m.sinceMs,
      scriptRunning: this.#m.running,
      restarts: this.#m.restartTimesMs.length,
      checkers: checkerStatuses(this.#cfg.checkers, health, this.#last),
    };
  }

  counters(): { scriptRuns: Record<string, number>; probes: Record<string, number> } {
    return { scriptRuns: { ...this.#counters.scriptRuns }, probes: { ...this.#counters.probes } };
  }

  mirrorStatus(): MirrorDetail {
    let dirtyBytes: number | null = null;
    let dirtyTrusted: boolean | null = null;
    // Only ALONE has changes its peer lacks: a PRIM's log is its activity log (zones of changes in
    // flight, cleared every few seconds once acknowledged), not something to copy.
    if (this.#dp.mounted && !this.#dp.fenced && this.#m.state === 'ALONE') {
      try {
        dirtyBytes = this.#dirty.bytes();
        dirtyTrusted = this.#dp.dirtyTrusted();
      } catch {
        // the log is being closed by an unmount in progress
      }
    }
    return mirrorDetail({
      module: this.#cfg, node: this.#node, peer: this.#peer, m: this.#m, dp: this.#dp, vipHeld: this.#vipHeld,
      dirtyBytes, dirtyTrusted, dirtyLog: this.#dirty.health(), lastReintegration: this.#reint.last,
      reintegrationTotals: { ...this.#reint.totals }, verify: this.verifyStatus(),
    });
  }

  /** Compares both sides by checksum (on the primary, while running). */
  verify(): Promise<VerifyResult> {
    if (this.#m.state !== 'PRIM') {
      throw new CroftError('CROFT_ERR_USAGE', `verify runs on the PRIM with an in-sync SECOND; ${this.#cfg.name} is ${this.#m.state} on ${this.#node}`);
    }
    return this.#verify.record(this.#verifyNow(), false);
  }

  /** The last verify (scheduled or on demand) and the counts of their results. */
  verifyStatus(): { last: VerifyOutcome | null; counters: VerifyCounters; everyMs: number | null } {
    return { last: this.#verify.last, counters: { ...this.#verify.counters }, everyMs: this.#mirror.verifyEveryMs };
  }

  #verifyNow(): Promise<VerifyResult> {
    return this.#dp.verify().then((r) => {
      // The dirty logs only know what this side changed: a divergence made behind croft's back
      // (the peer's files written directly) is repaired only by comparing whole trees, so the next
      // reintegration of the peer (after `croft stop` / `croft start` of it) is a full one.
      if (!r.identical) {
        this.#reint.fullNext = `verify found ${r.differences.length} difference(s) on ${this.#peer}`;
        this.#log.warn({ event: 'mirror_verify_diverged', module: this.#cfg.name, differences: r.differences.length },
          `${this.#reint.fullNext}: the next reintegration of ${this.#peer} is a full one`);
      }
      return r;
    });
  }

  /** Resolves when the action queue is empty (tests, daemon stop). */
  idle(): Promise<void> {
    return this.#draining ? this.#idle : Promise.resolve();
  }

  /**
   * Stops the checkers, timers and witness, and accepts no more events. Runs no script and leaves
   * the mounts as they are unless `release` (the daemon's stop, after the module reached STOP).
   */
  async close(): Promise<void> {
    this.#closed = true;
    this.#verify.stop();
    for (const t of [this.#tickTimer, this.#linkTimer]) if (t) this.#clock.clearInterval(t);
    if (this.#wakeTimer) this.#clock.clearTimeout(this.#wakeTimer);
    await this.#fx.checkers.close();
    await this.#script;
    await this.idle();
    await this.#witness.close();
    if (this.#dp.mounted) await this.#dp.unmount();
    await this.#dp.close();
  }

  // ------------------------------------------------------------------------------------------

  #feed(ev: MirrorEvent): MirrorAction[] {
    if (this.#closed) return [];
    const before = this.#m;
    const { state, actions } = mirrorStep(before, ev, this.#now());
    this.#m = state;
    this.#onStep?.(ev, before, state, actions);
    for (const a of actions) this.#enqueue(a);
    const view = announce(state);
    if (JSON.stringify(view) !== JSON.stringify(this.#announced)) {
      this.#push('announce', () => {
        this.#announced = view;
        this.#announcedAtMs = this.#now();
        this.emit('announce', view);
      });
    }
    this.#scheduleWake();
    return actions;
  }

  #scheduleWake(): void {
    if (this.#wakeTimer) this.#clock.clearTimeout(this.#wakeTimer);
    this.#wakeTimer = null;
    const at = nextWakeMs(this.#m, this.#now());
    if (at === null || this.#closed) return;
    this.#wakeTimer = this.#clock.setTimeout(() => {
      this.#wakeTimer = null;
      this.#feed({ type: 'tick' });
    }, Math.max(0, at - this.#now()) + 1);
  }

  #push(what: string, run: () => Promise<void> | void): void {
    this.#queue.push({ what, run });
    if (!this.#draining) void this.#drain();
  }

  async #drain(): Promise<void> {
    this.#draining = true;
    this.#idle = new Promise((r) => {
      this.#idleResolve = r;
    });
    while (this.#queue.length > 0) {
      const job = this.#queue.shift()!;
      try {
        await job.run();
      } catch (e) {
        this.#log.error({ event: 'mirror_action_error', module: this.#cfg.name, action: job.what, err: (e as Error).message, code: (e as { code?: string }).code },
          `mirror ${this.#cfg.name}: ${job.what} failed: ${(e as Error).message}`);
      }
    }
    this.#draining = false;
    this.#idleResolve?.();
    // Outside the queue: replicas follow the state once the actions are done.
    if (!this.#closed) this.#reconcileReplicas();
  }

  /**
   * The replicas listen only where a primary may write into them: as SECOND, and as the target of
   * a reintegration (started by that action, after `record_data stale`). A source that connects
   * earlier is refused (unreachable) and tries again: so no byte of a reintegration lands on a
   * node that has not durably recorded that its data is partial.
   */
  #reconcileReplicas(): void {
    if (this.#dp.mounted) return;
    const m = this.#m;
    if (m.state === 'SECOND' || (m.state === 'WAIT' && m.reintegrating === 'target')) this.#dp.ensureReplicas();
    else this.#dp.stopReplicas();
  }

  #enqueue(a: MirrorAction): void {
    const module = this.#cfg.name;
    switch (a.type) {
      case 'transition':
        return this.#push('transition', () => {
          // A PRIM's changes wait for its SECOND's ack (failMode block): once it is lost, they are
          // recorded alone only after the machine says so (`dirty_log start`: with a redis
          // witness, once the witness holds the new generation).
          if (a.to !== 'ALONE') this.#dp.setWritingAlone(false);
          this.#dirty.reset(); // a value of another state (or of an earlier ALONE)
          this.#log.info({ event: 'module_state', module, from: a.from, to: a.to, cause: a.cause }, 'module state change');
          this.emit('transition', { module, from: a.from, to: a.to, cause: a.cause } satisfies MirrorTransitionEvent);
        });
      case 'checker_change':
        this.#log.info({ module, checker: a.checker, healthy: a.healthy, detail: a.detail }, 'checker health changed');
        this.emit('checker_change', { module, checker: a.checker, healthy: a.healthy, detail: a.detail });
        return;
      case 'run_checkers': {
        const names = this.#m.cfg.checkers.filter((c) => a.which === 'all' || (a.which === 'dependencies' && c.kind === 'dependency')).map((c) => c.name);
        this.#fx.checkers.setActive(a.which === 'none' ? [] : names);
        return;
      }
      case 'refused':
        this.#log.warn({ event: 'command_refused', module, command: a.command, reason: a.reason }, `${a.command} ${module} refused: ${a.reason}`);
        return;
      case 'record_data':
        return this.#push('record_data', () => {
          this.#fx.writeRecord({ status: a.status, generation: a.generation, peerGeneration: a.peerGeneration });
          this.#log.info({ event: 'mirror_record', module, status: a.status, generation: a.generation, peerGeneration: a.peerGeneration }, `data ${a.status}, generation ${a.generation}`);
        });
      case 'dirty_log':
        // The mounts always keep their durable dirty log (a PRIM's changes the peer cannot ack are
        // recorded there): start needs nothing more; clear makes it empty and trusted.
        if (a.op === 'clear') return this.#push('dirty_log clear', () => this.#dp.clearDirty());
        if (a.op === 'start') return this.#push('dirty_log start', () => this.#dp.setWritingAlone(true));
        return;
      case 'mount':
        return this.#push('mount', async () => {
          try {
            await this.#dp.mount();
            this.#mountFailed = false;
            this.#log.info({ event: 'mirror_mounted', module, dirs: this.#mirror.dirs }, `mirror ${module} mounted (alone until a reintegration)`);
          } catch (e) {
            // Nothing is mounted: the application must not start on the bare directories.
            this.#mountFailed = true;
            this.#log.error({ event: 'mirror_mount_failed', module, err: (e as Error).message, code: (e as { code?: string }).code }, `mirror ${module}: mount failed: ${(e as Error).message}`);
            queueMicrotask(() => this.#feed({ type: 'command', command: 'stop', cause: `mount failed: ${(e as Error).message}` }));
          }
        });
      case 'fence':
        return this.#push('fence', () => {
          this.#dp.fence();
          this.#log.warn({ event: 'mirror_fenced', module }, `mirror ${module} fenced: no write is acknowledged here any more`);
        });
      case 'unmount':
        return this.#push('unmount', async () => {
          await this.#dp.unmount();
          this.#log.info({ event: 'mirror_unmounted', module }, `mirror ${module} unmounted`);
        });
      case 'vip_add':
        return this.#push('vip_add', async () => {
          if (this.#mirror.vip === null || this.#mountFailed) return;
          const { repeats } = await this.#fx.vip.add(() => this.#vipHeld);
          repeats.catch((e: unknown) => this.#log.warn({ event: 'mirror_garp', module, err: (e as Error).message },
            `repeating the gratuitous ARP for ${this.#mirror.vip ?? ''}: ${(e as Error).message}`));
          this.#vipHeld = true;
          this.#log.info({ event: 'mirror_vip', module, vip: this.#mirror.vip, vips: this.#mirror.vips, held: true }, `VIP ${this.#mirror.vips.join(' ')} added`);
        });
      case 'vip_remove':
        return this.#push('vip_remove', async () => {
          if (this.#mirror.vip === null) return;
          await this.#fx.vip.remove();
          this.#vipHeld = false;
          this.#log.info({ event: 'mirror_vip', module, vip: this.#mirror.vip, vips: this.#mirror.vips, held: false }, `VIP ${this.#mirror.vips.join(' ')} removed`);
        });
      case 'run_script':
        return this.#push(`run_script ${a.script}`, () => {
          this.#script = this.#runScript(a.script, a.entering);
        });
      case 'reintegrate':
        if (a.role === 'target') {
          // The replica listens already (WAIT); the source connects to it. The end is learnt from
          // the source's PRIM announcement (peerView).
          return this.#push('reintegrate target', () => {
            this.#dp.ensureReplicas();
            this.#log.info({ event: 'mirror_reintegration', module, role: 'target' }, `reintegration into ${this.#node} from ${this.#peer}`);
          });
        }
        return this.#push('reintegrate source', () => this.#startReintegration());
      case 'reintegrate_abort':
        return this.#push('reintegrate_abort', () => {
          this.#reint.abort();
          if (this.#dp.mounted) this.#dp.abortReintegration('aborted by the mirror machine');
        });
      case 'quarantine':
        return this.#push('quarantine', async () => {
          const wasRunning = this.#dp.replicasRunning();
          this.#dp.stopReplicas(); // nothing may change the files while they are copied aside
          const q = await this.#dp.quarantine();
          this.#log.warn({ event: 'mirror_quarantine', module, reason: a.reason, folder: q.folder, copied: q.copied, failed: q.failed.slice(0, 20) },
            `quarantine: ${q.copied} paths copied to ${q.folder}: ${a.reason}${q.failed.length ? `; ${q.failed.length} could not be copied (${q.failed.slice(0, 3).join('; ')})` : ''}`);
          // The end of a split brain: this side wrote without its peer and gave up (notifications).
          this.emit('split_brain', { module, reason: a.reason, folder: q.folder });
          if (wasRunning) this.#dp.ensureReplicas();
        });
      case 'witness':
        return this.#push(`witness ${a.contend ? 'contend' : 'release'}`, async () => {
          if (a.contend && this.#mirror.witness.type !== 'none') {
            this.#witness.contend(a.epoch, () => witnessContext(this.#m), (v, epoch) => this.#feed({
              type: 'witness', allowed: v.allowed, validUntilMs: v.validUntilMs, detail: v.detail, epoch,
              ...(v.peerGeneration !== undefined ? { peerGeneration: v.peerGeneration } : {}),
            }));
          } else if (!a.contend) await this.#witness.stop();
        });
    }
  }

  async #startReintegration(): Promise<void> {
    if (this.#dp.linkConnected()) {
      // An earlier reintegration went live after the machine had given it up (aborted while it
      // finished): the stream is connected only once the target acked everything, so it is in sync.
      this.#log.info({ event: 'mirror_reintegration_done', module: this.#cfg.name, already: true }, 'reintegration: the peer is already in sync (connected)');
      queueMicrotask(() => this.#feed({ type: 'replication', what: 'reintegration_done' }));
      return;
    }
    void this.#reint.run(this.#m.generation, this.#m.peer?.generation ?? null).then((outcome) => {
      if (this.#closed || outcome === 'superseded') return;
      if (outcome === 'done') return void this.#feed({ type: 'replication', what: 'reintegration_done' });
      this.#linkMem = linkHoldDown(this.#linkMem, this.#now());
      this.#linkFed = false;
      this.#feed({ type: 'replication', what: 'link_broken' });
    });
  }

  /** The data plane lost the peer (ack timeout, stream closed): the link is broken. */
  #dataPlaneLost(reason: string): void {
    if (this.#closed || this.#dp.fenced) return;
    this.#log.warn({ event: 'mirror_link_lost', module: this.#cfg.name, reason }, `replication link lost: ${reason}`);
    this.#linkMem = linkHoldDown(this.#linkMem, this.#now());
    this.#linkFed = false;
    if (this.#m.link) this.#feed({ type: 'replication', what: 'link_broken' });
  }

  #linkNow(): boolean {
    const mounted = this.#dp.mounted;
    const { up, mem } = linkRule(this.#m, {
      mounted,
      fenced: mounted && this.#dp.fenced,
      streamConnected: mounted && this.#dp.linkConnected(),
      replicasConnected: !mounted && this.#dp.replicasConnected(),
      graceMs: 2 * this.#cluster.heartbeat.timeoutMs,
    }, this.#linkMem, this.#now());
    this.#linkMem = mem;
    return up;
  }

  #updateLink(): void {
    if (this.#closed || !this.#ready) return;
    this.#dirty.health(); // logs a change of the dirty logs' health
    const want = this.#linkNow();
    if (want === this.#m.link && this.#linkFed) return;
    this.#linkFed = true;
    if (want === this.#m.link) return;
    this.#feed({ type: 'replication', what: want ? 'link_up' : 'link_broken' });
  }

  async #runScript(script: MirrorScript, entering: MirrorState): Promise<void> {
    const result = await runMirrorScript({ module: this.#cfg, cluster: this.#cluster, node: this.#node, peer: this.#peer, log: this.#log, runScript: this.#fx.runScript },
      script, entering, this.#mountFailed);
    const outcome = result.ok ? 'ok' : result.timedOut ? 'timeout' : 'fail';
    const key = `${script}:${outcome}`;
    this.#counters.scriptRuns[key] = (this.#counters.scriptRuns[key] ?? 0) + 1;
    this.#feed({ type: 'script_done', script, ok: result.ok, exitCode: result.exitCode, timedOut: result.timedOut });
  }
}
