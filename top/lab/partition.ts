// Partitions of the lab's LANs: groups of nodes that can no longer reach each other, while the
// client still reaches every node (a split of the nodes' own network, not of the clients'). The
// switch namespace filters frames between the nodes' switch ports with an nft bridge table; one
// table holds the whole partition, so applying a new one or healing is one atomic transaction.
import { switchIfOfNode } from './names.js';

export const PARTITION_TABLE = 'croft_lab_partition';

/** The nft text that makes `groups` (node indexes) unable to reach each other on every LAN. */
export function renderPartition(groups: readonly (readonly number[])[], lans: number): string {
  const rules: string[] = [];
  for (let a = 0; a < groups.length; a++) {
    for (let b = 0; b < groups.length; b++) {
      if (a === b) continue;
      for (let lan = 0; lan < lans; lan++) {
        const from = groups[a]!.map((i) => `"${switchIfOfNode(i, lan)}"`).join(', ');
        const to = groups[b]!.map((i) => `"${switchIfOfNode(i, lan)}"`).join(', ');
        rules.push(`\t\tiifname { ${from} } oifname { ${to} } drop`);
      }
    }
  }
  return [
    ...renderHeal(),
    `table bridge ${PARTITION_TABLE} {`,
    '\tchain forward {',
    '\t\ttype filter hook forward priority 0; policy accept;',
    ...rules,
    '\t}',
    '}',
    '',
  ].join('\n');
}

/** Removes the partition table, present or not. */
export function renderHeal(): string[] {
  return [`table bridge ${PARTITION_TABLE} {}`, `delete table bridge ${PARTITION_TABLE}`];
}
