// Two pure mirror machines (n1, n2) for the golden scenarios (test/scenarios/mirror): each event
// and action of both machines is written down and compared. Heartbeats carry each node's
// announcement to the other (latest wins), a witness model, scripts, and a clock that moves only
// when told; the scenario says when the replication link comes up or breaks. The seeded
// simulation does not use this: it drives the real runtimes (test/sim/mirror.world.ts).
//
// Witness models: `redis` is a lease (one holder; taken when free or expired; released when its
// holder stops contending; a crashed holder's lease expires after ttl; the verdict holds until the
// check time + ttl - margin) and the nodes' registered generations (as RedisWitness: the holder's
// check raises its own to the machine's witnessContext; every answer carries the peer's; an
// answer while redis is down allows only a generation already registered); `ping` answers per
// node as the scenario says (both can be allowed) and stores nothing.
import assert from 'node:assert/strict';
import { announce, createMirrorMachine, isPrimary, mirrorStep, nextWakeMs, witnessContext, type MirrorMachine } from '../../mirror/machine.js';
import { afterPeerView } from '../../mirror/rules.js';
import type { DataStatus, MirrorAction, MirrorState, MirrorCheckerConfig, MirrorEvent, MirrorScript, WitnessKind } from '../../mirror/types.js';

export type Outcome = 'ok' | 'fail' | 'timeout';

export interface PairOptions {
  witness: WitnessKind;
  primPreference: string | null;
  peerWaitMs: number;
  ttlMs: number;
  marginMs: number;
  pollMs: number;
  pingValidityMs: number;
  checkers: MirrorCheckerConfig[];
  maxloop: number;
  /** Scripts end by themselves (with the preset outcome, ok by default) when delivered. */
  autoScripts: boolean;
  /** A reintegration finishes as soon as both sides took their roles. */
  autoReintegration: boolean;
}

export const defaultPairOptions: PairOptions = {
  witness: 'none',
  primPreference: null,
  peerWaitMs: 1000,
  ttlMs: 3000,
  marginMs: 600,
  pollMs: 1000,
  pingValidityMs: 3000,
  checkers: [],
  maxloop: 2,
  autoScripts: true,
  autoReintegration: true,
};

interface Node {
  name: string;
  m: MirrorMachine | null;
  /** The persistent record of the data status (survives crashes). */
  record: { status: DataStatus; generation: number; peerGeneration: number };
  contending: boolean;
  /** The epoch of the contention the driver serves (echoed in verdicts). */
  epoch: number;
  nextPollMs: number;
  pingReach: boolean;
  /** The redis witness's own idea of its lease (validUntil of its last grant). */
  leaseUntilMs: number;
  nextOutcome: Partial<Record<MirrorScript, Outcome>>;
}

export interface Msg {
  to: string;
  /** 'peer' messages are heartbeats (replaced while in flight); others are local or data plane. */
  kind: 'peer' | 'event';
  ev: MirrorEvent;
}

export class MirrorPair {
  readonly names = ['n1', 'n2'] as const;
  readonly o: PairOptions;
  nowMs = 0;
  readonly nodes: Record<string, Node> = {};
  connected = true;
  link = true;
  redis = { up: true, holder: null as string | null, expiresMs: 0, generations: {} as Record<string, number> };
  dp = { source: null as string | null, target: null as string | null };
  queue: Msg[] = [];
  /** Running scripts waiting for their outcome (when not autoScripts). */
  scripts: { node: string; script: MirrorScript }[] = [];
  readonly lines: string[] = [];
  constructor(opts: Partial<PairOptions> = {}) {
    this.o = { ...defaultPairOptions, ...opts };
    for (const name of this.names) {
      this.nodes[name] = { name, m: null, record: { status: 'unknown', generation: 0, peerGeneration: 0 }, contending: false, epoch: 0, nextPollMs: 0, pingReach: true, leaseUntilMs: 0, nextOutcome: {} };
    }
    for (const name of this.names) this.boot(name);
    for (const name of this.names) this.queue.push({ to: name, kind: 'event', ev: { type: 'replication', what: 'link_up' } });
    this.drain();
  }

  peerOf(n: string): string {
    return n === 'n1' ? 'n2' : 'n1';
  }

  node(n: string): Node {
    const x = this.nodes[n];
    assert.ok(x, `no node ${n}`);
    return x;
  }

  /** A daemon (re)starting: a fresh machine that reads its record. */
  private boot(n: string): void {
    const x = this.node(n);
    x.m = createMirrorMachine(
      {
        module: 'db',
        node: n,
        peer: this.peerOf(n),
        witness: this.o.witness,
        primPreference: this.o.primPreference,
        peerWaitMs: this.o.peerWaitMs,
        checkers: this.o.checkers,
        restart: { maxloop: this.o.maxloop, windowMs: 60_000 },
      },
      this.nowMs,
    );
    x.contending = false;
    this.step(n, { type: 'data', ...x.record });
  }

  alive(n: string): boolean {
    return this.node(n).m !== null;
  }

  state(n: string): MirrorState | 'DOWN' {
    return this.node(n).m?.state ?? 'DOWN';
  }

  // ------------------------------------------------------------------ faults and commands

  command(n: string, command: Extract<MirrorEvent, { type: 'command' }>['command']): void {
    this.step(n, { type: 'command', command, cause: 'test' });
  }

  cut(): void {
    this.connected = false;
    this.queue = this.queue.filter((q) => q.kind !== 'peer');
    this.breakLink(false);
    for (const n of this.names) if (this.alive(n)) this.queue.push({ to: n, kind: 'event', ev: { type: 'peer_lost' } });
  }

  heal(): void {
    this.connected = true;
    if (!this.alive('n1') || !this.alive('n2')) return;
    for (const n of this.names) this.sendAnnounce(n, true);
    this.linkUp();
  }

  breakLink(tell = true): void {
    this.link = false;
    this.dp = { source: null, target: null };
    if (tell) for (const n of this.names) if (this.alive(n)) this.queue.push({ to: n, kind: 'event', ev: { type: 'replication', what: 'link_broken' } });
  }

  linkUp(): void {
    if (!this.connected || !this.alive('n1') || !this.alive('n2') || this.link) return;
    this.link = true;
    for (const n of this.names) this.queue.push({ to: n, kind: 'event', ev: { type: 'replication', what: 'link_up' } });
  }

  crash(n: string): void {
    const x = this.node(n);
    if (!x.m) return;
    x.m = null;
    x.contending = false; // a lease it held stays in redis until it expires
    this.queue = this.queue.filter((q) => q.to !== n && !(q.kind === 'peer' && q.to === this.peerOf(n)));
    this.scripts = this.scripts.filter((s) => s.node !== n);
    this.link = false;
    this.dp = { source: null, target: null };
    if (!this.alive(this.peerOf(n))) return;
    this.queue.push({ to: this.peerOf(n), kind: 'event', ev: { type: 'peer_lost' } });
  }

  /** The daemon comes back (autostart: it reads its record, then starts the module). */
  restart(n: string): void {
    if (this.alive(n)) this.crash(n);
    this.boot(n);
    this.command(n, 'start');
    if (this.connected && this.alive(this.peerOf(n))) {
      this.sendAnnounce(this.peerOf(n), true);
      this.linkUp();
    }
  }

  // ------------------------------------------------------------------ delivery

  /** Delivers the queued message at index i. */
  deliver(i = 0): void {
    const [msg] = this.queue.splice(i, 1);
    assert.ok(msg);
    if (!this.alive(msg.to)) return;
    if (msg.ev.type === 'script_done') this.scripts = this.scripts.filter((s) => !(s.node === msg.to && s.script === (msg.ev as { script: string }).script));
    this.step(msg.to, msg.ev);
  }

  drain(limit = 10_000): void {
    for (let i = 0; this.queue.length > 0; i++) {
      assert.ok(i < limit, 'the pair does not settle (a loop between the machines?)');
      this.deliver(0);
    }
  }

  /** Finishes a running script with this outcome (scenarios with manual scripts, simulation). */
  finishScript(n: string, outcome: Outcome): void {
    const s = this.scripts.find((x) => x.node === n);
    assert.ok(s, `${n} runs no script`);
    this.scripts = this.scripts.filter((x) => x !== s);
    this.step(n, { type: 'script_done', script: s.script, ok: outcome === 'ok', exitCode: outcome === 'ok' ? 0 : outcome === 'fail' ? 1 : null, timedOut: outcome === 'timeout' });
  }

  /** The data plane finishes the reintegration that both sides took part in. */
  finishReintegration(): boolean {
    const { source, target } = this.dp;
    if (source === null || target === null || !this.link) return false;
    this.dp = { source: null, target: null };
    // Only the source hears it from the data plane. The target learns it as mirror/runtime.ts
    // tells it: from the source's announcement of PRIM (see step). An event queued to the target
    // here (as this model once did) could arrive after the source gave up and began another
    // reintegration, and be taken for that one (seed 4269 at 5,000 seeds).
    this.queue.push({ to: source, kind: 'event', ev: { type: 'replication', what: 'reintegration_done' } });
    return true;
  }

  /**
   * Moves the clock to nowMs + ms, delivering on the way each machine's wake-up tick (the driver's
   * timer at nextWakeMs) and each contender's witness check every pollMs (the verdict is computed
   * at the check's time and queued: its delivery may come late, as a real check's answer can).
   * `drain`: deliver everything queued after each timed event (scenarios).
   */
  advance(ms: number, drain: boolean): void {
    const endMs = this.nowMs + ms;
    for (let guard = 0; ; guard++) {
      assert.ok(guard < 100_000, 'advance does not end');
      let at = Infinity;
      let what: { n: string; kind: 'tick' | 'poll' } | null = null;
      for (const n of this.names) {
        const x = this.node(n);
        if (!x.m) continue;
        const w = nextWakeMs(x.m, this.nowMs);
        if (w !== null && w <= endMs && w < at) [at, what] = [w, { n, kind: 'tick' }];
        if (x.contending && x.nextPollMs <= endMs && x.nextPollMs < at) [at, what] = [Math.max(x.nextPollMs, this.nowMs), { n, kind: 'poll' }];
      }
      if (what === null) break;
      this.nowMs = Math.max(this.nowMs, at);
      if (what.kind === 'tick') this.step(what.n, { type: 'tick' });
      else this.poll(what.n);
      if (drain) this.drain();
    }
    this.nowMs = endMs;
    for (const n of this.names) if (this.alive(n)) this.step(n, { type: 'tick' });
    if (drain) this.drain();
  }

  /** One witness check by n's driver now; the verdict is queued to n. */
  poll(n: string): void {
    const x = this.node(n);
    x.nextPollMs = this.nowMs + this.o.pollMs;
    if (!x.m || !x.contending) return;
    let allowed = false;
    let detail = '';
    let validUntilMs = 0;
    let peerGeneration: number | undefined;
    const generation = witnessContext(x.m).generation;
    if (this.o.witness === 'ping') {
      allowed = x.pingReach;
      detail = allowed ? 'router answered' : 'no answer';
      validUntilMs = allowed ? this.nowMs + this.o.pingValidityMs : 0;
    } else {
      const r = this.redis;
      if (!r.up) {
        // As RedisWitness: an error neither extends nor cuts short the lease we hold, and allows
        // only a generation registered before.
        allowed = r.holder === n && this.nowMs < x.leaseUntilMs && (r.generations[n] ?? 0) >= generation;
        validUntilMs = allowed ? x.leaseUntilMs : 0;
        detail = allowed ? `redis unreachable; lease ${n} until ${x.leaseUntilMs}` : 'redis unreachable';
      } else {
        if (r.holder !== null && r.expiresMs <= this.nowMs) r.holder = null;
        if (r.holder === null || r.holder === n) {
          r.holder = n;
          r.expiresMs = this.nowMs + this.o.ttlMs;
          // Registered with the lease, in the same atomic step, only by the holder.
          r.generations[n] = Math.max(r.generations[n] ?? 0, generation);
          allowed = true;
          validUntilMs = this.nowMs + this.o.ttlMs - this.o.marginMs;
          x.leaseUntilMs = validUntilMs;
          detail = `lease ${n} g${generation}`;
        } else detail = `lease ${r.holder}`;
        peerGeneration = r.generations[this.peerOf(n)];
      }
    }
    const ev: MirrorEvent = { type: 'witness', allowed, validUntilMs, detail, epoch: x.epoch };
    if (peerGeneration !== undefined) ev.peerGeneration = peerGeneration;
    this.queue.push({ to: n, kind: 'event', ev });
  }

  // ------------------------------------------------------------------ one machine step

  step(n: string, ev: MirrorEvent): MirrorAction[] {
    const x = this.node(n);
    assert.ok(x.m, `${n} is down`);
    const before = x.m;
    const { state: m, actions } = mirrorStep(before, ev, this.nowMs);
    x.m = m;
    if (actions.length > 0 || ev.type === 'script_done' || ev.type === 'replication') this.lines.push(`${n} < ${renderEvent(ev)}`);
    for (const a of actions) {
      this.lines.push(`${n} > ${renderAction(a)}`);
      this.apply(n, a);
    }
    for (const a of actions) {
      // SECOND only after the reintegration finished, in the step that delivered it.
      if (a.type === 'transition' && a.to === 'SECOND') assert.ok(ev.type === 'replication' && ev.what === 'reintegration_done', `${n} SECOND without reintegration_done (${renderEvent(ev)})`);
    }
    this.checkPair();
    this.sendAnnounce(n, false);
    // What a driver feeds after an announcement (mirror/rules.ts afterPeerView, as the runtime).
    const next = ev.type === 'peer' && x.m !== null ? afterPeerView(x.m, ev.peer) : null;
    if (next) return [...actions, ...this.step(n, next)];
    return actions;
  }

  private apply(n: string, a: MirrorAction): void {
    const x = this.node(n);
    switch (a.type) {
      case 'run_script':
        if (this.o.autoScripts) {
          const outcome = x.nextOutcome[a.script] ?? 'ok';
          delete x.nextOutcome[a.script];
          this.queue.push({ to: n, kind: 'event', ev: { type: 'script_done', script: a.script, ok: outcome === 'ok', exitCode: outcome === 'ok' ? 0 : outcome === 'fail' ? 1 : null, timedOut: outcome === 'timeout' } });
        } else this.scripts.push({ node: n, script: a.script });
        return;
      case 'witness':
        x.contending = a.contend;
        x.epoch = a.epoch;
        if (a.contend) {
          x.nextPollMs = this.nowMs;
          this.poll(n); // the driver checks at once
        } else if (this.redis.holder === n) this.redis.holder = null; // close() releases
        return;
      case 'record_data':
        x.record = { status: a.status, generation: a.generation, peerGeneration: a.peerGeneration };
        return;
      case 'reintegrate':
        this.dp[a.role] = n;
        if (this.o.autoReintegration) this.finishReintegration();
        return;
      case 'reintegrate_abort':
        if (this.dp.source === n) this.dp.source = null;
        if (this.dp.target === n) this.dp.target = null;
        return;
      default:
        return;
    }
  }

  /** Queues n's announcement to its peer if it changed (or always, after a heal/restart). */
  private sendAnnounce(n: string, always: boolean): void {
    const x = this.node(n);
    const to = this.peerOf(n);
    if (!x.m || !this.connected || !this.alive(to)) return;
    const view = announce(x.m);
    const last = lastAnnounced.get(this)?.[n];
    if (!always && last === JSON.stringify(view)) return;
    const map = lastAnnounced.get(this) ?? {};
    map[n] = JSON.stringify(view);
    lastAnnounced.set(this, map);
    const inFlight = this.queue.find((q) => q.kind === 'peer' && q.to === to);
    if (inFlight) inFlight.ev = { type: 'peer', peer: view }; // a heartbeat carries the latest state
    else this.queue.push({ to, kind: 'peer', ev: { type: 'peer', peer: view } });
  }

  /** Cross-node invariants, after every step. */
  checkPair(): void {
    const prim = this.names.filter((n) => isPrimary(this.node(n).m?.state ?? 'STOP'));
    if (this.o.witness === 'redis') assert.ok(prim.length <= 1, `two primaries with a redis witness: ${prim.map((n) => `${n}=${this.state(n)}`).join(' ')}`);
    for (const n of prim) assert.equal(this.node(n).record.status, 'up-to-date', `${n} is ${this.state(n)} with data ${this.node(n).record}`);
  }

  status(): string {
    const lease = this.o.witness === 'redis' ? ` lease=${this.redis.holder !== null && this.redis.expiresMs > this.nowMs ? this.redis.holder : '-'}` : '';
    const nodes = this.names.map((n) => `${n}=${this.state(n)}/${this.node(n).record.status}/g${this.node(n).record.generation}`).join(' ');
    return `= t=${this.nowMs} ${nodes}${lease}${this.connected ? '' : ' cut'}${this.link || !this.connected ? '' : ' link-broken'}`;
  }
}

const lastAnnounced = new WeakMap<MirrorPair, Record<string, string>>();

export function renderEvent(ev: MirrorEvent): string {
  switch (ev.type) {
    case 'command':
      return `command ${ev.command}`;
    case 'peer':
      return `peer ${ev.peer.state} g${ev.peer.generation}${ev.peer.eligible ? ' eligible' : ''}${ev.peer.dataUpToDate ? '' : ' stale'}`;
    case 'peer_lost':
      return 'peer_lost';
    case 'witness':
      return `witness ${ev.allowed ? 'yes' : 'no'} (${ev.detail}${ev.allowed ? `, until ${ev.validUntilMs}` : ''}${ev.peerGeneration === undefined ? '' : `; peer registered g${ev.peerGeneration}`})`;
    case 'replication':
      return ev.what;
    case 'script_done':
      return `${ev.script} ${ev.ok ? 'ok' : ev.timedOut ? 'timeout' : 'fail'}`;
    case 'probe':
      return `probe ${ev.checker} ${ev.ok ? 'ok' : 'fail'}`;
    case 'data':
      return `data ${ev.status} g${ev.generation ?? 0}/${ev.peerGeneration ?? 0}`;
    case 'tick':
      return 'tick';
  }
}

export function renderAction(a: MirrorAction): string {
  switch (a.type) {
    case 'transition':
      return `${a.from} -> ${a.to}: ${a.cause}`;
    case 'run_checkers':
      return `checkers ${a.which}`;
    case 'checker_change':
      return `checker ${a.checker} ${a.healthy ? 'healthy' : 'failed'}`;
    case 'witness':
      return `witness ${a.contend ? 'contend' : 'release'}`;
    case 'record_data':
      return `record_data ${a.status} g${a.generation}/${a.peerGeneration}`;
    case 'dirty_log':
      return `dirty_log ${a.op}`;
    case 'run_script':
      return `run_script ${a.script} (entering ${a.entering})`;
    case 'reintegrate':
      return `reintegrate ${a.role}`;
    case 'quarantine':
      return `quarantine: ${a.reason}`;
    case 'refused':
      return `refused ${a.command}: ${a.reason}`;
    default:
      return a.type;
  }
}
