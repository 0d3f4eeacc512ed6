// The mirror machine, cell by cell: every (state, event type) of the handler table (mirror/machine.ts).
// The rules that span cells (witness epochs, generations, tie-break) are in
// mirror-machine-election.test.ts, the transition table (mirror/transitions.ts) in mirror-machine-table.test.ts.
import { describe, test } from 'vitest';
import assert from 'node:assert/strict';
import { TRANSITIONS, announce, handlerName, nextWakeMs } from '../../mirror/machine.js';
import type { MirrorCheckerConfig, MirrorEvent, MirrorState } from '../../mirror/types.js';
import { M, alone, cfg, prim, second, stopped, waiting } from '../helpers/mirror-machine.js';

const STATES: MirrorState[] = ['STOP', 'WAIT', 'ALONE', 'PRIM', 'SECOND'];
const EVENTS: MirrorEvent['type'][] = ['command', 'peer', 'peer_lost', 'witness', 'replication', 'script_done', 'probe', 'data', 'tick'];

test('the table has a handler for every (state, event) cell, and the unit tests below cover each', () => {
  for (const s of STATES) for (const e of EVENTS) assert.ok(['ignore', 'handle'].includes(handlerName(s, e)));
  // Events that are stale, or impossible, in a state are dropped or asserted: never silently acted on.
  assert.equal(handlerName('STOP', 'witness'), 'ignore');
  assert.equal(handlerName('STOP', 'probe'), 'ignore');
  assert.equal(handlerName('WAIT', 'witness'), 'handle');
});

test('TRANSITIONS: every state change is listed once with its reason, and every state is reachable', () => {
  const keys = TRANSITIONS.map(([f, t]) => `${f}->${t}`);
  assert.equal(new Set(keys).size, keys.length);
  for (const s of STATES) if (s !== 'STOP') assert.ok(TRANSITIONS.some(([, t]) => t === s), s);
  assert.ok(!keys.includes('STOP->ALONE') && !keys.includes('WAIT->PRIM') && !keys.includes('STOP->SECOND'));
});

describe('STOP', () => {
  test('command: start -> WAIT; stop changes nothing', () => {
    const x = stopped();
    x.cmd('stop');
    assert.deepEqual(x.last, []);
    x.step({ type: 'data', status: 'stale' });
    x.cmd('start');
    assert.deepEqual(x.types, ['STOP->WAIT', 'run_checkers']);
  });
  test('peer: remembered, no action', () => {
    const x = stopped();
    x.peer('PRIM');
    assert.deepEqual(x.last, []);
    assert.equal(x.m.peer?.state, 'PRIM');
  });
  test('peer_lost: forgotten, no action', () => {
    const x = stopped();
    x.peer('PRIM');
    x.step({ type: 'peer_lost' });
    assert.deepEqual(x.last, []);
    assert.equal(x.m.peer, null);
  });
  test('witness: a late verdict is ignored', () => {
    const x = stopped('redis');
    x.verdict(true);
    assert.equal(x.m.verdict.allowed, false);
  });
  test('replication: link state kept; a late reintegration_done ignored', () => {
    const x = stopped();
    x.repl('link_up');
    x.repl('reintegration_done');
    assert.deepEqual(x.last, []);
    assert.equal(x.m.link, true);
  });
  test('script_done: impossible (no script runs in STOP)', () => {
    assert.throws(() => stopped().done('stop_prim'), /no script runs in STOP/);
  });
  test('probe: no checker runs in STOP', () => {
    const x = stopped('none', [{ name: 'dep', kind: 'dependency', onFailure: 'wait', rise: 1, fall: 1 }]);
    x.probe('dep', true);
    assert.deepEqual(x.last, []);
    assert.equal(x.m.health['dep']!.state, 'unknown');
  });
  test('data: the record read at start', () => {
    const x = new M(cfg());
    x.step({ type: 'data', status: 'up-to-date' });
    assert.equal(x.m.data, 'up-to-date');
    assert.deepEqual(x.last, [], 'not re-recorded');
  });
  test('tick: nothing', () => {
    const x = stopped();
    x.step({ type: 'tick' }, 100_000);
    assert.deepEqual(x.last, []);
  });
});

describe('WAIT', () => {
  test('command: stop -> STOP; prim declares the data up to date and goes ALONE (dirty log, mount, VIP, start_prim)', () => {
    const x = waiting();
    x.cmd('prim');
    assert.deepEqual(x.types, ['record up-to-date', 'WAIT->ALONE', 'run_checkers', 'record up-to-date', 'dirty_log start', 'mount', 'vip_add', 'start_prim']);
    const y = waiting();
    y.cmd('stop');
    assert.deepEqual(y.types, ['WAIT->STOP', 'run_checkers']);
  });
  test('peer: ALONE peer with the link up -> record stale, then reintegrate target', () => {
    const x = waiting();
    x.repl('link_up');
    x.peer('ALONE');
    assert.deepEqual(x.types, ['reintegrate target'], 'already recorded stale');
    assert.equal(x.m.state, 'WAIT');
    const y = new M(cfg({ peerWaitMs: 5000 }));
    y.step({ type: 'data', status: 'up-to-date' });
    y.cmd('start');
    y.repl('link_up');
    assert.equal(y.m.state, 'WAIT', 'waiting to hear its peer');
    y.peer('ALONE');
    assert.deepEqual(y.types, ['record stale', 'reintegrate target'], 'stale is recorded before anything is received');
  });
  test('peer_lost: the reintegration into this node is aborted; the data stays stale', () => {
    const x = waiting();
    x.repl('link_up');
    x.peer('ALONE');
    x.step({ type: 'peer_lost' });
    assert.deepEqual(x.types, ['reintegrate_abort']);
    assert.equal(x.m.data, 'stale');
  });
  test('witness: chosen and contending, a yes -> ALONE with the order mount, VIP, start_prim', () => {
    const x = stopped('redis');
    x.cmd('start');
    assert.deepEqual(x.types, ['STOP->WAIT', 'run_checkers', 'witness contend']);
    x.verdict(false);
    assert.equal(x.m.state, 'WAIT');
    x.verdict(true);
    assert.deepEqual(x.types, ['WAIT->ALONE', 'run_checkers', 'record up-to-date', 'dirty_log start', 'mount', 'vip_add', 'start_prim']);
  });
  test('replication: reintegration_done as target -> SECOND, data up to date', () => {
    const x = waiting();
    x.repl('link_up');
    x.peer('ALONE');
    x.repl('reintegration_done');
    assert.deepEqual(x.types, [], 'not while the source is ALONE: it may be a late one of an earlier reintegration');
    x.peer('PRIM');
    x.repl('reintegration_done');
    assert.deepEqual(x.types, ['record up-to-date', 'WAIT->SECOND']);
  });
  test('script_done: after a give-up, stop_prim done -> unmount, then quarantine', () => {
    const x = alone('redis');
    x.step({ type: 'tick' }, 20_000); // the verdict lapsed
    // Still chosen: it contends again at once, with the generation it would write under next.
    assert.deepEqual(x.types, ['fence', 'vip_remove', 'ALONE->WAIT', 'run_checkers', 'stop_prim', 'witness contend']);
    x.done('stop_prim', 'timeout');
    assert.deepEqual(x.types, ['unmount', 'quarantine']);
  });
  test('probe: a dependency that becomes healthy makes the node eligible -> ALONE', () => {
    const x = stopped('none', [{ name: 'dep', kind: 'dependency', onFailure: 'wait', rise: 1, fall: 1 }]);
    x.cmd('start');
    assert.equal(x.m.state, 'WAIT');
    x.probe('dep', true);
    assert.deepEqual(x.types, ['checker_change', 'WAIT->ALONE', 'run_checkers', 'record up-to-date', 'dirty_log start', 'mount', 'vip_add', 'start_prim']);
  });
  test('data: accepted in WAIT', () => {
    const x = waiting();
    x.step({ type: 'data', status: 'up-to-date' });
    assert.equal(x.m.state, 'ALONE', 'now electable');
  });
  test('tick: the peer wait ends -> ALONE', () => {
    const x = new M(cfg({ peerWaitMs: 1000 }));
    x.step({ type: 'data', status: 'up-to-date' });
    x.cmd('start');
    assert.equal(x.m.state, 'WAIT');
    assert.equal(nextWakeMs(x.m, x.nowMs), 1002);
    x.step({ type: 'tick' }, 500);
    assert.equal(x.m.state, 'WAIT');
    x.step({ type: 'tick' }, 500);
    assert.equal(x.m.state, 'ALONE');
  });
});

describe('ALONE', () => {
  test('command: stop -> stop_prim first, then VIP removed, then unmount, then STOP', () => {
    const x = alone();
    x.cmd('stop');
    assert.deepEqual(x.types, ['stop_prim']);
    assert.equal(x.m.state, 'ALONE', 'still ALONE while the application stops');
    x.done('stop_prim');
    assert.deepEqual(x.types, ['vip_remove', 'unmount', 'ALONE->STOP', 'run_checkers']);
    assert.equal(x.m.data, 'up-to-date');
    const y = alone();
    y.cmd('second');
    assert.deepEqual(y.types, ['refused']);
  });
  test('peer: WAIT peer with the link up -> reintegrate source; a peer ALONE too that wins the tie -> give up, fence first', () => {
    const x = alone();
    x.repl('link_up');
    x.peer('WAIT', { dataUpToDate: false, eligible: false });
    assert.deepEqual(x.types, ['reintegrate source']);
    const y = alone();
    y.peer('ALONE', { forced: true });
    assert.deepEqual(y.types, ['fence', 'vip_remove', 'ALONE->WAIT', 'run_checkers', 'stop_prim']);
  });
  test('peer_lost: the reintegration from this node is aborted; still ALONE', () => {
    const x = alone();
    x.repl('link_up');
    x.peer('WAIT', { eligible: false });
    x.step({ type: 'peer_lost' });
    assert.deepEqual(x.types, ['reintegrate_abort']);
    assert.equal(x.m.state, 'ALONE');
  });
  test('witness: a no -> give up at once (fence, VIP, WAIT) even while a script runs', () => {
    const x = stopped('redis');
    x.cmd('start');
    x.verdict(true);
    assert.equal(x.m.running, 'start_prim');
    x.verdict(false);
    assert.deepEqual(x.types, ['fence', 'vip_remove', 'ALONE->WAIT', 'run_checkers', 'witness contend']);
    x.done('start_prim');
    assert.deepEqual(x.types, ['stop_prim'], 'the half-started application is stopped');
  });
  test('replication: reintegration_done as source -> dirty log cleared, PRIM', () => {
    const x = alone();
    x.repl('link_up');
    x.peer('WAIT', { eligible: false });
    x.repl('reintegration_done');
    assert.deepEqual(x.types, ['dirty_log clear', 'ALONE->PRIM']);
  });
  test('script_done: start_prim fails -> restart in place (stop_prim, start_prim), counted by maxloop', () => {
    const x = stopped();
    x.cmd('start');
    x.done('start_prim', 'fail');
    assert.deepEqual(x.types, ['stop_prim']);
    x.done('stop_prim');
    assert.deepEqual(x.types, ['start_prim']);
    assert.equal(x.m.restartTimesMs.length, 1);
    assert.equal(x.m.state, 'ALONE');
  });
  test('probe: an app checker failure -> restart; at maxloop -> stop', () => {
    const x = alone('none', [{ name: 'app', kind: 'app', onFailure: 'restart', rise: 1, fall: 1 }]);
    for (let i = 0; i < 2; i++) {
      x.probe('app', false);
      assert.deepEqual(x.types, ['checker_change', 'stop_prim']);
      x.done('stop_prim');
      x.done('start_prim');
    }
    x.probe('app', false);
    assert.deepEqual(x.types, ['checker_change', 'stop_prim']);
    assert.equal(x.m.target, 'stop');
    x.done('stop_prim');
    assert.equal(x.m.state, 'STOP');
  });
  test('probe: failures seen while start_prim ran do not hide a crash after it (health judged afresh from its end)', () => {
    const x = alone('none', [{ name: 'app', kind: 'app', onFailure: 'restart', rise: 1, fall: 2 }]);
    x.probe('app', true);
    x.probe('app', false);
    x.probe('app', false);
    assert.deepEqual(x.types, ['checker_change', 'stop_prim']);
    x.done('stop_prim');
    // start_prim runs (a VM booting): the checker fails meanwhile, nothing acts on it.
    x.probe('app', false);
    x.probe('app', false);
    assert.deepEqual(x.types, ['checker_change']);
    x.done('start_prim');
    // The application dies right after its start, before any success: fall failures restart it.
    x.probe('app', false);
    assert.deepEqual(x.types, []);
    x.probe('app', false);
    assert.deepEqual(x.types, ['checker_change', 'stop_prim']);
  });
  test('data: impossible while ALONE', () => {
    assert.throws(() => alone().step({ type: 'data', status: 'stale' }), /data event in ALONE/);
  });
  test('tick: the verdict lapses at validUntilMs (nextWakeMs) -> give up', () => {
    const x = stopped('redis');
    x.cmd('start');
    x.verdict(true, 1000);
    x.done('start_prim');
    const wake = nextWakeMs(x.m, x.nowMs);
    assert.equal(wake, x.m.verdict.validUntilMs);
    x.step({ type: 'tick' }, wake! - x.nowMs - 1);
    assert.equal(x.m.state, 'ALONE');
    x.step({ type: 'tick' }, 1);
    assert.deepEqual(x.types, ['fence', 'vip_remove', 'ALONE->WAIT', 'run_checkers', 'stop_prim', 'witness contend']);
  });
});

describe('PRIM', () => {
  test('command: swap with an in-sync SECOND -> stop_prim, VIP, unmount, WAIT (the peer takes over); refused elsewhere', () => {
    const x = prim();
    x.cmd('swap');
    assert.deepEqual(x.types, ['stop_prim']);
    assert.equal(announce(x.m).eligible, false, 'handing over');
    x.done('stop_prim');
    assert.deepEqual(x.types, ['vip_remove', 'unmount', 'PRIM->WAIT', 'run_checkers']);
    x.peer('ALONE');
    assert.deepEqual(x.types, ['record stale', 'reintegrate target']);
    assert.deepEqual(waiting().cmd('swap').map((a) => a.type), ['refused']);
  });
  test('peer: the SECOND stopped -> ALONE, dirty log on', () => {
    const x = prim();
    x.peer('STOP', { dataUpToDate: false, eligible: false });
    assert.deepEqual(x.types, ['PRIM->ALONE', 'record up-to-date', 'dirty_log start']);
  });
  test('peer_lost -> ALONE, dirty log on (the application keeps running)', () => {
    const x = prim();
    x.step({ type: 'peer_lost' });
    assert.deepEqual(x.types, ['PRIM->ALONE', 'record up-to-date', 'dirty_log start']);
    assert.equal(x.m.app, 'started');
  });
  test('witness: a no with redis -> give up (no quarantine: nothing was written alone)', () => {
    const x = prim('redis');
    x.verdict(false);
    assert.deepEqual(x.types, ['fence', 'vip_remove', 'PRIM->WAIT', 'run_checkers', 'stop_prim', 'witness contend']);
    x.done('stop_prim');
    assert.deepEqual(x.types, ['unmount']);
  });
  test('replication: link_broken -> ALONE; a stray reintegration_done is ignored', () => {
    const x = prim();
    x.repl('reintegration_done');
    assert.deepEqual(x.last, []);
    x.repl('link_broken');
    assert.deepEqual(x.types, ['PRIM->ALONE', 'record up-to-date', 'dirty_log start']);
  });
  test('script_done: the stop_prim of a restart -> start_prim, still PRIM', () => {
    const x = prim();
    x.m = { ...x.m, restartWanted: true };
    x.peer('SECOND'); // any step settles
    assert.deepEqual(x.types, ['stop_prim']);
    x.done('stop_prim');
    assert.deepEqual(x.types, ['start_prim']);
    assert.equal(x.m.state, 'PRIM');
  });
  test('probe: a failed dependency -> not eligible, step down gracefully', () => {
    const dep: MirrorCheckerConfig = { name: 'dep', kind: 'dependency', onFailure: 'wait', rise: 1, fall: 1 };
    const x = stopped('none', [dep]);
    x.cmd('start');
    x.probe('dep', true);
    x.done('start_prim');
    x.repl('link_up');
    x.peer('WAIT', { eligible: false });
    x.repl('reintegration_done');
    x.peer('SECOND');
    assert.equal(x.m.state, 'PRIM');
    x.probe('dep', false);
    assert.deepEqual(x.types, ['checker_change', 'stop_prim']);
  });
  test('data: impossible while PRIM', () => {
    assert.throws(() => prim().step({ type: 'data', status: 'stale' }), /data event in PRIM/);
  });
  test('tick: the verdict lapses -> give up', () => {
    const x = prim('redis');
    x.step({ type: 'tick' }, 20_000);
    assert.deepEqual(x.types, ['fence', 'vip_remove', 'PRIM->WAIT', 'run_checkers', 'stop_prim', 'witness contend']);
  });
});

describe('SECOND', () => {
  test('command: stop while the PRIM runs -> record stale, STOP', () => {
    const x = second();
    x.cmd('stop');
    assert.deepEqual(x.types, ['record stale', 'SECOND->STOP', 'run_checkers']);
    assert.deepEqual(second().cmd('prim').map((a) => a.type), ['refused']);
  });
  test('peer: the PRIM stepped down (WAIT) -> failover to ALONE (no witness); ALONE after PRIM -> stale, WAIT, target', () => {
    const x = second();
    x.peer('WAIT', { eligible: false });
    assert.deepEqual(x.types, ['SECOND->ALONE', 'run_checkers', 'record up-to-date', 'dirty_log start', 'mount', 'vip_add', 'start_prim', 'reintegrate source']);
    const y = second();
    y.peer('ALONE');
    assert.deepEqual(y.types, ['record stale', 'SECOND->WAIT', 'reintegrate target']);
  });
  test('peer_lost: no witness -> ALONE at once; redis -> WAIT, contend, ALONE on a yes', () => {
    const x = second();
    x.step({ type: 'peer_lost' });
    assert.deepEqual(x.types, ['SECOND->ALONE', 'run_checkers', 'record up-to-date', 'dirty_log start', 'mount', 'vip_add', 'start_prim']);
    const y = second('redis');
    y.step({ type: 'peer_lost' });
    assert.deepEqual(y.types, ['SECOND->WAIT', 'witness contend']);
    y.verdict(false);
    assert.equal(y.m.state, 'WAIT', 'the old PRIM still holds the lease');
    y.verdict(true);
    assert.equal(y.m.state, 'ALONE');
  });
  test('witness: not contending as SECOND: a verdict is ignored', () => {
    const x = second('redis');
    assert.equal(x.m.contending, false);
    x.verdict(true);
    assert.deepEqual(x.last, []);
    assert.equal(x.m.verdict.allowed, false);
  });
  test('replication: link_broken -> stale, WAIT (the PRIM goes on alone)', () => {
    const x = second();
    x.repl('link_broken');
    assert.deepEqual(x.types, ['record stale', 'SECOND->WAIT']);
  });
  test('script_done: impossible (nothing runs on a SECOND)', () => {
    assert.throws(() => second().done('start_prim'), /no script runs in SECOND/);
  });
  test('probe: dependencies keep running on a SECOND; it stays SECOND', () => {
    const dep: MirrorCheckerConfig = { name: 'dep', kind: 'dependency', onFailure: 'wait', rise: 1, fall: 1 };
    const x = stopped('none', [dep]);
    x.repl('link_up');
    x.peer('ALONE');
    x.cmd('start');
    x.peer('PRIM');
    x.repl('reintegration_done');
    x.probe('dep', false);
    assert.deepEqual(x.types, ['checker_change']);
    assert.equal(x.m.state, 'SECOND');
  });
  test('data: impossible while SECOND', () => {
    assert.throws(() => second().step({ type: 'data', status: 'stale' }), /data event in SECOND/);
  });
  test('tick: nothing', () => {
    const x = second();
    x.step({ type: 'tick' }, 100_000);
    assert.deepEqual(x.last, []);
  });
});
