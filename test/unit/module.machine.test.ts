// Every cell of the machine's table (state × event kind), and the command merging rules.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import {
  checkerHealth,
  createModuleMachine,
  machineConfigOf,
  moduleStep,
  restartsInWindow,
  TRANSITIONS,
  type ModuleMachine,
  type ModuleMachineConfig,
} from '../../src/module/machine.js';
import type { ModuleAction, ModuleEvent } from '../../src/module/types.js';
import type { ModuleConfig } from '../../src/config/types.js';

function config(o: { deps?: boolean; onFailure?: 'restart' | 'stop'; maxloop?: number; windowMs?: number } = {}): ModuleMachineConfig {
  const checkers: ModuleMachineConfig['checkers'] = [{ name: 'web', kind: 'app', onFailure: o.onFailure ?? 'restart', rise: 1, fall: 1 }];
  if (o.deps) checkers.unshift({ name: 'db', kind: 'dependency', onFailure: 'wait', rise: 1, fall: 1 });
  return { module: 'm', checkers, restart: { maxloop: o.maxloop ?? 2, windowMs: o.windowMs ?? 10_000 } };
}

const start: ModuleEvent = { type: 'command', command: 'start', cause: 'test' };
const stop: ModuleEvent = { type: 'command', command: 'stop', cause: 'test' };
const restart: ModuleEvent = { type: 'command', command: 'restart', cause: 'test' };
const done = (script: 'start_both' | 'stop_both', ok = true, timedOut = false): ModuleEvent => ({ type: 'script_done', script, ok, exitCode: ok ? 0 : timedOut ? null : 1, timedOut });
const probe = (checker: string, ok: boolean, detail = ok ? 'fine' : 'refused'): ModuleEvent => ({ type: 'probe', checker, ok, detail });

class Driver {
  m: ModuleMachine;
  nowMs = 0;
  constructor(cfg: ModuleMachineConfig) {
    this.m = createModuleMachine(cfg, 0);
  }
  step(ev: ModuleEvent, advanceMs = 1): ModuleAction[] {
    this.nowMs += advanceMs;
    const r = moduleStep(this.m, ev, this.nowMs);
    this.m = r.m;
    return r.actions;
  }
  /** Drive to UP (from STOP). */
  up(): this {
    this.step(start);
    if (this.m.cfg.checkers.some((c) => c.kind === 'dependency')) this.step(probe('db', true));
    this.step(done('start_both'));
    assert.equal(this.m.state, 'UP');
    return this;
  }
}

const brief = (actions: ModuleAction[]): string[] =>
  actions.map((a) => {
    switch (a.type) {
      case 'transition':
        return `${a.from}->${a.to}`;
      case 'run_checkers':
        return `checkers:${a.which}`;
      case 'run_script':
        return `${a.script}(${a.entering})`;
      case 'checker_change':
        return `${a.checker}:${a.healthy ? 'healthy' : 'failed'}`;
      case 'drain':
        return `drain(${a.untilMs})`;
    }
  });

test('the transition list is exactly STOP->WAIT, WAIT->UP, WAIT->STOP, UP->WAIT', () => {
  assert.deepEqual(TRANSITIONS.map(([f, t]) => `${f}->${t}`).sort(), ['STOP->WAIT', 'UP->WAIT', 'WAIT->STOP', 'WAIT->UP']);
});

// ---- STOP

test('STOP × start without dependencies: WAIT and start_both at once', () => {
  const d = new Driver(config());
  assert.deepEqual(brief(d.step(start)), ['STOP->WAIT', 'checkers:dependencies', 'start_both(UP)']);
  assert.equal(d.m.running, 'start_both');
});

test('STOP × start with a dependency: WAIT running only the dependency checkers, no script', () => {
  const d = new Driver(config({ deps: true }));
  assert.deepEqual(brief(d.step(start)), ['STOP->WAIT', 'checkers:dependencies']);
  assert.equal(d.m.running, null);
});

test('STOP × restart acts as start', () => {
  const d = new Driver(config());
  assert.deepEqual(brief(d.step(restart)), ['STOP->WAIT', 'checkers:dependencies', 'start_both(UP)']);
});

test('STOP × stop does nothing', () => {
  const d = new Driver(config());
  assert.deepEqual(d.step(stop), []);
  assert.equal(d.m.state, 'STOP');
});

test('STOP × script_done is a programmer error', () => {
  const d = new Driver(config());
  assert.throws(() => d.step(done('stop_both')), /no script runs in STOP/);
});

test('STOP × probe is stale and ignored', () => {
  const d = new Driver(config({ deps: true }));
  assert.deepEqual(d.step(probe('db', true)), []);
  assert.equal(checkerHealth(d.m).db, 'unknown');
});

test('STOP × tick does nothing', () => {
  const d = new Driver(config());
  assert.deepEqual(d.step({ type: 'tick' }, 1000), []);
});

// ---- WAIT

test('WAIT × probe: dependency healthy launches start_both; start_both ok gives UP with all checkers', () => {
  const d = new Driver(config({ deps: true }));
  d.step(start);
  assert.deepEqual(brief(d.step(probe('db', true))), ['db:healthy', 'start_both(UP)']);
  assert.equal(d.m.state, 'WAIT');
  assert.deepEqual(brief(d.step(done('start_both'))), ['WAIT->UP', 'checkers:all']);
});

test('WAIT × probe of an app checker is stale and ignored', () => {
  const d = new Driver(config({ deps: true }));
  d.step(start);
  assert.deepEqual(d.step(probe('web', false)), []);
  assert.equal(checkerHealth(d.m).web, 'unknown');
});

test('WAIT × stop while waiting for dependencies: STOP at once, no script', () => {
  const d = new Driver(config({ deps: true }));
  d.step(start);
  assert.deepEqual(brief(d.step(stop)), ['WAIT->STOP', 'checkers:none']);
});

test('WAIT × stop during start_both: no UP, stop_both then STOP (last command wins)', () => {
  const d = new Driver(config());
  d.step(start);
  assert.deepEqual(d.step(stop), []);
  assert.deepEqual(brief(d.step(done('start_both'))), ['stop_both(STOP)']);
  assert.deepEqual(brief(d.step(done('stop_both'))), ['WAIT->STOP', 'checkers:none']);
});

test('WAIT × start during stop_both: started again when stop_both ends (last command wins)', () => {
  const d = new Driver(config()).up();
  d.step(stop);
  assert.deepEqual(d.step(start), []);
  assert.deepEqual(brief(d.step(done('stop_both'))), ['start_both(UP)']);
  assert.deepEqual(brief(d.step(done('start_both'))), ['WAIT->UP', 'checkers:all']);
});

test('WAIT × stop then start during start_both: start wins, UP without a restart', () => {
  const d = new Driver(config());
  d.step(start);
  d.step(stop);
  d.step(start);
  assert.deepEqual(brief(d.step(done('start_both'))), ['WAIT->UP', 'checkers:all']);
});

test('WAIT × restart during start_both: stop_both and start_both follow, not counted', () => {
  const d = new Driver(config());
  d.step(start);
  assert.deepEqual(d.step(restart), []);
  assert.deepEqual(brief(d.step(done('start_both'))), ['stop_both(WAIT)']);
  assert.deepEqual(brief(d.step(done('stop_both'))), ['start_both(UP)']);
  assert.deepEqual(brief(d.step(done('start_both'))), ['WAIT->UP', 'checkers:all']);
  assert.equal(restartsInWindow(d.m, d.nowMs), 0);
});

test('WAIT × script_done start_both failed: counted restart (stop_both, start_both)', () => {
  const d = new Driver(config());
  d.step(start);
  assert.deepEqual(brief(d.step(done('start_both', false))), ['stop_both(WAIT)']);
  assert.equal(restartsInWindow(d.m, d.nowMs), 1);
  assert.deepEqual(brief(d.step(done('stop_both'))), ['start_both(UP)']);
});

test('WAIT × script_done start_both timing out past maxloop: stop_both, STOP, cause says maxloop', () => {
  const d = new Driver(config({ maxloop: 1 }));
  d.step(start);
  d.step(done('start_both', false, true)); // restart 1/1
  d.step(done('stop_both'));
  assert.deepEqual(brief(d.step(done('start_both', false, true))), ['stop_both(STOP)']);
  const a = d.step(done('stop_both'));
  assert.deepEqual(brief(a), ['WAIT->STOP', 'checkers:none']);
  const t = a[0];
  assert.ok(t?.type === 'transition' && /start_both failed \(timed out\): maxloop reached/.test(t.cause), JSON.stringify(t));
});

test('WAIT × script_done stop_both failed: STOP anyway, cause says so', () => {
  const d = new Driver(config()).up();
  d.step(stop);
  const a = d.step(done('stop_both', false));
  assert.deepEqual(brief(a), ['WAIT->STOP', 'checkers:none']);
  assert.ok(a[0]?.type === 'transition' && /stop_both failed \(exit 1\)/.test(a[0].cause));
});

test('WAIT × script_done of a script that is not running is a programmer error', () => {
  const d = new Driver(config());
  d.step(start);
  assert.throws(() => d.step(done('stop_both')), /while start_both runs/);
});

test('WAIT × tick does nothing', () => {
  const d = new Driver(config({ deps: true }));
  d.step(start);
  assert.deepEqual(d.step({ type: 'tick' }, 1000), []);
});

// ---- UP

test('UP × start does nothing', () => {
  const d = new Driver(config()).up();
  assert.deepEqual(d.step(start), []);
});

test('UP × stop: UP->WAIT, stop_both, then STOP', () => {
  const d = new Driver(config()).up();
  assert.deepEqual(brief(d.step(stop)), ['UP->WAIT', 'checkers:dependencies', 'stop_both(STOP)']);
  assert.deepEqual(brief(d.step(done('stop_both'))), ['WAIT->STOP', 'checkers:none']);
});

test('UP × restart: stop_both, start_both, UP, not counted in maxloop', () => {
  const d = new Driver(config({ maxloop: 0 })).up();
  assert.deepEqual(brief(d.step(restart)), ['UP->WAIT', 'checkers:dependencies', 'stop_both(WAIT)']);
  assert.deepEqual(brief(d.step(done('stop_both'))), ['start_both(UP)']);
  assert.deepEqual(brief(d.step(done('start_both'))), ['WAIT->UP', 'checkers:all']);
  assert.equal(restartsInWindow(d.m, d.nowMs), 0);
});

test('UP × script_done is a programmer error', () => {
  const d = new Driver(config()).up();
  assert.throws(() => d.step(done('start_both')), /no script runs in UP/);
});

test('UP × tick: the restart window slides', () => {
  const d = new Driver(config({ windowMs: 1000 })).up();
  d.step(probe('web', false));
  d.step(done('stop_both'));
  d.step(done('start_both'));
  assert.equal(restartsInWindow(d.m, d.nowMs), 1);
  d.step({ type: 'tick' }, 2000);
  assert.equal(restartsInWindow(d.m, d.nowMs), 0);
  assert.equal(d.m.restartTimesMs.length, 0);
});

test('UP × probe: app checker fails with on_failure restart → counted restart back to UP', () => {
  const d = new Driver(config()).up();
  assert.deepEqual(brief(d.step(probe('web', true))), ['web:healthy']);
  assert.deepEqual(brief(d.step(probe('web', false))), ['web:failed', 'UP->WAIT', 'checkers:dependencies', 'stop_both(WAIT)']);
  assert.equal(restartsInWindow(d.m, d.nowMs), 1);
  assert.deepEqual(brief(d.step(done('stop_both'))), ['start_both(UP)']);
  assert.deepEqual(brief(d.step(done('start_both'))), ['WAIT->UP', 'checkers:all']);
  assert.equal(checkerHealth(d.m).web, 'unknown', 'a checker starts afresh in UP');
});

test('UP × probe: more than maxloop failures in the window → stop_both and STOP naming the checker', () => {
  const d = new Driver(config({ maxloop: 2 })).up();
  for (let i = 0; i < 2; i++) {
    d.step(probe('web', false));
    d.step(done('stop_both'));
    d.step(done('start_both'));
    assert.equal(d.m.state, 'UP');
  }
  assert.deepEqual(brief(d.step(probe('web', false, 'ECONNREFUSED'))), ['web:failed', 'UP->WAIT', 'checkers:dependencies', 'stop_both(STOP)']);
  const a = d.step(done('stop_both'));
  assert.deepEqual(brief(a), ['WAIT->STOP', 'checkers:none']);
  assert.ok(a[0]?.type === 'transition' && /checker web failed: ECONNREFUSED: maxloop reached/.test(a[0].cause), JSON.stringify(a[0]));
  // A person starting it again gets a fresh count.
  d.step(start);
  assert.equal(restartsInWindow(d.m, d.nowMs), 0);
});

test('UP × probe: app checker fails with on_failure stop → stop_both, STOP', () => {
  const d = new Driver(config({ onFailure: 'stop' })).up();
  assert.deepEqual(brief(d.step(probe('web', false))), ['web:failed', 'UP->WAIT', 'checkers:dependencies', 'stop_both(STOP)']);
  assert.deepEqual(brief(d.step(done('stop_both'))), ['WAIT->STOP', 'checkers:none']);
  assert.equal(restartsInWindow(d.m, d.nowMs), 0);
});

test('UP × probe: dependency fails → stop_both, WAIT; healthy again → start_both, UP', () => {
  const d = new Driver(config({ deps: true })).up();
  assert.deepEqual(brief(d.step(probe('db', false))), ['db:failed', 'UP->WAIT', 'checkers:dependencies', 'stop_both(WAIT)']);
  assert.deepEqual(brief(d.step(done('stop_both'))), []);
  assert.equal(d.m.state, 'WAIT');
  assert.deepEqual(brief(d.step(probe('db', true))), ['db:healthy', 'start_both(UP)']);
  assert.deepEqual(brief(d.step(done('start_both'))), ['WAIT->UP', 'checkers:all']);
  assert.equal(restartsInWindow(d.m, d.nowMs), 0, 'waiting for a dependency is not a restart');
});

test('a dependency failing during start_both: no UP, stop_both, wait', () => {
  const d = new Driver(config({ deps: true }));
  d.step(start);
  d.step(probe('db', true));
  d.step(probe('db', false));
  assert.deepEqual(brief(d.step(done('start_both'))), ['stop_both(WAIT)']);
  assert.deepEqual(brief(d.step(done('stop_both'))), []);
  assert.equal(d.m.state, 'WAIT');
});

test('probe of an unknown checker is a programmer error', () => {
  const d = new Driver(config()).up();
  assert.throws(() => d.step(probe('nope', true)), /unknown checker/);
});

test('machineConfigOf: module checkers and on_failure wait are dependencies', () => {
  const base = { intervalMs: 100, timeoutMs: 100, rise: 1, fall: 1 };
  const mod: ModuleConfig = {
    file: 'x.yaml',
    name: 'web',
    kind: 'light',
    nodes: ['n1'],
    scripts: { timeoutMs: 1000, killGraceMs: 100 },
    restart: { maxloop: 3, windowMs: 1000 },
    checkers: [
      { ...base, name: 'db', type: 'module', module: 'db', node: 'any', states: ['UP'], onFailure: 'wait' },
      { ...base, name: 'eth', type: 'interface', interface: 'eth0', onFailure: 'wait' },
      { ...base, name: 'http', type: 'http', url: 'http://x/', expectStatus: [200], onFailure: 'restart' },
    ],
  };
  assert.deepEqual(machineConfigOf(mod).checkers.map((c) => `${c.name}:${c.kind}`), ['db:dependency', 'eth:dependency', 'http:app']);
  assert.throws(() => createModuleMachine({ module: 'x', checkers: [{ name: 'a', kind: 'app', onFailure: 'wait', rise: 1, fall: 1 }], restart: { maxloop: 1, windowMs: 1 } }));
});
