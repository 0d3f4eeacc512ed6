// The script driver against real processes: exit codes, environment, output, and a hung script with
// a child killed as a whole group on timeout.
import { test, afterAll } from 'vitest';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runScript, scriptEnv, maxLineChars, OUTPUT_BURST_BYTES, OUTPUT_RATE_BYTES_PER_S } from '../../src/module/scripts.js';
import { cgroupBase, resetContainment } from '../../src/module/contain.js';
import { scriptProbe } from '../../src/module/checkers/script.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-scripts-'));
const started: number[] = [];
afterAll(() => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone, as expected */
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
  // The cgroups of runs whose background processes were killed above (empty now).
  const cg = cgroupBase();
  for (const name of cg === null ? [] : fs.readdirSync(cg).filter((n) => n.startsWith(`${process.pid}.`))) {
    try {
      fs.rmdirSync(path.join(cg as string, name));
    } catch {
      /* still populated */
    }
  }
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

// ---- issue 8: output rate limit (finding 10), setsid children, minimal environment ----

function growthMiBOf(before: number, after: number): string {
  return ((after - before) / 1048576).toFixed(1);
}

function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  return (async () => {
    while (alive(pid) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
    return !alive(pid);
  })();
}

test('finding 10: a script printing forever is drained (never blocked), its logged output capped, the daemon\'s memory bounded', async () => {
  let logged = 0;
  let droppedLine = '';
  const rssBefore = process.memoryUsage().rss;
  let rssMax = rssBefore;
  const sampler = setInterval(() => { rssMax = Math.max(rssMax, process.memoryUsage().rss); }, 50);
  const timeoutMs = 3000;
  const r = await runScript({
    ...base,
    timeoutMs,
    killGraceMs: 300,
    path: script('flood.sh', 'yes "flood flood flood flood flood flood flood flood flood flood flood flood"'),
    onOutput: (_s, l) => {
      if (l.startsWith('… ')) droppedLine = l;
      else logged += l.length + 1;
    },
  });
  clearInterval(sampler);
  assert.equal(r.timedOut, true);
  // Drained: the script wrote far more than a pipe holds (64 KiB) and more than was logged.
  assert.ok(r.outputBytes > 20 * 1024 * 1024, `read ${r.outputBytes} bytes`);
  const cap = OUTPUT_BURST_BYTES + OUTPUT_RATE_BYTES_PER_S * ((r.durationMs / 1000) + 0.5);
  assert.ok(logged <= cap, `logged ${logged} bytes, cap ${cap}`);
  assert.ok(logged >= OUTPUT_BURST_BYTES - 200, `logged ${logged} bytes: the burst passes`);
  // Every byte read is either logged or counted as dropped (but the partial line cut by the kill).
  assert.ok(Math.abs(r.outputBytes - logged - r.droppedBytes) <= 2 * (maxLineChars + 1), `read ${r.outputBytes}, logged ${logged}, dropped ${r.droppedBytes}`);
  console.log(`flood: read ${(r.outputBytes / 1048576).toFixed(0)} MiB in ${r.durationMs.toFixed(0)} ms, logged ${logged} bytes, rss +${growthMiBOf(rssBefore, rssMax)} MiB`);
  assert.ok(r.droppedBytes > r.outputBytes * 0.9, `dropped ${r.droppedBytes} of ${r.outputBytes}`);
  assert.match(droppedLine, /^… \d+ bytes of output dropped/);
  const growthMiB = (rssMax - rssBefore) / 1024 / 1024;
  assert.ok(growthMiB < 64, `rss grew by ${growthMiB.toFixed(1)} MiB while reading ${(r.outputBytes / 1024 / 1024).toFixed(0)} MiB`);
});

for (const mode of ['cgroup v2', 'fallback without cgroup']) {
  test(`low (setsid child): a script whose setsid child hangs is killed with that child at the timeout (${mode})`, async () => {
    const saved = process.env.CROFT_SCRIPT_CGROUP;
    if (mode !== 'cgroup v2') process.env.CROFT_SCRIPT_CGROUP = '0';
    resetContainment();
    try {
      if (mode === 'cgroup v2') assert.ok(cgroupBase() !== null, 'cgroup v2 must be usable on this machine for this case');
      const pidFile = path.join(dir, `setsid-${mode.length}.pid`);
      const p = script(`setsid-${mode.length}.sh`, `setsid sh -c 'echo $$ > ${pidFile}; trap "" TERM; exec sleep 1000' &\nsleep 1000`);
      const r = await runScript({ ...base, path: p, timeoutMs: 500, killGraceMs: 300 });
      assert.equal(r.timedOut, true);
      const childPid = Number(fs.readFileSync(pidFile, 'utf8').trim());
      started.push(childPid);
      assert.ok(childPid > 0);
      // It left the script's process group and session: the old group kill missed it.
      assert.equal(await waitGone(childPid, 1000), true, `setsid child ${childPid} survived the timeout`);
    } finally {
      if (saved === undefined) delete process.env.CROFT_SCRIPT_CGROUP;
      else process.env.CROFT_SCRIPT_CGROUP = saved;
      resetContainment();
    }
  });
}

for (const mode of ['cgroup v2', 'PID namespace without cgroup']) {
  test(`low (setsid child): a checker script's setsid child is killed too (${mode})`, async () => {
    const saved = process.env.CROFT_SCRIPT_CGROUP;
    if (mode !== 'cgroup v2') process.env.CROFT_SCRIPT_CGROUP = '0';
    resetContainment();
    try {
      const pidFile = path.join(dir, `checker-setsid-${mode.length}.pid`);
      // The child ignores SIGTERM and leaves the session: only the cgroup or the namespace reaches it.
      // Its pid as the host sees it ($$ would be the namespace's): the parent of cut, read in /proc.
      const p = script(`checker-setsid-${mode.length}.sh`, `setsid sh -c 'trap "" TERM; cut -d" " -f4 /proc/self/stat > ${pidFile}; sleep 1000' &\nsleep 1000`);
      const res = await scriptProbe({ path: p, timeoutMs: 5000, env: {} })(AbortSignal.timeout(400));
      assert.equal(res.ok, false);
      const childPid = Number(fs.readFileSync(pidFile, 'utf8').trim());
      started.push(childPid);
      assert.equal(await waitGone(childPid, 1500), true, `setsid child ${childPid} of the checker survived`);
    } finally {
      if (saved === undefined) delete process.env.CROFT_SCRIPT_CGROUP;
      else process.env.CROFT_SCRIPT_CGROUP = saved;
      resetContainment();
    }
  });
}

test('low (script environment): a script sees only the documented environment; a secret of the daemon\'s is absent', async () => {
  process.env.CROFT_TEST_SECRET = 'hunter2-secret';
  process.env.DB_PASSWORD = 'hunter2-password';
  process.env.TERM = 'xterm';
  try {
    const env = scriptEnv({ node: 'n1', module: 'web', cluster: 'c1', script: 'start_both', entering: 'UP' });
    for (const run of [
      async (p: string, out: string[]) => runScript({ ...base, env, path: p, onOutput: (_s, l) => out.push(l) }),
      async (p: string, out: string[]) => scriptProbe({ path: p, timeoutMs: 5000, env: { ...env, CROFT_CHECKER: 'c' }, onOutput: (_s, l) => out.push(l) })(AbortSignal.timeout(5000)),
    ]) {
      const lines: string[] = [];
      await run(script('envdump.sh', 'env'), lines);
      const names = lines.map((l) => l.split('=')[0] ?? '').filter(Boolean);
      assert.ok(!lines.some((l) => l.includes('hunter2')), lines.join('\n'));
      const allowed = new Set(['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'TZ', 'PWD', 'SHLVL', '_']);
      const extra = names.filter((n) => !allowed.has(n) && !n.startsWith('CROFT_'));
      assert.deepEqual(extra, [], `variables beyond the documented list: ${extra.join(', ')}`);
      assert.ok(names.includes('PATH') && names.includes('HOME') && names.includes('CROFT_NODE'), names.join(' '));
      assert.ok(!names.includes('TERM') && !names.includes('CROFT_TEST_SECRET'));
    }
  } finally {
    delete process.env.CROFT_TEST_SECRET;
    delete process.env.DB_PASSWORD;
    delete process.env.TERM;
  }
});
