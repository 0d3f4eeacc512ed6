// `croft init` + `croft config push --reload` in a 3-node lab (issue 12, parts 2 to 4 together):
// the configuration is made with `croft init` and `croft module add` (an nginx farm and two light
// modules), each node runs its own copy of it (so a push has something to do: the lab's shared
// /etc/croft would not), 200 keep-alive clients hold connections to the farm's VIP, and a module
// added and one changed on n1 are pushed to every node and reloaded: the added module runs
// everywhere, the changed one restarts, the untouched ones keep their processes and the clients
// lose no connection. A bad configuration is refused whole, by the push and by a reload, with its
// file:line, and changes nothing anywhere. Figures are printed on '#' lines.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, test } from 'vitest';
import { Lab, NODE_CONFIG_PATH } from '../../top/lab/index.js';
import { daemonCommand } from '../../top/lab/daemons.js';
import { nodeAddress } from '../../top/lab/names.js';
import { nodeStatus, sleep, waitFor } from '../helpers/cluster.js';
import { farmStatus, Holders } from '../helpers/farm-lab.js';
import { croftBin } from '../helpers/paths.js';
import { writeLightModule } from '../helpers/light-module.js';

const NODES = ['n1', 'n2', 'n3'];
const VIP = '10.77.0.100';
/** Each node's configuration folder: in its private /run/croft, a plain folder (not a mount point) that a push can swap. */
const CONF = '/run/croft/etc/croft';
const confOf = (lab: Lab, node: string) => path.join(lab.stateDir, 'nodes', node, 'run-croft', 'etc', 'croft');

function croft(args: string[]): string {
  const r = spawnSync(process.execPath, [croftBin, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `croft ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** Every file of a folder (relative path -> content), hidden names aside. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const r = path.join(rel, e.name);
      if (e.isDirectory()) walk(r);
      else out[r] = fs.readFileSync(path.join(dir, r), 'utf8');
    }
  };
  walk('');
  return out;
}

describe('croft init, config push and reload in a 3-node lab whose nodes each have their own folder', { timeout: 300_000 }, () => {
  let lab: Lab;
  let made: string;
  let holders: Holders | undefined;
  const pid = async (node: string, module: string) => {
    const r = await lab.exec(node, ['cat', `/run/croft/${module}.pid`]);
    return r.code === 0 ? Number(r.stdout.trim()) : null;
  };
  const pids = async (module: string) => Promise.all(NODES.map((n) => pid(n, module)));
  const upEverywhere = async (module: string) => {
    const st = await nodeStatus(lab, 'n1');
    return NODES.every((n) => st?.modules[module]?.nodes[n]?.state === 'UP');
  };

  beforeAll(async () => {
    made = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-pushtest-'));
    fs.rmdirSync(made); // croft init makes the folder itself
    // What an administrator types on the first node (the lab's addresses; the API open to the other
    // nodes, which a push needs).
    const init = croft(['init', '--dir', made, '--name', 'pushlab', '--api-host', '0.0.0.0',
      ...NODES.flatMap((n, i) => ['--node', `${n}=${nodeAddress(i + 1, 0)}`])]);
    assert.match(init, /configuration OK: cluster pushlab, 3 nodes/);
    assert.equal(fs.statSync(path.join(made, 'cluster.key')).mode & 0o777, 0o600);
    croft(['module', 'add', 'nginx-farm', 'web', '--dir', made, '--set', `vip=${VIP}`, '--set', 'seed=1']);
    writeLightModule(made, 'keep', 5000);
    writeLightModule(made, 'change', 5000);
    croft(['check', made]);
    lab = await Lab.up({ name: `cp${process.pid % 100000}`, nodes: 3, clients: 200, config: made, daemons: false });
    // Each node gets its own copy of the folder (as scp -rp would), and its daemon reads that one.
    for (const n of NODES) {
      fs.mkdirSync(path.dirname(confOf(lab, n)), { recursive: true, mode: 0o755 });
      fs.cpSync(lab.configDir, confOf(lab, n), { recursive: true });
      await lab.start(n, daemonCommand(n).map((a) => (a === NODE_CONFIG_PATH ? CONF : a)));
    }
  });
  afterAll(async () => {
    holders?.kill();
    await lab?.down();
    fs.rmSync(made, { recursive: true, force: true });
  });

  test('the configuration croft init and module add made runs on the three nodes, the same everywhere', async () => {
    await waitFor('farm web on n1, n2, n3 everywhere', async () => {
      const all = await Promise.all(NODES.map((n) => farmStatus(lab, n)));
      return all.every((f) => f?.active && JSON.stringify(f.members) === JSON.stringify(NODES));
    }, 60_000, 100);
    await waitFor('keep and change UP everywhere', async () => (await upEverywhere('keep')) && upEverywhere('change'), 30_000, 100);
    for (const n of NODES) assert.deepEqual((await nodeStatus(lab, n))?.configMismatch, [], `${n} sees no configuration difference`);
  });

  test('push --reload of a module added and one changed, under 200 keep-alive clients: every node runs both, nothing else moves, 0 connection broken', async () => {
    holders = new Holders(lab, VIP, lab.clientAddresses());
    await holders.ready();
    const keepBefore = await pids('keep');
    const changeBefore = await pids('change');
    assert.ok(keepBefore.every((p) => p) && changeBefore.every((p) => p), 'the light modules run everywhere');
    const webBefore = await Promise.all(NODES.map((n) => farmStatus(lab, n)));

    const mine = confOf(lab, 'n1');
    writeLightModule(mine, 'extra', 5000);
    const changeFile = path.join(mine, 'modules', 'change', 'module.yaml');
    fs.writeFileSync(changeFile, fs.readFileSync(changeFile, 'utf8').replace('timeout_ms: 5000', 'timeout_ms: 6000'));
    const t0 = Date.now();
    const r = await lab.exec('n1', ['croft', 'config', 'push', '--reload', '--config', CONF], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    const pushMs = Date.now() - t0;
    for (const n of ['n2', 'n3']) assert.match(r.stdout, new RegExp(`\\b${n}\\b`), `the push says what it did on ${n}:\n${r.stdout}`);
    // Every node's folder is now n1's, put in place whole; the one it had is kept beside it.
    for (const n of ['n2', 'n3']) {
      assert.deepEqual(tree(confOf(lab, n)), tree(mine), `${n}'s folder is n1's`);
      assert.ok(fs.existsSync(path.join(path.dirname(confOf(lab, n)), '.croft.previous', 'modules', 'change', 'module.yaml')), `${n} kept its previous folder`);
    }
    await waitFor('extra UP everywhere', () => upEverywhere('extra'), 30_000, 100);
    await waitFor('change UP everywhere', () => upEverywhere('change'), 30_000, 100);
    const changeAfter = await pids('change');
    NODES.forEach((n, i) => assert.notEqual(changeAfter[i], changeBefore[i], `change restarted on ${n}`));
    assert.deepEqual(await pids('keep'), keepBefore, 'keep kept its processes on every node');
    const webAfter = await Promise.all(NODES.map((n) => farmStatus(lab, n)));
    NODES.forEach((n, i) => assert.deepEqual(webAfter[i]?.members, webBefore[i]?.members, `the farm's members on ${n}`));
    for (const n of NODES) {
      await waitFor(`${n} sees the same configuration everywhere`, async () => (await nodeStatus(lab, n))?.configMismatch.length === 0, 10_000, 100);
    }

    await sleep(1000);
    const conns = await holders.stop();
    holders = undefined;
    const broken = conns.filter((c) => c.events.length > 0);
    const replies = conns.reduce((a, c) => a + c.replies, 0);
    assert.equal(conns.length, 200);
    assert.deepEqual(broken.map((c) => `${c.src}: ${c.events.map((e) => e.what).join(',')}`), [], 'no connection to the farm broke');
    console.log(`# config push --reload to 3 nodes (module added + module changed): ${pushMs} ms; 200 keep-alive clients, ${replies} replies, 0 connections broken; keep untouched`);
  });

  test('a bad configuration is refused whole by the push and by reload, with its file:line; nothing changes anywhere', async () => {
    const mine = confOf(lab, 'n1');
    const before = { n2: tree(confOf(lab, 'n2')), n3: tree(confOf(lab, 'n3')) };
    const bad = path.join(mine, 'modules', 'bad.yaml');
    fs.writeFileSync(bad, 'kind: light\nscripts:\n  start_both: /bin/true\n  stop_both: /bin/true\nbogus_key: 1\n');
    try {
      const p = await lab.exec('n1', ['croft', 'config', 'push', '--reload', '--config', CONF], { timeoutMs: 60_000 });
      assert.notEqual(p.code, 0, 'the push was refused');
      assert.match(`${p.stdout}${p.stderr}`, /modules\/bad\.yaml:5\b.*bogus_key/, `the push names file, line and key:\n${p.stdout}${p.stderr}`);
      const r = await lab.exec('n1', ['croft', 'reload', '--config', CONF]);
      assert.equal(r.code, 1, 'the reload was refused');
      assert.match(`${r.stdout}${r.stderr}`, /modules\/bad\.yaml:5\b.*bogus_key/);
      assert.deepEqual({ n2: tree(confOf(lab, 'n2')), n3: tree(confOf(lab, 'n3')) }, before, 'the other nodes\' folders are unchanged');
      const st = await nodeStatus(lab, 'n1');
      assert.equal(st?.modules.bad, undefined, 'no module bad');
      assert.ok(await upEverywhere('extra'));
    } finally {
      fs.rmSync(bad, { force: true });
    }
  });
});
