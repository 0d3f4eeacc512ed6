// End to end: ModuleRuntime with real scripts starting a real HTTP service and a real http checker.
import { test, afterAll } from 'vitest';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { CheckerConfig, ModuleConfig } from '../../src/config/types.js';
import { ModuleRuntime, type TransitionEvent, type ScriptEvent } from '../../src/module/runtime.js';
import type { ModuleLogger } from '../../src/module/types.js';
import { freePort } from '../helpers/net.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-runtime-'));
const runtimes: ModuleRuntime[] = [];
const pidFiles: string[] = [];
afterAll(async () => {
  for (const r of runtimes) await r.close();
  for (const f of pidFiles) {
    try {
      process.kill(Number(fs.readFileSync(f, 'utf8')), 'SIGKILL');
    } catch {
      /* not running */
    }
  }
  fs.rmSync(root, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(what: string, pred: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
async function get(port: number): Promise<string | null> {
  try {
    return await (await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1000) })).text();
  } catch {
    return null;
  }
}

/** A module folder with start_both / stop_both running a node HTTP server on port. */
function appModule(name: string, port: number, extra: Partial<ModuleConfig> = {}): { cfg: ModuleConfig; dir: string; pidFile: string; log: string } {
  const dir = path.join(root, name);
  fs.mkdirSync(dir);
  const pidFile = path.join(dir, 'app.pid');
  const log = path.join(dir, 'scripts.log');
  pidFiles.push(pidFile);
  const server = `const s=require('http').createServer((q,r)=>r.end('hello '+process.pid));s.listen(${port},'127.0.0.1',()=>require('fs').writeFileSync('${pidFile}',String(process.pid)))`;
  fs.writeFileSync(
    path.join(dir, 'start_both'),
    `#!/bin/sh
echo "start_both $CROFT_MODULE $CROFT_STATE" >> ${log}
echo "starting on $CROFT_NODE"
rm -f ${pidFile}
node -e "${server}" </dev/null >/dev/null 2>&1 &
i=0; while [ ! -s ${pidFile} ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
[ -s ${pidFile} ]
`,
    { mode: 0o755 },
  );
  fs.writeFileSync(
    path.join(dir, 'stop_both'),
    `#!/bin/sh
echo "stop_both $CROFT_MODULE $CROFT_STATE" >> ${log}
[ -s ${pidFile} ] && kill $(cat ${pidFile}) 2>/dev/null
rm -f ${pidFile}
exit 0
`,
    { mode: 0o755 },
  );
  const http: CheckerConfig = {
    name: 'web', type: 'http', url: `http://127.0.0.1:${port}/`, expectStatus: [200],
    intervalMs: 50, timeoutMs: 200, rise: 1, fall: 2, onFailure: 'restart',
  };
  const cfg: ModuleConfig = {
    file: path.join(dir, 'module.yaml'),
    name,
    kind: 'light',
    nodes: ['n1'],
    scripts: { startBoth: path.join(dir, 'start_both'), stopBoth: path.join(dir, 'stop_both'), timeoutMs: 5000, killGraceMs: 200 },
    checkers: [http],
    restart: { maxloop: 2, windowMs: 60_000 },
    ...extra,
  };
  return { cfg, dir, pidFile, log };
}

function recordingLogger(): ModuleLogger & { lines: { obj: Record<string, unknown>; msg: string | undefined }[] } {
  const lines: { obj: Record<string, unknown>; msg: string | undefined }[] = [];
  const rec = (obj: object, msg?: string) => void lines.push({ obj: obj as Record<string, unknown>, msg });
  return { lines, info: rec, warn: rec, error: rec };
}

function killApp(pidFile: string): number {
  const pid = Number(fs.readFileSync(pidFile, 'utf8'));
  process.kill(pid, 'SIGKILL');
  return pid;
}

test('the runtime starts the service, and restarts it when it is killed', async () => {
  const port = await freePort();
  const { cfg, pidFile, log } = appModule('web1', port);
  const logger = recordingLogger();
  const rt = new ModuleRuntime({ module: cfg, node: 'n1', cluster: 'c1', getModuleState: () => undefined, logger });
  runtimes.push(rt);
  const transitions: TransitionEvent[] = [];
  const scripts: ScriptEvent[] = [];
  rt.on('transition', (e: TransitionEvent) => transitions.push(e));
  rt.on('script', (e: ScriptEvent) => scripts.push(e));

  rt.start('test');
  await waitFor('UP', () => rt.state() === 'UP');
  const first = await get(port);
  assert.match(first ?? '', /^hello \d+$/);
  await waitFor('checker healthy', () => rt.status().checkers[0]?.health === 'healthy');

  const killed = killApp(pidFile);
  await waitFor('leaving UP', () => rt.state() !== 'UP');
  await waitFor('UP again', () => rt.state() === 'UP');
  const second = await get(port);
  assert.ok(second && second !== `hello ${killed}`, `service answers after restart: ${second}`);
  const st = rt.status();
  assert.equal(st.restarts, 1);
  assert.equal(st.scriptRunning, null);
  assert.equal(st.checkers[0]?.name, 'web');
  assert.equal(st.checkers[0]?.type, 'http');
  assert.ok(st.checkers[0]?.lastProbeMs !== null);
  assert.deepEqual(transitions.map((t) => `${t.from}->${t.to}`), ['STOP->WAIT', 'WAIT->UP', 'UP->WAIT', 'WAIT->UP']);
  assert.match(transitions[2]!.cause, /checker web failed: .*restart 1\/2/);
  assert.deepEqual(fs.readFileSync(log, 'utf8').trim().split('\n'), ['start_both web1 UP', 'stop_both web1 WAIT', 'start_both web1 UP']);
  assert.deepEqual(scripts.map((s) => `${s.name}:${s.result}`), ['start_both:ok', 'stop_both:ok', 'start_both:ok']);
  const c = rt.counters();
  assert.equal(c.scriptRuns['start_both:ok'], 2);
  assert.equal(c.scriptRuns['stop_both:ok'], 1);
  assert.ok((c.probes['web:ok'] ?? 0) >= 1 && (c.probes['web:fail'] ?? 0) >= 2);
  // Logs: one event per state change with module, from, to, cause; script output with the script name.
  const changes = logger.lines.filter((l) => l.msg === 'module state change');
  assert.equal(changes.length, 4);
  assert.deepEqual(Object.keys(changes[0]!.obj).sort(), ['cause', 'event', 'from', 'module', 'to']);
  assert.ok(logger.lines.some((l) => l.msg === 'starting on n1' && l.obj.script === 'start_both' && l.obj.module === 'web1'));

  rt.stop('test');
  await waitFor('STOP', () => rt.state() === 'STOP');
  assert.equal(await get(port), null, 'service is stopped');
});

test('killed again and again: after maxloop restarts the module is STOP and stop_both ran', async () => {
  const port = await freePort();
  const { cfg, pidFile, log } = appModule('web2', port);
  const rt = new ModuleRuntime({ module: cfg, node: 'n1', cluster: 'c1', getModuleState: () => undefined });
  runtimes.push(rt);
  const transitions: TransitionEvent[] = [];
  rt.on('transition', (e: TransitionEvent) => transitions.push(e));
  rt.start('test');
  for (let i = 1; i <= 2; i++) {
    await waitFor(`UP ${i}`, () => rt.state() === 'UP');
    await waitFor('checker healthy', () => rt.status().checkers[0]?.health === 'healthy');
    killApp(pidFile);
    await waitFor('leaving UP', () => rt.state() !== 'UP');
  }
  await waitFor('UP 3', () => rt.state() === 'UP');
  await waitFor('checker healthy', () => rt.status().checkers[0]?.health === 'healthy');
  assert.equal(rt.status().restarts, 2);
  killApp(pidFile);
  await waitFor('STOP', () => rt.state() === 'STOP');
  const last = transitions[transitions.length - 1]!;
  assert.equal(last.to, 'STOP');
  assert.match(last.cause, /checker web .*maxloop reached/);
  const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
  assert.equal(lines[lines.length - 1], 'stop_both web2 STOP');
  assert.equal(lines.filter((l) => l.startsWith('start_both')).length, 3);
  assert.equal(await get(port), null);
  assert.equal(rt.status().scriptRunning, null);
});

test('a module checker flips the module WAIT -> UP -> WAIT with the other module state', async () => {
  const port = await freePort();
  let dbState: string | undefined = 'WAIT';
  const dep: CheckerConfig = {
    name: 'db', type: 'module', module: 'db', node: 'local', states: ['UP'],
    intervalMs: 50, timeoutMs: 100, rise: 1, fall: 1, onFailure: 'wait',
  };
  const { cfg, log } = appModule('web3', port);
  cfg.checkers = [dep, ...cfg.checkers];
  const asked: string[] = [];
  const rt = new ModuleRuntime({
    module: cfg, node: 'n1', cluster: 'c1',
    getModuleState: (m, n) => {
      asked.push(`${m}@${n}`);
      return dbState;
    },
  });
  runtimes.push(rt);
  rt.start('test');
  assert.equal(rt.state(), 'WAIT');
  await sleep(300);
  assert.equal(rt.state(), 'WAIT', 'waits while db is not UP');
  assert.equal(fs.existsSync(log), false, 'no script ran while waiting');
  assert.ok(asked.includes('db@local'));
  assert.equal(rt.status().checkers.find((c) => c.name === 'web')?.lastProbeMs, null, 'app checker does not run in WAIT');
  dbState = 'UP';
  await waitFor('UP', () => rt.state() === 'UP');
  assert.match((await get(port)) ?? '', /^hello/);
  dbState = 'WAIT';
  await waitFor('WAIT', () => rt.state() === 'WAIT');
  await waitFor('stop_both done', () => rt.status().scriptRunning === null);
  assert.equal(await get(port), null, 'application stopped while its dependency is down');
  assert.equal(rt.status().restarts, 0);
  dbState = 'UP';
  await waitFor('UP again', () => rt.state() === 'UP');
  rt.stop('test');
  await waitFor('STOP', () => rt.state() === 'STOP');
});

test('close() stops the checkers and runs no script', async () => {
  const port = await freePort();
  const { cfg, log, pidFile } = appModule('web4', port);
  const rt = new ModuleRuntime({ module: cfg, node: 'n1', cluster: 'c1', getModuleState: () => undefined });
  rt.start('test');
  await waitFor('UP', () => rt.state() === 'UP');
  await rt.close();
  const probes = JSON.stringify(rt.counters().probes);
  killApp(pidFile);
  await sleep(300);
  assert.equal(JSON.stringify(rt.counters().probes), probes, 'no probe after close');
  assert.equal(rt.state(), 'UP');
  assert.deepEqual(fs.readFileSync(log, 'utf8').trim().split('\n'), ['start_both web4 UP']);
});
