// The one seeded PRNG of the tests: every simulation (membership, module, mirror) and the fuzz tests
// draw from mulberry32 here (32-bit state, fast, good enough for tests; not for cryptography), so a
// seed means the same thing everywhere and replays (CROFT_SEED=<n>) give the same run.

export type Rng = () => number;

/** Returns a function giving floats in [0, 1). */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Integer in [0, n). */
export function below(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}

/** Integer in [lo, hi] inclusive. */
export function randInt(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

export function chance(rng: Rng, p: number): boolean {
  return rng() < p;
}

export function pick<T>(rng: Rng, items: readonly T[]): T {
  const x = items[Math.floor(rng() * items.length)];
  if (x === undefined) throw new Error('pick from an empty list');
  return x;
}
