// The UDP driver on loopback (127.0.0.1/2/3, the whole 127/8 is local on Linux): real sockets, real
// timers, interval 50 ms, timeout 250 ms.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClusterConfig } from '../../src/config/types.js';
import { encodeHeartbeat } from '../../src/membership/codec.js';
import { UdpMembership } from '../../src/membership/udp.js';
import type { Heartbeat, MembershipAction } from '../../src/membership/types.js';
import { mulberry32 } from '../sim/prng.js';

const key = Buffer.from('udp-test-key-0123456789abcdef!!');

function config(port: number, nodes = 3): ClusterConfig {
  return {
    file: '/test/cluster.yaml',
    name: 'loop',
    key,
    heartbeat: { port, intervalMs: 50, timeoutMs: 250 },
    lans: ['lan0'],
    nodes: Array.from({ length: nodes }, (_, i) => ({ name: `n${i + 1}`, addresses: [`127.0.0.${i + 1}`], weight: 1 })),
    api: { host: '127.0.0.1', port: 0, tokens: [], users: [], socket: '/nonexistent/api.sock' },
    stateDir: '/tmp',
  };
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
  return performance.now() - t0;
}

/** Starts the first `running` of n configured nodes on a free port (retries another port if taken). */
async function startCluster(n: number, running = n, quiet = true): Promise<{ cfg: ClusterConfig; members: UdpMembership[] }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const cfg = config(20000 + Math.floor(Math.random() * 40000), n);
    const members = cfg.nodes.slice(0, running).map((node) => new UdpMembership({ cluster: cfg, self: node.name, incarnation: 1000, quiet }));
    try {
      for (const m of members) await m.start();
      return { cfg, members };
    } catch (err) {
      await Promise.all(members.map((m) => m.stop()));
      if (!(err instanceof Error && 'code' in err && err.code === 'CROFT_ERR_BIND')) throw err;
    }
  }
  throw new Error('no free port');
}

const all = (m: UdpMembership): string => m.view().members.join(' ');

test('three nodes see each other, converge, share modules; a stopped node is down within timeout + interval', async () => {
  const { members } = await startCluster(3);
  const [n1, n2, n3] = members as [UdpMembership, UdpMembership, UdpMembership];
  try {
    const events: MembershipAction[] = [];
    n1.on('peer_up', (a: MembershipAction) => events.push(a));
    n1.on('peer_down', (a: MembershipAction) => events.push(a));
    n1.on('view_change', (a: MembershipAction) => events.push(a));
    await waitFor(() => members.every((m) => all(m) === 'n1 n2 n3' && m.converged()), 2000, 'formation');
    assert.ok(events.some((e) => e.type === 'peer_up' && e.node === 'n2'));
    assert.ok(events.some((e) => e.type === 'view_change'));

    n2.setLocalModules({ web: { state: 'UP', sinceMs: 1 } });
    await waitFor(() => n1.moduleStates().n2?.web?.state === 'UP' && n3.moduleStates().n2?.web?.state === 'UP', 1000, 'module gossip');

    const c = n1.counters();
    assert.ok(c.sent > 0 && c.accepted > 0 && c.received >= c.accepted);
    assert.equal(c.perLan.length, 1);

    const stoppedAt = performance.now();
    await n3.stop();
    await waitFor(() => all(n1) === 'n1 n2' && all(n2) === 'n1 n2', 2000, 'n3 down');
    const tookMs = performance.now() - stoppedAt;
    // Timeout 250 + interval 50 (+ timer jitter on a busy machine).
    assert.ok(tookMs <= 250 + 50 + 100, `n3 declared down after ${tookMs.toFixed(0)} ms`);
    assert.ok(tookMs >= 250 - 60, `n3 declared down too early, after ${tookMs.toFixed(0)} ms`);
    assert.ok(events.some((e) => e.type === 'peer_down' && e.node === 'n3' && e.cause === 'timeout'));
    assert.deepEqual(n1.moduleStates().n3, {});
  } finally {
    await Promise.all(members.map((m) => m.stop()));
  }
});

test('forged, replayed, misdirected and 10,000 random datagrams are dropped, counted, and change nothing', async () => {
  const { cfg, members } = await startCluster(3, 2); // n3 configured, never started
  const [n1, n2] = members as [UdpMembership, UdpMembership];
  const port = cfg.heartbeat.port;
  // Sent from the claimed nodes' own addresses (n2: 127.0.0.2, n3: 127.0.0.3), so that the source
  // check passes and each case reaches the check it is about (wrong sources: the test below).
  const attacker = dgram.createSocket('udp4');
  const attacker2 = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => attacker.bind(0, '127.0.0.3', () => resolve()));
  await new Promise<void>((resolve) => attacker2.bind(0, '127.0.0.2', () => resolve()));
  const send = (buf: Buffer, from = attacker): Promise<void> => new Promise((resolve, reject) => from.send(buf, port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
  try {
    await waitFor(() => all(n1) === 'n1 n2' && n1.converged(), 2000, 'formation');
    await sleep(200); // n2 is well past seq 1 now
    const viewBefore = n1.view();
    const changes: MembershipAction[] = [];
    for (const ev of ['peer_up', 'peer_down', 'view_change']) n1.on(ev, (a: MembershipAction) => changes.push(a));
    const before = n1.counters();

    const n2info = n1.peers().find((p) => p.name === 'n2');
    assert.ok(n2info?.incarnation !== null && n2info?.incarnation !== undefined);
    const real: Heartbeat = { cluster: 'loop', from: 'n2', lan: 0, incarnation: n2info.incarnation, seq: 1, view: { epoch: 1, members: ['n2'] }, modules: {} };
    const n3: Heartbeat = { ...real, from: 'n3', incarnation: 1, seq: 1 }; // a configured node that is not running
    // Replay: an old seq of n2's current run, twice.
    await send(encodeHeartbeat(real, key), attacker2);
    await send(encodeHeartbeat(real, key), attacker2);
    // Forged: a heartbeat from the absent n3 signed with the wrong key (it would bring n3 up).
    await send(encodeHeartbeat(n3, Buffer.from('wrong-key-wrong-key-wrong-key!!')));
    // Authenticated but wrong: another cluster, an unknown node, our own name, another LAN's index.
    await send(encodeHeartbeat({ ...n3, cluster: 'other' }, key));
    await send(encodeHeartbeat({ ...n3, from: 'n9' }, key));
    await send(encodeHeartbeat({ ...n3, from: 'n1' }, key));
    await send(encodeHeartbeat({ ...n3, lan: 1 }, key));

    const rng = mulberry32(7);
    const valid = encodeHeartbeat(n3, key);
    for (let i = 0; i < 10_000; i++) {
      let b: Buffer;
      if (i % 2 === 0) {
        b = Buffer.alloc(Math.floor(rng() * 200));
        for (let j = 0; j < b.length; j++) b[j] = Math.floor(rng() * 256);
      } else {
        // A valid packet (it would bring n3 up) with one byte changed.
        b = Buffer.from(valid);
        const pos = Math.floor(rng() * b.length);
        b[pos] = (b[pos] ?? 0) ^ (1 + Math.floor(rng() * 255));
      }
      await send(b);
      if (i % 20 === 0) await sleep(0); // let n1 drain its socket, so the kernel drops nothing
    }
    const expectDropped = 10_000 + 7;
    await waitFor(() => {
      const c = n1.counters();
      const d = Object.values(c.dropped).reduce((x, y) => x + y, 0) - Object.values(before.dropped).reduce((x, y) => x + y, 0);
      return d >= expectDropped;
    }, 5000, 'all datagrams counted').catch((err: unknown) => {
      throw new Error(`${String(err)}: before ${JSON.stringify(before)} after ${JSON.stringify(n1.counters())}`);
    });
    const after = n1.counters();
    assert.equal(after.dropped.replay - before.dropped.replay, 2);
    assert.equal(after.dropped.wrong_cluster - before.dropped.wrong_cluster, 1);
    assert.equal(after.dropped.unknown_node - before.dropped.unknown_node, 1);
    assert.equal(after.dropped.self - before.dropped.self, 1);
    assert.equal(after.dropped.wrong_lan - before.dropped.wrong_lan, 1);
    assert.equal(
      after.dropped.malformed + after.dropped.bad_mac - before.dropped.malformed - before.dropped.bad_mac,
      10_000 + 1,
    );
    assert.ok(after.received - before.received >= expectDropped);
    // Nothing changed and the node still works: n3 never came up, the view is the same, n2 still beats.
    assert.deepEqual(n1.view(), viewBefore);
    assert.deepEqual(changes, []);
    assert.equal(n1.peers().find((p) => p.name === 'n3')?.up, false);
    const acceptedNow = n1.counters().accepted;
    await waitFor(() => n1.counters().accepted > acceptedNow, 1000, 'n2 heartbeats still accepted');
    assert.equal(all(n1), 'n1 n2');
    assert.equal(all(n2), 'n1 n2');
  } finally {
    attacker.close();
    attacker2.close();
    await Promise.all(members.map((m) => m.stop()));
  }
});

test('start fails with CROFT_ERR_BIND on an address this machine does not have, and cleans up', async () => {
  const cfg = config(20000 + Math.floor(Math.random() * 40000), 2);
  const node = cfg.nodes[0];
  assert.ok(node);
  node.addresses = ['192.0.2.1']; // TEST-NET-1 (RFC 5737): never a local address
  const m = new UdpMembership({ cluster: cfg, self: 'n1' });
  await assert.rejects(m.start(), (err: unknown) => err instanceof Error && 'code' in err && err.code === 'CROFT_ERR_BIND');
  await m.stop();
});

// ---- issue 8: source addresses, bounded incarnations, state saved across restarts ----

async function udpFrom(address: string): Promise<{ send(buf: Buffer, port: number): Promise<void>; close(): void }> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, address, () => resolve()));
  return {
    send: (buf, port) => new Promise((resolve, reject) => s.send(buf, port, '127.0.0.1', (e) => (e ? reject(e) : resolve()))),
    close: () => s.close(),
  };
}

test('low (source address): an authenticated heartbeat from another address than the node\'s is dropped and counted', async () => {
  const { cfg, members } = await startCluster(3, 1); // n2 and n3 configured, not running
  const [n1] = members as [UdpMembership];
  const wrong = await udpFrom('127.0.0.9');
  const right = await udpFrom('127.0.0.3');
  try {
    const n3: Heartbeat = { cluster: 'loop', from: 'n3', lan: 0, incarnation: Date.now(), seq: 1, view: { epoch: 1, members: ['n3'] }, modules: {} };
    await wrong.send(encodeHeartbeat(n3, key), cfg.heartbeat.port);
    await wrong.send(encodeHeartbeat({ ...n3, seq: 2 }, key), cfg.heartbeat.port);
    await waitFor(() => n1.counters().dropped.wrong_source === 2, 1000, 'two wrong_source drops');
    assert.equal(n1.counters().perLan[0]?.dropped.wrong_source, 2);
    assert.equal(n1.peers().find((p) => p.name === 'n3')?.up, false);
    assert.equal(n1.counters().accepted, 0);
    // The same kind of datagram from n3's configured address is accepted: the address was the cause.
    await right.send(encodeHeartbeat({ ...n3, seq: 3 }, key), cfg.heartbeat.port);
    await waitFor(() => n1.peers().find((p) => p.name === 'n3')?.up === true, 1000, 'n3 up from its own address');
  } finally {
    wrong.close();
    right.close();
    await Promise.all(members.map((m) => m.stop()));
  }
});

test('finding 12: over UDP, a heartbeat with incarnation 2^53-1 is dropped and counted; the real heartbeats keep the peer up', async () => {
  const { cfg, members } = await startCluster(2);
  const [n1, n2] = members as [UdpMembership, UdpMembership];
  const attacker = await udpFrom('127.0.0.2');
  try {
    await waitFor(() => all(n1) === 'n1 n2', 2000, 'formation');
    const inc = n1.peers().find((p) => p.name === 'n2')?.incarnation;
    const changes: MembershipAction[] = [];
    for (const ev of ['peer_up', 'peer_down', 'view_change']) n1.on(ev, (a: MembershipAction) => changes.push(a));
    const bogus: Heartbeat = { cluster: 'loop', from: 'n2', lan: 0, incarnation: 2 ** 53 - 1, seq: 1, view: { epoch: 9, members: ['n2'] }, modules: { evil: { state: 'UP', sinceMs: 0 } } };
    await attacker.send(encodeHeartbeat(bogus, key), cfg.heartbeat.port);
    await waitFor(() => n1.counters().dropped.future_incarnation === 1, 1000, 'future_incarnation drop');
    // Well past the timeout (250 ms): n2's real heartbeats are still accepted, nothing changed.
    const accepted = n1.counters().accepted;
    await sleep(600);
    assert.ok(n1.counters().accepted >= accepted + 5, `accepted ${n1.counters().accepted - accepted} real heartbeats in 600 ms`);
    assert.equal(n1.peers().find((p) => p.name === 'n2')?.incarnation, inc);
    assert.equal(all(n1), 'n1 n2');
    assert.deepEqual(changes, []);
    assert.deepEqual(n1.moduleStates().n2, {});
    void n2;
  } finally {
    attacker.close();
    await Promise.all(members.map((m) => m.stop()));
  }
});

test('finding 12 and low (replay after restart): incarnation and replay floors survive a restart; a recorded heartbeat replayed to the restarted node is dropped', async () => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-membership-'));
  const cfg = config(20000 + Math.floor(Math.random() * 40000), 2);
  let n1 = new UdpMembership({ cluster: cfg, self: 'n1', stateDir });
  const n2 = new UdpMembership({ cluster: cfg, self: 'n2', incarnation: Date.now() });
  const attacker = await udpFrom('127.0.0.2');
  try {
    await n1.start();
    await n2.start();
    await waitFor(() => all(n1) === 'n1 n2', 2000, 'formation');
    await n2.stop();
    await n1.stop(); // saves the floors
    const file = path.join(stateDir, 'membership.json');
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    const saved = JSON.parse(fs.readFileSync(file, 'utf8')) as { incarnation: number; peers: Record<string, { incarnation: number; lastSeq: number[] }> };
    assert.equal(saved.incarnation, n1.incarnation);
    const floor = saved.peers.n2;
    assert.ok(floor && floor.incarnation === n2.incarnation && (floor.lastSeq[0] ?? 0) >= 1);
    // The clock "stepped back": the saved incarnation is a minute ahead of now. The next run is above it.
    fs.writeFileSync(file, JSON.stringify({ ...saved, incarnation: Date.now() + 60_000 }), { mode: 0o600 });
    n1 = new UdpMembership({ cluster: cfg, self: 'n1', stateDir });
    assert.ok(n1.incarnation > Date.now() + 50_000, 'incarnation = last saved + 1, not the clock');
    await n1.start();
    // A recorded heartbeat of n2 (the last one n1's previous run accepted), replayed: dropped.
    const recorded: Heartbeat = { cluster: 'loop', from: 'n2', lan: 0, incarnation: floor.incarnation, seq: floor.lastSeq[0] as number, view: { epoch: 2, members: ['n1', 'n2'] }, modules: {} };
    await attacker.send(encodeHeartbeat(recorded, key), cfg.heartbeat.port);
    await attacker.send(encodeHeartbeat({ ...recorded, seq: 1 }, key), cfg.heartbeat.port);
    await waitFor(() => n1.counters().dropped.replay === 2, 1000, 'two replays dropped');
    assert.equal(n1.peers().find((p) => p.name === 'n2')?.up, false);
    // A newer one (n2's next heartbeat) is accepted.
    await attacker.send(encodeHeartbeat({ ...recorded, seq: (floor.lastSeq[0] as number) + 1 }, key), cfg.heartbeat.port);
    await waitFor(() => n1.peers().find((p) => p.name === 'n2')?.up === true, 1000, 'n2 up on a newer heartbeat');
  } finally {
    attacker.close();
    await n1.stop();
    await n2.stop();
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
});

test('the refresh carries the slow duties: \'refresh\' once a second while idle; a new incarnation is saved at the next refresh, seqs alone not before SAVE_EVERY_MS', async () => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-membership-'));
  const cfg = config(20000 + Math.floor(Math.random() * 40000), 2);
  const file = path.join(stateDir, 'membership.json');
  const n1 = new UdpMembership({ cluster: cfg, self: 'n1', stateDir });
  let n2 = new UdpMembership({ cluster: cfg, self: 'n2', incarnation: 1000 });
  const saved = () => JSON.parse(fs.readFileSync(file, 'utf8')) as { peers: Record<string, { incarnation: number; lastSeq: number[] }> };
  try {
    await n1.start();
    await n2.start();
    await waitFor(() => all(n1) === 'n1 n2', 2000, 'formation');
    // n2's incarnation is new to the file: written at the next refresh.
    await waitFor(() => saved().peers.n2?.incarnation === 1000, 1500, 'n2\'s incarnation saved');
    const ino = fs.statSync(file).ino;
    let refreshes = 0;
    n1.on('refresh', () => { refreshes += 1; });
    const seqBefore = n1.counters().accepted;
    await sleep(3000);
    assert.ok(refreshes >= 2 && refreshes <= 4, `'refresh' ${refreshes} times in 3 s`);
    assert.ok(n1.counters().accepted > seqBefore + 40, 'n2\'s heartbeats kept coming (its seqs moved)');
    assert.equal(fs.statSync(file).ino, ino, 'seqs alone: the file is not rewritten within SAVE_EVERY_MS');
    // n2 restarts with a new incarnation: saved at the next refresh, not SAVE_EVERY_MS later.
    await n2.stop();
    n2 = new UdpMembership({ cluster: cfg, self: 'n2', incarnation: 2000 });
    await n2.start();
    const tookMs = await waitFor(() => saved().peers.n2?.incarnation === 2000, 3000, 'n2\'s new incarnation saved');
    assert.ok(tookMs < 2000, `saved after ${tookMs.toFixed(0)} ms`);
  } finally {
    await n1.stop();
    await n2.stop();
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
});

// The pump (src/native/heartbeat.ts) keeps heartbeats going and stamps arrivals while the JS thread
// is blocked: here all three nodes share one blocked thread, for four times the timeout.
test('quiet path: an idle peer\'s repeated heartbeats are absorbed by the pump and fed at the timeout checks; a change still arrives at once', async () => {
  for (const quiet of [true, false]) {
    const { members } = await startCluster(3, 3, quiet);
    const [n1, n2] = members as [UdpMembership, UdpMembership];
    try {
      await waitFor(() => members.every((m) => all(m) === 'n1 n2 n3' && m.converged()), 2000, 'formation');
      let news = 0;
      n1.on('heard', () => { news += 1; });
      const before = n1.counters();
      await sleep(2000);
      const after = n1.counters();
      const accepted = after.accepted - before.accepted;
      const quietOnes = after.quiet - before.quiet;
      // 2 peers x 2000 / 50 = 80 heartbeats, all accepted whatever the path.
      assert.ok(accepted >= 64, `accepted ${accepted}`);
      assert.equal(after.received - before.received, accepted + Object.values(after.dropped).reduce((a, b) => a + b, 0) - Object.values(before.dropped).reduce((a, b) => a + b, 0));
      if (quiet) {
        assert.ok(quietOnes >= accepted * 0.9, `quiet ${quietOnes} of ${accepted}`);
        // The core refreshes the pump once a second, each a new seq; a refresh with the same content is quiet too.
        assert.ok(news <= 4, `'heard' (something new) told ${news} times in 2 s of nothing new`);
      } else {
        assert.equal(quietOnes, 0);
        assert.ok(news >= 60, `without the quiet path every heartbeat is news: ${news}`);
      }
      const t0 = performance.now();
      n2.setLocalModules({ web: { state: 'UP', sinceMs: 1 } });
      await waitFor(() => n1.moduleStates().n2?.web?.state === 'UP', 1000, 'module gossip');
      const tookMs = performance.now() - t0;
      assert.ok(tookMs < 100, `a change reached n1 in ${tookMs.toFixed(0)} ms (quiet ${quiet})`);
      assert.deepEqual(n1.peers().filter((p) => !p.up), []);
    } finally {
      await Promise.all(members.map((m) => m.stop()));
    }
  }
});

test('the pump watches the quiet peers: an idle node\'s JS thread wakes for its sends, not to find the peers alive; a silence is still seen on time', async () => {
  const { members } = await startCluster(3);
  const [n1, n2, n3] = members as [UdpMembership, UdpMembership, UdpMembership];
  try {
    await waitFor(() => members.every((m) => all(m) === 'n1 n2 n3' && m.converged()), 2000, 'formation');
    assert.equal(n1.wakes().watching, true);
    await sleep(300);
    const before = n1.wakes();
    await sleep(2000);
    const after = n1.wakes();
    const woken = after.timer - before.timer + after.pump - before.pump;
    // Interval 50 ms, timeout 250 ms, 2 peers: checking their timeouts on this thread woke it
    // every 100-200 ms (10-20 times in 2 s); now it wakes for the once-a-second refresh of its sends.
    assert.ok(woken <= 5, `JS woken ${woken} times in 2 s of nothing new (timer ${after.timer - before.timer}, pump ${after.pump - before.pump})`);
    assert.deepEqual(n1.peers().filter((p) => !p.up), [], 'both peers up, their arrivals current');
    assert.ok(n1.peers().every((p) => p.name === 'n1' || performance.now() - Math.max(...p.lastHeardMs.map((t) => t ?? -Infinity)) < 150),
      'peers() reads the pump first: each peer heard within the last intervals');
    const stoppedAt = performance.now();
    const pumpWakes = n1.wakes().pump;
    await n3.stop();
    await waitFor(() => all(n1) === 'n1 n2', 2000, 'n3 down');
    const tookMs = performance.now() - stoppedAt;
    assert.ok(tookMs >= 250 - 60 && tookMs <= 250 + 50 + 100, `n3 declared down after ${tookMs.toFixed(0)} ms`);
    assert.ok(n1.wakes().pump > pumpWakes, 'the pump woke JS for the silence');
    void n2;
  } finally {
    await Promise.all(members.map((m) => m.stop()));
  }
});

test('a JS pause of 4× the timeout (a long GC, a starved event loop) marks no peer down', async () => {
  const { members } = await startCluster(3);
  try {
    await waitFor(() => members.every((m) => all(m) === 'n1 n2 n3' && m.converged()), 2000, 'formation');
    const downs: MembershipAction[] = [];
    for (const m of members) m.on('peer_down', (a: MembershipAction) => downs.push(a));
    const { sent, underruns } = members[0]!.counters();
    const t0 = performance.now();
    while (performance.now() - t0 < 1000) { /* the JS thread is stuck: no timer, no I/O callback */ }
    await sleep(300); // the timers that were due run now, a timeout's worth later
    assert.deepEqual(downs, [], 'no peer down after the pause');
    assert.ok(members.every((m) => all(m) === 'n1 n2 n3'));
    // n1's heartbeats went on during the pause (20 intervals of 50 ms, to 2 peers).
    assert.ok(members[0]!.counters().sent - sent >= 2 * 18, `sent ${members[0]!.counters().sent - sent} during and after the pause`);
    assert.equal(members[0]!.counters().underruns - underruns, 0, 'the pump never ran dry');
  } finally {
    await Promise.all(members.map((m) => m.stop()));
  }
});

// The pump's receive buffer must hold the largest heartbeat the codec accepts (32 KiB since protocol
// 3 carries config signatures): a heartbeat above 16 KiB crosses intact.
test('a heartbeat larger than 16 KiB (64 modules with mirror views and signatures) crosses the pump intact', async () => {
  const name = (i: number) => `module-with-a-long-name-for-the-size-test-${String(i).padStart(20, '0')}`;
  const modules = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [name(i), {
    state: 'SECOND', sinceMs: 1_700_000_000_000 + i,
    mirror: { state: 'SECOND' as const, dataUpToDate: true, generation: 9_007_199_254_740_000 + i, eligible: true, forced: false },
  }]));
  const cfg = { cluster: 'ab'.repeat(8), modules: Object.fromEntries(Array.from({ length: 64 }, (_, i) => [name(i), 'cd'.repeat(8)])) };
  const size = encodeHeartbeat({ cluster: 'loop', from: 'n2', lan: 0, incarnation: 1000, seq: 1, view: { epoch: 1, members: ['n1', 'n2'] },
    modules, proto: [3, 2], pkg: '0.1.0', cfg } as Heartbeat, key).length;
  assert.ok(size > 16 * 1024, `the test heartbeat is ${size} bytes`);
  for (let attempt = 0; ; attempt++) {
    const c = config(20000 + Math.floor(Math.random() * 40000), 2);
    const proto = { current: 3, min: 2 };
    const a = new UdpMembership({ cluster: c, self: 'n1', incarnation: 1000, protocol: proto, pkg: '0.1.0', cfg });
    const b = new UdpMembership({ cluster: c, self: 'n2', incarnation: 1000, protocol: proto, pkg: '0.1.0', cfg });
    try {
      await a.start();
      await b.start();
    } catch (err) {
      await Promise.all([a.stop(), b.stop()]);
      if (attempt < 4 && err instanceof Error && 'code' in err && err.code === 'CROFT_ERR_BIND') continue;
      throw err;
    }
    try {
      b.setLocalModules(modules);
      await waitFor(() => Object.keys(a.moduleStates().n2 ?? {}).length === 64, 2000, 'the 64 modules of n2 on n1');
      assert.equal(a.counters().dropped.malformed, 0);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
    break;
  }
});
