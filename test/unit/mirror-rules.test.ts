// mirror/rules.ts: the rules MirrorRuntime applies and the simulator drives (link, end of a
// reintegration seen from the target, full or dirty-log reintegration), as pure functions.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { createMirrorMachine, type MirrorMachine } from '../../mirror/machine.js';
import { chooseReintegration, initialLinkMemory, LINK_RETRY_MS, linkHoldDown, linkRule, reintegrationDoneByPeer, type LinkFacts } from '../../mirror/rules.js';
import type { MirrorState, PeerView } from '../../mirror/types.js';

const view = (state: MirrorState, over: Partial<PeerView> = {}): PeerView => ({ state, dataUpToDate: true, generation: 0, eligible: true, forced: false, ...over });

function machine(over: Partial<MirrorMachine>): MirrorMachine {
  const m = createMirrorMachine({ module: 'db', node: 'n1', peer: 'n2', witness: 'none', primPreference: null, peerWaitMs: 0, checkers: [], restart: { maxloop: 2, windowMs: 60_000 } }, 0);
  return { ...m, ...over };
}

const facts = (over: Partial<LinkFacts> = {}): LinkFacts => ({ mounted: false, fenced: false, streamConnected: false, replicasConnected: false, graceMs: 2000, ...over });

test('link rule: no peer or a stopped peer is no link; a fenced mount is no link even when connected', () => {
  assert.equal(linkRule(machine({ peer: null }), facts(), initialLinkMemory, 0).up, false);
  assert.equal(linkRule(machine({ peer: view('STOP') }), facts(), initialLinkMemory, 0).up, false);
  const alone = machine({ state: 'ALONE', peer: view('SECOND') });
  assert.equal(linkRule(alone, facts({ mounted: true, streamConnected: true }), initialLinkMemory, 0).up, true);
  assert.equal(linkRule(alone, facts({ mounted: true, streamConnected: true, fenced: true }), initialLinkMemory, 0).up, false);
});

test('link rule: mounted and alone, the link comes up for a stale WAIT peer only after the 500 ms hold-down', () => {
  const alone = machine({ state: 'ALONE', peer: view('WAIT', { dataUpToDate: false }) });
  const held = linkHoldDown(initialLinkMemory, 1000);
  assert.equal(held.holdUntilMs, 1000 + LINK_RETRY_MS);
  assert.equal(linkRule(alone, facts({ mounted: true }), held, 1000 + LINK_RETRY_MS - 1).up, false);
  assert.equal(linkRule(alone, facts({ mounted: true }), held, 1000 + LINK_RETRY_MS).up, true);
  // A peer in WAIT with up-to-date data is not a target: no link.
  assert.equal(linkRule(machine({ state: 'ALONE', peer: view('WAIT') }), facts({ mounted: true }), initialLinkMemory, 5000).up, false);
  // A reintegration as source is the link, held down or not.
  assert.equal(linkRule(machine({ state: 'ALONE', reintegrating: 'source', peer: view('WAIT', { dataUpToDate: false }) }), facts({ mounted: true }), held, 1000).up, true);
});

test('link rule: a SECOND keeps the link while the PRIM\'s stream is lost less than the grace (two heartbeat timeouts)', () => {
  const second = machine({ state: 'SECOND', peer: view('PRIM') });
  let r = linkRule(second, facts({ replicasConnected: true }), initialLinkMemory, 0);
  assert.equal(r.up, true);
  r = linkRule(second, facts(), r.mem, 10_000);
  assert.deepEqual([r.up, r.mem.replicaLostSinceMs], [true, 10_000]);
  r = linkRule(second, facts(), r.mem, 11_999);
  assert.equal(r.up, true);
  r = linkRule(second, facts(), r.mem, 12_000);
  assert.equal(r.up, false);
  // The stream back resets the grace.
  r = linkRule(second, facts({ replicasConnected: true }), r.mem, 12_500);
  assert.deepEqual([r.up, r.mem.replicaLostSinceMs], [true, null]);
  // A peer that is not PRIM needs no stream; a node mounting (ALONE, not mounted yet) has no link.
  assert.equal(linkRule(machine({ state: 'WAIT', peer: view('ALONE') }), facts(), initialLinkMemory, 0).up, true);
  assert.equal(linkRule(machine({ state: 'ALONE', peer: view('WAIT') }), facts(), initialLinkMemory, 0).up, false);
});

test('reintegration done: only a PRIM announcement of the generation the reintegration began from, and only to a target', () => {
  const target = machine({ state: 'WAIT', reintegrating: 'target', targetOf: 4 });
  assert.equal(reintegrationDoneByPeer(target, view('PRIM', { generation: 4 })), true);
  assert.equal(reintegrationDoneByPeer(target, view('ALONE', { generation: 4 })), false);
  assert.equal(reintegrationDoneByPeer(target, view('PRIM', { generation: 3 })), false);
  assert.equal(reintegrationDoneByPeer(target, view('PRIM', { generation: 5 })), false);
  assert.equal(reintegrationDoneByPeer({ ...target, reintegrating: 'none' }, view('PRIM', { generation: 4 })), false);
});

test('full or dirty log: dirty log only when trusted, the peer behind our generation, and no full sync owed', () => {
  assert.deepEqual(chooseReintegration({ trusted: true, generation: 5, peerGeneration: 4, fullNext: null }), { full: false, why: 'dirty log' });
  assert.deepEqual(chooseReintegration({ trusted: false, generation: 5, peerGeneration: 4, fullNext: null }), { full: true, why: 'the dirty log is not trusted' });
  assert.equal(chooseReintegration({ trusted: true, generation: 5, peerGeneration: 5, fullNext: null }).full, true);
  assert.equal(chooseReintegration({ trusted: true, generation: 5, peerGeneration: null, fullNext: null }).full, true);
  assert.deepEqual(chooseReintegration({ trusted: true, generation: 5, peerGeneration: 4, fullNext: 'verify found a difference' }), { full: true, why: 'verify found a difference' });
});
