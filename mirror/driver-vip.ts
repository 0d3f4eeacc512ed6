// Driver: a mirror's VIPs, plain addresses on the primary node only (unlike a farm's, no virtual
// MAC: the primary answers ARP and neighbour solicitations for them with its own MAC like for any
// of its addresses), announced with gratuitous ARP (IPv4) or unsolicited neighbour advertisements
// with the override flag (IPv6), so that neighbours forget the previous primary's MAC at once.
// A module may have several VIPs, IPv4 and IPv6 mixed: each call covers them all.
import { isIP } from 'node:net';
import assert from 'node:assert/strict';
import { arpSendGratuitous } from '../src/native/index.js';
import { runOk } from '../src/net/command.js';
import { macOf } from '../src/net/interfaces.js';

export { macOf };

const ipOk = (args: string[]) => runOk(['ip', ...args], 'CROFT_ERR_VIP');

function prefixed(vip: string): string {
  const v = isIP(vip);
  assert.ok(v === 4 || v === 6, `mirror VIP ${vip} is not an IP address`);
  return `${vip}/${v === 4 ? 32 : 128}`;
}

/** The addresses on ifname (both families, IPv6 lower-case as the kernel prints them). */
async function addressesOn(ifname: string): Promise<Set<string>> {
  const out = await ipOk(['-j', 'addr', 'show', 'dev', ifname]);
  const links = JSON.parse(out) as Array<{ addr_info?: Array<{ local?: string }> }>;
  return new Set(links.flatMap((l) => (l.addr_info ?? []).flatMap((a) => (a.local ? [a.local.toLowerCase()] : []))));
}

/** Whether any of the VIPs is on ifname. */
export async function hasAddress(ifname: string, vips: string | readonly string[]): Promise<boolean> {
  const have = await addressesOn(ifname);
  return (typeof vips === 'string' ? [vips] : vips).some((v) => have.has(v.toLowerCase()));
}

/**
 * Adds every VIP on ifname (idempotent; IPv6 without duplicate address detection, which would
 * delay the failover by a second or more) and announces each once; resolves once those first ones
 * are sent, so that start_prim is not delayed. Two more rounds follow 100 ms apart (a frame lost
 * on a busy switch), each only while `stillHeld()` (never after the VIP was given up): `repeats`
 * settles when they are done.
 */
export async function addMirrorVip(ifname: string, vips: string | readonly string[], stillHeld: () => boolean): Promise<{ repeats: Promise<void> }> {
  const all = typeof vips === 'string' ? [vips] : [...vips];
  for (const vip of all) {
    await ipOk(['addr', 'replace', prefixed(vip), 'dev', ifname, ...(isIP(vip) === 6 ? ['nodad'] : [])]);
  }
  const mac = macOf(ifname);
  const announce = () => Promise.all(all.map((vip) => arpSendGratuitous(ifname, vip, mac, 1)));
  await announce();
  const repeats = (async () => {
    for (let i = 0; i < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      if (!stillHeld()) return;
      await announce();
    }
  })();
  return { repeats };
}

/** Removes every VIP from ifname; idempotent. */
export async function removeMirrorVip(ifname: string, vips: string | readonly string[]): Promise<void> {
  const have = await addressesOn(ifname);
  for (const vip of typeof vips === 'string' ? [vips] : vips) {
    if (have.has(vip.toLowerCase())) await ipOk(['addr', 'del', prefixed(vip), 'dev', ifname]);
  }
}
