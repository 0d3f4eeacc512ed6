// The membership's state file written off the JS thread (src/membership/persist.ts writeStateAsync,
// one task of the native addon: tmp, fsync, rename, fsync of the folder): replaced whole, mode
// 0600, no temporary left, the folder created; a failure rejects with CROFT_ERR_NATIVE.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'vitest';
import { CroftError } from '../../src/errors.js';
import { readState, writeStateAsync } from '../../src/membership/persist.js';

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
