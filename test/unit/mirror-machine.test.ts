// The mirror machine, cell by cell: every (state, event type) of the transition table, plus the
// order rules of the actions, the witness epochs, the wake-up time and the tie-break.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TRANSITIONS,
  announce,
  createMirrorMachine,
  handlerName,
  mirrorStep,
  nextWakeMs,
  witnessContext,
  winsTie,
  type MirrorMachine,
} from '../../mirror/machine.js';
import type { MirrorAction, MirrorCheckerConfig, MirrorEvent, MirrorMachineConfig, MirrorState, PeerView, WitnessKind } from '../../mirror/types.js';

const STATES: MirrorState[] = ['STOP', 'WAIT', 'ALONE', 'PRIM', 'SECOND'];
const EVENTS: MirrorEvent['type'][] = ['command', 'peer', 'peer_lost', 'witness', 'replication', 'script_done', 'probe', 'data', 'tick'];

function cfg(over: Partial<MirrorMachineConfig> = {}): MirrorMachineConfig {
  return { module: 'db', node: 'n1', peer: 'n2', witness: 'none', primPreference: null, peerWaitMs: 0, checkers: [], restart: { maxloop: 2, windowMs: 60_000 }, ...over };
}

const view = (state: MirrorState, over: Partial<PeerView> = {}): PeerView => ({ state, dataUpToDate: true, generation: 0, eligible: true, forced: false, ...over });

/** A machine and a clock, stepped by the tests; `types` lists the action types of the last step. */
class M {
  m: MirrorMachine;
  nowMs = 0;
  last: MirrorAction[] = [];
  constructor(c: MirrorMachineConfig) {
    this.m = createMirrorMachine(c, 0);
  }
  step(ev: MirrorEvent, advanceMs = 1): MirrorAction[] {
    this.nowMs += advanceMs;
    const r = mirrorStep(this.m, ev, this.nowMs);
    this.m = r.state;
    this.last = r.actions;
    return r.actions;
  }
  get types(): string[] {
    return this.last.map((a) => (a.type === 'transition' ? `${a.from}->${a.to}` : a.type === 'run_script' ? `${a.script}` : a.type === 'witness' ? `witness ${a.contend ? 'contend' : 'release'}` : a.type === 'record_data' ? `record ${a.status}` : a.type === 'dirty_log' ? `dirty_log ${a.op}` : a.type === 'reintegrate' ? `reintegrate ${a.role}` : a.type));
  }
  cmd(command: Extract<MirrorEvent, { type: 'command' }>['command']) {
    return this.step({ type: 'command', command, cause: 'test' });
  }
  done(script: 'start_prim' | 'stop_prim', how: 'ok' | 'fail' | 'timeout' = 'ok') {
    return this.step({ type: 'script_done', script, ok: how === 'ok', exitCode: how === 'ok' ? 0 : how === 'fail' ? 1 : null, timedOut: how === 'timeout' });
  }
  peer(state: MirrorState, over: Partial<PeerView> = {}) {
    // The same generation as ours unless told (an in-sync pair shares one).
    return this.step({ type: 'peer', peer: view(state, { generation: this.m.generation, ...over }) });
  }
  verdict(allowed: boolean, validForMs = 1000) {
    return this.step({ type: 'witness', allowed, validUntilMs: allowed ? this.nowMs + 1 + validForMs : 0, detail: allowed ? 'lease n1' : 'lease n2', epoch: this.m.witnessEpoch });
  }
  repl(what: 'link_up' | 'link_broken' | 'reintegration_done') {
    return this.step({ type: 'replication', what });
  }
  probe(checker: string, ok: boolean) {
    return this.step({ type: 'probe', checker, ok, detail: ok ? 'fine' : 'broken' });
  }
}

// Ways to reach each state (the peer is n2; n1 wins ties by name).
function stopped(witness: WitnessKind = 'none', checkers: MirrorCheckerConfig[] = []): M {
  const x = new M(cfg({ witness, checkers }));
  x.step({ type: 'data', status: 'up-to-date' });
  return x;
}
function waiting(witness: WitnessKind = 'none'): M {
  const x = new M(cfg({ witness }));
  x.step({ type: 'data', status: 'stale' }); // not electable: stays WAIT
  x.cmd('start');
  assert.equal(x.m.state, 'WAIT');
  return x;
}
function alone(witness: WitnessKind = 'none', checkers: MirrorCheckerConfig[] = []): M {
  const x = stopped(witness, checkers);
  x.cmd('start');
  if (witness !== 'none') x.verdict(true, 10_000);
  x.done('start_prim');
  assert.equal(x.m.state, 'ALONE');
  return x;
}
function prim(witness: WitnessKind = 'none'): M {
  const x = alone(witness);
  x.repl('link_up');
  x.peer('WAIT', { dataUpToDate: false, eligible: false });
  assert.deepEqual(x.types, ['reintegrate source']);
  x.repl('reintegration_done');
  x.peer('SECOND');
  assert.equal(x.m.state, 'PRIM');
  return x;
}
function second(witness: WitnessKind = 'none'): M {
  const x = stopped(witness);
  x.repl('link_up');
  x.peer('ALONE');
  x.cmd('start');
  assert.deepEqual(x.types, ['STOP->WAIT', 'run_checkers', 'record stale', 'reintegrate target']);
  x.peer('PRIM'); // the runtime feeds reintegration_done on this announcement
  x.repl('reintegration_done');
  assert.equal(x.m.state, 'SECOND');
  return x;
}

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

describe('rules across cells', () => {
  test('a verdict of an earlier contention is ignored (the peer may hold the lease since we released it)', () => {
    const x = stopped('redis');
    x.cmd('start');
    const oldEpoch = x.m.witnessEpoch;
    x.cmd('stop');
    assert.deepEqual(x.types, ['WAIT->STOP', 'run_checkers', 'witness release']);
    x.cmd('start');
    assert.equal(x.m.witnessEpoch, oldEpoch + 1);
    x.step({ type: 'witness', allowed: true, validUntilMs: x.nowMs + 5000, detail: 'late', epoch: oldEpoch });
    assert.equal(x.m.state, 'WAIT');
    x.verdict(true);
    assert.equal(x.m.state, 'ALONE');
  });
  test('a verdict whose validity already ended is no verdict', () => {
    const x = stopped('ping');
    x.cmd('start');
    x.step({ type: 'witness', allowed: true, validUntilMs: x.nowMs, detail: 'late', epoch: x.m.witnessEpoch });
    assert.equal(x.m.state, 'WAIT');
  });
  test('prim_preference: after the reintegration the PRIM hands over to the preferred SECOND', () => {
    const x = new M(cfg({ primPreference: 'n2' }));
    x.step({ type: 'data', status: 'up-to-date' });
    x.cmd('start');
    x.done('start_prim');
    x.repl('link_up');
    x.peer('WAIT', { eligible: false });
    x.repl('reintegration_done');
    assert.deepEqual(x.types, ['dirty_log clear', 'ALONE->PRIM'], 'not before the target is SECOND: it learns it is done from our PRIM');
    x.peer('SECOND', { eligible: false });
    assert.deepEqual(x.types, [], 'a SECOND that may not take over is not handed the role');
    x.peer('SECOND');
    assert.deepEqual(x.types, ['stop_prim']);
    assert.equal(x.m.yielding, true);
  });
  test('croft prim keeps the recorded generations: it overrides what is known now, and is withdrawn by a newer one', () => {
    const x = new M(cfg());
    x.step({ type: 'data', status: 'stale', generation: 2, peerGeneration: 3 });
    x.cmd('prim');
    // No record of a number the witness never got (the peer may write under 3 right now).
    assert.deepEqual(x.last.find((a) => a.type === 'record_data'), { type: 'record_data', status: 'up-to-date', generation: 2, peerGeneration: 3 });
    assert.equal(x.m.state, 'ALONE', 'forced: eligible although behind the known generation 3');
    assert.equal(x.m.generation, 4, 'goes alone one above every generation known');
    const y = new M(cfg({ peerWaitMs: 10_000 }));
    y.step({ type: 'data', status: 'up-to-date', generation: 2, peerGeneration: 3 });
    y.cmd('prim');
    assert.deepEqual([y.m.forced, y.m.forcedOver], [true, 3]);
    y.peer('WAIT', { generation: 3, eligible: true });
    assert.equal(y.m.state, 'ALONE', 'croft prim wins the tie against a newer but known generation');
    const z = new M(cfg({ peerWaitMs: 10_000 }));
    z.step({ type: 'data', status: 'up-to-date', generation: 2, peerGeneration: 3 });
    z.cmd('prim');
    z.peer('WAIT', { generation: 4, eligible: true }); // the peer wrote after the command
    assert.equal(z.m.forced, false);
    assert.equal(z.m.state, 'WAIT');
    assert.match(z.m.cause, /croft prim withdrawn/);
  });
  test('a target takes the role only from a source not older than its up-to-date data, and then claims no newer generation', () => {
    const x = new M(cfg());
    x.step({ type: 'data', status: 'up-to-date', generation: 5, peerGeneration: 5 });
    x.cmd('second'); // not electable on its own, but told to be the replica: gives its data up
    x.repl('link_up');
    x.peer('ALONE', { generation: 3 });
    assert.deepEqual(x.last.filter((a) => a.type === 'record_data'), [{ type: 'record_data', status: 'stale', generation: 3, peerGeneration: 3 }]);
    assert.equal(x.m.reintegrating, 'target');
    const y = new M(cfg({ checkers: [{ name: 'dep', kind: 'dependency', onFailure: 'wait', rise: 1, fall: 1 }] }));
    y.step({ type: 'data', status: 'up-to-date', generation: 5, peerGeneration: 5 });
    y.cmd('start'); // the dependency is not healthy yet: WAIT
    y.repl('link_up');
    y.peer('ALONE', { generation: 3, eligible: false });
    assert.equal(y.m.reintegrating, 'none', 'newer up-to-date data is not overwritten by an older primary (it steps down)');
    assert.match(y.m.cause, /older than this node's 5/);
  });
  test('a target believes reintegration_done only while the source announces the generation it began from; it stops when the source gave up', () => {
    const x = waiting();
    x.repl('link_up');
    x.peer('ALONE', { generation: 2 });
    assert.equal(x.m.targetOf, 2);
    x.peer('ALONE', { generation: 3 }); // the source left ALONE and came back: its reintegration ended
    assert.deepEqual(x.types, ['record stale', 'reintegrate_abort', 'reintegrate target'], 'stale already; the peer generation 3 recorded first');
    assert.equal(x.m.targetOf, 3);
    x.peer('WAIT', { generation: 3, eligible: true }); // gave up
    assert.deepEqual(x.types, ['reintegrate_abort']);
    assert.match(x.m.cause, /reintegration ended \(now WAIT/); // the peer is eligible: it goes ALONE, and a new one begins
    const y = waiting();
    y.repl('link_up');
    y.peer('ALONE', { generation: 2 });
    y.step({ type: 'peer', peer: view('ALONE', { generation: 3 }) });
    y.repl('reintegration_done'); // late, of the reintegration from generation 2
    assert.equal(y.m.state, 'WAIT');
    y.peer('PRIM', { generation: 3 });
    y.repl('reintegration_done');
    assert.equal(y.m.state, 'SECOND');
  });
  test('WAIT says why when nobody will elect this node: behind the peer, croft prim is the way out', () => {
    const x = new M(cfg());
    x.step({ type: 'data', status: 'up-to-date', generation: 2, peerGeneration: 3 });
    x.cmd('start');
    // The peer holds part of generation 3 only (an unfinished reintegration into it): nobody holds
    // all of the newest data, so nobody is elected without a person.
    x.peer('WAIT', { generation: 3, dataUpToDate: false, eligible: false });
    assert.equal(x.m.state, 'WAIT');
    assert.match(x.m.cause, /data behind: the peer wrote generation 3, this node holds 2: .*croft prim/);
  });
  test('tie-break: croft prim, then prim_preference, then the smaller name', () => {
    const m1 = createMirrorMachine(cfg(), 0);
    assert.equal(winsTie(m1, view('WAIT')), true);
    assert.equal(winsTie(createMirrorMachine(cfg({ node: 'n2', peer: 'n1' }), 0), view('WAIT')), false);
    assert.equal(winsTie(createMirrorMachine(cfg({ primPreference: 'n2' }), 0), view('WAIT')), false);
    assert.equal(winsTie(m1, view('WAIT', { forced: true })), false);
  });
  test('without a witness, two nodes that have not heard each other wait peerWaitMs', () => {
    const x = new M(cfg({ peerWaitMs: 2000 }));
    x.step({ type: 'data', status: 'up-to-date' });
    x.cmd('start');
    x.peer('WAIT'); // heard in time: n1 wins the tie by name
    assert.equal(x.m.state, 'ALONE');
    const y = new M(cfg({ node: 'n2', peer: 'n1', peerWaitMs: 2000 }));
    y.step({ type: 'data', status: 'up-to-date' });
    y.cmd('start');
    y.peer('WAIT');
    assert.equal(y.m.state, 'WAIT', 'n2 loses the tie and waits to be reintegrated');
  });
  test('a node with stale or unknown data is never elected', () => {
    for (const status of ['stale', 'unknown'] as const) {
      const x = new M(cfg());
      x.step({ type: 'data', status });
      x.cmd('start');
      x.step({ type: 'peer_lost' }, 60_000);
      assert.equal(x.m.state, 'WAIT');
      assert.equal(announce(x.m).eligible, false);
    }
  });

  test('generations: entering ALONE records max(generation, peerGeneration) + 1 before the dirty log and the mount', () => {
    const x = new M(cfg());
    x.step({ type: 'data', status: 'up-to-date', generation: 4, peerGeneration: 3 });
    x.cmd('start');
    const rec = x.last.findIndex((a) => a.type === 'record_data');
    assert.deepEqual(x.last[rec], { type: 'record_data', status: 'up-to-date', generation: 5, peerGeneration: 3 });
    assert.ok(rec < x.last.findIndex((a) => a.type === 'dirty_log') && rec < x.last.findIndex((a) => a.type === 'mount'));
    assert.equal(announce(x.m).generation, 5);
  });
  test('generations: a record saying the peer went on alone after us (peerGeneration > generation) never takes over alone, even unseen peer and long waits; croft prim forces', () => {
    const x = new M(cfg({ peerWaitMs: 1000 }));
    x.step({ type: 'data', status: 'up-to-date', generation: 2, peerGeneration: 3 });
    x.cmd('start');
    x.step({ type: 'tick' }, 60_000);
    assert.equal(x.m.state, 'WAIT');
    assert.equal(announce(x.m).eligible, false);
    x.cmd('prim'); // a person declares this data the reference: it adopts the highest generation, then +1
    assert.equal(x.m.state, 'ALONE');
    assert.equal(x.m.generation, 4);
  });
  test('generations: a peer that announces a higher generation is recorded at once, and we are not electable', () => {
    const x = new M(cfg());
    x.step({ type: 'data', status: 'up-to-date', generation: 2, peerGeneration: 2 });
    x.cmd('second'); // stays WAIT, not primary on its own
    x.peer('WAIT', { generation: 3, eligible: false });
    assert.deepEqual(x.last.filter((a) => a.type === 'record_data'), [{ type: 'record_data', status: 'up-to-date', generation: 2, peerGeneration: 3 }]);
    x.cmd('start');
    x.step({ type: 'peer_lost' }, 60_000);
    assert.equal(x.m.state, 'WAIT', 'the peer wrote without us: we wait for it or for croft prim');
  });
  test('generations: a reintegration target takes the source generation (an in-sync pair shares one); a split brain keeps the newer data', () => {
    const x = waiting();
    x.repl('link_up');
    x.peer('ALONE', { generation: 7, eligible: true });
    assert.deepEqual(x.types, ['record stale', 'reintegrate target']);
    x.peer('PRIM', { generation: 7 });
    x.repl('reintegration_done');
    assert.equal(x.m.state, 'SECOND');
    assert.deepEqual([x.m.generation, x.m.data], [7, 'up-to-date']);
    const y = alone(); // n1 wins ties by name, but not against newer data
    y.peer('ALONE', { generation: y.m.generation + 1 });
    assert.equal(y.m.state, 'WAIT');
    const z = alone();
    z.peer('ALONE', { generation: z.m.generation - 1, forced: true });
    assert.equal(z.m.state, 'ALONE');
  });

  test('the witness rule (redis): a chosen node contends with the generation it will write under; the yes that lets it go ALONE carries it', () => {
    const x = new M(cfg({ witness: 'redis' }));
    x.step({ type: 'data', status: 'up-to-date', generation: 4, peerGeneration: 3 });
    x.cmd('start');
    assert.deepEqual(x.types, ['STOP->WAIT', 'run_checkers', 'witness contend']);
    assert.deepEqual(witnessContext(x.m), { generation: 5 });
    x.verdict(true);
    assert.equal(x.m.state, 'ALONE');
    assert.deepEqual([x.m.generation, x.m.witnessHolds], [5, 5]);
  });
  test('the witness rule (redis): PRIM losing its SECOND goes ALONE but writes alone (record, dirty log) only once the witness holds the next generation', () => {
    const x = prim('redis');
    const g = x.m.generation;
    const epoch = x.m.witnessEpoch;
    x.step({ type: 'peer_lost' });
    assert.deepEqual(x.types, ['PRIM->ALONE', 'witness contend'], 'contends again, the lease kept; no record, no dirty log');
    assert.equal(x.m.awaitingWitness, true);
    assert.deepEqual(witnessContext(x.m), { generation: g + 1 });
    assert.equal(x.m.witnessEpoch, epoch + 1);
    assert.ok(x.m.verdict.allowed, 'the verdict held stays valid until it lapses');
    // A yes of the previous contention proves nothing about the new generation.
    x.step({ type: 'witness', allowed: true, validUntilMs: x.nowMs + 1000, detail: 'old', epoch });
    assert.deepEqual(x.last, []);
    x.verdict(true);
    assert.deepEqual(x.types, ['record up-to-date', 'dirty_log start']);
    assert.deepEqual([x.m.generation, x.m.awaitingWitness, x.m.diverged], [g + 1, false, true]);
  });
  test('the witness rule (redis): PRIM losing its SECOND, a no -> give up; nothing was written alone, so no quarantine', () => {
    const x = prim('redis');
    x.step({ type: 'peer_lost' });
    x.verdict(false);
    // Still contending with the generation it would write under: no new contention.
    assert.deepEqual(x.types, ['fence', 'vip_remove', 'ALONE->WAIT', 'run_checkers', 'stop_prim']);
    x.done('stop_prim');
    assert.deepEqual(x.types, ['unmount']);
  });
  test('the witness rule (redis): a peer generation from the witness above ours is recorded, and we do not take over (behind)', () => {
    const x = second('redis');
    const g = x.m.generation;
    x.step({ type: 'peer_lost' });
    assert.deepEqual(x.types, ['SECOND->WAIT', 'witness contend']);
    // The PRIM went ALONE unseen and registered g + 1 before dying; its lease expired: a yes.
    x.step({ type: 'witness', allowed: true, validUntilMs: x.nowMs + 1000, detail: 'lease n1', epoch: x.m.witnessEpoch, peerGeneration: g + 1 });
    assert.deepEqual(x.types, ['record up-to-date', 'witness release']);
    assert.deepEqual([x.m.state, x.m.generation, x.m.peerGeneration, announce(x.m).eligible], ['WAIT', g, g + 1, false]);
    x.step({ type: 'tick' }, 60_000);
    assert.equal(x.m.state, 'WAIT', 'behind: waits for the peer, or for croft prim');
  });
  test('the witness rule: a peer generation from the witness is ignored while the peer is heard, and the peer\'s announcement corrects one learnt unheard', () => {
    const x = new M(cfg({ witness: 'redis' }));
    x.step({ type: 'data', status: 'up-to-date', generation: 5, peerGeneration: 5 });
    x.cmd('start');
    x.step({ type: 'witness', allowed: false, validUntilMs: 0, detail: 'lease n2', epoch: x.m.witnessEpoch, peerGeneration: 6 });
    assert.equal(x.m.peerGeneration, 6, 'unheard peer: its registration counts as a write');
    x.peer('WAIT', { generation: 5, eligible: true });
    assert.deepEqual(x.m.peerGeneration, 5, 'its record says 5: the 6 was registered, never written');
    assert.equal(announce(x.m).eligible, true);
    x.step({ type: 'witness', allowed: true, validUntilMs: x.nowMs + 1000, detail: 'lease n1', epoch: x.m.witnessEpoch, peerGeneration: 6 });
    assert.equal(x.m.state, 'ALONE', 'heard peer at 5: n1 wins the tie and writes under 6');
    assert.equal(x.m.generation, 6);
  });
});
