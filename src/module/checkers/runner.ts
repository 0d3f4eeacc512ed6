// Driver: runs the probes of the active checkers, each every intervalMs, each with its timeoutMs,
// and reports every result. A checker never overlaps itself: its next probe starts only once the
// previous one has really ended (a probe that ignores its abort delays the next one rather than
// piling up sockets or processes). Results of a checker that was deactivated meanwhile are dropped.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { clearTimeoutNow } from '../../clock.js';
import type { Probe, ProbeResult } from './probe.js';
import { reasonOf } from './probe.js';

export interface RunnerChecker {
  name: string;
  intervalMs: number;
  timeoutMs: number;
  probe: Probe;
}

export type ProbeListener = (checker: string, result: ProbeResult, durationMs: number) => void;

interface Slot {
  c: RunnerChecker;
  /** Bumped at every (de)activation: a probe started under another generation is not reported. */
  generation: number;
  active: boolean;
  timer: NodeJS.Timeout | null;
  inflight: Promise<void> | null;
  abort: AbortController | null;
}

export class CheckerRunner {
  readonly #slots = new Map<string, Slot>();
  readonly #onResult: ProbeListener;
  #closed = false;

  constructor(checkers: RunnerChecker[], onResult: ProbeListener) {
    for (const c of checkers) {
      assert.ok(!this.#slots.has(c.name), `duplicate checker ${c.name}`);
      assert.ok(c.intervalMs > 0 && c.timeoutMs > 0, `checker ${c.name}: intervalMs and timeoutMs must be > 0`);
      this.#slots.set(c.name, { c, generation: 0, active: false, timer: null, inflight: null, abort: null });
    }
    this.#onResult = onResult;
  }

  /** Run exactly these checkers from now on (the first probe of a newly active one starts at once). */
  setActive(names: Iterable<string>): void {
    assert.ok(!this.#closed, 'CheckerRunner is closed');
    const want = new Set(names);
    for (const n of want) assert.ok(this.#slots.has(n), `unknown checker ${n}`);
    for (const s of this.#slots.values()) {
      if (want.has(s.c.name) && !s.active) {
        s.active = true;
        s.generation++;
        this.#schedule(s, 0);
      } else if (!want.has(s.c.name) && s.active) {
        this.#deactivate(s);
      }
    }
  }

  active(): string[] {
    return [...this.#slots.values()].filter((s) => s.active).map((s) => s.c.name);
  }

  /** Stop every checker; resolves when no probe is running any more. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const s of this.#slots.values()) if (s.active) this.#deactivate(s);
    await Promise.all([...this.#slots.values()].map((s) => s.inflight));
  }

  #deactivate(s: Slot): void {
    s.active = false;
    s.generation++;
    if (s.timer) clearTimeout(s.timer);
    s.timer = null;
    s.abort?.abort();
  }

  #schedule(s: Slot, delayMs: number): void {
    if (s.timer || s.inflight) return; // the running probe schedules the next one when it ends
    s.timer = setTimeout(() => {
      s.timer = null;
      this.#runOnce(s);
    }, delayMs);
  }

  #runOnce(s: Slot): void {
    const generation = s.generation;
    const ac = new AbortController();
    s.abort = ac;
    const startedMs = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<ProbeResult>((resolve) => {
      timer = setTimeout(() => {
        ac.abort(new Error('timeout'));
        resolve({ ok: false, detail: `timeout after ${s.c.timeoutMs} ms` });
      }, s.c.timeoutMs);
    });
    const probing = s.c.probe(ac.signal).catch((err: unknown): ProbeResult => ({ ok: false, detail: `probe error: ${reasonOf(err)}` }));
    s.inflight = (async () => {
      const result = await Promise.race([probing, timedOut]);
      clearTimeoutNow(timer); // mostly long before its deadline: no idle wake at that deadline
      const durationMs = performance.now() - startedMs;
      if (s.generation === generation && s.active) this.#onResult(s.c.name, result, durationMs);
      await probing; // never overlap: the next probe waits for this one to really end
      s.inflight = null;
      s.abort = null;
      if (s.generation === generation && s.active) {
        this.#schedule(s, Math.max(0, s.c.intervalMs - (performance.now() - startedMs)));
      } else if (s.active) {
        this.#schedule(s, 0); // reactivated while this probe ran
      }
    })();
  }
}
