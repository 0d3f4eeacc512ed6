// Two real MirrorRuntimes (mirror/runtime.ts, the daemon's driver, rules included) in a simulated
// world: their effects (mirror/effects.ts) are fakes the simulation controls, their clocks move only
// when told, and what goes between them — heartbeats carrying announcements, the replication
// stream, the witness's answers, scripts ending, reintegrations finishing — is delivered when and in
// the order the simulation chooses (TigerBeetle's VOPR: the replica generic over its world).
//
// Nothing of the runtime is copied here: the link rule, the end of a reintegration seen from the
// target, full or dirty-log reintegration, the action queue and the announcement release all run as
// the daemon runs them. The world only models what is outside the node:
//   - heartbeats: the latest announcement wins (one in flight per direction, replaced), `peer_lost`
//     after a cut at once, after a crash one heartbeat timeout later;
//   - the replication path (`link`: the network between the data planes) and the live stream from
//     a mounted node to its peer's replica (opened by a finished reintegration, closed when either
//     end goes: the mounted end's data plane then reports the peer lost, as a TCP close would);
//   - the witness: `redis` is a lease (one holder; taken when free or expired; released on close; a
//     crashed holder's lease expires after ttl) that also stores each node's generation (as
//     RedisWitness); `ping` answers per node as the simulation says;
//   - the truth about the data (`held`/`acked`, see below), which the runtimes never see.
import assert from 'node:assert/strict';
import type { CheckerConfig, ClusterConfig, ModuleConfig } from '../../src/config/types.js';
import type { ScriptResult } from '../../src/module/scripts.js';
import type { DataRecord } from '../../mirror/data-record.js';
import type { Clock, MirrorHooks } from '../../mirror/effects.js';
import { fakeEffects } from './mirror.fakes.js';
import { isPrimary, type MirrorMachine } from '../../mirror/machine.js';
import { MirrorRuntime } from '../../mirror/runtime.js';
import type { MirrorAction, MirrorCheckerConfig, MirrorEvent, MirrorScript, MirrorState, PeerView, WitnessKind } from '../../mirror/types.js';
import { renderAction, renderEvent, type Outcome } from './mirror.pair.js';

export interface WorldOptions {
  witness: WitnessKind;
  primPreference: string | null;
  peerWaitMs: number;
  /** redis lease ttl; the runtime checks every ttl/3 and trusts a verdict until the check + ttl - margin. */
  ttlMs: number;
  marginMs: number;
  pingValidityMs: number;
  checkers: MirrorCheckerConfig[];
  maxloop: number;
  /** Membership's heartbeat timeout (the link rule's grace is twice it). */
  heartbeatTimeoutMs: number;
  vip: boolean;
}

export const defaultWorldOptions: WorldOptions = {
  witness: 'none', primPreference: null, peerWaitMs: 1000, ttlMs: 3000, marginMs: 600, pingValidityMs: 3000,
  checkers: [], maxloop: 2, heartbeatTimeoutMs: 1000, vip: true,
};

/** A node's clock: its own timers on the world's time (a crash drops them). */
class NodeClock implements Clock {
  timers = new Map<number, { atMs: number; fn: () => void; everyMs: number | null }>();
  private nextId = 1;
  constructor(private readonly world: MirrorWorld) {}
  now(): number {
    return this.world.nowMs;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { atMs: this.world.nowMs + Math.max(0, ms), fn, everyMs: null });
    return id;
  }
  clearTimeout(t: unknown): void {
    this.timers.delete(t as number);
  }
  setInterval(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { atMs: this.world.nowMs + ms, fn, everyMs: ms });
    return id;
  }
  clearInterval(t: unknown): void {
    this.timers.delete(t as number);
  }
  /** The earliest timer, or null. */
  next(): { id: number; atMs: number } | null {
    let best: { id: number; atMs: number } | null = null;
    for (const [id, t] of this.timers) if (best === null || t.atMs < best.atMs) best = { id, atMs: t.atMs };
    return best;
  }
  fire(id: number): void {
    const t = this.timers.get(id);
    if (!t) return;
    if (t.everyMs === null) this.timers.delete(id);
    else t.atMs += t.everyMs;
    t.fn();
  }
}

/** What flies between the nodes: heartbeats (replaced while in flight) and the witness's answers. */
export interface Msg {
  to: string;
  kind: 'peer' | 'witness';
  /** Delivers it (to a runtime still alive: checked by the caller). */
  deliver: () => void;
  /** For a heartbeat: the announcement it carries (null: peer lost). */
  view?: PeerView | null;
  text: string;
}

interface Node {
  name: string;
  rt: MirrorRuntime | null;
  /** The persistent record of the data status (survives crashes). */
  record: DataRecord;
  clock: NodeClock;
  hooks: MirrorHooks | null;
  /** The data plane's state (a crash loses it: nothing mounted after a reboot). */
  dp: { mounted: boolean; fenced: boolean; replicas: boolean };
  m: MirrorMachine | null;
  vipHeld: boolean;
  activeCheckers: Set<string>;
  pingReach: boolean;
  /** What the redis witness client believes of its lease (validUntil of its last grant). */
  leaseUntilMs: number;
  /** The last announcement sent to the peer (heal and restart resend it: heartbeats repeat). */
  announced: PeerView | null;
}

export class MirrorWorld {
  readonly names = ['n1', 'n2'] as const;
  readonly o: WorldOptions;
  nowMs = 0;
  readonly nodes: Record<string, Node> = {};
  connected = true;
  link = true;
  redis = { up: true, holder: null as string | null, expiresMs: 0, generations: {} as Record<string, number> };
  /** When membership declares a crashed peer lost to n (one heartbeat timeout after the crash). */
  lossAtMs: Record<string, number | null> = { n1: null, n2: null };
  /** The live stream from a mounted node to its peer's replica. */
  stream: { from: string; to: string } | null = null;
  /** The reintegration the source's data plane runs (its promise settles when the world says). */
  reint: { source: string; resolve: () => void; reject: (e: Error) => void } | null = null;
  queue: Msg[] = [];
  scripts: { node: string; script: MirrorScript; resolve: (r: ScriptResult) => void }[] = [];
  readonly lines: string[] = [];
  /**
   * The truth about the data: `held[n]` is the generation of the data on n's disk (each start of
   * writes alone, `dirty_log start`, begins a new one; a finished reintegration gives the target
   * the source's), and `acked` the generations in which some node acknowledged writes (PRIM, or
   * ALONE with its dirty log started, writable), minus those quarantined. Checked: a node becomes
   * ALONE, and starts writing alone, only with held >= every generation in acked.
   */
  readonly held: Record<string, number> = { n1: 0, n2: 0 };
  acked = new Set<number>();
  readonly discarded = new Set<number>();
  private nextGen = 1;
  readonly lostWrites: string[] = [];
  assertGenerations: boolean;
  manualPrims = 0;
  /** Each seed's final failover: simulated ms from the PRIM's crash to the application running on its SECOND. */
  readonly failoverMs: number[] = [];
  readonly seen = { transitions: new Map<string, number>(), giveUps: 0, twoPrimaries: 0, quarantines: 0, failovers: 0, reintegrations: 0, refused: 0 };
  /** The first invariant broken (thrown inside a runtime's step, re-thrown by the simulation). */
  failure: Error | null = null;

  constructor(opts: Partial<WorldOptions> = {}) {
    this.o = { ...defaultWorldOptions, ...opts };
    this.assertGenerations = this.o.witness === 'redis';
    for (const name of this.names) {
      this.nodes[name] = {
        name, rt: null, record: { status: 'unknown', generation: 0, peerGeneration: 0 }, clock: new NodeClock(this), hooks: null,
        dp: { mounted: false, fenced: false, replicas: false }, m: null, vipHeld: false, activeCheckers: new Set(), pingReach: true, leaseUntilMs: 0, announced: null,
      };
    }
  }

  peerOf(n: string): string {
    return n === 'n1' ? 'n2' : 'n1';
  }

  node(n: string): Node {
    const x = this.nodes[n];
    assert.ok(x, `no node ${n}`);
    return x;
  }

  alive(n: string): boolean {
    return this.node(n).rt !== null;
  }

  state(n: string): MirrorState | 'DOWN' {
    return this.node(n).rt?.state() ?? 'DOWN';
  }

  private moduleConfig(): ModuleConfig {
    const checkers = this.o.checkers.map((c) => ({ name: c.name, type: 'custom', onFailure: c.onFailure, rise: c.rise, fall: c.fall }) as unknown as CheckerConfig);
    return {
      file: '/sim/db/module.yaml', name: 'db', kind: 'mirror', nodes: ['n1', 'n2'],
      scripts: { startPrim: '/sim/db/start_prim', stopPrim: '/sim/db/stop_prim', timeoutMs: 30_000, killGraceMs: 2000 },
      checkers,
      restart: { maxloop: this.o.maxloop, windowMs: 60_000 },
      mirror: {
        vip: this.o.vip ? '10.0.0.100' : null, vips: this.o.vip ? ['10.0.0.100'] : [], interface: 'sim0', dirs: ['/srv/db'], ack: 'durable', ackTimeoutMs: 1000, port: 7000, lan: 0,
        zoneBytes: 65536, primPreference: this.o.primPreference, peerWaitMs: this.o.peerWaitMs,
        checkerScopes: Object.fromEntries(this.o.checkers.map((c) => [c.name, c.kind])),
        witness: this.o.witness === 'redis' ? { type: 'redis', host: '127.0.0.1', port: 6379, key: 'k', ttlMs: this.o.ttlMs }
          : this.o.witness === 'ping' ? { type: 'ping', addresses: ['10.0.0.1'], validityMs: this.o.pingValidityMs }
            : { type: 'none' },
      } as NonNullable<ModuleConfig['mirror']>,
    };
  }

  private clusterConfig(): ClusterConfig {
    return {
      name: 'sim', stateDir: '/sim/state', key: Buffer.alloc(32), lans: ['lan0'],
      nodes: [{ name: 'n1', addresses: ['10.0.0.1'] }, { name: 'n2', addresses: ['10.0.0.2'] }],
      heartbeat: { intervalMs: this.o.heartbeatTimeoutMs / 5, timeoutMs: this.o.heartbeatTimeoutMs },
    } as unknown as ClusterConfig;
  }

  // ------------------------------------------------------------------ a node's daemon

  /** A daemon starting: a fresh runtime over fresh fakes, that reads its record (then `start`). */
  async boot(n: string): Promise<void> {
    const x = this.node(n);
    x.clock = new NodeClock(this);
    x.dp = { mounted: false, fenced: false, replicas: false };
    x.vipHeld = false;
    x.activeCheckers = new Set();
    x.announced = null;
    this.lossAtMs[n] = null;
    let rt: MirrorRuntime | null = null;
    const live = () => rt !== null && x.rt === rt;
    rt = new MirrorRuntime({
      module: this.moduleConfig(), node: n, cluster: this.clusterConfig(), getModuleState: () => undefined,
      effects: (hooks) => {
        x.hooks = hooks;
        return fakeEffects(this, n, live);
      },
      onStep: (ev, before, after, actions) => {
        if (!live()) return;
        try {
          this.observe(n, ev, before, after, actions);
        } catch (e) {
          this.failure ??= e as Error;
        }
      },
    });
    x.rt = rt;
    rt.on('announce', (view: PeerView) => {
      if (!live()) return;
      x.announced = view;
      this.sendAnnounce(n);
    });
    await rt.init();
    await this.flush();
  }

  // ------------------------------------------------------------------ the truth, after every step

  private observe(n: string, ev: MirrorEvent, _before: MirrorMachine, m: MirrorMachine, actions: readonly MirrorAction[]): void {
    const x = this.node(n);
    x.m = m;
    if (actions.length > 0 || ev.type === 'script_done' || ev.type === 'replication') this.lines.push(`${n} < ${renderEvent(ev)}`);
    for (const a of actions) this.lines.push(`${n} > ${renderAction(a)}`);
    for (const a of actions) {
      if (a.type === 'quarantine') this.acked.delete(this.held[n]!);
      if (a.type === 'refused') this.seen.refused++;
      const up = a.type === 'transition' && a.to === 'ALONE' && a.from !== 'PRIM';
      const alone = a.type === 'dirty_log' && a.op === 'start';
      if (!up && !alone) continue;
      const newest = Math.max(0, ...this.acked);
      if (this.held[n]! < newest) {
        const how = a.type === 'transition' ? `became ALONE (${a.from}, ${a.cause})` : 'started writing alone';
        const what = `${n} ${how} with data of generation ${this.held[n]} while writes of generation ${newest} were acknowledged`;
        this.lostWrites.push(what);
        assert.ok(!this.assertGenerations, what);
      }
      if (alone) this.held[n] = this.nextGen++;
    }
    if (isPrimary(m.state) && m.mounted && !m.fenced && !m.awaitingWitness && !this.discarded.has(this.held[n]!)) this.acked.add(this.held[n]!);
    for (const a of actions) {
      if (a.type !== 'transition') continue;
      const k = `${a.from}->${a.to}`;
      this.seen.transitions.set(k, (this.seen.transitions.get(k) ?? 0) + 1);
      // SECOND only after the reintegration finished, in the step that delivered it.
      if (a.to === 'SECOND') assert.ok(ev.type === 'replication' && ev.what === 'reintegration_done', `${n} SECOND without reintegration_done (${renderEvent(ev)})`);
      if (a.from === 'SECOND' && a.to === 'ALONE') this.seen.failovers++;
    }
    const prim = this.names.filter((k) => this.alive(k) && isPrimary(this.node(k).m?.state ?? 'STOP'));
    if (prim.length === 2) this.seen.twoPrimaries++;
    if (this.o.witness === 'redis') assert.ok(prim.length <= 1, `two primaries with a redis witness: ${prim.map((k) => `${k}=${this.node(k).m?.state}`).join(' ')}`);
    if (isPrimary(m.state)) assert.equal(m.data, 'up-to-date', `${n} is ${m.state} with data ${m.data}`);
  }

  // ------------------------------------------------------------------ the network

  /** Queues n's announcement to its peer (the one in flight is replaced: heartbeats carry the latest). */
  private sendAnnounce(n: string): void {
    const x = this.node(n);
    const to = this.peerOf(n);
    if (!x.rt || x.announced === null || !this.connected || !this.alive(to)) return;
    const view = x.announced;
    const deliver = () => this.node(to).rt?.peerView(view);
    const text = `peer ${view.state} g${view.generation}${view.eligible ? ' eligible' : ''}${view.dataUpToDate ? '' : ' stale'}`;
    const inFlight = this.queue.find((q) => q.kind === 'peer' && q.to === to);
    if (inFlight && inFlight.view !== null) Object.assign(inFlight, { view, deliver, text });
    else this.queue.push({ to, kind: 'peer', view, deliver, text });
  }

  private sendLoss(to: string): void {
    this.queue = this.queue.filter((q) => !(q.kind === 'peer' && q.to === to));
    this.queue.push({ to, kind: 'peer', view: null, deliver: () => this.node(to).rt?.peerLost(), text: 'peer_lost' });
  }

  /** The stream closes from its replica's side: the mounted end's data plane reports the peer lost. */
  dropStream(reason: string): void {
    const st = this.stream;
    this.stream = null;
    if (st !== null && this.alive(st.from) && this.node(st.from).dp.mounted) this.node(st.from).hooks?.peerLost(reason);
  }

  /** The path broke: the stream closes, a running reintegration fails. */
  private pathBroken(): void {
    this.dropStream('stream closed');
    const r = this.reint;
    this.reint = null;
    r?.reject(new Error('the path to the peer broke'));
  }

  command(n: string, command: 'start' | 'stop' | 'prim' | 'second' | 'swap'): void {
    const rt = this.node(n).rt;
    assert.ok(rt, `${n} is down`);
    const refused = rt[command]('test');
    // `croft prim`: a person declares n's data the reference, so writes n does not hold are given
    // up knowingly (they stay in the other node's quarantine): no longer a loss to count.
    if (command === 'prim' && refused === null) {
      for (const g of [...this.acked]) if (g > this.held[n]!) this.acked.delete(g);
      const other = this.held[this.peerOf(n)]!;
      if (other !== this.held[n]) this.discarded.add(other);
    }
  }

  cut(): void {
    this.connected = false;
    this.queue = this.queue.filter((q) => q.kind !== 'peer');
    this.pathBroken();
    for (const n of this.names) if (this.alive(n)) this.sendLoss(n);
  }

  heal(): void {
    this.connected = true;
    if (!this.alive('n1') || !this.alive('n2')) return;
    for (const n of this.names) this.sendAnnounce(n);
  }

  breakLink(): void {
    this.link = false;
    this.pathBroken();
  }

  linkUp(): void {
    this.link = true;
  }

  crash(n: string): void {
    const x = this.node(n);
    if (!x.rt) return;
    x.rt.removeAllListeners();
    x.rt = null;
    x.m = null;
    x.hooks = null;
    x.clock.timers.clear();
    x.dp = { mounted: false, fenced: false, replicas: false };
    x.vipHeld = false;
    this.queue = this.queue.filter((q) => q.to !== n && !(q.kind === 'peer' && q.to === this.peerOf(n)));
    this.scripts = this.scripts.filter((s) => s.node !== n);
    if (this.reint?.source === n) this.reint = null;
    if (this.stream?.from === n) this.stream = null;
    if (this.stream?.to === n) this.dropStream('the peer crashed');
    if (this.reint !== null) this.pathBroken();
    if (!this.alive(this.peerOf(n))) return;
    // Membership declares the peer lost only after the heartbeat timeout.
    this.lossAtMs[this.peerOf(n)] = this.nowMs + this.o.heartbeatTimeoutMs;
  }

  /** The daemon comes back (autostart: it reads its record, then starts the module). */
  async restart(n: string): Promise<void> {
    if (this.alive(n)) this.crash(n);
    this.lossAtMs[this.peerOf(n)] = null; // its heartbeats are back
    await this.boot(n);
    this.command(n, 'start');
    await this.flush();
    if (this.connected && this.alive(this.peerOf(n))) {
      this.sendAnnounce(n);
      this.sendAnnounce(this.peerOf(n));
    }
  }

  // ------------------------------------------------------------------ delivery and time

  /** Lets every runtime run what it can now (its action queue, promises already settled). */
  async flush(): Promise<void> {
    await new Promise((r) => setImmediate(r));
    if (this.failure) throw this.failure;
  }

  async deliver(i = 0): Promise<void> {
    const [msg] = this.queue.splice(i, 1);
    assert.ok(msg);
    if (!this.alive(msg.to)) return;
    if (msg.kind === 'peer') this.lines.push(`${msg.to} ~ ${msg.text}`);
    msg.deliver();
    await this.flush();
  }

  async drain(limit = 10_000): Promise<void> {
    for (let i = 0; this.queue.length > 0; i++) {
      assert.ok(i < limit, 'the pair does not settle (a loop between the runtimes?)');
      await this.deliver(0);
    }
  }

  async finishScript(n: string, outcome: Outcome): Promise<void> {
    const s = this.scripts.find((x) => x.node === n);
    assert.ok(s, `${n} runs no script`);
    this.scripts = this.scripts.filter((x) => x !== s);
    s.resolve({ ok: outcome === 'ok', exitCode: outcome === 'ok' ? 0 : outcome === 'fail' ? 1 : null, signal: null, timedOut: outcome === 'timeout', durationMs: 1, outputBytes: 0, droppedBytes: 0 });
    await this.flush();
  }

  /** The source's data plane finishes its reintegration (the target's replica took it all). */
  async finishReintegration(): Promise<boolean> {
    const r = this.reint;
    if (r === null || !this.link || !this.connected) return false;
    const target = this.peerOf(r.source);
    if (!this.alive(target) || !this.node(target).dp.replicas) return false;
    this.reint = null;
    this.seen.reintegrations++;
    this.held[target] = this.held[r.source]!;
    // The stream goes live once the target acknowledged everything.
    this.stream = { from: r.source, to: target };
    r.resolve();
    await this.flush();
    return true;
  }

  /** A checker probe result for n (only a checker its runtime runs reports). */
  async probe(n: string, checker: string, ok: boolean): Promise<void> {
    const x = this.node(n);
    if (!x.hooks || !x.activeCheckers.has(checker)) return;
    x.hooks.probe(checker, { ok, detail: ok ? 'fine' : 'broken' });
    await this.flush();
  }

  /**
   * Moves the clock to nowMs + ms, firing on the way every node's timers (its tick, its link poll,
   * its wake-ups, its witness loop) and membership's loss of a crashed peer, in time order.
   * `drain`: deliver everything in flight after each (scenarios, settling).
   */
  async advance(ms: number, drain: boolean): Promise<void> {
    const endMs = this.nowMs + ms;
    for (let guard = 0; ; guard++) {
      assert.ok(guard < 200_000, 'advance does not end');
      let at = Infinity;
      let fire: (() => void) | null = null;
      for (const n of this.names) {
        const x = this.node(n);
        if (!x.rt) continue;
        const t = x.clock.next();
        if (t !== null && t.atMs <= endMs && t.atMs < at) {
          at = t.atMs;
          const { clock } = x;
          fire = () => clock.fire(t.id);
        }
        const lost = this.lossAtMs[n];
        if (lost != null && lost <= endMs && lost < at) {
          at = lost;
          fire = () => {
            this.lossAtMs[n] = null;
            this.sendLoss(n);
          };
        }
      }
      if (fire === null) break;
      this.nowMs = Math.max(this.nowMs, at);
      fire();
      await this.flush();
      if (drain) await this.drain();
    }
    this.nowMs = endMs;
    await this.flush();
    if (drain) await this.drain();
  }

  status(): string {
    const lease = this.o.witness === 'redis' ? ` lease=${this.redis.holder !== null && this.redis.expiresMs > this.nowMs ? this.redis.holder : '-'}` : '';
    const nodes = this.names.map((n) => `${n}=${this.state(n)}/${this.node(n).record.status}/g${this.node(n).record.generation}`).join(' ');
    return `= t=${this.nowMs} ${nodes}${lease}${this.connected ? '' : ' cut'}${this.link || !this.connected ? '' : ' link-broken'}`;
  }
}
