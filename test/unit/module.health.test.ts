import { test } from 'vitest';
import assert from 'node:assert/strict';
import { createHealth, healthStep, resetHealth, type Health } from '../../src/module/health.js';

function feed(h: Health, oks: boolean[]): { states: string[]; changes: boolean[]; h: Health } {
  const states: string[] = [];
  const changes: boolean[] = [];
  for (const ok of oks) {
    const r = healthStep(h, ok);
    h = r.h;
    states.push(h.state);
    changes.push(r.changed);
  }
  return { states, changes, h };
}

test('health starts unknown', () => {
  assert.equal(createHealth(2, 3).state, 'unknown');
});

test('rise consecutive successes make it healthy, and only the crossing is a change', () => {
  const r = feed(createHealth(2, 3), [true, true, true]);
  assert.deepEqual(r.states, ['unknown', 'healthy', 'healthy']);
  assert.deepEqual(r.changes, [false, true, false]);
});

test('fall consecutive failures make it failed; a success in between resets the count', () => {
  const start = feed(createHealth(1, 3), [true]).h;
  const r = feed(start, [false, false, true, false, false, false]);
  assert.deepEqual(r.states, ['healthy', 'healthy', 'healthy', 'healthy', 'healthy', 'failed']);
  assert.deepEqual(r.changes, [false, false, false, false, false, true]);
});

test('failed needs rise successes to become healthy again', () => {
  const failed = feed(createHealth(2, 1), [false]).h;
  assert.equal(failed.state, 'failed');
  const r = feed(failed, [true, false, true, true]);
  assert.deepEqual(r.states, ['failed', 'failed', 'failed', 'healthy']);
});

test('unknown goes straight to failed after fall failures', () => {
  const r = feed(createHealth(2, 2), [false, false]);
  assert.deepEqual(r.states, ['unknown', 'failed']);
  assert.deepEqual(r.changes, [false, true]);
});

test('runs stay bounded and reset forgets', () => {
  const r = feed(createHealth(2, 2), Array(1000).fill(true));
  assert.equal(r.h.okRun, 2);
  const z = resetHealth(r.h);
  assert.equal(z.state, 'unknown');
  assert.equal(z.rise, 2);
  assert.equal(z.fall, 2);
});

test('rise and fall below 1 are programmer errors', () => {
  assert.throws(() => createHealth(0, 1));
  assert.throws(() => createHealth(1, 0));
});
