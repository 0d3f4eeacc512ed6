// Checker health from raw probe results, with rise/fall hysteresis (keepalived's and HAProxy's
// `rise`/`fall`): `rise` consecutive successes make a checker healthy, `fall` consecutive failures
// make it failed. Until either happens its health is unknown, so a freshly started checker never
// triggers an action on its first probe alone (unless rise or fall is 1). Pure: no I/O, no clock.
import assert from 'node:assert/strict';

export type HealthState = 'unknown' | 'healthy' | 'failed';

export interface Health {
  readonly rise: number;
  readonly fall: number;
  readonly state: HealthState;
  /** Consecutive successes (0 after a failure). */
  readonly okRun: number;
  /** Consecutive failures (0 after a success). */
  readonly failRun: number;
}

export function createHealth(rise: number, fall: number): Health {
  assert.ok(Number.isInteger(rise) && rise >= 1, `rise must be an integer >= 1, got ${rise}`);
  assert.ok(Number.isInteger(fall) && fall >= 1, `fall must be an integer >= 1, got ${fall}`);
  return { rise, fall, state: 'unknown', okRun: 0, failRun: 0 };
}

/** Feed one probe result. `changed` is true when the health state differs from before. */
export function healthStep(h: Health, ok: boolean): { h: Health; changed: boolean } {
  // Runs are capped at rise/fall so they stay bounded however long a checker runs.
  const okRun = ok ? Math.min(h.okRun + 1, h.rise) : 0;
  const failRun = ok ? 0 : Math.min(h.failRun + 1, h.fall);
  let state = h.state;
  if (ok && okRun >= h.rise) state = 'healthy';
  if (!ok && failRun >= h.fall) state = 'failed';
  const next: Health = { rise: h.rise, fall: h.fall, state, okRun, failRun };
  return { h: next, changed: state !== h.state };
}

/** The same thresholds, back to unknown (a checker that stops running forgets what it saw). */
export function resetHealth(h: Health): Health {
  return createHealth(h.rise, h.fall);
}
