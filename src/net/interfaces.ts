// This node's network interfaces, as both wings need them (the interface a VIP goes on).
import os from 'node:os';

/** The interface holding `address` in this namespace. */
export function interfaceOf(address: string): string | null {
  for (const [name, list] of Object.entries(os.networkInterfaces())) {
    if (list?.some((a) => a.address === address)) return name;
  }
  return null;
}
