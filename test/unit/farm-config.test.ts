// Farm module keys (kind: farm): they convert into FarmConfig with their defaults (seed and virtual
// MAC derived from the names), and each mistake is reported at its file, line and key.
import { test, afterAll } from 'vitest';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, formatProblems, loadConfig } from '../../src/config/index.js';
import type { ConfigProblem, ModuleConfig } from '../../src/config/index.js';
import { deriveFarmSeed, deriveVirtualMac } from '../../src/config/farm.js';

const cluster = [
  'name: t', //                                   1
  'key: "0123456789abcdef0123456789abcdef"', //   2
  'nodes:', //                                    3
  '  n1:', //                                     4
  '    addresses: [10.77.0.1]', //                5
  '  n2:', //                                     6
  '    addresses: [10.77.0.2]', //                7
  '    weight: 3', //                             8
  '  n3:', //                                     9
  '    addresses: [10.77.0.3]', //                10
  '',
].join('\n');

const farm = [
  'kind: farm', //                       1
  'nodes: [n1, n2, n3]', //              2
  'vip: 10.77.0.100', //                 3
  '',
].join('\n');

const full = [
  'kind: farm', //                       1
  'nodes: [n1, n2]', //                  2
  'vip: 10.77.0.100', //                 3
  'interface: eth1', //                  4
  'mac_mode: invisible', //              5
  'virtual_mac: 02:00:5E:10:00:01', //   6
  'buckets: 1024', //                    7
  'balance: network', //                 8
  'ports: [443, 80]', //                 9
  'seed: 305441741', //                  10
  'weights:', //                         11
  '  n2: 0', //                          12
  'drain_ms: 15000', //                  13
  '',
].join('\n');

const light = ['kind: light', 'nodes: [n1]', ''].join('\n');

const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

function writeDir(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-farm-config-test-'));
  tmpDirs.push(dir);
  for (const [rel, text] of Object.entries({ 'cluster.yaml': cluster, ...files })) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text, { mode: rel === 'cluster.yaml' ? 0o600 : 0o644 }); // the key is inline
  }
  return dir;
}

function moduleOf(dir: string, name: string): ModuleConfig {
  const m = loadConfig(dir).modules.find((x) => x.name === name);
  assert.ok(m, `module ${name}`);
  return m;
}

function problemsOf(dir: string): ConfigProblem[] {
  try {
    loadConfig(dir);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('loadConfig accepted an invalid config');
}

/** A problem in modules/web.yaml at `key`, on `line`, whose message matches. */
function expectProblem(text: string, want: { line: number; key: string; message: RegExp }, others: Record<string, string> = {}): void {
  const dir = writeDir({ 'modules/web.yaml': text, ...others });
  const problems = problemsOf(dir);
  const p = problems.find((q) => q.key === want.key && q.file === path.join(dir, 'modules/web.yaml'));
  assert.ok(p, `no problem at ${want.key}; got:\n${formatProblems(problems)}`);
  assert.equal(p.line, want.line, `line of ${want.key}: ${p.message}`);
  assert.match(p.message, want.message);
}

const edit = (text: string, from: string, to: string): string => {
  assert.ok(text.includes(from), `fixture has no ${JSON.stringify(from)}`);
  return text.replace(from, to);
};

test('every farm key converts into FarmConfig', () => {
  const web = moduleOf(writeDir({ 'modules/web.yaml': full }), 'web');
  assert.equal(web.kind, 'farm');
  assert.deepEqual(web.farm, {
    vip: '10.77.0.100',
    vips: ['10.77.0.100'],
    interface: 'eth1',
    macMode: 'invisible',
    virtualMac: '02:00:5e:10:00:01',
    buckets: 1024,
    balance: 'network',
    ports: [80, 443],
    seed: 305441741,
    quorum: 'none', // two nodes: see FarmConfig.quorum
    drainMs: 15000,
    weights: { n1: 1, n2: 0 },
  });
});

test('defaults: 1024 buckets, source-ip, invisible MAC, derived seed and MAC, cluster weights', () => {
  const dir = writeDir({ 'modules/web.yaml': farm, 'modules/db.yaml': light });
  const web = moduleOf(dir, 'web');
  assert.deepEqual(web.farm, {
    vip: '10.77.0.100',
    vips: ['10.77.0.100'],
    interface: null,
    macMode: 'invisible',
    virtualMac: deriveVirtualMac('t', 'web', 'invisible'),
    buckets: 1024,
    balance: 'source-ip',
    ports: [],
    seed: deriveFarmSeed('t', 'web'),
    quorum: 'majority', // three nodes
    drainMs: 0, // a planned stop runs stop_both at once
    weights: { n1: 1, n2: 3, n3: 1 },
  });
  const db = moduleOf(dir, 'db');
  assert.ok('farm' in db, 'other kinds carry farm: undefined');
  assert.equal(db.farm, undefined);
});

test('derived seed and virtual MAC: pinned, per cluster and module, locally administered', () => {
  // Pinned: every node of a cluster, whatever its croft version, must derive the same values.
  assert.equal(deriveFarmSeed('t', 'web'), 0x1905cf64);
  assert.equal(deriveVirtualMac('t', 'web', 'invisible'), '02:e0:a4:5c:ce:6a');
  assert.equal(deriveVirtualMac('t', 'web', 'multicast'), '03:e0:a4:5c:ce:6a');
  assert.notEqual(deriveFarmSeed('t', 'api'), deriveFarmSeed('t', 'web'));
  assert.notEqual(deriveFarmSeed('u', 'web'), deriveFarmSeed('t', 'web'));
  assert.notEqual(deriveVirtualMac('t', 'api', 'invisible'), deriveVirtualMac('t', 'web', 'invisible'));
  const multicast = moduleOf(writeDir({ 'modules/web.yaml': `${farm}mac_mode: multicast\n` }), 'web');
  assert.match(multicast.farm?.virtualMac ?? '', /^03(:[0-9a-f]{2}){5}$/);
});

test('cloud mode: vip none has no VIP, no MAC, no interface', () => {
  const web = moduleOf(writeDir({ 'modules/web.yaml': edit(farm, 'vip: 10.77.0.100', 'vip: none') }), 'web');
  assert.equal(web.farm?.vip, null);
  assert.deepEqual(web.farm?.vips, []);
  assert.equal(web.farm?.virtualMac, null);
  assert.equal(web.farm?.interface, null);
  assert.equal(web.farm?.seed, deriveFarmSeed('t', 'web'));
  expectProblem(edit(full, 'vip: 10.77.0.100', 'vip: none'), { line: 6, key: 'virtual_mac', message: /no effect in cloud mode/ });
});

test('an IPv6 VIP is accepted', () => {
  const web = moduleOf(writeDir({ 'modules/web.yaml': edit(farm, 'vip: 10.77.0.100', 'vip: "fd00:77::100"') }), 'web');
  assert.equal(web.farm?.vip, 'fd00:77::100');
});

test('vip: a list of addresses, IPv4 and IPv6 mixed, in canonical form; the first is `vip`', () => {
  const web = moduleOf(writeDir({ 'modules/web.yaml': edit(farm, 'vip: 10.77.0.100', 'vip: [10.77.0.100, "FD00:77:0::100", 10.77.0.101]') }), 'web');
  assert.equal(web.farm?.vip, '10.77.0.100');
  assert.deepEqual(web.farm?.vips, ['10.77.0.100', 'fd00:77::100', '10.77.0.101']);
  const block = moduleOf(writeDir({ 'modules/web.yaml': edit(farm, 'vip: 10.77.0.100', 'vip:\n  - "fd00:77::100"\n  - 10.77.0.100') }), 'web');
  assert.deepEqual([block.farm?.vip, block.farm?.vips], ['fd00:77::100', ['fd00:77::100', '10.77.0.100']]);
  expectProblem(edit(farm, 'vip: 10.77.0.100', 'vip: []'), { line: 3, key: 'vip', message: /with at least 1 item, got 0/ });
  expectProblem(edit(farm, 'vip: 10.77.0.100', 'vip: [10.77.0.100, none]'), { line: 3, key: 'vip[1]', message: /expected an IPv4 or IPv6 address, got "none"/ });
  expectProblem(edit(farm, 'vip: 10.77.0.100', 'vip: [10.77.0.100, 10.77.0.2]'), { line: 3, key: 'vip[1]', message: /10.77.0.2 is the address of n2 on lan0/ });
  expectProblem(edit(farm, 'vip: 10.77.0.100', 'vip: [10.77.0.100, 10.77.0.100]'), { line: 3, key: 'vip[1]', message: /listed twice/ });
  expectProblem(edit(farm, 'vip: 10.77.0.100', 'vip: ["fd00::1", "FD00:0::1"]'), { line: 3, key: 'vip[1]', message: /FD00:0::1 is item 0 \(fd00::1\) again; expected each VIP once/ });
  const many = Array.from({ length: 17 }, (_, i) => `10.77.1.${i}`).join(', ');
  expectProblem(edit(farm, 'vip: 10.77.0.100', `vip: [${many}]`), { line: 3, key: 'vip', message: /at most 16 items/ });
  expectProblem(edit(farm, 'vip: 10.77.0.100', 'vip: { a: 1 }'), { line: 3, key: 'vip', message: /expected an IPv4 or IPv6 address, a list of them/ });
});

test('vip: required, an address or none, and not a node\'s address', () => {
  expectProblem(edit(farm, 'vip: 10.77.0.100\n', ''), { line: 1, key: 'vip', message: /missing required key: expected an IPv4 or IPv6 address, a list of them \(IPv4 and IPv6 mixed\), or 'none'/ });
  expectProblem(edit(farm, 'vip: 10.77.0.100', 'vip: 10.77.0.300'), { line: 3, key: 'vip', message: /expected an IPv4 or IPv6 address, a list of them \(IPv4 and IPv6 mixed\), or 'none' \(cloud mode: no VIP\), got "10.77.0.300"/ });
  expectProblem(edit(farm, 'vip: 10.77.0.100', 'vip: 10.77.0.2'), { line: 3, key: 'vip', message: /10.77.0.2 is the address of n2 on lan0; expected an address that no node has/ });
});

test('buckets, balance, ports, seed out of range', () => {
  expectProblem(edit(full, 'buckets: 1024', 'buckets: 0'), { line: 7, key: 'buckets', message: /expected an integer from 1 to 4096, got 0/ });
  expectProblem(edit(full, 'buckets: 1024', 'buckets: 5000'), { line: 7, key: 'buckets', message: /from 1 to 4096/ });
  expectProblem(edit(full, 'balance: network', 'balance: source_ip'), { line: 8, key: 'balance', message: /expected one of source-ip, source-ip-port, network, got "source_ip"; did you mean "source-ip"\?/ });
  expectProblem(edit(full, 'ports: [443, 80]', 'ports: [443, 70000]'), { line: 9, key: 'ports[1]', message: /port number from 1 to 65535/ });
  expectProblem(edit(full, 'ports: [443, 80]', 'ports: [443, 443]'), { line: 9, key: 'ports[1]', message: /listed twice/ });
  expectProblem(edit(full, 'seed: 305441741', 'seed: 4294967296'), { line: 10, key: 'seed', message: /a u32/ });
  expectProblem(edit(full, 'seed: 305441741', 'seed: -1'), { line: 10, key: 'seed', message: /a u32/ });
  expectProblem(edit(full, 'drain_ms: 15000', 'drain_ms: 4000000'), { line: 13, key: 'drain_ms', message: /from 0 to 3600000/ });
  expectProblem(edit(full, 'drain_ms: 15000', 'drain_ms: soon'), { line: 13, key: 'drain_ms', message: /integer/ });
});

test('weights: only the module\'s nodes, 0 to 1000, not all zero', () => {
  expectProblem(edit(full, '  n2: 0', '  n3: 2'), { line: 12, key: 'weights.n3', message: /"n3" is not a node of this module; expected one of n1, n2/ });
  expectProblem(edit(full, '  n2: 0', '  n2: 1001'), { line: 12, key: 'weights.n2', message: /weight from 0 to 1000/ });
  expectProblem(edit(full, '  n2: 0', '  n2: 0\n  n1: 0'), { line: 11, key: 'weights', message: /every node of the module has weight 0/ });
  // Without `nodes:`, the module's nodes are the cluster's: n3 is one of them.
  const web = moduleOf(writeDir({ 'modules/web.yaml': edit(farm, 'nodes: [n1, n2, n3]\n', 'weights: { n3: 5 }\n') }), 'web');
  assert.deepEqual(web.farm?.weights, { n1: 1, n2: 3, n3: 5 });
});

test('virtual_mac: a MAC, unicast in invisible mode, multicast in multicast mode', () => {
  expectProblem(edit(full, 'virtual_mac: 02:00:5E:10:00:01', 'virtual_mac: 02:00:5e:10:00'), { line: 6, key: 'virtual_mac', message: /a MAC address like/ });
  expectProblem(edit(full, 'virtual_mac: 02:00:5E:10:00:01', 'virtual_mac: 03:00:5e:10:00:01'), { line: 6, key: 'virtual_mac', message: /is a multicast MAC.*e\.g\. 02:00:5e:10:00:01/ });
  expectProblem(edit(full, 'mac_mode: invisible', 'mac_mode: multicast'), { line: 6, key: 'virtual_mac', message: /is a unicast MAC.*e\.g\. 03:00:5E:10:00:01/ });
  expectProblem(edit(full, 'virtual_mac: 02:00:5E:10:00:01', 'virtual_mac: ff:ff:ff:ff:ff:ff'), { line: 6, key: 'virtual_mac', message: /cannot be a virtual MAC/ });
  expectProblem(edit(full, 'mac_mode: invisible', 'mac_mode: hidden'), { line: 5, key: 'mac_mode', message: /expected one of invisible, multicast/ });
});

test('a farm key in a light module names the kind it belongs to; unknown keys in a farm module are refused', () => {
  expectProblem(`${light}vip: 10.77.0.100\n`, { line: 3, key: 'vip', message: /^"vip" is a key of farm and mirror modules; this module is kind: light$/ });
  expectProblem(`${light}buckets: 64\n`, { line: 3, key: 'buckets', message: /"buckets" is a key of farm modules/ });
  expectProblem(`${farm}bucket: 64\n`, { line: 4, key: 'bucket', message: /unknown key "bucket"; did you mean "buckets"\?/ });
  expectProblem(`${farm}interface: "a/b"\n`, { line: 4, key: 'interface', message: /network interface name/ });
});
