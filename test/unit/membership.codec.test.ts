import { test } from 'vitest';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { decodeHeartbeat, encodeHeartbeat, MAX_DATAGRAM_BYTES } from '../../src/membership/codec.js';
import type { Heartbeat } from '../../src/membership/types.js';
import { mulberry32 } from '../sim/prng.js';

const key = Buffer.from('0123456789abcdef0123456789abcdef');
const otherKey = Buffer.from('fedcba9876543210fedcba9876543210');

function sample(): Heartbeat {
  return {
    cluster: 'prod',
    from: 'n1',
    lan: 1,
    incarnation: 1_700_000_000_000,
    seq: 42,
    view: { epoch: 3, members: ['n1', 'n2'] },
    modules: { web: { state: 'UP', sinceMs: 1_700_000_000_123 }, db: { state: 'PRIM', sinceMs: 0 } },
  };
}

test('round trip keeps every field', () => {
  const buf = encodeHeartbeat(sample(), key);
  assert.equal(buf.subarray(0, 4).toString('ascii'), 'CRFT');
  assert.equal(buf[4], 1);
  const r = decodeHeartbeat(buf, key);
  assert.deepEqual(r, { ok: true, hb: sample() });
});

test('wrong key and any flipped byte give bad_mac or malformed, never ok', () => {
  const buf = encodeHeartbeat(sample(), key);
  assert.deepEqual(decodeHeartbeat(buf, otherKey), { ok: false, reason: 'bad_mac' });
  for (let i = 0; i < buf.length; i++) {
    const m = Buffer.from(buf);
    m[i] = (m[i] ?? 0) ^ 0x01;
    const r = decodeHeartbeat(m, key);
    assert.equal(r.ok, false, `flip at ${i} accepted`);
    // Header flips are malformed (not ours); payload and MAC flips fail authentication.
    assert.equal(r.ok === false && r.reason, i < 5 ? 'malformed' : 'bad_mac');
  }
});

function signed(payload: string, k = key): Buffer {
  // Signs arbitrary JSON text, to test the shape check behind a valid MAC.
  const body = Buffer.concat([Buffer.from('CRFT'), Buffer.from([1]), Buffer.from(payload)]);
  return Buffer.concat([body, createHmac('sha256', k).update(body).digest()]);
}

test('authenticated but badly shaped payloads are malformed', () => {
  const base = sample() as unknown as Record<string, unknown>;
  const cases: unknown[] = [
    null, 42, 'x', [], {},
    { ...base, extra: 1 },
    { ...base, from: undefined },
    { ...base, from: '' },
    { ...base, from: 'a'.repeat(65) },
    { ...base, from: 'bad name' },
    { ...base, cluster: 7 },
    { ...base, lan: -1 },
    { ...base, lan: 1.5 },
    { ...base, lan: 99 },
    { ...base, seq: '1' },
    { ...base, seq: 2 ** 60 },
    { ...base, incarnation: -5 },
    { ...base, view: { epoch: 1 } },
    { ...base, view: { epoch: 1, members: 'n1' } },
    { ...base, view: { epoch: 1, members: [1] } },
    { ...base, view: { epoch: 1, members: ['n1'], x: 1 } },
    { ...base, view: { epoch: 1, members: Array.from({ length: 65 }, (_, i) => `n${i}`) } },
    { ...base, modules: [] },
    { ...base, modules: { web: { state: 'UP' } } },
    { ...base, modules: { web: { state: 'UP', sinceMs: -1 } } },
    { ...base, modules: { web: { state: 'U P', sinceMs: 1 } } },
    { ...base, modules: { web: { state: 'UP', sinceMs: 1, x: 2 } } },
    { ...base, modules: { 'bad key': { state: 'UP', sinceMs: 1 } } },
  ];
  for (const c of cases) {
    const r = decodeHeartbeat(signed(JSON.stringify(c)), key);
    assert.deepEqual(r, { ok: false, reason: 'malformed' }, `accepted ${JSON.stringify(c)?.slice(0, 80)}`);
  }
  // __proto__ as a module name must not pollute or pass.
  const proto = JSON.stringify(base).replace('"web":', '"__proto__":');
  assert.deepEqual(decodeHeartbeat(signed(proto), key), { ok: false, reason: 'malformed' });
  assert.deepEqual(decodeHeartbeat(signed('{not json'), key), { ok: false, reason: 'malformed' });
  // Valid JSON is accepted when signed: the check above is about shape, not about the MAC.
  assert.equal(decodeHeartbeat(signed(JSON.stringify(base)), key).ok, true);
});

test('size bound: a datagram over the limit is malformed even if signed', () => {
  const big = { ...sample(), modules: {} as Record<string, { state: string; sinceMs: number }> };
  const pad = JSON.stringify(big).replace('"modules":{}', `"modules":{}${' '.repeat(MAX_DATAGRAM_BYTES)}`);
  assert.deepEqual(decodeHeartbeat(signed(pad), key), { ok: false, reason: 'malformed' });
  assert.deepEqual(decodeHeartbeat(Buffer.alloc(0), key), { ok: false, reason: 'malformed' });
  assert.deepEqual(decodeHeartbeat(Buffer.from('CRFT'), key), { ok: false, reason: 'malformed' });
});

test('encode refuses a heartbeat that decode would reject (programmer error)', () => {
  assert.throws(() => encodeHeartbeat({ ...sample(), from: 'a b' }, key));
});

test('fuzz: 10,000 random buffers and 10,000 mutated packets never throw and are never accepted', () => {
  const rnd = mulberry32(Number(process.env.CROFT_SEED ?? 12345));
  const valid = encodeHeartbeat(sample(), key);
  let rejected = 0;
  for (let i = 0; i < 10_000; i++) {
    const len = Math.floor(rnd() * 300);
    const b = Buffer.alloc(len);
    for (let j = 0; j < len; j++) b[j] = Math.floor(rnd() * 256);
    // A third start with the real header, to get past the first check.
    if (i % 3 === 0 && len > 5) Buffer.from('CRFT\x01', 'latin1').copy(b);
    const r = decodeHeartbeat(b, key);
    assert.equal(r.ok, false);
    rejected++;
  }
  for (let i = 0; i < 10_000; i++) {
    const m = Buffer.from(valid);
    const edits = 1 + Math.floor(rnd() * 4);
    let out: Buffer = m;
    for (let e = 0; e < edits; e++) {
      const kind = Math.floor(rnd() * 3);
      const pos = Math.floor(rnd() * out.length);
      if (kind === 0) out[pos] = Math.floor(rnd() * 256);
      else if (kind === 1) out = out.subarray(0, pos);
      else out = Buffer.concat([out.subarray(0, pos), Buffer.from([Math.floor(rnd() * 256)]), out.subarray(pos)]);
    }
    const r = decodeHeartbeat(out, key);
    if (out.equals(valid)) assert.equal(r.ok, true);
    else assert.equal(r.ok, false);
    rejected++;
  }
  assert.equal(rejected, 20_000);
  // Not a Buffer at all (a driver bug) still does not throw.
  assert.deepEqual(decodeHeartbeat('CRFT' as unknown as Buffer, key), { ok: false, reason: 'malformed' });
});
