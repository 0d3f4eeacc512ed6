// The lab starts its daemons with node's flags explicitly (node <flags> croft.js daemon), where the
// packaged `croft daemon` gets them from bin/croft.js's `#!` line: both must be the same flags, or
// the lab's figures (bench/farm idle RSS) would not be those of a real daemon.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { croftJs } from '../../src/paths.js';
import { DAEMON_ENV, DAEMON_NODE_FLAGS, daemonCommand } from '../../top/lab/daemons.js';

test('the lab daemon\'s node flags and environment are those of bin/croft.js\'s #! line', () => {
  const shebang = fs.readFileSync(croftJs, 'utf8').split('\n')[0]!;
  const m = /^#!\/usr\/bin\/env -S((?: [A-Z_]+=\S+)*) node((?: --[\w-]+(?:=\S+)?)*)$/.exec(shebang);
  assert.ok(m, `unexpected #! line: ${shebang}`);
  assert.deepEqual(Object.fromEntries(m[1]!.trim().split(' ').filter(Boolean).map((kv) => kv.split('='))), { ...DAEMON_ENV });
  assert.deepEqual(m[2]!.trim().split(' ').filter(Boolean), [...DAEMON_NODE_FLAGS]);
  const argv = daemonCommand('n1');
  assert.deepEqual(argv.slice(1, 1 + DAEMON_NODE_FLAGS.length), [...DAEMON_NODE_FLAGS]);
});
