// The shipped modules' one process library (modules/lib/croft.sh) and how each module finds it:
// croft gives every script CROFT_LIB; a module folder run from this repository finds ../lib; a
// folder copied alone, with neither (and no Debian package installed), fails with a message that
// names the library. No helper of the library is defined again in a module's lib.sh.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'vitest';
import { baseScriptEnv, CROFT_LIB_PATH } from '../../src/module/scripts.js';
import { repoRoot } from '../helpers/paths.js';

const modulesDir = path.join(repoRoot, 'modules');
const withLib = fs.readdirSync(modulesDir).filter((m) => fs.existsSync(path.join(modulesDir, m, 'lib.sh'))).sort();
const installed = fs.existsSync('/usr/share/croft/modules/lib/croft.sh');
/** Functions croft.sh defines (candidates, ours and is_main are hooks with defaults: a module may define its own). */
const libFunctions = [...fs.readFileSync(path.join(modulesDir, 'lib', 'croft.sh'), 'utf8').matchAll(/^([a-z_]+)\(\) \{/gm)]
  .map((m) => m[1]!).filter((f) => !['candidates', 'ours', 'is_main'].includes(f));

/** Sources dir/lib.sh from a script in dir and reports whether our_pids is a function. */
function sourceLib(dir: string, env: NodeJS.ProcessEnv): { code: number | null; out: string } {
  const probe = path.join(dir, 'probe');
  fs.writeFileSync(probe, '#!/bin/sh\n. "$(dirname "$0")/lib.sh"\ncommand -v our_pids >/dev/null && echo "lib: $CROFT_LIB"\n', { mode: 0o755 });
  try {
    const r = spawnSync(probe, [], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', timeout: 10_000 });
    return { code: r.status, out: `${r.stdout}${r.stderr}` };
  } finally {
    fs.rmSync(probe);
  }
}

describe('modules/lib/croft.sh: one library for every module', () => {
  test('croft gives every script CROFT_LIB, the package\'s library', () => {
    assert.equal(baseScriptEnv().CROFT_LIB, CROFT_LIB_PATH);
    assert.equal(CROFT_LIB_PATH, path.join(repoRoot, 'modules', 'lib', 'croft.sh'));
    assert.ok(fs.existsSync(CROFT_LIB_PATH));
  });

  test('every module with a lib.sh finds the library: CROFT_LIB, else ../lib', () => {
    assert.ok(withLib.length >= 7, `modules with a lib.sh: ${withLib.join(' ')}`);
    for (const m of withLib) {
      const dir = path.join(modulesDir, m);
      const byEnv = sourceLib(dir, { CROFT_LIB: CROFT_LIB_PATH, CROFT_MODULE: m });
      assert.equal(byEnv.code, 0, `${m} with CROFT_LIB: ${byEnv.out}`);
      assert.match(byEnv.out, new RegExp(`lib: ${CROFT_LIB_PATH}`));
      if (installed) continue; // the package's copy would win over ../lib
      const byFolder = sourceLib(dir, { CROFT_MODULE: m });
      assert.equal(byFolder.code, 0, `${m} without CROFT_LIB: ${byFolder.out}`);
      assert.match(byFolder.out, /lib: .*\/modules\/[a-z-]+\/\.\.\/lib\/croft\.sh/);
    }
  });

  test('a module folder copied alone, with no CROFT_LIB, fails and names the library', { skip: Boolean(installed && 'croft is installed here: the copy finds /usr/share/croft/modules/lib')}, () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-modlib-'));
    try {
      execFileSync('cp', ['-rL', path.join(modulesDir, 'generic-farm'), path.join(tmp, 'web')]);
      const r = sourceLib(path.join(tmp, 'web'), { CROFT_MODULE: 'web' });
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, /web: croft's script library croft\.sh is in none of \$CROFT_LIB, \/usr\/share\/croft\/modules\/lib\//);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  test('no module defines a helper of the library again', () => {
    assert.ok(libFunctions.includes('signal_all') && libFunctions.includes('alive'), libFunctions.join(' '));
    for (const m of withLib) {
      const text = fs.readFileSync(path.join(modulesDir, m, 'lib.sh'), 'utf8');
      for (const f of libFunctions) assert.doesNotMatch(text, new RegExp(`^${f}\\(\\) \\{`, 'm'), `${m}/lib.sh defines ${f} again`);
    }
  });
});
