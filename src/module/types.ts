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
  /** Time passed (restart window accounting). */
  | { type: 'tick' };

export type ModuleAction =
  | { type: 'run_script'; script: ScriptName }
  /** Which checkers the driver must run now: none (STOP), only `module` checkers (WAIT), or all (UP). */
  | { type: 'run_checkers'; which: 'none' | 'dependencies' | 'all' }
  /** One event per state change, logged with node, module, from, to and cause. */
  | { type: 'transition'; from: ModuleState; to: ModuleState; cause: string }
  /** A checker's health changed (for logs and metrics). */
  | { type: 'checker_change'; checker: string; healthy: boolean; detail: string };
