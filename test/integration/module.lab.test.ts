// Light modules in a real lab: real daemons run real scripts; checkers probe a real HTTP service.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, test } from 'vitest';
import type { ClusterStatus } from '../../top/daemon/daemon.js';
import { Lab } from '../../top/lab/index.js';
import { daemonLog, nodeApi, nodeStatus, waitFor } from '../helpers/cluster.js';
import { fixtures, repoRoot } from '../helpers/paths.js';

const state = (st: ClusterStatus | null, module: string, node: string) => st?.modules[module]?.nodes[node]?.state;

async function waitState(lab: Lab, observer: string, module: string, node: string, want: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(`${module} ${want} on ${node} (seen from ${observer})`,
    async () => state(await nodeStatus(lab, observer), module, node) === want, timeoutMs, 50);
}

async function webPid(lab: Lab, node: string): Promise<number> {
  const r = await lab.exec(node, ['cat', '/run/croft/demo-web.pid']);
  assert.equal(r.code, 0, `pid file of demo-web on ${node}: ${r.stderr}`);
  return Number(r.stdout.trim());
}

async function webAnswers(lab: Lab, node: string): Promise<string | null> {
  const r = await lab.exec('client', ['curl', '-s', '--max-time', '1', `http://${lab.nodeAddress(node)}:8080/`]);
  return r.code === 0 ? r.stdout.trim() : null;
}

describe('light modules in a 3-node lab', { timeout: 180_000 }, () => {
  let lab: Lab;
  let config: string;
  beforeAll(async () => {
    config = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-modtest-'));
    const web = path.join(config, 'modules', 'web');
    fs.cpSync(path.join(repoRoot, 'modules', 'demo-web'), web, { recursive: true });
    // Faster checker and a small maxloop for the test; the rest is the shipped module.
    const yaml = fs.readFileSync(path.join(web, 'module.yaml'), 'utf8')
      .replace('maxloop: 3 ', 'maxloop: 2 ').replace('interval_ms: 500', 'interval_ms: 200').replace('timeout_ms: 400', 'timeout_ms: 150');
    assert.match(yaml, /maxloop: 2 /);
    fs.writeFileSync(path.join(web, 'module.yaml'), yaml);
    fs.cpSync(path.join(fixtures, 'lab-modules'), path.join(config, 'modules'), { recursive: true });
    lab = await Lab.up({ name: `md${process.pid % 100000}`, nodes: 3, clients: 1, config, intervalMs: 100, timeoutMs: 500 });
  });
  afterAll(async () => {
    await lab?.down();
    fs.rmSync(config, { recursive: true, force: true });
  });

  test('the web module starts on every node and its service answers', async () => {
    for (const n of ['n1', 'n2', 'n3']) await waitState(lab, 'n1', 'web', n, 'UP', 15_000);
    for (const n of ['n1', 'n2', 'n3']) assert.equal(await webAnswers(lab, n), `hello from ${n}`);
    const health = await nodeApi<{ state: string }>(lab, 'n2', 'GET', '/health/web');
    assert.equal(health.status, 200);
    const ready = await nodeApi<string>(lab, 'n2', 'GET', '/var/modules/web/ready.txt');
    assert.equal(ready.status, 200);
    assert.equal(ready.body, 'ready\n');
  });

  test('its checker failing restarts it; after maxloop restarts in the window it stops', async () => {
    await waitState(lab, 'n3', 'web', 'n3', 'UP');
    const restartsOf = async () => (await nodeApi<{ restarts: number }>(lab, 'n3', 'GET', '/api/v1/modules/web')).body.restarts;
    // maxloop is 2: two kills are restarted...
    for (let i = 1; i <= 2; i++) {
      const pid = await webPid(lab, 'n3');
      assert.equal((await lab.exec('n3', ['kill', '-9', String(pid)])).code, 0);
      await waitFor(`web restarted on n3 (kill ${i})`, async () => (await restartsOf()) === i, 10_000);
      await waitState(lab, 'n3', 'web', 'n3', 'UP');
      await waitFor('the service answers again', async () => (await webAnswers(lab, 'n3')) === 'hello from n3', 5_000);
      assert.notEqual(await webPid(lab, 'n3'), pid, 'a new process serves');
    }
    // ...the third stops the module.
    const t0 = Date.now();
    const pid = await webPid(lab, 'n3');
    await lab.exec('n3', ['kill', '-9', String(pid)]);
    await waitState(lab, 'n3', 'web', 'n3', 'STOP');
    const stop = daemonLog(lab, 'n3').find((l) => Date.parse(l.time) >= t0 && l.module === 'web' && l.to === 'STOP');
    assert.ok(stop, 'a state change to STOP was logged');
    assert.equal(stop.node, 'n3');
    assert.equal(stop.event, 'module_state');
    assert.equal(stop.from, 'WAIT');
    assert.match(String(stop.cause), /maxloop/);
    assert.equal((await nodeApi(lab, 'n3', 'GET', '/health/web')).status, 503);
    assert.equal((await nodeApi<string>(lab, 'n3', 'GET', '/var/modules/web/ready.txt')).body, 'not_ready\n');
    // The others saw it too, through the heartbeats.
    await waitState(lab, 'n1', 'web', 'n3', 'STOP');
    // A person starts it again.
    const r = await lab.exec('n3', ['croft', 'start', 'web']);
    assert.equal(r.code, 0, r.stderr);
    await waitState(lab, 'n3', 'web', 'n3', 'UP');
  });

  test('a module checker on a module of another node puts the module in WAIT, and back to UP', async () => {
    await waitState(lab, 'n1', 'db', 'n2', 'UP');
    await waitState(lab, 'n1', 'app', 'n1', 'UP');
    assert.equal((await lab.exec('n1', ['test', '-f', '/run/croft/app.started'])).code, 0, 'app started');
    assert.equal((await lab.exec('n2', ['croft', 'stop', 'db'])).code, 0);
    await waitState(lab, 'n1', 'app', 'n1', 'WAIT');
    // WAIT is announced as stop_both starts: give the script its few ms to run.
    await waitFor('stop_both ran on the way to WAIT', async () => (await lab.exec('n1', ['test', '-f', '/run/croft/app.started'])).code !== 0, 2_000);
    assert.equal((await lab.exec('n2', ['croft', 'start', 'db'])).code, 0);
    await waitState(lab, 'n1', 'app', 'n1', 'UP');
    assert.equal((await lab.exec('n1', ['test', '-f', '/run/croft/app.started'])).code, 0, 'start_both ran again');
    // Losing the node that runs db has the same effect.
    await lab.kill('n2');
    await waitState(lab, 'n1', 'app', 'n1', 'WAIT');
    await lab.start('n2');
    await waitState(lab, 'n1', 'app', 'n1', 'UP', 15_000);
  });

  test('croft status shows nodes and the state of every module on every node', async () => {
    // n2 was just restarted by the previous test: let its modules come up.
    for (const n of ['n1', 'n2', 'n3']) await waitState(lab, 'n1', 'web', n, 'UP');
    await waitState(lab, 'n3', 'db', 'n2', 'UP');
    const r = await lab.exec('n1', ['croft', 'status']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /view epoch \d+ \[n1 n2 n3\], converged/);
    assert.match(r.stdout, /^web\s+light\s+UP\s+UP\s+UP$/m);
    assert.match(r.stdout, /^app\s+light\s+UP\s+-\s+-$/m);
    const j = await lab.exec('n3', ['croft', 'status', '--json']);
    const st = JSON.parse(j.stdout) as ClusterStatus;
    assert.equal(st.node, 'n3');
    assert.equal(state(st, 'db', 'n2'), 'UP');
  });
});
