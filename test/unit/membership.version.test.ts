// Rolling upgrade and config agreement in the heartbeats (issue 12, parts 3 and 5): the protocol
// range, package version and config signature fields (codec), the version rule and its counter
// (core, UDP driver), protocol 2's heartbeat sent to a peer of protocol 2, and the pure agreement check.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import dgram from 'node:dgram';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClusterConfig } from '../../src/config/types.js';
import { decodeHeartbeat, encodeHeartbeat, parseHeartbeat } from '../../src/membership/codec.js';
import { createMembership, membershipStep, peers } from '../../src/membership/core.js';
import { UdpMembership } from '../../src/membership/udp.js';
import type { Heartbeat, MembershipAction } from '../../src/membership/types.js';
import { compatible, localProtocol, PROTOCOL_MIN, PROTOCOL_VERSION, TEST_PROTOCOL_ENV } from '../../src/protocol.js';
import { ConfigAgreement, configMismatches } from '../../top/daemon/agreement.js';

const key = Buffer.from('version-test-key-0123456789abcdef');
const sig = (c: string, m: Record<string, string> = {}) => ({ cluster: c.repeat(16), modules: m });
const A = 'a'.repeat(16);
const B = 'b'.repeat(16);

function hb(from: string, seq: number, extra: Partial<Heartbeat> = {}): Heartbeat {
  return { cluster: 'c', from, lan: 0, incarnation: 5, seq, view: { epoch: 1, members: [from] }, modules: {}, ...extra };
}
const info = { proto: [3, 2] as [number, number], pkg: '0.1.0', cfg: sig('a', { web: B }) };

test('codec: protocol 3 fields round trip; a protocol 2 heartbeat (none of them) still decodes', () => {
  const full = hb('n2', 1, info);
  const d = decodeHeartbeat(encodeHeartbeat(full, key), key);
  assert.ok(d.ok);
  assert.deepEqual(d.hb, full);
  const legacy = decodeHeartbeat(encodeHeartbeat(hb('n2', 2), key), key);
  assert.ok(legacy.ok);
  assert.equal(legacy.hb.proto, undefined);
});

test('codec: partial, malformed or unbounded protocol 3 fields are malformed', () => {
  const bad: unknown[] = [
    { ...hb('n2', 1), proto: [3, 2] }, // proto without pkg and cfg
    { ...hb('n2', 1), pkg: '0.1.0', cfg: sig('a') }, // no proto
    { ...hb('n2', 1, info), proto: [2, 3] }, // min above current
    { ...hb('n2', 1, info), proto: [70000, 2] },
    { ...hb('n2', 1, info), proto: [3, 2, 1] },
    { ...hb('n2', 1, info), proto: [3, 0] },
    { ...hb('n2', 1, info), pkg: '' },
    { ...hb('n2', 1, info), pkg: 'x'.repeat(33) },
    { ...hb('n2', 1, info), pkg: '1.0 beta' },
    { ...hb('n2', 1, info), cfg: { cluster: 'A'.repeat(16), modules: {} } }, // not lowercase hex
    { ...hb('n2', 1, info), cfg: { cluster: A, modules: { web: 'short' } } },
    { ...hb('n2', 1, info), cfg: { cluster: A, modules: {}, extra: 1 } },
    { ...hb('n2', 1, info), cfg: { cluster: A, modules: { __proto__x: A, 'a b': A } } },
    { ...hb('n2', 1, info), cfg: { cluster: A, modules: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`m${i}`, A])) } },
    { ...hb('n2', 1, info), future: 1 },
  ];
  for (const v of bad) assert.equal(parseHeartbeat(v), null, JSON.stringify(v).slice(0, 200));
  // Signed but malformed: dropped as malformed, never accepted.
  const body = Buffer.concat([Buffer.from('CRFT'), Buffer.from([1]), Buffer.from(JSON.stringify(bad[0]))]);
  const signed = Buffer.concat([body, createHmac('sha256', key).update(body).digest()]);
  assert.deepEqual(decodeHeartbeat(signed, key), { ok: false, reason: 'malformed' });
});

test('the version rule: ranges that overlap work together, at the lower version', () => {
  assert.equal(compatible({ current: 3, min: 2 }, { current: 2, min: 2 }), true); // new and previous release
  assert.equal(compatible({ current: 4, min: 3 }, { current: 3, min: 2 }), true); // next and this release
  assert.equal(compatible({ current: 4, min: 4 }, { current: 3, min: 2 }), false); // two releases apart
  assert.equal(compatible({ current: 3, min: 3 }, { current: 2, min: 2 }), false);
  assert.deepEqual(localProtocol({}), { current: PROTOCOL_VERSION, min: PROTOCOL_MIN });
  assert.deepEqual(localProtocol({ [TEST_PROTOCOL_ENV]: String(PROTOCOL_MIN) }), { current: PROTOCOL_MIN, min: PROTOCOL_MIN });
  for (const v of ['1', String(PROTOCOL_VERSION + 1), 'x', '2.5']) {
    assert.throws(() => localProtocol({ [TEST_PROTOCOL_ENV]: v }), /test-only setting/);
  }
});

const base = { self: 'n1', nodes: ['n1', 'n2'], lans: 1, cluster: 'c', intervalMs: 100, timeoutMs: 500, incarnation: 10, nowMs: 0 };

test('core: a heartbeat outside the accepted range is dropped as version, with both versions; the state is unchanged', () => {
  const s0 = createMembership({ ...base, pkg: '0.1.0' });
  for (const proto of [[5, 4], [1, 1]] as [number, number][]) {
    const r = membershipStep(s0, { type: 'heartbeat', lan: 0, hb: hb('n2', 1, { ...info, proto, pkg: '9.0.0' }) }, 1);
    assert.equal(r.state, s0);
    const d = r.actions[0] as Extract<MembershipAction, { type: 'drop' }>;
    assert.equal(d.reason, 'version');
    const theirs = proto[0] === proto[1] ? `${proto[0]}` : `${proto[1]}..${proto[0]}`;
    assert.ok((d.detail ?? '').startsWith(`n2 speaks protocol ${theirs} (croft 9.0.0), this node 2..3 (croft 0.1.0)`), d.detail);
  }
  // A node that no longer speaks 2 refuses a heartbeat without `proto` (protocol 2's).
  const strict = createMembership({ ...base, protocol: { current: 3, min: 3 } });
  const r = membershipStep(strict, { type: 'heartbeat', lan: 0, hb: hb('n2', 1) }, 1);
  assert.equal((r.actions[0] as { reason: string }).reason, 'version');
});

test('core: peers of protocol 2 and 3 are accepted and their versions and signatures kept; local_config sends at once', () => {
  let s = createMembership({ ...base, cfg: sig('a') });
  s = membershipStep(s, { type: 'heartbeat', lan: 0, hb: hb('n2', 1) }, 1).state;
  assert.deepEqual(peers(s)[0]?.proto, [2, 2]);
  assert.equal(peers(s)[0]?.cfg, null);
  s = membershipStep(s, { type: 'heartbeat', lan: 0, hb: hb('n2', 2, info) }, 2).state;
  assert.deepEqual({ proto: peers(s)[0]?.proto, pkg: peers(s)[0]?.pkg, cfg: peers(s)[0]?.cfg }, { proto: [3, 2], pkg: '0.1.0', cfg: info.cfg });
  const r = membershipStep(s, { type: 'local_config', cfg: sig('c') }, 3);
  const send = r.actions.find((a) => a.type === 'send');
  assert.ok(send?.type === 'send');
  assert.deepEqual(send.hb.cfg, sig('c'));
  // A node lowered to protocol 2 sends exactly protocol 2's heartbeat.
  const old = createMembership({ ...base, protocol: { current: 2, min: 2 } });
  const o = membershipStep(old, { type: 'tick' }, 0).actions[0];
  assert.ok(o?.type === 'send');
  assert.deepEqual(Object.keys(o.hb).sort(), ['cluster', 'from', 'incarnation', 'modules', 'seq', 'view']);
});

test('core: within one run of a peer, its downgraded heartbeat (no proto) does not lower the protocol it announced; a new run does', () => {
  let s = createMembership({ ...base, cfg: sig('a') });
  s = membershipStep(s, { type: 'heartbeat', lan: 0, hb: hb('n2', 1, info) }, 1).state;
  // n2 (protocol 3) took this node for protocol 2 and sent it protocol 2's heartbeat.
  s = membershipStep(s, { type: 'heartbeat', lan: 0, hb: hb('n2', 2) }, 2).state;
  assert.deepEqual({ proto: peers(s)[0]?.proto, pkg: peers(s)[0]?.pkg, cfg: peers(s)[0]?.cfg }, { proto: [3, 2], pkg: '0.1.0', cfg: info.cfg });
  // The next run of n2 is another build: what it announces (here nothing: protocol 2) counts.
  s = membershipStep(s, { type: 'heartbeat', lan: 0, hb: hb('n2', 1, { incarnation: 6 }) }, 3).state;
  assert.deepEqual({ proto: peers(s)[0]?.proto, pkg: peers(s)[0]?.pkg, cfg: peers(s)[0]?.cfg }, { proto: [2, 2], pkg: null, cfg: null });
});

test('agreement: a difference is told once when it appears, once when it goes; protocol 2 peers and down peers are not compared', () => {
  const mine = sig('a', { web: A, db: A });
  const peer = (name: string, cfg: ReturnType<typeof sig> | null, up = true) => ({
    name, up, lastHeardMs: [0], incarnation: 1, view: null, modules: {}, proto: [3, 2] as [number, number], pkg: '0.1.0', cfg,
  });
  assert.deepEqual(configMismatches(mine, [peer('n2', sig('b', { web: A, db: B, extra: A })), peer('n3', null), peer('n4', sig('b'), false)]),
    [{ node: 'n2', differs: ['cluster.yaml', 'db', 'extra'] }]);
  const ag = new ConfigAgreement();
  const differing = [peer('n2', sig('a', { web: B, db: A }))];
  assert.deepEqual(ag.check(mine, differing).appeared, [{ node: 'n2', differs: ['web'] }]);
  assert.deepEqual(ag.check(mine, differing).appeared, []);
  const r = ag.check(mine, [peer('n2', mine)]);
  assert.deepEqual([r.appeared, r.resolved], [[], ['n2']]);
  assert.deepEqual(ag.check(mine, [peer('n2', mine)]).resolved, []);
});

// ---- over UDP ----

function config(port: number): ClusterConfig {
  return {
    file: '/test/cluster.yaml', name: 'c', key, heartbeat: { port, intervalMs: 50, timeoutMs: 250 }, lans: ['lan0'],
    nodes: [1, 2].map((i) => ({ name: `n${i}`, addresses: [`127.0.0.${i}`], weight: 1 })),
    api: { host: '127.0.0.1', port: 0, tokens: [], users: [], socket: '/nonexistent/api.sock' }, stateDir: '/tmp',
  };
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

test('udp: a node two releases ahead is refused, counted and logged once; the peer never comes up', async () => {
  const port = 20000 + Math.floor(Math.random() * 40000);
  const cfg = config(port);
  const warnings: string[] = [];
  const log = { info() {}, debug() {}, warn(_o: object, msg?: string) { warnings.push(msg ?? ''); } };
  const n1 = new UdpMembership({ cluster: cfg, self: 'n1', incarnation: 1000, logger: log, pkg: '0.1.0' });
  const n2 = new UdpMembership({ cluster: cfg, self: 'n2', incarnation: 1000, protocol: { current: 5, min: 4 }, pkg: '2.0.0' });
  await n1.start();
  await n2.start();
  try {
    await waitFor(() => n1.counters().dropped.version >= 5, 2000, 'five version drops');
    assert.equal(n1.peers()[0]?.up, false);
    assert.equal(n1.counters().accepted, 0);
    assert.equal(n2.counters().dropped.version >= 1, true);
    const refusals = warnings.filter((w) => w.includes('heartbeats of n2 refused'));
    assert.equal(refusals.length, 1, warnings.join('\n'));
    assert.match(refusals[0] ?? '', /n2 speaks protocol 4\.\.5 \(croft 2\.0\.0\), this node 2\.\.3 \(croft 0\.1\.0\)/);
  } finally {
    await n1.stop();
    await n2.stop();
  }
});

/** A node of protocol 2 on 127.0.0.2: its socket, and the heartbeats it decoded from n1. */
async function legacyPeer(port: number): Promise<{ old: dgram.Socket; got: Heartbeat[] }> {
  const old = dgram.createSocket('udp4');
  const got: Heartbeat[] = [];
  old.on('message', (m) => {
    const d = decodeHeartbeat(m, key);
    if (d.ok) got.push(d.hb);
  });
  await new Promise<void>((resolve) => old.bind(port, '127.0.0.2', () => resolve()));
  return { old, got };
}

test('udp: to a peer of protocol 2 the node sends protocol 2\'s heartbeat (what the previous release\'s strict decoder accepts)', async () => {
  const port = 20000 + Math.floor(Math.random() * 40000);
  const cfg = config(port);
  const n1 = new UdpMembership({ cluster: cfg, self: 'n1', incarnation: 1000, pkg: '0.1.0' });
  await n1.start();
  const { old, got } = await legacyPeer(port);
  try {
    await waitFor(() => got.length >= 1, 2000, 'a first heartbeat');
    assert.deepEqual(got[0]?.proto, [3, 2]); // before it heard n2: protocol 3's
    const send = (seq: number) => new Promise<void>((resolve, reject) =>
      old.send(encodeHeartbeat(hb('n2', seq, { cluster: 'c', incarnation: Date.now() }), key), port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
    await send(1);
    await waitFor(() => n1.peers()[0]?.up === true, 2000, 'n2 (protocol 2) up');
    const before = got.length;
    await send(2);
    await waitFor(() => got.length >= before + 2, 2000, 'two more heartbeats');
    for (const h of got.slice(before)) {
      assert.deepEqual(Object.keys(h).sort(), ['cluster', 'from', 'incarnation', 'lan', 'modules', 'seq', 'view']);
    }
    assert.equal(n1.counters().dropped.version, 0);
  } finally {
    old.close();
    await n1.stop();
  }
});

test('udp: a peer taken for protocol 2 still gets a full heartbeat now and then (so a protocol 3 peer that was taken for 2 is found out), one frame in many', async () => {
  const port = 20000 + Math.floor(Math.random() * 40000);
  const cfg = config(port);
  const n1 = new UdpMembership({ cluster: cfg, self: 'n1', incarnation: 1000, pkg: '0.1.0', legacyProbeMs: 400 });
  await n1.start();
  const { old, got } = await legacyPeer(port);
  let seq = 0;
  const send = () => new Promise<void>((resolve, reject) =>
    old.send(encodeHeartbeat(hb('n2', ++seq, { cluster: 'c', incarnation: 2000 }), key), port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
  const beat = setInterval(() => void send(), 50);
  try {
    await waitFor(() => n1.peers()[0]?.up === true, 2000, 'n2 (protocol 2) up');
    await sleep(200);
    const from = got.length;
    await sleep(2000);
    const frames = got.slice(from);
    const full = frames.filter((h) => h.proto !== undefined).length;
    assert.ok(full >= 2, `full heartbeats among ${frames.length}: ${full}`);
    assert.ok(full * 4 <= frames.length, `at most one in four is full: ${full} of ${frames.length}`);
    assert.equal(n1.peers()[0]?.up, true);
  } finally {
    clearInterval(beat);
    old.close();
    await n1.stop();
  }
});

test('codec: the largest heartbeat the shape check allows (64 mirror modules, 64 nodes, 64-character names, signatures) encodes and decodes', () => {
  const name = (p: string, i: number) => `${p}${i}`.padEnd(64, 'x');
  const modules: Heartbeat['modules'] = {};
  const sigs: Record<string, string> = {};
  for (let i = 0; i < 64; i++) {
    modules[name('m', i)] = { state: 'SECOND', sinceMs: 1765000000000.123, mirror: { state: 'SECOND', dataUpToDate: true, generation: 2 ** 40, eligible: true, forced: false } };
    sigs[name('m', i)] = A;
  }
  const big: Heartbeat = { cluster: name('c', 0), from: name('n', 1), lan: 15, incarnation: 2 ** 52, seq: 2 ** 52, view: { epoch: 2 ** 52, members: Array.from({ length: 64 }, (_, i) => name('n', i)) },
    modules, proto: [65535, 65535], pkg: 'x'.repeat(32), cfg: { cluster: A, modules: sigs } };
  const d = decodeHeartbeat(encodeHeartbeat(big, key), key);
  assert.ok(d.ok);
  assert.deepEqual(d.hb, big);
});
