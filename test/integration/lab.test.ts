// The lab on the real kernel: namespaces, bridges, mount namespaces, faults and teardown.
// Each test builds its own lab with a unique name and removes it in `finally`.
// Daemons are a stand-in (sleep) here: the lab's job is to start, kill and restart them.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab } from '../../top/lab/index.js';
import { nsInode, pidsIn } from '../../top/lab/procs.js';
import { labCommand } from '../../top/cli/lab.js';

const STANDIN = () => ['sleep', '1000'];
const uniq = (tag: string) => `it${process.pid}${tag}`;

async function ping(lab: Lab, from: string, to: string, extra: string[] = []): Promise<boolean> {
  const r = await lab.exec(from, ['ping', '-n', '-q', '-c', '1', '-W', '1', ...extra, to]);
  return r.code === 0;
}

function pidGone(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

function leftovers(name: string): string[] {
  const found: string[] = [];
  for (const ns of fs.existsSync('/run/netns') ? fs.readdirSync('/run/netns') : []) {
    if (ns.startsWith(`croft-${name}-`)) found.push(`namespace ${ns}`);
  }
  for (const line of fs.readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    if (line.includes(`/run/croft-lab/${name}`)) found.push(`mount ${line}`);
  }
  if (fs.existsSync(`/run/croft-lab/${name}`)) found.push('state dir');
  return found;
}

const quietOut = () => {
  const lines: string[] = [];
  return { lines, out: { log: (s: string) => lines.push(s), error: (s: string) => lines.push(s) } };
};

test('3 nodes and 200 client addresses: reachability, private paths, cut/heal, kill/start, clean down', async () => {
  const name = uniq('a');
  const lab = await Lab.up({ name, nodes: 3, clients: 200, ipv6: true, daemonCommand: STANDIN });
  const pids: number[] = [];
  try {
    assert.equal(lab.clientAddresses().length, 200);
    assert.equal(lab.clientAddresses()[199], '10.100.0.200');
    const nodes = ['n1', 'n2', 'n3'];
    // Every node reaches every other node on LAN0.
    for (const a of nodes) for (const b of nodes) if (a !== b) assert.ok(await ping(lab, a, lab.nodeAddress(b)), `${a} -> ${b}`);
    // The client reaches every node, from several of its source addresses.
    for (const src of ['10.100.0.1', '10.100.0.77', '10.100.0.200']) {
      for (const n of nodes) assert.ok(await ping(lab, 'client', lab.nodeAddress(n), ['-I', src]), `client ${src} -> ${n}`);
    }
    // ipv6: the same in unique local addresses (fd00::/8), the client's sources routed through its gateway.
    assert.deepEqual([lab.clientAddresses6().length, lab.clientAddresses6()[199], lab.nodeAddress6('n3')], [200, 'fd00:100::c8', 'fd00:77::3']);
    for (const a of nodes) for (const b of nodes) if (a !== b) assert.ok(await ping(lab, a, lab.nodeAddress6(b)), `${a} -> ${b} (IPv6)`);
    for (const src of ['fd00:100::1', 'fd00:100::c8']) {
      for (const n of nodes) assert.ok(await ping(lab, 'client', lab.nodeAddress6(n), ['-I', src]), `client ${src} -> ${n} (IPv6)`);
    }

    // Same path on every node, different contents.
    const w = await lab.exec('n1', ['sh', '-c', 'echo from-n1 > /srv/croft/marker && cat /srv/croft/marker']);
    assert.equal(w.code, 0, w.stderr);
    assert.equal(w.stdout.trim(), 'from-n1');
    const r2 = await lab.exec('n2', ['sh', '-c', 'test -d /srv/croft && test -d /var/lib/croft && test -f /etc/croft/cluster.yaml && ls -A /srv/croft']);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(r2.stdout.trim(), '', 'n2 must not see n1\'s file');
    // The node's sysfs is its own (its interfaces, not the host's), and croft is on PATH.
    const sys = await lab.exec('n3', ['sh', '-c', 'ls /sys/class/net | sort | tr "\\n" " "; command -v croft']);
    assert.match(sys.stdout, /^eth0 lo \/\S*\/croft\n$/);

    // Each node has its own PID namespace: pid 1 is the node's init, pgrep sees that node's
    // daemon stand-in (every node runs one `sleep 1000`) and nothing of the other nodes.
    for (const n of nodes) {
      const ps = await lab.exec(n, ['sh', '-c', 'cat /proc/1/cmdline | tr "\\0" " "; echo; pgrep -xc sleep; echo $$']);
      assert.equal(ps.code, 0, ps.stderr);
      const [init, sleeps, self] = ps.stdout.split('\n');
      assert.match(init!, /^perl -e /, `pid 1 of ${n}`);
      assert.equal(sleeps, '1', `one sleep on ${n}: its own daemon stand-in`);
      assert.ok(Number(self) < 100, `a small pid space on ${n}: ${self}`);
    }

    // cut / heal.
    await lab.cut('n2');
    assert.equal(await ping(lab, 'n1', lab.nodeAddress('n2')), false, 'n2 is cut');
    assert.equal((await lab.status()).nodes[1]!.links[0]!.up, false);
    await lab.heal('n2');
    assert.ok(await ping(lab, 'n1', lab.nodeAddress('n2')), 'n2 is healed');

    // kill: the daemon stand-in and an application started through exec.
    const st = await lab.status();
    const daemonPid = st.nodes[0]!.daemonPid!;
    pids.push(...st.nodes.map((n) => n.daemonPid!));
    assert.equal(st.nodes[0]!.daemon, 'alive');
    const app = lab.spawn('n1', ['sleep', '1001'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(!pidGone(app.pid!));
    pids.push(app.pid!);
    const pidNs = nsInode(lab.snapshot.nodes[0]!.pidNs)!;
    const inNs = pidsIn([], [], [pidNs]);
    assert.ok(inNs.includes(daemonPid) && inNs.length >= 3, `init, daemon and app in n1's PID namespace: ${inNs}`);
    const killed = await lab.kill('n1');
    assert.ok(killed.includes(daemonPid) && killed.includes(app.pid!), `killed ${killed}`);
    assert.ok(pidGone(daemonPid) && pidGone(app.pid!));
    assert.deepEqual(pidsIn([], [], [pidNs]), [], 'the PID namespace died with its init');
    assert.notEqual(nsInode(lab.snapshot.nodes[0]!.pidNs), pidNs, 'n1 has a fresh PID namespace');
    assert.equal((await lab.status()).nodes[0]!.daemon, 'dead');
    assert.equal((await lab.status()).nodes[1]!.daemon, 'alive', 'other nodes untouched');
    const again = await lab.start('n1');
    pids.push(again);
    assert.equal((await lab.status()).nodes[0]!.daemon, 'alive');
  } finally {
    await lab.down();
  }
  assert.deepEqual(leftovers(name), []);
  for (const pid of pids) assert.ok(pidGone(pid), `pid ${pid} survived down`);
});

test('2 LANs: both work, cut --lan 1 cuts only LAN1, netem delay shows in ping RTT', async () => {
  const name = uniq('b');
  const lab = await Lab.up({ name, nodes: 2, lans: 2, daemons: false });
  try {
    for (const lan of [0, 1]) assert.ok(await ping(lab, 'n1', lab.nodeAddress('n2', lan)), `LAN${lan}`);
    await lab.cut('n2', 1);
    assert.equal(await ping(lab, 'n1', lab.nodeAddress('n2', 1)), false, 'LAN1 cut');
    assert.ok(await ping(lab, 'n1', lab.nodeAddress('n2', 0)), 'LAN0 still up');
    await lab.heal('n2', 1);
    assert.ok(await ping(lab, 'n1', lab.nodeAddress('n2', 1)), 'LAN1 healed');

    await lab.netem('n2', 'delay 100ms', 0);
    const r = await lab.exec('n1', ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '2', lab.nodeAddress('n2', 0)]);
    const avg = Number(/= [\d.]+\/([\d.]+)\//.exec(r.stdout)?.[1]);
    assert.ok(avg >= 95 && avg < 400, `RTT ${avg} ms with 100 ms delay`);
    const r1 = await lab.exec('n1', ['ping', '-n', '-c', '2', '-i', '0.2', '-W', '2', lab.nodeAddress('n2', 1)]);
    const avg1 = Number(/= [\d.]+\/([\d.]+)\//.exec(r1.stdout)?.[1]);
    assert.ok(avg1 < 50, `LAN1 has no delay, RTT ${avg1} ms`);
    assert.equal((await lab.status()).nodes[1]!.links[0]!.netem?.delayMs, 100);

    // TCP through the delayed link (checksum offload and GSO must survive the netem path).
    const srv = lab.spawn('n2', ['python3', '-m', 'http.server', '8080', '--bind', lab.nodeAddress('n2'), '--directory', '/usr/bin'], { stdio: 'ignore' });
    try {
      const get = `import urllib.request,time
for i in range(50):
    try:
        print(len(urllib.request.urlopen('http://${lab.nodeAddress('n2')}:8080/ls').read())); break
    except OSError: time.sleep(0.1)`;
      const t = await lab.exec('n1', ['python3', '-c', get]);
      assert.equal(Number(t.stdout.trim()), fs.statSync('/usr/bin/ls').size, t.stderr);
    } finally {
      srv.kill('SIGKILL');
    }

    await lab.netem('n2', 'clear', 0);
    const c = await lab.exec('n1', ['ping', '-n', '-c', '2', '-i', '0.2', '-W', '2', lab.nodeAddress('n2', 0)]);
    assert.ok(Number(/= [\d.]+\/([\d.]+)\//.exec(c.stdout)?.[1]) < 50, 'delay cleared');
  } finally {
    await lab.down();
  }
  assert.deepEqual(leftovers(name), []);
});

test('generated cluster.yaml, --config copy, and a second up of the same name is refused', async () => {
  const name = uniq('c');
  const src = fs.mkdtempSync('/tmp/croft-lab-cfg-');
  fs.mkdirSync(path.join(src, 'modules'));
  fs.writeFileSync(path.join(src, 'modules', 'web.yaml'), 'kind: light\n');
  const lab = await Lab.up({ name, nodes: 2, lans: 2, config: src, intervalMs: 50, timeoutMs: 300, daemons: false });
  try {
    const text = fs.readFileSync(path.join(lab.configDir, 'cluster.yaml'), 'utf8');
    assert.match(text, new RegExp(`name: ${name}`));
    assert.match(text, /interval_ms: 50/);
    assert.match(text, /timeout_ms: 300/);
    assert.match(text, /- 10\.78\.0\.2/);
    assert.match(text, /port: 9450/);
    const inNode = await lab.exec('n2', ['cat', '/etc/croft/modules/web.yaml']);
    assert.equal(inNode.stdout, 'kind: light\n');
    await assert.rejects(Lab.up({ name, daemons: false }), /already up/);
  } finally {
    await lab.down();
    fs.rmSync(src, { recursive: true, force: true });
  }
  assert.deepEqual(leftovers(name), []);
});

test('a lab whose state.json is gone (crash) is still removed by `lab down`; down on nothing exits 0', async () => {
  const name = uniq('d');
  const lab = await Lab.up({ name, nodes: 2, daemonCommand: STANDIN });
  let pids: number[] = [];
  try {
    const app = lab.spawn('n2', ['sleep', '1002'], { stdio: 'ignore', detached: true });
    app.unref();
    await new Promise((r) => setTimeout(r, 200));
    pids = [...(await lab.status()).nodes.map((n) => n.daemonPid!), app.pid!];
    fs.rmSync(path.join(lab.stateDir, 'state.json'));
    const q = quietOut();
    assert.equal(await labCommand(['down', '--name', name], q.out), 0, q.lines.join('\n'));
    assert.match(q.lines.join('\n'), /removed/);
  } finally {
    await Lab.down(name);
  }
  assert.deepEqual(leftovers(name), []);
  for (const pid of pids) assert.ok(pidGone(pid), `pid ${pid} survived down`);
  const q = quietOut();
  assert.equal(await labCommand(['down', '--name', name], q.out), 0);
  assert.match(q.lines.join('\n'), /no lab named/);
  assert.equal(await labCommand(['frobnicate'], quietOut().out), 2);
  // `lab up --ipv6` from the command line: the nodes get their unique local IPv6 addresses.
  const name6 = uniq('v');
  try {
    const up = quietOut();
    assert.equal(await labCommand(['up', '--name', name6, '--nodes', '1', '--no-daemons', '--ipv6'], up.out), 0, up.lines.join('\n'));
    const six = Lab.open(name6);
    assert.equal(six.nodeAddress6('n1'), 'fd00:77::1');
    assert.match((await six.exec('n1', ['ip', '-6', '-o', 'addr', 'show', 'dev', 'eth0'])).stdout, / fd00:77::1\/64 /);
  } finally {
    await Lab.down(name6);
  }
  assert.deepEqual(leftovers(name6), []);
});

test('an up that fails halfway removes what it made', async () => {
  const name = uniq('e');
  try {
    // The config folder is read after the namespaces and links exist.
    await assert.rejects(Lab.up({ name, nodes: 2, config: '/nonexistent/croft-lab-config', daemons: false }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'CROFT_ERR_LAB');
      assert.match(e.message, /removed.*not a folder/);
      return true;
    });
    assert.deepEqual(leftovers(name), []);
  } finally {
    await Lab.down(name);
  }
});

test('every directory a module config names is private per node, outside the fixed list too', async () => {
  const name = uniq('f');
  // A mirror module's dirs, a directory nothing else in the lab makes private (not /srv/croft,
  // not /var/lib/croft-apps): without a copy per node both nodes would write one host folder.
  const appDir = `/srv/croftlab-${process.pid}/data`;
  const hostTop = path.dirname(appDir);
  const existed = fs.existsSync(hostTop);
  const config = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-labpriv-'));
  fs.mkdirSync(path.join(config, 'modules'));
  fs.writeFileSync(path.join(config, 'modules', 'app.yaml'), `kind: mirror\nnodes: [n1, n2]\nvip: 10.77.0.60\ndirs: [${appDir}]\n`);
  const lab = await Lab.up({ name, nodes: 2, daemons: false, config });
  try {
    for (const n of ['n1', 'n2']) {
      const own = lab.snapshot.nodes.find((x) => x.name === n)!.dirs[appDir];
      assert.ok(own?.startsWith(lab.stateDir), `${n} has its own ${appDir}: ${own}`);
      // The lab says so where the node's daemon logs.
      const log = fs.readFileSync(lab.snapshot.nodes.find((x) => x.name === n)!.daemonLog, 'utf8');
      assert.match(log, new RegExp(`${n} has its own copy of .*${appDir}`));
    }
    const w = await lab.exec('n1', ['sh', '-c', `echo from-n1 > ${appDir}/marker && cat ${appDir}/marker`]);
    assert.equal(w.code, 0, w.stderr);
    assert.equal(w.stdout.trim(), 'from-n1');
    const r = await lab.exec('n2', ['sh', '-c', `test -d ${appDir} && ls -A ${appDir}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '', 'n2 does not see n1\'s file: no replication runs here');
    assert.equal(fs.existsSync(`${appDir}/marker`), false, 'nor does the host');
  } finally {
    await lab.down();
    fs.rmSync(config, { recursive: true, force: true });
    // The lab made the empty mount point in the host's tree (a bind needs one): remove it.
    // (rmdir: only if empty, never through a mount.)
    if (!existed) for (const d of [appDir, hostTop]) fs.rmdirSync(d);
  }
  assert.deepEqual(leftovers(name), []);
});
