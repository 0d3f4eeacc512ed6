// The lab as the tests and the CLI use it: `Lab.up(...)`, then faults, exec, and `down()`.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { CroftError } from '../../src/errors.js';
import { createLab, initLog, type LabUpOptions } from './create.js';
import { teardown, allLabNames, type DownResult } from './teardown.js';
import { readState, writeState, type LabNodeState, type LabState, type NetemSettings } from './state.js';
import { renderHeal, renderPartition } from './partition.js';
import { checkLabName, netnsPath, stateDirOf, switchIfOfNode } from './names.js';
import { enterArgv, labEnv } from './enter.js';
import { run, runOk, type RunResult } from './run.js';
import { killAllIn, nsInode, pidsIn } from './procs.js';
import { daemonCommand, startDaemon } from './daemons.js';
import { hostPidOf, initPidOf, killNodeInit, startNodeInit } from './pidns.js';
import { applyNetem, parseNetemSpec, type NetemSpec } from './netem.js';
import { labStatus, type LabStatus } from './status.js';

/** How long a heal waits for the node's ports to forward again. */
const HEAL_WAIT_MS = 5_000;

export type { LabUpOptions } from './create.js';
export type { LabState, LabNodeState, NetemSettings, LinkNetem } from './state.js';
export type { LabStatus, LabNodeStatus, LabLinkStatus } from './status.js';
export type { DownResult } from './teardown.js';
export type { NetemSpec } from './netem.js';
export { parseNetemSpec } from './netem.js';
export { formatStatus } from './status.js';
export { NODE_BIND_PATHS, NODE_CONFIG_PATH } from './mounts.js';

/** Where a command runs: a node name (n1...) or "client". */
export type LabTarget = string;

export interface LabExecOptions {
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

export class Lab {
  private constructor(private state: LabState) {}

  /** Builds a lab (see LabUpOptions) and returns it once every daemon was started. */
  static async up(opts: LabUpOptions = {}): Promise<Lab> {
    return new Lab(await createLab(opts));
  }

  /** A lab that is up, from its state.json. */
  static open(name = 'lab'): Lab {
    checkLabName(name);
    const state = readState(stateDirOf(name));
    if (!state) throw new CroftError('CROFT_ERR_LAB', `no lab named ${name} is up (no ${stateDirOf(name)}/state.json)`);
    return new Lab(state);
  }

  /** Removes a lab by name, from discovery alone (works without state.json). */
  static down(name = 'lab'): Promise<DownResult> {
    checkLabName(name);
    return teardown(name);
  }

  /** Names of every lab with something left on this machine. */
  static list(): string[] {
    return allLabNames();
  }

  get name(): string { return this.state.name; }
  get stateDir(): string { return this.state.stateDir; }
  get configDir(): string { return this.state.configDir; }
  get nodes(): string[] { return this.state.nodes.map((n) => n.name); }
  get lans(): number { return this.state.lans; }
  /** A copy of the state (as in state.json). */
  get snapshot(): LabState { return structuredClone(this.state); }

  down(): Promise<DownResult> {
    return teardown(this.state.name);
  }

  nodeAddress(node: string, lan = 0): string {
    const a = this.node(node).addresses[lan];
    if (a === undefined) throw new CroftError('CROFT_ERR_LAB', `lab ${this.name} has no LAN ${lan}`);
    return a;
  }

  clientAddresses(): string[] {
    return [...this.state.client.addresses];
  }

  /** The client's IPv6 source addresses (`ipv6: true` at up), else []. */
  clientAddresses6(): string[] {
    return [...(this.state.client.addresses6 ?? [])];
  }

  /** A node's IPv6 address on a LAN (`ipv6: true` at up). */
  nodeAddress6(node: string, lan = 0): string {
    const a = this.node(node).addresses6?.[lan];
    if (a === undefined) throw new CroftError('CROFT_ERR_LAB', `lab ${this.name} has no IPv6 address for ${node} on LAN ${lan} (up without ipv6)`);
    return a;
  }

  /** argv to run a command in the target's namespaces (node: net + mount; client: net). */
  enterArgv(target: LabTarget, argv: string[], cwd?: string): string[] {
    if (target === 'client') return enterArgv({ netns: this.state.client.namespace }, argv);
    const n = this.node(target);
    return enterArgv({ netns: n.namespace, mountNs: n.mountNs, pidNs: n.pidNs }, argv, cwd ?? process.cwd());
  }

  env(target: LabTarget, extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
    if (target !== 'client') this.node(target);
    return labEnv(this.stateDir, this.name, target, extra);
  }

  /** Runs argv in the target and captures its output; a non-zero exit is a result, not an error. */
  exec(target: LabTarget, argv: string[], opts: LabExecOptions = {}): Promise<RunResult> {
    return run(this.enterArgv(target, argv, opts.cwd), { input: opts.input, env: this.env(target, opts.env), timeoutMs: opts.timeoutMs });
  }

  /** Starts argv in the target; the caller owns the child (kill it, or lab kill/down does). */
  spawn(target: LabTarget, argv: string[], opts: SpawnOptions = {}): ChildProcess {
    const [cmd, ...args] = this.enterArgv(target, argv, typeof opts.cwd === 'string' ? opts.cwd : undefined);
    return spawn(cmd!, args, { ...opts, cwd: undefined, env: this.env(target, opts.env) });
  }

  /**
   * SIGKILL of the node's daemon and of every process in its namespaces (applications too): the
   * init of its PID namespace is killed, which kills every process in it; then whatever ran on the
   * node from outside that namespace (the nsenter of a lab exec). The node gets a fresh PID
   * namespace, empty, as a machine after a crash: `lab start` starts the daemon there.
   */
  async kill(node: string): Promise<number[]> {
    this.reload();
    const n = this.node(node);
    const inodes = [nsInode(netnsPath(n.namespace)), nsInode(n.mountNs)];
    const [net, mnt] = inodes;
    if (net === undefined || mnt === undefined) throw new CroftError('CROFT_ERR_LAB', `namespaces of ${node} are gone; run lab down`);
    // Everything on the node now: a wrapper (nsenter) outside the PID namespace may exit by itself
    // once its command is killed, before the sweep below sees it.
    const pidIno = nsInode(n.pidNs);
    const before = pidsIn([net], [mnt], pidIno === undefined ? [] : [pidIno]);
    const inNs = await killNodeInit(this.stateDir, node);
    const rest = await killAllIn([net], [mnt]);
    n.initPid = await startNodeInit(this.stateDir, node, n.namespace, n.mountNs, initLog(this.stateDir, node));
    writeState(this.state);
    return [...new Set([...before, ...inNs, ...rest])];
  }

  /**
   * A crash as the network sees it (power lost, kernel panic, cable pulled): every link of the node
   * goes down at the switch first, so nothing its kernel sends afterwards reaches anyone (no FIN, no
   * RST of the sockets the kill closes), then everything on it is killed as `kill` does. `start`
   * brings the links back, as the machine boots again.
   */
  async crash(node: string): Promise<number[]> {
    this.reload();
    this.node(node);
    await this.setLinks(node, undefined, 'down');
    const killed = await this.kill(node); // reloads and saves the state
    this.node(node).crashed = true;
    writeState(this.state);
    return killed;
  }

  /** The host's pid of a process of the node, from its pid on the node (a pid file's, `$$`...). */
  hostPid(node: string, nodePid: number): number | undefined {
    this.node(node);
    return hostPidOf(this.stateDir, node, nodePid);
  }

  /**
   * A crashed node boots without starting its daemon (for a lab built with `daemons: false`, whose
   * applications the caller starts itself); `start` boots it and starts the daemon.
   */
  async reboot(node: string): Promise<void> {
    this.reload();
    const n = this.node(node);
    if (n.crashed) await this.boot(n);
    if (initPidOf(n.pidNs) === undefined) {
      n.initPid = await startNodeInit(this.stateDir, node, n.namespace, n.mountNs, initLog(this.stateDir, node));
      writeState(this.state);
    }
  }

  /**
   * Starts the node's daemon again (after kill); an error if it is still running. `command`: another
   * daemon command from now on (an upgraded build: test/integration/upgrade.lab.test.ts).
   */
  async start(node: string, command?: string[]): Promise<number> {
    this.node(node);
    const before = (await this.status()).nodes.find((s) => s.name === node); // reloads the state
    if (before?.daemon === 'alive') {
      throw new CroftError('CROFT_ERR_LAB', `the daemon of ${node} is running (pid ${before.daemonPid}); lab kill ${node} first`);
    }
    const n = this.node(node);
    if (n.crashed) await this.boot(n);
    if (initPidOf(n.pidNs) === undefined) {
      n.initPid = await startNodeInit(this.stateDir, node, n.namespace, n.mountNs, initLog(this.stateDir, node));
    }
    const argv = command ?? n.daemonCommand ?? daemonCommand(node);
    n.daemonCommand = argv;
    n.daemonPid = await startDaemon({
      labName: this.name, stateDir: this.stateDir, node, netns: n.namespace, mountNs: n.mountNs, pidNs: n.pidNs, command: argv, logFile: n.daemonLog,
    });
    writeState(this.state);
    return n.daemonPid;
  }

  /**
   * Splits the nodes into groups that cannot reach each other (on every LAN); the client still
   * reaches every node. Nodes not named form one more group. `partition([])` heals it.
   */
  async partition(groups: readonly (readonly string[])[]): Promise<void> {
    this.reload();
    const named = new Set(groups.flat());
    for (const n of named) this.node(n);
    const rest = this.nodes.filter((n) => !named.has(n));
    const all = groups.length === 0 ? [] : rest.length ? [...groups, rest] : [...groups];
    const text = all.length < 2 ? `${renderHeal().join('\n')}\n` : renderPartition(all.map((g) => g.map((n) => this.node(n).index)), this.lans);
    await runOk(['ip', 'netns', 'exec', this.state.switchNamespace, 'nft', '-f', '-'], { input: text });
  }

  /** Sets the node's links down at the switch (every LAN, or one). */
  cut(node: string, lan?: number): Promise<void> {
    return this.setLinks(node, lan, 'down');
  }

  heal(node: string, lan?: number): Promise<void> {
    return this.setLinks(node, lan, 'up');
  }

  /** Delay/jitter/loss on the node's interfaces (every LAN, or one); merged with earlier settings. */
  async netem(node: string, spec: NetemSpec | string | string[], lan?: number): Promise<void> {
    this.reload();
    const parsed = typeof spec === 'string' ? parseNetemSpec(spec.trim().split(/\s+/)) : Array.isArray(spec) ? parseNetemSpec(spec) : spec;
    const n = this.node(node);
    for (const k of this.lanList(lan)) {
      const current = n.netem[String(k)];
      const settings: NetemSettings = parsed.clear ? {} : {
        delayMs: parsed.delayMs ?? current?.delayMs,
        jitterMs: parsed.jitterMs ?? current?.jitterMs,
        lossPercent: parsed.lossPercent ?? current?.lossPercent,
      };
      const next = await applyNetem({
        stateDir: this.stateDir, switchNs: this.state.switchNamespace, nodeNs: n.namespace, node, index: n.index, lan: k, current,
      }, settings);
      if (next) n.netem[String(k)] = next;
      else delete n.netem[String(k)];
      writeState(this.state);
    }
  }

  async status(): Promise<LabStatus> {
    this.reload();
    return labStatus(this.state);
  }

  /**
   * A crashed node comes back as a machine that booted: no socket (the killed processes' closing
   * ones would send their FINs once the links are up) and no conntrack entry of its clients, then
   * its links up.
   */
  private async boot(n: LabNodeState): Promise<void> {
    await run(['ip', 'netns', 'exec', n.namespace, 'ss', '-K', '-a', '-t', '-u'], {});
    await run(['ip', 'netns', 'exec', n.namespace, 'conntrack', '-F'], {});
    await this.setLinks(n.name, undefined, 'up');
    n.crashed = false;
    writeState(this.state);
  }

  private async setLinks(node: string, lan: number | undefined, updown: 'up' | 'down'): Promise<void> {
    const n = this.node(node);
    const ifs = this.lanList(lan).map((k) => switchIfOfNode(n.index, k));
    await runOk(['ip', '-n', this.state.switchNamespace, '-batch', '-'], { input: `${ifs.map((i) => `link set ${i} ${updown}`).join('\n')}\n` });
    // Up is not at once: the carrier reaches the other end of the veth and the bridge port starts
    // forwarding a moment later, and a packet sent meanwhile is lost (a ping right after a heal
    // failed so in a fresh-clone run). A heal returns once every port forwards (bounded).
    if (updown === 'up') await this.waitForwarding(ifs, HEAL_WAIT_MS);
  }

  private async waitForwarding(ifs: string[], withinMs: number): Promise<void> {
    const ns = this.state.switchNamespace;
    const t0 = Date.now();
    for (;;) {
      const links = await run(['ip', '-n', ns, '-j', 'link', 'show'], { timeoutMs: 5_000 });
      const ports = await run(['bridge', '-n', ns, '-j', 'link', 'show'], { timeoutMs: 5_000 });
      const up = new Set((JSON.parse(links.stdout || '[]') as { ifname: string; flags?: string[] }[])
        .filter((l) => l.flags?.includes('LOWER_UP')).map((l) => l.ifname));
      const forwarding = new Set((JSON.parse(ports.stdout || '[]') as { ifname: string; state?: string }[])
        .filter((p) => p.state === 'forwarding').map((p) => p.ifname));
      if (ifs.every((i) => up.has(i) && forwarding.has(i))) return;
      if (Date.now() - t0 >= withinMs) {
        throw new CroftError('CROFT_ERR_LAB', `lab ${this.name}: ${ifs.filter((i) => !up.has(i) || !forwarding.has(i)).join(', ')} not forwarding ${withinMs} ms after link up`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private lanList(lan: number | undefined): number[] {
    if (lan === undefined) return Array.from({ length: this.state.lans }, (_, k) => k);
    if (!Number.isInteger(lan) || lan < 0 || lan >= this.state.lans) {
      throw new CroftError('CROFT_ERR_USAGE', `lab ${this.name} has LANs 0..${this.state.lans - 1}, not ${lan}`);
    }
    return [lan];
  }

  private node(node: string): LabNodeState {
    const n = this.state.nodes.find((x) => x.name === node);
    if (!n) throw new CroftError('CROFT_ERR_UNKNOWN_NODE', `lab ${this.name} has no node ${node} (nodes: ${this.nodes.join(', ')}, or client)`);
    return n;
  }

  /** Another command (CLI, another Lab object) may have changed state.json. */
  private reload(): void {
    const fresh = readState(this.stateDir);
    if (fresh) this.state = fresh;
  }
}
