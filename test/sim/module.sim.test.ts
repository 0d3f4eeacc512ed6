// Seeded simulation of the module machine (TigerBeetle's VOPR, in small): random configurations,
// commands, probe results (including stale ones), script outcomes (ok/fail/timeout) delivered late,
// and time, with invariants checked after every step by an outside model of what the driver sees.
// CROFT_SEED=<n> replays one seed (and prints its trace); CROFT_SIM_SEEDS=<n> changes how many. Random
// choices come from the shared PRNG (prng.ts), like the other simulations.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import {
  createModuleMachine,
  isTransition,
  moduleStep,
  restartsInWindow,
  type MachineCheckerConfig,
  type ModuleMachine,
  type ModuleMachineConfig,
} from '../../src/module/machine.js';
import type { ModuleAction, ModuleEvent, ModuleState, ScriptName } from '../../src/module/types.js';
import { below, chance, mulberry32, pick, type Rng } from './prng.js';

function randomConfig(r: Rng): ModuleMachineConfig {
  const checkers: MachineCheckerConfig[] = [];
  const nDeps = below(r, 3);
  for (let i = 0; i < nDeps; i++) checkers.push({ name: `dep${i}`, kind: 'dependency', onFailure: 'wait', rise: 1 + below(r, 2), fall: 1 + below(r, 3) });
  const nApps = 1 + below(r, 2);
  for (let i = 0; i < nApps; i++) checkers.push({ name: `app${i}`, kind: 'app', onFailure: chance(r, 0.75) ? 'restart' : 'stop', rise: 1 + below(r, 3), fall: 1 + below(r, 3) });
  return { module: 'sim', checkers, restart: { maxloop: below(r, 4), windowMs: 100 + below(r, 5000) }, drainMs: chance(r, 0.5) ? 0 : 1 + below(r, 2000) };
}

const stepsPerSeed = 300;

/** What the seeds reached, so that a change that makes the simulation vacuous fails it. */
export interface Coverage {
  transitions: Record<string, number>;
  maxloopStops: number;
  scriptOutcomes: Record<string, number>;
  staleProbes: number;
  drains: number;
  /** Drains ended by `drained` before their deadline. */
  drainedEarly: number;
}

export function runSeed(seed: number, trace?: string[], cov?: Coverage): void {
  const r = mulberry32(seed);
  const cfg = randomConfig(r);
  let m: ModuleMachine = createModuleMachine(cfg, 0);
  let nowMs = 0;
  // What the driver knows, from the actions alone.
  let running: ScriptName | null = null;
  let active = new Set<string>();
  let appStarted = false; // start_both launched, and no stop_both completed since
  let lastStartOk = false; // the last start_both ended ok, and no stop_both launched since
  let lastCommand: 'start' | 'stop' | 'restart' | null = null;
  let drainUntil: number | null = null; // a drain action was seen, and neither a script nor UP since
  const depFails = new Map<string, number>(); // consecutive failed probes of an active dependency
  const isDep = (n: string) => cfg.checkers.find((c) => c.name === n)?.kind === 'dependency';
  const log = (s: string) => trace?.push(s);
  log(`config ${JSON.stringify(cfg)}`);

  for (let step = 0; step < stepsPerSeed; step++) {
    nowMs += chance(r, 0.3) ? below(r, 800) : below(r, 20);
    // Pick an event the real driver could produce.
    let ev: ModuleEvent;
    const roll = r();
    if (roll < 0.08) {
      ev = { type: 'command', command: pick(r, ['start', 'stop', 'restart'] as const), cause: 'sim' };
    } else if (roll < 0.3 && running) {
      const outcome = pick(r, ['ok', 'ok', 'ok', 'fail', 'timeout'] as const);
      ev = { type: 'script_done', script: running, ok: outcome === 'ok', exitCode: outcome === 'ok' ? 0 : outcome === 'fail' ? 1 : null, timedOut: outcome === 'timeout' };
    } else if (roll < 0.92) {
      // Mostly probes of running checkers; some stale ones of checkers the driver just stopped.
      const pool = active.size > 0 && chance(r, 0.9) ? [...active] : cfg.checkers.map((c) => c.name);
      const checker = pick(r, pool);
      const ok = chance(r, isDep(checker) ? 0.6 : 0.7);
      ev = { type: 'probe', checker, ok, detail: ok ? 'fine' : 'broken' };
    } else if (drainUntil !== null && chance(r, 0.3)) {
      ev = { type: 'drained' };
    } else {
      ev = { type: 'tick' };
    }
    const before = m;
    const { m: after, actions } = moduleStep(m, ev, nowMs);
    m = after;
    log(`t=${nowMs} ${JSON.stringify(ev)} -> ${actions.map((a) => JSON.stringify(a)).join(' ')} => ${m.state} ${m.running ?? '-'}`);

    // Apply the event to the outside model.
    if (ev.type === 'command') lastCommand = ev.command;
    if (ev.type === 'script_done') {
      running = null;
      if (cov) {
        const k = `${ev.script}:${ev.ok ? 'ok' : ev.timedOut ? 'timeout' : 'fail'}`;
        cov.scriptOutcomes[k] = (cov.scriptOutcomes[k] ?? 0) + 1;
      }
      if (ev.script === 'stop_both') appStarted = false;
      if (ev.script === 'start_both') lastStartOk = ev.ok;
    }
    if (ev.type === 'probe') {
      if (!active.has(ev.checker)) {
        if (cov) cov.staleProbes++;
        if (drainUntil !== null && nowMs >= drainUntil) {
          // Any event past a drain's deadline ends it: stop_both, and nothing else.
          assert.deepEqual(actions.map((a) => a.type), ['run_script'], 'a stale probe past a drain ends only the drain');
        } else {
          assert.deepEqual(actions, [], 'a stale probe (checker not running) changes nothing');
        }
        assert.deepEqual(m.health, before.health, 'a stale probe leaves health alone');
      } else if (isDep(ev.checker)) {
        depFails.set(ev.checker, ev.ok ? 0 : (depFails.get(ev.checker) ?? 0) + 1);
      }
    }
    // Apply the actions.
    let stateSeen: ModuleState = before.state;
    let scriptsLaunched = 0;
    for (const a of actions as ModuleAction[]) {
      switch (a.type) {
        case 'transition':
          assert.ok(isTransition(a.from, a.to), `transition ${a.from} -> ${a.to} is not in the table`);
          assert.equal(a.from, stateSeen, 'transitions chain from the current state');
          stateSeen = a.to;
          if (a.to === 'UP') drainUntil = null; // a start cancelled the drain
          if (cov) {
            const k = `${a.from}->${a.to}`;
            cov.transitions[k] = (cov.transitions[k] ?? 0) + 1;
            if (a.to === 'STOP' && /maxloop reached/.test(a.cause)) cov.maxloopStops++;
          }
          break;
        case 'run_checkers': {
          const next = new Set(a.which === 'none' ? [] : cfg.checkers.filter((c) => a.which === 'all' || c.kind === 'dependency').map((c) => c.name));
          for (const n of active) if (!next.has(n)) depFails.delete(n);
          for (const n of next) if (!active.has(n)) depFails.delete(n);
          active = next;
          break;
        }
        case 'run_script':
          scriptsLaunched++;
          assert.equal(running, null, `one script at a time: ${a.script} launched while ${running} runs`);
          running = a.script;
          if (drainUntil !== null && ev.type === 'drained' && nowMs < drainUntil && cov) cov.drainedEarly++;
          drainUntil = null;
          if (a.script === 'start_both') appStarted = true;
          if (a.script === 'stop_both') lastStartOk = false;
          assert.equal(a, actions[actions.length - 1], 'run_script is the last action');
          break;
        case 'checker_change':
          break;
        case 'drain':
          assert.ok(cfg.drainMs! > 0, 'a drain only with drainMs');
          assert.equal(ev.type, 'command', 'only a command drains (failures never do)');
          assert.equal(before.state, 'UP', 'only a module that was UP drains');
          assert.equal(stateSeen, 'WAIT', 'a drain waits in WAIT');
          assert.ok(appStarted && running === null, 'a drain holds a started application, no script');
          assert.equal(a.untilMs, nowMs + cfg.drainMs!, 'a drain lasts drainMs at most');
          drainUntil = a.untilMs;
          if (cov) cov.drains++;
          break;
      }
    }
    if (drainUntil !== null) {
      assert.ok(nowMs < drainUntil, 'no drain outlives its deadline past a step');
      assert.equal(m.state, 'WAIT', 'draining in WAIT');
    }
    assert.ok(scriptsLaunched <= 1);
    assert.equal(stateSeen, m.state, 'transitions lead to the machine state');
    assert.equal(m.running, running, 'machine and driver agree on the running script');

    // Invariants.
    const n = restartsInWindow(m, nowMs);
    assert.ok(n <= cfg.restart.maxloop, `restarts in window ${n} > maxloop ${cfg.restart.maxloop}`);
    if (m.state === 'UP') {
      assert.equal(running, null, 'no script runs in UP');
      assert.ok(lastStartOk && appStarted, 'UP only after start_both succeeded');
      assert.ok(cfg.checkers.filter((c) => c.kind === 'dependency').every((c) => active.has(c.name)), 'all checkers run in UP');
    }
    if (m.state === 'STOP') {
      assert.equal(running, null, 'no script runs in STOP');
      assert.equal(active.size, 0, 'no checker runs in STOP');
    }
    for (const c of cfg.checkers) {
      if (c.kind !== 'dependency' || (depFails.get(c.name) ?? 0) < c.fall) continue;
      assert.notEqual(m.state, 'UP', `UP with dependency ${c.name} failed for ${c.fall} probes`);
      if (running === null) assert.equal(appStarted, false, `application left running with dependency ${c.name} failed`);
    }
    if (lastCommand === 'stop' && running === null && drainUntil === null) assert.equal(m.state, 'STOP', 'STOP after a stop command once scripts completed');
    if (running === null && m.state === 'WAIT' && drainUntil === null) {
      // Idle in WAIT: only while waiting for a dependency, with the application stopped.
      assert.equal(appStarted, false, 'idle WAIT with the application started');
      assert.ok(cfg.checkers.some((c) => c.kind === 'dependency' && m.health[c.name]!.state !== 'healthy'), 'idle WAIT without a missing dependency');
    }
  }
}

const replaySeed = process.env.CROFT_SEED;

test('module machine simulation', () => {
  const cov: Coverage = { transitions: {}, maxloopStops: 0, scriptOutcomes: {}, staleProbes: 0, drains: 0, drainedEarly: 0 };
  const seeds = replaySeed !== undefined ? [Number(replaySeed)] : Array.from({ length: Number(process.env.CROFT_SIM_SEEDS ?? 1000) }, (_, i) => i + 1);
  for (const seed of seeds) {
    const trace: string[] | undefined = replaySeed !== undefined ? [] : undefined;
    try {
      runSeed(seed, trace, cov);
    } catch (err) {
      const replay: string[] = [];
      try {
        runSeed(seed, replay);
      } catch {
        /* the same failure, now with its trace */
      }
      console.error(replay.slice(-25).join('\n'));
      console.error(`module simulation failed: replay with CROFT_SEED=${seed}`);
      throw err;
    }
    if (trace && process.env.CROFT_SIM_TRACE === '1') console.log(trace.join('\n'));
  }
  if (replaySeed === undefined) {
    for (const t of ['STOP->WAIT', 'WAIT->UP', 'WAIT->STOP', 'UP->WAIT']) assert.ok((cov.transitions[t] ?? 0) > 100, `simulation rarely reaches ${t}: ${JSON.stringify(cov)}`);
    for (const o of ['start_both:ok', 'start_both:fail', 'start_both:timeout', 'stop_both:ok', 'stop_both:fail']) assert.ok((cov.scriptOutcomes[o] ?? 0) > 50, `simulation rarely sees ${o}`);
    assert.ok(cov.maxloopStops > 50, `simulation rarely stops on maxloop: ${cov.maxloopStops}`);
    assert.ok(cov.staleProbes > 100, 'simulation rarely sends stale probes');
    assert.ok(cov.drains > 100 && cov.drainedEarly > 20, `simulation rarely drains: ${cov.drains} drains, ${cov.drainedEarly} ended by drained`);
  }
});
