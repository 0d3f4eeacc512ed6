// The script driver against real processes: exit codes, environment, output, and a hung script with
// a child killed as a whole group on timeout.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runScript, scriptEnv, maxLineChars } from '../../src/module/scripts.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-scripts-'));
const started: number[] = [];
after(() => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone, as expected */
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

function script(name: string, body: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return p;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie still answers kill(0): look at its state.
  try {
    return !/^\S+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

const base = { args: [], env: {}, timeoutMs: 5000, killGraceMs: 500 };

test('exit 0 is ok, other codes are failures with their code', async () => {
  const ok = await runScript({ ...base, path: script('ok.sh', 'exit 0') });
  assert.equal(ok.ok, true);
  assert.equal(ok.exitCode, 0);
  assert.equal(ok.timedOut, false);
  const bad = await runScript({ ...base, path: script('bad.sh', 'exit 3') });
  assert.equal(bad.ok, false);
  assert.equal(bad.exitCode, 3);
});

test('a missing script is a failure with an error, not a throw', async () => {
  const r = await runScript({ ...base, path: path.join(dir, 'nope.sh') });
  assert.equal(r.ok, false);
  assert.match(r.error ?? '', /ENOENT/);
});

test('environment: CROFT_* variables and the caller env are given; PATH is inherited', async () => {
  const lines: string[] = [];
  const env = { ...scriptEnv({ node: 'n1', module: 'web', cluster: 'c1', script: 'start_both', entering: 'UP' }), EXTRA: 'x y' };
  const r = await runScript({
    ...base,
    env,
    path: script('env.sh', 'echo "$CROFT_NODE|$CROFT_MODULE|$CROFT_STATE|$CROFT_SCRIPT|$CROFT_CLUSTER|$EXTRA"; command -v sh >/dev/null && echo path-ok'),
    onOutput: (_s, l) => lines.push(l),
  });
  assert.equal(r.ok, true);
  assert.deepEqual(lines, ['n1|web|UP|start_both|c1|x y', 'path-ok']);
});

test('output: stdout and stderr line by line, last line without newline, long lines cut', async () => {
  const got: string[] = [];
  const r = await runScript({
    ...base,
    path: script('out.sh', `echo one; echo two >&2; printf 'x%.0s' $(seq 1 ${maxLineChars + 100}); echo; printf last`),
    onOutput: (s, l) => got.push(`${s}:${l.length > 50 ? `${l.slice(0, 3)}...${l.length}` : l}`),
  });
  assert.equal(r.ok, true);
  assert.ok(got.includes('stdout:one'));
  assert.ok(got.includes('stderr:two'));
  assert.ok(got.includes('stdout:last'));
  const long = got.find((l) => l.startsWith('stdout:xxx'));
  assert.ok(long, JSON.stringify(got));
  assert.ok(Number(long.split('...')[1]) <= maxLineChars + 20, long);
});

test('timeout: a hung script and its child (which ignores SIGTERM) are both killed', async () => {
  const pidFile = path.join(dir, 'child.pid');
  const p = script('hang.sh', `sh -c 'trap "" TERM; echo $$ > ${pidFile}; while :; do sleep 0.05; done' &\necho $! > ${pidFile}.direct\nsleep 60`);
  const r = await runScript({ ...base, path: p, timeoutMs: 300, killGraceMs: 300 });
  assert.equal(r.timedOut, true);
  assert.equal(r.ok, false);
  assert.ok(r.durationMs >= 300 && r.durationMs < 3000, `durationMs ${r.durationMs}`);
  const childPid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  started.push(childPid);
  assert.ok(childPid > 0);
  // The answer waits until the group got its SIGKILL; give init a moment to reap.
  const deadline = Date.now() + 1000;
  while (alive(childPid) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
  assert.equal(alive(childPid), false, `child ${childPid} of the hung script survived`);
});

test('a script that started a background daemon answers when the script exits, and the daemon lives', async () => {
  const pidFile = path.join(dir, 'daemon.pid');
  const p = script('bg.sh', `sleep 30 &\necho $! > ${pidFile}\necho started`);
  const lines: string[] = [];
  const r = await runScript({ ...base, path: p, onOutput: (_s, l) => lines.push(l) });
  assert.equal(r.ok, true);
  assert.ok(r.durationMs < 2000, `durationMs ${r.durationMs}`);
  assert.deepEqual(lines, ['started']);
  const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  started.push(pid);
  assert.equal(alive(pid), true, 'the background daemon must survive its start script');
});

test('abort signal kills the script group', async () => {
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 100);
  const r = await runScript({ ...base, path: script('long.sh', 'sleep 30'), signal: ac.signal });
  assert.equal(r.ok, false);
  assert.equal(r.timedOut, false);
  assert.equal(r.signal, 'SIGTERM');
  assert.ok(r.durationMs < 2000);
});
