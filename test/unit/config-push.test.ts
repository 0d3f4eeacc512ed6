// croft config push (issue 12, part 3): a real daemon's API on 127.0.0.2 receives the sealed
// config folder of n1 from the CLI and swaps it in whole (modes kept, the previous folder kept);
// then the attacks: forged, tampered, replayed, misdirected, stale bundles, path traversal and
// unsafe modes, an invalid configuration: each refused, counted, and the folder left as it was.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, test } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../top/api/app.js';
import { openBundle, sealBundle, type BundleFile } from '../../src/config/bundle.js';
import { loadConfig } from '../../src/config/load.js';
import { configSignature } from '../../src/config/signature.js';
import { Daemon } from '../../top/daemon/daemon.js';
import { configCommand } from '../../top/cli/config.js';
import { silentLogger } from '../../src/log/logger.js';
import { freePort } from '../helpers/net.js';

const key = Buffer.from('p'.repeat(48));
let root = '';
let n1 = '';
let n2 = '';
let port = 0;
let daemon: Daemon;
let app: FastifyInstance;

function writeConfig(dir: string, extraModule = ''): void {
  fs.mkdirSync(path.join(dir, 'modules', 'web'), { recursive: true, mode: 0o755 });
  fs.writeFileSync(path.join(dir, 'cluster.key'), key, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'cluster.yaml'), [
    'name: push',
    'key_file: cluster.key',
    'nodes:',
    '  n1: { addresses: [127.0.0.1] }',
    '  n2: { addresses: [127.0.0.2] }',
    `api: { host: 127.0.0.2, port: ${port}, socket: ${path.join(root, 'run', 'api.sock')} }`,
    `state_dir: ${path.join(root, 'state')}`,
  ].join('\n') + '\n', { mode: 0o644 });
  fs.writeFileSync(path.join(dir, 'modules', 'web', 'start_both'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  fs.writeFileSync(path.join(dir, 'modules', 'web', 'module.yaml'), 'kind: light\nautostart: false\nscripts:\n  start_both: ./start_both\n');
  if (extraModule) fs.writeFileSync(path.join(dir, 'modules', 'api.yaml'), extraModule);
}

function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) walk(r);
      else out[r] = `${(fs.statSync(path.join(dir, r)).mode & 0o7777).toString(8)} ${fs.readFileSync(path.join(dir, r), 'utf8')}`;
    }
  };
  walk('');
  return out;
}

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-push-'));
  fs.chmodSync(root, 0o755);
  port = await freePort();
  n1 = path.join(root, 'n1', 'croft');
  n2 = path.join(root, 'n2', 'croft');
  for (const d of [n1, n2]) fs.mkdirSync(d, { recursive: true, mode: 0o755 });
  for (const d of [path.join(root, 'n1'), path.join(root, 'n2')]) fs.chmodSync(d, 0o755);
  writeConfig(n1, 'kind: light\nautostart: false\n');
  writeConfig(n2);
  daemon = new Daemon(loadConfig(n2), 'n2', silentLogger());
  app = buildApi(daemon);
  await app.listen({ host: '127.0.0.2', port });
});

afterAll(async () => {
  await app?.close();
  fs.rmSync(root, { recursive: true, force: true });
});

const post = (body: Buffer) => app.inject({ method: 'POST', url: '/api/v1/config/push', headers: { host: `127.0.0.2:${port}`, 'content-type': 'application/octet-stream' }, payload: body });
const files = (): BundleFile[] => {
  const out: BundleFile[] = [];
  for (const [p, v] of Object.entries(snapshot(n1))) out.push({ path: p, mode: parseInt(v.split(' ')[0] ?? '644', 8), data: fs.readFileSync(path.join(n1, p)) });
  return out;
};
let at = Date.now();
const seal = (f: BundleFile[], over: Partial<{ from: string; to: string; at: number; key: Buffer; reload: boolean }> = {}) =>
  sealBundle(over.key ?? key, { v: 1, from: over.from ?? 'n1', to: over.to ?? 'n2', at: over.at ?? (at += 1000) }, { files: f, reload: over.reload ?? false });

test('croft config push: n2 gets n1\'s folder whole, modes kept (the key stays 0600), the previous folder kept', async () => {
  const before = snapshot(n2);
  assert.notDeepEqual(before, snapshot(n1));
  const lines: string[] = [];
  const code = await configCommand(['push', '--config', n1, '--node', 'n1'], { log: (s) => lines.push(s), error: (s) => lines.push(s) });
  assert.equal(code, 0, lines.join('\n'));
  assert.match(lines.join('\n'), /^n2: 5 files \(\d+ bytes\) in place$/m);
  assert.deepEqual(snapshot(n2), snapshot(n1));
  assert.equal(fs.statSync(path.join(n2, 'cluster.key')).mode & 0o777, 0o600);
  assert.equal(fs.statSync(path.join(n2, 'modules', 'web', 'start_both')).mode & 0o777, 0o755);
  assert.deepEqual(snapshot(path.join(root, 'n2', '.croft.previous')), before);
  assert.deepEqual(fs.readdirSync(path.join(root, 'n2')).sort(), ['.croft.previous', 'croft']);
  assert.equal(daemon.push.accepted, 1);
  // The signatures now agree: what the heartbeats announce.
  assert.deepEqual(configSignature(loadConfig(n2)).modules, configSignature(loadConfig(n1)).modules);
});

test('attacks: forged, tampered, misdirected, stale and replayed bundles are refused, counted, and change nothing', async () => {
  const before = snapshot(n2);
  const good = seal(files());
  const cases: [string, Buffer, number, string][] = [
    ['forged (another key)', seal(files(), { key: Buffer.from('x'.repeat(48)) }), 401, 'CROFT_ERR_PUSH_AUTH'],
    ['tampered ciphertext', (() => { const b = Buffer.from(good); b.writeUInt8(b.readUInt8(b.length - 40) ^ 1, b.length - 40); return b; })(), 401, 'CROFT_ERR_PUSH_AUTH'],
    ['tampered header (to: n2 -> n1 in the signed header)', Buffer.from(good.toString('latin1').replace('"to":"n2"', '"to":"n1"'), 'latin1'), 401, 'CROFT_ERR_PUSH_AUTH'],
    ['truncated', good.subarray(0, 30), 400, 'CROFT_ERR_PUSH_BUNDLE'],
    ['not a bundle', Buffer.from('hello'), 400, 'CROFT_ERR_PUSH_BUNDLE'],
    ['sealed for another node', seal(files(), { to: 'n1' }), 409, 'CROFT_ERR_PUSH_REPLAY'],
    ['from this node itself', seal(files(), { from: 'n2' }), 409, 'CROFT_ERR_PUSH_REPLAY'],
    ['from a node not in cluster.yaml', seal(files(), { from: 'n9' }), 409, 'CROFT_ERR_PUSH_REPLAY'],
    ['ten minutes old', seal(files(), { at: Date.now() - 600_000 }), 409, 'CROFT_ERR_PUSH_REPLAY'],
  ];
  const refused = { ...daemon.push.refused };
  for (const [what, body, status, error] of cases) {
    const r = await post(body);
    assert.equal(r.statusCode, status, `${what}: ${r.body}`);
    assert.equal(r.json().error, error, what);
  }
  assert.equal(daemon.push.refused.auth - refused.auth, 3);
  assert.equal(daemon.push.refused.bundle - refused.bundle, 2);
  assert.equal(daemon.push.refused.replay - refused.replay, 4);
  assert.deepEqual(snapshot(n2), before);
  // The good one is accepted once; the same bytes again are a replay, even re-sent at once.
  assert.equal((await post(good)).statusCode, 200);
  const again = await post(good);
  assert.equal(again.statusCode, 409);
  assert.match(again.json().message, /not newer than the last push accepted/);
  // An older bundle made before the last accepted one is refused too (never roll back a newer push).
  const older = seal(files(), { at: at - 5000 });
  assert.equal((await post(older)).statusCode, 409);
});

test('attacks: path traversal, hidden names and unsafe modes in the bundle are refused before anything is written', async () => {
  const before = snapshot(n2);
  const parent = fs.readdirSync(path.join(root, 'n2')).sort();
  const bad: [BundleFile, RegExp][] = [
    [{ path: '../evil', mode: 0o644, data: Buffer.from('x') }, /not a plain file or folder name/],
    [{ path: '/etc/evil', mode: 0o644, data: Buffer.from('x') }, /not a plain file or folder name/],
    [{ path: 'modules/../../evil', mode: 0o644, data: Buffer.from('x') }, /not a plain file or folder name/],
    [{ path: 'modules/./x', mode: 0o644, data: Buffer.from('x') }, /not a plain file or folder name/],
    [{ path: '.ssh/authorized_keys', mode: 0o600, data: Buffer.from('x') }, /not a plain file or folder name/],
    [{ path: 'a\u0000b', mode: 0o644, data: Buffer.from('x') }, /not a plain file or folder name/],
    [{ path: 'run.sh', mode: 0o4755, data: Buffer.from('x') }, /only permission bits within 0755/],
    [{ path: 'open.yaml', mode: 0o666, data: Buffer.from('x') }, /only permission bits within 0755/],
    [{ path: 'cluster.yaml', mode: 0o644, data: Buffer.from('x') }, /listed twice/],
    [{ path: 'cluster.yaml/x', mode: 0o644, data: Buffer.from('x') }, /both a file and the folder/],
  ];
  for (const [f, why] of bad) {
    const r = await post(seal([...files(), f]));
    assert.equal(r.statusCode, 400, `${f.path}: ${r.body}`);
    assert.match(r.json().message, why, f.path);
    // Sealed with the right key, so openBundle is what refuses it (the seal itself was fine).
    assert.throws(() => openBundle(key, seal([...files(), f])), why);
  }
  assert.deepEqual(snapshot(n2), before);
  assert.deepEqual(fs.readdirSync(path.join(root, 'n2')).sort(), parent);
  assert.equal(fs.existsSync(path.join(root, 'evil')), false);
});

test('an invalid configuration is refused whole with file:line, named as in the config folder; nothing changed, no leftover', async () => {
  const before = snapshot(n2);
  const f = files().map((x) => (x.path === 'modules/api.yaml' ? { ...x, data: Buffer.from('kind: light\nautostart: false\nnodes: [n1, nobody]\n') } : x));
  const r = await post(seal(f));
  assert.equal(r.statusCode, 500, r.body);
  assert.equal(r.json().error, 'CROFT_ERR_CONFIG');
  assert.match(r.json().message, new RegExp(`${n2.replace(/[/.]/g, '\\$&')}/modules/api\\.yaml:3:\\d+: nodes`));
  assert.ok(!r.json().message.includes('.push-'), r.json().message);
  const noSelf = files().map((x) => (x.path === 'cluster.yaml' ? { ...x, data: Buffer.from(x.data.toString().replace('  n2: { addresses: [127.0.0.2] }\n', '  n3: { addresses: [127.0.0.3] }\n')) } : x));
  const r2 = await post(seal(noSelf));
  assert.equal(r2.statusCode, 500, r2.body);
  assert.match(r2.json().message, /does not name this node \(n2\)/);
  assert.deepEqual(snapshot(n2), before);
  assert.deepEqual(fs.readdirSync(path.join(root, 'n2')).sort(), ['.croft.previous', 'croft']);
  assert.ok(daemon.push.refused.config >= 2);
});

test('with reload: the receiving daemon reloads after the swap and says what it did', async () => {
  const f = [...files().filter((x) => x.path !== 'modules/api.yaml'), { path: 'modules/extra.yaml', mode: 0o644, data: Buffer.from('kind: light\nautostart: false\n') }];
  const r = await post(seal(f, { reload: true }));
  assert.equal(r.statusCode, 200, r.body);
  const reload = r.json().reload;
  // The daemon ran the folder it started with (web only): the pushes before came without reload.
  assert.deepEqual([reload.diff.added, reload.diff.removed, reload.diff.unchanged], [['extra'], [], ['web']]);
  assert.deepEqual(daemon.config.modules.map((m) => m.name).sort(), ['extra', 'web']);
});

test('at most two push bodies are held at once: a third is refused before its body is read; slots come back', async () => {
  const net = await import('node:net');
  const slow = await Promise.all([0, 1].map(() => new Promise<import('node:net').Socket>((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.2', port }, () => {
      s.write(`POST /api/v1/config/push HTTP/1.1\r\nHost: 127.0.0.2:${port}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\nCRFTPUSH`);
      resolve(s);
    });
    s.on('error', reject);
  })));
  try {
    await new Promise((r) => setTimeout(r, 200));
    const r = await post(Buffer.from('x'));
    assert.equal(r.statusCode, 429, r.body);
    assert.match(r.json().message, /config pushes are being received/);
  } finally {
    for (const s of slow) s.destroy();
  }
  await new Promise((r) => setTimeout(r, 200));
  assert.equal((await post(Buffer.from('x'))).statusCode, 400);
});
