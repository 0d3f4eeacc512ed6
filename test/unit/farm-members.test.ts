// Who is in the farm as one node sees it, and the quorum rule for partitions.
import assert from 'node:assert/strict';
import { test } from 'vitest';
import { farmMembers, hasQuorum, type NodeModuleView } from '../../farm/members.js';
import type { FarmConfig, ModuleConfig, NodeConfig } from '../../src/config/types.js';

const nodes: NodeConfig[] = ['n1', 'n2', 'n3', 'n4'].map((name) => ({ name, addresses: [], weight: 1 }));

function module(names: string[], quorum: FarmConfig['quorum'], weights: Record<string, number> = {}): ModuleConfig {
  return {
    file: 'web.yaml', name: 'web', kind: 'farm', nodes: names, checkers: [],
    scripts: { timeoutMs: 1000, killGraceMs: 100 }, restart: { maxloop: 3, windowMs: 1000 },
    farm: { vip: '10.0.0.100', vips: ['10.0.0.100'], interface: null, macMode: 'invisible', virtualMac: '02:00:00:00:00:01', buckets: 16,
      balance: 'source-ip', ports: [], seed: 1, quorum, drainMs: 0, weights: Object.fromEntries(names.map((n) => [n, weights[n] ?? 1])) },
  };
}

const view = (up: string[], states: Record<string, string> = {}): NodeModuleView[] =>
  nodes.map((n) => ({ name: n.name, up: up.includes(n.name), state: up.includes(n.name) ? (states[n.name] ?? 'UP') : undefined }));

test('members: the UP nodes of the module among the nodes up, sorted, weight 0 left out', () => {
  const m = module(['n1', 'n2', 'n3'], 'none', { n3: 0 });
  assert.deepEqual(farmMembers(m, nodes, view(['n2', 'n1', 'n3', 'n4'])).map((x) => x.name), ['n1', 'n2']);
  assert.deepEqual(farmMembers(m, nodes, view(['n1', 'n2'], { n2: 'WAIT' })).map((x) => x.name), ['n1']);
});

test('quorum majority: a 2|1 partition leaves the buckets to the two', () => {
  const m = module(['n1', 'n2', 'n3'], 'majority');
  assert.deepEqual(farmMembers(m, nodes, view(['n1', 'n2'])).map((x) => x.name), ['n1', 'n2']);
  assert.deepEqual(farmMembers(m, nodes, view(['n3'])), [], 'the lone node serves nothing');
  assert.equal(hasQuorum(m, view(['n3'])), false);
  // A node of another module does not count towards this farm's majority.
  assert.equal(hasQuorum(m, view(['n3', 'n4'])), false);
});

test('quorum majority: an even split goes to the half with the first node', () => {
  const m = module(['n1', 'n2', 'n3', 'n4'], 'majority');
  assert.equal(hasQuorum(m, view(['n1', 'n4'])), true);
  assert.equal(hasQuorum(m, view(['n2', 'n3'])), false);
});

test('quorum none: every side serves with what it sees (the two-node default)', () => {
  const m = module(['n1', 'n2'], 'none');
  assert.deepEqual(farmMembers(m, nodes, view(['n2'])).map((x) => x.name), ['n2']);
});
