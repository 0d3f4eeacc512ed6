// The `notify:` section of cluster.yaml (src/config/notify.ts): defaults, and every mistake named
// with its file, line and key (an unknown event kind, a bad URL or syslog target, a hook program
// missing, not executable, or writable by others), and the API users' `role`.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, test } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import type { ConfigProblem } from '../../src/config/index.js';

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

const head = ['name: c', `key: "${'k'.repeat(40)}"`, 'nodes:', '  n1: { addresses: [127.0.0.1] }', '  n2: { addresses: [127.0.0.2] }'];

/** A config dir whose cluster.yaml is `head` then `lines`; a hook program `hook` (mode 0755) beside it. */
function dirWith(lines: string[], hookMode = 0o755): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-notify-config-'));
  fs.chmodSync(dir, 0o755);
  dirs.push(dir);
  fs.writeFileSync(path.join(dir, 'cluster.yaml'), [...head, ...lines, ''].join('\n'), { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'hook'), '#!/bin/sh\nexit 0\n', { mode: hookMode });
  fs.chmodSync(path.join(dir, 'hook'), hookMode);
  return dir;
}

function problems(dir: string): ConfigProblem[] {
  try {
    loadConfig(dir);
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.problems;
  }
  return assert.fail('accepted');
}

function expectAt(dir: string, key: string, line: number, message: RegExp): void {
  const all = problems(dir);
  const p = all.find((q) => q.key === key);
  assert.ok(p, `no problem at ${key}: ${JSON.stringify(all)}`);
  assert.equal(p.file, path.join(dir, 'cluster.yaml'));
  assert.equal(p.line, line, `line of ${key}: ${p.message}`);
  assert.match(p.message, message);
}

test('without notify: only the history (1000 events), every kind; users default to admin', () => {
  const c = loadConfig(dirWith(['api:', '  users: [{ name: ops, password: "12345678" }, { name: eye, password: "12345678", role: viewer }]']));
  assert.equal(c.cluster.notify?.history, 1000);
  assert.deepEqual(c.cluster.notify?.events, ['state', 'failover', 'reintegration_done', 'split_brain', 'checker', 'maintenance', 'config_mismatch', 'peer', 'verify_diverged']);
  assert.equal(c.cluster.notify?.webhook, undefined);
  assert.deepEqual(c.cluster.api.users.map((u) => u.role), ['admin', 'viewer']);
});

test('a full notify section: defaults filled, the program resolved against the config dir, syslog formats by target', () => {
  const dir = dirWith([
    'notify:',
    '  events: [failover, split_brain]',
    '  webhook: { url: "https://hooks.example/croft", retries: 2 }',
    '  exec: { program: ./hook, timeout_ms: 3000 }',
    '  syslog: { facility: local3 }',
  ]);
  const n = loadConfig(dir).cluster.notify!;
  assert.deepEqual(n.events, ['failover', 'split_brain']);
  assert.deepEqual(n.webhook, { url: 'https://hooks.example/croft', timeoutMs: 5000, retries: 2, backoffMs: 1000, maxBackoffMs: 60_000, queue: 1000 });
  assert.deepEqual(n.exec, { program: path.join(dir, 'hook'), timeoutMs: 3000, killGraceMs: 1000, queue: 1000 });
  assert.deepEqual(n.syslog, { target: { type: 'unix', path: '/dev/log' }, format: 'rfc3164', facility: 'local3', queue: 1000 });
  const udp = loadConfig(dirWith(['notify:', '  syslog: { target: "udp://[fd00::9]:5514" }'])).cluster.notify!.syslog!;
  assert.deepEqual(udp.target, { type: 'udp', host: 'fd00::9', port: 5514 });
  assert.equal(udp.format, 'rfc5424');
});

test('mistakes are named with file, line and key', () => {
  expectAt(dirWith(['notify:', '  events: [state, failovr]']), 'notify.events[1]', 7, /failover/);
  expectAt(dirWith(['notify:', '  webhook: { url: "ftp://x/y" }']), 'notify.webhook.url', 7, /http:\/\/ or https:\/\/ URL/);
  expectAt(dirWith(['notify:', '  webhook: { timeout_ms: 100 }']), 'notify.webhook.url', 7, /missing required key/);
  expectAt(dirWith(['notify:', '  webhook: { url: "http://a/", backoff_ms: 5000, max_backoff_ms: 1000 }']), 'notify.webhook.max_backoff_ms', 7, /below backoff_ms/);
  expectAt(dirWith(['notify:', '  webhook: { url: "http://a/", queue: 0 }']), 'notify.webhook.queue', 7, /expected an integer from 1 to 100000, got 0/);
  expectAt(dirWith(['notify:', '  syslog: { target: "udp://host" }']), 'notify.syslog.target', 7, /udp:\/\/host:port/);
  expectAt(dirWith(['notify:', '  syslog: { target: "tcp://h:1" }']), 'notify.syslog.target', 7, /unix socket path/);
  expectAt(dirWith(['notify:', '  syslog: { format: rfc9999 }']), 'notify.syslog.format', 7, /rfc3164/);
  expectAt(dirWith(['notify:', '  exec:', '    program: ./nope']), 'notify.exec.program', 8, /program not found: .*nope/);
  expectAt(dirWith(['notify:', '  exec: { program: ./hook }'], 0o644), 'notify.exec.program', 7, /not executable/);
  expectAt(dirWith(['notify:', '  exec: { program: ./hook }'], 0o757), 'notify.exec.program', 7, /the notify program .*hook is writable by other users.*chmod go-w/);
  expectAt(dirWith(['notify:', '  sms: {}']), 'notify.sms', 7, /unknown key "sms"/);
  expectAt(dirWith(['api:', '  users: [{ name: a, password: "12345678", role: root }]']), 'api.users[0].role', 7, /admin.*operator.*viewer/);
});

test('the folder holding the hook program is checked like a script\'s: writable by others is refused', () => {
  const dir = dirWith(['notify:', '  exec: { program: ./bin/hook }']);
  fs.mkdirSync(path.join(dir, 'bin'));
  fs.copyFileSync(path.join(dir, 'hook'), path.join(dir, 'bin', 'hook'));
  fs.chmodSync(path.join(dir, 'bin', 'hook'), 0o755);
  fs.chmodSync(path.join(dir, 'bin'), 0o777);
  const p = problems(dir).find((q) => q.file === path.join(dir, 'bin'));
  assert.ok(p, 'the folder is named');
  assert.match(p.message, /writable by .* holds .*bin\/hook.*chmod go-w/);
});
