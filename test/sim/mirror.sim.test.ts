// Seeded simulation of two mirror nodes (TigerBeetle's VOPR, in small), running the daemon's own
// driver: two real MirrorRuntimes (mirror/runtime.ts) over faulty fakes (test/sim/mirror.world.ts): heartbeats and data-plane
// events delivered in random order (announcements coalesced, as heartbeats carry only the latest
// state), cuts and heals, replication link breaks, crashes and restarts, witness outages and verdicts
// (redis: a lease, at most one holder; ping: per-node reachability), script outcomes
// (ok/fail/timeout), reintegrations finishing at random times, checker probes and commands.
// Checked after every step of either runtime's machine (test/sim/mirror.world.ts and the machine's
// own assertions):
//   - with a redis witness, never two nodes PRIM/ALONE at once;
//   - a node is PRIM/ALONE only with its data recorded up to date;
//   - SECOND only in the step that delivered `reintegration_done`;
//   - the machine's generation rules (mirror/machine.ts checkInvariants: a new generation recorded
//     before the dirty log; PRIM/ALONE only with a generation >= any the peer announced);
//   - with redis, a node becomes ALONE, and starts writing alone, only with data of a generation
//     >= every generation that had acknowledged writes (the simulation's own truth, mirror.world.ts
//     `held`/`acked`). History over 1000 seeds (redis): flag-only code 179 seeds violated it;
//     announced generations 92; the witness carrying the generations (mirror/machine.ts "the
//     witness rule"): 0, asserted. With ping or none it cannot hold (no mutual exclusion, nothing
//     stored): measured and printed (`# ...`), not asserted.
//   - the action order rules (mount -> VIP -> start_prim; stop_prim -> VIP off -> unmount; fence first),
//     in the machine and again at the fakes (a VIP added only while mounted, start_prim only with
//     the mount and the VIP).
// After the faults, each seed heals everything and checks that the pair settles as PRIM + SECOND.
// CROFT_SEED=<n> replays one seed and prints its trace; CROFT_SIM_SEEDS=<n> changes how many.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { mulberry32, pick, chance, randInt, type Rng } from './prng.js';
import type { Outcome } from './mirror.pair.js';
import { MirrorWorld, type WorldOptions } from './mirror.world.js';
import type { MirrorCheckerConfig, MirrorCommand, WitnessKind } from '../../mirror/types.js';

const stepsPerSeed = 250;

function randomOptions(r: Rng): Partial<WorldOptions> {
  const witness: WitnessKind = pick(r, ['redis', 'redis', 'redis', 'ping', 'none'] as const);
  const checkers: MirrorCheckerConfig[] = [];
  if (chance(r, 0.3)) checkers.push({ name: 'dep', kind: 'dependency', onFailure: 'wait', rise: 1, fall: randInt(r, 1, 2) });
  if (chance(r, 0.4)) checkers.push({ name: 'app', kind: 'app', onFailure: chance(r, 0.8) ? 'restart' : 'stop', rise: 1, fall: randInt(r, 1, 2) });
  const ttlMs = randInt(r, 1000, 5000);
  return {
    witness,
    primPreference: pick(r, [null, null, 'n1', 'n2']),
    peerWaitMs: randInt(r, 0, 2000),
    ttlMs,
    marginMs: Math.floor(ttlMs / 5),
    // The runtime checks every validity/3, more often than a verdict lasts.
    pingValidityMs: randInt(r, 1000, 5000),
    checkers,
    maxloop: randInt(r, 0, 3),
    heartbeatTimeoutMs: pick(r, [500, 1000, 2000]),
    vip: chance(r, 0.8),
  };
}

/** Delivers one message in flight, chosen among the heads of the per-(destination, kind) channels. */
async function deliverRandom(p: MirrorWorld, r: Rng): Promise<void> {
  const heads = new Map<string, number>();
  p.queue.forEach((q, i) => {
    const k = `${q.to}:${q.kind}`;
    if (!heads.has(k)) heads.set(k, i);
  });
  await p.deliver(pick(r, [...heads.values()]));
}

async function randomStep(p: MirrorWorld, r: Rng, log: (s: string) => void): Promise<void> {
  const roll = r();
  const n = pick(r, p.names);
  if (roll < 0.4 && p.queue.length > 0) return deliverRandom(p, r);
  if (roll < 0.55 && p.scripts.length > 0) {
    const s = pick(r, p.scripts);
    const outcome: Outcome = pick(r, ['ok', 'ok', 'ok', 'ok', 'fail', 'timeout'] as const);
    log(`finish ${s.node} ${s.script} ${outcome}`);
    return p.finishScript(s.node, outcome);
  }
  if (roll < 0.62) {
    if (await p.finishReintegration()) log('reintegration done');
    return;
  }
  if (roll < 0.75) {
    const ms = chance(r, 0.5) ? randInt(r, 1, 200) : randInt(r, 200, 4000);
    log(`advance ${ms}`);
    return p.advance(ms, false);
  }
  if (roll < 0.8) {
    if (!p.alive(n)) return;
    const c: MirrorCommand = pick(r, ['start', 'start', 'stop', 'prim', 'second', 'swap'] as const);
    log(`command ${n} ${c}`);
    p.command(n, c);
    return p.flush();
  }
  if (roll < 0.86) {
    const checker = p.o.checkers.length > 0 ? pick(r, p.o.checkers).name : null;
    if (checker === null || !p.alive(n)) return;
    return p.probe(n, checker, chance(r, 0.7));
  }
  // Faults.
  const fault = pick(r, ['cut', 'heal', 'heal', 'break-link', 'link-up', 'crash', 'restart', 'restart', 'redis', 'ping'] as const);
  log(`fault ${fault} ${n}`);
  switch (fault) {
    case 'cut':
      if (p.connected) p.cut();
      return p.flush();
    case 'heal':
      if (!p.connected) p.heal();
      return p.flush();
    case 'break-link':
      if (p.link) p.breakLink();
      return p.flush();
    case 'link-up':
      p.linkUp();
      return p.flush();
    case 'crash':
      p.crash(n);
      return p.flush();
    case 'restart':
      if (!p.alive(n)) await p.restart(n);
      return;
    case 'redis':
      p.redis.up = !p.redis.up;
      return;
    case 'ping':
      p.node(n).pingReach = !p.node(n).pingReach;
      return;
  }
}

/** Heals everything, then lets the pair run with every script ok: it must end PRIM + SECOND. */
async function settle(p: MirrorWorld, log: (s: string) => void): Promise<void> {
  log('settle');
  for (const n of p.names) if (!p.alive(n)) await p.restart(n);
  if (!p.connected) p.heal();
  p.linkUp();
  p.redis.up = true;
  for (const n of p.names) p.node(n).pingReach = true;
  const quiesce = async () => {
    // Scripts end ok, reintegrations finish, time moves (witness checks, wake-ups) until quiet.
    for (let i = 0; i < 80; i++) {
      await p.drain();
      if (p.scripts.length > 0) await p.finishScript(p.scripts[0]!.node, 'ok');
      else if (!(await p.finishReintegration())) await p.advance(500, true);
    }
    await p.drain();
  };
  // A clean stop of both, then a start of both: at least one record is up to date after it.
  for (const n of p.names) p.command(n, 'stop');
  await quiesce();
  // Both records stale happens (rarely): a target records stale from a late view of a peer that
  // gave up meanwhile. croft then elects nobody, by design; the person runs `croft prim`.
  const manual = !p.names.some((n) => p.node(n).record.status === 'up-to-date');
  if (manual) {
    p.manualPrims++;
    p.command('n1', 'prim');
  }
  for (const n of p.names) p.command(n, 'start');
  await p.flush();
  for (const c of p.o.checkers) if (c.kind === 'dependency') for (const n of p.names) await p.probe(n, c.name, true);
  await quiesce();
  await p.advance(Math.max(p.o.peerWaitMs, p.o.ttlMs) + 100, true);
  await quiesce();
  const states = p.names.map((n) => p.state(n)).sort().join('+');
  assert.equal(states, 'PRIM+SECOND', `the pair settles as PRIM + SECOND (got ${p.status()})`);
  await failover(p, log);
}

/**
 * Liveness after the history: the settled PRIM crashes (the stream closes at once, membership
 * declares it lost a heartbeat timeout later), and its SECOND must run the application alone
 * within a bound (heartbeat timeout, the redis lease of the dead holder running out, the first
 * witness check): a SECOND that took the closed stream for a PRIM going on without it would record
 * itself stale and never fail over (mirror/rules.ts linkRule's grace).
 */
async function failover(p: MirrorWorld, log: (s: string) => void): Promise<void> {
  const prim = p.names.find((n) => p.state(n) === 'PRIM')!;
  const second = p.peerOf(prim);
  log(`failover: crash ${prim}`);
  p.crash(prim);
  const boundMs = 2 * p.o.heartbeatTimeoutMs + p.o.ttlMs + p.o.peerWaitMs + 2000;
  const t0 = p.nowMs;
  while (p.nowMs - t0 < boundMs && p.node(second).rt?.mirrorStatus().application !== 'running') {
    await p.advance(100, true);
    if (p.scripts.length > 0) await p.finishScript(p.scripts[0]!.node, 'ok');
  }
  assert.equal(p.state(second), 'ALONE', `${second} takes over within ${boundMs} ms of ${prim}'s crash (${p.status()})`);
  assert.equal(p.node(second).rt?.mirrorStatus().application, 'running', `${second} runs the application (${p.status()})`);
  p.failoverMs.push(p.nowMs - t0);
}

export async function runSeed(seed: number, trace?: string[], assertGenerations = true): Promise<MirrorWorld> {
  const r = mulberry32(seed);
  const opts = randomOptions(r);
  const p = new MirrorWorld(opts);
  p.assertGenerations &&= assertGenerations;
  const log = (s: string) => trace?.push(s);
  log(`options ${JSON.stringify(opts)}`);
  // Start from the usual place: both records up to date, both started.
  for (const n of p.names) {
    p.node(n).record = { status: 'up-to-date', generation: 1, peerGeneration: 1 };
    await p.boot(n);
  }
  for (const n of p.names) p.command(n, 'start');
  await p.flush();
  const from = { lines: 0 };
  try {
    for (let step = 0; step < stepsPerSeed; step++) {
      await randomStep(p, r, log);
      if (trace) {
        for (const l of p.lines.slice(from.lines)) trace.push(`  ${l}`);
        from.lines = p.lines.length;
        trace.push(`  ${p.status()}`);
      }
    }
    await settle(p, log);
  } finally {
    // The lines of the step that failed too (an assertion stops it midway).
    if (trace) for (const l of p.lines.slice(from.lines)) trace.push(`  ${l}`);
    for (const n of p.names) p.crash(n); // timers and pending work of this seed go with it
  }
  return p;
}

if (process.env.CROFT_GEN_COUNT !== undefined) {
  const n = Number(process.env.CROFT_GEN_COUNT);
  const bad: string[] = [];
  for (let seed = 1; seed <= n; seed++) {
    let p: MirrorWorld | null = null;
    try {
      p = await runSeed(seed, undefined, false);
    } catch (e) {
      bad.push(`seed ${seed} threw: ${(e as Error).message}`);
    }
    if (p && p.lostWrites.length > 0) bad.push(`seed ${seed} (${p.o.witness}): ${p.lostWrites[0]}`);
  }
  console.log(`${bad.length} seeds of ${n} lose writes (measured, not asserted)\n${bad.slice(0, Number(process.env.CROFT_GEN_SHOW ?? 8)).join('\n')}`);
}

test('mirror simulation (the real MirrorRuntime): invariants hold over every seed, and each pair settles as PRIM + SECOND (croft prim where both records are stale, rare)', async () => {
  const one = process.env.CROFT_SEED;
  if (one !== undefined) {
    const trace: string[] = [];
    try {
      await runSeed(Number(one), trace);
    } finally {
      console.log(trace.join('\n'));
    }
    return;
  }
  const first = Number(process.env.CROFT_SIM_FIRST_SEED ?? 1);
  const seeds = Number(process.env.CROFT_SIM_SEEDS ?? 1000);
  let manualPrims = 0;
  const lostWriteSeeds: Record<string, number> = { redis: 0, ping: 0, none: 0 };
  const seedsOf: Record<string, number> = { redis: 0, ping: 0, none: 0 };
  const total = { failovers: 0, giveUps: 0, quarantines: 0, reintegrations: 0, refused: 0, aloneToPrim: 0, twoPrimariesWithPing: 0 };
  const witnesses = new Set<string>();
  const failoverMs: number[] = [];
  const t0 = Date.now();
  for (let seed = first; seed < first + seeds; seed++) {
    let p: MirrorWorld;
    try {
      p = await runSeed(seed);
    } catch (e) {
      throw new Error(`seed ${seed} failed (replay: CROFT_SEED=${seed} npx vitest run test/sim/mirror.sim.test.ts): ${(e as Error).message}`, { cause: e });
    }
    witnesses.add(p.o.witness);
    seedsOf[p.o.witness]!++;
    if (p.lostWrites.length > 0) lostWriteSeeds[p.o.witness]!++;
    manualPrims += p.manualPrims;
    total.failovers += p.seen.failovers;
    total.giveUps += p.seen.giveUps;
    total.quarantines += p.seen.quarantines;
    total.reintegrations += p.seen.reintegrations;
    total.refused += p.seen.refused;
    total.aloneToPrim += p.seen.transitions.get('ALONE->PRIM') ?? 0;
    total.twoPrimariesWithPing += p.seen.twoPrimaries;
    failoverMs.push(...p.failoverMs);
  }
  console.log(`# mirror sim (real MirrorRuntime): ${seeds} seeds in ${Date.now() - t0} ms ${JSON.stringify(total)}; seeds needing croft prim to restart: ${manualPrims}`);
  failoverMs.sort((a, b) => a - b);
  const q = (f: number) => failoverMs[Math.min(failoverMs.length - 1, Math.floor(f * failoverMs.length))];
  console.log(`# simulated failover after each seed's history (PRIM crashed -> SECOND runs the application): min/median/max ${q(0)}/${q(0.5)}/${failoverMs[failoverMs.length - 1]} ms (simulated time; heartbeat timeout 500-2000 ms, redis ttl 1-5 s)`);
  assert.equal(failoverMs.length, seeds, 'every seed ends with a failover');
  const per = (['redis', 'ping', 'none'] as const).map((w) => `${w} ${lostWriteSeeds[w]}/${seedsOf[w]}`).join(', ');
  console.log(`# seeds where a node became ALONE behind acknowledged writes: ${per} (redis asserted, ping and none measured)`);
  assert.equal(lostWriteSeeds.redis, 0, 'with redis the generation invariant is asserted at every step');
  assert.ok(manualPrims <= Math.max(1, seeds / 100), `croft prim needed in ${manualPrims} of ${seeds} seeds`);
  // The simulation is not vacuous: the interesting paths were taken.
  if (seeds >= 200) {
    assert.deepEqual([...witnesses].sort(), ['none', 'ping', 'redis']);
    for (const [k, v] of Object.entries(total)) assert.ok(v > 0, `no ${k} in ${seeds} seeds`);
  }
});

test('mirror simulation replays: the same seed gives the same trace', async () => {
  const a: string[] = [];
  const b: string[] = [];
  await runSeed(42, a);
  await runSeed(42, b);
  assert.ok(a.length > stepsPerSeed);
  assert.deepEqual(a, b);
});

// Keep the invariant about two primaries honest: with ping (no mutual exclusion) the simulation does
// reach two primaries, so the check in mirror.world.ts would catch it for redis.
test('the two-primaries check is not vacuous: ping reaches it, redis never', async () => {
  let ping = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const p = await runSeed(seed);
    if (p.o.witness === 'ping' || p.o.witness === 'none') ping += p.seen.twoPrimaries;
    else assert.equal(p.seen.twoPrimaries, 0, `seed ${seed}`);
  }
  assert.ok(ping > 0, 'without mutual exclusion, some seed had two primaries');
});

test('a PRIM killed: its SECOND keeps the link through the grace (mirror/rules.ts linkRule, run by MirrorRuntime) and fails over once the peer is declared lost', async () => {
  for (const witness of ['none', 'redis'] as const) {
    const p = new MirrorWorld({ witness, heartbeatTimeoutMs: 1000 });
    for (const n of p.names) {
      p.node(n).record = { status: 'up-to-date', generation: 1, peerGeneration: 1 };
      await p.boot(n);
    }
    for (const n of p.names) p.command(n, 'start');
    for (let i = 0; i < 20; i++) {
      await p.drain();
      if (p.scripts.length > 0) await p.finishScript(p.scripts[0]!.node, 'ok');
      else if (!(await p.finishReintegration())) await p.advance(500, true);
    }
    assert.equal(p.names.map((n) => p.state(n)).sort().join('+'), 'PRIM+SECOND', `${witness}: the pair runs (${p.status()})`);
    const prim = p.names.find((n) => p.state(n) === 'PRIM')!;
    const second = p.peerOf(prim);
    p.crash(prim);
    await p.drain();
    await p.advance(500, true);
    // The stream is gone, the peer not declared lost yet: still an in-sync SECOND.
    assert.equal(p.state(second), 'SECOND', `${witness}: within the heartbeat timeout (${p.status()})`);
    for (let i = 0; i < 20; i++) {
      await p.advance(500, true);
      if (p.scripts.length > 0) await p.finishScript(p.scripts[0]!.node, 'ok');
    }
    assert.ok(['ALONE', 'PRIM'].includes(p.state(second)), `${witness}: ${second} fails over (${p.status()})`);
    assert.equal(p.node(second).record.status, 'up-to-date', `${witness}: with its data up to date`);
    for (const n of p.names) p.crash(n);
  }
});
