// A random workload of every replicated change (10,000 successful operations, fsyncs included:
// write, truncate, fallocate, create, mknod, mkdir, symlink, link, unlink, rmdir, rename with
// RENAME_NOREPLACE / RENAME_EXCHANGE, chmod, chown, utimens, setxattr, removexattr) on the
// replicated directory of a real PRIM in a 2-node lab; then the PRIM's tree and its SECOND's are
// compared: contents, sizes, modes, owners, symlinks, hard-link groups, xattrs, mtimes. The
// operations and the comparison are crates/croft-mirror/examples/workload.rs (the same code as the
// crate's workload test).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, test } from 'vitest';
import type { MirrorStatusView } from '../../top/cli/mirror.js';
import { Lab } from '../../top/lab/index.js';
import { nodeApi, waitFor } from '../helpers/cluster.js';
import { fixtures, repoRoot } from '../helpers/paths.js';

const MODULE = 'mirror-workload';
const DIR = '/srv/croft/mirror-wl/data';
const OPS = 10_000;

async function state(lab: Lab, node: string): Promise<string | null> {
  try {
    const r = await nodeApi<MirrorStatusView>(lab, node, 'GET', `/api/v1/modules/${MODULE}/mirror`);
    return r.status === 200 ? r.body.state : null;
  } catch {
    return null;
  }
}

describe('mirror: 10,000 random changes on a PRIM, then both trees compared', { timeout: 600_000 }, () => {
  let lab: Lab;
  let config: string;
  let workload: string;
  beforeAll(async () => {
    // The example shares the crate's test helpers; cargo builds it in a few seconds once
    // `cargo test` (make test's first step) has built the crate.
    execFileSync('cargo', ['build', '-q', '-p', 'croft-mirror', '--example', 'workload'], { cwd: repoRoot, stdio: 'inherit' });
    workload = path.join(repoRoot, 'target', 'debug', 'examples', 'workload');
    assert.ok(fs.existsSync(workload), `${workload} was built`);
    config = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-mirrorwl-'));
    fs.cpSync(path.join(fixtures, 'mirror-workload'), path.join(config, 'modules', MODULE), { recursive: true });
    lab = await Lab.up({ name: `mw${process.pid % 100000}`, nodes: 2, clients: 1, config, intervalMs: 100, timeoutMs: 500 });
  });
  afterAll(async () => {
    await lab?.down();
    if (config) fs.rmSync(config, { recursive: true, force: true });
  });

  test('every change made on the PRIM is on the SECOND, exactly', async () => {
    await waitFor('both WAIT', async () => (await state(lab, 'n1')) === 'WAIT' && (await state(lab, 'n2')) === 'WAIT', 20_000);
    const prim = await lab.exec('n1', ['croft', 'prim', MODULE]);
    assert.equal(prim.code, 0, prim.stderr);
    await waitFor('n1 PRIM, n2 SECOND', async () => (await state(lab, 'n1')) === 'PRIM' && (await state(lab, 'n2')) === 'SECOND', 30_000);

    const seed = Number(process.env.CROFT_SEED ?? Date.now() % 1_000_000_007);
    console.log(`# CROFT_SEED=${seed} (replay with CROFT_SEED=${seed})`);
    const t0 = Date.now();
    const run = await lab.exec('n1', [workload, 'run', DIR, String(OPS), String(seed)], { timeoutMs: 400_000 });
    assert.equal(run.code, 0, `the workload failed on n1: ${run.stderr}`);
    const r = JSON.parse(run.stdout.trim()) as { ops: number; attempts: number; ms: number; kinds: Record<string, number> };
    console.log(`# ${r.ops} successful operations (${r.attempts} attempted) on the PRIM in ${Date.now() - t0} ms: ${JSON.stringify(r.kinds)}`);
    assert.equal(r.ops, OPS);
    for (const [kind, n] of Object.entries(r.kinds)) assert.ok(n >= 5, `operation ${kind} succeeded only ${n} times`);
    assert.equal(Object.keys(r.kinds).length, 21, 'all 21 kinds of change ran');

    // Every change was acknowledged by n2 before it returned: the pair never left PRIM/SECOND.
    assert.equal(await state(lab, 'n1'), 'PRIM');
    assert.equal(await state(lab, 'n2'), 'SECOND');

    // The PRIM's files are those under its mount (a passthrough): compare the two nodes' private
    // folders as the host sees them.
    const side = (n: string) => path.join(lab.stateDir, 'nodes', n, 'srv-croft', 'mirror-wl', 'data');
    let out: string;
    try {
      out = execFileSync(workload, ['compare', side('n1'), side('n2')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      assert.fail(`the trees differ: ${(e as { stderr?: string }).stderr ?? String(e)}`);
    }
    const cmp = JSON.parse(out.trim()) as { identical: boolean; entries: number };
    assert.equal(cmp.identical, true);
    assert.ok(cmp.entries > 20, `the tree has ${cmp.entries} entries`);
    console.log(`# ${cmp.entries} entries identical on n1 and n2 (contents, sizes, modes, owners, symlinks, hard links, xattrs, mtimes)`);

    const verify = await lab.exec('n1', ['croft', 'mirror', 'verify', MODULE]);
    assert.equal(verify.code, 0, `croft mirror verify: ${verify.stdout}${verify.stderr}`);
  });
});
