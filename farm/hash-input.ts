// What the kernel hashes to pick a client's bucket, in both forms that must agree bit for bit: the
// nft expression text the rule renderer puts in the ruleset (nftHashExpr), and the bucket the
// control plane computes for `croft farm who` (bucketOf, through the native jhash of the kernel).
//
// Register layout (checked with `nft --debug=netlink`, nftables 1.0.6):
//   source-ip       `jhash ip saddr mod B seed S`              4 bytes (16 for ip6) of the address
//   source-ip-port  `jhash ip saddr . tcp sport mod B seed S`  address, 2 port bytes, 2 zero bytes
//                   (concatenations are register aligned); nft adds `meta l4proto tcp`, so the
//                   expression only matches TCP
//   network         `jhash ip saddr & 255.255.255.0 mod B seed S` the address with its host bits
//                   cleared by a bitwise op before the hash: /24 for IPv4, /64 for IPv6
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { nftBucket } from '../src/native/index.js';
import type { FarmBalance } from '../src/config/types.js';

export type NftFamily = 'ip' | 'ip6';

/** Prefix length of the `network` balance: clients of one /24 (IPv4) or /64 (IPv6) share a node. */
export const networkPrefix = { ip: 24, ip6: 64 } as const;

/** The masks of networkPrefix, as nft writes them. */
const networkMask = { ip: '255.255.255.0', ip6: 'ffff:ffff:ffff:ffff::' } as const;

function assertU32(name: string, value: number): void {
  assert.ok(Number.isInteger(value) && value >= 0 && value <= 0xffffffff, `${name} must be a u32, got ${value}`);
}

/** `0x1234abcd`: the form `nft list ruleset` prints back, so a rendered rule and a listed one compare equal. */
export function seedText(seed: number): string {
  assertU32('seed', seed);
  return `0x${seed.toString(16).padStart(8, '0')}`;
}

/**
 * The nft expression that yields a packet's bucket, e.g. `jhash ip saddr mod 256 seed 0x1234abcd`.
 * The farm rule renderer uses exactly this text; bucketOf computes the same value.
 */
export function nftHashExpr(balance: FarmBalance, family: NftFamily, modulus: number, seed: number): string {
  assert.ok(Number.isInteger(modulus) && modulus >= 1 && modulus <= 0xffffffff, `modulus must be a u32 >= 1, got ${modulus}`);
  const saddr = `${family} saddr`;
  const tail = `mod ${modulus} seed ${seedText(seed)}`;
  switch (balance) {
    case 'source-ip':
      return `jhash ${saddr} ${tail}`;
    case 'source-ip-port':
      return `jhash ${saddr} . tcp sport ${tail}`;
    case 'network':
      return `jhash ${saddr} & ${networkMask[family]} ${tail}`;
  }
}

/** The nft family of an address: `ip` for IPv4, `ip6` for IPv6. */
export function familyOf(ip: string): NftFamily {
  const v = isIP(ip);
  assert.ok(v !== 0, `not an IP address: ${ip}`);
  return v === 4 ? 'ip' : 'ip6';
}

/** The 4 or 16 bytes of an address, network order. */
export function addressBytes(ip: string): Buffer {
  const family = familyOf(ip);
  if (family === 'ip') return Buffer.from(ip.split('.').map(Number));
  let text = ip.toLowerCase();
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  // A trailing dotted quad (::ffff:10.0.0.1) stands for the last two groups.
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad) {
    const b = quad[1]!.split('.').map(Number);
    text = text.slice(0, quad.index) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const groupsOf = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const left = groupsOf(head);
  const right = tail === undefined ? [] : groupsOf(tail);
  const groups = tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  assert.equal(groups.length, 8, `IPv6 address ${ip} did not expand to 8 groups`);
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), 2 * i));
  return out;
}

/** An address with all but its first `prefix` bits cleared, in nft's `saddr & mask` sense. */
export function maskedAddress(ip: string, prefix: number): string {
  const bytes = addressBytes(ip);
  assert.ok(Number.isInteger(prefix) && prefix >= 0 && prefix <= bytes.length * 8, `prefix ${prefix} out of range`);
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.min(8, Math.max(0, prefix - 8 * i));
    bytes[i] = bytes[i]! & ((0xff00 >> keep) & 0xff);
  }
  if (bytes.length === 4) return [...bytes].join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return groups.join(':');
}

/**
 * The bucket the kernel gives a client under nftHashExpr(balance, familyOf(clientIp), modulus, seed).
 * `clientPort` is required for source-ip-port and ignored otherwise.
 */
export function bucketOf(balance: FarmBalance, modulus: number, seed: number, clientIp: string, clientPort?: number): number {
  const family = familyOf(clientIp);
  switch (balance) {
    case 'source-ip':
      return nftBucket(clientIp, null, modulus, seed);
    case 'source-ip-port':
      assert.ok(clientPort !== undefined && Number.isInteger(clientPort) && clientPort >= 0 && clientPort <= 65535,
        `balance source-ip-port needs the client's TCP port (0..65535), got ${String(clientPort)}`);
      return nftBucket(clientIp, clientPort, modulus, seed);
    case 'network':
      return nftBucket(maskedAddress(clientIp, networkPrefix[family]), null, modulus, seed);
  }
}
