// Buckets taken over from a dead node (issue 11 part 2): which ones the pure plan (farm/plan.ts)
// marks, and the nft text that answers their untracked TCP packets with a RST (farm/nft-render.ts).
// The kernel's side is in test/integration/farm-crash.lab.test.ts.
import { describe, it } from 'vitest';
import assert from 'node:assert/strict';
import type { ClusterConfig, ModuleConfig } from '../../src/config/types.js';
import type { NodeModuleView } from '../../farm/members.js';
import {
  afterFailure, afterSuccess, EMPTY_PLANE, nextAction, shareOf, takeoverBuckets, takeoverOf,
  type FarmPlane, type FarmShare, type FarmWant,
} from '../../farm/plan.js';
import { renderBucketUpdate, renderTables, shapesOf, type NftFarmSpec } from '../../farm/nft-render.js';

const module = {
  name: 'web', nodes: ['n1', 'n2', 'n3'],
  farm: { vip: '10.0.0.100', vips: ['10.0.0.100'], buckets: 64, quorum: 'none', weights: {}, virtualMac: '02:00:00:00:00:01', drainMs: 0 },
} as unknown as ModuleConfig;
const nodes = (['n1', 'n2', 'n3'] as const).map((name) => ({ name })) as unknown as ClusterConfig['nodes'];

type V = [up: boolean, state: string | undefined];
function views(n1: V, n2: V, n3: V): NodeModuleView[] {
  return ([['n1', n1], ['n2', n2], ['n3', n3]] as const).map(([name, [up, state]]) => ({ name, up, state }));
}
const UP: V = [true, 'UP'];
const DEAD: V = [false, undefined];

/** The shares n1 computes along a sequence of views, each from the one before. */
function walk(...seq: NodeModuleView[][]): FarmShare[] {
  const out: FarmShare[] = [];
  let prev: FarmShare | null = null;
  for (const v of seq) {
    prev = shareOf(module, nodes, 'n1', v, prev);
    out.push(prev);
  }
  return out;
}

describe('plan: buckets taken over from a dead node', () => {
  const all = views(UP, UP, UP);

  it('a member declared down: the buckets n1 gains from it are taken over, with their old owner', () => {
    const [before, after] = walk(all, views(UP, UP, DEAD));
    assert.deepEqual(before!.takeover, []);
    const gained = after!.owned.filter((b) => !before!.owned.includes(b));
    assert.ok(gained.length > 0, 'n1 gains some of n3\'s buckets');
    assert.deepEqual(after!.takeover, gained.map((b) => [b, 'n3']));
    for (const b of gained) assert.equal(before!.map[b], 'n3');
    assert.deepEqual(takeoverBuckets(after!), gained);
  });

  it('a planned leave (DRAINING, STOP, a failed checker: still up) moves buckets silently, and its later death too', () => {
    for (const state of ['DRAINING', 'STOP', 'WAIT']) {
      const [, left, gone] = walk(all, views(UP, UP, [true, state]), views(UP, UP, DEAD));
      assert.ok(left!.owned.length > walk(all)[0]!.owned.length);
      assert.deepEqual(left!.takeover, [], `${state}: no RST for a planned move`);
      assert.deepEqual(gone!.takeover, [], `${state}: a node that had left dies with no bucket`);
    }
  });

  it('lasts until the dead node is up again, even before it is UP (its buckets come back later)', () => {
    const [, dead, same, back] = walk(all, views(UP, UP, DEAD), views(UP, UP, DEAD), views(UP, UP, [true, 'START']));
    assert.ok(dead!.takeover.length > 0);
    assert.equal(same, dead, 'an unchanged view keeps the share (no rehash)');
    assert.deepEqual(back!.owned, dead!.owned, 'n3 is not UP yet: the buckets stay here');
    assert.deepEqual(back!.takeover, []);
  });

  it('lasts across other changes for the buckets that stay here; moved buckets leave the set', () => {
    const [, dead, twoDead] = walk(all, views(UP, UP, DEAD), views(UP, DEAD, DEAD));
    // n2 dies as well: n1 owns everything; n3's old buckets stay taken over from n3, n2's from n2.
    assert.equal(twoDead!.owned.length, 64);
    const from = new Map(twoDead!.takeover);
    for (const [b, n] of dead!.takeover) assert.equal(from.get(b), n);
    assert.equal(twoDead!.takeover.length, 64 - walk(all)[0]!.owned.length);
    // n2 comes back UP: the buckets that go to n2 leave n1's takeover set; n3's that stay, stay.
    const [, , , n2back] = walk(all, views(UP, UP, DEAD), views(UP, DEAD, DEAD), views(UP, UP, DEAD));
    assert.deepEqual(n2back!.takeover, dead!.takeover);
  });

  it('without quorum nothing is owned, so nothing is taken over', () => {
    const majority = { ...module, farm: { ...module.farm!, quorum: 'majority' } } as ModuleConfig;
    const a = shareOf(majority, nodes, 'n1', all, null);
    const b = shareOf(majority, nodes, 'n1', views(UP, DEAD, DEAD), a);
    assert.deepEqual([b.owned, b.takeover], [[], []]);
  });

  it('takeoverOf ignores a first share and buckets that were already n1\'s', () => {
    const [before] = walk(all);
    assert.deepEqual(takeoverOf(null, [1, 2], 'n1', new Set(['n1'])), []);
    assert.deepEqual(takeoverOf(before!, before!.owned, 'n1', new Set(['n1'])), []);
  });
});

describe('plan: the takeover set is applied with the owned set, in one action', () => {
  const full: FarmPlane = { filter: 'present', vip: 'present', announce: 'present', owned: [1, 2], takeover: [] };
  const want: FarmWant = { active: true, owned: [1, 2], takeover: [2], arp: true };

  it('a takeover change alone is an apply-buckets carrying both sets', () => {
    const a = nextAction(full, want);
    assert.deepEqual(a, { type: 'apply-buckets', owned: [1, 2], takeover: [2] });
    const held = afterSuccess(full, a!);
    assert.deepEqual(held.takeover, [2]);
    assert.equal(nextAction(held, want), null);
  });

  it('a failed update leaves both sets unknown; removing the filter empties both', () => {
    const failed = afterFailure(full, { type: 'apply-buckets', owned: [1, 2], takeover: [2] });
    assert.deepEqual([failed.owned, failed.takeover], [null, null]);
    assert.equal(nextAction(failed, { ...want, takeover: [] })?.type, 'apply-buckets');
    assert.deepEqual(afterSuccess({ ...full, takeover: [2] }, { type: 'remove-filter' }).takeover, []);
    assert.deepEqual(EMPTY_PLANE.takeover, []);
  });
});

describe('nft: the takeover set and its RST rule', () => {
  const spec: NftFarmSpec = {
    table: 'croft_web', ifname: 'eth0', vip: '10.77.0.100', virtualMac: '02:00:5e:12:34:56', macMode: 'invisible',
    buckets: 256, balance: 'source-ip', ports: [], ownedBuckets: [3, 7, 200], takeoverBuckets: [7, 9], hashExpr: 'jhash ip saddr mod 256 seed 0x1234abcd',
    ownedTimeoutMs: 500,
  };
  const text = renderTables(spec);
  const vip = text.slice(text.indexOf('\tchain vip {'), text.indexOf('\n\t}', text.indexOf('\tchain vip {'))).split('\n').map((l) => l.trim());

  it('untracked non-SYN TCP packets of a takeover bucket are reset, before the silent drop of the others', () => {
    const reset = vip.findIndex((l) => l === 'meta l4proto tcp tcp flags & (fin | syn | rst | ack) != syn jhash ip saddr mod 256 seed 0x1234abcd @takeover reject with tcp reset');
    const drop = vip.indexOf('meta l4proto tcp tcp flags & (fin | syn | rst | ack) != syn drop');
    assert.ok(reset > 0 && drop > reset, vip.join('\n'));
    assert.ok(vip.indexOf('ct state established,related accept') < reset, 'tracked connections pass first');
  });

  it('the takeover set expires as the owned set does, and holds only owned buckets', () => {
    assert.match(text, /set takeover \{\n\t\ttypeof numgen inc mod 256\n\t\tflags timeout\n\t\ttimeout 500ms\n\t\}/);
    assert.match(text, /add element ip croft_web takeover \{ 7 \}\n/);
    assert.equal(renderBucketUpdate(spec, [9, 1], [9, 4]),
      'flush set ip croft_web owned\nadd element ip croft_web owned { 1, 9 }\nflush set ip croft_web takeover\nadd element ip croft_web takeover { 9 }\n');
    assert.equal(renderBucketUpdate(spec, [1]), 'flush set ip croft_web owned\nadd element ip croft_web owned { 1 }\nflush set ip croft_web takeover\n');
  });

  it('the takeover elements are no part of the rules\' fingerprint (a set change is no table change)', () => {
    assert.deepEqual(shapesOf({ ...spec, takeoverBuckets: [] }), shapesOf(spec));
  });
});
