// The farm application modules (modules/nginx-farm, apache-farm, generic-farm) run by hand in a lab
// without daemons: their start_both/stop_both run in each node's namespaces, as croft would run
// them. Shown: each node runs its own server (its page names the node, its logs are private, the
// host's are untouched), start is idempotent, stop stops exactly that server, a killed server's
// leftovers (stale pid file, orphaned workers) do not block the next start, and the http checker's
// URL in module.yaml is what the server answers.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { Lab } from '../../top/lab/index.js';
import { nsInode, pidsIn } from '../../top/lab/procs.js';
import { netnsPath } from '../../top/lab/names.js';
import { repoRoot } from '../helpers/paths.js';
import { waitFor } from '../helpers/cluster.js';

interface Spec {
  /** Folder under modules/. */
  folder: string;
  port: number;
  /** The executable of the server's processes. */
  exe: string;
  /** The module's pid file (master / main process), as seen inside a node. */
  pidFile: string;
  /** Private log folder (as seen inside a node) and the log file the server writes there. */
  logDir: string;
  accessLog: string;
}

const MODULE = 'web';
const specs: Spec[] = [
  {
    folder: 'nginx-farm', port: 80, exe: '/usr/sbin/nginx', pidFile: `/run/croft/${MODULE}/nginx.pid`,
    logDir: '/var/log/nginx', accessLog: `croft-${MODULE}-access.log`,
  },
  {
    folder: 'apache-farm', port: 80, exe: '/usr/sbin/apache2', pidFile: `/run/croft/${MODULE}/apache2.pid`,
    logDir: '/var/log/apache2', accessLog: `croft-${MODULE}-access.log`,
  },
  {
    folder: 'generic-farm', port: 8081, exe: process.execPath, pidFile: `/run/croft/${MODULE}/server.pid`,
    logDir: '/var/log/croft', accessLog: `${MODULE}.log`,
  },
];

/** Names, sizes and mtimes of a host folder (null when it does not exist). */
function listing(dir: string): string | null {
  if (!fs.existsSync(dir)) return null;
  return fs.readdirSync(dir).sort().map((f) => {
    const st = fs.statSync(path.join(dir, f));
    return `${f} ${st.size} ${st.mtimeMs}`;
  }).join('\n');
}

function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Live processes of the server's executable inside the node's network namespace. */
function serverPids(lab: Lab, node: string, exe: string): number[] {
  const ns = lab.snapshot.nodes.find((n) => n.name === node)!.namespace;
  const ino = nsInode(netnsPath(ns));
  assert.ok(ino !== undefined, `netns of ${node}`);
  return pidsIn([ino], []).filter((pid) => {
    try {
      return alive(pid) && fs.readlinkSync(`/proc/${pid}/exe`) === exe;
    } catch {
      return false;
    }
  });
}

for (const spec of specs) {
  describe(`modules/${spec.folder} in a 2-node lab (scripts run by hand)`, { timeout: 120_000 }, () => {
    test('each node runs its own server; start is idempotent; stop stops it; a killed one is recovered', async () => {
      const config = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-farmmod-'));
      fs.cpSync(path.join(repoRoot, 'modules', spec.folder), path.join(config, 'modules', MODULE), { recursive: true });
      const hostLogBefore = listing(spec.logDir);
      const labName = `fm${spec.folder.slice(0, 2)}${process.pid % 100000}`;
      const lab = await Lab.up({ name: labName, nodes: 2, clients: 1, daemons: false, config }).catch((e: unknown) => {
        fs.rmSync(config, { recursive: true, force: true });
        throw e;
      });
      const env = (node: string) => ({ CROFT_NODE: node, CROFT_MODULE: MODULE, CROFT_CLUSTER: labName, CROFT_STATE: 'UP' });
      const script = (node: string, name: 'start_both' | 'stop_both') =>
        lab.exec(node, [`/etc/croft/modules/${MODULE}/${name}`], { env: { ...env(node), CROFT_SCRIPT: name }, timeoutMs: 30_000 });
      const fromClient = async (node: string): Promise<string | null> => {
        // From the client's first source address (its default source is the gateway's).
        const r = await lab.exec('client', ['curl', '-sS', '--max-time', '2', '--interface', lab.clientAddresses()[0]!, `http://${lab.nodeAddress(node)}:${spec.port}/`]);
        return r.code === 0 ? r.stdout : null;
      };
      const masterPid = async (node: string): Promise<number> => {
        const r = await lab.exec(node, ['cat', spec.pidFile]);
        assert.equal(r.code, 0, `pid file ${spec.pidFile} on ${node}: ${r.stderr}`);
        // The node has its own PID namespace: the file holds the node's pid, the test acts on the host's.
        const hostPid = lab.hostPid(node, Number(r.stdout.trim()));
        assert.ok(hostPid !== undefined, `pid ${r.stdout.trim()} of ${node} runs`);
        return hostPid;
      };
      const privateDir = (node: string, target: string) => lab.snapshot.nodes.find((n) => n.name === node)!.dirs[target]!;
      try {
        // The shipped module.yaml passes croft's config check (with the lab's cluster.yaml).
        const mod = loadConfig(lab.configDir).modules.find((m) => m.name === MODULE);
        assert.equal(mod?.kind, 'farm');
        assert.equal(mod.farm?.vip, '10.77.0.100');
        assert.deepEqual(mod.farm.ports, [spec.port]);
        const checker = mod.checkers.find((c) => c.type === 'http');
        assert.ok(checker?.type === 'http', 'module.yaml has an http checker');
        const checkerUrl = checker.url;

        // Two independent servers, each naming its node.
        for (const node of ['n1', 'n2']) {
          const r = await script(node, 'start_both');
          assert.equal(r.code, 0, `start_both on ${node}: ${r.stdout}${r.stderr}`);
        }
        for (const node of ['n1', 'n2']) assert.equal(await fromClient(node), `node ${node}\n`);

        // The checker's URL, fetched inside the node, is answered by that node's server.
        for (const node of ['n1', 'n2']) {
          const r = await lab.exec(node, ['curl', '-sS', '--max-time', '2', '-o', '/dev/null', '-w', '%{http_code}', checkerUrl]);
          assert.equal(r.stdout, '200', `checker url ${checkerUrl} on ${node}: ${r.stderr}`);
          const body = await lab.exec(node, ['curl', '-sS', '--max-time', '2', checkerUrl]);
          assert.equal(body.stdout, `node ${node}\n`);
        }

        // Private logs: each node's log file is in its own folder and records the client's request;
        // the host's folder is as it was.
        const client = lab.clientAddresses()[0]!;
        for (const node of ['n1', 'n2']) {
          const file = path.join(privateDir(node, spec.logDir), spec.accessLog);
          await waitFor(`${spec.accessLog} of ${node} mentions the client`, () => fs.existsSync(file) && fs.readFileSync(file, 'utf8').includes(client), 2000);
          assert.ok(fs.existsSync(file), `${file} exists`);
        }
        assert.equal(listing(spec.logDir), hostLogBefore, `the host's ${spec.logDir} is untouched`);

        // start_both again: success, the same server keeps running.
        const pid1 = await masterPid('n1');
        assert.ok(alive(pid1));
        const again = await script('n1', 'start_both');
        assert.equal(again.code, 0, `second start_both: ${again.stdout}${again.stderr}`);
        assert.match(again.stdout, /already running/);
        assert.equal(await masterPid('n1'), pid1);

        // SIGKILL of the main process (its pid file goes stale, workers/children may linger):
        // start_both cleans up and starts a new server.
        process.kill(pid1, 'SIGKILL');
        await waitFor(`pid ${pid1} dead`, () => !alive(pid1), 2000);
        const orphans = serverPids(lab, 'n1', spec.exe); // nginx workers and apache2 children outlive their parent
        const restart = await script('n1', 'start_both');
        assert.equal(restart.code, 0, `start_both after kill -9: ${restart.stdout}${restart.stderr}`);
        const pid2 = await masterPid('n1');
        assert.notEqual(pid2, pid1);
        assert.ok(alive(pid2));
        assert.equal(await fromClient('n1'), 'node n1\n');
        assert.deepEqual(orphans.filter(alive), [], `leftovers of the killed server (${orphans.join(' ')}) are gone`);

        // stop_both stops exactly n1's server: port closed, no process of it left; n2 still serves.
        const n1Pids = serverPids(lab, 'n1', spec.exe);
        assert.ok(n1Pids.includes(pid2), `the new server ${pid2} is among n1's ${spec.exe} processes ${n1Pids.join(' ')}`);
        const stop = await script('n1', 'stop_both');
        assert.equal(stop.code, 0, `stop_both: ${stop.stdout}${stop.stderr}`);
        assert.equal(await fromClient('n1'), null, 'n1 no longer answers');
        assert.ok(!alive(pid2), `pid ${pid2} is gone`);
        assert.deepEqual(serverPids(lab, 'n1', spec.exe), [], `no ${spec.exe} left on n1`);
        assert.ok(serverPids(lab, 'n2', spec.exe).length > 0);
        assert.equal(await fromClient('n2'), 'node n2\n');

        // stop_both when stopped: success. Then stop n2 too.
        const stop2 = await script('n1', 'stop_both');
        assert.equal(stop2.code, 0, `second stop_both: ${stop2.stdout}${stop2.stderr}`);
        const stopN2 = await script('n2', 'stop_both');
        assert.equal(stopN2.code, 0);
        assert.deepEqual(serverPids(lab, 'n2', spec.exe), []);
        assert.equal(await fromClient('n2'), null);
        assert.equal(listing(spec.logDir), hostLogBefore, `the host's ${spec.logDir} is untouched`);
      } finally {
        // Whatever the scripts left: lab down kills every process in the lab's namespaces.
        await lab.down();
        fs.rmSync(config, { recursive: true, force: true });
      }
    });
  });
}
