// The mirror machine's transition table (mirror/transitions.ts): the lookups agree with it, a move
// not in it throws (and the compiler refuses it where it can), and every cell, with each of its
// causes, is taken by a short script: the table holds no move the machine never makes.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { TABLE, TRANSITIONS, createMirrorMachine, isTransition, isValidTransition, type Cause, type Move } from '../../mirror/machine.js';
import type { Draft } from '../../mirror/draft.js';
import { change } from '../../mirror/transitions.js';
import type { MirrorAction, MirrorState } from '../../mirror/types.js';
import { M, alone, cfg, prim, second, stopped, waiting } from '../helpers/mirror-machine.js';

const STATES: MirrorState[] = ['STOP', 'WAIT', 'ALONE', 'PRIM', 'SECOND'];
const CAUSES: Cause[] = ['start', 'stop', 'elected', 'in_sync', 'peer_in_sync', 'replica_lost', 'out_of_sync', 'step_down', 'give_up'];
const cell = (from: MirrorState, to: MirrorState, cause: Cause) => `${from}->${to} on ${cause}`;

/** Every cell of the table with each of its causes. */
function tableCells(): string[] {
  return TRANSITIONS.flatMap(([from, to, causes]) => causes.map((c) => cell(from, to, c)));
}

test('the table: a row for every state, no state to itself, every cause used; the lookups agree with it', () => {
  assert.deepEqual(Object.keys(TABLE).sort(), [...STATES].sort());
  for (const [from, to] of TRANSITIONS) assert.notEqual(from, to);
  const used = new Set(TRANSITIONS.flatMap(([, , causes]) => causes));
  assert.deepEqual([...used].sort(), [...CAUSES].sort());
  const cells = new Set(tableCells());
  for (const from of STATES) {
    for (const to of STATES) {
      assert.equal(isTransition(from, to), TRANSITIONS.some(([f, t]) => f === from && t === to), `${from}->${to}`);
      for (const c of CAUSES) assert.equal(isValidTransition(from, to, c), cells.has(cell(from, to, c)), cell(from, to, c));
    }
  }
  // The moves the machine must never make, whatever the cause.
  for (const [from, to] of [['STOP', 'ALONE'], ['STOP', 'PRIM'], ['STOP', 'SECOND'], ['WAIT', 'PRIM'], ['SECOND', 'PRIM'], ['PRIM', 'SECOND'], ['ALONE', 'SECOND']] as const) {
    assert.ok(!isTransition(from, to), `${from}->${to}`);
  }
});

function draftOf(state: MirrorState): Draft {
  const m = createMirrorMachine(cfg(), 0);
  return { ...m, state, health: { ...m.health }, restartTimesMs: [], finished: 'none', changes: [] };
}

test('a move not in the table throws before it changes anything', () => {
  const d = draftOf('STOP');
  const out: MirrorAction[] = [];
  assert.throws(() => change(d, 0, out, 'ALONE', 'elected'), /no transition STOP -> ALONE on elected/);
  assert.equal(d.state, 'STOP');
  assert.deepEqual(out, []);
  assert.deepEqual(d.changes, []);
  // A cell that exists, on a cause it does not hold: the compiler refuses it (no row goes to WAIT
  // on stop), and so does the run-time check.
  const p = draftOf('PRIM');
  // @ts-expect-error: `stop` leads only to STOP
  assert.throws(() => change(p, 0, out, 'WAIT', 'stop'), /no transition PRIM -> WAIT on stop/);
  assert.throws(() => change(p, 0, out, 'ALONE', 'elected'), /no transition PRIM -> ALONE on elected/);
  assert.equal(p.state, 'PRIM');
  assert.deepEqual(out, []);
});

const dep = [{ name: 'dep', kind: 'dependency' as const, onFailure: 'wait' as const, rise: 1, fall: 1 }];

/** A script per cell: what it does, and the cell its last step must take. */
const SCRIPTS: [string, () => M][] = [
  [cell('STOP', 'WAIT', 'start'), () => {
    const x = new M(cfg({ peerWaitMs: 1000 }));
    x.step({ type: 'data', status: 'up-to-date' });
    x.cmd('start'); // the peer wait: WAIT, not ALONE yet
    return x;
  }],
  [cell('WAIT', 'ALONE', 'elected'), () => {
    const x = new M(cfg({ peerWaitMs: 1000 }));
    x.step({ type: 'data', status: 'up-to-date' });
    x.cmd('start');
    x.step({ type: 'tick' }, 1000); // the peer wait is over
    return x;
  }],
  [cell('WAIT', 'STOP', 'stop'), () => {
    const x = waiting();
    x.cmd('stop');
    return x;
  }],
  [cell('WAIT', 'SECOND', 'in_sync'), () => {
    const x = stopped();
    x.repl('link_up');
    x.peer('ALONE');
    x.cmd('start');
    x.peer('PRIM');
    x.repl('reintegration_done');
    return x;
  }],
  [cell('ALONE', 'PRIM', 'peer_in_sync'), () => {
    const x = alone();
    x.repl('link_up');
    x.peer('WAIT', { dataUpToDate: false, eligible: false });
    x.repl('reintegration_done');
    return x;
  }],
  [cell('ALONE', 'STOP', 'stop'), () => {
    const x = alone();
    x.cmd('stop');
    x.done('stop_prim');
    return x;
  }],
  [cell('ALONE', 'WAIT', 'step_down'), () => {
    const x = stopped('none', dep);
    x.cmd('start');
    x.probe('dep', true); // healthy: elected
    x.done('start_prim');
    x.probe('dep', false); // not eligible any more: stop_prim
    x.done('stop_prim');
    return x;
  }],
  [cell('ALONE', 'WAIT', 'give_up'), () => {
    const x = alone();
    x.peer('ALONE', { generation: x.m.generation + 1 }); // a healed split brain: the newer data wins
    return x;
  }],
  [cell('PRIM', 'ALONE', 'replica_lost'), () => {
    const x = prim();
    x.step({ type: 'peer_lost' });
    return x;
  }],
  [cell('PRIM', 'STOP', 'stop'), () => {
    const x = prim();
    x.cmd('stop');
    x.done('stop_prim');
    return x;
  }],
  [cell('PRIM', 'WAIT', 'step_down'), () => {
    const x = prim();
    x.cmd('swap');
    x.done('stop_prim');
    return x;
  }],
  [cell('PRIM', 'WAIT', 'give_up'), () => {
    const x = prim('redis');
    x.step({ type: 'tick' }, 20_000); // the verdict lapsed
    return x;
  }],
  [cell('SECOND', 'STOP', 'stop'), () => {
    const x = second();
    x.cmd('stop');
    return x;
  }],
  [cell('SECOND', 'WAIT', 'out_of_sync'), () => {
    const x = second();
    x.repl('link_broken');
    return x;
  }],
  [cell('SECOND', 'ALONE', 'elected'), () => {
    const x = second();
    x.step({ type: 'peer_lost' }); // failover
    return x;
  }],
];

test('every cell of the table, with each of its causes, is taken (mirrorStep reports the cells of a step)', () => {
  const taken = new Set<string>();
  for (const [want, script] of SCRIPTS) {
    const x = script();
    const got = x.changes.map((c: Move) => cell(c.from, c.to, c.cause));
    assert.ok(got.includes(want), `${want}: the last step took ${got.join(', ') || 'no cell'}`);
    // The cells a step reports are its transition actions, in order.
    const transitions = x.last.flatMap((a) => (a.type === 'transition' ? [`${a.from}->${a.to}`] : []));
    assert.deepEqual(x.changes.map((c) => `${c.from}->${c.to}`), transitions);
    taken.add(want);
  }
  assert.deepEqual([...taken].sort(), tableCells().sort());
});
