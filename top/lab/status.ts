// lab status: what the state says, checked against the kernel (is the daemon alive, is a link up).
import { runOk } from './run.js';
import { netnsPath, nodeIf, switchIfOfNode } from './names.js';
import { alive, nsInode } from './procs.js';
import type { LabState, LinkNetem } from './state.js';

export interface LabLinkStatus {
  lan: number;
  /** Interface inside the node. */
  interface: string;
  address: string;
  /** Switch-side end: cut/heal set it down/up. */
  switchInterface: string;
  up: boolean;
  netem?: LinkNetem;
}

export interface LabNodeStatus {
  name: string;
  namespace: string;
  addresses: string[];
  daemonPid?: number;
  daemon: 'alive' | 'dead' | 'none';
  links: LabLinkStatus[];
}

export interface LabStatus {
  name: string;
  stateDir: string;
  configDir: string;
  lans: number;
  nodes: LabNodeStatus[];
  client: { namespace: string; addresses: number; first: string; last: string };
}

export async function labStatus(state: LabState): Promise<LabStatus> {
  const links = JSON.parse(await runOk(['ip', '-n', state.switchNamespace, '-j', 'link', 'show'])) as { ifname: string; flags: string[] }[];
  const upByIf = new Map(links.map((l) => [l.ifname, l.flags.includes('UP')]));
  return {
    name: state.name,
    stateDir: state.stateDir,
    configDir: state.configDir,
    lans: state.lans,
    nodes: state.nodes.map((n) => {
      const netInode = nsInode(netnsPath(n.namespace));
      return {
        name: n.name,
        namespace: n.namespace,
        addresses: n.addresses,
        daemonPid: n.daemonPid,
        daemon: n.daemonPid === undefined ? 'none' : alive(n.daemonPid, netInode) ? 'alive' : 'dead',
        links: n.addresses.map((address, lan) => ({
          lan,
          interface: nodeIf(lan),
          address,
          switchInterface: switchIfOfNode(n.index, lan),
          up: upByIf.get(switchIfOfNode(n.index, lan)) ?? false,
          netem: n.netem[String(lan)],
        })),
      };
    }),
    client: {
      namespace: state.client.namespace,
      addresses: state.client.addresses.length,
      first: state.client.addresses[0] ?? '',
      last: state.client.addresses[state.client.addresses.length - 1] ?? '',
    },
  };
}

function netemText(n: LinkNetem | undefined): string {
  if (!n) return '-';
  const parts: string[] = [];
  if (n.delayMs) parts.push(`delay ${n.delayMs}ms${n.jitterMs ? ` ±${n.jitterMs}ms` : ''}`);
  if (n.lossPercent) parts.push(`loss ${n.lossPercent}%`);
  return `${parts.join(' ')} (${n.method})`;
}

/** The table a person reads. */
export function formatStatus(s: LabStatus): string {
  const lines = [`lab ${s.name}: ${s.nodes.length} nodes, ${s.lans} LAN(s), config ${s.configDir}`];
  lines.push('NODE  DAEMON          LAN  ADDRESS       LINK  NETEM');
  for (const n of s.nodes) {
    const daemon = n.daemon === 'none' ? '-' : `${n.daemon} (${n.daemonPid})`;
    n.links.forEach((l, i) => {
      lines.push(`${(i === 0 ? n.name : '').padEnd(6)}${(i === 0 ? daemon : '').padEnd(16)}${String(l.lan).padEnd(5)}${l.address.padEnd(14)}${(l.up ? 'up' : 'CUT').padEnd(6)}${netemText(l.netem)}`);
    });
  }
  lines.push(`client: ${s.client.addresses} address(es) ${s.client.first}${s.client.addresses > 1 ? ` .. ${s.client.last}` : ''} (namespace ${s.client.namespace})`);
  return lines.join('\n');
}
