// The light-module state machine (STOP, WAIT, UP), pure: events in, actions out, time passed in.
// Farm and mirror extend it later with their own states and actions.
//
// States, in SafeKit's words:
//   STOP  the application is stopped and croft does not want it running; no script, no checker.
//   WAIT  anything between: waiting for dependencies (module checkers, or checkers whose on_failure
//         is `wait`), or a start_both / stop_both in progress (a restart passes through WAIT).
//   UP    start_both succeeded, every dependency is healthy, no script runs; all checkers run.
//
// The machine keeps a goal (`target`: run or stop, set by the last command or by a failure policy)
// and, whenever no script runs, `settle` takes the next step towards it. So a command that arrives
// while a script runs is merged into the goal and acted on when the script ends: the last command
// wins (start then stop = stop; stop then start = start), except that a pending restart request
// survives a later `start` (restart then start = restart) and is dropped by a later `stop`.
import assert from 'node:assert/strict';
import type { FailureAction, ModuleConfig, RestartPolicy } from '../config/types.js';
import type { ModuleAction, ModuleEvent, ModuleState, ScriptName } from './types.js';
import { createHealth, healthStep, resetHealth, type Health, type HealthState } from './health.js';
import { countFailure, pruneRestartWindow, scriptEnded } from './restart-window.js';

export interface MachineCheckerConfig {
  name: string;
  /**
   * `dependency`: gates the start and runs in WAIT too; its failure sends the module to WAIT until
   * it is healthy again (module checkers, and any checker with on_failure `wait`).
   * `app`: runs only in UP; its failure applies onFailure (restart or stop).
   */
  kind: 'dependency' | 'app';
  onFailure: FailureAction;
  rise: number;
  fall: number;
}

export interface ModuleMachineConfig {
  module: string;
  checkers: MachineCheckerConfig[];
  restart: RestartPolicy;
  /** A planned stop of a module that was UP waits this long (or until `drained`) before stop_both. 0: none. */
  drainMs?: number;
}

/** Where the application is, as far as the scripts tell. */
export type AppPhase =
  /** Never started, or stop_both ran since (whatever its exit status: there is nothing more to do). */
  | 'stopped'
  /** start_both succeeded. */
  | 'started'
  /** start_both failed or timed out: it may be half started, so stop_both runs before the next start. */
  | 'dirty';

export interface ModuleMachine {
  readonly cfg: ModuleMachineConfig;
  readonly state: ModuleState;
  /** nowMs of the step that entered `state` (the nowMs given to createModuleMachine at first). */
  readonly sinceMs: number;
  readonly running: ScriptName | null;
  readonly app: AppPhase;
  /** The goal: set by commands, and to 'stop' by on_failure=stop or maxloop. */
  readonly target: 'run' | 'stop';
  /** A restart (stop_both then start_both) is wanted before the module may be UP again. */
  readonly restartWanted: boolean;
  /** Why the machine is doing what it does: the cause of the next transition. */
  readonly cause: string;
  readonly health: Readonly<Record<string, Health>>;
  /** Times of the restarts counted by the policy (failures, not commands), oldest first. */
  readonly restartTimesMs: readonly number[];
  readonly checkersRunning: 'none' | 'dependencies' | 'all';
  /** The next stop_both ends a planned stop (a command) of a serving application: drain first. */
  readonly drainWanted: boolean;
  /** While draining: when stop_both may run at the latest. */
  readonly drainUntilMs: number | null;
}

/** Every state change the machine can make. The simulation checks each transition against it. */
export const TRANSITIONS: readonly (readonly [ModuleState, ModuleState])[] = [
  ['STOP', 'WAIT'], // start or restart command
  ['WAIT', 'UP'], // start_both succeeded with all dependencies healthy
  ['WAIT', 'STOP'], // stopped (stop_both done, or nothing to stop)
  ['UP', 'WAIT'], // leaving UP: a script must run (stop, restart, failure) or a dependency failed
];

export function isTransition(from: ModuleState, to: ModuleState): boolean {
  return TRANSITIONS.some(([f, t]) => f === from && t === to);
}

/** Machine checker settings from a module's configuration. */
export function machineConfigOf(module: ModuleConfig): ModuleMachineConfig {
  return {
    module: module.name,
    checkers: module.checkers.map((c) => ({
      name: c.name,
      kind: c.type === 'module' || c.onFailure === 'wait' ? 'dependency' : 'app',
      onFailure: c.onFailure,
      rise: c.rise,
      fall: c.fall,
    })),
    restart: module.restart,
    drainMs: module.farm?.drainMs ?? 0,
  };
}

export function createModuleMachine(cfg: ModuleMachineConfig, nowMs = 0): ModuleMachine {
  assert.ok(Number.isInteger(cfg.restart.maxloop) && cfg.restart.maxloop >= 0, 'maxloop must be >= 0');
  assert.ok(cfg.restart.windowMs > 0, 'windowMs must be > 0');
  assert.ok((cfg.drainMs ?? 0) >= 0, 'drainMs must be >= 0');
  const health: Record<string, Health> = {};
  for (const c of cfg.checkers) {
    assert.ok(!(c.name in health), `duplicate checker name ${c.name}`);
    // An app checker with on_failure `wait` must keep running in WAIT to see its recovery, which is
    // what a dependency is: machineConfigOf classifies it so.
    assert.ok(!(c.kind === 'app' && c.onFailure === 'wait'), `checker ${c.name}: on_failure wait needs kind dependency`);
    health[c.name] = createHealth(c.rise, c.fall);
  }
  return {
    cfg,
    state: 'STOP',
    sinceMs: nowMs,
    running: null,
    app: 'stopped',
    target: 'stop',
    restartWanted: false,
    cause: 'initial',
    health,
    restartTimesMs: [],
    checkersRunning: 'none',
    drainWanted: false,
    drainUntilMs: null,
  };
}

export function state(m: ModuleMachine): ModuleState {
  return m.state;
}

export function scriptRunning(m: ModuleMachine): ScriptName | null {
  return m.running;
}

export function checkerHealth(m: ModuleMachine): Record<string, HealthState> {
  const out: Record<string, HealthState> = {};
  for (const c of m.cfg.checkers) out[c.name] = m.health[c.name]!.state;
  return out;
}

export function restartsInWindow(m: ModuleMachine, nowMs: number): number {
  return m.restartTimesMs.filter((t) => t > nowMs - m.cfg.restart.windowMs).length;
}

/** True when every dependency checker is healthy (vacuously true without dependencies). */
export function dependenciesHealthy(m: ModuleMachine): boolean {
  return m.cfg.checkers.every((c) => c.kind !== 'dependency' || m.health[c.name]!.state === 'healthy');
}

// ---------------------------------------------------------------------------------------------
// The step

type Draft = { -readonly [K in keyof ModuleMachine]: ModuleMachine[K] } & {
  health: Record<string, Health>;
  restartTimesMs: number[];
};
type EventOf<T extends ModuleEvent['type']> = Extract<ModuleEvent, { type: T }>;
type Handler<T extends ModuleEvent['type']> = (d: Draft, ev: EventOf<T>, nowMs: number, out: ModuleAction[]) => void;
type HandlerTable = { [S in ModuleState]: { [T in ModuleEvent['type']]: Handler<T> } };

/**
 * The transition table: what each event does in each state. Every handler only updates the goal
 * and the facts (health, script results); `settle` then makes the state changes and launches the
 * scripts, so the rules "one script at a time" and "UP only after start_both succeeded" live in
 * one place.
 */
const TABLE: HandlerTable = {
  STOP: {
    command: (d, ev) => {
      if (ev.command === 'stop') return; // already stopped
      // start and restart from STOP are the same. A person starting the module again after a
      // maxloop stop wants a fresh count, or the first failure would stop it again.
      d.target = 'run';
      d.restartTimesMs = [];
      d.cause = `command ${ev.command} (${ev.cause})`;
    },
    script_done: (_d, ev) => assert.fail(`script_done ${ev.script} in STOP: no script runs in STOP`),
    probe: () => {}, // stale result of a checker that was stopped
    tick: pruneWindow,
    drained: () => {}, // late: the drain is over
  },
  WAIT: {
    command: (d, ev) => applyCommand(d, ev),
    script_done: (d, ev, nowMs) => scriptDone(d, ev, nowMs),
    probe: (d, ev, nowMs, out) => probe(d, ev, nowMs, out),
    tick: pruneWindow,
    drained: (d, _ev, nowMs) => {
      if (d.drainUntilMs !== null) d.drainUntilMs = Math.min(d.drainUntilMs, nowMs);
    },
  },
  UP: {
    command: (d, ev) => applyCommand(d, ev),
    script_done: (_d, ev) => assert.fail(`script_done ${ev.script} in UP: no script runs in UP`),
    probe: (d, ev, nowMs, out) => probe(d, ev, nowMs, out),
    tick: pruneWindow,
    drained: () => {}, // late: a start cancelled the drain
  },
};

export function moduleStep(m: ModuleMachine, event: ModuleEvent, nowMs: number): { m: ModuleMachine; actions: ModuleAction[] } {
  const d: Draft = { ...m, health: { ...m.health }, restartTimesMs: [...m.restartTimesMs] };
  const out: ModuleAction[] = [];
  const wasRunning = m.running;
  pruneWindow(d, event, nowMs);
  const handler = TABLE[m.state][event.type] as Handler<typeof event.type>;
  handler(d, event as never, nowMs, out);
  settle(d, nowMs, out);
  checkInvariants(d, out, wasRunning, event);
  return { m: d, actions: out };
}

function pruneWindow(d: Draft, _ev: ModuleEvent, nowMs: number): void {
  pruneRestartWindow(d, nowMs);
}

function applyCommand(d: Draft, ev: EventOf<'command'>): void {
  const cause = `command ${ev.command} (${ev.cause})`;
  // A person stopping (or restarting) a serving application: its clients may finish (drain_ms).
  if (ev.command !== 'start' && d.state === 'UP') d.drainWanted = true;
  switch (ev.command) {
    case 'stop':
      d.target = 'stop';
      d.restartWanted = false;
      d.cause = cause;
      return;
    case 'start':
      if (d.target === 'run') return; // already running or on its way: nothing to change
      d.target = 'run';
      d.restartTimesMs = [];
      d.cause = cause;
      return;
    case 'restart':
      // Not counted by the restart policy: a person asked for it.
      if (d.target === 'stop') d.restartTimesMs = [];
      d.target = 'run';
      d.restartWanted = true;
      d.cause = cause;
      return;
  }
}

function scriptDone(d: Draft, ev: EventOf<'script_done'>, nowMs: number): void {
  const failed = scriptEnded(d, ev, 'stop_both');
  // A start that fails while the goal is still to run counts as a failure of the restart policy;
  // when someone stopped the module meanwhile, it is just cleaned up by stop_both.
  if (failed !== null && d.target === 'run') countFailure(d, nowMs, failed);
}

function probe(d: Draft, ev: EventOf<'probe'>, _nowMs: number, out: ModuleAction[]): void {
  const c = d.cfg.checkers.find((x) => x.name === ev.checker);
  assert.ok(c, `probe of unknown checker ${ev.checker}`);
  // A result of a checker that is not supposed to run (the driver stopped it while it was
  // probing) is stale: ignore it.
  if (d.checkersRunning === 'none' || (d.checkersRunning === 'dependencies' && c.kind !== 'dependency')) return;
  const before = d.health[c.name]!;
  const { h, changed } = healthStep(before, ev.ok);
  d.health[c.name] = h;
  if (!changed) return;
  out.push({ type: 'checker_change', checker: c.name, healthy: h.state === 'healthy', detail: ev.detail });
  if (h.state === 'healthy') {
    if (c.kind === 'dependency' && d.app === 'stopped' && d.target === 'run' && dependenciesHealthy(d)) {
      d.cause = 'dependencies healthy';
    }
    return;
  }
  // Failed.
  if (c.kind === 'dependency') {
    // settle sees the unhealthy dependency and goes to WAIT (stop_both first if the app runs).
    if (d.app !== 'stopped' || d.running !== null) d.cause = `dependency ${c.name} failed: ${ev.detail}`;
    return;
  }
  if (d.state !== 'UP') return; // app checkers only act on a module that is UP
  // A failed application has nothing to drain.
  d.drainWanted = false;
  if (c.onFailure === 'stop') {
    d.target = 'stop';
    d.restartWanted = false;
    d.cause = `checker ${c.name} failed: ${ev.detail}; on_failure stop`;
    return;
  }
  countFailure(d, _nowMs, `checker ${c.name} failed: ${ev.detail}`);
}

/** Take the next step towards the goal when no script runs. */
function settle(d: Draft, nowMs: number, out: ModuleAction[]): void {
  if (d.running !== null) return;
  if (d.app === 'stopped') d.restartWanted = false; // nothing to restart: a start does it
  if (d.target === 'stop') {
    if (d.app !== 'stopped') {
      if (draining(d, nowMs, out)) return;
      return runScript(d, nowMs, out, 'stop_both', 'STOP');
    }
    if (d.state !== 'STOP') enter(d, nowMs, out, 'STOP');
    return;
  }
  const depsOk = dependenciesHealthy(d);
  if (d.app !== 'stopped' && (d.restartWanted || d.app === 'dirty' || !depsOk)) {
    if (draining(d, nowMs, out)) return;
    d.restartWanted = false;
    return runScript(d, nowMs, out, 'stop_both', 'WAIT');
  }
  endDrain(d);
  if (!depsOk || d.app === 'stopped') {
    if (d.state !== 'WAIT') enter(d, nowMs, out, 'WAIT');
    if (depsOk) runScript(d, nowMs, out, 'start_both', 'UP');
    return;
  }
  // started, dependencies healthy, no restart wanted (a start during a drain cancels it)
  if (d.state !== 'UP') enter(d, nowMs, out, 'UP');
}

/**
 * Whether stop_both must wait: a planned stop of an application that served (drainWanted, set by
 * a command in UP) waits in WAIT until drainUntilMs or `drained`. Starts the drain on first call.
 * A failed dependency ends a drain: the application cannot serve without it.
 */
function draining(d: Draft, nowMs: number, out: ModuleAction[]): boolean {
  const drainMs = d.cfg.drainMs ?? 0;
  if (!d.drainWanted || drainMs <= 0 || d.app !== 'started' || !dependenciesHealthy(d)) {
    endDrain(d);
    return false;
  }
  if (d.drainUntilMs === null) {
    d.drainUntilMs = nowMs + drainMs;
    if (d.state === 'UP') enter(d, nowMs, out, 'WAIT');
    out.push({ type: 'drain', untilMs: d.drainUntilMs });
    return true;
  }
  if (nowMs < d.drainUntilMs) return true;
  endDrain(d);
  return false;
}

function endDrain(d: Draft): void {
  d.drainWanted = false;
  d.drainUntilMs = null;
}

function runScript(d: Draft, nowMs: number, out: ModuleAction[], script: ScriptName, entering: ModuleState): void {
  assert.equal(d.running, null, 'one script at a time');
  if (d.state === 'UP' || d.state === 'STOP') enter(d, nowMs, out, 'WAIT'); // scripts run in WAIT
  d.running = script;
  out.push({ type: 'run_script', script, entering });
}

function enter(d: Draft, nowMs: number, out: ModuleAction[], to: ModuleState): void {
  const from = d.state;
  assert.ok(isTransition(from, to), `no transition ${from} -> ${to}`);
  d.state = to;
  d.sinceMs = nowMs;
  out.push({ type: 'transition', from, to, cause: d.cause });
  // Checkers that stop running forget what they saw, so that a stale failure never acts later.
  const which = to === 'STOP' ? 'none' : to === 'WAIT' ? 'dependencies' : 'all';
  for (const c of d.cfg.checkers) {
    const keeps = which === 'all' || (which === 'dependencies' && c.kind === 'dependency');
    if (!keeps || (to === 'UP' && c.kind === 'app')) d.health[c.name] = resetHealth(d.health[c.name]!);
  }
  d.checkersRunning = which;
  out.push({ type: 'run_checkers', which });
}

function checkInvariants(d: Draft, out: ModuleAction[], wasRunning: ScriptName | null, ev: ModuleEvent): void {
  const scripts = out.filter((a) => a.type === 'run_script');
  assert.ok(scripts.length <= 1, 'at most one script launched per step');
  if (scripts.length === 1) {
    assert.ok(wasRunning === null || ev.type === 'script_done', 'one script at a time: a script was still running');
  }
  if (d.state === 'UP') {
    assert.equal(d.running, null, 'no script runs in UP');
    assert.equal(d.app, 'started', 'UP only after start_both succeeded');
    assert.ok(dependenciesHealthy(d), 'UP only with healthy dependencies');
  }
  if (d.drainUntilMs !== null) {
    assert.equal(d.state, 'WAIT', 'a drain waits in WAIT');
    assert.equal(d.running, null, 'no script runs during a drain');
    assert.equal(d.app, 'started', 'only a started application drains');
  }
  if (d.state === 'STOP') {
    assert.equal(d.running, null, 'no script runs in STOP');
    assert.equal(d.app, 'stopped', 'STOP only with the application stopped');
  }
  assert.ok(d.restartTimesMs.length <= d.cfg.restart.maxloop, 'restarts in window <= maxloop');
  const last = out[out.length - 1];
  if (scripts.length === 1) assert.equal(last?.type, 'run_script', 'run_script comes last');
}
