// Reload without restart (issue 12 part 4): the pure diff of two configurations, and a daemon built
// in-process (one node on loopback, light modules whose scripts log to a file) that applies a
// changed configuration: added started, removed stopped, changed restarted, the rest untouched;
// an invalid configuration or a cluster.yaml change refused whole.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'vitest';
import { buildApi } from '../../top/api/app.js';
import { diffConfig } from '../../src/config/diff.js';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/problems.js';
import { Daemon } from '../../top/daemon/daemon.js';
import { CroftError } from '../../src/errors.js';
import { silentLogger } from '../../src/log/logger.js';
import { freePort } from '../helpers/net.js';

const key = 'k'.repeat(40);

function clusterYaml(dir: string, hbPort: number, intervalMs = 200): string {
  return [
    'name: r',
    `key: "${key}"`,
    `heartbeat: { port: ${hbPort}, interval_ms: ${intervalMs} }`,
    'nodes:',
    '  n1: { addresses: [127.0.0.1] }',
    `api: { host: 127.0.0.1, port: 1, socket: ${path.join(dir, 'run', 'api.sock')} }`,
    `state_dir: ${path.join(dir, 'state')}`,
  ].join('\n') + '\n';
}

/** A light module whose scripts append "<start|stop> <name>" to events.log. */
function writeModule(dir: string, name: string, timeoutMs = 5000): void {
  const mdir = path.join(dir, 'modules', name);
  fs.mkdirSync(mdir, { recursive: true });
  const log = path.join(dir, 'events.log');
  for (const verb of ['start', 'stop']) {
    fs.writeFileSync(path.join(mdir, `${verb}_both`), `#!/bin/sh\necho "${verb} ${name}" >> ${log}\n`, { mode: 0o755 });
  }
  fs.writeFileSync(path.join(mdir, 'module.yaml'),
    `kind: light\nscripts:\n  start_both: ./start_both\n  stop_both: ./stop_both\n  timeout_ms: ${timeoutMs}\n`);
}

function events(dir: string): string[] {
  const file = path.join(dir, 'events.log');
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n') : [];
}

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-reload-'));
  fs.mkdirSync(path.join(dir, 'modules'));
  return dir;
}

test('diffConfig: added, removed, changed, unchanged modules; cluster.yaml fields that differ', () => {
  const dir = tempDir();
  try {
    fs.writeFileSync(path.join(dir, 'cluster.yaml'), clusterYaml(dir, 4800), { mode: 0o600 });
    for (const m of ['a', 'b', 'c']) writeModule(dir, m);
    const before = loadConfig(dir);
    assert.deepEqual(diffConfig(before, loadConfig(dir)), { added: [], removed: [], changed: [], unchanged: ['a', 'b', 'c'], cluster: [] });
    writeModule(dir, 'b', 9000);
    fs.rmSync(path.join(dir, 'modules', 'c'), { recursive: true });
    writeModule(dir, 'd');
    // An edited script is no configuration change (scripts are read from disk at each run).
    fs.appendFileSync(path.join(dir, 'modules', 'a', 'start_both'), 'true\n');
    assert.deepEqual(diffConfig(before, loadConfig(dir)), { added: ['d'], removed: ['c'], changed: ['b'], unchanged: ['a'], cluster: [] });
    fs.writeFileSync(path.join(dir, 'cluster.yaml'), clusterYaml(dir, 4801, 300).replace('k'.repeat(40), 'x'.repeat(40)), { mode: 0o600 });
    assert.deepEqual(diffConfig(before, loadConfig(dir)).cluster, ['heartbeat', 'key']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a running daemon reloads: added started, removed stopped, changed restarted, the others untouched; invalid or cluster.yaml changes refused whole', async () => {
  const dir = tempDir();
  const hbPort = await freePort();
  fs.writeFileSync(path.join(dir, 'cluster.yaml'), clusterYaml(dir, hbPort), { mode: 0o600 });
  for (const m of ['a', 'b', 'c']) writeModule(dir, m);
  const daemon = new Daemon(loadConfig(dir), 'n1', silentLogger());
  const transitions: string[] = [];
  daemon.on('transition', (t: { module: string; from: string; to: string }) => transitions.push(`${t.module} ${t.from}->${t.to}`));
  const local = buildApi(daemon, { local: true });
  const tcp = buildApi(daemon);
  try {
    await daemon.start();
    await until('a, b, c UP', () => ['a', 'b', 'c'].every((m) => daemon.runtime(m).state() === 'UP'));
    const a = daemon.runtime('a');
    const b = daemon.runtime('b');
    transitions.length = 0;
    fs.rmSync(path.join(dir, 'events.log'));

    // a untouched, b changed, c removed (its module.yaml: its stop script must still be there to
    // run), d added.
    writeModule(dir, 'b', 9000);
    fs.rmSync(path.join(dir, 'modules', 'c', 'module.yaml'));
    writeModule(dir, 'd');
    const r = await daemon.reloadFromDisk('test');
    assert.deepEqual({ started: r.started, stopped: r.stopped, restarted: r.restarted, untouched: r.untouched },
      { started: ['d'], stopped: ['c'], restarted: ['b'], untouched: ['a'] });
    assert.equal(daemon.runtime('a'), a, 'the unchanged module keeps its runtime object');
    assert.notEqual(daemon.runtime('b'), b, 'the changed module was re-created');
    assert.equal(b.state(), 'STOP', 'the old runtime of b was stopped');
    assert.equal(daemon.runtimes.has('c'), false);
    assert.ok(!daemon.config.modules.some((m) => m.name === 'c'));
    await until('b and d UP', () => daemon.runtime('b').state() === 'UP' && daemon.runtime('d').state() === 'UP');
    assert.deepEqual(events(dir).sort(), ['start b', 'start d', 'stop b', 'stop c']);
    assert.ok(!transitions.some((t) => t.startsWith('a ')), `no transition of a: ${transitions.join(', ')}`);
    assert.ok(events(dir).indexOf('stop b') < events(dir).indexOf('start b'), 'b stopped before it started again');
    assert.ok('c' in daemon.status().modules === false);

    // Invalid: refused with file:line, nothing changes (d stays, e is not created).
    const badFile = path.join(dir, 'modules', 'a', 'module.yaml');
    const good = fs.readFileSync(badFile, 'utf8');
    fs.writeFileSync(badFile, `${good}restart:\n  maxloop: many\n`);
    writeModule(dir, 'e');
    fs.rmSync(path.join(dir, 'modules', 'd', 'module.yaml'));
    await assert.rejects(daemon.reloadFromDisk('test'), (e: unknown) => e instanceof ConfigError
      && new RegExp(`${badFile}:\\d+:\\d+: restart\\.maxloop`).test(e.message));
    assert.ok(daemon.runtimes.has('d') && !daemon.runtimes.has('e'));
    assert.equal(daemon.runtime('a'), a);
    // The same through the local API: the loader's message, file:line, in the answer.
    const viaApi = await local.inject({ method: 'POST', url: '/api/v1/reload', headers: { host: 'localhost' } });
    assert.equal(viaApi.json().error, 'CROFT_ERR_CONFIG', viaApi.body);
    assert.match(viaApi.json().message, new RegExp(`${badFile}:\\d+`));

    // A cluster.yaml change: refused, saying a restart is needed.
    fs.writeFileSync(badFile, good);
    fs.writeFileSync(path.join(dir, 'cluster.yaml'), clusterYaml(dir, hbPort, 300), { mode: 0o600 });
    await assert.rejects(daemon.reloadFromDisk('test'), (e: unknown) => e instanceof CroftError
      && e.code === 'CROFT_ERR_RELOAD_RESTART' && /heartbeat changed/.test(e.message) && /restart the daemon/.test(e.message));
    assert.ok(daemon.runtimes.has('d') && !daemon.runtimes.has('e'));

    // Back to the running cluster.yaml: the API applies it (d removed, e added).
    fs.writeFileSync(path.join(dir, 'cluster.yaml'), clusterYaml(dir, hbPort), { mode: 0o600 });
    // Over TCP with no credential configured: refused like every command.
    const anon = await tcp.inject({ method: 'POST', url: '/api/v1/reload', headers: { host: '127.0.0.1' }, remoteAddress: '127.0.0.1' });
    assert.equal(anon.statusCode, 403, anon.body);
    assert.ok(daemon.runtimes.has('d'));
    const ok = await local.inject({ method: 'POST', url: '/api/v1/reload', headers: { host: 'localhost' } });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.deepEqual({ started: ok.json().started, stopped: ok.json().stopped, untouched: ok.json().untouched },
      { started: ['e'], stopped: ['d'], untouched: ['a', 'b'] });
    assert.equal(daemon.runtime('a'), a);
    assert.ok(!transitions.some((t) => t.startsWith('a ')), `no transition of a: ${transitions.join(', ')}`);
  } finally {
    await daemon.stop('test end');
    await local.close();
    await tcp.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
