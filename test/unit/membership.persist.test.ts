// The membership's state file, written by the native addon (src/membership/persist.ts:
// writeStateAsync in one task off the JS thread, writeState on it at start; both tmp, fsync,
// rename, fsync of the folder): replaced whole, mode 0600, no temporary left, the folder created;
// a failure is CROFT_ERR_NATIVE naming the file.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'vitest';
import { CroftError } from '../../src/errors.js';
import { readState, writeState, writeStateAsync } from '../../src/membership/persist.js';

test('writeStateAsync replaces the file whole, mode 0600, and readState reads it back', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-persist-'));
  try {
    const file = path.join(dir, 'sub', 'membership.json');
    await writeStateAsync(file, { node: 'n1', incarnation: 5, peers: {} });
    await writeStateAsync(file, { node: 'n1', incarnation: 6, peers: { n2: { incarnation: 3, lastSeq: [7], prev: null } } });
    assert.deepEqual(readState(file, 'n1'), { node: 'n1', incarnation: 6, peers: { n2: { incarnation: 3, lastSeq: [7], prev: null } } });
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o700, 'the folder it created');
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['membership.json'], 'no temporary left');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a failed write rejects with CROFT_ERR_NATIVE naming the file', async () => {
  await assert.rejects(writeStateAsync('/proc/croft-no-such/membership.json', { node: 'n1', incarnation: 1, peers: {} }),
    (e: unknown) => e instanceof CroftError && e.code === 'CROFT_ERR_NATIVE' && /\/proc\/croft-no-such\/membership\.json/.test(e.message));
});

test('writeState (the save at start, on this thread) is the same native write: whole, 0600, and CROFT_ERR_NATIVE on failure', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-persist-'));
  try {
    const file = path.join(dir, 'membership.json');
    writeState(file, { node: 'n1', incarnation: 7, peers: {} });
    assert.deepEqual(readState(file, 'n1'), { node: 'n1', incarnation: 7, peers: {} });
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(fs.readdirSync(dir), ['membership.json'], 'no temporary left');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.throws(() => writeState('/proc/croft-no-such/membership.json', { node: 'n1', incarnation: 1, peers: {} }),
    (e: unknown) => e instanceof CroftError && e.code === 'CROFT_ERR_NATIVE' && /\/proc\/croft-no-such\/membership\.json/.test(e.message));
});
