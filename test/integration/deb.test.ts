// The Debian package on this machine: built (scripts/build-deb.sh, what `make deb` runs after make
// setup: the test does not rebuild dist/ under the running tests), inspected (files, modes, Depends),
// installed with dpkg -i, used (/usr/bin/croft init, module add, check), reinstalled over itself (the
// upgrade path keeps the configuration), its unit checked with systemd-analyze verify, its daemons run
// in a 3-node lab with a farm and a mirror module (labOnInstalledCroft), then purged:
// nothing of it is left. The purge runs in a finally, so the machine is left as it was found.
// Run alone, under the lock: flock /tmp/croft.lock npx vitest run test/integration/deb.test.ts
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'vitest';
import { bucketOf } from '../../farm/hash-input.js';
import type { FarmMapView } from '../../top/cli/farm.js';
import { Lab, NODE_CONFIG_PATH } from '../../top/lab/index.js';
import { nodeStatus, sleep, waitFor } from '../helpers/cluster.js';
import { farmStatus } from '../helpers/farm-lab.js';
import { assertSequence, cat, lines, waitStates, writerPid } from '../helpers/mirror-lab.js';
import { fixtures, repoRoot } from '../helpers/paths.js';

function run(cmd: string, args: string[], opts: { cwd?: string } = {}) {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8', cwd: opts.cwd, maxBuffer: 64 << 20,
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive', CROFT_CONFIG: '/etc/croft' },
  });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error };
}

function must(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  const r = run(cmd, args, opts);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')} failed (${r.code}): ${r.error?.message ?? ''}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const installed = () => run('dpkg-query', ['-W', '-f', '${Status}', 'croft']).stdout.includes('install ok installed');

/** Everything the package puts on the machine (or its scripts create), none of which may survive a purge. */
const LEFTOVERS = [
  '/usr/lib/croft', '/usr/bin/croft', '/usr/share/croft', '/usr/share/doc/croft', '/etc/croft', '/etc/logrotate.d/croft',
  '/lib/systemd/system/croft.service', '/etc/systemd/system/croft.service', '/etc/systemd/system/multi-user.target.wants/croft.service',
  '/var/lib/croft', '/var/lib/dpkg/info/croft.list',
];
const exists = (p: string) => fs.lstatSync(p, { throwIfNoEntry: false }) !== undefined;

const INSTALLED = '/usr/bin/croft';
const MIRROR = 'mirror-app';
const MIRROR_FILE = '/srv/croft/mirror-test/data/lines.txt';
const FARM_VIP = '10.77.0.100';

/** The installed command alone: neither the repo's bin/ (the lab puts it in PATH) nor its script library. */
const installedDaemon = (node: string) =>
  ['env', '-u', 'CROFT_LIB', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', INSTALLED, 'daemon', '--config', NODE_CONFIG_PATH, '--node', node];

async function installedCli(lab: Lab, node: string, args: string[]): Promise<string> {
  const r = await lab.exec(node, [INSTALLED, ...args], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `${INSTALLED} ${args.join(' ')} on ${node}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

/**
 * A 3-node lab whose daemons are the installed /usr/bin/croft (its JS, its addon, its shipped
 * nginx-farm module), with a farm on the three nodes and a mirror on two: the farm serves every
 * client from the node its bucket names, the mirror replicates and verifies identical.
 */
async function labOnInstalledCroft(): Promise<void> {
  const config = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-deblab-'));
  let lab: Lab | undefined;
  try {
    fs.cpSync('/usr/share/croft/modules/nginx-farm', path.join(config, 'modules', 'web'), { recursive: true });
    fs.cpSync(path.join(fixtures, 'mirror-app'), path.join(config, 'modules', MIRROR), { recursive: true });
    lab = await Lab.up({ name: `dl${process.pid % 100000}`, nodes: 3, clients: 60, config, intervalMs: 100, timeoutMs: 500, daemonCommand: installedDaemon });
    const nodes = ['n1', 'n2', 'n3'];
    await waitFor('farm web on n1, n2, n3 everywhere', async () => {
      const all = await Promise.all(nodes.map((n) => farmStatus(lab!, n)));
      return all.every((f) => f?.active && JSON.stringify(f.members) === JSON.stringify(nodes));
    }, 30_000, 100);
    // The daemons run the package's files: its command, and (the farm running) its native addon mapped in memory.
    for (const n of (await lab.status()).nodes) {
      assert.ok(n.daemonPid, `${n.name}: no daemon`);
      const argv = fs.readFileSync(`/proc/${n.daemonPid}/cmdline`, 'utf8').split('\0');
      assert.ok(argv.includes(INSTALLED), `${n.name}'s daemon runs ${argv.join(' ')}`);
      const maps = fs.readFileSync(`/proc/${n.daemonPid}/maps`, 'utf8');
      assert.match(maps, /\/usr\/lib\/croft\/native\/croft\.linux-x64-gnu\.node$/m, `${n.name}'s daemon loaded the package's addon`);
      assert.doesNotMatch(maps, new RegExp(`${repoRoot}/native/`), `${n.name}'s daemon loaded the repo's addon`);
    }
    const status = await installedCli(lab, 'n1', ['status']);
    for (const n of nodes) assert.match(status, new RegExp(`^${n}\\b.*\\bUP\\b`, 'm'), `croft status:\n${status}`);

    // Farm: every client answered once, by the node its bucket names (the installed croft farm map).
    const map = JSON.parse(await installedCli(lab, 'n2', ['farm', 'map', 'web', '--json'])) as FarmMapView;
    const sources = lab.clientAddresses();
    const r = await lab.exec('client', ['node', path.join(fixtures, 'farm-lab', 'clients.mjs'), JSON.stringify({ url: `http://${FARM_VIP}/`, sources, mode: 'once' })], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    const results = (JSON.parse(r.stdout) as { results: Record<string, string | null> }).results;
    const per: Record<string, number> = {};
    for (const src of sources) {
      const owner = map.map[bucketOf(map.balance, map.buckets, map.seed, src)];
      assert.equal(results[src], `node ${owner}`, `client ${src}`);
      per[owner!] = (per[owner!] ?? 0) + 1;
    }
    assert.equal(Object.keys(per).length, 3, `all three nodes serve: ${JSON.stringify(per)}`);

    // Mirror: PRIM on n1, SECOND on n2; the writer's fsync'd lines the same on both; verify identical.
    await waitStates(lab, { n1: 'WAIT', n2: 'WAIT' }, 30_000, MIRROR);
    await installedCli(lab, 'n1', ['prim', MIRROR]);
    await waitStates(lab, { n1: 'PRIM', n2: 'SECOND' }, 30_000, MIRROR);
    await waitFor('writer on n1', async () => (await writerPid(lab!, 'n1', 'mirror-app')) !== null, 10_000);
    await sleep(1000);
    const pid = (await writerPid(lab, 'n1', 'mirror-app'))!;
    await lab.exec('n1', ['kill', '-STOP', String(pid)]);
    let count: number;
    try {
      await sleep(100);
      const a = await cat(lab, 'n1', MIRROR_FILE);
      assert.equal(await cat(lab, 'n2', MIRROR_FILE), a, 'both nodes hold the same file');
      assertSequence(lines(a), MIRROR_FILE);
      count = lines(a).length;
    } finally {
      await lab.exec('n1', ['kill', '-CONT', String(pid)]);
    }
    assert.ok(count > 10, `the writer wrote (${count} lines)`);
    assert.match(await installedCli(lab, 'n1', ['mirror', 'verify', MIRROR]), /identical/);
    assert.deepEqual((await nodeStatus(lab, 'n3'))?.nodes.map((n) => n.state), ['UP', 'UP', 'UP']);
    assert.equal((await nodeStatus(lab, 'n3'))?.mixedVersions, false);
    console.log(`# installed /usr/bin/croft in a 3-node lab: farm answers ${JSON.stringify(per)} (${sources.length} clients, each by its bucket's owner); `
      + `mirror n1 -> n2 ${count} fsync'd lines the same on both, verify identical`);
  } finally {
    await lab?.down();
    fs.rmSync(config, { recursive: true, force: true });
  }
}

test('deb: make deb builds a package that installs, configures with croft init, runs a 3-node lab, verifies, and purges without a trace', { timeout: 400_000 }, async () => {
  // The machine as found: no croft package, no state, /etc/croft absent or empty (restored after).
  assert.equal(process.getuid?.(), 0, 'dpkg -i needs root');
  assert.ok(!installed(), 'a croft package is already installed on this machine: the test would purge it');
  for (const p of ['/usr/lib/croft', '/usr/bin/croft']) assert.ok(!exists(p), `${p} exists: the purge at the end would remove it`);
  // Empty folders the purge removes are made again afterwards (other tests may have left them).
  const emptyBefore = new Map<string, number>();
  for (const d of ['/etc/croft', '/var/lib/croft']) {
    const st = fs.statSync(d, { throwIfNoEntry: false });
    if (!st) continue;
    assert.deepEqual(fs.readdirSync(d), [], `${d} holds files: the purge at the end would remove them`);
    emptyBefore.set(d, st.mode & 0o7777);
  }

  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-deb-'));
  const version = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')).version as string;
  const deb = path.join(out, `croft_${version}_amd64.deb`);
  try {
    const t0 = Date.now();
    must('bash', [path.join(repoRoot, 'scripts', 'build-deb.sh'), out], { cwd: repoRoot });
    const buildMs = Date.now() - t0;
    assert.ok(fs.existsSync(deb), `${deb} was not built`);
    console.log(`deb: built ${path.basename(deb)} (${(fs.statSync(deb).size / 1e6).toFixed(1)} MB) in ${(buildMs / 1000).toFixed(1)} s`);

    // Control: name, version, architecture, the runtime dependencies.
    const info = must('dpkg-deb', ['-f', deb]);
    assert.match(info, /^Package: croft$/m);
    assert.match(info, new RegExp(`^Version: ${version.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(info, /^Architecture: amd64$/m);
    const depends = /^Depends: (.*)$/m.exec(info)?.[1] ?? '';
    for (const d of ['nodejs (>= 20)', 'nftables', 'fuse3', 'iproute2']) assert.ok(depends.split(', ').includes(d), `Depends lacks ${d}: ${depends}`);
    const control = must('dpkg-deb', ['-I', deb]);
    for (const s of ['postinst', 'prerm', 'postrm']) assert.match(control, new RegExp(`\\d+ bytes,\\s+\\d+ lines\\s+\\*\\s+${s}`), `${s} missing or not executable`);

    // Contents: what bin/croft.js needs, modes croft's own checks accept, no tests, no dev packages, no config.
    const listing = must('dpkg-deb', ['-c', deb]).trim().split('\n');
    const entries = new Map<string, { perms: string; owner: string; link?: string }>();
    for (const line of listing) {
      const m = /^(\S+) (\S+)\s+\d+ \S+ \S+ \.(\/.*?)\/?(?: -> (.+))?$/.exec(line);
      assert.ok(m, `unexpected dpkg-deb -c line: ${line}`);
      entries.set(m[3]!, { perms: m[1]!, owner: m[2]!, link: m[4] });
    }
    const want = [
      '/usr/lib/croft/package.json', '/usr/lib/croft/bin/croft.js', '/usr/lib/croft/dist/top/cli/main.js', '/usr/lib/croft/dist/top/cli/init.js',
      '/usr/lib/croft/dist/farm/driver.js', '/usr/lib/croft/dist/mirror/runtime.js', '/usr/lib/croft/native/croft.linux-x64-gnu.node',
      '/usr/lib/croft/node_modules/fastify/package.json', '/usr/lib/croft/node_modules/yaml/package.json', '/lib/systemd/system/croft.service',
      '/usr/share/croft/modules/nginx-farm/module.yaml', '/usr/share/croft/modules/postgresql-mirror/start_prim', '/etc/croft',
      '/usr/share/croft/modules/lib/croft.sh',
      '/usr/share/doc/croft/examples/cluster.yaml.example', '/usr/share/doc/croft/copyright', '/etc/logrotate.d/croft',
    ];
    for (const p of want) assert.ok(entries.has(p), `${p} is not in the package`);
    assert.equal(entries.get('/usr/bin/croft')?.link, '../lib/croft/bin/croft.js');
    assert.equal(entries.get('/usr/lib/croft/modules')?.link, '../../share/croft/modules');
    for (const [p, e] of entries) {
      assert.equal(e.owner, 'root/root', `${p} is owned by ${e.owner}`);
      if (e.perms.startsWith('l')) continue;
      assert.ok(e.perms[5] !== 'w' && e.perms[8] !== 'w', `${p} is writable by group or others (${e.perms})`);
      assert.ok(!/[sStT]/.test(e.perms), `${p} has a set-id or sticky bit (${e.perms})`);
    }
    for (const s of ['nginx-farm/start_both', 'nginx-farm/stop_both', 'postgresql-mirror/start_prim', 'postgresql-mirror/check']) {
      assert.equal(entries.get(`/usr/share/croft/modules/${s}`)?.perms, '-rwxr-xr-x', `${s} is not 0755`);
    }
    assert.equal(entries.get('/usr/lib/croft/bin/croft.js')?.perms, '-rwxr-xr-x');
    for (const p of entries.keys()) {
      assert.ok(!p.startsWith('/usr/lib/croft/dist/test'), `a test is shipped: ${p}`);
      assert.ok(!(p.startsWith('/usr/lib/croft/dist/') && p.endsWith('.js.map')), `a source map of croft is shipped: ${p}`);
      assert.ok(!/^\/usr\/lib\/croft\/node_modules\/(typescript|@napi-rs|@types)\//.test(p), `a dev dependency is shipped: ${p}`);
      assert.ok(!p.startsWith('/etc/croft/'), `a configuration is shipped: ${p} (the daemon must not start before croft init)`);
    }
    try {
      // Install.
      const inst = must('dpkg', ['-i', deb]);
      assert.match(inst, /no configuration yet\. Create one with: croft init/);
      assert.ok(installed());
      assert.ok(fs.lstatSync('/etc/systemd/system/multi-user.target.wants/croft.service').isSymbolicLink(), 'the service is enabled');
      assert.ok(!exists('/etc/croft/cluster.yaml'));
      assert.match(must('/usr/bin/croft', ['help']), /init --name C --node/);
      // The installed addon loads from /usr/lib/croft/native (the daemon's farm and mirror need it).
      const addon = must('node', ['--input-type=module', '-e',
        "const m = await import('/usr/lib/croft/dist/src/native/load.js'); const b = m.loadNative(); console.log(m.nativeAddonPath(), Object.keys(b).length)"]);
      assert.match(addon, /^\/usr\/lib\/croft\/native\/croft\.linux-x64-gnu\.node [1-9]\d*$/m);

      // Configure with the installed command (default folder /etc/croft), modules from /usr/share/croft/modules.
      const init = must('/usr/bin/croft', ['init', '--name', 'debtest', '--node', 'n1=10.0.0.1,10.1.0.1', '--node', 'n2=10.0.0.2,10.1.0.2', '--node', 'n3=10.0.0.3,10.1.0.3']);
      assert.match(init, /\/etc\/croft: configuration OK: cluster debtest, 3 nodes/);
      assert.equal(fs.statSync('/etc/croft/cluster.key').mode & 0o777, 0o600);
      must('/usr/bin/croft', ['module', 'add', 'nginx-farm', 'web', '--set', 'vip=10.0.0.100']);
      must('/usr/bin/croft', ['module', 'add', 'postgresql-mirror', 'db', '--set', 'vip=10.0.0.60']);
      const check = must('/usr/bin/croft', ['check', '/etc/croft']);
      assert.match(check, /module web: farm on n1, n2, n3/);
      assert.match(check, /module db: mirror on n1, n2/);

      // The unit, as systemd reads it (no systemd as PID 1 needed).
      const analyze = run('systemd-analyze', ['verify', '/lib/systemd/system/croft.service']);
      assert.ok(!analyze.error, `systemd-analyze is missing (apt-get install systemd): ${analyze.error?.message}`);
      assert.equal(analyze.code, 0, `systemd-analyze verify: ${analyze.stdout}${analyze.stderr}`);
      assert.doesNotMatch(analyze.stderr, /croft\.service/, `systemd-analyze verify warns about the unit: ${analyze.stderr}`);
      const unitText = fs.readFileSync('/lib/systemd/system/croft.service', 'utf8');
      for (const l of ['After=network-online.target', 'Restart=on-failure', 'ConditionPathExists=/etc/croft/cluster.yaml', 'ExecStart=/usr/bin/croft daemon --config /etc/croft', 'KillMode=mixed']) {
        assert.ok(unitText.split('\n').includes(l), `the unit lacks ${l}`);
      }

      // Reinstalling over itself (the upgrade path: prerm upgrade, postinst configure <old>) keeps the
      // configuration, and an administrator's disable (systemctl disable works without systemd running).
      const key = fs.readFileSync('/etc/croft/cluster.key', 'utf8');
      must('systemctl', ['disable', 'croft.service']);
      assert.ok(!exists('/etc/systemd/system/multi-user.target.wants/croft.service'));
      must('dpkg', ['-i', deb]);
      assert.equal(fs.readFileSync('/etc/croft/cluster.key', 'utf8'), key);
      assert.equal(run('/usr/bin/croft', ['check', '/etc/croft']).code, 0);
      assert.ok(!exists('/etc/systemd/system/multi-user.target.wants/croft.service'), 'the upgrade enabled a service the administrator disabled');

      await labOnInstalledCroft();
    } finally {
      const purge = run('dpkg', ['--purge', 'croft']);
      assert.equal(purge.code, 0, `dpkg --purge croft: ${purge.stdout}${purge.stderr}`);
      // Checked before the empty folders found at the start are made again.
      const left = LEFTOVERS.filter(exists);
      for (const [d, mode] of emptyBefore) {
        if (!exists(d)) {
          fs.mkdirSync(d);
          fs.chmodSync(d, mode);
        }
      }
      assert.ok(!installed(), 'croft is still installed after the purge');
      assert.deepEqual(left, [], `left after dpkg --purge: ${left.join(', ')}`);
    }
  } finally {
    if (installed()) run('dpkg', ['--purge', 'croft']);
    fs.rmSync(out, { recursive: true, force: true });
  }
});
