// Maintenance of a module on this node (`croft maintenance on`): its checkers keep probing, but their
// results no longer reach the state machine, so no failure restarts, stops or fails over the
// application while an administrator works on it by hand. What the checkers would have decided is
// followed here with the same rise/fall hysteresis (health.ts) and reported as suppressed: the log
// and the notifications say "checker db failed: on_failure restart suppressed (maintenance)".
// Shared by the light/farm runtime (runtime.ts) and the mirror's (mirror/runtime.ts).
import type { CheckerConfig } from '../config/types.js';
import { createHealth, healthStep, type Health } from './health.js';

/** What a suppressed verdict would have been: the checker's health change, and its action. */
export interface SuppressedVerdict {
  module: string;
  checker: string;
  healthy: boolean;
  detail: string;
  /** What on_failure would have done (`restart`, `stop`, `wait`), or null for a recovery. */
  wouldDo: string | null;
}

export class MaintenanceGate {
  #on = false;
  readonly #shadow = new Map<string, Health>();
  constructor(private readonly module: string, private readonly checkers: readonly CheckerConfig[]) {}

  get on(): boolean {
    return this.#on;
  }

  /** On or off; either way the shadow health starts afresh (unknown until rise or fall probes). */
  set(on: boolean): void {
    this.#on = on;
    this.#shadow.clear();
  }

  /**
   * A probe result while in maintenance: returns the verdict that the machine would have acted on
   * when the shadow health changes, else null. Never called outside maintenance.
   */
  probe(checker: string, ok: boolean, detail: string): SuppressedVerdict | null {
    const c = this.checkers.find((x) => x.name === checker);
    if (!c) return null;
    const before = this.#shadow.get(checker) ?? createHealth(c.rise, c.fall);
    const { h, changed } = healthStep(before, ok);
    this.#shadow.set(checker, h);
    if (!changed || h.state === 'unknown') return null;
    const healthy = h.state === 'healthy';
    return { module: this.module, checker, healthy, detail, wouldDo: healthy ? null : c.onFailure };
  }
}

/** The log line of a suppressed verdict. */
export function suppressedMessage(v: SuppressedVerdict): string {
  return v.healthy
    ? `checker ${v.checker} healthy again (maintenance: nothing to do)`
    : `checker ${v.checker} failed: ${v.detail}; on_failure ${v.wouldDo ?? '?'} suppressed (maintenance)`;
}
