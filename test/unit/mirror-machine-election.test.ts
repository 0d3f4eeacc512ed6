// The mirror machine's rules across cells: the order rules of the actions, the witness epochs and
// the witness rule, the generations, the wake-up time and the tie-break (who is primary).
import { describe, test } from 'vitest';
import assert from 'node:assert/strict';
import { announce, createMirrorMachine, witnessContext, winsTie } from '../../mirror/machine.js';
import { M, alone, cfg, prim, second, stopped, view, waiting } from '../helpers/mirror-machine.js';

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
