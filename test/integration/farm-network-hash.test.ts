// Proves that the nft hash expressions of farm/hash-input.ts (nftHashExpr) are accepted by nft and
// that bucketOf() computes what the kernel computes with them, for the three balance modes,
// in particular `network` (`jhash ip saddr & 255.255.255.0 ...`, the masked address): a server
// namespace records, per packet, the source (and port) and the kernel's bucket in dynamic sets.
import { describe, it, beforeAll, afterAll } from 'vitest';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { bucketOf, maskedAddress, nftHashExpr } from '../../farm/hash-input.js';
import type { FarmBalance } from '../../src/config/types.js';

const run = promisify(execFile);

const tag = `crofttest-fa-${process.pid}`;
const clientNs = `${tag}-c`;
const serverNs = `${tag}-s`;
const SEED = 0x5eed1234;
// Not a power of two, as in native-jhash.test.ts: a wrong reduction cannot agree by luck.
const MODULUS = 251;

// 40 /24 networks with 3 clients each (IPv4), 12 /64 networks with 3 clients each (IPv6): several
// clients per network, so the test also sees that one network's clients share a bucket.
const v4Sources = Array.from({ length: 120 }, (_, i) => `10.77.${10 + Math.floor(i / 3)}.${1 + 37 * (i % 3)}`);
const v6Sources = Array.from({ length: 36 }, (_, i) => `fd00:77:0:${(Math.floor(i / 3) + 1).toString(16)}::${(0x10 + 7 * (i % 3)).toString(16)}`);
const portOf = (i: number): number => [256, 1023, 65535][i] ?? 1024 + ((i * 7919) % 64000);

const balances: FarmBalance[] = ['source-ip', 'source-ip-port', 'network'];
const setName = (b: FarmBalance): string => b.replace(/-/g, '_');

function tableText(family: 'ip' | 'ip6', name: string): string {
  const sets = balances.map((b) => `  set ${setName(b)} { typeof ${family} saddr . tcp sport . meta mark; flags dynamic; size 65535; }`);
  const rules = balances.flatMap((b) => [
    `    meta l4proto tcp meta mark set ${nftHashExpr(b, family, MODULUS, SEED)}`,
    `    meta l4proto tcp add @${setName(b)} { ${family} saddr . tcp sport . meta mark }`,
  ]);
  return [`table ${family} ${name} {`, ...sets, '  chain input {', '    type filter hook input priority 0; policy accept;', ...rules, '  }', '}'].join('\n');
}
const ruleset = `${tableText('ip', 'croft_fa')}\n${tableText('ip6', 'croft_fa6')}\n`;

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

function sh(args: string[], input?: string): string {
  return execFileSync(args[0] as string, args.slice(1), { input, stdio: ['pipe', 'pipe', 'pipe'] }).toString();
}

type Element = { addr: string; port: number; bucket: number };

async function setElements(family: 'ip' | 'ip6', table: string, set: string): Promise<Element[]> {
  const { stdout } = await run('ip', ['netns', 'exec', serverNs, 'nft', '-j', 'list', 'set', family, table, set]);
  const doc = JSON.parse(stdout) as { nftables: Array<{ set?: { elem?: Array<{ concat: Array<string | number> }> } }> };
  const elems = doc.nftables.find((o) => o.set !== undefined)?.set?.elem ?? [];
  return elems.map(({ concat }) => ({ addr: String(concat[0]), port: Number(concat[1]), bucket: Number(concat[2]) }));
}

function check(kernel: Element[], sources: string[], balance: FarmBalance): void {
  assert.equal(kernel.length, sources.length, `the kernel recorded ${kernel.length} of ${sources.length} sources`);
  assert.deepEqual(kernel.map((e) => e.addr).sort(), [...sources].sort());
  const mismatches = kernel
    .map((e) => ({ ...e, ours: bucketOf(balance, MODULUS, SEED, e.addr, e.port) }))
    .filter((e) => e.ours !== e.bucket);
  assert.deepEqual(mismatches, [], `bucketOf(${balance}) disagrees with the kernel`);
}

describe('farm hash expressions: nft accepts them and bucketOf agrees with the kernel', { timeout: 60_000 }, () => {
  beforeAll(async () => {
    sh(['ip', 'netns', 'add', clientNs]);
    sh(['ip', 'netns', 'add', serverNs]);
    // Created directly inside the namespaces: the host never sees these links.
    sh(['ip', 'link', 'add', 'fac0', 'netns', clientNs, 'type', 'veth', 'peer', 'name', 'fas0', 'netns', serverNs]);
    sh(['ip', '-n', clientNs, '-batch', '-'], [
      'link set lo up',
      'link set fac0 up',
      ...v4Sources.map((a) => `addr add ${a}/16 dev fac0`),
      ...v6Sources.map((a) => `addr add ${a}/48 dev fac0 nodad`),
    ].join('\n') + '\n');
    sh(['ip', '-n', serverNs, '-batch', '-'], [
      'link set lo up',
      'link set fas0 up',
      'addr add 10.77.0.254/16 dev fas0',
      'addr add fd00:77::fe/48 dev fas0 nodad',
    ].join('\n') + '\n');
    // nft --check first, as the farm driver will: the expressions must parse as rendered.
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'croft-fa-')), 'ruleset.nft');
    try {
      fs.writeFileSync(file, ruleset);
      sh(['ip', 'netns', 'exec', serverNs, 'nft', '--check', '-f', file]);
      sh(['ip', 'netns', 'exec', serverNs, 'nft', '-f', file]);
    } finally {
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
    const targets = [
      ...v4Sources.map((addr, i) => ({ addr, port: portOf(i), host: '10.77.0.254' })),
      ...v6Sources.map((addr, i) => ({ addr, port: portOf(i), host: 'fd00:77::fe' })),
    ];
    await run('ip', ['netns', 'exec', clientNs, process.execPath, '--input-type=module', '-e', clientScript, JSON.stringify(targets)]);
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

  it('the kernel lists the expressions back exactly as rendered (so a reconcile can compare text)', () => {
    const listed = sh(['ip', 'netns', 'exec', serverNs, 'nft', 'list', 'ruleset']);
    for (const b of balances) {
      for (const family of ['ip', 'ip6'] as const) {
        const expr = nftHashExpr(b, family, MODULUS, SEED);
        assert.ok(listed.includes(expr), `nft lists no "${expr}":\n${listed}`);
      }
    }
  });

  it('network (/24): every one of 120 IPv4 clients, and clients of one /24 share a bucket', async () => {
    const kernel = await setElements('ip', 'croft_fa', 'network');
    check(kernel, v4Sources, 'network');
    const byNet = new Map<string, Set<number>>();
    for (const e of kernel) {
      const net = maskedAddress(e.addr, 24);
      byNet.set(net, (byNet.get(net) ?? new Set()).add(e.bucket));
    }
    assert.equal(byNet.size, 40);
    for (const [net, buckets] of byNet) assert.equal(buckets.size, 1, `${net}/24 spans buckets ${[...buckets].join(',')}`);
    assert.ok(new Set(kernel.map((e) => e.bucket)).size > 20, 'buckets do not spread over the networks');
  });

  it('network (/64): every one of 36 IPv6 clients, one bucket per /64', async () => {
    const kernel = await setElements('ip6', 'croft_fa6', 'network');
    check(kernel, v6Sources, 'network');
    const byNet = new Map<string, Set<number>>();
    for (const e of kernel) byNet.set(maskedAddress(e.addr, 64), (byNet.get(maskedAddress(e.addr, 64)) ?? new Set()).add(e.bucket));
    assert.equal(byNet.size, 12);
    for (const buckets of byNet.values()) assert.equal(buckets.size, 1);
  });

  it('source-ip and source-ip-port through the same rendered text agree too (IPv4 and IPv6)', async () => {
    check(await setElements('ip', 'croft_fa', 'source_ip'), v4Sources, 'source-ip');
    check(await setElements('ip', 'croft_fa', 'source_ip_port'), v4Sources, 'source-ip-port');
    check(await setElements('ip6', 'croft_fa6', 'source_ip'), v6Sources, 'source-ip');
    check(await setElements('ip6', 'croft_fa6', 'source_ip_port'), v6Sources, 'source-ip-port');
  });

  it('the network mode really masks: unmasked hashing would disagree with the kernel', async () => {
    const kernel = await setElements('ip', 'croft_fa', 'network');
    const unmaskedAgrees = kernel.filter((e) => bucketOf('source-ip', MODULUS, SEED, e.addr) === e.bucket);
    assert.ok(unmaskedAgrees.length < kernel.length / 4, `unmasked hash matched ${unmaskedAgrees.length} sources`);
  });
});
