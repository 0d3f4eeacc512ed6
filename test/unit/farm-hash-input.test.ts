// The hash input of a farm (farm/hash-input.ts): the nft expression text of each balance mode and
// the bucket computed for a client. Agreement with the kernel is proven in
// test/integration/farm-network-hash.test.ts; here, the text and the masking.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { addressBytes, bucketOf, maskedAddress, nftHashExpr, seedText } from '../../farm/hash-input.js';
import { jhash, nftBucket } from '../../src/native/index.js';

test('nft hash expressions of the three balance modes, IPv4 and IPv6', () => {
  assert.equal(nftHashExpr('source-ip', 'ip', 256, 0x1234abcd), 'jhash ip saddr mod 256 seed 0x1234abcd');
  assert.equal(nftHashExpr('source-ip-port', 'ip', 256, 0x1234abcd), 'jhash ip saddr . tcp sport mod 256 seed 0x1234abcd');
  assert.equal(nftHashExpr('network', 'ip', 256, 0x1234abcd), 'jhash ip saddr & 255.255.255.0 mod 256 seed 0x1234abcd');
  assert.equal(nftHashExpr('source-ip', 'ip6', 1024, 7), 'jhash ip6 saddr mod 1024 seed 0x00000007');
  assert.equal(nftHashExpr('network', 'ip6', 16, 0), 'jhash ip6 saddr & ffff:ffff:ffff:ffff:: mod 16 seed 0x00000000');
  assert.equal(seedText(0xffffffff), '0xffffffff');
  assert.throws(() => seedText(2 ** 32));
  assert.throws(() => nftHashExpr('source-ip', 'ip', 0, 1));
});

test('address bytes: IPv4, IPv6 with ::, and a trailing dotted quad', () => {
  assert.deepEqual([...addressBytes('10.1.2.3')], [10, 1, 2, 3]);
  assert.deepEqual([...addressBytes('fd00::1')], [0xfd, 0, ...Array(13).fill(0), 1]);
  assert.deepEqual([...addressBytes('::ffff:10.0.0.1')], [...Array(10).fill(0), 0xff, 0xff, 10, 0, 0, 1]);
  assert.deepEqual([...addressBytes('1:2:3:4:5:6:7:8')], [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]);
  assert.throws(() => addressBytes('10.1.2'), /not an IP/);
});

test('masking keeps the /24 or /64 and clears the host part', () => {
  assert.equal(maskedAddress('192.0.2.77', 24), '192.0.2.0');
  assert.equal(maskedAddress('192.0.2.77', 20), '192.0.0.0');
  assert.equal(maskedAddress('2001:db8:1:2:aaaa:bbbb:cccc:dddd', 64), '2001:db8:1:2:0:0:0:0');
  assert.equal(maskedAddress('2001:db8::1', 0), '0:0:0:0:0:0:0:0');
});

test('bucketOf: source-ip is the native bucket; network hashes the masked address; port only where hashed', () => {
  const seed = 0xc0ffee42;
  assert.equal(bucketOf('source-ip', 256, seed, '10.9.8.7'), nftBucket('10.9.8.7', null, 256, seed));
  assert.equal(bucketOf('source-ip', 256, seed, '10.9.8.7', 5555), bucketOf('source-ip', 256, seed, '10.9.8.7'));
  assert.equal(bucketOf('source-ip-port', 256, seed, '10.9.8.7', 5555), nftBucket('10.9.8.7', 5555, 256, seed));
  assert.throws(() => bucketOf('source-ip-port', 256, seed, '10.9.8.7'), /port/);
  // network: the 4 masked bytes, scaled as the kernel does (reciprocal_scale).
  const h = jhash(Buffer.from([10, 9, 8, 0]), seed);
  assert.equal(bucketOf('network', 256, seed, '10.9.8.7'), Number((BigInt(h) * 256n) >> 32n));
  // Clients of one /24 share a bucket; across networks the buckets vary.
  const same = new Set(Array.from({ length: 50 }, (_, i) => bucketOf('network', 256, seed, `10.9.8.${i + 1}`)));
  assert.equal(same.size, 1);
  const across = new Set(Array.from({ length: 50 }, (_, i) => bucketOf('network', 256, seed, `10.9.${i}.1`)));
  assert.ok(across.size > 30);
  const v6 = new Set(Array.from({ length: 20 }, (_, i) => bucketOf('network', 256, seed, `2001:db8:0:5::${i + 1}`)));
  assert.equal(v6.size, 1);
});
