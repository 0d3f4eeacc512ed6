// Verify on a schedule (`verify_every`) and the last verify's result (status, metrics), whether it
// ran on schedule or on demand (`croft mirror verify`). Only a PRIM with an in-sync SECOND can
// verify: a node in another state lets its turn pass (its peer, if PRIM, runs its own schedule).
// The timer ticks at most every minute and compares elapsed time: Node's timers cannot wait
// longer than 24.8 days, and verify_every may be up to 90 days.
import type { Clock } from './effects.js';
import type { VerifyResult } from './driver-dataplane.js';

export interface VerifyOutcome {
  /** Wall clock (epoch ms) when it finished. */
  atMs: number;
  scheduled: boolean;
  /** null when it could not run to the end (`error` says why). */
  identical: boolean | null;
  differences: number;
  entriesCompared: number;
  bytesCompared: number;
  durationMs: number;
  error: string | null;
}

export interface VerifyCounters {
  identical: number;
  diverged: number;
  failed: number;
}

const TICK_MAX_MS = 60_000;

export class VerifySchedule {
  last: VerifyOutcome | null = null;
  readonly counters: VerifyCounters = { identical: 0, diverged: 0, failed: 0 };
  #timer: unknown = null;
  #running = false;
  #lastRunMs: number;

  /**
   * `run`: the verify, or null when this node cannot verify now (not PRIM, or not in sync).
   * `onDiverged`: a scheduled or manual verify found differences.
   */
  constructor(private readonly everyMs: number | null, private readonly clock: Clock,
    private readonly run: () => Promise<VerifyResult> | null, private readonly onDiverged: (o: VerifyOutcome) => void) {
    this.#lastRunMs = clock.now();
  }

  start(): void {
    if (this.everyMs === null || this.#timer !== null) return;
    this.#timer = this.clock.setInterval(() => void this.#tick(), Math.min(this.everyMs, TICK_MAX_MS));
  }

  stop(): void {
    if (this.#timer !== null) this.clock.clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Runs `verify` and records its outcome (a manual verify goes through here too). */
  async record(verify: Promise<VerifyResult>, scheduled: boolean): Promise<VerifyResult> {
    const t0 = this.clock.now();
    this.#running = true;
    try {
      const r = await verify;
      const o: VerifyOutcome = {
        atMs: Date.now(), scheduled, identical: r.identical, differences: r.differences.length,
        entriesCompared: r.entriesCompared, bytesCompared: r.bytesCompared, durationMs: this.clock.now() - t0, error: null,
      };
      this.last = o;
      if (r.identical) this.counters.identical++;
      else {
        this.counters.diverged++;
        this.onDiverged(o);
      }
      return r;
    } catch (e) {
      this.counters.failed++;
      this.last = { atMs: Date.now(), scheduled, identical: null, differences: 0, entriesCompared: 0, bytesCompared: 0,
        durationMs: this.clock.now() - t0, error: (e as Error).message };
      throw e;
    } finally {
      this.#running = false;
      this.#lastRunMs = this.clock.now();
    }
  }

  async #tick(): Promise<void> {
    if (this.everyMs === null || this.#running || this.clock.now() - this.#lastRunMs < this.everyMs) return;
    const v = this.run();
    if (v === null) {
      this.#lastRunMs = this.clock.now(); // not this node's turn: the next period
      return;
    }
    try {
      await this.record(v, true);
    } catch {
      // recorded (last.error, counters.failed)
    }
  }
}
