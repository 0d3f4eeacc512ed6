// Config agreement between two real daemons on loopback (issue 12, part 3): each announces its
// config signature in its heartbeats; a module file that differs shows in the status of both (node
// and module), and as one "config mismatch" event; made the same again, it goes ("config agreement").
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { Daemon } from '../../top/daemon/daemon.js';
import { formatStatus } from '../../top/cli/status.js';
import type { ConfigMismatch } from '../../top/daemon/agreement.js';

/** The two cluster.yaml differ by their state_dir (one per daemon: they run on one machine). */
function writeConfig(dir: string, root: string, hbPort: number, webText: string): void {
  fs.mkdirSync(path.join(dir, 'modules'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'cluster.yaml'), [
    'name: agree', `key: "${'a'.repeat(40)}"`, `heartbeat: { port: ${hbPort}, interval_ms: 50, timeout_ms: 400 }`,
    'nodes:', '  n1: { addresses: [127.0.0.1] }', '  n2: { addresses: [127.0.0.2] }',
    `api: { host: 127.0.0.1, port: 1, socket: ${path.join(root, 'api.sock')} }`, `state_dir: ${path.join(dir, 'state')}`,
  ].join('\n') + '\n', { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'modules', 'web.yaml'), webText);
  fs.writeFileSync(path.join(dir, 'modules', 'db.yaml'), 'kind: light\nautostart: false\n');
}

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a module that differs between two daemons shows in status (node, module) and as one config mismatch event; then agreement', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-agree-'));
  const hbPort = 20000 + Math.floor(Math.random() * 40000);
  const d1 = path.join(root, 'n1');
  const d2 = path.join(root, 'n2');
  writeConfig(d1, root, hbPort, 'kind: light\nautostart: false\n');
  writeConfig(d2, root, hbPort, 'kind: light\nautostart: false\n# edited on n2 only\n');
  const a = new Daemon(loadConfig(d1), 'n1', silentLogger());
  const b = new Daemon(loadConfig(d2), 'n2', silentLogger());
  const events: ConfigMismatch[] = [];
  const agreed: string[] = [];
  a.on('config_mismatch', (m: ConfigMismatch) => events.push(m));
  a.on('config_agreement', (e: { node: string }) => agreed.push(e.node));
  try {
    await a.start();
    await b.start();
    await until('n1 sees n2 differ', () => a.status().configMismatch.length > 0);
    const st = a.status();
    assert.deepEqual(st.configMismatch, [{ node: 'n2', differs: ['cluster.yaml', 'web'] }]);
    assert.deepEqual(st.nodes.map((n) => [n.name, n.configDiffers]), [['n1', []], ['n2', ['cluster.yaml', 'web']]]);
    // Each node's cluster.yaml signature (the web console shows it): both known, and they differ.
    const [s1, s2] = st.nodes.map((n) => n.configSignature);
    assert.match(s1 ?? '', /^[0-9a-f]{16}$/);
    assert.match(s2 ?? '', /^[0-9a-f]{16}$/);
    assert.notEqual(s1, s2);
    assert.equal(b.status().nodes.find((n) => n.name === 'n2')?.configSignature, s2);
    assert.deepEqual([st.modules.web?.configDiffers, st.modules.db?.configDiffers], [['n2'], []]);
    assert.equal(st.mixedVersions, false);
    assert.deepEqual(b.status().configMismatch, [{ node: 'n1', differs: ['cluster.yaml', 'web'] }]);
    const text = formatStatus(st);
    assert.match(text, /^n2\s+UP .*p3\s+differs: cluster\.yaml, web$/m);
    assert.match(text, /^web\s+light\s+STOP\s+STOP \(config differs\)$/m);
    assert.match(text, /^config mismatch: n2 differs from n1 in cluster\.yaml, web/m);
    await until('the mismatch event', () => events.length > 0, 3000);
    await new Promise((r) => setTimeout(r, 300)); // more checks: still one event
    assert.deepEqual(events, [{ node: 'n2', differs: ['cluster.yaml', 'web'] }]);
    // n2 gets n1's module file and reloads: the next heartbeat carries the new signature; what is
    // left is cluster.yaml (a reload cannot apply it), told once more as a new difference.
    fs.copyFileSync(path.join(d1, 'modules', 'web.yaml'), path.join(d2, 'modules', 'web.yaml'));
    await b.reloadFromDisk('test');
    await until('web agrees', () => a.status().modules.web?.configDiffers.length === 0);
    assert.deepEqual(a.status().configMismatch, [{ node: 'n2', differs: ['cluster.yaml'] }]);
    await until('the second event', () => events.length === 2, 3000);
    assert.deepEqual(events[1], { node: 'n2', differs: ['cluster.yaml'] });
    assert.deepEqual(agreed, []);
  } finally {
    await a.stop();
    await b.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
});
