// The seeded simulator of the membership core. `CROFT_SEED=<n>` replays one seed (and starts the
// many-seed run there); without it the base seed is random and printed, so every run explores more.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { runSeed, runSeedOrExplain } from './membership.sim.js';

const envSeed = process.env.CROFT_SEED === undefined ? null : Number(process.env.CROFT_SEED);
if (envSeed !== null) assert.ok(Number.isSafeInteger(envSeed) && envSeed >= 0, 'CROFT_SEED must be an integer >= 0');
const SEEDS = Number(process.env.CROFT_SIM_SEEDS ?? 1000);

test(`membership: ${SEEDS} seeds keep every invariant and converge after healing`, () => {
  const base = envSeed ?? randomInt(0, 2 ** 31);
  console.log(`membership sim: seeds ${base}..${base + SEEDS - 1} (CROFT_SEED=<n> to replay one)`);
  let replays = 0;
  let forges = 0;
  let downs = 0;
  let cleanRuns = 0;
  let twoLans = 0;
  const sizes = new Set<number>();
  for (let i = 0; i < SEEDS; i++) {
    const r = runSeedOrExplain((base + i) >>> 0);
    replays += r.replaysDropped;
    forges += r.forgesDropped;
    downs += r.peerDowns;
    if (r.cleanLan !== null) cleanRuns++;
    if (r.lans === 2) twoLans++;
    sizes.add(r.nodes);
  }
  // The adversary and the faults really happened (otherwise the invariants proved nothing).
  assert.ok(replays > SEEDS, `only ${replays} replays dropped`);
  assert.ok(forges > SEEDS, `only ${forges} forgeries dropped`);
  assert.ok(downs > SEEDS / 10, `only ${downs} peer_down`);
  assert.ok(cleanRuns > SEEDS / 10 && twoLans > SEEDS / 4, 'too few runs with 2 LANs / a clean LAN');
  assert.deepEqual([...sizes].sort(), [2, 3, 4, 5]);
});

test('membership: one seed replays identically (CROFT_SEED, default 1)', () => {
  const seed = envSeed ?? 1;
  const a = runSeedOrExplain(seed);
  const b = runSeedOrExplain(seed);
  assert.deepEqual(a, b);
  assert.ok(a.steps > 100);
});

test('membership: different seeds explore different runs', () => {
  const digests = new Set([1, 2, 3, 4, 5].map((s) => runSeed(s).digest));
  assert.equal(digests.size, 5);
});
