// `croft reload` in a 2-node lab (issue 12 part 4): one module's file changes in the lab's config
// folder (shared by the nodes as /etc/croft); a reload on each node restarts that module alone, the
// other keeps its application process and has no transition; an invalid change is refused with
// file:line and nothing changes. A farm module (nginx-farm) added by a reload serves on its VIP, and
// removed by a reload leaves no filter nor VIP.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, test } from 'vitest';
import { Lab } from '../../top/lab/index.js';
import { daemonLog, nodeStatus, waitFor } from '../helpers/cluster.js';
import { croftBin, repoRoot } from '../helpers/paths.js';
import { writeLightModule } from '../helpers/light-module.js';

const VIP = '10.77.0.100'; // modules/nginx-farm/module.yaml
const SITE = '/run/croft/reload-site'; // private to each lab node

const nodes = ['n1', 'n2'];

describe('croft reload in a 2-node lab', { timeout: 180_000 }, () => {
  let lab: Lab;
  let config: string;
  beforeAll(async () => {
    config = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-reloadtest-'));
    writeLightModule(config, 'keep', 5000);
    writeLightModule(config, 'change', 5000);
    lab = await Lab.up({ name: `rl${process.pid % 100000}`, nodes: 2, clients: 1, config, intervalMs: 100, timeoutMs: 500 });
  });
  afterAll(async () => {
    await lab?.down();
    fs.rmSync(config, { recursive: true, force: true });
  });

  const pid = async (node: string, module: string) => {
    const r = await lab.exec(node, ['cat', `/run/croft/${module}.pid`]);
    return r.code === 0 ? Number(r.stdout.trim()) : null;
  };
  const reload = (node: string) => lab.exec(node, [process.execPath, croftBin, 'reload', '--config', '/etc/croft']);
  const upEverywhere = async (module: string) => {
    const st = await nodeStatus(lab, 'n1');
    return nodes.every((n) => st?.modules[module]?.nodes[n]?.state === 'UP');
  };

  test('a changed module restarts alone; the other keeps its process; an invalid change is refused with file:line', async () => {
    await waitFor('keep and change UP on both nodes', async () => (await upEverywhere('keep')) && (await upEverywhere('change')), 20_000);
    const before: Record<string, { keep: number | null; change: number | null }> = {};
    for (const n of nodes) before[n] = { keep: await pid(n, 'keep'), change: await pid(n, 'change') };
    for (const n of nodes) assert.ok(before[n]!.keep && before[n]!.change, `both applications run on ${n}`);
    const t0 = Date.now();

    writeLightModule(lab.configDir, 'change', 6000);
    for (const n of nodes) {
      const r = await reload(n);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`reload on ${n}: restarted change; 1 untouched`));
    }
    await waitFor('change UP again on both nodes', () => upEverywhere('change'), 20_000);
    for (const n of nodes) {
      assert.equal(await pid(n, 'keep'), before[n]!.keep, `keep's application on ${n} was not restarted`);
      const now = await pid(n, 'change');
      assert.ok(now !== null && now !== before[n]!.change, `change's application on ${n} restarted (${before[n]!.change} -> ${now})`);
      const lines = daemonLog(lab, n).filter((l) => Date.parse(l.time) >= t0 && l.event === 'module_state');
      assert.ok(!lines.some((l) => l.module === 'keep'), `no transition of keep on ${n}`);
      assert.ok(lines.some((l) => l.module === 'change' && l.to === 'STOP'), `change went through STOP on ${n}`);
    }

    // Invalid: refused whole with file:line, exit 1; nothing restarts.
    const file = path.join(lab.configDir, 'modules', 'keep', 'module.yaml');
    fs.appendFileSync(file, 'restart:\n  maxloop: many\n');
    writeLightModule(lab.configDir, 'change', 7000);
    const pids = { keep: await pid('n1', 'keep'), change: await pid('n1', 'change') };
    const bad = await reload('n1');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /\/etc\/croft\/modules\/keep\/module\.yaml:\d+:\d+: restart\.maxloop/);
    assert.deepEqual({ keep: await pid('n1', 'keep'), change: await pid('n1', 'change') }, pids);

    // SIGHUP does the same: refused and logged while the file is invalid, applied once it is fixed.
    const daemonPid = (await lab.status()).nodes.find((s) => s.name === 'n2')?.daemonPid;
    assert.ok(daemonPid, 'the daemon of n2 runs');
    const t1 = Date.now();
    const after = (event: string) => daemonLog(lab, 'n2').filter((l) => Date.parse(l.time) >= t1 && l.event === event);
    process.kill(daemonPid, 'SIGHUP');
    await waitFor('reload_refused logged on n2', () => after('reload_refused').length > 0, 10_000);
    assert.match(String(after('reload_refused')[0]!.error), /\/etc\/croft\/modules\/keep\/module\.yaml:\d+:\d+: restart\.maxloop/);
    const keepN2 = await pid('n2', 'keep');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('restart:\n  maxloop: many\n', ''));
    process.kill(daemonPid, 'SIGHUP');
    await waitFor('reload logged on n2', () => after('reload').length > 0, 10_000);
    assert.deepEqual(after('reload')[0]!.restarted, ['change']);
    await waitFor('change UP again on both nodes', () => upEverywhere('change'), 20_000);
    assert.equal(await pid('n2', 'keep'), keepN2, 'keep untouched by the SIGHUP reload');
    // n1 refused the invalid file: it still runs the previous `change`, until it reloads too.
    const n1 = await reload('n1');
    assert.equal(n1.code, 0, n1.stderr);
    assert.match(n1.stdout, /reload on n1: restarted change; 1 untouched/);
  });

  test('a farm module added by a reload serves on its VIP; removed by a reload, its VIP is gone', async () => {
    for (const n of nodes) {
      const r = await lab.exec(n, ['sh', '-c', `mkdir -p ${SITE} && echo ${n} > ${SITE}/who && chmod -R a+rX ${SITE}`]);
      assert.equal(r.code, 0, r.stderr);
    }
    const web = path.join(lab.configDir, 'modules', 'web');
    fs.cpSync(path.join(repoRoot, 'modules', 'nginx-farm'), web, { recursive: true });
    fs.writeFileSync(path.join(web, 'site.conf'), `server {
    listen 0.0.0.0:80 default_server;
    server_name _;
    root ${SITE};
    location = / { default_type text/plain; try_files /who =404; }
}
`);
    const keep = { n1: await pid('n1', 'keep'), n2: await pid('n2', 'keep') };
    for (const n of nodes) {
      const r = await reload(n);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /started web; 2 untouched/);
    }
    await waitFor('web UP on both nodes', () => upEverywhere('web'), 30_000);
    const who = async () => {
      const r = await lab.exec('client', ['curl', '-s', '--max-time', '2', `http://${VIP}/`], { timeoutMs: 10_000 });
      return r.code === 0 ? r.stdout.trim() : null;
    };
    await waitFor('the VIP answers', async () => nodes.includes((await who()) ?? ''), 15_000);
    const vipSeen = async (n: string) => (await lab.exec(n, ['nft', 'list', 'ruleset'])).stdout.includes(VIP)
      || (await lab.exec(n, ['ip', '-o', 'addr'])).stdout.includes(VIP);
    for (const n of nodes) assert.ok(await vipSeen(n), `the farm's filter or VIP is on ${n} while it serves`);

    fs.rmSync(path.join(web, 'module.yaml')); // its scripts stay until the reload has stopped it
    for (const n of nodes) {
      const r = await reload(n);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /stopped web; 2 untouched/);
    }
    const st = await nodeStatus(lab, 'n1');
    assert.equal(st?.modules.web, undefined, 'web is no module any more');
    assert.equal(await who(), null, 'the VIP no longer answers');
    for (const n of nodes) assert.ok(!(await vipSeen(n)), `no farm filter nor VIP left on ${n}`);
    assert.deepEqual({ n1: await pid('n1', 'keep'), n2: await pid('n2', 'keep') }, keep, 'keep untouched throughout');
  });
});
