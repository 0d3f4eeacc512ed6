// `croft demo` as `make demo` runs it (under its own lab name): the 3-node lab comes up with the
// nginx farm, the light module, the PostgreSQL mirror (n1 PRIM, n2 SECOND, a row written
// through the database's VIP) and the 2-tier application's web tier in front of it (orders),
// prints it all, and `croft lab down` (what `make demo-down` runs) removes everything:
// namespaces, mounts, processes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, describe, test } from 'vitest';
import { promisify } from 'node:util';
import { Lab } from '../../top/lab/index.js';
import { croftBin } from '../helpers/paths.js';

const run = promisify(execFile);
const NAME = `dm${process.pid % 100000}`;

async function croft(args: string[], timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [croftBin, ...args], { timeout: timeoutMs, maxBuffer: 16 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? String(e) };
  }
}

describe('croft demo', { timeout: 240_000 }, () => {
  let up = false;
  afterAll(async () => {
    if (up) await Lab.down(NAME).catch(() => undefined);
  });

  test('brings up the farm, the light module, the PostgreSQL mirror and the 2-tier application, and says how to play with them', async () => {
    up = true;
    const t0 = Date.now();
    const r = await croft(['demo', '--name', NAME], 180_000);
    console.log(`# croft demo took ${Date.now() - t0} ms`);
    assert.equal(r.code, 0, `croft demo: ${r.stderr}\n${r.stdout}`);
    const out = r.stdout;
    // Cluster status: the farm and the light module UP everywhere, the mirror PRIM on n1 and
    // SECOND on n2 (same generation), not on n3.
    assert.match(out, /^web\s+farm\s+UP\s+UP\s+UP$/m);
    assert.match(out, /^hello\s+light\s+UP\s+UP\s+UP$/m);
    assert.match(out, /^db\s+mirror\s+PRIM g(\d+)\s+SECOND g\1\s+-$/m);
    // The 2-tier application's web tier waited for the database, then came UP everywhere, and
    // took orders (committed in the database) through its own VIP.
    assert.match(out, /^shop\s+farm\s+UP\s+UP\s+UP$/m);
    assert.match(out, /^\s+10\.100\.0\.1 -> \{"id": \d+, "node": "n\d"\}$/m);
    assert.match(out, /Watch both tiers/);
    // The farm's clients were answered.
    assert.match(out, /10\.100\.0\.1 -> node n\d/);
    // The row written through the database's VIP from the client, read back through it.
    assert.match(out, /the database through its VIP, from the client/);
    assert.match(out, /^\s+1 \| hello from the demo \| n1 \(PRIM\)/m);
    // The mirror's status as `croft mirror status db` prints it.
    assert.match(out, /^mirror db, seen from n1: PRIM \(primary\)/m);
    assert.match(out, /^n2\s+SECOND\s+up-to-date/m);
    assert.match(out, /^VIP: 10\.77\.0\.60 \(held here\)/m);
    // How to play with it.
    assert.match(out, new RegExp(`croft lab kill --name ${NAME} n1 `));
    assert.match(out, new RegExp(`croft lab exec --name ${NAME} client -- psql postgresql://croft:croft@10\\.77\\.0\\.60/croft`));
    assert.match(out, new RegExp(`croft lab exec --name ${NAME} n2 -- croft swap db`));

    // Really there: the demo's database answers through its VIP from the client.
    const lab = Lab.open(NAME);
    const q = await lab.exec('client', ['psql', '-X', '-At', 'postgresql://croft:croft@10.77.0.60/croft', '-c', 'select msg from demo']);
    assert.equal(q.code, 0, q.stderr);
    assert.equal(q.stdout.trim(), 'hello from the demo');
    const o = await lab.exec('client', ['psql', '-X', '-At', 'postgresql://croft:croft@10.77.0.60/croft', '-c', 'select count(*) from orders']);
    assert.equal(o.stdout.trim(), '3', `the demo's three orders are in the database: ${o.stderr}`);
  });

  test('croft lab down (make demo-down) removes everything', async () => {
    const stateDir = Lab.open(NAME).stateDir;
    // The lab's network namespaces, to find any process left in them afterwards.
    const inodes = new Set(fs.readdirSync('/run/netns').filter((n) => n.startsWith(`croft-${NAME}-`))
      .map((n) => `net:[${fs.statSync(`/run/netns/${n}`).ino}]`));
    assert.ok(inodes.size >= 4, `the lab's namespaces (${inodes.size})`);
    const r = await croft(['lab', 'down', '--name', NAME], 120_000);
    assert.equal(r.code, 0, r.stderr);
    up = false;
    assert.ok(!Lab.list().includes(NAME), 'nothing of the lab is left (namespaces, mounts, state)');
    const mounts = fs.readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.includes(stateDir) || l.includes(`croft-${NAME}-`));
    assert.deepEqual(mounts, [], 'no mount of the lab is left');
    const netns = fs.existsSync('/run/netns') ? fs.readdirSync('/run/netns').filter((n) => n.startsWith(`croft-${NAME}-`)) : [];
    assert.deepEqual(netns, [], 'no network namespace of the lab is left');
    const left: string[] = [];
    for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        if (!inodes.has(fs.readlinkSync(`/proc/${pid}/ns/net`))) continue;
        const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        if (/^\S+ \(.*\) [ZX] /s.test(stat)) continue; // a zombie waiting for its parent holds nothing
        left.push(`${pid} ${fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim()}`);
      } catch { /* gone meanwhile */ }
    }
    assert.deepEqual(left, [], 'no process (daemon, nginx, PostgreSQL...) is left in the lab');
  });
});
