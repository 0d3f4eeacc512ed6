// The kernel's jhash and nft's `jhash ... mod N` bucket, computed by crates/croft-net so that the
// control plane agrees bit for bit with the nft rules of the data plane.
import assert from 'node:assert/strict';
import { callNative } from './load.js';

function assertU32(name: string, value: number): void {
  assert.ok(Number.isInteger(value) && value >= 0 && value <= 0xffffffff, `${name} must be a u32, got ${value}`);
}

/** `jhash(data, data.length, seed)` of include/linux/jhash.h. */
export function jhash(data: Uint8Array, seed: number): number {
  assertU32('seed', seed);
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return callNative('jhash', (n) => n.jhash(buf, seed));
}

/**
 * The bucket the kernel's `jhash ip saddr mod <modulus> seed <seed>` (port null) or
 * `jhash ip saddr . tcp sport mod <modulus> seed <seed>` gives a client; `ip6 saddr` for IPv6.
 * Throws CROFT_ERR_NATIVE for an invalid address or port.
 */
export function nftBucket(ip: string, port: number | null, modulus: number, seed: number): number {
  assertU32('modulus', modulus);
  assert.ok(modulus >= 1, 'modulus must be at least 1');
  assertU32('seed', seed);
  return callNative(`bucket of ${ip}${port === null ? '' : ` port ${port}`}`, (n) => n.nftBucket(ip, port, modulus, seed));
}
