// The seeded simulator of the farm: the real farm runtime (farm/runtime.ts) on several nodes over
// faulty fakes (test/sim/farm.world.ts). `CROFT_SEED=<n>` replays one seed (and starts the
// many-seed run there); without it the base seed is random and printed. CROFT_SIM_SEEDS sets the count.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { runSeed, runSeedOrExplain } from './farm.world.js';

const envSeed = process.env.CROFT_SEED === undefined ? null : Number(process.env.CROFT_SEED);
if (envSeed !== null) assert.ok(Number.isSafeInteger(envSeed) && envSeed >= 0, 'CROFT_SEED must be an integer >= 0');
const SEEDS = Number(process.env.CROFT_SIM_SEEDS ?? 1000);

test(`farm: ${SEEDS} seeds keep the effect order, end drains in time and give every bucket one owner`, async () => {
  const base = envSeed ?? randomInt(0, 2 ** 31);
  console.log(`farm sim: seeds ${base}..${base + SEEDS - 1} (CROFT_SEED=<n> to replay one)`);
  const t0 = performance.now();
  const sum = { failed: 0, lost: 0, crashes: 0, drains: 0, early: 0, stable: 0, steps: 0, takeovers: 0 };
  const sizes = new Set<number>();
  for (let i = 0; i < SEEDS; i++) {
    const r = await runSeedOrExplain((base + i) >>> 0);
    sum.failed += r.effectsFailed;
    sum.lost += r.heartbeatsLost;
    sum.crashes += r.crashes;
    sum.drains += r.drains;
    sum.early += r.drainedEarly;
    sum.stable += r.stableChecks;
    sum.steps += r.steps;
    sum.takeovers += r.takeovers;
    sizes.add(r.nodes);
  }
  console.log(`farm sim: ${SEEDS} seeds in ${Math.round(performance.now() - t0)} ms, ${JSON.stringify(sum)}`);
  // The faults really happened (otherwise the invariants proved nothing).
  assert.ok(sum.failed > SEEDS, `only ${sum.failed} effects failed`);
  assert.ok(sum.lost > SEEDS, `only ${sum.lost} heartbeats lost`);
  assert.ok(sum.crashes > SEEDS / 4, `only ${sum.crashes} crashes`);
  assert.ok(sum.drains > SEEDS / 4 && sum.early > 0 && sum.early < sum.drains, `drains ${sum.drains}, ended early ${sum.early}`);
  assert.ok(sum.stable >= SEEDS);
  // Crashes made the survivors take buckets over with RSTs (checked against the kernel in farm.world.ts).
  assert.ok(sum.takeovers > 0, 'no takeover set was ever applied');
  if (SEEDS >= 100) assert.deepEqual([...sizes].sort(), [2, 3, 4, 5]);
});

test('farm: one seed replays identically (CROFT_SEED, default 1)', async () => {
  const seed = envSeed ?? 1;
  const a = await runSeedOrExplain(seed);
  const b = await runSeedOrExplain(seed);
  assert.deepEqual(a, b);
  assert.ok(a.steps > 50);
});

test('farm: different seeds explore different runs', async () => {
  const digests = new Set<string>();
  for (const s of [1, 2, 3, 4, 5]) digests.add((await runSeed(s)).digest);
  assert.equal(digests.size, 5);
});
