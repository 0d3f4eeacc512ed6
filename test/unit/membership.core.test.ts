import { test } from 'vitest';
import assert from 'node:assert/strict';
import {
  createMembership, currentView, floors, isConverged, membershipStep, moduleStates, nextTickMs, peers, type MembershipState,
} from '../../src/membership/core.js';
import type { Heartbeat, MembershipAction, MembershipEvent } from '../../src/membership/types.js';
import { nextIncarnation } from '../../src/membership/persist.js';

const base = { nodes: ['n1', 'n2', 'n3'], lans: 2, cluster: 'c', intervalMs: 100, timeoutMs: 500, incarnation: 10, nowMs: 0 };

function hb(from: string, lan: number, seq: number, extra: Partial<Heartbeat> = {}): Heartbeat {
  return { cluster: 'c', from, lan, incarnation: 5, seq, view: { epoch: 1, members: [from] }, modules: {}, ...extra };
}

class Runner {
  state: MembershipState;
  constructor(self = 'n1') {
    this.state = createMembership({ ...base, self });
  }
  step(e: MembershipEvent, nowMs: number): MembershipAction[] {
    const r = membershipStep(this.state, e, nowMs);
    this.state = r.state;
    return r.actions;
  }
  beat(h: Heartbeat, nowMs: number, lan = h.lan): MembershipAction[] {
    return this.step({ type: 'heartbeat', lan, hb: h }, nowMs);
  }
}

const types = (as: MembershipAction[]): string[] => as.map((a) => a.type);

test('first tick sends a heartbeat, then one per interval', () => {
  const r = new Runner();
  const a0 = r.step({ type: 'tick' }, 0);
  assert.deepEqual(types(a0), ['send']);
  const send = a0[0];
  assert.ok(send?.type === 'send');
  assert.deepEqual(send.hb, { cluster: 'c', from: 'n1', incarnation: 10, seq: 1, view: { epoch: 1, members: ['n1'] }, modules: {},
    proto: [3, 2], pkg: 'unknown', cfg: { cluster: '0000000000000000', modules: {} } });
  assert.deepEqual(r.step({ type: 'tick' }, 50), []);
  const a1 = r.step({ type: 'tick' }, 100);
  assert.ok(a1[0]?.type === 'send' && a1[0].hb.seq === 2);
});

test('first accepted heartbeat: peer up, view change with epoch +1, immediate send', () => {
  const r = new Runner();
  r.step({ type: 'tick' }, 0);
  const a = r.beat(hb('n2', 0, 1), 10);
  assert.deepEqual(types(a), ['peer_up', 'view_change', 'send']);
  assert.deepEqual(a[0], { type: 'peer_up', node: 'n2', cause: 'heartbeat' });
  assert.deepEqual(currentView(r.state), { epoch: 2, members: ['n1', 'n2'] });
  assert.equal(isConverged(r.state), false); // n2 announced [n2]
  r.beat(hb('n2', 0, 2, { view: { epoch: 2, members: ['n1', 'n2'] } }), 20);
  assert.equal(isConverged(r.state), true);
});

test('drop reasons: wrong_cluster, self, unknown_node, wrong_lan, replay; state object unchanged', () => {
  const r = new Runner();
  r.beat(hb('n2', 0, 5), 0);
  const before = r.state;
  const cases: [Heartbeat, number, string][] = [
    [hb('n2', 0, 9, { cluster: 'other' }), 0, 'wrong_cluster'],
    [hb('n1', 0, 9), 0, 'self'],
    [hb('n9', 0, 9), 0, 'unknown_node'],
    [hb('n2', 1, 9), 0, 'wrong_lan'],
    [hb('n2', 2, 9), 2, 'wrong_lan'], // a LAN index beyond the configured ones
    [hb('n2', 0, 5), 0, 'replay'],
    [hb('n2', 0, 4), 0, 'replay'],
    [hb('n2', 0, 99, { incarnation: 4 }), 0, 'replay'],
  ];
  for (const [h, lan, reason] of cases) {
    const a = r.beat(h, 1, lan);
    assert.deepEqual(a, [{ type: 'drop', reason, from: h.from, lan }]);
    assert.equal(r.state, before);
  }
});

test('replay window is per LAN: the same seq is accepted once on each LAN', () => {
  const r = new Runner();
  r.beat(hb('n2', 0, 5), 0);
  assert.deepEqual(types(r.beat(hb('n2', 1, 5), 1)), []);
  assert.deepEqual(types(r.beat(hb('n2', 1, 5), 2)), ['drop']);
  assert.deepEqual(peers(r.state).find((p) => p.name === 'n2')?.lastHeardMs, [0, 1]);
});

test('larger incarnation: restart; stays up with cause restarted, old incarnation then replay', () => {
  const r = new Runner();
  r.beat(hb('n2', 0, 50), 0);
  const a = r.beat(hb('n2', 0, 1, { incarnation: 6 }), 10);
  assert.deepEqual(a, [{ type: 'peer_up', node: 'n2', cause: 'restarted' }]);
  assert.equal(currentView(r.state).epoch, 2); // no view change
  assert.deepEqual(types(r.beat(hb('n2', 1, 51), 11)), ['drop']); // old incarnation on the other LAN
  assert.deepEqual(types(r.beat(hb('n2', 1, 1, { incarnation: 6 }), 12)), []);
});

test('down only when silent on every LAN for timeoutMs; one LAN keeps the peer up', () => {
  const r = new Runner();
  r.beat(hb('n2', 0, 1), 0);
  r.beat(hb('n2', 1, 1), 0);
  // LAN 0 goes silent; LAN 1 keeps beating.
  for (let t = 100, seq = 2; t <= 2000; t += 100, seq++) {
    r.beat(hb('n2', 1, seq), t);
    const a = r.step({ type: 'tick' }, t);
    assert.ok(!types(a).includes('peer_down'), `down at ${t}`);
  }
  // Now silence on both: last heard at 2000, down exactly at 2500, not before.
  assert.ok(!types(r.step({ type: 'tick' }, 2499)).includes('peer_down'));
  const a = r.step({ type: 'tick' }, 2500);
  assert.deepEqual(a.filter((x) => x.type !== 'send'), [
    { type: 'peer_down', node: 'n2', cause: 'timeout' },
    { type: 'view_change', view: { epoch: 3, members: ['n1'] }, cause: 'n2 down' },
  ]);
  assert.ok(types(a).includes('send'));
  assert.deepEqual(moduleStates(r.state).n2, {});
  // It comes back with the same incarnation (a healed partition): up again.
  assert.deepEqual(types(r.beat(hb('n2', 0, 100), 2600)), ['peer_up', 'view_change', 'send']);
});

test('local_modules: sent at once when changed, not when equal; seen by peers and in moduleStates', () => {
  const r = new Runner();
  r.step({ type: 'tick' }, 0);
  const mods = { web: { state: 'UP', sinceMs: 7 } };
  const a = r.step({ type: 'local_modules', modules: mods }, 5);
  assert.ok(a[0]?.type === 'send' && a[0].hb.modules.web?.state === 'UP');
  assert.deepEqual(r.step({ type: 'local_modules', modules: { web: { state: 'UP', sinceMs: 7 } } }, 6), []);
  r.beat(hb('n2', 0, 1, { modules: { db: { state: 'PRIM', sinceMs: 1 } } }), 10);
  assert.deepEqual(moduleStates(r.state), { n1: mods, n2: { db: { state: 'PRIM', sinceMs: 1 } }, n3: {} });
});

test('steps do not mutate the state they were given', () => {
  const r = new Runner();
  const s0 = r.state;
  const snap = JSON.stringify(s0);
  r.step({ type: 'tick' }, 0);
  r.beat(hb('n2', 0, 1), 1);
  r.step({ type: 'tick' }, 10_000);
  assert.equal(JSON.stringify(s0), snap);
});

test('createMembership asserts its options (programmer errors)', () => {
  assert.throws(() => createMembership({ ...base, self: 'n9' }));
  assert.throws(() => createMembership({ ...base, self: 'n1', lans: 0 }));
  assert.throws(() => createMembership({ ...base, self: 'n1', timeoutMs: 50 }));
});

// ---- issue 8: bounded incarnations, recovery from a bad floor, floors saved across restarts ----

const WALL = 1_700_000_000_000;
const drops = (as: MembershipAction[]): string[] => as.filter((a) => a.type === 'drop').map((a) => (a as { reason: string }).reason);

test('finding 12: an incarnation of 2^53-1 is dropped (future_incarnation) and does not block the real heartbeats', () => {
  const r = new Runner();
  const real = (lan: number, seq: number): Heartbeat => hb('n2', lan, seq, { incarnation: WALL - 60_000 });
  const beat = (h: Heartbeat, t: number): MembershipAction[] => r.step({ type: 'heartbeat', lan: h.lan, hb: h, wallMs: WALL + t }, t);
  assert.deepEqual(types(beat(real(0, 1), 1)).includes('peer_up'), true);
  // Signed by a key holder (or a peer whose clock is an hour ahead): above now + 10 min.
  let seq = 2;
  for (const inc of [2 ** 53 - 1, WALL + 3_600_000]) {
    const before = r.state;
    const bogus = beat({ ...real(1, seq + 1), incarnation: inc }, 3);
    assert.deepEqual(drops(bogus), ['future_incarnation']);
    assert.equal(r.state, before); // dropped: nothing changed
    assert.deepEqual(drops(beat(real(0, seq++), 4)), []);
  }
  for (let t = 10; t < 3000; t += 100) assert.deepEqual(drops(beat(real(t % 200 === 10 ? 0 : 1, seq++), t)), [], `real heartbeat at ${t} ms`);
  assert.equal(peers(r.state).find((p) => p.name === 'n2')?.incarnation, WALL - 60_000);
  assert.equal(peers(r.state).find((p) => p.name === 'n2')?.up, true);
});

test('finding 12: a bogus incarnation within the bound blocks the real one for at most timeoutMs; recorded heartbeats stay refused', () => {
  const r = new Runner();
  const inc = WALL - 60_000;
  const beat = (h: Heartbeat, t: number): MembershipAction[] => r.step({ type: 'heartbeat', lan: h.lan, hb: h, wallMs: WALL + t }, t);
  const recorded: Heartbeat[] = [];
  let seq = 1;
  for (let t = 0; t < 1000; t += 100) {
    const h = hb('n2', 0, seq++, { incarnation: inc });
    recorded.push(h);
    assert.deepEqual(drops(beat(h, t)), []);
  }
  // A key holder sends one heartbeat 5 minutes ahead of the clock: accepted (within the bound)...
  assert.deepEqual(drops(beat(hb('n2', 0, 1, { incarnation: WALL + 300_000 }), 1000)), []);
  // ...so the real ones are refused for a while, but at most timeoutMs (500) after the bogus one.
  let recoveredAt: number | null = null;
  for (let t = 1100; t < 3000; t += 100) {
    r.step({ type: 'tick' }, t);
    const d = drops(beat(hb('n2', 0, seq++, { incarnation: inc }), t));
    if (d.length === 0 && recoveredAt === null) recoveredAt = t;
    if (recoveredAt !== null) assert.deepEqual(d, [], `real heartbeat at ${t} ms after recovery`);
  }
  assert.ok(recoveredAt !== null && recoveredAt - 1000 <= 500 + 100, `recovered at ${recoveredAt}`);
  assert.equal(peers(r.state).find((p) => p.name === 'n2')?.incarnation, inc);
  assert.equal(peers(r.state).find((p) => p.name === 'n2')?.up, true);
  // Recorded heartbeats of the real run, replayed now: still refused.
  for (const h of recorded) assert.deepEqual(drops(beat(h, 3000)), ['replay']);
});

test('low (replay after restart): a recorded heartbeat replayed to a restarted receiver (floors restored) is dropped', () => {
  const r = new Runner();
  const recorded: Heartbeat[] = [];
  for (let seq = 1; seq <= 5; seq++) {
    for (const lan of [0, 1]) {
      const h = hb('n2', lan, seq, { incarnation: 7 });
      recorded.push(h);
      r.beat(h, seq * 100);
    }
  }
  const saved = JSON.parse(JSON.stringify(floors(r.state))) as ReturnType<typeof floors>;
  assert.deepEqual(saved.n2, { incarnation: 7, lastSeq: [5, 5], prev: null });
  // Without the floors (today's restart), the replay brings n2 up: the hole.
  const fresh = new Runner();
  assert.ok(types(fresh.beat(recorded[0] as Heartbeat, 0)).includes('peer_up'));
  // With them, every recorded heartbeat is dropped and nothing changes.
  const restarted = createMembership({ ...base, self: 'n1', incarnation: 11, restore: saved });
  let state = restarted;
  for (const h of recorded) {
    const out = membershipStep(state, { type: 'heartbeat', lan: h.lan, hb: h }, 10);
    assert.deepEqual(out.actions.map((a) => a.type), ['drop']);
    assert.equal(out.state, state);
    state = out.state;
  }
  // The peer's next heartbeat (or its next run) is accepted.
  const next = membershipStep(state, { type: 'heartbeat', lan: 0, hb: hb('n2', 0, 6, { incarnation: 7 }) }, 20);
  assert.ok(next.actions.some((a) => a.type === 'peer_up'));
  // A damaged save is ignored field by field, not thrown on.
  const damaged = createMembership({ ...base, self: 'n1', restore: { n2: { incarnation: -1, lastSeq: [], prev: null }, n3: 'x' as never, n9: saved.n2 as never } });
  assert.deepEqual(floors(damaged), {});
});

test('finding 12: the next incarnation is max(now, last saved + 1); a saved value far ahead (damaged file) is ignored', () => {
  const saved = (incarnation: number) => ({ node: 'n1', incarnation, peers: {} });
  assert.equal(nextIncarnation(null, WALL), WALL);
  assert.equal(nextIncarnation(saved(WALL - 5000), WALL), WALL);
  assert.equal(nextIncarnation(saved(WALL + 3_600_000), WALL), WALL + 3_600_001); // the clock stepped back an hour
  assert.equal(nextIncarnation(saved(2 ** 53 - 1), WALL), WALL);
  assert.equal(nextIncarnation(saved(WALL + 2 * 86_400_000), WALL), WALL);
});

test('nextTickMs leaves out a peer whose latest arrival is on LANs watched elsewhere (the pump), not the others', () => {
  const r = new Runner();
  r.step({ type: 'tick' }, 0);
  r.beat(hb('n2', 0, 1), 15);
  r.beat(hb('n3', 0, 1), 25); // a send at each peer_up: the next at 125
  r.beat(hb('n2', 1, 2), 28); // n2: LAN 0 at 15, LAN 1 at 28
  for (let t = 30; t <= 520; t += 10) r.step({ type: 'tick' }, t); // sends at 130 ... 430: the next at 530
  assert.equal(r.state.nextSendMs, 530);
  assert.equal(nextTickMs(r.state), 525, "n3's deadline (25 + 500)");
  assert.equal(nextTickMs(r.state, () => false), 525, 'nothing watched: the same');
  // n3 watched on LAN 0: n2's deadline, set by its LAN 1 arrival (28 + 500).
  assert.equal(nextTickMs(r.state, (node, lan) => node === 'n3' && lan === 0), 528);
  // n2 watched on LAN 0 only: its latest arrival is on LAN 1, still this driver's to time.
  assert.equal(nextTickMs(r.state, (node, lan) => node === 'n3' || lan === 0), 528);
  // Every latest arrival watched: only the next send.
  assert.equal(nextTickMs(r.state, (node, lan) => node === 'n3' || lan === 1), 530);
  assert.equal(nextTickMs(r.state, () => true), 530);
});
