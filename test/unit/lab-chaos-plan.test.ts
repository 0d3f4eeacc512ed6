// The pure part of `croft lab chaos` (top/lab/chaos-plan.ts): a seed gives one schedule, every kind
// within each block of rounds, bad --faults refused by name, the per-kind report.
import assert from 'node:assert/strict';
import { describe, test } from 'vitest';
import { CroftError } from '../../src/errors.js';
import { FAULT_KINDS, parseFaults, reportLines, Rng, schedule, type RoundRecord } from '../../top/lab/chaos-plan.js';

describe('lab chaos plan', () => {
  test('the same seed gives the same schedule; another seed another one', () => {
    const o = { rounds: 40, seed: 1234, kinds: ['kill', 'crash', 'pause'] as const, holdMs: [1000, 2000] as [number, number] };
    assert.deepEqual(schedule(o), schedule(o));
    assert.notDeepEqual(schedule(o).map((p) => p.kind), schedule({ ...o, seed: 1235 }).map((p) => p.kind));
  });

  test('every kind once in each block of rounds, hold times within the range, roles of all three sorts', () => {
    const kinds = FAULT_KINDS;
    const plan = schedule({ rounds: 30, seed: 7, kinds, holdMs: [1000, 1600] });
    assert.equal(plan.length, 30);
    for (let b = 0; b + kinds.length <= 30; b += kinds.length) {
      assert.deepEqual(plan.slice(b, b + kinds.length).map((p) => p.kind).sort(), [...kinds].sort(), `block at round ${b + 1}`);
    }
    assert.ok(plan.every((p) => p.holdMs >= 1000 && p.holdMs <= 1600));
    assert.deepEqual([...new Set(plan.map((p) => p.role))].sort(), ['any', 'primary', 'secondary']);
    assert.deepEqual(plan.map((p) => p.round), Array.from({ length: 30 }, (_, i) => i + 1));
  });

  test('the generator spreads: ints of 0..9 over 10000 draws each near 1000', () => {
    const r = new Rng(99);
    const counts = new Array<number>(10).fill(0);
    for (let i = 0; i < 10_000; i++) counts[r.int(10)]!++;
    for (const c of counts) assert.ok(c > 850 && c < 1150, String(counts));
  });

  test('--faults: known kinds only, none twice, not empty; --rounds at least 1', () => {
    assert.deepEqual(parseFaults('kill, cut,witness-down'), ['kill', 'cut', 'witness-down']);
    for (const bad of ['kill,boom', 'kill,kill', '', ' , ']) {
      assert.throws(() => parseFaults(bad), (e: unknown) => e instanceof CroftError && e.code === 'CROFT_ERR_USAGE', bad);
    }
    assert.throws(() => parseFaults('kill,boom'), /unknown fault "boom" \(known: kill, crash/);
    assert.throws(() => schedule({ rounds: 0, seed: 1, kinds: ['kill'], holdMs: [1, 1] }), /--rounds must be 1 or more/);
  });

  test('the report: per kind, rounds, violations, failover and recovery min / median / max', () => {
    const rec = (kind: RoundRecord['kind'], failoverMs: number | null, recoveryMs: number | null, violations: string[] = []): RoundRecord =>
      ({ round: 1, kind, target: 'n1', holdMs: 1000, failoverMs, recoveryMs, violations, notes: [] });
    const lines = reportLines([rec('kill', 900, 2000), rec('kill', 700, 1000), rec('kill', 800, 3000, ['x']), rec('cut', null, 500)]);
    assert.deepEqual(lines, [
      'kill: 3 rounds, 1 with violations; failover min 700 / median 800 / max 900 ms (3); recovery min 1000 / median 2000 / max 3000 ms (3)',
      'cut: 1 rounds, 0 with violations; failover none; recovery min 500 / median 500 / max 500 ms (1)',
    ]);
  });
});
