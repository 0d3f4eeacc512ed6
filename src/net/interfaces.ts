// This node's network interfaces, as both wings need them (the interface a VIP goes on).
import fs from 'node:fs';
import os from 'node:os';
import { CroftError } from '../errors.js';

/** The interface holding `address` in this namespace. */
export function interfaceOf(address: string): string | null {
  for (const [name, list] of Object.entries(os.networkInterfaces())) {
    if (list?.some((a) => a.address === address)) return name;
  }
  return null;
}

/** The interface's own MAC (lower-case aa:bb:cc:dd:ee:ff). */
export function macOf(ifname: string): string {
  try {
    return fs.readFileSync(`/sys/class/net/${ifname}/address`, 'utf8').trim();
  } catch (e) {
    throw new CroftError('CROFT_ERR_VIP', `cannot read the MAC of ${ifname}: ${(e as Error).message}`, { cause: e });
  }
}
