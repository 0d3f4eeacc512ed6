// ARP (and IPv6 neighbour discovery) for a farm VIP, answered by a Rust thread on raw AF_PACKET
// sockets (crates/croft-net/src/arp).
// Nothing here blocks the JS thread: the responder runs on its own thread and gratuitous ARP is sent
// from the libuv pool.
import assert from 'node:assert/strict';
import { callNative, loadNative, nativeError, type NativeArpResponder } from './load.js';

export interface ArpAddress {
  /** Address to answer for (the VIP): ARP for IPv4, neighbour solicitations for IPv6. */
  ip: string;
  /** The virtual MAC announced for it, e.g. "02:00:5e:00:00:01": unicast, never used as a source. */
  mac: string;
}

export interface ArpStats {
  /** Well-formed ARP requests and neighbour solicitations seen on the interface (for any address). */
  requests: number;
  /** Replies sent for configured addresses. */
  replies: number;
  /** Received frames that were not Ethernet/IPv4 ARP, or not a valid neighbour solicitation. */
  malformed: number;
  /** Replies the kernel refused to send. */
  sendErrors: number;
  /** Why the responder thread stopped by itself (socket error, interface gone), else null. */
  failure: string | null;
}

/**
 * Answers ARP requests (IPv4) and neighbour solicitations (IPv6) for `setAddresses()` on one
 * interface. The reply's Ethernet source is the interface's real MAC and only the ARP sender address
 * (the advertisement's target link-layer option) is the virtual MAC, so switches never learn
 * the virtual MAC and flood the VIP's frames to every farm node. Throws CROFT_ERR_NATIVE when the
 * interface does not exist or the process may not open a raw socket (needs CAP_NET_RAW).
 */
export class ArpResponder {
  readonly ifname: string;
  readonly #native: NativeArpResponder;
  #closed = false;

  constructor(ifname: string) {
    this.ifname = ifname;
    const binding = loadNative();
    try {
      this.#native = new binding.ArpResponder(ifname);
    } catch (err) {
      throw nativeError(`cannot start the ARP responder on ${ifname}`, err);
    }
  }

  /** Replaces the answered addresses (an empty list answers nothing). */
  setAddresses(addresses: readonly ArpAddress[]): void {
    assert.ok(!this.#closed, 'setAddresses() after close()');
    try {
      this.#native.setAddresses(addresses.map((a) => ({ ip: a.ip, mac: a.mac })));
    } catch (err) {
      throw nativeError(`ARP responder on ${this.ifname}`, err);
    }
  }

  /** Counters since start (after close(), the final ones). */
  stats(): ArpStats {
    const s = this.#native.stats();
    return {
      requests: s.requests,
      replies: s.replies,
      malformed: s.malformed,
      sendErrors: s.sendErrors,
      failure: s.failure ?? null,
    };
  }

  /** Stops the thread and closes the socket; idempotent. */
  close(): void {
    this.#closed = true;
    this.#native.close();
  }
}

/**
 * Sends `count` gratuitous ARP announcements of `ip` at `mac` on `ifname`, `intervalMs` apart, from
 * the interface's real MAC; for an IPv6 `ip`, unsolicited neighbour advertisements (override set). Rejects with CROFT_ERR_NATIVE (no interface, no permission, bad
 * address).
 */
export async function arpSendGratuitous(
  ifname: string,
  ip: string,
  mac: string,
  count: number,
  intervalMs = 0,
): Promise<void> {
  assert.ok(Number.isInteger(count) && count >= 0 && count <= 0xffffffff, `count must be a u32, got ${count}`);
  assert.ok(Number.isInteger(intervalMs) && intervalMs >= 0 && intervalMs <= 0xffffffff, `bad intervalMs ${intervalMs}`);
  const what = `gratuitous ARP for ${ip} on ${ifname}`;
  const pending = callNative(what, (n) => n.arpSendGratuitous(ifname, ip, mac, count, intervalMs));
  try {
    await pending;
  } catch (err) {
    throw nativeError(what, err);
  }
}
