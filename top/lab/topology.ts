// The network of a lab: a switch namespace holding one bridge per LAN (nothing in the host
// namespace), veth pairs to every node (eth0, eth1... one per LAN) and to the client (eth0, LAN0).
// Each namespace is configured with one `ip -batch`, so 200+ client addresses take milliseconds.
import { runOk } from './run.js';
import {
  bridgeIf, CLIENT_GATEWAY, CLIENT_GATEWAY6, CLIENT_SUBNET, CLIENT_SUBNET6, clientAddress, clientAddress6, LAN_PREFIX_LEN, LAN6_PREFIX_LEN,
  netnsPath, nodeAddress, nodeAddress6, nodeIf, SWITCH_IF_OF_CLIENT, switchIfOfNode,
} from './names.js';

export interface TopologyPlan {
  switchNs: string;
  clientNs: string;
  nodes: { index: number; namespace: string }[];
  lans: number;
  clients: number;
  /** IPv6 addresses too (names.ts): on every node's LANs, and as many client sources as IPv4 ones. */
  ipv6?: boolean;
}

/** Creates a named network namespace; `onCreated` records it before anything else can fail. */
export async function addNetns(ns: string, onCreated: (ns: string) => void): Promise<void> {
  await runOk(['ip', 'netns', 'add', ns]);
  onCreated(ns);
}

async function batch(ns: string, lines: string[]): Promise<void> {
  await runOk(['ip', '-n', ns, '-batch', '-'], { input: `${lines.join('\n')}\n` });
}

/** Wires the namespaces (already created) together and gives every interface its addresses. */
export async function buildTopology(plan: TopologyPlan): Promise<void> {
  const sw: string[] = ['link set lo up'];
  for (let lan = 0; lan < plan.lans; lan++) {
    // No STP and no forwarding delay: a lab link must forward as soon as it is up.
    sw.push(`link add ${bridgeIf(lan)} type bridge stp_state 0 forward_delay 0`, `link set ${bridgeIf(lan)} up`);
  }
  for (const node of plan.nodes) {
    for (let lan = 0; lan < plan.lans; lan++) {
      const swIf = switchIfOfNode(node.index, lan);
      sw.push(`link add ${swIf} type veth peer name ${nodeIf(lan)} netns ${node.namespace}`);
      sw.push(`link set ${swIf} master ${bridgeIf(lan)} up`);
    }
  }
  sw.push(`link add ${SWITCH_IF_OF_CLIENT} type veth peer name eth0 netns ${plan.clientNs}`);
  sw.push(`link set ${SWITCH_IF_OF_CLIENT} master ${bridgeIf(0)} up`);
  await batch(plan.switchNs, sw);

  await Promise.all(plan.nodes.map((node) => {
    const lines = ['link set lo up'];
    for (let lan = 0; lan < plan.lans; lan++) {
      lines.push(`addr add ${nodeAddress(node.index, lan)}/${LAN_PREFIX_LEN} dev ${nodeIf(lan)}`, `link set ${nodeIf(lan)} up`);
    }
    lines.push(`route add ${CLIENT_SUBNET} via ${CLIENT_GATEWAY} dev ${nodeIf(0)}`);
    if (plan.ipv6) {
      // nodad: no second of duplicate address detection before an address can be used.
      for (let lan = 0; lan < plan.lans; lan++) lines.push(`addr add ${nodeAddress6(node.index, lan)}/${LAN6_PREFIX_LEN} dev ${nodeIf(lan)} nodad`);
      lines.push(`route add ${CLIENT_SUBNET6} via ${CLIENT_GATEWAY6} dev ${nodeIf(0)}`);
    }
    return batch(node.namespace, lines);
  }));

  const client = ['link set lo up', `addr add ${CLIENT_GATEWAY}/${LAN_PREFIX_LEN} dev eth0`];
  for (let j = 0; j < plan.clients; j++) client.push(`addr add ${clientAddress(j)}/32 dev eth0`);
  if (plan.ipv6) {
    client.push(`addr add ${CLIENT_GATEWAY6}/${LAN6_PREFIX_LEN} dev eth0 nodad`);
    for (let j = 0; j < plan.clients; j++) client.push(`addr add ${clientAddress6(j)}/128 dev eth0 nodad`);
  }
  client.push('link set eth0 up');
  await batch(plan.clientNs, client);
}

export { netnsPath };
