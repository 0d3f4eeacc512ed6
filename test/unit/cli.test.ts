// The croft command as a user runs it: exit codes 0 ok, 1 failure, 2 usage, and clear messages.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
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
