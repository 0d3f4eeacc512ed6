// The mirror's persistent data record (mirror/data-record.ts) and the mirror view that heartbeats
// carry (src/membership/codec.ts): what the runtime reads at start and what the peer hears.
import { test, afterAll } from 'vitest';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NO_RECORD, parseDataRecord, readDataRecord, writeDataRecord } from '../../mirror/data-record.js';
import { decodeHeartbeat, encodeHeartbeat, parseHeartbeat } from '../../src/membership/codec.js';
import type { Heartbeat } from '../../src/membership/types.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-mirror-record-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('a written record reads back the same, and the temporary file is gone', () => {
  const file = path.join(tmp, 'a', 'mirror', 'db', 'data.json');
  writeDataRecord(file, { status: 'up-to-date', generation: 7, peerGeneration: 3 });
  assert.deepEqual(readDataRecord(file), { record: { status: 'up-to-date', generation: 7, peerGeneration: 3 }, problem: null });
  writeDataRecord(file, { status: 'stale', generation: 7, peerGeneration: 9 });
  assert.deepEqual(readDataRecord(file).record, { status: 'stale', generation: 7, peerGeneration: 9 });
  assert.deepEqual(fs.readdirSync(path.dirname(file)), ['data.json']);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
});

test('no record is unknown at generation 0 (first start), without a problem', () => {
  assert.deepEqual(readDataRecord(path.join(tmp, 'missing.json')), { record: NO_RECORD, problem: null });
  assert.deepEqual(NO_RECORD, { status: 'unknown', generation: 0, peerGeneration: 0 });
});

test('a corrupt or half-written record reads as unknown, with the problem said', () => {
  const file = path.join(tmp, 'corrupt.json');
  for (const text of ['', '{"status":"up-to-date","generation":1', '{"status":"fresh","generation":1,"peerGeneration":0}',
    '{"status":"up-to-date","generation":-1,"peerGeneration":0}', '{"status":"up-to-date","generation":1.5,"peerGeneration":0}', '[]', 'null']) {
    fs.writeFileSync(file, text);
    const r = readDataRecord(file);
    assert.deepEqual(r.record, NO_RECORD, text);
    assert.match(r.problem ?? '', /not a data record/, text);
  }
  assert.equal(parseDataRecord('{"status":"stale","generation":2,"peerGeneration":5,"writtenAt":"x"}')?.peerGeneration, 5);
});

const hb = (modules: Heartbeat['modules']): Heartbeat => ({
  cluster: 'c', from: 'n1', lan: 0, incarnation: 1, seq: 1, view: { epoch: 1, members: ['n1', 'n2'] }, modules,
});
const key = Buffer.from('k'.repeat(32));

test('heartbeats carry a mirror module announcement, checked field by field', () => {
  const view = { state: 'PRIM' as const, dataUpToDate: true, generation: 4, eligible: true, forced: false };
  const sent = hb({ db: { state: 'PRIM', sinceMs: 5, mirror: view }, web: { state: 'UP', sinceMs: 6 } });
  const got = decodeHeartbeat(encodeHeartbeat(sent, key), key);
  assert.ok(got.ok);
  assert.deepEqual(got.hb.modules, sent.modules);
  const bad: unknown[] = [
    { ...view, state: 'UP' },
    { ...view, generation: -1 },
    { ...view, eligible: 'yes' },
    { ...view, extra: 1 },
    { state: 'PRIM', dataUpToDate: true, generation: 1, eligible: true },
    null,
  ];
  for (const mirror of bad) {
    assert.equal(parseHeartbeat({ ...hb({}), modules: { db: { state: 'PRIM', sinceMs: 5, mirror } } }), null, JSON.stringify(mirror));
  }
});
