// Driver: a mirror's VIP, a plain address on the primary node only (unlike a farm's, no virtual
// MAC: the primary answers ARP for it with its own MAC like for any of its addresses), announced
// with gratuitous ARP so that neighbours forget the previous primary's MAC at once.
import fs from 'node:fs';
import { isIP } from 'node:net';
import assert from 'node:assert/strict';
import { CroftError } from '../src/errors.js';
import { arpSendGratuitous } from '../src/native/index.js';
import { runOk } from '../src/net/command.js';

const ipOk = (args: string[]) => runOk(['ip', ...args], 'CROFT_ERR_VIP');

export async function hasAddress(ifname: string, vip: string): Promise<boolean> {
  const out = await ipOk(['-j', '-4', 'addr', 'show', 'dev', ifname]);
  const links = JSON.parse(out) as Array<{ addr_info?: Array<{ local?: string }> }>;
  return links.some((l) => (l.addr_info ?? []).some((a) => a.local === vip));
}

/** The interface's own MAC (the primary answers for the VIP with it). */
export function macOf(ifname: string): string {
  try {
    return fs.readFileSync(`/sys/class/net/${ifname}/address`, 'utf8').trim();
  } catch (e) {
    throw new CroftError('CROFT_ERR_VIP', `cannot read the MAC of ${ifname}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Adds vip/32 on ifname (idempotent) and sends a gratuitous ARP; resolves once that first one is
 * sent, so that start_prim is not delayed. Two more follow 100 ms apart (a frame lost on a busy
 * switch), each only while `stillHeld()` (never after the VIP was given up): `repeats` settles
 * when they are done.
 */
export async function addMirrorVip(ifname: string, vip: string, stillHeld: () => boolean): Promise<{ repeats: Promise<void> }> {
  assert.equal(isIP(vip), 4, `mirror VIP ${vip} must be IPv4`);
  await ipOk(['addr', 'replace', `${vip}/32`, 'dev', ifname]);
  const mac = macOf(ifname);
  await arpSendGratuitous(ifname, vip, mac, 1);
  const repeats = (async () => {
    for (let i = 0; i < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      if (!stillHeld()) return;
      await arpSendGratuitous(ifname, vip, mac, 1);
    }
  })();
  return { repeats };
}

/** Removes vip/32 from ifname; idempotent. */
export async function removeMirrorVip(ifname: string, vip: string): Promise<void> {
  assert.equal(isIP(vip), 4, `mirror VIP ${vip} must be IPv4`);
  if (await hasAddress(ifname, vip)) await ipOk(['addr', 'del', `${vip}/32`, 'dev', ifname]);
}
