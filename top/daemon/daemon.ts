// The daemon of one node: membership over UDP, one runtime per module of this node (plus, for a farm
// with a VIP, its farm runtime: farm/runtime.ts), the HTTP API. It holds no decision of its own:
// membership, module and farm runtimes decide and order their effects; this wires them.
// Somewhat over 500 lines: one wiring, of membership, runtimes, reload, maintenance, notifications
// and config agreement, each of which lives in its own file (reload-result, maintenance, events,
// agreement, push, status-types); what is left here is how they meet.
import { EventEmitter } from 'node:events';
import type { Config, ModuleConfig } from '../../src/config/types.js';
import { diffConfig } from '../../src/config/diff.js';
import { loadConfig } from '../../src/config/load.js';
import { CroftError } from '../../src/errors.js';
import type { Logger } from '../../src/log/logger.js';
import { UdpMembership } from '../../src/membership/udp.js';
import type { ModuleStatus, PeerInfo, View } from '../../src/membership/types.js';
import { ModuleRuntime } from '../../src/module/runtime.js';
import { KernelFarmEffects } from '../../farm/driver.js';
import { FarmRuntime } from '../../farm/runtime.js';
import { monotonicClock } from '../../src/clock.js';
import { MirrorRuntime } from '../../mirror/runtime.js';
import type { NodeModuleView } from '../../farm/members.js';
import { bestState } from './states.js';
import { EventBus } from '../notify/bus.js';
import { toNotifyConfig } from '../../src/config/notify.js';
import { configMismatchEvent, peerEvent, publishRuntimeEvents } from './events.js';
import { Maintenance } from './maintenance.js';
import { configSignature, signatureDifferences, type ConfigSignature } from '../../src/config/signature.js';
import { localProtocol, packageVersion, PROTOCOL_VERSION, TEST_PROTOCOL_ENV } from '../../src/protocol.js';
import { ConfigAgreement, type ConfigMismatch } from './agreement.js';
import type { ClusterStatus, NodeStatus } from './status-types.js';
import { PushReceiver } from './push.js';

export type { ClusterStatus, NodeStatus } from './status-types.js';
export { describeReload, type ReloadResult } from './reload-result.js';
import { describeReload, type ReloadResult } from './reload-result.js';

export type ModuleCommand = 'start' | 'stop' | 'restart';
/** Commands of mirror modules only (SafeKit's prim, second, swap). */
export type MirrorCommandName = 'prim' | 'second' | 'swap';

/** A light or farm module's runtime, or a mirror's: the same outward shape. */
export type AnyRuntime = ModuleRuntime | MirrorRuntime;


export class Daemon extends EventEmitter {
  /** The running configuration; a reload replaces it. */
  #config: Config;
  get config(): Config {
    return this.#config;
  }
  readonly self: string;
  readonly membership: UdpMembership;
  readonly runtimes = new Map<string, AnyRuntime>();
  /** Mirror modules of this node (also in runtimes). */
  readonly mirrors = new Map<string, MirrorRuntime>();
  /** Farm modules with a VIP on this node (cloud-mode farms have none: /health guides the provider's LB). */
  readonly farms = new Map<string, FarmRuntime>();
  private readonly log: Logger;
  get logger(): Logger {
    return this.log;
  }
  private readonly localSinceMs = new Map<string, number>();
  /** Between start() and stop(): a reload then starts what it creates. */
  private running = false;
  /** Reloads and stop run one after the other. */
  private pending: Promise<unknown> = Promise.resolve();
  /** Every event of this node (state changes, checkers, failovers...): history and notifications. */
  readonly events: EventBus;
  readonly maintenance: Maintenance;
  /** The running configuration's signature, announced in the heartbeats. */
  private signature: ConfigSignature;
  private readonly agreement = new ConfigAgreement();
  /** Receives `croft config push` (top/daemon/push.ts). */
  readonly push: PushReceiver = new PushReceiver(this);

  constructor(config: Config, self: string, log: Logger) {
    super();
    if (!config.cluster.nodes.some((n) => n.name === self)) {
      throw new CroftError('CROFT_ERR_UNKNOWN_NODE',
        `node "${self}" is not in ${config.cluster.file}; nodes are: ${config.cluster.nodes.map((n) => n.name).join(', ')}`);
    }
    this.#config = config;
    this.self = self;
    this.log = log;
    // A restart must announce a larger incarnation than the last run (replay protection keys on it):
    // the membership takes max(now, last saved + 1) from the state dir, and saves it at start.
    this.membership = new UdpMembership({ cluster: config.cluster, self, stateDir: config.cluster.stateDir, logger: log.child({ layer: 'membership' }) });
    this.events = new EventBus({ cluster: config.cluster.name, node: self, incarnation: () => this.membership.incarnation, config: config.cluster.notify ?? toNotifyConfig(undefined, config.dir), log });
    this.maintenance = new Maintenance(config.cluster.stateDir, log);
    this.maintenance.load();
    this.signature = configSignature(config);
    this.membership = new UdpMembership({ cluster: config.cluster, self, stateDir: config.cluster.stateDir, logger: log.child({ layer: 'membership' }),
      protocol: localProtocol(), pkg: packageVersion(), cfg: this.signature });
    for (const event of ['peer_up', 'peer_down', 'view_change'] as const) {
      this.membership.on(event, (action: { node?: string; view?: View; cause: string }) => {
        // `node` is the logging node in every line, so the peer is logged as `peer`.
        const cause = action.cause === 'timeout'
          ? `no heartbeat on any LAN for ${config.cluster.heartbeat.timeoutMs} ms` : action.cause;
        this.log.info({ event, peer: action.node, view: action.view, cause },
          `${event}${action.node ? ` ${action.node}` : ''}: ${cause}`);
        if (event === 'peer_down') {
          for (const rt of this.mirrors.values()) if (rt.peer === action.node) rt.peerLost();
        }
        // A farm follows the view at once (its poll would add up to half an interval to a failover).
        if (event === 'view_change') for (const farm of this.farms.values()) farm.refresh('view');
        if (event !== 'view_change' && action.node) this.events.publish(peerEvent(action.node, event === 'peer_up', cause));
        this.emit(event, action);
      });
    }
    // A peer said something new (a module's state, its view, its configuration): the farms, the
    // mirrors and the agreement follow at once. The membership's refresh of its heartbeats (once a
    // second while nothing changes) backs this up: no timer of their own, so an idle daemon's thread
    // wakes for the refresh and the checkers only (each wake of an idle Node thread costs about a
    // millisecond of CPU: bench/farm/REPORT.md, idle).
    this.membership.on('heard', () => this.peersNews());
    this.membership.on('refresh', () => this.peersNews());
    for (const module of config.modules) this.addModule(module);
  }

  /** The runtimes of a module of this node (none when it does not name this node). */
  private addModule(module: ModuleConfig): boolean {
    if (!module.nodes.includes(this.self)) return false;
    if (module.kind === 'mirror') {
      this.runtimes.set(module.name, this.createMirrorRuntime(module));
      return true;
    }
    if (module.kind === 'farm' && module.farm?.vip) {
      const effects = new KernelFarmEffects(module, this.self, this.config.cluster);
      this.farms.set(module.name, new FarmRuntime({
        module, self: this.self, cluster: this.config.cluster, effects, clock: monotonicClock, log: this.log,
        views: () => this.nodeViews(module.name), ifname: () => effects.ifname(),
      }));
    }
    this.runtimes.set(module.name, this.createRuntime(module));
    return true;
  }

  /** Stops a module of this node (its scripts run, a farm drains), closes and drops its runtimes. */
  private async dropModule(name: string, cause: string): Promise<void> {
    const rt = this.runtimes.get(name);
    if (!rt) return;
    await stopAndWait(rt, cause);
    await rt.close();
    rt.removeAllListeners();
    await this.farms.get(name)?.close();
    this.runtimes.delete(name);
    this.mirrors.delete(name);
    this.farms.delete(name);
    this.localSinceMs.delete(name);
  }

  /** Brings up what addModule created (mirror record, farm filter) and starts it unless autostart: false. */
  private async bringUp(name: string, cause: string): Promise<void> {
    const rt = this.runtimes.get(name);
    if (!rt) return;
    if (rt instanceof MirrorRuntime) await rt.init();
    const module = this.config.modules.find((m) => m.name === name);
    if (module?.autostart !== false) rt.start(cause);
  }

  /** What peers announce changed: the farms' members, the mirrors' peer views, the agreement. */
  private peersNews(): void {
    for (const farm of this.farms.values()) farm.refresh('view');
    this.updateMirrors();
    this.checkAgreement();
  }

  /** Re-reads the config folder this daemon runs from and applies it (reload). */
  reloadFromDisk(cause: string): Promise<ReloadResult> {
    return this.reload(() => loadConfig(this.config.dir), cause);
  }

  /**
   * Applies a new configuration without a restart: modules removed (or no longer naming this node)
   * are stopped and dropped, modules added are created and started, modules changed are stopped and
   * re-created, the others keep their runtime untouched. Refused whole, nothing changed, when the
   * configuration is invalid (`next` throws the loader's ConfigError, file:line) or changes
   * cluster.yaml: nodes, addresses, key, LANs, heartbeat and API are wired into the membership, the
   * replication links and the listening sockets at start, so they need a restart.
   */
  reload(next: () => Config, cause: string): Promise<ReloadResult> {
    const run = this.pending.then(() => this.applyReload(next(), cause));
    this.pending = run.catch(() => undefined);
    return run;
  }

  private async applyReload(next: Config, cause: string): Promise<ReloadResult> {
    const diff = diffConfig(this.config, next);
    if (diff.cluster.length) {
      throw new CroftError('CROFT_ERR_RELOAD_RESTART', `${next.cluster.file}: ${diff.cluster.join(', ')} changed; `
        + 'cluster.yaml cannot be applied by a reload: restart the daemon on every node (`systemctl restart croft`) to use it. '
        + 'Nothing was changed.');
    }
    const here = (c: Config, name: string) => c.modules.find((m) => m.name === name)?.nodes.includes(this.self) ?? false;
    const result: ReloadResult = { node: this.self, started: [], stopped: [], restarted: [], untouched: [], diff };
    const drop = [...diff.removed, ...diff.changed].filter((name) => this.runtimes.has(name));
    const add = [...diff.added, ...diff.changed].filter((name) => here(next, name));
    for (const name of diff.unchanged) if (this.runtimes.has(name)) result.untouched.push(name);
    for (const name of diff.changed) {
      const before = this.runtimes.has(name);
      const after = here(next, name);
      if (before && after) result.restarted.push(name);
      else if (before) result.stopped.push(name);
      else if (after) result.started.push(name);
    }
    for (const name of diff.removed) if (this.runtimes.has(name)) result.stopped.push(name);
    for (const name of diff.added) if (here(next, name)) result.started.push(name);
    for (const list of [result.started, result.stopped, result.restarted]) list.sort();
    this.log.info({ event: 'reload', cause, added: diff.added, removed: diff.removed, changed: diff.changed,
      started: result.started, stopped: result.stopped, restarted: result.restarted },
    `reload (${cause}): ${describeReload(result)}`);
    // Stopped before anything is created: a changed module takes back its own VIP, ports and folders.
    await Promise.all(drop.map((name) => this.dropModule(name, `reload: module ${diff.removed.includes(name) ? 'removed' : 'changed'}`)));
    this.#config = next;
    this.signature = configSignature(next);
    this.membership.setLocalConfig(this.signature);
    for (const name of add) this.addModule(next.modules.find((m) => m.name === name)!);
    this.publishModules();
    if (this.running) {
      for (const name of add) await this.bringUp(name, `reload: module ${diff.added.includes(name) ? 'added' : 'changed'}`);
    }
    return result;
  }

  /** This run's incarnation (membership/persist.ts). */
  get incarnation(): number {
    return this.membership.incarnation;
  }

  /** The module's state on every node of the cluster, as this node sees it (for farm membership). */
  private nodeViews(module: string): NodeModuleView[] {
    const peers = new Map(this.membership.peers().map((p) => [p.name, p]));
    const states = this.membership.moduleStates();
    return this.config.cluster.nodes.map((n) => n.name === this.self
      ? { name: n.name, up: true, state: this.runtimes.get(module)?.state() }
      : { name: n.name, up: peers.get(n.name)?.up ?? false, state: states[n.name]?.[module]?.state });
  }

  private createRuntime(module: ModuleConfig): ModuleRuntime {
    const runtime = new ModuleRuntime({
      module,
      node: this.self,
      cluster: this.config.cluster.name,
      getModuleState: (m, node) => this.moduleState(m, node),
      logger: this.log, // the runtime adds module to its lines
    });
    this.localSinceMs.set(module.name, Date.now());
    publishRuntimeEvents(this.events, module.kind, runtime);
    runtime.setMaintenance(this.maintenance.covers(module.name));
    runtime.on('transition', (t: { module: string; from: string; to: string; cause: string }) => {
      this.localSinceMs.set(module.name, Date.now());
      this.publishModules();
      this.farms.get(module.name)?.transition(t.from, t.to);
      this.emit('transition', t);
    });
    // A farm with a VIP counts its clients while draining (farm/runtime.ts). Without a VIP, in cloud
    // mode, the provider's balancer needs the whole drain_ms to notice /health's 503.
    runtime.on('drain', (d: { untilMs: number }) => {
      this.farms.get(module.name)?.drain(Math.max(0, d.untilMs - Date.now()),
        { draining: () => runtime.drainingUntil() !== null, drained: () => runtime.drained() });
    });
    return runtime;
  }

  private createMirrorRuntime(module: ModuleConfig): MirrorRuntime {
    const runtime = new MirrorRuntime({
      module,
      node: this.self,
      cluster: this.config.cluster,
      getModuleState: (m, node) => this.moduleState(m, node),
      logger: this.log,
    });
    this.mirrors.set(module.name, runtime);
    publishRuntimeEvents(this.events, module.kind, runtime);
    runtime.setMaintenance(this.maintenance.covers(module.name));
    runtime.on('announce', () => this.publishModules());
    runtime.on('transition', (t: { module: string; from: string; to: string; cause: string }) => {
      this.localSinceMs.set(module.name, Date.now());
      this.publishModules();
      this.emit('transition', t);
    });
    return runtime;
  }

  /** Each mirror hears its peer's announcement from the heartbeats (on change; the runtime compares). */
  private updateMirrors(): void {
    const peers = new Map(this.membership.peers().map((p) => [p.name, p]));
    const states = this.membership.moduleStates();
    for (const [name, rt] of this.mirrors) {
      if (!peers.get(rt.peer)?.up) continue; // peer_down told the runtime already
      const view = states[rt.peer]?.[name]?.mirror;
      if (view) rt.peerView(view);
    }
  }

  /** State of `module` on `node` ('local', 'any' or a node name), as this node knows it. */
  moduleState(module: string, node: string): string | undefined {
    if (node === 'local' || node === this.self) return this.runtimes.get(module)?.state();
    const states = this.membership.moduleStates();
    if (node === 'any') {
      const all: string[] = [];
      const local = this.runtimes.get(module)?.state();
      if (local) all.push(local);
      for (const [name, mods] of Object.entries(states)) {
        if (name === this.self) continue;
        const s = mods[module]?.state;
        if (s) all.push(s);
      }
      return all.length ? bestState(all) : undefined;
    }
    return states[node]?.[module]?.state;
  }

  private localModules(): Record<string, ModuleStatus> {
    const out: Record<string, ModuleStatus> = {};
    for (const [name, rt] of this.runtimes) {
      if (rt instanceof MirrorRuntime) {
        // The announced view, released by the runtime's action queue (mirror/runtime.ts).
        const a = rt.announced();
        out[name] = { state: a.view.state, sinceMs: a.sinceMs, mirror: a.view };
      } else {
        out[name] = { state: rt.state(), sinceMs: this.localSinceMs.get(name) ?? 0 };
      }
    }
    return out;
  }

  private publishModules(): void {
    this.membership.setLocalModules(this.localModules());
  }

  async start(): Promise<void> {
    // Mirrors read their data record (and detach what a killed daemon left mounted) first.
    for (const rt of this.mirrors.values()) await rt.init();
    this.publishModules();
    await this.membership.start();
    // Peers' module states arrive with their heartbeats; each farm runtime follows them ('heard',
    // 'refresh' in the constructor).
    this.running = true;
    const proto = this.membership.protocolRange();
    if (proto.current !== PROTOCOL_VERSION) {
      this.log.warn({ event: 'protocol_lowered', protocol: proto.current, env: TEST_PROTOCOL_ENV },
        `${TEST_PROTOCOL_ENV} makes this daemon speak protocol ${proto.current} instead of ${PROTOCOL_VERSION}: a test-only setting, never for a real cluster`);
    }
    this.log.info({ event: 'daemon_start', incarnation: this.incarnation, modules: [...this.runtimes.keys()] },
      `croft daemon started on ${this.self}`);
    for (const [name, rt] of this.runtimes) {
      const module = this.config.modules.find((m) => m.name === name);
      if (module?.autostart !== false) rt.start('daemon start');
    }
  }

  /** Stop the modules (their stop scripts run), then leave the cluster. */
  async stop(cause = 'daemon stop'): Promise<void> {
    await this.pending; // a reload under way finishes first
    this.running = false;
    await Promise.all([...this.runtimes.values()].map((rt) => stopAndWait(rt, cause)));
    await Promise.all([...this.runtimes.values()].map((rt) => rt.close()));
    await Promise.all([...this.farms.values()].map((f) => f.close()));
    await this.membership.stop();
    // The last events (the modules' STOP) get a moment to reach the receivers.
    await this.events.close(2000);
    this.log.info({ event: 'daemon_stop', cause }, 'croft daemon stopped');
  }

  /**
   * Maintenance on or off for a module of this node, or (module null) for the whole node: the
   * checkers' verdicts stop (or start again) acting on the modules it covers (src/module/maintenance.ts);
   * persisted first, so a daemon restart keeps it. Returns false when it was so already.
   */
  setMaintenance(module: string | null, on: boolean, by: string): boolean {
    if (module !== null) this.runtime(module); // CROFT_ERR_UNKNOWN_MODULE when not here
    const changed = this.maintenance.set(module, on, by);
    const what = module === null ? `node ${this.self}` : `module ${module} on ${this.self}`;
    this.log.info({ event: 'maintenance', module, on, by, changed }, `maintenance ${on ? 'on' : 'off'} for ${what} (${by})${changed ? '' : ': it was already'}`);
    if (!changed) return false;
    for (const [name, rt] of this.runtimes) rt.setMaintenance(this.maintenance.covers(name));
    this.events.publish({ module, kind: 'maintenance', from: on ? 'off' : 'on', to: on ? 'on' : 'off', cause: `maintenance ${on ? 'on' : 'off'} (${by})` });
    return true;
  }

  /**
   * The event of a configuration that differs between this node and a peer (config push and
   * signatures, issue 12 part 3, call this when they see one): for a module, or (null) cluster.yaml.
   * `ours` and `theirs` are the signatures; the event's from/to carry them.
   */
  notifyConfigMismatch(peer: string, module: string | null, ours: string, theirs: string, detail = ''): void {
    this.events.publish(configMismatchEvent(peer, module, ours, theirs, detail));
  }

  /**
   * Where a configuration mismatch is detected (top/daemon/agreement.ts): a peer announcing another
   * signature than this node's is logged ("config mismatch") and emitted as 'config_mismatch'
   * { node, differs } once per change; its end as 'config_agreement' { node }.
   */
  checkAgreement(): ConfigMismatch[] {
    const { appeared, resolved, current } = this.agreement.check(this.signature, this.membership.peers());
    for (const m of appeared) {
      this.log.warn({ event: 'config_mismatch', peer: m.node, differs: m.differs },
        `config mismatch: ${m.node} runs another configuration (${m.differs.join(', ')} differ from ${this.self}'s); `
        + 'make them the same with `croft config push` from the node whose configuration is right');
      this.emit('config_mismatch', m);
      const theirs = this.membership.peers().find((p) => p.name === m.node)?.cfg;
      for (const what of m.differs) {
        const module = what === 'cluster.yaml' ? null : what;
        const sig = (c: ConfigSignature | null | undefined) => (c ? (module === null ? c.cluster : c.modules[module] ?? 'none') : 'unknown');
        this.notifyConfigMismatch(m.node, module, sig(this.signature), sig(theirs), `${what} differs on ${m.node}`);
      }
    }
    for (const node of resolved) {
      this.log.info({ event: 'config_agreement', peer: node }, `config agreement: ${node} runs the same configuration as ${this.self} again`);
      this.emit('config_agreement', { node });
    }
    return current;
  }

  command(module: string, command: ModuleCommand, cause: string): void {
    const rt = this.runtime(module);
    this.log.info({ event: 'command', module, command, cause }, `${command} ${module}: ${cause}`);
    rt[command](cause);
  }

  /** prim, second or swap of a mirror module; CROFT_ERR_MIRROR_REFUSED with the machine's reason. */
  mirrorCommand(module: string, command: MirrorCommandName, cause: string): void {
    const rt = this.mirror(module);
    this.log.info({ event: 'command', module, command, cause }, `${command} ${module}: ${cause}`);
    const refused = rt[command](cause);
    if (refused !== null) throw new CroftError('CROFT_ERR_MIRROR_REFUSED', `${command} ${module} on ${this.self} refused: ${refused}`);
  }

  /** The mirror runtime of `module`; CroftError when it is not a mirror module of this node. */
  mirror(module: string): MirrorRuntime {
    const rt = this.runtime(module);
    if (!(rt instanceof MirrorRuntime)) throw new CroftError('CROFT_ERR_USAGE', `module "${module}" is not a mirror module`);
    return rt;
  }

  runtime(module: string): AnyRuntime {
    const rt = this.runtimes.get(module);
    if (!rt) {
      const known = this.config.modules.find((m) => m.name === module);
      throw new CroftError('CROFT_ERR_UNKNOWN_MODULE', known
        ? `module "${module}" does not run on node ${this.self} (its nodes: ${known.nodes.join(', ')})`
        : `no module "${module}" in ${this.config.dir} (modules: ${this.config.modules.map((m) => m.name).join(', ') || 'none'})`);
    }
    return rt;
  }

  status(): ClusterStatus {
    const now = performance.now();
    const peers = new Map<string, PeerInfo>(this.membership.peers().map((p) => [p.name, p]));
    const nodes: NodeStatus[] = this.config.cluster.nodes.map((n) => {
      if (n.name === this.self) {
        return { name: n.name, state: 'UP', self: true, lastHeardAgoMs: null, view: this.membership.view(),
          package: packageVersion(), protocol: this.membership.protocolRange().current, configDiffers: [], configSignature: this.signature.cluster };
      }
      const p = peers.get(n.name);
      const up = p?.up ?? false;
      return {
        name: n.name,
        state: up ? 'UP' : 'DOWN',
        self: false,
        lastHeardAgoMs: p ? p.lastHeardMs.map((t) => (t === null ? null : Math.max(0, Math.round(now - t)))) : null,
        view: p?.view ?? null,
        package: up ? p?.pkg ?? null : null,
        protocol: up ? p?.proto?.[0] ?? null : null,
        configDiffers: up && p?.cfg ? signatureDifferences(this.signature, p.cfg) : null,
        configSignature: up ? p?.cfg?.cluster ?? null : null,
      };
    });
    const remote = this.membership.moduleStates();
    const modules: ClusterStatus['modules'] = {};
    for (const m of this.config.modules) {
      const perNode: Record<string, ModuleStatus & { known: boolean }> = {};
      for (const node of m.nodes) {
        if (node === this.self) {
          const rt = this.runtimes.get(m.name);
          const mirror = rt instanceof MirrorRuntime ? { mirror: rt.announced().view } : {};
          perNode[node] = { state: rt ? rt.state() : 'STOP', sinceMs: this.localSinceMs.get(m.name) ?? 0, known: true, ...mirror };
        } else {
          const s = peers.get(node)?.up ? remote[node]?.[m.name] : undefined;
          perNode[node] = s ? { ...s, known: true } : { state: 'STOP', sinceMs: 0, known: false };
        }
      }
      const differs = nodes.filter((n) => n.configDiffers?.includes(m.name)).map((n) => n.name);
      modules[m.name] = { kind: m.kind, nodes: perNode, configDiffers: differs };
    }
    const up = nodes.filter((n) => n.state === 'UP' && n.protocol !== null);
    const versions = new Set(up.map((n) => `${n.package ?? '?'}/${n.protocol}`));
    return {
      cluster: this.config.cluster.name,
      node: this.self,
      incarnation: this.incarnation,
      view: this.membership.view(),
      converged: this.membership.converged(),
      lans: this.config.cluster.lans,
      nodes,
      modules,
      maintenance: this.maintenance.snapshot(),
      protocol: this.membership.protocolRange(),
      mixedVersions: versions.size > 1,
      configMismatch: nodes.filter((n) => !n.self && n.configDiffers !== null && n.configDiffers.length > 0)
        .map((n) => ({ node: n.name, differs: n.configDiffers as string[] })),
    };
  }
}

function stopAndWait(rt: AnyRuntime, cause: string): Promise<void> {
  if (rt.state() === 'STOP' && rt.status().scriptRunning === null) return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (rt.state() === 'STOP' && rt.status().scriptRunning === null) {
        rt.off('transition', check);
        clearInterval(timer);
        resolve();
      }
    };
    // Scripts are bounded by their own timeouts and a farm drain by drain_ms, so this wait is bounded too.
    const timer = setInterval(check, 50);
    rt.on('transition', check);
    rt.stop(cause);
    check();
  });
}
