// verify_every (mirror/verify-schedule.ts) with a manual clock: runs once per period on a node that
// can verify, lets its turn pass on one that cannot, records the last outcome of scheduled and
// on-demand verifies, reports differences, never runs two at once.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import type { Clock } from '../../mirror/effects.js';
import type { VerifyResult } from '../../mirror/driver-dataplane.js';
import { VerifySchedule, type VerifyOutcome } from '../../mirror/verify-schedule.js';

class ManualClock implements Clock {
  t = 0;
  readonly #intervals = new Map<number, { fn: () => void; every: number; next: number }>();
  #id = 0;
  now(): number { return this.t; }
  setTimeout(): unknown { throw new Error('not used'); }
  clearTimeout(): void {}
  setInterval(fn: () => void, ms: number): unknown {
    this.#id++;
    this.#intervals.set(this.#id, { fn, every: ms, next: this.t + ms });
    return this.#id;
  }
  clearInterval(id: unknown): void { this.#intervals.delete(id as number); }
  get timers(): number { return this.#intervals.size; }
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      const due = [...this.#intervals.values()].filter((i) => i.next <= end).sort((a, b) => a.next - b.next)[0];
      if (!due) break;
      this.t = due.next;
      due.next += due.every;
      due.fn();
      await new Promise((r) => setImmediate(r));
    }
    this.t = end;
  }
}

const result = (differences: number): VerifyResult => ({
  identical: differences === 0, entriesCompared: 10, bytesCompared: 1000,
  differences: Array.from({ length: differences }, (_, i) => ({ path: `/srv/f${i}`, what: 'content differs' })),
});

test('runs every period while it can verify, lets its turn pass otherwise, reports differences', async () => {
  const clock = new ManualClock();
  let canVerify = true;
  let runs = 0;
  let next = result(0);
  const diverged: VerifyOutcome[] = [];
  const s = new VerifySchedule(6 * 3_600_000, clock, () => {
    if (!canVerify) return null;
    runs++;
    return Promise.resolve(next);
  }, (o) => diverged.push(o));
  s.start();
  await clock.advance(6 * 3_600_000 - 60_000);
  assert.equal(runs, 0, 'not before the period');
  await clock.advance(60_000);
  assert.equal(runs, 1);
  assert.equal(s.last?.identical, true);
  assert.equal(s.last?.scheduled, true);
  assert.deepEqual(s.counters, { identical: 1, diverged: 0, failed: 0 });
  canVerify = false;
  await clock.advance(6 * 3_600_000);
  assert.equal(runs, 1, 'not PRIM: its turn passes');
  canVerify = true;
  next = result(3);
  await clock.advance(6 * 3_600_000);
  assert.equal(runs, 2);
  assert.equal(s.last?.identical, false);
  assert.equal(s.last?.differences, 3);
  assert.equal(diverged.length, 1);
  assert.deepEqual(s.counters, { identical: 1, diverged: 1, failed: 0 });
  s.stop();
  assert.equal(clock.timers, 0);
});

test('a period of 90 days ticks at most every minute (Node timers cannot wait longer than 24.8 days)', async () => {
  const clock = new ManualClock();
  let runs = 0;
  const s = new VerifySchedule(90 * 86_400_000, clock, () => { runs++; return Promise.resolve(result(0)); }, () => {});
  s.start();
  await clock.advance(89 * 86_400_000);
  assert.equal(runs, 0);
  await clock.advance(86_400_000);
  assert.equal(runs, 1);
  s.stop();
});

test('an on-demand verify is recorded too, a failed one counted; none scheduled without verify_every', async () => {
  const clock = new ManualClock();
  let runs = 0;
  const s = new VerifySchedule(null, clock, () => { runs++; return Promise.resolve(result(0)); }, () => {});
  s.start();
  assert.equal(clock.timers, 0);
  await clock.advance(365 * 86_400_000);
  assert.equal(runs, 0);
  await s.record(Promise.resolve(result(0)), false);
  assert.equal(s.last?.scheduled, false);
  await assert.rejects(s.record(Promise.reject(new Error('peer unreachable')), false), /peer unreachable/);
  assert.equal(s.last?.identical, null);
  assert.equal(s.last?.error, 'peer unreachable');
  assert.deepEqual(s.counters, { identical: 1, diverged: 0, failed: 1 });
});

test('a slow verify is never doubled by the next tick', async () => {
  const clock = new ManualClock();
  let runs = 0;
  let finish: (r: VerifyResult) => void = () => {};
  const s = new VerifySchedule(5_000, clock, () => { runs++; return new Promise<VerifyResult>((r) => { finish = r; }); }, () => {});
  s.start();
  await clock.advance(5_000);
  assert.equal(runs, 1);
  await clock.advance(60_000);
  assert.equal(runs, 1, 'still running: no second one');
  finish(result(0));
  await new Promise((r) => setImmediate(r));
  await clock.advance(5_000);
  assert.equal(runs, 2);
  s.stop();
});
