// Which node of cluster.yaml this machine is: --node, CROFT_NODE, or the node owning a local address.
import os from 'node:os';
import type { ClusterConfig } from '../../src/config/types.js';
import { CroftError } from '../../src/errors.js';

export function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return out;
}

export function resolveSelf(cluster: ClusterConfig, explicit: string | undefined, local: Set<string>): string {
  const name = explicit ?? process.env.CROFT_NODE;
  if (name) {
    if (!cluster.nodes.some((n) => n.name === name)) {
      throw new CroftError('CROFT_ERR_UNKNOWN_NODE', `node "${name}" is not in ${cluster.file} (nodes: ${cluster.nodes.map((n) => n.name).join(', ')})`);
    }
    return name;
  }
  const mine = cluster.nodes.filter((n) => n.addresses.some((a) => local.has(a)));
  if (mine.length === 1) return mine[0]!.name;
  throw new CroftError('CROFT_ERR_UNKNOWN_NODE', mine.length === 0
    ? `no address of this machine is a node address in ${cluster.file}; pass --node NAME`
    : `addresses of several nodes (${mine.map((n) => n.name).join(', ')}) are on this machine; pass --node NAME`);
}
