// The membership driver: the heartbeat pump (native threads, one UDP socket per LAN), a timer, a
// monotonic clock. It decides nothing: every datagram goes through the codec then the pure core, and
// it performs the core's actions.
//
// Timing is the pump's (src/native/heartbeat.ts): each heartbeat the core sends is encoded for the
// next STALL_TOLERANCE_MS worth of intervals (each copy with its own seq) and handed to a native
// thread that sends one per interval whatever this thread does; received datagrams carry their
// arrival time, and the inbox is read before every timeout check. So a pause of the JS thread (a
// garbage collection, a starved event loop) neither delays this node's heartbeats nor makes a peer
// look silent: a false failover needs the network or the machine itself to fail.
import net from 'node:net';
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { ClusterConfig, NodeConfig } from '../config/types.js';
import type { ConfigSignature } from '../config/signature.js';
import type { ProtocolRange } from '../protocol.js';
import { CroftError } from '../errors.js';
import { type HeartbeatDatagram, type HeartbeatHeard, HeartbeatPump, type HeartbeatPumpStats } from '../native/heartbeat.js';
import { decodeHeartbeat, encodeHeartbeat } from './codec.js';
import {
  createMembership, currentView, floors, INCARNATION_AHEAD_MS, isConverged, membershipStep, moduleStates as coreModuleStates, nextTickMs,
  peers as corePeers, type MembershipState, type PeerFloor,
} from './core.js';
import { nextIncarnation, readState, SAVE_EVERY_MS, stateFile, writeState, writeStateAsync } from './persist.js';
import type { DropReason, Heartbeat, MembershipAction, MembershipEvent, ModuleStatus, PeerInfo, View } from './types.js';

/** The subset of pino's Logger this driver uses. */
export interface MembershipLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface UdpMembershipOptions {
  cluster: ClusterConfig;
  self: string;
  /**
   * Default: max(Date.now(), the last one saved in stateDir + 1), so a restarted daemon announces a
   * larger one even if the wall clock went back; Date.now() without a stateDir.
   */
  incarnation?: number;
  /**
   * Where the incarnation and the peers' replay floors are kept across restarts (persist.ts):
   * read at construction, written at start, at most once a second while running, and at stop.
   * Without it nothing is saved (tests).
   */
  stateDir?: string;
  logger?: MembershipLogger;
  /** The protocol versions this node speaks (default: this build's; src/protocol.ts localProtocol). */
  protocol?: ProtocolRange;
  /** Tests only: LEGACY_PROBE_MS. */
  legacyProbeMs?: number;
  /**
   * The pump's quiet path (default on): a heartbeat that repeats the last one accepted from its
   * source, seq aside, is authenticated and noted by the pump's thread, and fed to the core when
   * the timeouts are checked, instead of waking this thread at each arrival.
   */
  quiet?: boolean;
  /** This build's package version and the configuration's signature, announced from protocol 3 on. */
  pkg?: string;
  cfg?: ConfigSignature;
}

export const DROP_REASONS: readonly DropReason[] = [
  'malformed', 'bad_mac', 'wrong_cluster', 'unknown_node', 'wrong_lan', 'replay', 'self', 'future_incarnation', 'wrong_source', 'version',
];

/** An address as the socket reports it: IPv6 in canonical form, without a zone. */
export function canonicalAddress(a: string): string {
  const bare = a.replace(/%.*$/, '');
  if (!net.isIPv6(bare)) return bare;
  try {
    return new URL(`http://[${bare}]/`).hostname.slice(1, -1);
  } catch {
    return bare.toLowerCase();
  }
}

export interface LanCounters {
  sent: number;
  received: number;
  accepted: number;
  /** Of the accepted, those the pump's quiet path noted (repeats of the last accepted heartbeat). */
  quiet: number;
  dropped: Record<DropReason, number>;
}

export interface MembershipCounters extends LanCounters {
  /** The same counters per LAN, in the order of ClusterConfig.lans. */
  perLan: LanCounters[];
  /** Datagrams the pump dropped because this thread did not read them in time (a flood). */
  inboxDropped: number;
  /** Intervals at which the pump had no heartbeat left to send (this thread stalled for longer than STALL_TOLERANCE_MS). */
  underruns: number;
}

/**
 * The pump holds this much of heartbeats ahead (the last one encoded, with fresh seqs), refreshed
 * every REFRESH_MS or at once when it changes: so the JS thread may stall for at least
 * STALL_TOLERANCE_MS - REFRESH_MS (2 s, longer than any garbage-collection pause) while its
 * heartbeats go on; past that the node falls silent and its peers declare it down, as they should
 * for a daemon that hangs. Refreshing less often than every send keeps the encoding cost low.
 */
export const STALL_TOLERANCE_MS = 3_000;
const REFRESH_MS = 1_000;
/**
 * A peer taken for protocol 2 still gets one full heartbeat this often: a node of protocol 3 that
 * took us for protocol 2 (it heard our downgraded heartbeat first, and its first full ones were lost)
 * learns otherwise; a node of protocol 2 drops it as malformed, one frame in many.
 */
export const LEGACY_PROBE_MS = 10_000;

function zeroCounters(): LanCounters {
  const dropped = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
  return { sent: 0, received: 0, accepted: 0, quiet: 0, dropped };
}

const silent: MembershipLogger = { info() {}, warn() {}, debug() {} };

export class UdpMembership extends EventEmitter {
  private readonly cluster: ClusterConfig;
  private readonly self: string;
  private readonly selfNode: NodeConfig;
  private readonly log: MembershipLogger;
  readonly incarnation: number;
  private state: MembershipState;
  private readonly stateFile: string | null;
  private savedJson = '';
  /** The saved file's peer incarnations: a change of one is saved at the next refresh. */
  private savedIncarnations = '';
  /** When the file was last written, or last found current (performance.now()). */
  private savedAtMs = -Infinity;
  /** The periodic save in flight (async: a slow fsync must not delay heartbeats). */
  private saving: Promise<void> | null = null;
  /** Per LAN: node name -> its configured address there (canonical), for the source check. */
  private readonly sources: Map<string, string>[];
  private pump: HeartbeatPump | null = null;
  /** Per LAN: the peers the pump sends to, in its order (a frame set may hold one frame per peer). */
  private readonly lanPeers: string[][] = [];
  /** Heartbeats encoded per core send: the pump's reserve (STALL_TOLERANCE_MS of intervals). */
  private readonly reserve: number;
  /** What the last scheduled heartbeat said (seq aside): a change is sent at once. */
  private lastContent = '';
  /** When the pump's reserve was last refreshed (performance.now()). */
  private scheduledAtMs = -Infinity;
  /** The step being performed refreshed the pump's reserve (sendAll): the refresh's duties follow it. */
  private refreshed = false;
  /**
   * The first set last encoded here, its content (seq aside) and seq: a refresh that says the same
   * hands it to the pump again, which re-signs it with the new seqs, instead of encoding it anew
   * (JSON, HMAC and the shape check were the refresh's largest cost on this thread).
   */
  private template: { content: string; set: Buffer[][]; seq: number } | null = null;
  /** The inbox is being read: the timer is armed once at the end, not at every note fed. */
  private armLater: 'no' | 'yes' | 'due' = 'no';
  /** When a full heartbeat last went to the peers taken for protocol 2 (LEGACY_PROBE_MS). */
  private probedAtMs = -Infinity;
  private readonly legacyProbeMs: number;
  private readonly quiet: boolean;
  /** Per "<lan> <source>": the last heartbeat accepted from there, of which the pump's quiet notes are repeats. */
  private readonly lastAccepted = new Map<string, Heartbeat>();
  /**
   * Per "<lan> <node>": the pairs whose deadline the pump watches (their repeats are quiet: it
   * wakes this thread when one's silence reaches the timeout). Only the others need this thread's
   * own timer. Empty when the pump cannot watch.
   */
  private readonly watched = new Set<string>();
  private watching = false;
  /** How often this thread was woken by its own timer and by the pump (the idle cost's main part). */
  private readonly wakeCounts = { timer: 0, pump: 0 };
  /** The core's actions are being performed (listeners run): no inbox read from there. */
  private performing = false;
  /** The core sends (refreshes the pump) this often when nothing changes. */
  private readonly sendEveryMs: number;
  /** The pump's counters at its close (counters() after stop). */
  private lastStats: HeartbeatPumpStats | null = null;
  /** Core time of the last event fed: arrival times never step it back. */
  private lastNowMs = 0;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private readonly lanCounters: LanCounters[];
  private readonly protocol?: ProtocolRange;
  private readonly pkg?: string;
  private readonly cfg?: ConfigSignature;
  /** Per peer: the last version refusal logged (one warning per peer and reason, not one per heartbeat). */
  private readonly versionWarned = new Map<string, string>();

  constructor(opts: UdpMembershipOptions) {
    super();
    this.cluster = opts.cluster;
    this.self = opts.self;
    const node = opts.cluster.nodes.find((n) => n.name === opts.self);
    if (!node) {
      throw new CroftError('CROFT_ERR_UNKNOWN_NODE', `node "${opts.self}" is not in ${opts.cluster.file}`);
    }
    this.selfNode = node;
    this.log = opts.logger ?? silent;
    this.stateFile = opts.stateDir === undefined ? null : stateFile(opts.stateDir);
    const saved = this.stateFile === null ? null : readState(this.stateFile, opts.self);
    this.incarnation = opts.incarnation ?? nextIncarnation(saved, Date.now());
    if (saved !== null && opts.incarnation === undefined && this.incarnation <= saved.incarnation) {
      this.log.warn({ event: 'incarnation_file_ignored', file: this.stateFile, saved: saved.incarnation, incarnation: this.incarnation },
        `the incarnation saved in ${this.stateFile ?? ''} is more than a day ahead of the clock: ignored (damaged file, or a clock far behind)`);
    }
    this.lanCounters = opts.cluster.lans.map(() => zeroCounters());
    this.reserve = Math.max(2, Math.ceil(STALL_TOLERANCE_MS / opts.cluster.heartbeat.intervalMs));
    this.protocol = opts.protocol;
    this.legacyProbeMs = opts.legacyProbeMs ?? LEGACY_PROBE_MS;
    this.quiet = opts.quiet ?? true;
    this.sendEveryMs = Math.max(opts.cluster.heartbeat.intervalMs, REFRESH_MS);
    this.pkg = opts.pkg;
    this.cfg = opts.cfg;
    this.sources = opts.cluster.lans.map((_, lan) => new Map(opts.cluster.nodes
      .filter((n) => n.addresses[lan] !== undefined)
      .map((n) => [n.name, canonicalAddress(n.addresses[lan] as string)])));
    // A saved floor above the bound (a damaged file, or a clock that was far ahead) is not restored.
    const restore: Record<string, PeerFloor> = {};
    for (const [name, f] of Object.entries(saved?.peers ?? {})) {
      if (Number.isSafeInteger(f?.incarnation) && f.incarnation <= Date.now() + INCARNATION_AHEAD_MS) restore[name] = f;
    }
    this.state = this.freshState(restore);
  }

  private stateJson(): string {
    return JSON.stringify({ node: this.self, incarnation: this.incarnation, peers: floors(this.state) });
  }

  /** The peers' incarnations in the floors (cheap: compared at every refresh). */
  private incarnations(): string {
    return this.state.peers.map((p) => `${p.incarnation ?? ''} ${p.prev?.incarnation ?? ''}`).join(',');
  }

  private saveFailed(err: unknown): void {
    this.log.warn({ event: 'state_save_failed', file: this.stateFile, err: String(err) },
      `cannot save the membership state to ${this.stateFile ?? ''}: a restart may accept replayed heartbeats or reuse an incarnation`);
  }

  /** Saves now, blocking (at start: the incarnation is on disk before any heartbeat carries it). */
  private saveNow(): void {
    if (this.stateFile === null) return;
    const json = this.stateJson();
    const incarnations = this.incarnations();
    try {
      writeState(this.stateFile, JSON.parse(json));
      this.savedJson = json;
      this.savedIncarnations = incarnations;
      this.savedAtMs = performance.now();
    } catch (err) {
      this.saveFailed(err);
    }
  }

  /**
   * Saves the floors when they changed, without blocking; one save at a time. Unless `now`, a change
   * of seqs alone waits for SAVE_EVERY_MS since the last save (a new incarnation does not wait).
   */
  private saveLater(now = false): Promise<void> {
    if (this.stateFile === null) return Promise.resolve();
    if (this.saving) return this.saving;
    const incarnations = this.incarnations();
    const at = performance.now();
    if (!now && incarnations === this.savedIncarnations && at - this.savedAtMs < SAVE_EVERY_MS) return Promise.resolve();
    const json = this.stateJson();
    if (json === this.savedJson) {
      this.savedAtMs = at; // the file is current: next look in SAVE_EVERY_MS
      return Promise.resolve();
    }
    const file = this.stateFile;
    this.saving = writeStateAsync(file, JSON.parse(json))
      .then(() => {
        this.savedJson = json;
        this.savedIncarnations = incarnations;
        this.savedAtMs = at;
      }, (err: unknown) => this.saveFailed(err))
      .finally(() => { this.saving = null; });
    return this.saving;
  }

  private freshState(restore: Record<string, PeerFloor>): MembershipState {
    return createMembership({
      self: this.self,
      nodes: this.cluster.nodes.map((n) => n.name),
      lans: this.cluster.lans.length,
      cluster: this.cluster.name,
      intervalMs: this.cluster.heartbeat.intervalMs,
      timeoutMs: this.cluster.heartbeat.timeoutMs,
      // The pump sends every interval from the reserve; the core only refreshes it.
      sendEveryMs: this.sendEveryMs,
      incarnation: this.incarnation,
      nowMs: performance.now(),
      restore,
      protocol: this.protocol,
      pkg: this.pkg,
      cfg: this.cfg,
    });
  }

  /** Binds one socket per LAN (this node's address on that LAN, the heartbeat port) and starts the timer. */
  async start(): Promise<void> {
    if (this.running) return;
    // The incarnation is on disk before any heartbeat carries it: the next run will take a larger one.
    this.saveNow();
    const port = this.cluster.heartbeat.port;
    const lans = this.cluster.lans.map((name, lan) => {
      const address = this.selfNode.addresses[lan];
      if (address === undefined) {
        throw new CroftError('CROFT_ERR_CONFIG', `node ${this.self} has no address on LAN ${name} in ${this.cluster.file}`);
      }
      const peers = this.cluster.nodes.filter((n) => n.name !== this.self && n.addresses[lan] !== undefined);
      this.lanPeers[lan] = peers.map((n) => n.name);
      return { address, port, peers: peers.map((n) => n.addresses[lan] as string) };
    });
    try {
      this.pump = new HeartbeatPump(lans, this.cluster.heartbeat.intervalMs, () => this.onPumpWake(), this.quiet ? this.cluster.key : undefined);
    } catch (err) {
      if (err instanceof CroftError && err.code === 'CROFT_ERR_BIND') {
        throw new CroftError('CROFT_ERR_BIND',
          `${err.message} (LANs ${this.cluster.lans.join(', ')}); check the node's addresses in ${this.cluster.file}`, { cause: err });
      }
      throw err;
    }
    this.running = true;
    // A new pump starts empty: the first heartbeat goes out at once and fills its reserve.
    this.lastContent = '';
    this.template = null;
    this.scheduledAtMs = -Infinity;
    this.probedAtMs = -Infinity;
    this.lastAccepted.clear();
    this.watched.clear();
    this.watching = this.pump.watch(this.cluster.heartbeat.timeoutMs);
    this.feed({ type: 'tick' });
    this.log.info({ event: 'membership_start', incarnation: this.incarnation, lans: this.cluster.lans }, 'membership started');
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const wasRunning = this.running;
    this.running = false;
    this.closePump();
    if (wasRunning) {
      await this.saving; // a periodic save in flight, then the last state
      await this.saveLater(true);
    }
  }

  /**
   * The pump's call: datagrams wait in its inbox, or a watched peer's silence reached the timeout.
   * What arrived is fed first, then the core checks the timeouts.
   */
  private onPumpWake(): void {
    if (!this.running) return;
    this.wakeCounts.pump += 1;
    this.readInbox();
    this.feed({ type: 'tick' });
    this.afterRefresh();
  }

  /**
   * The pump's notes and queued datagrams fed now, so that arrival times and counters are current
   * (the pump wakes this thread only for news and for a watched peer's silence). Not from inside
   * the core's actions (a listener asking for peers while an event is performed).
   */
  private readFresh(): void {
    if (this.running && !this.performing) this.readInbox();
  }

  private closePump(): void {
    if (this.pump) {
      this.readInbox();
      this.lastStats = this.pump.stats();
      this.pump.close();
    }
    this.pump = null;
  }

  /**
   * Feeds the quiet heartbeats the pump noted (each the last accepted one again, with its seq, at
   * its arrival time) and every datagram it queued, in order of arrival. Tells 'heard' when a
   * queued one was accepted: a peer said something new (its modules, view, configuration), which
   * the daemon acts on.
   */
  private readInbox(): void {
    if (!this.pump) return;
    const now = performance.now();
    // In order of arrival, notes and datagrams together: the core's clock only moves forward (a
    // heartbeat fed after a later one would count as heard at the later time), and a note holds
    // its source's last arrival, which may be much older than another source's.
    const items: ({ atMs: number; note: HeartbeatHeard } | { atMs: number; datagram: HeartbeatDatagram })[] = [
      ...this.pump.heard().map((note) => ({ atMs: now - note.ageMs, note })),
      ...this.pump.drain().map((datagram) => ({ atMs: now - datagram.ageMs, datagram })),
    ];
    items.sort((a, b) => a.atMs - b.atMs);
    let news = false;
    this.armLater = 'yes';
    try {
      news = this.feedItems(items);
    } finally {
      const due = (this.armLater as 'no' | 'yes' | 'due') === 'due'; // set by armTimer meanwhile
      this.armLater = 'no';
      if (due) this.armTimer();
    }
    if (news) this.emit('heard');
  }

  /** Feeds the inbox's items in order; true when a datagram said something new. */
  private feedItems(items: ({ atMs: number; note: HeartbeatHeard } | { atMs: number; datagram: HeartbeatDatagram })[]): boolean {
    let news = false;
    for (const item of items) {
      if ('datagram' in item) {
        const d = item.datagram;
        news = this.onDatagram(d.lan, d.bytes, d.source, item.atMs) || news;
        continue;
      }
      const h = item.note;
      const c = this.lanCounters[h.lan];
      const hb = this.lastAccepted.get(`${h.lan} ${h.source}`);
      if (!c || !hb) continue; // cannot be: a note follows a learn, which follows an acceptance
      c.received += h.count;
      if (this.feed({ type: 'heartbeat', lan: h.lan, hb: { ...hb, seq: h.seq }, wallMs: Date.now() }, item.atMs)) {
        c.accepted += h.count;
        c.quiet += h.count;
      }
    }
    return news;
  }

  setLocalModules(modules: Record<string, ModuleStatus>): void {
    this.feed({ type: 'local_modules', modules });
  }

  /** The configuration changed (reload, push): its new signature goes out at once. */
  setLocalConfig(cfg: ConfigSignature): void {
    this.feed({ type: 'local_config', cfg });
  }

  /** How many times the JS thread was woken for membership: by its timer, by the pump. */
  wakes(): { timer: number; pump: number; watching: boolean } {
    return { ...this.wakeCounts, watching: this.watching };
  }

  /** The protocol range this node speaks. */
  protocolRange(): ProtocolRange {
    return { ...this.state.protocol };
  }

  peers(): PeerInfo[] {
    this.readFresh();
    return corePeers(this.state);
  }

  view(): View {
    return currentView(this.state);
  }

  converged(): boolean {
    return isConverged(this.state);
  }

  moduleStates(): Record<string, Record<string, ModuleStatus>> {
    return coreModuleStates(this.state);
  }

  counters(): MembershipCounters {
    this.readFresh();
    const pump = this.pump?.stats() ?? this.lastStats;
    this.lanCounters.forEach((c, lan) => { c.sent = pump?.sent[lan] ?? c.sent; });
    const total = zeroCounters();
    for (const c of this.lanCounters) {
      total.sent += c.sent;
      total.received += c.received;
      total.accepted += c.accepted;
      total.quiet += c.quiet;
      for (const r of DROP_REASONS) total.dropped[r] += c.dropped[r];
    }
    return {
      ...total,
      perLan: this.lanCounters.map((c) => ({ ...c, dropped: { ...c.dropped } })),
      inboxDropped: pump?.inboxDropped ?? 0,
      underruns: pump?.underruns ?? 0,
    };
  }

  /** True when the core accepted it. */
  private onDatagram(lan: number, msg: Buffer, source: string, atMs: number): boolean {
    const c = this.lanCounters[lan];
    if (!c) return false;
    c.received += 1;
    try {
      const decoded = decodeHeartbeat(msg, this.cluster.key);
      if (!decoded.ok) {
        c.dropped[decoded.reason] += 1;
        this.log.debug({ event: 'drop', reason: decoded.reason, lan, src: source, bytes: msg.length }, 'heartbeat dropped');
        return false;
      }
      // Authenticated, but from another machine than the one configured for that node on this LAN
      // (a key holder, or a recorded datagram re-sent from elsewhere): dropped before the core.
      const expected = this.sources[lan]?.get(decoded.hb.from);
      if (expected !== undefined && decoded.hb.from !== this.self && canonicalAddress(source) !== expected) {
        c.dropped.wrong_source += 1;
        this.log.debug({ event: 'drop', reason: 'wrong_source', from: decoded.hb.from, lan, src: source, expected }, 'heartbeat dropped');
        return false;
      }
      if (!this.feed({ type: 'heartbeat', lan, hb: decoded.hb, wallMs: Date.now() }, atMs)) return false;
      c.accepted += 1;
      // Its repeats (seq aside) are the pump's quiet heartbeats from now on, while the peer is up.
      if (this.quiet && this.pump && corePeers(this.state).find((p) => p.name === decoded.hb.from)?.up) {
        const learned = this.pump.learn(lan, source, msg, decoded.hb.seq, performance.now() - atMs);
        // Not learned: the pump dropped the pair's template, so it neither notes nor watches it.
        if (learned) this.lastAccepted.set(`${lan} ${source}`, decoded.hb);
        else this.lastAccepted.delete(`${lan} ${source}`);
        if (learned && this.watching) this.watched.add(`${lan} ${decoded.hb.from}`);
        else this.watched.delete(`${lan} ${decoded.hb.from}`);
        this.armTimer();
      }
      return true;
    } catch (err) {
      // Nothing a datagram carries may stop the daemon; a throw here is a bug, counted and logged.
      c.dropped.malformed += 1;
      this.log.warn({ event: 'drop', reason: 'malformed', lan, err: String(err) }, 'heartbeat handling failed');
      return false;
    }
  }

  /** Steps the core and performs its actions; false when the core dropped the heartbeat. */
  private feed(event: MembershipEvent, atMs = performance.now()): boolean {
    this.lastNowMs = Math.max(this.lastNowMs, atMs);
    const { state, actions } = membershipStep(this.state, event, this.lastNowMs);
    this.state = state;
    let accepted = true;
    const nested = this.performing;
    this.performing = true;
    try {
      for (const a of actions) {
        if (a.type === 'drop') accepted = false;
        this.perform(a);
      }
    } finally {
      this.performing = nested;
    }
    this.armTimer();
    return accepted;
  }

  /**
   * One timer, set for when the core next has work (nextTickMs): a heartbeat due or a peer's
   * silence reaching the timeout, so a death is seen on time, not a polling period late.
   */
  private armTimer(): void {
    if (!this.running) return;
    if (this.armLater !== 'no') {
      this.armLater = 'due';
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    // The deadlines of the pairs the pump watches are its to keep: it wakes this thread when one passes.
    const watched = this.watched.size === 0 ? undefined : (node: string, lan: number): boolean => this.watched.has(`${lan} ${node}`);
    const delay = Math.min(this.sendEveryMs, Math.max(0, nextTickMs(this.state, watched) - performance.now()));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.wakeCounts.timer += 1;
      // What arrived during a pause of this thread counts at its arrival time, before the check.
      this.readInbox();
      this.feed({ type: 'tick' });
      this.afterRefresh();
    }, Math.ceil(delay));
  }

  /**
   * The refresh of the pump's reserve (once a REFRESH_MS while nothing changes) wakes this thread
   * anyway: the slow duties ride on it instead of timers of their own, since each wake of an idle
   * Node thread costs about a millisecond of CPU (cold caches; bench/farm/REPORT.md, idle). The
   * floors' save here, and 'refresh' for the daemon's (farms' and mirrors' backup polls, the
   * configuration agreement). Called where this thread's own work starts (its timer, the pump's
   * wake), after the core's step: never from inside one, nor from inside the inbox's reading.
   */
  private afterRefresh(): void {
    if (!this.refreshed || !this.running) return;
    this.refreshed = false;
    void this.saveLater();
    this.emit('refresh');
  }

  private perform(a: MembershipAction): void {
    switch (a.type) {
      case 'send':
        this.sendAll(a.hb);
        return;
      case 'drop': {
        const c = this.lanCounters[a.lan];
        if (c) c.dropped[a.reason] += 1;
        if (a.reason === 'version' && this.versionWarned.get(a.from) !== a.detail) {
          // Known nodes only reach here (unknown_node is checked first): the map is bounded by cluster.yaml.
          this.versionWarned.set(a.from, a.detail ?? '');
          this.log.warn({ event: 'peer_version_refused', peer: a.from, lan: a.lan, reason: a.detail },
            `heartbeats of ${a.from} refused: ${a.detail ?? 'protocol version'}`);
          return;
        }
        this.log.debug({ event: 'drop', reason: a.reason, from: a.from, lan: a.lan }, 'heartbeat dropped');
        return;
      }
      case 'peer_down':
        // Its next heartbeat is queued, not quiet: a node coming back is seen at its first one.
        for (const [lan, bySource] of this.sources.entries()) {
          const address = bySource.get(a.node);
          if (address === undefined) continue;
          this.pump?.forget(address);
          this.lastAccepted.delete(`${lan} ${address}`);
          this.watched.delete(`${lan} ${a.node}`);
        }
        this.emit(a.type, a);
        return;
      case 'peer_up':
      case 'view_change':
        this.emit(a.type, a);
        return;
    }
  }

  /**
   * Hands the heartbeat to the pump for the next `reserve` intervals: copy k carries seq
   * hb.seq * reserve + k, so seqs only grow (the core's seq grows by one per send). A heartbeat that
   * says something new also goes out at once; one that says the same only refreshes the reserve
   * every REFRESH_MS.
   */
  private sendAll(hb: Extract<MembershipAction, { type: 'send' }>['hb']): void {
    if (!this.running || !this.pump) return;
    // A peer that announced protocol 2 refuses fields it does not know: it gets protocol 2's heartbeat.
    const legacy = new Set(corePeers(this.state).filter((p) => p.proto !== null && p.proto[0] < 3).map((p) => p.name));
    const content = `${JSON.stringify({ ...hb, seq: 0 })} ${[...legacy].join(' ')}`;
    const changed = content !== this.lastContent;
    const now = performance.now();
    // The core sends every REFRESH_MS when nothing changes (sendEveryMs): half of it tells a refresh from a repeat.
    if (!changed && now - this.scheduledAtMs < REFRESH_MS / 2) return;
    this.scheduledAtMs = now;
    this.refreshed = true;
    // The first probe comes LEGACY_PROBE_MS after a peer was first taken for protocol 2.
    if (legacy.size === 0) this.probedAtMs = now;
    const probe = legacy.size > 0 && now - this.probedAtMs >= this.legacyProbeMs;
    if (probe) this.probedAtMs = now;
    const { proto: _p, pkg: _k, cfg: _c, ...legacyHb } = hb;
    const setFor = (k: number): Buffer[][] => {
      const seq = hb.seq * this.reserve + k;
      return this.lanPeers.map((peers, lan) => {
        const buf = encodeHeartbeat({ ...hb, seq, lan }, this.cluster.key);
        if (legacy.size === 0 || hb.proto === undefined) return [buf];
        const legacyBuf = encodeHeartbeat({ ...legacyHb, seq, lan }, this.cluster.key);
        return peers.map((name) => (legacy.has(name) && !(probe && k === 0) ? legacyBuf : buf));
      });
    };
    const base = hb.seq * this.reserve;
    const template = this.template;
    if (!changed && !probe && template !== null && template.content === content && this.pump.scheduleFrom(template.set, template.seq, base, this.reserve)) return;
    const first = setFor(0);
    this.template = probe ? null : { content, set: first, seq: base };
    if (changed) {
      this.lastContent = content;
      this.pump.sendNow(first);
    }
    // The rest of the reserve. Without a probe each interval's set is this one with another seq:
    // the pump signs each copy (JavaScript encodes once per refresh, not once per interval). A
    // probe's first set differs from the others, and without the key (no quiet path) the pump
    // cannot sign: then every set is encoded here.
    const from = changed ? 1 : 0;
    if (!probe && this.pump.scheduleFrom(first, base, base + from, this.reserve - from)) return;
    const sets: Buffer[][][] = [];
    for (let k = from; k < this.reserve; k++) sets.push(k === 0 ? first : setFor(k));
    this.pump.schedule(sets);
  }
}
