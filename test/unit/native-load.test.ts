// The lab's override of the native addon (CROFT_LAB_NATIVE_ADDON, used to run the deliberately
// broken build of lab-chaos.lab.test.ts) must not reach a daemon outside a lab: src/native/load.ts
// honours it only with CROFT_LAB, which top/lab/enter.ts sets and systemd never does. Each case runs
// in a child process, whose environment is exactly the one given.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'vitest';
import { repoRoot } from '../helpers/paths.js';

const loadJs = path.join(repoRoot, 'dist', 'src', 'native', 'load.js');

function addonPath(env: Record<string, string>): string {
  const script = `import(${JSON.stringify(`file://${loadJs}`)}).then((m) => process.stdout.write(String(m.nativeAddonPath())))`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('CROFT_LAB_NATIVE_ADDON is ignored outside a lab: the release addon of native/ is loaded', () => {
  const release = addonPath({});
  assert.match(release, new RegExp(`^${path.join(repoRoot, 'native')}/croft\\..+\\.node$`));
  assert.equal(addonPath({ CROFT_LAB_NATIVE_ADDON: '/tmp/evil.node' }), release);
  assert.equal(addonPath({ CROFT_LAB_NATIVE_ADDON: '/tmp/evil.node', CROFT_LAB: '' }), release, 'an empty CROFT_LAB is no lab');
});

test('inside a lab (CROFT_LAB set) the override is what is loaded', () => {
  assert.equal(addonPath({ CROFT_LAB_NATIVE_ADDON: '/tmp/broken.node', CROFT_LAB: 'lab1' }), '/tmp/broken.node');
});
