// The mirror machine's invariants, checked after every step (programmer errors: they stop the
// process). Replays each step's actions on the resources to check the order rules written on
// MirrorAction (types.ts), and each transition action against the table (transitions.ts).
import assert from 'node:assert/strict';
import { isPrimary, verdictValid } from './election.js';
import type { MirrorMachine } from './machine.js';
import { isTransition } from './transitions.js';
import type { MirrorAction, MirrorEvent } from './types.js';

// ---------------------------------------------------------------------------------------------
// Invariants, after every step (programmer errors: they stop the process)

export function checkInvariants(before: MirrorMachine, m: MirrorMachine, ev: MirrorEvent, out: MirrorAction[], nowMs: number): void {
  // Replay the actions on the resources, checking each one's precondition (the order rules).
  let { mounted, fenced, vip } = before;
  let data = ev.type === 'data' ? ev.status : before.data; // the record read at start is not re-recorded
  let gens = ev.type === 'data' ? [ev.generation ?? 0, ev.peerGeneration ?? 0] : [before.generation, before.peerGeneration];
  let newGen = false;
  let scripts = 0;
  for (const a of out) {
    switch (a.type) {
      case 'mount':
        assert.ok(!mounted, 'mount: already mounted');
        mounted = true;
        fenced = false;
        break;
      case 'vip_add':
        assert.ok(mounted && !fenced && !vip, 'vip_add only after mount (the VIP is the last resource up)');
        vip = true;
        break;
      case 'vip_remove':
        assert.ok(vip, 'vip_remove without the VIP');
        vip = false;
        break;
      case 'fence':
        assert.ok(mounted && !fenced, 'fence needs an unfenced mount');
        fenced = true;
        break;
      case 'unmount':
        assert.ok(mounted && !vip, 'unmount only after the VIP is gone (the VIP is the first resource down)');
        mounted = false;
        fenced = false;
        break;
      case 'run_script':
        scripts++;
        if (a.script === 'start_prim') assert.ok(mounted && !fenced && vip, 'start_prim only after mount and VIP');
        break;
      case 'record_data':
        if (a.generation > Math.max(gens[0]!, gens[1]!)) newGen = true;
        data = a.status;
        gens = [a.generation, a.peerGeneration];
        break;
      case 'dirty_log':
        if (a.op === 'start') {
          assert.ok(newGen, 'a new generation is recorded before the dirty log starts (entering ALONE)');
          if (m.cfg.witness === 'redis') assert.ok(m.witnessHolds >= gens[0]!, 'the witness rule: redis holds the generation before we write alone under it');
        }
        break;
      case 'reintegrate':
        if (a.role === 'target') assert.equal(data, 'stale', 'record_data stale precedes reintegrate target');
        break;
      case 'transition':
        assert.ok(isTransition(a.from, a.to), `no transition ${a.from} -> ${a.to}`);
        break;
      default:
        break;
    }
  }
  assert.deepEqual([mounted, fenced, vip], [m.mounted, m.fenced, m.vip], 'actions and facts agree');
  assert.equal(data, m.data, 'every change of the data status is recorded');
  assert.deepEqual(gens, [m.generation, m.peerGeneration], 'every change of the generations is recorded');
  // Except for a target, which gives up a newer branch it held (settleIdle) for its source's.
  const target = out.some((a) => a.type === 'reintegrate' && a.role === 'target');
  assert.ok(m.generation >= before.generation || ev.type === 'data' || target, 'the generation never goes back');
  assert.ok(scripts <= 1, 'at most one script launched per step');
  if (scripts === 1) assert.ok(before.running === null || ev.type === 'script_done', 'one script at a time');
  if (m.vip || (m.mounted && !m.fenced)) assert.ok(isPrimary(m.state), 'writable mount or VIP only on the primary');
  if (isPrimary(m.state)) {
    assert.equal(m.data, 'up-to-date', 'PRIM/ALONE only with up-to-date data');
    // On the way up only: a primary that hears of a newer generation afterwards (both wrote alone,
    // unseen by each other) is no longer eligible and steps down, gracefully, in later steps.
    if (!isPrimary(before.state)) assert.ok(m.generation >= m.peerGeneration, 'becomes PRIM/ALONE only with a generation >= any the peer announced');
    assert.ok(verdictValid(m, nowMs), 'PRIM/ALONE only with a valid witness verdict (or no witness)');
    assert.ok(m.mounted && !m.fenced && m.vip, 'PRIM/ALONE: mounted, writable, with the VIP');
  }
  if (m.state === 'SECOND') {
    assert.ok(m.data === 'up-to-date' && m.link && m.peer !== null && m.reintegrating === 'none', 'SECOND: in sync, linked');
    assert.ok(!m.mounted && m.running === null && m.app === 'stopped', 'SECOND: nothing runs here');
  }
  if (m.state === 'STOP') {
    assert.ok(m.running === null && m.app === 'stopped' && !m.mounted && !m.vip, 'STOP: nothing runs, nothing mounted');
    assert.ok(m.reintegrating === 'none' && !m.contending, 'STOP: no reintegration, no witness');
  }
  if (m.awaitingWitness) assert.ok(m.state === 'ALONE' && m.cfg.witness === 'redis' && m.reintegrating === 'none', 'awaiting the witness: ALONE, redis, no reintegration');
  if (m.reintegrating === 'target') assert.ok(m.state === 'WAIT' && m.data === 'stale', 'a target is WAIT and stale');
  if (m.reintegrating === 'source') assert.equal(m.state, 'ALONE', 'the source is ALONE');
  assert.ok(m.restartTimesMs.length <= m.cfg.restart.maxloop, 'restarts in window <= maxloop');
}

