// Time as the runtimes see it: a parameter, so the daemon gives them the machine's clock and the
// simulators one that moves only when told. Timers are opaque handles.

export interface Clock {
  /** Milliseconds: since the epoch (systemClock) or since an arbitrary start (monotonicClock). */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(t: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(t: unknown): void;
}

const timers = {
  setTimeout: (fn: () => void, ms: number): unknown => setTimeout(fn, ms),
  clearTimeout: (t: unknown) => clearTimeout(t as NodeJS.Timeout),
  setInterval: (fn: () => void, ms: number): unknown => setInterval(fn, ms),
  clearInterval: (t: unknown) => clearInterval(t as NodeJS.Timeout),
};

/** The wall clock (epoch ms): for times shown to people and kept across restarts. */
export const systemClock: Clock = { now: () => Date.now(), ...timers };

/** A clock that never steps back (performance.now): for durations and deadlines only. */
export const monotonicClock: Clock = { now: () => performance.now(), ...timers };

const noop = (): void => {};

/**
 * Clears a timer whose deadline is usually not reached (a probe's timeout) without an idle wake at
 * that deadline. Node keeps one libuv timer for all of its timers and re-arms it lazily: a timer
 * cleared outside a timer callback still wakes the thread at its deadline, for nothing, and a wake
 * of an idle Node thread costs about a millisecond of CPU (cold caches; bench/farm/REPORT.md,
 * idle). A zero timer set now, while the thread is awake, runs node's timer list a millisecond
 * later, which re-arms libuv for the next real deadline.
 */
export function clearTimeoutNow(t: NodeJS.Timeout | undefined): void {
  if (t === undefined) return;
  clearTimeout(t);
  setTimeout(noop, 0);
}
