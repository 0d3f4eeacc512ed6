// Mirror module keys (kind: mirror): they convert into MirrorConfig with their defaults, and each
// mistake is reported at its file, line and key.
import { test, afterAll } from 'vitest';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, formatProblems, loadConfig } from '../../src/config/index.js';
import type { ConfigProblem, ModuleConfig } from '../../src/config/index.js';

const cluster = [
  'name: t',
  'key: "0123456789abcdef0123456789abcdef"',
  'heartbeat: { timeout_ms: 1500 }',
  'lans: [lan0, repl]',
  'nodes:',
  '  n1:',
  '    addresses: [10.77.0.1, 10.78.0.1]',
  '  n2:',
  '    addresses: [10.77.0.2, 10.78.0.2]',
  '  n3:',
  '    addresses: [10.77.0.3, 10.78.0.3]',
  '',
].join('\n');

const minimal = [
  'kind: mirror', //                    1
  'nodes: [n1, n2]', //                 2
  'vip: 10.77.0.100', //                3
  'dirs: [/srv/db]', //                 4
  '',
].join('\n');

const full = [
  'kind: mirror', //                                    1
  'nodes: [n1, n2]', //                                 2
  'vip: 10.77.0.100', //                                3
  'interface: eth1', //                                 4
  'dirs: [/srv/db, /srv/wal]', //                       5
  'ack: durable', //                                    6
  'ack_timeout_ms: 500', //                             7
  'port: 5000', //                                      8
  'lan: repl', //                                       9
  'zone_bytes: 65536', //                               10
  'witness:', //                                        11
  '  type: redis', //                                   12
  '  url: redis://10.77.0.250:6390', //                 13
  '  ttl_ms: 4000', //                                  14
  'prim_preference: n2', //                             15
  'peer_wait_ms: 1000', //                              16
  'scripts:', //                                        17
  '  start_prim: ./start_prim', //                      18
  '  stop_prim: ./stop_prim', //                        19
  '  timeout_ms: 5000', //                              20
  'checkers:', //                                       21
  '  - { type: tcp, name: db, host: 127.0.0.1, port: 5432 }', //                    22
  '  - { type: ping, name: gw, host: 10.77.0.254, scope: dependency, on_failure: wait }', // 23
  '  - { type: module, module: web, node: any }', //                                  24
  'mode: on-sync', //                                   25
  'xattrs: false', //                                   26
  '',
].join('\n');

const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

function writeDir(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-mirror-config-test-'));
  tmpDirs.push(dir);
  for (const [rel, text] of Object.entries({ 'cluster.yaml': cluster, ...files })) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text, { mode: rel === 'cluster.yaml' ? 0o600 : 0o644 }); // the key is inline
  }
  for (const s of ['start_prim', 'stop_prim']) {
    const f = path.join(dir, 'modules', s);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, '#!/bin/sh\n', { mode: 0o755 });
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

function expectProblem(text: string, want: { line: number; key: string; message: RegExp }): void {
  const dir = writeDir({ 'modules/db.yaml': text, 'modules/web.yaml': 'kind: light\n' });
  const problems = problemsOf(dir);
  const p = problems.find((q) => q.key === want.key && q.file === path.join(dir, 'modules/db.yaml'));
  assert.ok(p, `no problem at ${want.key}; got:\n${formatProblems(problems)}`);
  assert.equal(p.line, want.line, `line of ${want.key}: ${p.message}`);
  assert.match(p.message, want.message);
}

const edit = (text: string, from: string, to: string): string => {
  assert.ok(text.includes(from), `fixture has no ${JSON.stringify(from)}`);
  return text.replace(from, to);
};

test('every mirror key converts into MirrorConfig', () => {
  const dir = writeDir({ 'modules/db.yaml': full, 'modules/web.yaml': 'kind: light\n' });
  const db = moduleOf(dir, 'db');
  assert.equal(db.kind, 'mirror');
  assert.deepEqual(db.nodes, ['n1', 'n2']);
  assert.deepEqual(db.mirror, {
    vip: '10.77.0.100',
    vips: ['10.77.0.100'],
    interface: 'eth1',
    dirs: ['/srv/db', '/srv/wal'],
    ack: 'durable',
    mode: 'on-sync',
    xattrs: false,
    ackTimeoutMs: 500,
    port: 5000,
    lan: 1,
    zoneBytes: 65536,
    witness: { type: 'redis', host: '10.77.0.250', port: 6390, key: 'croft:t:db', ttlMs: 4000 },
    primPreference: 'n2',
    peerWaitMs: 1000,
    checkerScopes: { db: 'app', gw: 'dependency', 'module-2': 'dependency' },
    excludes: [[], []],
    verifyEveryMs: null,
    resyncMaxBytesPerS: null,
  });
  assert.equal(db.scripts.startPrim, path.join(dir, 'modules', 'start_prim'));
  assert.equal(db.scripts.stopPrim, path.join(dir, 'modules', 'stop_prim'));
  assert.equal(db.scripts.timeoutMs, 5000);
  assert.equal(moduleOf(dir, 'web').mirror, undefined);
});

test('defaults: received, on-sync, 2000 ms, port 4810, first LAN, 256 KiB zones, no witness, peer wait 2 × heartbeat timeout', () => {
  const db = moduleOf(writeDir({ 'modules/db.yaml': minimal }), 'db');
  assert.deepEqual(db.mirror, {
    vip: '10.77.0.100',
    vips: ['10.77.0.100'],
    interface: null,
    dirs: ['/srv/db'],
    ack: 'received',
    mode: 'on-sync',
    xattrs: true,
    ackTimeoutMs: 2000,
    port: 4810,
    lan: 0,
    zoneBytes: 262144,
    witness: { type: 'none' },
    primPreference: null,
    peerWaitMs: 3000,
    checkerScopes: {},
    excludes: [[]],
    verifyEveryMs: null,
    resyncMaxBytesPerS: null,
  });
  const none = moduleOf(writeDir({ 'modules/db.yaml': edit(minimal, 'vip: 10.77.0.100', 'vip: none') }), 'db');
  assert.equal(none.mirror?.vip, null);
  assert.deepEqual(none.mirror?.vips, []);
  const ping = moduleOf(writeDir({ 'modules/db.yaml': `${minimal}witness: { type: ping, addresses: [10.77.0.254] }\n` }), 'db');
  assert.deepEqual(ping.mirror?.witness, { type: 'ping', addresses: ['10.77.0.254'], validityMs: 3000 });
});

test('vip: one address, IPv4 or IPv6, or several of both (the primary holds them all)', () => {
  const six = moduleOf(writeDir({ 'modules/db.yaml': edit(minimal, 'vip: 10.77.0.100', 'vip: "fd00:77::100"') }), 'db');
  assert.deepEqual([six.mirror?.vip, six.mirror?.vips], ['fd00:77::100', ['fd00:77::100']]);
  const both = moduleOf(writeDir({ 'modules/db.yaml': edit(minimal, 'vip: 10.77.0.100', 'vip: [10.77.0.100, "FD00:77::0100"]') }), 'db');
  assert.deepEqual([both.mirror?.vip, both.mirror?.vips], ['10.77.0.100', ['10.77.0.100', 'fd00:77::100']]);
});

test('each bad mirror key is reported at its file, line and key', () => {
  expectProblem(edit(full, 'nodes: [n1, n2]', 'nodes: [n1, n2, n3]'), { line: 2, key: 'nodes', message: /exactly two nodes; got 3/ });
  expectProblem(edit(full, 'nodes: [n1, n2]\n', ''), { line: 1, key: 'nodes', message: /exactly two nodes.*nodes: \[a, b\]/ });
  expectProblem(edit(full, 'vip: 10.77.0.100', 'vip: 10.77.0.2'), { line: 3, key: 'vip', message: /address of n2 on lan0/ });
  expectProblem(edit(full, 'vip: 10.77.0.100', 'vip: here'), { line: 3, key: 'vip', message: /IPv4 or IPv6 address, a list of them \(IPv4 and IPv6 mixed\), or 'none'/ });
  expectProblem(edit(full, 'vip: 10.77.0.100', 'vip: [10.77.0.100, 10.77.0.2]'), { line: 3, key: 'vip[1]', message: /address of n2 on lan0/ });
  expectProblem(edit(full, 'vip: 10.77.0.100', 'vip: [10.77.0.100, "fd00::1", "fd00:0::1"]'), { line: 3, key: 'vip[2]', message: /expected each VIP once/ });
  expectProblem(edit(full, 'vip: 10.77.0.100', 'vip: none'), { line: 4, key: 'interface', message: /no effect without a VIP/ });
  expectProblem(edit(full, 'dirs: [/srv/db, /srv/wal]', 'dirs: [srv/db]'), { line: 5, key: 'dirs[0]', message: /absolute directory path/ });
  expectProblem(edit(full, 'dirs: [/srv/db, /srv/wal]', 'dirs: [/srv/db, /srv/db/wal]'), { line: 5, key: 'dirs[1]', message: /inside dirs\[0\]/ });
  expectProblem(edit(full, 'dirs: [/srv/db, /srv/wal]', 'dirs: [/srv/db/]'), { line: 5, key: 'dirs[0]', message: /normalized path \(\/srv\/db\)/ });
  expectProblem(edit(full, 'dirs: [/srv/db, /srv/wal]', 'dirs: []'), { line: 5, key: 'dirs', message: /at least 1/ });
  expectProblem(edit(full, 'ack: durable', 'ack: fsync'), { line: 6, key: 'ack', message: /received, durable/ });
  expectProblem(edit(full, 'mode: on-sync', 'mode: on-close'), { line: 25, key: 'mode', message: /every-change, on-sync/ });
  expectProblem(edit(full, 'xattrs: false', 'xattrs: off-please'), { line: 26, key: 'xattrs', message: /true or false/ });
  expectProblem(edit(full, 'ack_timeout_ms: 500', 'ack_timeout_ms: 1'), { line: 7, key: 'ack_timeout_ms', message: /milliseconds/ });
  expectProblem(edit(full, 'port: 5000', 'port: 65535'), { line: 8, key: 'port', message: /above 65535/ });
  expectProblem(edit(full, 'lan: repl', 'lan: backup'), { line: 9, key: 'lan', message: /unknown LAN "backup".*lan0, repl/ });
  expectProblem(edit(full, 'zone_bytes: 65536', 'zone_bytes: 100000'), { line: 10, key: 'zone_bytes', message: /power of two/ });
  expectProblem(edit(full, '  type: redis', '  type: zookeeper'), { line: 12, key: 'witness.type', message: /none, ping, redis/ });
  expectProblem(edit(full, '  url: redis://10.77.0.250:6390', '  url: http://10.77.0.250'), { line: 13, key: 'witness.url', message: /redis:\/\/host:port/ });
  expectProblem(edit(full, '  url: redis://10.77.0.250:6390\n', ''), { line: 12, key: 'witness.type', message: /redis witness needs url/ });
  expectProblem(edit(full, '  url: redis://10.77.0.250:6390', '  addresses: [10.77.0.254]\n  url: redis://h:1'), { line: 13, key: 'witness.addresses', message: /no meaning for a redis witness/ });
  expectProblem(edit(full, 'prim_preference: n2', 'prim_preference: n3'), { line: 15, key: 'prim_preference', message: /not a node of this module/ });
  expectProblem(edit(full, 'peer_wait_ms: 1000', 'peer_wait_ms: soon'), { line: 16, key: 'peer_wait_ms', message: /integer/ });
  expectProblem(edit(full, '  start_prim: ./start_prim', '  start_prim: ./missing'), { line: 18, key: 'scripts.start_prim', message: /script not found/ });
  expectProblem(edit(full, '  stop_prim: ./stop_prim', '  stop_both: ./stop_prim'), { line: 19, key: 'scripts.stop_both', message: /unknown key|not allowed|expected/ });
  expectProblem(edit(full, 'name: db, host', 'name: db, scope: app, on_failure: wait, host'), { line: 22, key: 'checkers[0].on_failure', message: /needs scope: dependency/ });
  expectProblem(edit(full, 'scope: dependency', 'scope: everywhere'), { line: 23, key: 'checkers[1].scope', message: /app, dependency/ });
});

const ops = [
  'kind: mirror', //                                    1
  'nodes: [n1, n2]', //                                 2
  'vip: 10.77.0.100', //                                3
  'dirs:', //                                           4
  '  - /srv/wal', //                                    5
  '  - path: /srv/db', //                               6
  '    exclude: [tmp, cache/thumbs, /srv/db/log]', //   7
  'verify_every: 6h', //                                8
  'resync_max_bytes_per_s: 20000000', //                9
  '',
].join('\n');

test('verify_every, resync_max_bytes_per_s and excluded paths in dirs convert (a dir is a path or { path, exclude })', () => {
  const db = moduleOf(writeDir({ 'modules/db.yaml': ops }), 'db');
  assert.deepEqual(db.mirror?.dirs, ['/srv/wal', '/srv/db']);
  assert.deepEqual(db.mirror?.excludes, [[], ['tmp', 'cache/thumbs', 'log']]);
  assert.equal(db.mirror?.verifyEveryMs, 6 * 3_600_000);
  assert.equal(db.mirror?.resyncMaxBytesPerS, 20_000_000);
  for (const [d, ms] of [['90s', 90_000], ['30m', 1_800_000], ['2d', 172_800_000]] as const) {
    assert.equal(moduleOf(writeDir({ 'modules/db.yaml': edit(ops, 'verify_every: 6h', `verify_every: ${d}`) }), 'db').mirror?.verifyEveryMs, ms);
  }
});

test('a bad verify_every, cap or excluded path is reported at its file, line and key; a path escaping the dir is refused', () => {
  expectProblem(edit(ops, 'exclude: [tmp, cache/thumbs, /srv/db/log]', 'exclude: [tmp, ../etc]'), { line: 7, key: 'dirs[1].exclude[1]', message: /escapes \/srv\/db/ });
  expectProblem(edit(ops, 'exclude: [tmp, cache/thumbs, /srv/db/log]', 'exclude: [a/../../x]'), { line: 7, key: 'dirs[1].exclude[0]', message: /escapes/ });
  expectProblem(edit(ops, 'exclude: [tmp, cache/thumbs, /srv/db/log]', 'exclude: [/etc/passwd]'), { line: 7, key: 'dirs[1].exclude[0]', message: /not inside \/srv\/db/ });
  expectProblem(edit(ops, 'exclude: [tmp, cache/thumbs, /srv/db/log]', 'exclude: [/srv/dbx]'), { line: 7, key: 'dirs[1].exclude[0]', message: /not inside/ });
  expectProblem(edit(ops, 'exclude: [tmp, cache/thumbs, /srv/db/log]', 'exclude: [.]'), { line: 7, key: 'dirs[1].exclude[0]', message: /the directory itself/ });
  expectProblem(edit(ops, 'exclude: [tmp, cache/thumbs, /srv/db/log]', 'exclude: [tmp/]'), { line: 7, key: 'dirs[1].exclude[0]', message: /normalized path \(tmp\)/ });
  expectProblem(edit(ops, 'exclude: [tmp, cache/thumbs, /srv/db/log]', 'exclude: ["*.log"]'), { line: 7, key: 'dirs[1].exclude[0]', message: /patterns are not supported/ });
  expectProblem(edit(ops, 'exclude: [tmp, cache/thumbs, /srv/db/log]', 'exclude: []'), { line: 7, key: 'dirs[1].exclude', message: /at least 1/ });
  expectProblem(edit(ops, '    exclude:', '    skip:'), { line: 7, key: 'dirs[1].skip', message: /unknown key "skip"/ });
  expectProblem(edit(ops, '  - path: /srv/db', '  - path: srv/db'), { line: 6, key: 'dirs[1].path', message: /absolute directory path/ });
  expectProblem(edit(ops, '  - path: /srv/db', '  - path: /srv/wal/db'), { line: 6, key: 'dirs[1].path', message: /inside dirs\[0\]/ });
  expectProblem(edit(ops, 'verify_every: 6h', 'verify_every: 6 hours'), { line: 8, key: 'verify_every', message: /a duration/ });
  expectProblem(edit(ops, 'verify_every: 6h', 'verify_every: 2s'), { line: 8, key: 'verify_every', message: /out of range; expected from 5s to 90d/ });
  expectProblem(edit(ops, 'verify_every: 6h', 'verify_every: 91d'), { line: 8, key: 'verify_every', message: /out of range/ });
  expectProblem(edit(ops, 'resync_max_bytes_per_s: 20000000', 'resync_max_bytes_per_s: 1000'), { line: 9, key: 'resync_max_bytes_per_s', message: /from 65536/ });
  expectProblem(edit(ops, 'resync_max_bytes_per_s: 20000000', 'resync_max_bytes_per_s: 20MB'), { line: 9, key: 'resync_max_bytes_per_s', message: /bytes per second/ });
});
