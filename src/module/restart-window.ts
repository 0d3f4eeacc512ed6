// The restart policy (at most maxloop restarts within windowMs; one more failure stops the module:
// SafeKit's maxloop) and what a finished start/stop script means for the application, pure, shared by the module machine (src/module/machine.ts) and the mirror
// machine (mirror/machine.ts). Only failures count (a failed start script, a failed app checker),
// never commands; a person starting the module again after a maxloop stop empties the window.
import assert from 'node:assert/strict';
import type { RestartPolicy } from '../config/types.js';

/** The part of a machine's step draft the policy reads and writes. */
export interface RestartWindowDraft {
  readonly cfg: { readonly restart: RestartPolicy };
  /** The goal: 'stop' once maxloop is reached. */
  target: 'run' | 'stop';
  /** A restart (stop script, then start script) is wanted. */
  restartWanted: boolean;
  cause: string;
  /** Times of the counted restarts, oldest first. */
  restartTimesMs: number[];
}

/** Forgets the restarts that left the window (at or before nowMs - windowMs). */
export function pruneRestartWindow(d: RestartWindowDraft, nowMs: number): void {
  const from = nowMs - d.cfg.restart.windowMs;
  if (d.restartTimesMs.length > 0 && d.restartTimesMs[0]! <= from) d.restartTimesMs = d.restartTimesMs.filter((t) => t > from);
}

/** A failure under the restart policy: restart, unless maxloop restarts were made in the window (then stop). */
export function countFailure(d: RestartWindowDraft, nowMs: number, what: string): void {
  const { maxloop, windowMs } = d.cfg.restart;
  if (d.restartTimesMs.length >= maxloop) {
    d.target = 'stop';
    d.restartWanted = false;
    d.cause = `${what}: maxloop reached (${d.restartTimesMs.length} restarts in ${windowMs} ms), stopping`;
    return;
  }
  d.restartTimesMs.push(nowMs);
  d.restartWanted = true;
  d.cause = `${what}: restart ${d.restartTimesMs.length}/${maxloop}`;
}

/** The part of a step draft that a finished script changes. */
export interface ScriptDraft<S extends string> {
  /** The script running (one at a time). */
  running: S | null;
  /** stopped: never started or stopped since; started: its start script succeeded; dirty: it failed. */
  app: 'stopped' | 'started' | 'dirty';
  cause: string;
}

/**
 * A start or stop script ended: the application's phase follows. A stop script leaves it stopped
 * whatever its status (nothing more can be done; a failure is noted in the cause). Returns what
 * failed when the start script did (for countFailure, if the machine counts it), else null.
 */
export function scriptEnded<S extends string>(
  d: ScriptDraft<S>,
  ev: { script: S; ok: boolean; exitCode: number | null; timedOut: boolean },
  stopScript: S,
): string | null {
  assert.equal(ev.script, d.running, `script_done ${ev.script} while ${d.running ?? 'no script'} runs`);
  assert.ok(!(ev.timedOut && ev.ok), 'a script that timed out cannot be ok');
  d.running = null;
  const how = ev.timedOut ? 'timed out' : `exit ${ev.exitCode ?? 'by signal'}`;
  if (ev.script === stopScript) {
    d.app = 'stopped';
    if (!ev.ok) d.cause = `${d.cause}; ${stopScript} failed (${how})`;
    return null;
  }
  d.app = ev.ok ? 'started' : 'dirty';
  return ev.ok ? null : `${ev.script} failed (${how})`;
}
