// croft farm map|who: the pure computation (farmMap, farmWho), the table and JSON formats, the
// member set taken from the daemon's status (a fake API on a unix socket), and the exit codes.
import { test, afterAll } from 'vitest';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { assignBuckets } from '../../farm/assign.js';
import { bucketOf } from '../../farm/hash-input.js';
import { checkSources, loadConfig } from '../../src/config/index.js';
import type { Config } from '../../src/config/index.js';
import { farmMap, farmWho, formatFarmMap, formatFarmWho, upNodesOf } from '../../top/cli/farm.js';
import type { FarmMapView, FarmWhoView } from '../../top/cli/farm.js';
import { main } from '../../top/cli/main.js';
import type { ClusterStatus } from '../../top/daemon/daemon.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-farm-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const socketPath = path.join(tmp, 'api.sock');

const clusterText = [
  'name: t',
  'key: "0123456789abcdef0123456789abcdef"',
  'api:',
  `  socket: ${socketPath}`,
  '  port: 1', // nothing listens there: the CLI must use the socket
  'nodes:',
  '  n1: { addresses: [10.77.0.1] }',
  '  n2: { addresses: [10.77.0.2], weight: 2 }',
  '  n3: { addresses: [10.77.0.3] }',
  '',
].join('\n');
const webText = 'kind: farm\nvip: 10.77.0.100\nbuckets: 256\n';
const apiText = 'kind: farm\nvip: 10.77.0.101\nnodes: [n1, n2]\nbuckets: 16\nbalance: source-ip-port\nseed: 42\nweights: { n2: 0 }\n';
const netText = 'kind: farm\nvip: [10.77.0.102, "fd00:77::102"]\nbalance: network\nbuckets: 64\n';
const cloudText = 'kind: farm\nvip: none\n';
const lightText = 'kind: light\n';

const dir = path.join(tmp, 'config');
for (const [rel, text] of Object.entries({
  'cluster.yaml': clusterText,
  'modules/web.yaml': webText,
  'modules/api.yaml': apiText,
  'modules/net.yaml': netText,
  'modules/cloud.yaml': cloudText,
  'modules/plain.yaml': lightText,
})) {
  fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
  fs.writeFileSync(path.join(dir, rel), text, { mode: rel === 'cluster.yaml' ? 0o600 : 0o644 }); // the key is inline
}
const config: Config = loadConfig(dir);

async function cli(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await main(argv, { log: (s) => stdout.push(s), error: (s) => stderr.push(s) });
  return { code, stdout: stdout.join('\n'), stderr: stderr.join('\n') };
}

test('farmMap: members are the UP nodes of the module with their weights; the map is assignBuckets', () => {
  const v = farmMap(config, 'web', ['n3', 'n1', 'n2', 'stranger']);
  assert.deepEqual(v.members, [{ name: 'n1', weight: 1 }, { name: 'n2', weight: 2 }, { name: 'n3', weight: 1 }]);
  assert.deepEqual(v.map, assignBuckets(256, v.members));
  assert.deepEqual(v.load, [
    { node: 'n1', weight: 1, buckets: 54, percent: 21.1 },
    { node: 'n2', weight: 2, buckets: 124, percent: 48.4 },
    { node: 'n3', weight: 1, buckets: 78, percent: 30.5 },
  ]);
  assert.equal(v.unowned, 0);
  assert.equal(v.balance, 'source-ip');
  assert.equal(v.seed, config.modules.find((m) => m.name === 'web')?.farm?.seed);
  // The ranges cover exactly each node's buckets.
  for (const n of v.members) {
    const fromRanges = (v.ranges[n.name] ?? []).flatMap(([a, b]) => Array.from({ length: b - a + 1 }, (_, i) => a + i));
    assert.deepEqual(fromRanges, v.map.flatMap((o, b) => (o === n.name ? [b] : [])));
  }
  // One node down: its buckets go to the others.
  const two = farmMap(config, 'web', ['n1', 'n3']);
  assert.deepEqual(two.members.map((m) => m.name), ['n1', 'n3']);
  assert.equal(two.load.reduce((s, l) => s + l.buckets, 0), 256);
});

test('farmMap: weight 0 and no member leave buckets unowned, and say so', () => {
  const v = farmMap(config, 'api', ['n2']);
  assert.deepEqual(v.members, [{ name: 'n2', weight: 0 }]);
  assert.equal(v.unowned, 16);
  const text = formatFarmMap(v);
  assert.match(text, /^\(none\)\s+-\s+16\s+100\.0%$/m);
  assert.match(text, /16 buckets have no owner: their clients get no answer/);
  assert.equal(farmMap(config, 'web', []).unowned, 256);
});

test('a module with an IPv4 and an IPv6 VIP: both in the map, one bucket map for clients of both families', () => {
  const v = farmMap(config, 'net', ['n1', 'n2', 'n3']);
  assert.deepEqual([v.vip, v.vips], ['10.77.0.102', ['10.77.0.102', 'fd00:77::102']]);
  assert.match(formatFarmMap(v).split('\n')[0]!, /^farm net: vip 10\.77\.0\.102 fd00:77::102, balance network, 64 buckets/);
  // An IPv6 client: the ip6 expression, its /64 hashed (the network balance), its bucket's owner.
  const who = farmWho(config, 'net', ['n1', 'n2', 'n3'], 'fd00:100::1:2');
  assert.match(who.hashExpr, /^jhash ip6 saddr & ffff:ffff:ffff:ffff:: mod 64 seed 0x[0-9a-f]{8}$/);
  assert.equal(who.bucket, farmWho(config, 'net', ['n1', 'n2', 'n3'], 'fd00:100::ffff:9').bucket, 'one /64, one bucket');
  assert.equal(who.node, v.map[who.bucket]);
});

test('the map table: header, load rows, and each node\'s bucket ranges', () => {
  const v: FarmMapView = farmMap(config, 'api', ['n1', 'n2']);
  assert.ok(!formatFarmMap(v).includes('buckets per node'), 'ranges only with --buckets');
  const lines = formatFarmMap(v, true).split('\n');
  assert.equal(lines[0], 'farm api: vip 10.77.0.101, balance source-ip-port, 16 buckets, seed 0x0000002a');
  assert.equal(lines[1], 'members (UP): n1 (weight 1), n2 (weight 0)');
  assert.equal(lines[3], 'NODE  WEIGHT  BUCKETS  SHARE');
  assert.equal(lines[4], 'n1    1       16       100.0%');
  assert.equal(lines[5], 'n2    0       0        0.0%');
  assert.ok(lines.includes('  n1  0-15'), lines.join('\n'));
  assert.ok(lines.includes('  n2  (none)'), lines.join('\n'));
  // Long range lists wrap under their node.
  const big = formatFarmMap(farmMap(config, 'web', ['n1', 'n2', 'n3']), true).split('\n');
  assert.ok(big.every((l) => l.length <= 100), 'lines of at most 100 characters');
  assert.ok(big.some((l) => /^ {6}\d/.test(l)), 'continuation lines are indented under the ranges');
});

test('farmWho: the bucket is the kernel hash of the client, the node its owner', () => {
  const web = config.modules.find((m) => m.name === 'web')?.farm;
  assert.ok(web && web.seed !== null);
  const v: FarmWhoView = farmWho(config, 'web', ['n1', 'n2', 'n3'], '192.0.2.77');
  assert.equal(v.bucket, bucketOf('source-ip', 256, web.seed, '192.0.2.77'));
  assert.equal(v.node, farmMap(config, 'web', ['n1', 'n2', 'n3']).map[v.bucket]);
  assert.equal(v.hashExpr, `jhash ip saddr mod 256 seed 0x${web.seed.toString(16).padStart(8, '0')}`);
  assert.equal(v.port, null);
  assert.equal(formatFarmWho(v).split('\n')[0], `192.0.2.77 -> bucket ${v.bucket} of 256 -> ${v.node}`);
  // source-ip-port needs and uses the port.
  assert.throws(() => farmWho(config, 'api', ['n1'], '192.0.2.77'), { code: 'CROFT_ERR_USAGE' });
  const p = farmWho(config, 'api', ['n1'], '192.0.2.77', 40000);
  assert.equal(p.bucket, bucketOf('source-ip-port', 16, 42, '192.0.2.77', 40000));
  assert.equal(p.node, 'n1');
  assert.match(formatFarmWho(p), /^192\.0\.2\.77 port 40000 -> bucket \d+ of 16 -> n1$/m);
  // network: every client of a /24 gets the same node; IPv6 clients too.
  const a = farmWho(config, 'net', ['n1', 'n2', 'n3'], '198.51.100.1');
  const b = farmWho(config, 'net', ['n1', 'n2', 'n3'], '198.51.100.254');
  assert.equal(a.bucket, b.bucket);
  assert.equal(a.hashExpr.startsWith('jhash ip saddr & 255.255.255.0 mod 64 seed 0x'), true);
  assert.equal(farmWho(config, 'net', ['n1'], '2001:db8::1').hashExpr.startsWith('jhash ip6 saddr & ffff:ffff:ffff:ffff:: mod 64'), true);
  // No member: no node.
  assert.match(formatFarmWho(farmWho(config, 'web', [], '192.0.2.77')), /-> no node/);
  assert.throws(() => farmWho(config, 'web', ['n1'], '192.0.2'), { code: 'CROFT_ERR_USAGE' });
  assert.throws(() => farmWho(config, 'cloud', ['n1'], '192.0.2.1'), /cloud mode/);
});

test('upNodesOf: UP and known only', () => {
  const status = {
    modules: {
      web: {
        kind: 'farm',
        nodes: {
          n1: { state: 'UP', known: true },
          n2: { state: 'UP', known: false },
          n3: { state: 'WAIT', known: true },
        },
      },
    },
  } as unknown as ClusterStatus;
  assert.deepEqual(upNodesOf(status, 'web'), ['n1']);
  assert.deepEqual(upNodesOf(status, 'other'), []);
});

test('croft farm map --json and who --json with --members (no daemon needed)', async () => {
  const map = await cli('farm', 'map', 'web', '--config', dir, '--members', 'n1,n2,n3', '--json');
  assert.equal(map.code, 0, map.stderr);
  const view = JSON.parse(map.stdout) as FarmMapView;
  assert.deepEqual(Object.keys(view), ['module', 'vip', 'vips', 'balance', 'buckets', 'seed', 'members', 'load', 'unowned', 'ranges', 'map']);
  assert.deepEqual(view, farmMap(config, 'web', ['n1', 'n2', 'n3']));
  const who = await cli('farm', 'who', 'api', '192.0.2.9', '--port', '1234', '--config', dir, '--members', 'n1', '--json');
  assert.equal(who.code, 0, who.stderr);
  assert.deepEqual(JSON.parse(who.stdout), farmWho(config, 'api', ['n1'], '192.0.2.9', 1234));
});

test('croft farm asks the local daemon for the UP nodes (fake API on the configured socket)', async () => {
  const status = {
    cluster: 't',
    node: 'n1',
    modules: {
      web: {
        kind: 'farm',
        nodes: {
          n1: { state: 'UP', sinceMs: 0, known: true },
          n2: { state: 'STOP', sinceMs: 0, known: false },
          n3: { state: 'UP', sinceMs: 0, known: true },
        },
      },
    },
  };
  const paths: string[] = [];
  const server = http.createServer((req, res) => {
    paths.push(req.url ?? '');
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(status));
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  try {
    const map = await cli('farm', 'map', 'web', '--config', dir);
    assert.equal(map.code, 0, map.stderr);
    assert.match(map.stdout, /^members \(UP\): n1 \(weight 1\), n3 \(weight 1\)$/m);
    assert.doesNotMatch(map.stdout, /^n2 /m);
    const who = await cli('farm', 'who', 'web', '192.0.2.77', '--config', dir, '--json');
    assert.equal(who.code, 0, who.stderr);
    const v = JSON.parse(who.stdout) as FarmWhoView;
    assert.deepEqual(v.members.map((m) => m.name), ['n1', 'n3']);
    assert.ok(v.node === 'n1' || v.node === 'n3');
    assert.deepEqual(paths, ['/api/v1/status', '/api/v1/status']);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(socketPath, { force: true });
  }
});

test('exit codes: 2 for usage, 1 for an unknown module or no daemon', async () => {
  assert.equal((await cli('farm')).code, 2);
  assert.equal((await cli('farm', 'list', 'web', '--config', dir)).code, 2);
  assert.equal((await cli('farm', 'who', 'web', '--config', dir, '--members', 'n1')).code, 2);
  assert.equal((await cli('farm', 'map', 'web', '--port', '80', '--config', dir, '--members', 'n1')).code, 2);
  assert.equal((await cli('farm', 'who', 'web', '10.0.0.1', '--port', 'http', '--config', dir, '--members', 'n1')).code, 2);
  assert.equal((await cli('farm', 'map', 'web', '--config', dir, '--members', 'n9')).code, 2);
  const light = await cli('farm', 'map', 'plain', '--config', dir, '--members', 'n1');
  assert.equal(light.code, 2);
  assert.match(light.stderr, /module "plain" is a light module/);
  const unknown = await cli('farm', 'map', 'nope', '--config', dir, '--members', 'n1');
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no module "nope".*farm modules: api, cloud, net, web/);
  // No daemon: the socket is gone and nothing listens on port 1.
  const down = await cli('farm', 'map', 'web', '--config', dir);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /CROFT_ERR_API_UNREACHABLE/);
});

test('the pure core needs no disk: a config from texts', () => {
  const result = checkSources('/etc/croft', { file: '/etc/croft/cluster.yaml', text: clusterText }, [
    { file: '/etc/croft/modules/web.yaml', text: webText },
  ], { stat: () => undefined, read: () => ({ error: 'ENOENT' }) });
  assert.ok(result.config, JSON.stringify(result.problems));
  assert.deepEqual(farmMap(result.config, 'web', ['n1', 'n2', 'n3']).map, farmMap(config, 'web', ['n1', 'n2', 'n3']).map);
});
