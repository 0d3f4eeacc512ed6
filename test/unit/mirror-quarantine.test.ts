// The quarantine of the mirror's data plane (mirror/driver-dataplane.ts) on a real mount (FUSE,
// the native addon, root): what a node wrote alone is copied aside before the peer's data
// replaces it. Issue 8 (low finding): the copies keep their modes in folders only root can enter,
// and a symlink planted in the unmounted directory by its owner never makes root copy a file
// from elsewhere into the quarantine. Also the dirty log's health in the data plane's status
// (finding 11).
import { test, afterAll } from 'vitest';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MirrorDataPlane } from '../../mirror/driver-dataplane.js';
import { lazyUnmount } from '../../src/native/index.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-quarantine-test-'));
const dir = path.join(tmp, 'data');
const outside = path.join(tmp, 'outside');
afterAll(async () => {
  await lazyUnmount(dir).catch(() => {});
  fs.rmSync(tmp, { recursive: true, force: true });
});

const silent = { info() {}, warn() {}, error() {} };

test('low finding: quarantine copies keep modes in 0700 folders and never follow a planted symlink', async () => {
  fs.mkdirSync(dir, { recursive: true });
  fs.mkdirSync(outside, { recursive: true });
  fs.writeFileSync(path.join(outside, 'secret'), 'root only');
  fs.chmodSync(path.join(outside, 'secret'), 0o600);
  const dp = new MirrorDataPlane({
    module: 'q', dirs: [dir], stateDir: path.join(tmp, 'state'), host: '127.0.0.1', peerHost: '127.0.0.1',
    port: 1, key: Buffer.alloc(32, 7), ack: 'received', mode: 'every-change', ackTimeoutMs: 1000, zoneBytes: 65536,
    onPeerLost: () => {}, log: silent,
  });
  await dp.prepare();
  dp.setWritingAlone(true);
  await dp.mount();
  try {
    fs.mkdirSync(path.join(dir, 'uploads'));
    fs.writeFileSync(path.join(dir, 'uploads', 'secret'), 'written alone');
    fs.writeFileSync(path.join(dir, 'private'), 'mine', { mode: 0o600 });
    fs.chmodSync(path.join(dir, 'private'), 0o640);
    fs.writeFileSync(path.join(dir, 'tool'), '#!/bin/sh\n');
    fs.chmodSync(path.join(dir, 'tool'), 0o4755);
    const health = dp.dirtyLogStatus();
    assert.ok(health, 'a mount with a dirty log reports its health');
    assert.deepEqual({ failing: health.failing, writeFailures: health.writeFailures, marksRefused: health.marksRefused }, { failing: false, writeFailures: 0, marksRefused: 0 });
  } finally {
    await dp.unmount();
  }
  // The owner of the unmounted directory swaps uploads/ for a symlink to a root-only folder.
  fs.renameSync(path.join(dir, 'uploads'), path.join(dir, 'uploads.away'));
  fs.symlinkSync(outside, path.join(dir, 'uploads'));
  const q = await dp.quarantine();
  const top = path.join(tmp, 'state', 'quarantine');
  const base = path.join(q.folder, dir.replace(/^\/+/, ''));
  assert.equal(fs.statSync(top).mode & 0o777, 0o700);
  assert.equal(fs.statSync(q.folder).mode & 0o777, 0o700);
  assert.equal(fs.readFileSync(path.join(base, 'private'), 'utf8'), 'mine');
  assert.equal(fs.statSync(path.join(base, 'private')).mode & 0o7777, 0o640, 'file mode kept');
  assert.equal(fs.statSync(path.join(base, 'tool')).mode & 0o7777, 0o755, 'set-id bits dropped');
  // uploads is a symlink now: copied as one (verbatim, never followed), nothing read through it.
  assert.ok(fs.lstatSync(path.join(base, 'uploads')).isSymbolicLink(), 'uploads/ was copied as a directory');
  assert.deepEqual(fs.readdirSync(base).sort(), ['private', 'tool', 'uploads'], 'a file was copied through the planted symlink');
  assert.equal(q.copied, 3);
  assert.deepEqual(q.failed, []);
});
