// Names and addresses of a lab: pure functions, so teardown can recompute them from a lab name alone.
import path from 'node:path';
import { CroftError } from '../../src/errors.js';

/** Every lab keeps its state here (tmpfs, so a reboot forgets labs along with their namespaces). */
export const LAB_RUN_DIR = '/run/croft-lab';
/** Where `ip netns` keeps its named namespaces. */
export const NETNS_DIR = '/run/netns';

/** Upper bounds: one address octet for nodes; the client's addresses fill 10.100.0.1 upwards. */
export const MAX_NODES = 250;
export const MAX_LANS = 8;
export const MAX_CLIENTS = 250 * 254;

/** Lab names become file and namespace names: keep them plain. */
const LAB_NAME = /^[a-z0-9][a-z0-9_]*(?:-[a-z0-9_]+)*$/;

export function checkLabName(name: string): void {
  if (!LAB_NAME.test(name) || name.length > 40) {
    throw new CroftError('CROFT_ERR_USAGE', `lab name "${name}" must be lower-case letters, digits, - or _ (at most 40)`);
  }
}

export function stateDirOf(name: string): string {
  return path.join(LAB_RUN_DIR, name);
}

export function switchNs(name: string): string {
  return `croft-${name}-sw`;
}
export function nodeNs(name: string, node: string): string {
  return `croft-${name}-${node}`;
}
export function clientNs(name: string): string {
  return `croft-${name}-c`;
}
export function netnsPath(ns: string): string {
  return path.join(NETNS_DIR, ns);
}

/** Node names are n1..nN; the index is the last octet of its addresses. */
export function nodeName(index: number): string {
  return `n${index}`;
}
export function nodeIndex(node: string): number | undefined {
  const m = /^n([1-9][0-9]*)$/.exec(node);
  return m ? Number(m[1]) : undefined;
}

/** LAN k is 10.(77+k).0.0/16; node i has 10.(77+k).0.i on it. */
export const LAN_PREFIX_LEN = 16;
export function lanSubnet(lan: number): string {
  return `10.${77 + lan}.0.0/${LAN_PREFIX_LEN}`;
}
export function nodeAddress(index: number, lan: number): string {
  return `10.${77 + lan}.0.${index}`;
}
/**
 * The client stands for a router with the internet behind it: it has CLIENT_GATEWAY on LAN 0 and
 * its source addresses in CLIENT_SUBNET, which every node routes through that gateway. So a node
 * keeps one neighbour entry for all clients, as it would behind a real router; with the clients
 * on the LAN itself, a node would need one per client, and the kernel's neighbour table (shared by
 * every namespace, gc_thresh3 = 1024 by default) overflows with 3 nodes x 400 clients.
 */
export const CLIENT_GATEWAY = '10.77.0.254';
export const CLIENT_SUBNET = '10.100.0.0/16';
/** The client's j-th source address (0-based): 10.100.0.1, 10.100.0.2 ... 10.100.0.254, 10.100.1.1 ... */
export function clientAddress(j: number): string {
  return `10.100.${Math.floor(j / 254)}.${1 + (j % 254)}`;
}

/**
 * IPv6 (`lab up --ipv6`), the same plan in unique local addresses (fd00::/8, never routed outside):
 * LAN k is fd00:(77+k)::/64 and node i has fd00:(77+k)::i (i in hex) on it; the client has
 * CLIENT_GATEWAY6 on LAN 0 and its source addresses in CLIENT_SUBNET6, routed through it.
 */
export const LAN6_PREFIX_LEN = 64;
export function nodeAddress6(index: number, lan: number): string {
  return `fd00:${77 + lan}::${index.toString(16)}`;
}
export const CLIENT_GATEWAY6 = 'fd00:77::fe';
export const CLIENT_SUBNET6 = 'fd00:100::/64';
/** The client's j-th IPv6 source address (0-based): fd00:100::1, fd00:100::2 ... */
export function clientAddress6(j: number): string {
  return `fd00:100::${(j + 1).toString(16)}`;
}

/** Interface of a node on LAN k, inside the node. */
export function nodeIf(lan: number): string {
  return `eth${lan}`;
}
/** Switch-side end of node i's link on LAN k (cut/heal set this one down/up). */
export function switchIfOfNode(index: number, lan: number): string {
  return `n${index}l${lan}`;
}
export const SWITCH_IF_OF_CLIENT = 'cl0';
export function bridgeIf(lan: number): string {
  return `br${lan}`;
}
/** The veth pair that puts a userspace netem relay between a node's link and its bridge. */
export function relayIfs(index: number, lan: number): { bridgeSide: string; relaySide: string } {
  return { bridgeSide: `r${index}l${lan}a`, relaySide: `r${index}l${lan}b` };
}

/** Which lab and role a namespace name belongs to (for discovery when state.json is gone). */
export function parseNsName(ns: string): { lab: string; role: string } | undefined {
  const m = /^croft-(.+)-(sw|c|n[1-9][0-9]*)$/.exec(ns);
  if (!m || !LAB_NAME.test(m[1]!)) return undefined;
  return { lab: m[1]!, role: m[2]! };
}
