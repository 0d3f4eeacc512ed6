// Contract of the module runtime: the pure state machine (machine.ts), checker health (health.ts),
// and the drivers that run scripts (src/module/scripts.ts) and checkers (src/module/checkers/*).

/** Module states, in SafeKit's words. Mirror adds ALONE, PRIM, SECOND later. */
export type ModuleState = 'STOP' | 'WAIT' | 'UP';

export type ScriptName = 'start_both' | 'stop_both';

export type ModuleEvent =
  /** A person or the API asked for it. */
  | { type: 'command'; command: 'start' | 'stop' | 'restart'; cause: string }
  /** A script that the machine asked for ended (timedOut implies !ok). */
  | { type: 'script_done'; script: ScriptName; ok: boolean; exitCode: number | null; timedOut: boolean }
  /** One probe result of a checker (raw; health.ts turns results into healthy/failed with rise/fall). */
  | { type: 'probe'; checker: string; ok: boolean; detail: string }
  /** Time passed (restart window accounting, the end of a drain). */
  | { type: 'tick' }
  /** While draining: no connection is left to this node (the driver counted them), stop_both may run now. */
  | { type: 'drained' };

/**
 * What the driver must do, in the order given. Within one step the machine emits, in this order:
 * 1. `checker_change` for a health change the event caused (facts first, for logs);
 * 2. `transition`, each followed by its `run_checkers` (the checker set follows the state);
 * 3. at most one `run_script`, last, so that logs and checkers already reflect the new state when
 *    the script starts (a start_both is never launched before the module left STOP in the logs).
 */
export type ModuleAction =
  /**
   * Launch this script now. At most one per step, and only when no script is running (the machine
   * waits for its `script_done`). `entering` is the state the script leads to (CROFT_STATE):
   * UP for start_both; STOP or WAIT for stop_both.
   */
  | { type: 'run_script'; script: ScriptName; entering: ModuleState }
  /** Which checkers the driver must run now: none (STOP), only `module` checkers (WAIT), or all (UP). */
  | { type: 'run_checkers'; which: 'none' | 'dependencies' | 'all' }
  /** One event per state change, logged with node, module, from, to and cause. */
  | { type: 'transition'; from: ModuleState; to: ModuleState; cause: string }
  /** A checker's health changed (for logs and metrics). */
  | { type: 'checker_change'; checker: string; healthy: boolean; detail: string }
  /**
   * A planned stop (command stop or restart) of a module that was UP, with drain_ms: the module
   * left UP (it takes no new client: a farm's buckets go to the other nodes, /health answers 503)
   * and its application keeps serving the connections it has until `untilMs`, or until the driver
   * feeds `drained`; then stop_both runs. The driver feeds a `tick` at untilMs.
   */
  | { type: 'drain'; untilMs: number };

/** The subset of pino's logger that the module runtime uses (pino's Logger satisfies it). */
export interface ModuleLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface CheckerStatus {
  name: string;
  type: string;
  health: 'unknown' | 'healthy' | 'failed';
  /** Detail of the last probe ('' before the first one). */
  lastDetail: string;
  /** When the last probe ended (epoch ms, the runtime's clock), null before the first one. */
  lastProbeMs: number | null;
}

export interface ModuleStatus {
  module: string;
  state: ModuleState;
  /** When the module entered its current state (epoch ms). */
  sinceMs: number;
  scriptRunning: ScriptName | null;
  /** While a planned stop lets the application's clients finish (farm drain_ms): when it ends at the latest (epoch ms). */
  drainUntilMs: number | null;
  /** Restarts counted by the restart policy within its window. */
  restarts: number;
  checkers: CheckerStatus[];
}

/** The status of each configured checker, from the machine's health and the last probe of each. */
export function checkerStatuses(checkers: readonly { name: string; type: string }[], health: Readonly<Record<string, 'unknown' | 'healthy' | 'failed' | undefined>>,
  last: ReadonlyMap<string, { detail: string; atMs: number }>): CheckerStatus[] {
  return checkers.map((c) => ({
    name: c.name,
    type: c.type,
    health: health[c.name] ?? 'unknown',
    lastDetail: last.get(c.name)?.detail ?? '',
    lastProbeMs: last.get(c.name)?.atMs ?? null,
  }));
}
