// Who is in a farm right now, as this node sees it: the module's nodes whose module state is UP,
// among the nodes this node considers up. Every node computes the same set from the same view,
// and so the same bucket map (farm/assign.ts). Pure.
import type { ModuleConfig, NodeConfig } from '../src/config/types.js';
import type { WeightedNode } from './assign.js';

export interface NodeModuleView {
  /** Node name. */
  name: string;
  /** Up as seen from here (self is always up). */
  up: boolean;
  /** The module's state on that node, as last announced (undefined when unknown). */
  state: string | undefined;
}

/**
 * Whether this node's side may serve (FarmConfig.quorum): with `majority`, more than half of the
 * farm's nodes must be up as seen from here, or exactly half including the first node by name.
 */
export function hasQuorum(module: ModuleConfig, views: readonly NodeModuleView[]): boolean {
  if (module.farm?.quorum !== 'majority') return true;
  const farmNodes = [...module.nodes].sort();
  const up = new Set(views.filter((v) => v.up && farmNodes.includes(v.name)).map((v) => v.name));
  if (up.size * 2 > farmNodes.length) return true;
  return up.size * 2 === farmNodes.length && up.has(farmNodes[0]!);
}

/**
 * The farm's members with their weights, sorted by name (weight 0 members are left out: they get
 * no bucket); none when this side has no quorum.
 */
export function farmMembers(module: ModuleConfig, nodes: readonly NodeConfig[], views: readonly NodeModuleView[]): WeightedNode[] {
  if (!hasQuorum(module, views)) return [];
  const weightOf = (name: string) => module.farm?.weights[name] ?? nodes.find((n) => n.name === name)?.weight ?? 1;
  return views
    .filter((v) => module.nodes.includes(v.name) && v.up && v.state === 'UP')
    .map((v) => ({ name: v.name, weight: weightOf(v.name) }))
    .filter((n) => n.weight > 0)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** A key that changes exactly when the member set or a weight changes. */
export function membersKey(members: readonly WeightedNode[]): string {
  return members.map((m) => `${m.name}:${m.weight}`).join(',');
}
