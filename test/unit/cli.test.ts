// The croft command as a user runs it: exit codes 0 ok, 1 failure, 2 usage, and clear messages.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'vitest';
import { buildApi } from '../../top/api/app.js';
import { listenLocal } from '../../top/cli/daemon.js';
import { loadConfig } from '../../src/config/load.js';
import { Daemon } from '../../top/daemon/daemon.js';
import { silentLogger } from '../../src/log/logger.js';
import { croftBin, fixtures } from '../helpers/paths.js';

function croft(...args: string[]) {
  const r = spawnSync(process.execPath, [croftBin, ...args], { encoding: 'utf8', env: { ...process.env, CROFT_CONFIG: '/nonexistent' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('usage errors exit 2', () => {
  assert.equal(croft().code, 2);
  const bad = croft('frobnicate');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown command "frobnicate"/);
  assert.equal(croft('start').code, 2);
  assert.equal(croft('status', '--bogus').code, 2);
  assert.equal(croft('help').code, 0);
});

test('croft check: 0 for a valid config, 1 with file:line for an invalid one', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-cli-'));
  try {
    fs.cpSync(path.join(fixtures, 'configs', 'minimal'), dir, { recursive: true });
    fs.chmodSync(path.join(dir, 'cluster.key'), 0o600); // git stores 0644: croft refuses a key file others can read
    const ok = croft('check', dir);
    assert.equal(ok.code, 0, ok.stderr);
    fs.appendFileSync(path.join(dir, 'cluster.yaml'), 'heartbeat:\n  interval_ms: fast\n');
    const bad = croft('check', dir);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, new RegExp(`${dir}/cluster.yaml:8:\\d+: heartbeat.interval_ms: expected`));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('croft status without a daemon exits 1 and says what to do', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-cli-'));
  try {
    fs.cpSync(path.join(fixtures, 'configs', 'minimal'), dir, { recursive: true });
    fs.chmodSync(path.join(dir, 'cluster.key'), 0o600);
    // A port nobody listens on, and a socket path that does not exist.
    fs.appendFileSync(path.join(dir, 'cluster.yaml'), `api:\n  port: 1\n  socket: ${dir}/none.sock\n`);
    const r = croft('status', '--config', dir);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot reach the croft daemon .*Is `croft daemon` running on this node\? \[CROFT_ERR_API_UNREACHABLE\]/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** croft run asynchronously (the test process serves the API meanwhile). */
function croftAsync(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const c = spawn(process.execPath, [croftBin, ...args], { env: { ...process.env, CROFT_CONFIG: '/nonexistent' } });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    c.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    c.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - t0 }));
  });
}

test('low: the CLI never sends its token in clear beyond loopback; it prefers the local socket, and uses the token on loopback', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-cli-'));
  const token = 'cli-token-0123456789abcdef';
  const socketPath = path.join(dir, 'run', 'api.sock');
  fs.mkdirSync(path.join(dir, 'modules'));
  fs.writeFileSync(path.join(dir, 'cluster.yaml'), [
    'name: clitest',
    `key: "${'k'.repeat(40)}"`,
    'nodes:',
    '  n1: { addresses: [127.0.0.1] }',
    'api:',
    '  port: 1',
    `  socket: ${socketPath}`,
    `  tokens: [${token}]`,
  ].join('\n'), { mode: 0o600 });
  const daemon = new Daemon(loadConfig(dir), 'n1', silentLogger());
  const tcp = buildApi(daemon);
  const local = buildApi(daemon, { local: true });
  try {
    // Plain http to another address: refused before any connection, saying why and what to do.
    for (const api of ['http://192.0.2.10:9450', 'http://[2001:db8::1]:9450', 'http://croft-node.example:9450']) {
      const r = await croftAsync('status', '--config', dir, '--api', api);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /refusing to send the API credential in clear to http:\/\/\S+: over plain http anyone on the path can read it/);
      assert.match(r.stderr, /configure api\.tls .* --api https:\/\//);
      assert.match(r.stderr, /\[CROFT_ERR_API_INSECURE\]/);
      assert.ok(r.ms < 5000, `${r.ms} ms: no connection was tried`);
    }
    await tcp.listen({ host: '127.0.0.1', port: 0 });
    const port = (tcp.server.address() as { port: number }).port;
    // On loopback the token may go in clear (it never leaves the machine).
    const loop = await croftAsync('status', '--config', dir, '--api', `http://127.0.0.1:${port}`, '--json');
    assert.equal(loop.code, 0, loop.stderr);
    assert.equal(JSON.parse(loop.stdout).cluster, 'clitest');
    // With the local socket there, the CLI uses it, --token or not (the TCP port, 1, is closed).
    await listenLocal(local, socketPath);
    for (const extra of [[], ['--token', 'whatever-token-0123456789']]) {
      const viaSocket = await croftAsync('status', '--config', dir, '--json', ...extra);
      assert.equal(viaSocket.code, 0, viaSocket.stderr);
      assert.equal(JSON.parse(viaSocket.stdout).node, 'n1');
    }
    const cmd = await croftAsync('stop', 'web-none', '--config', dir);
    assert.match(cmd.stderr, /no module "web-none"/, 'a command went through the socket to the daemon');
  } finally {
    await tcp.close();
    await local.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
