// Golden scenarios (etcd raft's data-driven tests): test/scenarios/module/*.txt are short scripts
// replayed against the pure machine; each input line is followed by the actions and the resulting
// state, indented, as checked in. CROFT_UPDATE_GOLDEN=1 rewrites the files (then read the diff!).
//
// Header lines (before the first event):
//   checker <name> <dependency|app> <restart|stop|wait> rise=<n> fall=<n>
//   restart maxloop=<n> window=<ms>
// Event lines (time advances by +<ms> if given first, else by 1 ms):
//   [+ms] start|stop|restart <cause...>
//   [+ms] probe <checker> ok|fail [detail...]
//   [+ms] done start_both|stop_both ok|fail|timeout
//   [+ms] tick
// Lines starting with # are comments.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../helpers/paths.js';
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

const dir = path.join(repoRoot, 'test', 'scenarios', 'module');

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
      throw new Error(`unknown scenario line: ${line}`);
  }
}

/** Replays the input lines of a scenario; returns the file as it should read. */
export function replay(text: string): string {
  const out: string[] = [];
  const checkers: MachineCheckerConfig[] = [];
  let restart = { maxloop: 3, windowMs: 3_600_000 };
  let drainMs = 0;
  let m: ModuleMachine | null = null;
  let nowMs = 0;
  for (const raw of text.split('\n')) {
    if (raw.startsWith('  ')) continue; // expected output: regenerated below
    const line = raw.trimEnd();
    if (line === '' || line.startsWith('#')) {
      out.push(line);
      continue;
    }
    out.push(line);
    let words = line.split(/\s+/);
    if (m === null && words[0] === 'checker') {
      const [, name, kind, onFailure, riseS, fallS] = words;
      checkers.push({
        name: name!,
        kind: kind as MachineCheckerConfig['kind'],
        onFailure: onFailure as FailureAction,
        rise: Number(riseS?.replace('rise=', '')),
        fall: Number(fallS?.replace('fall=', '')),
      });
      continue;
    }
    if (m === null && words[0] === 'restart' && words[1]?.startsWith('maxloop=')) {
      restart = { maxloop: Number(words[1].slice(8)), windowMs: Number(words[2]?.replace('window=', '')) };
      continue;
    }
    if (m === null && words[0]?.startsWith('drain_ms=')) {
      drainMs = Number(words[0].slice(9));
      continue;
    }
    m ??= createModuleMachine({ module: 'app', checkers, restart, drainMs }, 0);
    let advanceMs = 1;
    if (words[0]?.startsWith('+')) {
      advanceMs = Number(words[0].slice(1));
      words = words.slice(1);
    }
    nowMs += advanceMs;
    const r = moduleStep(m, parseEvent(words, line), nowMs);
    m = r.m;
    for (const a of r.actions) out.push(`  ${renderAction(a)}`);
    const health = Object.entries(checkerHealth(m)).map(([n, h]) => `${n}:${h}`).join(' ');
    out.push(`  = t=${nowMs} ${m.state} script=${m.running ?? '-'} restarts=${restartsInWindow(m, nowMs)}${health ? ` ${health}` : ''}`);
  }
  while (out.length > 0 && out[out.length - 1] === '') out.pop();
  return `${out.join('\n')}\n`;
}

const files = fs.readdirSync(dir).filter((f) => f.endsWith('.txt')).sort();

test('there are at least 5 module scenarios', () => {
  assert.ok(files.length >= 5, `found ${files.length}`);
});

for (const f of files) {
  test(`scenario ${f}`, () => {
    const p = path.join(dir, f);
    const text = fs.readFileSync(p, 'utf8');
    const got = replay(text);
    if (process.env.CROFT_UPDATE_GOLDEN === '1') fs.writeFileSync(p, got);
    else assert.equal(got, text, `${f}: trace differs (CROFT_UPDATE_GOLDEN=1 rewrites it; review the diff)`);
  });
}
