// The config loader: the documented examples load, and each kind of mistake is reported at the
// right file, line and key, with a message that says what was expected.
import { test, afterAll } from 'vitest';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, checkSources, formatProblems, loadConfig } from '../../src/config/index.js';
import type { ConfigProblem, FileAccess } from '../../src/config/index.js';
import { fixtures, repoRoot } from '../helpers/paths.js';
import { privateConfigCopy } from '../helpers/config-copy.js';

// A valid config; each test changes one thing. Line numbers are written next to the lines that
// tests point at.
const cluster = [
  'name: t', //                                   1
  'key: "0123456789abcdef0123456789abcdef"', //   2
  'heartbeat:', //                                3
  '  interval_ms: 200', //                        4
  '  timeout_ms: 2000', //                        5
  'lans: [lan0, lan1]', //                        6
  'nodes:', //                                    7
  '  n1:', //                                     8
  '    addresses: [10.77.0.1, 10.78.0.1]', //     9
  '  n2:', //                                     10
  '    addresses: [10.77.0.2, 10.78.0.2]', //     11
  '',
].join('\n');

const web = [
  'kind: light', //                  1
  'nodes: [n1, n2]', //              2
  'scripts:', //                     3
  '  start_both: ./start_both', //   4
  '  stop_both: ./stop_both', //     5
  'checkers:', //                    6
  '  - name: port', //               7
  '    type: tcp', //                8
  '    host: 127.0.0.1', //          9
  '    port: 80', //                 10
  '    interval_ms: 1000', //        11
  '    on_failure: restart', //      12
  '',
].join('\n');

const db = [
  'kind: light', //         1
  'checkers:', //           2
  '  - type: module', //    3
  '    module: web', //     4
  '',
].join('\n');

const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

/** Writes a config dir: the base files with `changes` applied (a value of null deletes a file). */
function writeDir(changes: Record<string, string | null> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-config-test-'));
  tmpDirs.push(dir);
  const files: Record<string, string | null> = {
    'cluster.yaml': cluster,
    'modules/web.yaml': web,
    'modules/db.yaml': db,
    ...changes,
  };
  for (const [rel, text] of Object.entries(files)) {
    if (text === null) continue;
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    // The key (inline or in secret*) must be private, as croft requires (config/perms.ts).
    fs.writeFileSync(path.join(dir, rel), text, { mode: rel === 'cluster.yaml' || rel.startsWith('secret') ? 0o600 : 0o644 });
  }
  for (const script of ['start_both', 'stop_both']) {
    fs.writeFileSync(path.join(dir, 'modules', script), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  }
  return dir;
}

function edit(text: string, from: string, to: string): string {
  assert.ok(text.includes(from), `fixture has no ${JSON.stringify(from)}`);
  return text.replace(from, to);
}

function problemsOf(dir: string): ConfigProblem[] {
  try {
    loadConfig(dir);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'CROFT_ERR_CONFIG');
    // The message lists every problem as file:line:column: key: message.
    for (const p of err.problems) {
      const head = p.key === '' ? `${p.file}:${p.line}:${p.column}: ` : `${p.file}:${p.line}:${p.column}: ${p.key}: `;
      assert.ok(err.message.includes(head + p.message), `message lists ${head}`);
    }
    return err.problems;
  }
  assert.fail('loadConfig accepted an invalid config');
}

/** Asserts there is a problem at `key` in `file` (relative), at `line` (and `column`), whose message matches. */
function expectProblem(
  dir: string,
  want: { file: string; line: number; column?: number; key: string; message: RegExp | string },
): ConfigProblem {
  const problems = problemsOf(dir);
  const p = problems.find((q) => q.key === want.key && q.file === path.join(dir, want.file));
  assert.ok(p, `no problem at ${want.file} ${want.key}; got:\n${formatProblems(problems)}`);
  assert.equal(p.line, want.line, `line of ${want.key}`);
  if (want.column !== undefined) assert.equal(p.column, want.column, `column of ${want.key}`);
  if (typeof want.message === 'string') assert.equal(p.message, want.message);
  else assert.match(p.message, want.message);
  return p;
}

test('the documented examples dir loads', () => {
  // A copy with the modes croft requires (git stores 0644: an inline key must be 0600).
  const examples = privateConfigCopy(path.join(repoRoot, 'examples'));
  tmpDirs.push(examples);
  const config = loadConfig(examples);
  assert.equal(config.cluster.name, 'demo');
  assert.deepEqual(config.cluster.lans, ['lan0', 'lan1']);
  assert.deepEqual(config.cluster.nodes.map((n) => n.name), ['n1', 'n2', 'n3']);
  assert.deepEqual(config.modules.map((m) => m.name).sort(), ['db', 'web']);
  const db = config.modules.find((m) => m.name === 'db');
  assert.equal(db?.kind, 'mirror');
  assert.deepEqual(db?.mirror?.dirs, ['/var/lib/croft-apps/db']);
  assert.equal(db?.mirror?.witness.type, 'redis');
  const webModule = config.modules.find((m) => m.name === 'web');
  assert.ok(webModule);
  assert.equal(webModule.scripts.startBoth, path.join(examples, 'modules/web/start_both'));
  assert.deepEqual(
    webModule.checkers.map((c) => c.type),
    ['tcp', 'http', 'ping', 'interface', 'script'],
  );
});

test('every key in the examples carries a comment (on its line or just above)', () => {
  for (const rel of ['examples/cluster.yaml', 'examples/modules/web.yaml', 'examples/modules/db.yaml']) {
    const lines = fs.readFileSync(path.join(repoRoot, rel), 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (!/^\s*(- )?[a-z_]+:/.test(line)) return;
      const above = lines[i - 1] ?? '';
      const documented = line.includes('#') || /^\s*#/.test(above) || /^\s*(- )?[a-z_]+:\s*$/.test(line);
      assert.ok(documented, `${rel}:${i + 1} has no comment: ${line}`);
    });
  }
});

test('a valid config converts to typed config with defaults', () => {
  const config = loadConfig(writeDir());
  assert.equal(config.cluster.key.toString(), '0123456789abcdef0123456789abcdef');
  assert.deepEqual(config.cluster.heartbeat, { port: 4800, intervalMs: 200, timeoutMs: 2000 });
  assert.deepEqual(config.cluster.api, { host: '127.0.0.1', port: 9450, socket: '/run/croft/api.sock', tokens: [], users: [] });
  assert.equal(config.cluster.stateDir, '/var/lib/croft');
  assert.deepEqual(config.cluster.nodes[1], { name: 'n2', addresses: ['10.77.0.2', '10.78.0.2'], weight: 1 });
  const [dbModule, webModule] = config.modules; // sorted by file name
  assert.ok(dbModule && webModule);
  assert.equal(dbModule.name, 'db');
  assert.deepEqual(dbModule.nodes, ['n1', 'n2'], 'default: every node');
  assert.deepEqual(dbModule.checkers[0], {
    name: 'module-0', type: 'module', module: 'web', node: 'local', states: ['UP'],
    intervalMs: 1000, timeoutMs: 1000, rise: 1, fall: 3, onFailure: 'wait',
  });
  assert.deepEqual(webModule.restart, { maxloop: 3, windowMs: 3_600_000 });
  assert.deepEqual(webModule.scripts, {
    startBoth: path.join(config.dir, 'modules/start_both'),
    stopBoth: path.join(config.dir, 'modules/stop_both'),
    timeoutMs: 30_000,
    killGraceMs: 2_000,
  });
  assert.deepEqual(webModule.checkers[0], {
    name: 'port', type: 'tcp', host: '127.0.0.1', port: 80,
    intervalMs: 1000, timeoutMs: 1000, rise: 2, fall: 3, onFailure: 'restart',
  });
});

test('missing required key: cluster name (start of file) and node addresses (at the node)', () => {
  expectProblem(writeDir({ 'cluster.yaml': edit(cluster, 'name: t\n', '# no name\n') }), {
    file: 'cluster.yaml', line: 1, column: 1, key: 'name',
    message: /^missing required key: expected a cluster name of lowercase letters/,
  });
  expectProblem(writeDir({ 'cluster.yaml': edit(cluster, '    addresses: [10.77.0.2, 10.78.0.2]', '    weight: 2') }), {
    file: 'cluster.yaml', line: 10, column: 3, key: 'nodes.n2.addresses',
    message: 'missing required key: expected a list of IP addresses, one per LAN',
  });
});

test('wrong type: text where milliseconds are expected', () => {
  expectProblem(writeDir({ 'cluster.yaml': edit(cluster, 'interval_ms: 200', 'interval_ms: fast') }), {
    file: 'cluster.yaml', line: 4, column: 16, key: 'heartbeat.interval_ms',
    message: 'expected an integer from 10 to 60000 (milliseconds), got "fast"',
  });
});

test('out of range: a port above 65535', () => {
  expectProblem(writeDir({ 'modules/web.yaml': edit(web, 'port: 80', 'port: 70000') }), {
    file: 'modules/web.yaml', line: 10, column: 11, key: 'checkers[0].port',
    message: 'expected a port number from 1 to 65535, got 70000',
  });
});

test('unknown key, with a suggestion when close, the allowed keys otherwise', () => {
  expectProblem(writeDir({ 'modules/web.yaml': edit(web, 'interval_ms: 1000', 'intervall_ms: 1000') }), {
    file: 'modules/web.yaml', line: 11, column: 5, key: 'checkers[0].intervall_ms',
    message: 'unknown key "intervall_ms"; did you mean "interval_ms"?',
  });
  expectProblem(writeDir({ 'cluster.yaml': `${cluster}colour: blue\n` }), {
    file: 'cluster.yaml', line: 12, column: 1, key: 'colour',
    message: /^unknown key "colour"; allowed keys: name, key, key_file, heartbeat, lans, nodes, api, state_dir, notify$/,
  });
});

test('both key and key_file', () => {
  fs.writeFileSync(path.join(os.tmpdir(), 'unused'), '');
  const dir = writeDir({ 'cluster.yaml': edit(cluster, 'heartbeat:', 'key_file: secret.txt\nheartbeat:'), 'secret.txt': 'x'.repeat(32) });
  expectProblem(dir, { file: 'cluster.yaml', line: 3, column: 1, key: 'key_file', message: 'give either key or key_file, not both' });
});

test('key_file: read relative to the dir and trimmed; too short is an error', () => {
  const noKey = edit(cluster, 'key: "0123456789abcdef0123456789abcdef"', 'key_file: secret.txt');
  const good = loadConfig(writeDir({ 'cluster.yaml': noKey, 'secret.txt': '  abcdefghijklmnopqrstuvwxyz0123456789\n' }));
  assert.equal(good.cluster.key.toString(), 'abcdefghijklmnopqrstuvwxyz0123456789');
  expectProblem(writeDir({ 'cluster.yaml': noKey, 'secret.txt': 'short\n' }), {
    file: 'cluster.yaml', line: 2, column: 11, key: 'key_file', message: /holds 5 bytes; expected at least 32/,
  });
  expectProblem(writeDir({ 'cluster.yaml': noKey }), {
    file: 'cluster.yaml', line: 2, key: 'key_file', message: /cannot read the key file .*secret\.txt: ENOENT/,
  });
});

test('bad IP address', () => {
  expectProblem(writeDir({ 'cluster.yaml': edit(cluster, '[10.77.0.2,', '[10.77.0.300,') }), {
    file: 'cluster.yaml', line: 11, column: 17, key: 'nodes.n2.addresses[0]',
    message: 'expected an IP address (IPv4 or IPv6), got "10.77.0.300"',
  });
});

test('wrong number of addresses for the LANs', () => {
  expectProblem(writeDir({ 'cluster.yaml': edit(cluster, '[10.77.0.2, 10.78.0.2]', '[10.77.0.2]') }), {
    file: 'cluster.yaml', line: 11, column: 16, key: 'nodes.n2.addresses',
    message: 'expected 2 addresses (one per LAN: lan0, lan1), got 1',
  });
});

test('an address used twice', () => {
  expectProblem(writeDir({ 'cluster.yaml': edit(cluster, '[10.77.0.2, 10.78.0.2]', '[10.77.0.2, 10.78.0.1]') }), {
    file: 'cluster.yaml', line: 11, column: 28, key: 'nodes.n2.addresses[1]',
    message: 'address 10.78.0.1 is already used by nodes.n1.addresses[1]; expected each address once',
  });
});

test('a module names a node that cluster.yaml does not have', () => {
  expectProblem(writeDir({ 'modules/web.yaml': edit(web, 'nodes: [n1, n2]', 'nodes: [n1, n3]') }), {
    file: 'modules/web.yaml', line: 2, column: 13, key: 'nodes[1]',
    message: 'unknown node "n3"; expected one of the nodes of cluster.yaml: n1, n2 (did you mean "n1"?)',
  });
});

test('a module checker names a module that does not exist', () => {
  expectProblem(writeDir({ 'modules/db.yaml': edit(db, 'module: web', 'module: wbe') }), {
    file: 'modules/db.yaml', line: 4, column: 13, key: 'checkers[0].module',
    message: /^unknown module "wbe"; expected one of the modules of this config directory: web \(did you mean "web"\?\)$/,
  });
});

test('heartbeat timeout shorter than two intervals', () => {
  expectProblem(writeDir({ 'cluster.yaml': edit(cluster, 'timeout_ms: 2000', 'timeout_ms: 300') }), {
    file: 'cluster.yaml', line: 5, column: 15, key: 'heartbeat.timeout_ms',
    message: /^expected timeout_ms >= 2 × interval_ms \(400 ms\), got timeout_ms 300 ms with interval_ms 200 ms/,
  });
  // Only interval_ms given: the default timeout (2000) is too short for it, so interval_ms is at fault.
  expectProblem(writeDir({ 'cluster.yaml': edit(edit(cluster, '  timeout_ms: 2000\n', ''), 'interval_ms: 200', 'interval_ms: 1500') }), {
    file: 'cluster.yaml', line: 4, key: 'heartbeat.interval_ms', message: /expected timeout_ms >= 2 × interval_ms \(3000 ms\)/,
  });
});

test('a script that is missing or not executable', () => {
  const dir = writeDir({ 'modules/web.yaml': edit(web, './start_both', './nope') });
  fs.chmodSync(path.join(dir, 'modules', 'stop_both'), 0o644);
  expectProblem(dir, {
    file: 'modules/web.yaml', line: 4, column: 15, key: 'scripts.start_both',
    message: `script not found: ${path.join(dir, 'modules', 'nope')}`,
  });
  expectProblem(dir, {
    file: 'modules/web.yaml', line: 5, column: 14, key: 'scripts.stop_both',
    message: `script is not executable: ${path.join(dir, 'modules', 'stop_both')} (chmod +x it)`,
  });
});

test('YAML syntax error gives file and line', () => {
  const p = expectProblem(writeDir({ 'modules/web.yaml': edit(web, 'nodes: [n1, n2]', 'nodes: n1: n2') }), {
    file: 'modules/web.yaml', line: 2, column: 8, key: '', message: /^YAML syntax error: /,
  });
  assert.match(p.message, /compact mappings/);
  expectProblem(writeDir({ 'cluster.yaml': `${cluster}name: again\n` }), {
    file: 'cluster.yaml', line: 12, key: '', message: 'YAML syntax error: Map keys must be unique',
  });
});

test('two checkers with the same name in a module', () => {
  const twice = `${web}  - { name: port, type: ping, host: 10.0.0.1 }\n`;
  expectProblem(writeDir({ 'modules/web.yaml': twice }), {
    file: 'modules/web.yaml', line: 13, column: 13, key: 'checkers[1].name',
    message: 'checker name "port" is already used by checkers[0]; expected unique checker names within a module',
  });
});

test('bad enum value: on_failure: reboot', () => {
  expectProblem(writeDir({ 'modules/web.yaml': edit(web, 'on_failure: restart', 'on_failure: reboot') }), {
    file: 'modules/web.yaml', line: 12, column: 17, key: 'checkers[0].on_failure',
    message: 'expected one of restart, stop, wait, got "reboot"',
  });
  expectProblem(writeDir({ 'modules/web.yaml': edit(web, 'kind: light', 'kind: fram') }), {
    file: 'modules/web.yaml', line: 1, column: 7, key: 'kind',
    message: 'expected one of light, farm, mirror, got "fram"; did you mean "farm"?',
  });
});

test('checker with a missing type-specific key points at the checker', () => {
  expectProblem(writeDir({ 'modules/web.yaml': edit(web, '    port: 80\n', '') }), {
    file: 'modules/web.yaml', line: 7, column: 5, key: 'checkers[0].port',
    message: 'missing required key: expected a port number from 1 to 65535',
  });
});

test('invalid node name and reserved node names', () => {
  expectProblem(writeDir({ 'cluster.yaml': edit(cluster, '  n2:', '  N2:') }), {
    file: 'cluster.yaml', line: 10, column: 3, key: 'nodes.N2', message: /^invalid name "N2": expected a node name/,
  });
  expectProblem(writeDir({ 'cluster.yaml': edit(cluster, '  n2:', '  local:') }), {
    file: 'cluster.yaml', line: 10, column: 3, key: 'nodes.local', message: /cannot be a node name/,
  });
});

test('module dependency on itself, a cycle, and an impossible state', () => {
  const cyclic = `${web}  - { type: module, module: db }\n`;
  expectProblem(writeDir({ 'modules/web.yaml': cyclic }), {
    file: 'modules/db.yaml', line: 4, key: 'checkers[0].module', message: /^dependency cycle: db -> web -> db/,
  });
  expectProblem(writeDir({ 'modules/db.yaml': edit(db, 'module: web', 'module: db') }), {
    file: 'modules/db.yaml', line: 4, key: 'checkers[0].module', message: 'a module cannot depend on itself ("db")',
  });
  expectProblem(writeDir({ 'modules/db.yaml': `${db}    states: [PRIM]\n` }), {
    file: 'modules/db.yaml', line: 5, column: 14, key: 'checkers[0].states[0]',
    message: 'module "web" is a light module and is never PRIM; expected one of STOP, WAIT, UP',
  });
});

test('every problem of every file is collected, in file and line order', () => {
  const dir = writeDir({
    'cluster.yaml': edit(edit(cluster, 'interval_ms: 200', 'interval_ms: fast'), '[10.77.0.2,', '[10.77.0.300,'),
    'modules/web.yaml': edit(edit(web, 'port: 80', 'port: 0'), 'on_failure: restart', 'on_failure: reboot'),
    'modules/db.yaml': edit(db, 'module: web', 'module: nope'),
  });
  const problems = problemsOf(dir);
  assert.deepEqual(
    problems.map((p) => `${path.relative(dir, p.file)}:${p.line} ${p.key}`),
    [
      'cluster.yaml:4 heartbeat.interval_ms',
      'cluster.yaml:11 nodes.n2.addresses[0]',
      'modules/db.yaml:4 checkers[0].module',
      'modules/web.yaml:10 checkers[0].port',
      'modules/web.yaml:12 checkers[0].on_failure',
    ],
  );
});

test('module name: from the file, a name: key, or a module folder; duplicates are refused', () => {
  const dir = writeDir({ 'modules/db.yaml': null, 'modules/app/module.yaml': 'kind: light\n' });
  assert.deepEqual(loadConfig(dir).modules.map((m) => m.name), ['app', 'web']);
  expectProblem(writeDir({ 'modules/db.yaml': 'kind: light\nname: web\n' }), {
    file: 'modules/web.yaml', line: 1, column: 1, key: '', message: /^the module name "web" is already used by .*db\.yaml/,
  });
  expectProblem(writeDir({ 'modules/Bad_Name.yaml': 'kind: light\n' }), {
    file: 'modules/Bad_Name.yaml', line: 1, key: 'name', message: /comes from the file name "Bad_Name".*rename the file or add a name: key/,
  });
});

test('missing cluster.yaml and missing dir are config errors', () => {
  const dir = writeDir({ 'cluster.yaml': null });
  expectProblem(dir, { file: 'cluster.yaml', line: 1, key: '', message: /cannot read cluster\.yaml: ENOENT/ });
  const missing = path.join(dir, 'nothing-here');
  const problems = problemsOf(missing);
  assert.equal(problems[0]?.file, missing);
});

test('the pure core runs on texts and a fake file system', () => {
  const files: FileAccess = {
    stat: (p) => (p.endsWith('start_both') ? { isFile: true, executable: true } : undefined),
    read: () => ({ error: 'ENOENT' }),
  };
  const result = checkSources('/etc/croft', { file: '/etc/croft/cluster.yaml', text: cluster }, [
    { file: '/etc/croft/modules/web.yaml', text: web },
  ], files);
  assert.equal(result.config, undefined);
  assert.deepEqual(result.problems.map((p) => `${p.line} ${p.key}`), ['5 scripts.stop_both']);
});

test('the minimal fixture (one node, key_file, no modules) loads with defaults', () => {
  const copy = privateConfigCopy(path.join(fixtures, 'configs', 'minimal'));
  tmpDirs.push(copy);
  const config = loadConfig(copy);
  assert.equal(config.cluster.name, 'minimal');
  assert.equal(config.cluster.key.toString(), 'minimal-fixture-key-0123456789abcdef');
  assert.deepEqual(config.cluster.lans, ['lan0']);
  assert.deepEqual(config.cluster.nodes, [{ name: 'solo', addresses: ['127.0.0.1'], weight: 1 }]);
  assert.deepEqual(config.modules, []);
});
