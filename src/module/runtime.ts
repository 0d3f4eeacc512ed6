// Driver of one light module on this node: feeds commands, probe results and script results to the
// pure machine (machine.ts) and carries out its actions: logs and events for transitions, which
// checkers run (checkers/runner.ts), and the scripts (scripts.ts), one at a time.
import { EventEmitter } from 'node:events';
import type { ModuleConfig } from '../config/types.js';
import { CheckerRunner, runnerCheckers, type ModuleStateGetter } from './checkers/index.js';
import {
  checkerHealth,
  createModuleMachine,
  machineConfigOf,
  moduleStep,
  restartsInWindow,
  type ModuleMachine,
} from './machine.js';
import { MaintenanceGate, suppressedMessage, type SuppressedVerdict } from './maintenance.js';
import { runScript, scriptEnv } from './scripts.js';
import { checkerStatuses, type ModuleAction, type ModuleEvent, type ModuleLogger, type ModuleState, type ModuleStatus, type ScriptName } from './types.js';

export interface ModuleRuntimeOptions {
  module: ModuleConfig;
  node: string;
  cluster: string;
  /** State of a module on a node ('local', 'any' or a node name); see checkers/module.ts. */
  getModuleState: ModuleStateGetter;
  logger?: ModuleLogger;
  /** Clock for status and restart windows (epoch ms). Default Date.now. */
  now?: () => number;
}

export type ScriptOutcome = 'ok' | 'fail' | 'timeout';

/** Payload of the 'transition' event. */
export interface TransitionEvent {
  module: string;
  from: ModuleState;
  to: ModuleState;
  cause: string;
}
/** Payload of the 'checker_change' event. */
export interface CheckerChangeEvent {
  module: string;
  checker: string;
  healthy: boolean;
  detail: string;
}
/** Payload of the 'script' event (emitted when a script ends). */
export interface ScriptEvent {
  module: string;
  name: ScriptName;
  result: ScriptOutcome;
  durationMs: number;
  exitCode: number | null;
}

export interface ModuleCounters {
  /** Key `<script>:<ok|fail|timeout>`, e.g. `start_both:ok`. */
  scriptRuns: Record<string, number>;
  /** Key `<checker>:<ok|fail>`. */
  probes: Record<string, number>;
}

const silentLogger: ModuleLogger = { info() {}, warn() {}, error() {} };

export class ModuleRuntime extends EventEmitter {
  readonly #cfg: ModuleConfig;
  readonly #node: string;
  readonly #cluster: string;
  /** Lines carry the module; the node comes from the logger's bindings (the daemon's logger has it). */
  readonly #log: ModuleLogger;
  readonly #now: () => number;
  readonly #runner: CheckerRunner;
  readonly #dependencies: string[];
  #m: ModuleMachine;
  #closed = false;
  #script: Promise<void> | null = null;
  /** Feeds a tick at the end of a drain (its deadline). */
  #drainTimer: NodeJS.Timeout | null = null;
  readonly #last = new Map<string, { detail: string; atMs: number }>();
  readonly #counters: ModuleCounters = { scriptRuns: {}, probes: {} };
  readonly #gate: MaintenanceGate;

  constructor(opts: ModuleRuntimeOptions) {
    super();
    this.#cfg = opts.module;
    this.#node = opts.node;
    this.#cluster = opts.cluster;
    this.#log = opts.logger ?? silentLogger;
    this.#now = opts.now ?? Date.now;
    const mcfg = machineConfigOf(opts.module);
    this.#dependencies = mcfg.checkers.filter((c) => c.kind === 'dependency').map((c) => c.name);
    this.#m = createModuleMachine(mcfg, this.#now());
    this.#gate = new MaintenanceGate(opts.module.name, opts.module.checkers);
    const env = { CROFT_NODE: opts.node, CROFT_MODULE: opts.module.name, CROFT_CLUSTER: opts.cluster };
    this.#runner = new CheckerRunner(
      runnerCheckers(opts.module.checkers, {
        getModuleState: opts.getModuleState,
        env,
        onScriptOutput: (checker, stream, line) => this.#log.info({ module: this.#cfg.name, checker, stream }, line),
      }),
      (checker, result) => {
        const key = `${checker}:${result.ok ? 'ok' : 'fail'}`;
        this.#counters.probes[key] = (this.#counters.probes[key] ?? 0) + 1;
        this.#last.set(checker, { detail: result.detail, atMs: this.#now() });
        if (this.#gate.on) return this.#suppressed(this.#gate.probe(checker, result.ok, result.detail));
        this.#feed({ type: 'probe', checker, ok: result.ok, detail: result.detail });
      },
    );
  }

  /** Maintenance (maintenance.ts): checker results stop reaching the machine; the application runs on. */
  setMaintenance(on: boolean): void {
    this.#gate.set(on);
  }

  maintenance(): boolean {
    return this.#gate.on;
  }

  #suppressed(v: SuppressedVerdict | null): void {
    if (v === null) return;
    this.#log.warn({ event: 'suppressed', module: v.module, checker: v.checker, healthy: v.healthy, detail: v.detail, wouldDo: v.wouldDo }, suppressedMessage(v));
    this.emit('suppressed', v);
  }

  start(cause = 'command'): void {
    this.#feed({ type: 'command', command: 'start', cause });
  }

  stop(cause = 'command'): void {
    this.#feed({ type: 'command', command: 'stop', cause });
  }

  restart(cause = 'command'): void {
    this.#feed({ type: 'command', command: 'restart', cause });
  }

  /** The driver saw no connection left while draining: stop_both may run now. */
  drained(): void {
    if (this.#m.drainUntilMs !== null) this.#feed({ type: 'drained' });
  }

  /** While a planned stop waits for the application's clients: when it ends at the latest. */
  drainingUntil(): number | null {
    return this.#m.drainUntilMs;
  }

  state(): ModuleState {
    return this.#m.state;
  }

  status(): ModuleStatus {
    const health = checkerHealth(this.#m);
    return {
      module: this.#cfg.name,
      state: this.#m.state,
      sinceMs: this.#m.sinceMs,
      scriptRunning: this.#m.running,
      drainUntilMs: this.#m.drainUntilMs,
      restarts: restartsInWindow(this.#m, this.#now()),
      checkers: checkerStatuses(this.#cfg.checkers, health, this.#last),
    };
  }

  counters(): ModuleCounters {
    return { scriptRuns: { ...this.#counters.scriptRuns }, probes: { ...this.#counters.probes } };
  }

  /**
   * Stops the checkers and accepts no more events. Runs no script: the application keeps running
   * as it is (a daemon restart must not stop it). Waits for a script already running to end
   * (bounded by its timeout) so no child is left unaccounted for.
   */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#drainTimer) clearTimeout(this.#drainTimer);
    await this.#runner.close();
    await this.#script;
  }

  #feed(ev: ModuleEvent): void {
    if (this.#closed) return;
    const { m, actions } = moduleStep(this.#m, ev, this.#now());
    this.#m = m;
    for (const a of actions) this.#act(a);
  }

  #act(a: ModuleAction): void {
    const module = this.#cfg.name;
    switch (a.type) {
      case 'checker_change': {
        const e: CheckerChangeEvent = { module, checker: a.checker, healthy: a.healthy, detail: a.detail };
        this.#log.info({ module, checker: a.checker, healthy: a.healthy, detail: a.detail }, 'checker health changed');
        this.emit('checker_change', e);
        return;
      }
      case 'transition': {
        const e: TransitionEvent = { module, from: a.from, to: a.to, cause: a.cause };
        this.#log.info({ event: 'module_state', module, from: a.from, to: a.to, cause: a.cause }, 'module state change');
        this.emit('transition', e);
        return;
      }
      case 'run_checkers':
        this.#runner.setActive(a.which === 'none' ? [] : a.which === 'dependencies' ? this.#dependencies : this.#cfg.checkers.map((c) => c.name));
        return;
      case 'run_script':
        this.#script = this.#runScript(a.script, a.entering);
        return;
      case 'drain': {
        const ms = Math.max(0, a.untilMs - this.#now());
        this.#log.info({ event: 'module_drain', module, untilMs: a.untilMs, drainMs: ms },
          `${module}: no new client here; the application serves the connections it has for up to ${ms} ms, then stop_both`);
        if (this.#drainTimer) clearTimeout(this.#drainTimer);
        this.#drainTimer = setTimeout(() => { this.#drainTimer = null; this.#feed({ type: 'tick' }); }, ms + 1);
        this.emit('drain', { module, untilMs: a.untilMs });
        return;
      }
    }
  }

  async #runScript(script: ScriptName, entering: ModuleState): Promise<void> {
    const module = this.#cfg.name;
    const path = script === 'start_both' ? this.#cfg.scripts.startBoth : this.#cfg.scripts.stopBoth;
    let result: { ok: boolean; exitCode: number | null; timedOut: boolean; durationMs: number };
    if (path === undefined) {
      // No script configured: nothing to do, which succeeds. Answer asynchronously, as a real
      // script would, so that the machine's step has ended first.
      await Promise.resolve();
      result = { ok: true, exitCode: 0, timedOut: false, durationMs: 0 };
    } else {
      this.#log.info({ module, script, path }, 'script start');
      const r = await runScript({
        path,
        args: [],
        env: scriptEnv({ node: this.#node, module, cluster: this.#cluster, script, entering }),
        timeoutMs: this.#cfg.scripts.timeoutMs,
        killGraceMs: this.#cfg.scripts.killGraceMs,
        onOutput: (stream, line) => this.#log.info({ module, script, stream }, line),
      });
      result = r;
      const how = { module, script, exitCode: r.exitCode, signal: r.signal, durationMs: Math.round(r.durationMs) };
      if (r.ok) this.#log.info(how, 'script ok');
      else if (r.timedOut) this.#log.error({ ...how, code: 'CROFT_ERR_SCRIPT_TIMEOUT' }, `${script} ran past ${this.#cfg.scripts.timeoutMs} ms and was killed`);
      else this.#log.error({ ...how, code: 'CROFT_ERR_SCRIPT_FAILED', error: r.error }, `${script} failed`);
    }
    const outcome: ScriptOutcome = result.ok ? 'ok' : result.timedOut ? 'timeout' : 'fail';
    const key = `${script}:${outcome}`;
    this.#counters.scriptRuns[key] = (this.#counters.scriptRuns[key] ?? 0) + 1;
    const e: ScriptEvent = { module, name: script, result: outcome, durationMs: result.durationMs, exitCode: result.exitCode };
    this.emit('script', e);
    this.#feed({ type: 'script_done', script, ok: result.ok, exitCode: result.exitCode, timedOut: result.timedOut });
  }
}
