// Issue 8, finding 13 and the config-parsing low findings: who may read the key and change what croft
// runs as root (config/perms.ts), the key_file length, YAML alias bombs, and the size cap. Real files
// with real modes and owners (the tests run as root, like croft).
import { afterAll, test } from 'vitest';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkCommand } from '../../top/cli/check.js';
import { checkConfigDir, loadConfig } from '../../src/config/load.js';
import { ConfigError, formatProblems } from '../../src/config/problems.js';

const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

const KEY = 'k'.repeat(40);
const clusterWith = (keyLine: string): string => `name: t\n${keyLine}\nnodes:\n  n1: { addresses: [127.0.0.1] }\n`;
const moduleText = 'kind: light\nscripts:\n  start_both: start_both\n  stop_both: stop_both\ncheckers:\n  - { type: script, path: check, name: c }\n';

/** A valid config dir with the right modes: cluster.yaml 0600 (inline key), module 0644, scripts 0755. */
function goodDir(opts: { keyFile?: string } = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-perms-'));
  tmpDirs.push(dir);
  if (opts.keyFile !== undefined) {
    fs.writeFileSync(path.join(dir, 'cluster.yaml'), clusterWith('key_file: cluster.key'), { mode: 0o644 });
    fs.writeFileSync(path.join(dir, 'cluster.key'), opts.keyFile, { mode: 0o600 });
  } else {
    fs.writeFileSync(path.join(dir, 'cluster.yaml'), clusterWith(`key: "${KEY}"`), { mode: 0o600 });
  }
  fs.mkdirSync(path.join(dir, 'modules', 'web'), { recursive: true, mode: 0o755 });
  fs.writeFileSync(path.join(dir, 'modules', 'web', 'module.yaml'), moduleText, { mode: 0o644 });
  for (const s of ['start_both', 'stop_both', 'check']) fs.writeFileSync(path.join(dir, 'modules', 'web', s), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  return dir;
}

function problemsText(dir: string): string {
  const r = checkConfigDir(dir);
  assert.equal(r.config, undefined, 'the config was accepted');
  return formatProblems(r.problems);
}

test('finding 13: the right modes load (cluster.yaml with inline key 0600, key_file 0600 with cluster.yaml 0644, modules 0644, scripts 0755)', () => {
  assert.equal(loadConfig(goodDir()).cluster.name, 't');
  assert.equal(loadConfig(goodDir({ keyFile: `${'x'.repeat(32)}\n` })).cluster.key.toString(), 'x'.repeat(32));
});

test('finding 13: a key_file readable or writable by group or others is refused, naming the file and chmod 600', () => {
  for (const mode of [0o644, 0o640, 0o604, 0o620, 0o660]) {
    const dir = goodDir({ keyFile: `${'x'.repeat(40)}\n` });
    const file = path.join(dir, 'cluster.key');
    fs.chmodSync(file, mode);
    const text = problemsText(dir);
    assert.ok(text.includes(`${path.join(dir, 'cluster.yaml')}:2:11: key_file: the key file ${file} is `), text);
    assert.ok(text.includes(`(mode 0${mode.toString(8)})`), text);
    assert.ok(text.includes(`run: chmod 600 ${file}`), text);
  }
});

test('finding 13: a key_file of 16 bytes is refused (32 needed, as for key)', () => {
  const dir = goodDir({ keyFile: `${'x'.repeat(16)}\n` });
  const text = problemsText(dir);
  assert.match(text, /key_file: the key file .*cluster\.key holds 16 bytes; expected at least 32/);
});

test('finding 13: a cluster.yaml holding key: inline and readable by others is refused with chmod 600', () => {
  const dir = goodDir();
  const file = path.join(dir, 'cluster.yaml');
  fs.chmodSync(file, 0o644);
  const text = problemsText(dir);
  assert.ok(text.includes(`${file}:2:1: key: the config file holding the cluster key inline ${file} is readable by its group and other users (mode 0644)`), text);
  assert.ok(text.includes(`run: chmod 600 ${file}`), text);
});

test('finding 13: a cluster.yaml holding API tokens or passwords, and a TLS private key, readable by others are refused', () => {
  const dir = goodDir({ keyFile: `${'x'.repeat(40)}\n` });
  const file = path.join(dir, 'cluster.yaml');
  fs.appendFileSync(file, 'api:\n  tokens: [token-0123456789abcdef]\n  tls: { cert: cert.pem, key: tls.key }\n');
  fs.writeFileSync(path.join(dir, 'cert.pem'), 'x', { mode: 0o644 });
  fs.writeFileSync(path.join(dir, 'tls.key'), 'x', { mode: 0o644 });
  const text = problemsText(dir);
  assert.ok(text.includes(`the config file holding API tokens inline ${file} is readable by its group and other users (mode 0644)`), text);
  assert.ok(text.includes(`run: chmod 600 ${file}`), text);
  assert.ok(text.includes(`api.tls.key: the TLS private key ${path.join(dir, 'tls.key')} is readable`), text);
  fs.chmodSync(file, 0o600);
  fs.chmodSync(path.join(dir, 'tls.key'), 0o600);
  assert.equal(checkConfigDir(dir).problems.filter((p) => /mode 0/.test(p.message)).length, 0);
});

test('finding 13: cluster.yaml, module file, scripts and their folders writable by group or others are refused with chmod go-w', () => {
  const cases: [string, number, string][] = [
    ['cluster.yaml', 0o666, 'the config file'],
    ['modules/web/module.yaml', 0o664, 'the module file'],
    ['modules/web/start_both', 0o777, 'the script'],
    ['modules/web/check', 0o775, 'the script'], // a custom-script checker
  ];
  for (const [rel, mode, what] of cases) {
    const dir = goodDir();
    const file = path.join(dir, rel);
    fs.chmodSync(file, mode);
    const text = problemsText(dir);
    assert.ok(text.includes(`${what} ${file} is writable by`), `${rel}: ${text}`);
    assert.ok(text.includes(`run: chmod go-w ${file}`), `${rel}: ${text}`);
  }
  // A folder on the way to the scripts (the module folder, or modules/ above it), writable by
  // everyone: anyone could replace a script. Reported once, at the folder.
  for (const rel of ['modules/web', 'modules']) {
    const dir = goodDir();
    const folder = path.join(dir, rel);
    fs.chmodSync(folder, 0o777);
    const r = checkConfigDir(dir);
    const mine = r.problems.filter((p) => p.file === folder);
    assert.equal(mine.length, 1, formatProblems(r.problems));
    assert.match(mine[0]?.message ?? '', new RegExp(`^the folder ${folder} is writable by its group and other users \\(mode 0777\\) and holds \\(on the way to\\) ${dir}/modules/web/`));
    assert.ok(mine[0]?.message.endsWith(`run: chmod go-w ${folder}`));
    // With the sticky bit (like /tmp) others cannot replace a file in it: accepted.
    fs.chmodSync(folder, 0o1777);
    assert.ok(loadConfig(dir));
  }
  // The config folder itself, on the way to cluster.yaml and the key file.
  const dir = goodDir({ keyFile: `${'x'.repeat(40)}\n` });
  fs.chmodSync(dir, 0o770);
  assert.match(problemsText(dir), new RegExp(`${dir}:1:1: the folder ${dir} is writable by its group \\(mode 0770\\)`));
});

test('finding 13: a script or config file owned by another user is refused with the chown to run', () => {
  for (const rel of ['modules/web/start_both', 'modules/web/module.yaml', 'cluster.yaml']) {
    const dir = goodDir();
    const file = path.join(dir, rel);
    fs.chownSync(file, 1234, 1234);
    const text = problemsText(dir);
    assert.ok(text.includes(`${file} is owned by uid 1234, not by root or croft's user`), `${rel}: ${text}`);
    assert.ok(text.includes(`run: chown root ${file}`), `${rel}: ${text}`);
  }
});

test('finding 13: croft check reports the permission problems with the file names, and exits 1', async () => {
  const dir = goodDir({ keyFile: `${'x'.repeat(40)}\n` });
  fs.chmodSync(path.join(dir, 'cluster.key'), 0o644);
  fs.chmodSync(path.join(dir, 'cluster.yaml'), 0o666);
  fs.chmodSync(path.join(dir, 'modules', 'web', 'stop_both'), 0o777);
  const stdout: string[] = [];
  const stderr: string[] = [];
  assert.equal(await checkCommand([dir], { log: (s) => stdout.push(s), error: (s) => stderr.push(s) }), 1);
  const text = stderr.join('\n');
  assert.doesNotMatch(stdout.join('\n'), /configuration OK/);
  for (const want of [`chmod 600 ${path.join(dir, 'cluster.key')}`, `chmod go-w ${path.join(dir, 'cluster.yaml')}`, `chmod go-w ${path.join(dir, 'modules', 'web', 'stop_both')}`]) {
    assert.ok(text.includes(want), `${want} in:\n${text}`);
  }
});

test('low (YAML alias bomb): refused with file:line and key, no stack trace', () => {
  const dir = goodDir();
  const file = path.join(dir, 'modules', 'web', 'module.yaml');
  const lines = ['kind: light', 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i < 9; i++) lines.push(`a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]`);
  lines.push('bomb: *a8');
  fs.writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o644 });
  const t0 = performance.now();
  let err: unknown;
  try {
    loadConfig(dir);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
  assert.ok(performance.now() - t0 < 2000);
  const p = err.problems.find((x) => x.file === file && /aliases expand to too much data/.test(x.message));
  assert.ok(p, formatProblems(err.problems));
  assert.equal(p.line, 3); // the first alias: a1's first item
  assert.equal(p.key, 'a1[0]');
  assert.doesNotMatch(err.message, /\n\s+at /); // no stack trace in what the user sees
});

test('low (config size cap): a 2 MiB cluster.yaml or module file is refused with a clear error', () => {
  for (const rel of ['cluster.yaml', 'modules/web/module.yaml']) {
    const dir = goodDir();
    const file = path.join(dir, rel);
    fs.appendFileSync(file, `# ${'x'.repeat(2 * 1024 * 1024)}\n`);
    const text = problemsText(dir);
    assert.ok(text.includes(`${file}:1:1: `) && text.includes('config files are limited to 1048576 bytes (1 MiB)'), `${rel}: ${text.slice(0, 500)}`);
  }
});
