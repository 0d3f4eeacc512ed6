// Connections this network namespace holds on an address, from the kernel's socket tables
// (/proc/self/net/tcp and tcp6: the namespace of the calling process). Used while a farm node
// drains before a planned stop: it waits until no client connection to the VIP is left.
import fs from 'node:fs';
import { isIP } from 'node:net';

/** TCP states in which a client may still get bytes: ESTABLISHED, SYN_RECV, CLOSE_WAIT. */
const LIVE_STATES = new Set(['01', '03', '08']);

/** How /proc/net/tcp{,6} writes an address: each 32-bit word in host (little-endian) byte order, in hex. */
export function procHexAddress(address: string): string {
  const family = isIP(address);
  if (family === 4) {
    const b = address.split('.').map(Number);
    return [b[3], b[2], b[1], b[0]].map((x) => x!.toString(16).padStart(2, '0')).join('').toUpperCase();
  }
  if (family === 6) {
    const bytes = ipv6Bytes(address);
    let out = '';
    for (let w = 0; w < 16; w += 4) out += [bytes[w + 3], bytes[w + 2], bytes[w + 1], bytes[w]].map((x) => x!.toString(16).padStart(2, '0')).join('');
    return out.toUpperCase();
  }
  throw new Error(`not an IP address: ${address}`);
}

function ipv6Bytes(address: string): number[] {
  const [head, tail] = address.includes('::') ? address.split('::') as [string, string] : [address, null];
  const words = (s: string) => (s === '' ? [] : s.split(':'));
  const h = words(head);
  const t = tail === null ? [] : words(tail);
  const all = tail === null ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const bytes: number[] = [];
  for (const w of all) {
    const v = parseInt(w, 16);
    bytes.push(v >> 8, v & 0xff);
  }
  return bytes;
}

/** Live connections whose local address is `address`, in the text of /proc/net/tcp or tcp6. */
export function countLiveConnections(procText: string, address: string): number {
  const hex = procHexAddress(address);
  let n = 0;
  for (const line of procText.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const local = f[1]!;
    const st = f[3]!;
    if (local.slice(0, local.indexOf(':')) === hex && LIVE_STATES.has(st)) n++;
  }
  return n;
}

function procFile(address: string): string {
  return isIP(address) === 6 ? '/proc/self/net/tcp6' : '/proc/self/net/tcp';
}

/** Live TCP connections to `address` on this node (its network namespace). */
export function liveConnectionsTo(address: string): number {
  return countLiveConnections(fs.readFileSync(procFile(address), 'utf8'), address);
}

/**
 * The live connections to `address` for metrics: read off the JS thread (the table of a busy
 * node is megabytes) at most once per `everyMs`; `value()` is the last count (null until the
 * first is in, or when the table cannot be read).
 */
export class LiveConnectionsWatch {
  #last: { atMs: number; n: number | null } | null = null;
  #pending = false;

  constructor(readonly address: string, private readonly everyMs = 1000, private readonly now: () => number = Date.now) {}

  value(): number | null {
    const c = this.#last;
    if (!this.#pending && (c === null || this.now() - c.atMs >= this.everyMs)) {
      this.#pending = true;
      fs.promises.readFile(procFile(this.address), 'utf8').then(
        (text) => { this.#last = { atMs: this.now(), n: countLiveConnections(text, this.address) }; },
        () => { this.#last = { atMs: this.now(), n: null }; },
      ).finally(() => { this.#pending = false; });
    }
    return c?.n ?? null;
  }
}
