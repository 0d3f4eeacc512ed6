// Proves that nftBucket() (crates/croft-net) computes the bucket the running kernel computes for
// `jhash ip saddr [. tcp sport] mod M seed S`: a server namespace records, per packet, the source
// and the kernel's jhash in dynamic sets; the test compares every recorded bucket with nftBucket().
import { describe, it, beforeAll, afterAll } from 'vitest';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { jhash, nftBucket } from '../../src/native/index.js';

const run = promisify(execFile);

const tag = `crofttest-jh-${process.pid}`;
const clientNs = `${tag}-c`;
const serverNs = `${tag}-s`;
const SEED = 0xc0ffee42;
// Not a power of two, so a wrong reduction (modulo instead of reciprocal_scale) cannot agree by luck.
const MODULUS = 251;
const V4_SOURCES = 120;
const V6_SOURCES = 40;

const v4Sources = Array.from({ length: V4_SOURCES }, (_, i) => `10.77.${1 + Math.floor(i / 200)}.${1 + (i % 200)}`);
const v6Sources = Array.from({ length: V6_SOURCES }, (_, i) => `fd00:77::1:${(i + 1).toString(16)}`);
// Spread source ports over the range, and include ports with a zero high or low byte.
const portOf = (i: number): number => [256, 512, 1023, 65535][i] ?? 1024 + ((i * 7919) % 64000);

const ruleset = `
table ip croft_jh {
  set by_addr { typeof ip saddr . meta mark; flags dynamic; size 65535; }
  set by_port { typeof ip saddr . tcp sport . meta mark; flags dynamic; size 65535; }
  chain input {
    type filter hook input priority 0; policy accept;
    meta l4proto tcp meta mark set jhash ip saddr mod ${MODULUS} seed ${SEED}
    meta l4proto tcp add @by_addr { ip saddr . meta mark }
    meta l4proto tcp meta mark set jhash ip saddr . tcp sport mod ${MODULUS} seed ${SEED}
    meta l4proto tcp add @by_port { ip saddr . tcp sport . meta mark }
  }
}
table ip6 croft_jh6 {
  set by_addr { typeof ip6 saddr . meta mark; flags dynamic; size 65535; }
  set by_port { typeof ip6 saddr . tcp sport . meta mark; flags dynamic; size 65535; }
  chain input {
    type filter hook input priority 0; policy accept;
    meta l4proto tcp meta mark set jhash ip6 saddr mod ${MODULUS} seed ${SEED}
    meta l4proto tcp add @by_addr { ip6 saddr . meta mark }
    meta l4proto tcp meta mark set jhash ip6 saddr . tcp sport mod ${MODULUS} seed ${SEED}
    meta l4proto tcp add @by_port { ip6 saddr . tcp sport . meta mark }
  }
}
`;

// One TCP SYN from every (source, port) to a closed port of the server: the RST is enough, the
// packet went through the input hook.
const clientScript = `
import net from 'node:net';
const targets = JSON.parse(process.argv[1]);
let left = targets.length;
for (const t of targets) {
  const s = net.connect({ host: t.host, port: 9, localAddress: t.addr, localPort: t.port });
  const done = () => { s.destroy(); if (--left === 0) process.exit(0); };
  s.on('connect', done);
  s.on('error', done);
}
setTimeout(() => { console.error('timeout, left ' + left); process.exit(1); }, 15000);
`;

function sh(args: string[], input?: string): void {
  execFileSync(args[0] as string, args.slice(1), { input, stdio: ['pipe', 'pipe', 'pipe'] });
}

function ipBatch(ns: string, lines: string[]): void {
  sh(['ip', '-n', ns, '-batch', '-'], lines.join('\n') + '\n');
}

type Element = { addr: string; port: number | null; bucket: number };

async function setElements(family: 'ip' | 'ip6', table: string, set: string): Promise<Element[]> {
  const { stdout } = await run('ip', ['netns', 'exec', serverNs, 'nft', '-j', 'list', 'set', family, table, set]);
  const doc = JSON.parse(stdout) as { nftables: Array<{ set?: { elem?: Array<{ concat: Array<string | number> }> } }> };
  const elems = doc.nftables.find((o) => o.set !== undefined)?.set?.elem ?? [];
  return elems.map(({ concat }) =>
    concat.length === 2
      ? { addr: String(concat[0]), port: null, bucket: Number(concat[1]) }
      : { addr: String(concat[0]), port: Number(concat[1]), bucket: Number(concat[2]) },
  );
}

function canonicalV6(addr: string): string {
  // nft prints compressed lowercase addresses; ours are generated in the same form already.
  return addr.toLowerCase();
}

function checkAgreement(kernel: Element[], expectedCount: number, withPort: boolean): void {
  assert.equal(kernel.length, expectedCount, `the kernel recorded ${kernel.length} of ${expectedCount} sources`);
  const mismatches = kernel
    .map((e) => ({ ...e, ours: nftBucket(e.addr, withPort ? e.port : null, MODULUS, SEED) }))
    .filter((e) => e.ours !== e.bucket);
  assert.deepEqual(mismatches, [], 'nftBucket() disagrees with the kernel');
  // Guard against a vacuous pass: the buckets really vary.
  assert.ok(new Set(kernel.map((e) => e.bucket)).size > expectedCount / 4, 'buckets do not spread');
}

describe('native jhash agrees with the kernel nft jhash expression', { timeout: 60_000 }, () => {
  beforeAll(async () => {
    sh(['ip', 'netns', 'add', clientNs]);
    sh(['ip', 'netns', 'add', serverNs]);
    // Created directly inside the namespaces: the host never sees these links.
    sh(['ip', 'link', 'add', 'jhc0', 'netns', clientNs, 'type', 'veth', 'peer', 'name', 'jhs0', 'netns', serverNs]);
    ipBatch(clientNs, [
      'link set lo up',
      'link set jhc0 up',
      ...v4Sources.map((a) => `addr add ${a}/16 dev jhc0`),
      ...v6Sources.map((a) => `addr add ${a}/64 dev jhc0 nodad`),
    ]);
    ipBatch(serverNs, [
      'link set lo up',
      'link set jhs0 up',
      'addr add 10.77.0.254/16 dev jhs0',
      'addr add fd00:77::fe/64 dev jhs0 nodad',
    ]);
    sh(['ip', 'netns', 'exec', serverNs, 'nft', '-f', '-'], ruleset);
    const targets = [
      ...v4Sources.map((addr, i) => ({ addr, port: portOf(i), host: '10.77.0.254' })),
      ...v6Sources.map((addr, i) => ({ addr, port: portOf(i), host: 'fd00:77::fe' })),
    ];
    await run('ip', [
      'netns', 'exec', clientNs, process.execPath, '--input-type=module', '-e', clientScript, JSON.stringify(targets),
    ]);
  });

  afterAll(() => {
    for (const ns of [clientNs, serverNs]) {
      try {
        sh(['ip', 'netns', 'del', ns]);
      } catch {
        // Already gone (setup failed before creating it).
      }
    }
  });

  it('jhash ip saddr mod M seed S: every one of 120 IPv4 sources', async () => {
    const kernel = await setElements('ip', 'croft_jh', 'by_addr');
    checkAgreement(kernel, V4_SOURCES, false);
    assert.deepEqual(kernel.map((e) => e.addr).sort(), [...v4Sources].sort());
  });

  it('jhash ip saddr . tcp sport mod M seed S: register layout (4 + 2 + 2 zero bytes)', async () => {
    const kernel = await setElements('ip', 'croft_jh', 'by_port');
    checkAgreement(kernel, V4_SOURCES, true);
    assert.ok(kernel.some((e) => e.port === 256) && kernel.some((e) => e.port === 65535));
  });

  it('jhash ip6 saddr, and ip6 saddr . tcp sport', async () => {
    const byAddr = await setElements('ip6', 'croft_jh6', 'by_addr');
    checkAgreement(byAddr, V6_SOURCES, false);
    assert.deepEqual(byAddr.map((e) => canonicalV6(e.addr)).sort(), [...v6Sources].sort());
    checkAgreement(await setElements('ip6', 'croft_jh6', 'by_port'), V6_SOURCES, true);
  });

  it('the reduction is reciprocal_scale, not modulo (the test can tell them apart)', async () => {
    const kernel = await setElements('ip', 'croft_jh', 'by_addr');
    const moduloAgrees = kernel.filter((e) => {
      const key = Buffer.from(e.addr.split('.').map(Number));
      return jhash(key, SEED) % MODULUS === e.bucket;
    });
    assert.ok(moduloAgrees.length < kernel.length / 4, `plain modulo matched ${moduloAgrees.length} sources`);
  });
});
