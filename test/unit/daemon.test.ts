// The daemon runs a mirror module with a MirrorRuntime, and refuses nodes it does not know.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { CroftError } from '../../src/errors.js';
import { silentLogger } from '../../src/log/logger.js';
import { MirrorRuntime } from '../../mirror/runtime.js';

test('a kind: mirror module gets a mirror runtime (prim/second/swap, mirror status); an unknown node is refused', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-daemon-'));
  try {
    fs.mkdirSync(path.join(dir, 'modules'));
    fs.writeFileSync(path.join(dir, 'cluster.yaml'), `name: d\nkey: "${'k'.repeat(40)}"\nnodes:\n  n1: { addresses: [127.0.0.1] }\n  n2: { addresses: [127.0.0.2] }\n`);
    fs.writeFileSync(path.join(dir, 'modules', 'db.yaml'), 'kind: mirror\nvip: none\ndirs: [/srv/db]\n');
    const config = loadConfig(dir);
    const daemon = new Daemon(config, 'n1', silentLogger());
    const rt = daemon.mirror('db');
    assert.ok(rt instanceof MirrorRuntime);
    assert.equal(rt.peer, 'n2');
    assert.equal(rt.state(), 'STOP');
    assert.equal(rt.mirrorStatus().data, 'unknown');
    assert.throws(() => daemon.mirrorCommand('nope', 'prim', 'test'), (e: unknown) => e instanceof CroftError && e.code === 'CROFT_ERR_UNKNOWN_MODULE');
    assert.throws(() => new Daemon(config, 'n9', silentLogger()), (e: unknown) => e instanceof CroftError && e.code === 'CROFT_ERR_UNKNOWN_NODE');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
