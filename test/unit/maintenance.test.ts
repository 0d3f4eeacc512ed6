// Maintenance (croft maintenance on|off): the persisted state (top/daemon/maintenance.ts) survives a
// new daemon; a module in maintenance keeps running while its checker fails (its verdict logged and
// published as suppressed), and acts again once maintenance is off; the API needs operator or admin
// (a viewer is refused, and changes nothing) and shows it in status, metrics and events.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, test } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { ModuleConfig } from '../../src/config/types.js';
import { silentLogger } from '../../src/log/logger.js';
import { MaintenanceGate } from '../../src/module/maintenance.js';
import { ModuleRuntime, type TransitionEvent } from '../../src/module/runtime.js';
import { buildApi } from '../../top/api/app.js';
import { formatStatus } from '../../top/cli/status.js';
import { Daemon } from '../../top/daemon/daemon.js';
import { Maintenance, MAINTENANCE_FILE } from '../../top/daemon/maintenance.js';
import type { NotifyEvent } from '../../top/notify/event.js';
import { closeApi, writeApiConfig } from './api-fixture.js';
import { croftBin } from '../helpers/paths.js';
import { sleep, waitFor as pollUntil } from '../helpers/cluster.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-maint-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
// The project's poll (test/helpers/cluster.ts), at this file's pace and bound.
const waitFor = (what: string, pred: () => boolean, timeoutMs = 5000): Promise<number> => pollUntil(what, pred, timeoutMs, 10);

describe('persisted state', () => {
  test('set, cleared, and read back by a new instance (a daemon restart); written atomically', () => {
    const dir = path.join(root, 'state1');
    const a = new Maintenance(dir);
    assert.deepEqual(a.load(), { node: null, modules: {} }, 'no file: nothing in maintenance');
    assert.equal(a.set('db', true, 'test'), true);
    assert.equal(a.set('db', true, 'test'), false, 'already on');
    assert.equal(a.covers('db'), true);
    assert.equal(a.covers('web'), false);
    const b = new Maintenance(dir);
    b.load();
    assert.equal(b.covers('db'), true, 'read back from disk');
    assert.equal(b.snapshot().modules.db?.by, 'test');
    assert.ok(!fs.existsSync(path.join(dir, `${MAINTENANCE_FILE}.tmp`)));
    b.set(null, true, 'test');
    const c = new Maintenance(dir);
    c.load();
    assert.equal(c.node(), true);
    assert.equal(c.covers('web'), true, 'the node\'s maintenance covers every module');
    c.set(null, false, 'test');
    c.set('db', false, 'test');
    const d = new Maintenance(dir);
    assert.deepEqual(d.load(), { node: null, modules: {} });
  });

  test('an unreadable file is taken as the whole node in maintenance, and said so', () => {
    const dir = path.join(root, 'state2');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, MAINTENANCE_FILE), '{"node": 3');
    const errors: string[] = [];
    const log = { error: (_o: unknown, m: string) => errors.push(m), warn() {}, info() {} } as never;
    const m = new Maintenance(dir, log);
    m.load();
    assert.equal(m.node(), true);
    assert.match(errors[0] ?? '', /cannot be read .*whole node is taken as in maintenance/);
    fs.writeFileSync(path.join(dir, MAINTENANCE_FILE), '{"node": null, "modules": {"db": 1}}');
    assert.equal(new Maintenance(dir).load().node !== null, true, 'a wrong shape too');
  });
});

describe('a module in maintenance', () => {
  test('the gate follows the checker with its rise/fall and reports what it would have done', () => {
    const gate = new MaintenanceGate('db', [{ name: 'pg', type: 'tcp', host: '127.0.0.1', port: 1, intervalMs: 10, timeoutMs: 10, rise: 2, fall: 2, onFailure: 'restart' }]);
    gate.set(true);
    assert.equal(gate.probe('pg', false, 'refused'), null, 'one failure of fall 2');
    assert.deepEqual(gate.probe('pg', false, 'refused'), { module: 'db', checker: 'pg', healthy: false, detail: 'refused', wouldDo: 'restart' });
    assert.equal(gate.probe('pg', false, 'refused'), null, 'reported once');
    assert.equal(gate.probe('pg', true, 'ok'), null);
    assert.equal(gate.probe('pg', true, 'ok')?.healthy, true);
  });

  test('keeps running with a failing checker (suppressed, logged); restarts once maintenance is off', async () => {
    // A tcp checker on a port where nothing listens: the application "died".
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    srv.close();
    const cfg: ModuleConfig = {
      file: path.join(root, 'app.yaml'), name: 'app', kind: 'light', nodes: ['n1'],
      scripts: { timeoutMs: 5000, killGraceMs: 100 },
      checkers: [{ name: 'tcp', type: 'tcp', host: '127.0.0.1', port, intervalMs: 20, timeoutMs: 100, rise: 1, fall: 2, onFailure: 'restart' }],
      restart: { maxloop: 100, windowMs: 3_600_000 },
    };
    const warns: { obj: Record<string, unknown>; msg: string }[] = [];
    const logger = { info() {}, error() {}, warn: (obj: Record<string, unknown>, msg: string) => warns.push({ obj, msg }) };
    const rt = new ModuleRuntime({ module: cfg, node: 'n1', cluster: 'c', getModuleState: () => undefined, logger });
    const transitions: TransitionEvent[] = [];
    const suppressed: unknown[] = [];
    rt.on('transition', (t: TransitionEvent) => transitions.push(t));
    rt.on('suppressed', (v) => suppressed.push(v));
    try {
      rt.setMaintenance(true);
      rt.start('test');
      await waitFor('UP', () => rt.state() === 'UP');
      const upAt = transitions.length;
      await sleep(400); // 20 probes, every one failed
      assert.equal(rt.state(), 'UP', 'still UP: the failure did not restart it');
      assert.equal(transitions.length, upAt, 'no state change while in maintenance');
      assert.equal(suppressed.length, 1, 'the failure is reported once');
      assert.ok(warns.some((w) => w.obj.event === 'suppressed' && /checker tcp failed: .*on_failure restart suppressed \(maintenance\)/.test(w.msg)), JSON.stringify(warns));
      assert.ok((rt.counters().probes['tcp:fail'] ?? 0) >= 5, 'the checker kept probing');
      rt.setMaintenance(false);
      await waitFor('a restart (UP -> WAIT)', () => transitions.slice(upAt).some((t) => t.from === 'UP' && t.to === 'WAIT'), 3000);
      assert.match(transitions.slice(upAt).find((t) => t.to === 'WAIT')!.cause, /checker tcp failed/);
    } finally {
      await rt.close();
    }
  });
});

describe('daemon and API', () => {
  const dir = path.join(root, 'api');
  const stateDir = path.join(root, 'api-state');
  writeApiConfig(dir, 'mt', [
    '  tokens: [sesame-token-0123456789]',
    '  users: [{ name: eve, password: "viewer-pass-1", role: viewer }, { name: olga, password: "operator-pass-1", role: operator }]',
  ], { web: 'kind: light\nnodes: [n1]\nautostart: false\n', db: 'kind: light\nnodes: [n1]\nautostart: false\n', far: 'kind: light\nnodes: [n2]\n' });
  fs.appendFileSync(path.join(dir, 'cluster.yaml'), `\nstate_dir: ${stateDir}\n`);
  const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
  const viewer = basic('eve', 'viewer-pass-1');
  const operator = basic('olga', 'operator-pass-1');

  test('a viewer may read but not set maintenance (403, nothing changed); an operator may; a new daemon finds it', async () => {
    const daemon = new Daemon(loadConfig(dir), 'n1', silentLogger());
    const app = buildApi(daemon);
    try {
      for (const url of ['/api/v1/modules/db/maintenance/on', '/api/v1/maintenance/on', '/api/v1/modules/db/start']) {
        const r = await app.inject({ method: 'POST', url, headers: viewer });
        assert.equal(r.statusCode, 403, url);
        assert.equal(r.json().error, 'CROFT_ERR_API_ROLE');
        assert.match(r.json().message, /role is viewer; this needs operator or admin/);
      }
      assert.equal(fs.existsSync(path.join(stateDir, MAINTENANCE_FILE)), false, 'a refused request wrote nothing');
      assert.equal(daemon.maintenance.covers('db'), false);
      const none = await app.inject({ method: 'POST', url: '/api/v1/modules/db/maintenance/on' });
      assert.equal(none.statusCode, 401, 'no credential: 401');

      const on = await app.inject({ method: 'POST', url: '/api/v1/modules/db/maintenance/on', headers: operator });
      assert.equal(on.statusCode, 200, on.body);
      assert.equal(on.json().changed, true);
      assert.equal(on.json().state.modules.db.by, 'olga (operator) through the API', 'who set it is kept');
      assert.equal((daemon.runtime('db') as ModuleRuntime).maintenance(), true, 'the runtime is told');
      assert.equal((daemon.runtime('web') as ModuleRuntime).maintenance(), false);
      assert.equal((await app.inject({ method: 'POST', url: '/api/v1/modules/far/maintenance/on', headers: operator })).statusCode, 404, 'a module not on this node');
      assert.equal((await app.inject({ method: 'POST', url: '/api/v1/reload', headers: operator })).json().error, 'CROFT_ERR_API_ROLE', 'reload needs admin');

      const st = await app.inject({ method: 'GET', url: '/api/v1/status', headers: viewer });
      assert.equal(st.statusCode, 200);
      assert.deepEqual(Object.keys(st.json().maintenance.modules), ['db']);
      assert.match(formatStatus(st.json()), /maintenance on n1: db since/);
      const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
      assert.match(metrics, /^croft_module_maintenance\{module="db"\} 1$/m);
      assert.match(metrics, /^croft_module_maintenance\{module="web"\} 0$/m);
      assert.match(metrics, /^croft_node_maintenance 0$/m);
      const ev = await app.inject({ method: 'GET', url: '/api/v1/events?module=db&kind=maintenance', headers: viewer });
      assert.equal(ev.statusCode, 200);
      const events = ev.json().events as NotifyEvent[];
      assert.equal(events.length, 1);
      assert.deepEqual([events[0]!.from, events[0]!.to, events[0]!.node], ['off', 'on', 'n1']);
      assert.equal((await app.inject({ method: 'GET', url: '/api/v1/events?since=abc', headers: viewer })).statusCode, 400);

      const node = await app.inject({ method: 'POST', url: '/api/v1/maintenance/on', headers: { authorization: 'Bearer sesame-token-0123456789' } });
      assert.equal(node.statusCode, 200);
      assert.equal((daemon.runtime('web') as ModuleRuntime).maintenance(), true, 'the node\'s maintenance covers every module');
    } finally {
      await closeApi([app], daemon, '/nonexistent');
    }
    // A restart: a new daemon over the same state_dir.
    const again = new Daemon(loadConfig(dir), 'n1', silentLogger());
    const app2 = buildApi(again, { local: true });
    try {
      assert.equal((again.runtime('db') as ModuleRuntime).maintenance(), true);
      assert.equal((again.runtime('web') as ModuleRuntime).maintenance(), true);
      const st = (await app2.inject({ method: 'GET', url: '/api/v1/status' })).json();
      assert.ok(st.maintenance.node !== null);
      assert.match(formatStatus(st), /maintenance: the whole node n1 since/);
      assert.match(formatStatus(st), /\[maint\]/);
      assert.equal((await app2.inject({ method: 'POST', url: '/api/v1/maintenance/off' })).json().changed, true, 'the local socket (root) may');
      assert.equal((again.runtime('web') as ModuleRuntime).maintenance(), false);
      assert.equal((again.runtime('db') as ModuleRuntime).maintenance(), true, 'the module\'s own maintenance stays');
    } finally {
      await closeApi([app2], again, dir);
    }
  });
});

test('croft maintenance: a wrong verb or extra words are usage errors (exit 2), said before any daemon is reached', () => {
  for (const args of [['bogus'], ['status', 'db'], ['on', 'db', 'extra']]) {
    const r = spawnSync(process.execPath, [croftBin, 'maintenance', ...args], { encoding: 'utf8', env: { ...process.env, CROFT_CONFIG: '/nonexistent' } });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /usage: croft maintenance on\|off \[<module>\]/);
  }
  const help = spawnSync(process.execPath, [croftBin, 'help', 'maintenance'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  assert.match(help.stdout, /maintenance on\|off\|status \[<module>\]/);
});
