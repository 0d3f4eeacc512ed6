// interface checker: healthy when the network interface is up, as the kernel reports it in sysfs
// (Documentation/ABI/testing/sysfs-class-net: operstate, RFC 2863 states). Interfaces without a
// link state (loopback, some tunnels) report "unknown": they count as up when administratively up
// (IFF_UP in flags) and, where a carrier file can be read, it says 1.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Probe } from './probe.js';
import { reasonOf } from './probe.js';

const IFF_UP = 0x1;
const IFF_LOOPBACK = 0x8;

export function interfaceProbe(cfg: { interface: string; sysClassNet?: string }): Probe {
  const dir = path.join(cfg.sysClassNet ?? '/sys/class/net', cfg.interface);
  return async (signal) => {
    try {
      const operstate = (await fs.readFile(path.join(dir, 'operstate'), { encoding: 'utf8', signal })).trim();
      if (operstate === 'up') return { ok: true, detail: `${cfg.interface} up` };
      if (operstate !== 'unknown') return { ok: false, detail: `${cfg.interface} ${operstate}` };
      const flags = Number.parseInt((await fs.readFile(path.join(dir, 'flags'), { encoding: 'utf8', signal })).trim(), 16);
      if ((flags & IFF_UP) === 0) return { ok: false, detail: `${cfg.interface} administratively down` };
      if (flags & IFF_LOOPBACK) return { ok: true, detail: `${cfg.interface} up (loopback)` };
      const carrier = await fs.readFile(path.join(dir, 'carrier'), { encoding: 'utf8', signal }).then((s) => s.trim(), () => '');
      if (carrier === '0') return { ok: false, detail: `${cfg.interface} no carrier` };
      return { ok: true, detail: `${cfg.interface} up (operstate unknown${carrier === '1' ? ', carrier' : ''})` };
    } catch (err) {
      return { ok: false, detail: `${cfg.interface}: ${reasonOf(err)}` };
    }
  };
}
