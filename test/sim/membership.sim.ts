// One seeded simulation run of the membership core: random faults for a while, then a full heal and
// a quiet period, then the convergence check. Everything random comes from the seed, so a seed replays.
import { createHash } from 'node:crypto';
import { SimCluster, type LanNet } from './cluster.js';
import { chance, mulberry32, pick, randInt, type Rng } from './prng.js';

export interface SimRunResult {
  seed: number;
  nodes: number;
  lans: number;
  cleanLan: number | null;
  steps: number;
  replaysDropped: number;
  forgesDropped: number;
  peerDowns: number;
  /** Digest of every node's final state: equal digests for equal seeds prove determinism. */
  digest: string;
}

function randomNet(rng: Rng, clean: boolean, maxCleanDelayMs: number, intervalMs: number): LanNet {
  if (clean) {
    const max = randInt(rng, 0, maxCleanDelayMs);
    return { lossRate: 0, dupRate: chance(rng, 0.3) ? rng() * 0.2 : 0, delayMinMs: randInt(rng, 0, max), delayMaxMs: max };
  }
  const max = randInt(rng, 0, intervalMs * 2);
  return {
    lossRate: chance(rng, 0.5) ? rng() * 0.6 : 0,
    dupRate: chance(rng, 0.3) ? rng() * 0.3 : 0,
    delayMinMs: randInt(rng, 0, max),
    delayMaxMs: max,
  };
}

export function runSeed(seed: number): SimRunResult {
  const rng = mulberry32(seed);
  const nodes = randInt(rng, 2, 5);
  const lans = randInt(rng, 1, 2);
  const intervalMs = pick(rng, [50, 100, 200]);
  const timeoutMs = intervalMs * randInt(rng, 3, 8);
  // In a third of the 2-LAN runs LAN 0 stays clean: then no live peer may ever be declared down.
  const cleanLan = lans === 2 && chance(rng, 0.35) ? 0 : null;
  const sim = new SimCluster({ nodes, lans, intervalMs, timeoutMs, rng, cleanLan, randomPhase: true });
  for (const n of sim.names) if (chance(rng, 0.9) || n === 'n1') sim.start(n);

  const faultyUntilMs = randInt(rng, 10, 40) * intervalMs;
  while (sim.nowMs < faultyUntilMs) {
    const live = sim.liveNames();
    const a = pick(rng, sim.names);
    const b = pick(rng, sim.names.filter((x) => x !== a));
    const lan = randInt(rng, 0, lans - 1);
    const r = rng();
    if (r < 0.15) {
      sim.setNet(lan, randomNet(rng, lan === cleanLan, sim.maxCleanDelayMs, intervalMs));
    } else if (r < 0.3 && lan !== cleanLan) {
      sim.cut(lan, a, b); // asymmetric
      if (chance(rng, 0.6)) sim.cut(lan, b, a); // symmetric
    } else if (r < 0.4 && lan !== cleanLan) {
      for (const x of sim.names) if (x !== a) { sim.cut(lan, a, x); sim.cut(lan, x, a); } // isolate a on one LAN
    } else if (r < 0.5) {
      if (chance(rng, 0.5)) sim.healAll();
      else { sim.heal(lan, a, b); sim.heal(lan, b, a); }
    } else if (r < 0.57) {
      if (sim.node(a).alive && live.length > 1) sim.kill(a);
    } else if (r < 0.64) {
      if (!sim.node(a).alive) sim.start(a, randInt(rng, 1, 1000));
    } else if (r < 0.66) {
      // Instant restart: the peers see a larger incarnation without any gap.
      if (sim.node(a).alive) { sim.kill(a); sim.start(a, randInt(rng, 1, 1000)); }
    } else if (r < 0.78) {
      if (sim.node(a).alive) {
        const mods: Record<string, { state: string; sinceMs: number }> = {};
        for (const m of ['web', 'db', 'cache']) if (chance(rng, 0.5)) mods[m] = { state: pick(rng, ['STOP', 'WAIT', 'UP', 'PRIM', 'SECOND', 'ALONE']), sinceMs: sim.nowMs };
        sim.setModules(a, mods);
      }
    } else if (r < 0.9) {
      sim.replay(a, chance(rng, 0.5) ? b : null, chance(rng, 0.3));
    } else {
      sim.forge(a, b, lan);
    }
    sim.runUntil(sim.nowMs + randInt(rng, 1, intervalMs * 3));
  }

  // Heal everything: no cut, no loss; delay and duplication may stay (bounded), so may reordering.
  sim.healAll();
  for (let lan = 0; lan < lans; lan++) {
    const max = randInt(rng, 0, sim.maxCleanDelayMs);
    sim.setNet(lan, { lossRate: 0, dupRate: chance(rng, 0.3) ? 0.2 : 0, delayMinMs: randInt(rng, 0, max), delayMaxMs: max });
  }
  sim.runUntil(sim.nowMs + timeoutMs + 3 * intervalMs);
  sim.checkConverged();

  const h = createHash('sha256');
  for (const n of sim.names) h.update(JSON.stringify(sim.node(n).state));
  return {
    seed, nodes, lans, cleanLan, steps: sim.stats.steps, replaysDropped: sim.stats.replaysDropped,
    forgesDropped: sim.stats.forgesDropped, peerDowns: sim.stats.peerDowns, digest: h.digest('hex'),
  };
}

/** Runs a seed; on failure, adds the one line that replays it. */
export function runSeedOrExplain(seed: number): SimRunResult {
  try {
    return runSeed(seed);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    console.error(`membership simulation failed: ${msg}\nCROFT_SEED=${seed} to replay`);
    throw new Error(`${msg} (CROFT_SEED=${seed} to replay)`, { cause: err });
  }
}
