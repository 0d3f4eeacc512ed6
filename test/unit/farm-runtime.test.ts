// The farm's pure plan (farm/plan.ts) and its runtime (farm/runtime.ts) with recording fakes and a
// clock that moves only when told: the effect order on start, members change, stop, a failed
// effect, the drain loop.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import type { ClusterConfig, ModuleConfig } from '../../src/config/types.js';
import { silentLogger } from '../../src/log/logger.js';
import type { NodeModuleView } from '../../farm/members.js';
import {
  afterFailure, afterSuccess, checkDuty, EMPTY_PLANE, nextAction, shareOf, type FarmPlane, type FarmWant,
} from '../../farm/plan.js';
import { FarmRuntime, type FarmClock, type FarmEffects } from '../../farm/runtime.js';

function plan(plane: FarmPlane, want: FarmWant): string[] {
  const out: string[] = [];
  for (let i = 0; i < 20; i++) {
    const a = nextAction(plane, want);
    if (!a) return out;
    assert.equal(checkDuty(a, plane), null, `${a.type} breaks its duty`);
    out.push(a.type);
    plane = afterSuccess(plane, a);
  }
  throw new Error('no fixed point');
}

test('plan: start is filter, VIP, ARP, then buckets; stop is ARP, VIP, filter', () => {
  const up: FarmWant = { active: true, owned: [1, 3], takeover: [], arp: true };
  assert.deepEqual(plan(EMPTY_PLANE, up), ['filter-empty', 'add-vip', 'announce', 'apply-buckets']);
  assert.deepEqual(plan(EMPTY_PLANE, { ...up, arp: false }), ['filter-empty', 'add-vip', 'apply-buckets']);
  const full: FarmPlane = { filter: 'present', vip: 'present', announce: 'present', owned: [1, 3], takeover: [] };
  assert.deepEqual(plan(full, { ...up, active: false }), ['silence', 'remove-vip', 'remove-filter']);
  assert.deepEqual(plan(full, { ...up, owned: [2] }), ['apply-buckets']);
  assert.deepEqual(plan(full, up), []);
});

test('plan: a failed effect leaves its part unknown: done again on the way up, undone on the way down', () => {
  const p = afterFailure({ filter: 'present', vip: 'absent', announce: 'absent', owned: [], takeover: [] }, { type: 'add-vip' });
  assert.equal(p.vip, 'unknown');
  assert.deepEqual(plan(p, { active: true, owned: [], takeover: [], arp: false }), ['add-vip']);
  assert.deepEqual(plan(p, { active: false, owned: [], takeover: [], arp: false }), ['remove-vip', 'remove-filter']);
  const q = afterFailure({ filter: 'present', vip: 'present', announce: 'present', owned: [1], takeover: [] }, { type: 'apply-buckets', owned: [2], takeover: [] });
  assert.equal(q.owned, null);
  assert.deepEqual(plan(q, { active: true, owned: [2], takeover: [], arp: true }), ['apply-buckets']);
  assert.match(checkDuty({ type: 'add-vip' }, EMPTY_PLANE) ?? '', /filter absent/);
  assert.match(checkDuty({ type: 'remove-filter' }, { ...EMPTY_PLANE, filter: 'present', vip: 'unknown' }) ?? '', /VIP unknown/);
});

test('plan: reconcile only when due and the filter is there; nothing is renewed', () => {
  const full: FarmPlane = { filter: 'present', vip: 'present', announce: 'present', owned: [1], takeover: [] };
  const want: FarmWant = { active: true, owned: [1], takeover: [], arp: true };
  assert.equal(nextAction(full, want, { reconcile: false }), null, 'the plane agrees: nothing to do, no renewal');
  assert.equal(nextAction(full, want, { reconcile: true })?.type, 'reconcile');
  assert.equal(nextAction(EMPTY_PLANE, want, { reconcile: true })?.type, 'filter-empty');
  // A table deleted behind croft's back makes bucket updates fail: the reconcile goes first.
  assert.equal(nextAction({ ...full, owned: null }, want, { reconcile: true })?.type, 'reconcile');
});

const module = {
  name: 'web', nodes: ['n1', 'n2'], farm: { vip: '10.0.0.100', vips: ['10.0.0.100'], buckets: 8, quorum: 'none', weights: {}, virtualMac: '02:00:00:00:00:01', drainMs: 500 },
} as unknown as ModuleConfig;
const cluster = { nodes: [{ name: 'n1' }, { name: 'n2' }], heartbeat: { intervalMs: 100, timeoutMs: 500 } } as unknown as ClusterConfig;

test('shareOf: the same members give back the same share (no rehash)', () => {
  const views: NodeModuleView[] = [{ name: 'n1', up: true, state: 'UP' }, { name: 'n2', up: true, state: 'UP' }];
  const a = shareOf(module, cluster.nodes, 'n1', views, null);
  assert.equal(shareOf(module, cluster.nodes, 'n1', views, a), a);
  const b = shareOf(module, cluster.nodes, 'n1', [views[0]!, { name: 'n2', up: false, state: undefined }], a);
  assert.deepEqual(b.members, ['n1']);
  assert.deepEqual(b.owned, [0, 1, 2, 3, 4, 5, 6, 7]);
});

function fakes() {
  let now = 0;
  const timers: Array<{ at: number; fn: () => void; off: boolean }> = [];
  const clock: FarmClock = {
    now: () => now,
    setTimeout: (fn, ms) => { const t = { at: now + ms, fn, off: false }; timers.push(t); return t; },
    clearTimeout: (t) => { (t as { off: boolean }).off = true; },
  };
  const calls: string[] = [];
  const fail = new Set<string>();
  let conns = 2;
  const act = (what: string) => async () => {
    calls.push(what);
    if (fail.has(what)) throw new Error(`${what} failed`);
  };
  const effects: FarmEffects = {
    installFilter: act('filter'), addVip: act('vip+'), announce: act('arp+'), silence: act('arp-'),
    removeVip: act('vip-'), removeFilter: act('filter-'),
    applyBuckets: async (owned) => { calls.push(`buckets ${owned.join(',')}`); if (fail.has('buckets')) throw new Error('nft failed'); },
    reconcileFilter: async () => { calls.push('reconcile'); return { fixed: 'nothing', reasons: [] }; },
    countConnections: () => conns,
  };
  /** Moves the clock, firing due timers in order. */
  const advance = async (ms: number) => {
    const until = now + ms;
    for (;;) {
      const due = timers.filter((t) => !t.off && t.at <= until).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      due.off = true;
      now = due.at;
      due.fn();
      await new Promise((r) => setImmediate(r));
    }
    now = until;
  };
  return { clock, calls, fail, effects, advance, setConns: (n: number) => { conns = n; } };
}

test('runtime: start, members change, stop in order; a failed VIP is tried again next interval', async () => {
  const f = fakes();
  let views: NodeModuleView[] = [{ name: 'n1', up: true, state: 'WAIT' }, { name: 'n2', up: true, state: 'UP' }];
  const rt = new FarmRuntime({ module, self: 'n1', cluster, effects: f.effects, clock: f.clock, views: () => views, log: silentLogger() });
  rt.open();
  f.fail.add('vip+');
  rt.transition('STOP', 'WAIT');
  await rt.idle();
  assert.deepEqual(f.calls.splice(0), ['filter', 'vip+']);
  assert.equal(rt.plane().vip, 'unknown');
  f.fail.delete('vip+');
  await f.advance(100);
  assert.deepEqual(f.calls.splice(0), ['vip+', 'arp+']);
  views = [{ name: 'n1', up: true, state: 'UP' }, views[1]!];
  rt.transition('WAIT', 'UP');
  await rt.idle();
  const mine = rt.status().ownedBuckets;
  assert.ok(mine > 0 && mine < 8);
  assert.match(f.calls.splice(0).join(' '), /^buckets [\d,]+$/);
  assert.deepEqual(rt.status().members, ['n1', 'n2']);
  views = [views[0]!, { name: 'n2', up: false, state: undefined }];
  await f.advance(50); // the view poll sees n2 gone
  assert.deepEqual(f.calls.filter((c) => c.startsWith('buckets')), ['buckets 0,1,2,3,4,5,6,7']);
  f.calls.length = 0;
  await f.advance(1000); // no renewal: an owner table needs none, nothing is called while idle
  assert.deepEqual(f.calls.splice(0), []);
  rt.transition('UP', 'STOP');
  await rt.idle();
  assert.deepEqual(f.calls.splice(0), ['arp-', 'vip-', 'filter-']);
  await rt.close();
  await f.advance(1000);
  assert.deepEqual(f.calls, [], 'no timer left after close');
});

test('runtime: the drain says drained when no connection is left, or at drain_ms', async () => {
  const f = fakes();
  const rt = new FarmRuntime({ module, self: 'n1', cluster, effects: f.effects, clock: f.clock, views: () => [], log: silentLogger() });
  let saidAt: number | null = null;
  const draining = { on: true };
  rt.drain(500, { draining: () => draining.on, drained: () => { saidAt = f.clock.now(); } });
  await f.advance(250);
  assert.equal(saidAt, null);
  f.setConns(0);
  await f.advance(100);
  assert.equal(saidAt, 300, 'the poll after the last connection closed');
  saidAt = null;
  f.setConns(3);
  rt.drain(500, { draining: () => draining.on, drained: () => { saidAt = f.clock.now(); } });
  await f.advance(1000);
  assert.equal(saidAt, 850, 'at drain_ms with connections left');
  saidAt = null;
  rt.drain(500, { draining: () => draining.on, drained: () => { saidAt = f.clock.now(); } });
  draining.on = false; // a start cancelled the drain
  await f.advance(1000);
  assert.equal(saidAt, null);
});
