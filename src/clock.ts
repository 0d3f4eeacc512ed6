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
