// One sink's queue: events wait here and are delivered one at a time, in order (so a receiver sees
// every module's events in the order they happened), each retried with a doubling backoff. The
// queue is bounded: when full, the oldest waiting event is dropped, counted and logged, so a
// receiver that is down for days costs at most `max` events of memory. Pushing never waits: the
// state machines that publish events never wait on a slow receiver.
import type { Logger } from '../../src/log/logger.js';
import type { NotifyEvent } from './event.js';

export interface RetryPolicy {
  /** Attempts after the first. */
  retries: number;
  backoffMs: number;
  maxBackoffMs: number;
}

export interface SinkCounters {
  sent: number;
  /** Events given up on after every attempt failed (or refused at once: the exec hook's perms). */
  failed: number;
  /** Events dropped unsent because the queue was full. */
  dropped: number;
  /** Waiting now (the one being delivered included). */
  queued: number;
}

/** Delivers one event; throws (with a message for the log) when it did not arrive. */
export type Deliver = (e: NotifyEvent) => Promise<void>;

/** A drop is logged at once, then at most once every DROP_LOG_MS with the count since. */
const DROP_LOG_MS = 10_000;

export class SinkQueue {
  readonly #items: NotifyEvent[] = [];
  #busy = false;
  #closed = false;
  #inFlight: Promise<void> = Promise.resolve();
  #wake: (() => void) | null = null;
  #timer: NodeJS.Timeout | null = null;
  #dropsUnlogged = 0;
  #lastDropLogMs = -Infinity;
  readonly counters: Omit<SinkCounters, 'queued'> = { sent: 0, failed: 0, dropped: 0 };

  constructor(
    readonly name: string,
    private readonly deliver: Deliver,
    private readonly max: number,
    private readonly retry: RetryPolicy,
    private readonly log?: Logger,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get queued(): number {
    return this.#items.length + (this.#busy ? 1 : 0);
  }

  push(e: NotifyEvent): void {
    if (this.#closed) return;
    while (this.#items.length >= this.max) {
      const old = this.#items.shift()!;
      this.counters.dropped++;
      this.#dropsUnlogged++;
      this.#logDrops(old);
    }
    this.#items.push(e);
    if (!this.#busy) this.#inFlight = this.#run();
  }

  #logDrops(oldest: NotifyEvent): void {
    const t = this.now();
    if (t - this.#lastDropLogMs < DROP_LOG_MS) return;
    this.#lastDropLogMs = t;
    this.log?.warn({ event: 'notify_dropped', sink: this.name, dropped: this.#dropsUnlogged, total: this.counters.dropped, sequence: oldest.sequence },
      `notify ${this.name}: queue full (${this.max} events), ${this.#dropsUnlogged} oldest event(s) dropped unsent (latest dropped: sequence ${oldest.sequence}); is the receiver down or too slow?`);
    this.#dropsUnlogged = 0;
  }

  async #run(): Promise<void> {
    this.#busy = true;
    try {
      while (!this.#closed && this.#items.length > 0) {
        const e = this.#items.shift()!;
        await this.#attempts(e);
      }
    } finally {
      this.#busy = false;
    }
  }

  async #attempts(e: NotifyEvent): Promise<void> {
    let wait = this.retry.backoffMs;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.deliver(e);
        this.counters.sent++;
        return;
      } catch (err) {
        const last = attempt >= this.retry.retries || this.#closed;
        if (last) {
          this.counters.failed++;
          this.log?.error({ event: 'notify_failed', sink: this.name, sequence: e.sequence, kind: e.kind, module: e.module, attempts: attempt + 1, err: (err as Error).message },
            `notify ${this.name}: event ${e.sequence} (${e.kind}) not delivered after ${attempt + 1} attempt(s): ${(err as Error).message}`);
          return;
        }
        this.log?.warn({ event: 'notify_retry', sink: this.name, sequence: e.sequence, attempt: attempt + 1, inMs: wait, err: (err as Error).message },
          `notify ${this.name}: event ${e.sequence} failed (${(err as Error).message}); retry in ${wait} ms`);
        await this.#sleep(wait);
        wait = Math.min(this.retry.maxBackoffMs, wait * 2);
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#wake = null;
        resolve();
      }, ms);
    });
  }

  /**
   * No more pushes; waits up to `graceMs` for the queue to drain (a daemon stop lets the last
   * events out), then ends retries. Events still waiting are counted as dropped.
   */
  async close(graceMs: number): Promise<void> {
    const drained = this.#inFlight;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([drained, new Promise<void>((r) => { timer = setTimeout(r, graceMs); })]);
    clearTimeout(timer);
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#wake?.();
    this.counters.dropped += this.#items.length;
    this.#items.length = 0;
    await drained;
  }
}
