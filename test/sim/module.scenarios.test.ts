// Golden scenarios of the module machine, test/scenarios/module/*.txt, in the format of scenario.ts;
// this file is their driver, replaying events against the pure machine. Each step prints the
// machine's actions, then its state: `= t=<ms> <STATE> script=<running> restarts=<n> <checker>:<health>...`.
//
// Header: module [maxloop=<n>] [window=<ms>] [drain=<ms>] checker=<name>:<dependency|app>:<restart|stop|wait>[:<rise>:<fall>]...
// Steps (time advances by +<ms> if given first, else by 1 ms):
//   [+ms] start|stop|restart <cause...>
//   [+ms] probe <checker> ok|fail [detail...]
//   [+ms] done start_both|stop_both ok|fail|timeout
//   [+ms] drained                  the driver saw no connection left during a drain
//   [+ms] tick
import assert from 'node:assert/strict';
import {
  checkerHealth,
  createModuleMachine,
  moduleStep,
  restartsInWindow,
  type MachineCheckerConfig,
  type ModuleMachine,
} from '../../src/module/machine.js';
import type { ModuleAction, ModuleEvent } from '../../src/module/types.js';
import type { FailureAction } from '../../src/config/types.js';
import { goldenTests, parseChecker, type Domain, type Driver } from './scenario.js';

function renderAction(a: ModuleAction): string {
  switch (a.type) {
    case 'transition':
      return `transition ${a.from} -> ${a.to}: ${a.cause}`;
    case 'run_checkers':
      return `run_checkers ${a.which}`;
    case 'run_script':
      return `run_script ${a.script} (entering ${a.entering})`;
    case 'checker_change':
      return `checker ${a.checker} ${a.healthy ? 'healthy' : 'failed'}: ${a.detail}`;
    case 'drain':
      return `drain until t=${a.untilMs}`;
  }
}

function parseEvent(words: string[], line: string): ModuleEvent {
  const [kind, ...rest] = words;
  switch (kind) {
    case 'start':
    case 'stop':
    case 'restart':
      return { type: 'command', command: kind, cause: rest.join(' ') || 'test' };
    case 'probe': {
      const [checker, ok, ...detail] = rest;
      assert.ok(checker && (ok === 'ok' || ok === 'fail'), `bad probe line: ${line}`);
      return { type: 'probe', checker, ok: ok === 'ok', detail: detail.join(' ') || ok };
    }
    case 'done': {
      const [script, how] = rest;
      assert.ok((script === 'start_both' || script === 'stop_both') && ['ok', 'fail', 'timeout'].includes(how ?? ''), `bad done line: ${line}`);
      return { type: 'script_done', script, ok: how === 'ok', exitCode: how === 'ok' ? 0 : how === 'fail' ? 1 : null, timedOut: how === 'timeout' };
    }
    case 'tick':
      return { type: 'tick' };
    case 'drained':
      return { type: 'drained' };
    default:
      throw new Error(`unknown step "${line}"`);
  }
}

class ModuleDriver implements Driver {
  private nowMs = 0;

  constructor(private m: ModuleMachine) {}

  step(line: string): string[] {
    let words = line.split(/\s+/);
    let advanceMs = 1;
    if (words[0]?.startsWith('+')) {
      advanceMs = Number(words[0].slice(1));
      words = words.slice(1);
    }
    this.nowMs += advanceMs;
    const r = moduleStep(this.m, parseEvent(words, line), this.nowMs);
    this.m = r.m;
    const health = Object.entries(checkerHealth(this.m)).map(([n, h]) => `${n}:${h}`).join(' ');
    const state = `= t=${this.nowMs} ${this.m.state} script=${this.m.running ?? '-'} restarts=${restartsInWindow(this.m, this.nowMs)}`;
    return [...r.actions.map(renderAction), health ? `${state} ${health}` : state];
  }
}

export const moduleDomain: Domain = {
  name: 'module',
  start(o) {
    const checkers: MachineCheckerConfig[] = o.all('checker').map((spec) => {
      const c = parseChecker(spec);
      return { ...c, kind: c.kind as MachineCheckerConfig['kind'], onFailure: c.onFailure as FailureAction };
    });
    const restart = { maxloop: o.num('maxloop', 3), windowMs: o.num('window', 3_600_000) };
    const m = createModuleMachine({ module: 'app', checkers, restart, drainMs: o.num('drain', 0) }, 0);
    return { driver: new ModuleDriver(m), output: [] };
  },
};

goldenTests(moduleDomain, 5);
