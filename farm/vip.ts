// Driver: the VIP on the interface of this node (current network namespace), and what the kernel
// needs around it so that every node of the farm receives the VIP's frames:
// - the VIP itself, /32 (IPv4) or /128 nodad (IPv6: every node holds it, DAD would fail) and
//   deprecated (preferred_lft 0): it still takes connections and answers from itself, but the
//   kernel never picks it as the source of what the node starts (a connection of its own, the
//   solicitation that probes a neighbour), whose answers would go to any node of the farm;
// - the virtual MAC in the interface's receive filter (`bridge fdb ... self`: the unicast or
//   multicast address list, ndo_dflt_fdb_add), so a real NIC does not discard the frames in
//   hardware; a driver without unicast filtering turns promiscuous by itself (__dev_set_rx_mode);
// - IPv4: arp_announce=2 on the interface, so the kernel never sends an ARP request with the VIP
//   as sender (that would teach neighbours the node's own MAC for the VIP; nft-render's arp table
//   drops such packets, and the node could then never resolve its clients).
// Only the current namespace is touched: /proc/sys/net is the namespace's own.
import fs from 'node:fs/promises';
import { isIP } from 'node:net';
import assert from 'node:assert/strict';
import { CroftError } from '../src/errors.js';
import { runOk as runCommandOk } from '../src/net/command.js';

export interface VipSpec {
  ifname: string;
  vip: string;
  virtualMac: string;
}

const IFNAME = /^[A-Za-z0-9_.:@-]{1,15}$/;
const MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

const runOk = (argv: string[]) => runCommandOk(argv, 'CROFT_ERR_VIP');

function check(spec: VipSpec): 4 | 6 {
  assert.match(spec.ifname, IFNAME, `interface name ${spec.ifname}`);
  assert.match(spec.virtualMac, MAC, `virtual MAC ${spec.virtualMac}`);
  const v = isIP(spec.vip);
  assert.ok(v === 4 || v === 6, `VIP is not an IP address: ${spec.vip}`);
  return v;
}

function prefixOf(v: 4 | 6): number {
  return v === 4 ? 32 : 128;
}

/** Whether the VIP is on the interface. */
export async function hasVip(spec: VipSpec): Promise<boolean> {
  const v = check(spec);
  const out = await runOk(['ip', '-j', `-${v}`, 'addr', 'show', 'dev', spec.ifname]);
  const links = JSON.parse(out) as Array<{ addr_info?: Array<{ local?: string; prefixlen?: number }> }>;
  const want = normalize(spec.vip);
  return links.some((l) => (l.addr_info ?? []).some((a) => a.local !== undefined && normalize(a.local) === want));
}

function normalize(ip: string): string {
  return ip.toLowerCase();
}

/** Adds the VIP and the virtual MAC's receive filter entry; idempotent. */
export async function addVip(spec: VipSpec): Promise<void> {
  const v = check(spec);
  if (v === 4) {
    await fs.writeFile(`/proc/sys/net/ipv4/conf/${spec.ifname}/arp_announce`, '2\n').catch((e: Error) => {
      throw new CroftError('CROFT_ERR_VIP', `cannot set arp_announce on ${spec.ifname}: ${e.message}`, { cause: e });
    });
  }
  // `replace`: no error when the entry is already there.
  await runOk(['bridge', 'fdb', 'replace', spec.virtualMac, 'dev', spec.ifname, 'self', 'permanent']);
  const argv = ['ip', 'addr', 'replace', `${spec.vip}/${prefixOf(v)}`, 'dev', spec.ifname];
  if (v === 6) argv.push('nodad', 'preferred_lft', '0');
  await runOk(argv);
}

/**
 * Removes the VIP and the receive filter entry; idempotent. arp_announce stays 2 (a sane value in
 * any case; the previous one is not known after a restart).
 */
export async function removeVip(spec: VipSpec): Promise<void> {
  const v = check(spec);
  if (await hasVip(spec)) await runOk(['ip', 'addr', 'del', `${spec.vip}/${prefixOf(v)}`, 'dev', spec.ifname]);
  const fdb = await runOk(['bridge', 'fdb', 'show', 'dev', spec.ifname]);
  if (fdb.split('\n').some((line) => line.startsWith(`${spec.virtualMac} `) && / self\b/.test(line))) {
    await runOk(['bridge', 'fdb', 'del', spec.virtualMac, 'dev', spec.ifname, 'self']);
  }
}
