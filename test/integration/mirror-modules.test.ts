// The mirror application modules (modules/postgresql-mirror, mariadb-mirror, redis-mirror,
// generic-mirror), their start_prim/stop_prim/check run by hand as croft runs them on a primary,
// without the mirror: each test "node" is a network namespace, a private mount namespace and a PID
// namespace made here (its own /run/croft and /var/log/croft bound over the host's paths, its own
// /proc, the module's VIP on its loopback: as a lab node), and the replicated directory is a temporary folder given through CROFT_MIRROR_DIR_0.
// Shown, for each server: first start initialises the data directory, a client commits a row
// through the VIP, stop_prim stops the server cleanly (the server's log says so) and leaves no
// process of it, start_prim again finds the row; after a SIGKILL of every server process, start_prim
// recovers and the committed rows are there; start_prim is idempotent; stop_prim with nothing
// running exits 0; the checker (its script, or croft's redis probe for redis-mirror) passes while
// the server runs and fails when it does not.
// Then the same over a real mirror (the native FUSE mount over the primary's folder, a replica
// writing the other folder, on loopback): the first start (initdb...) runs through FUSE
// (allow_other, default_permissions) as the server's own user, rows are committed, every server
// process is SIGKILLed (the primary's crash), and a second node started on the replica finds every
// committed row. And each module.yaml agrees with its lib.sh (dirs, VIP, scripts, checker).
// Standard ports are used: inside these namespaces they clash with nothing on the machine.
// Longer than 500 lines for one concept: the same steps for each of the four modules share one
// harness (the namespaced test node, the server's client), kept beside the steps it serves.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, beforeAll, describe, test } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { nsInode, pidsIn } from '../../top/lab/procs.js';
import { MirrorMount, MirrorReplica, lazyUnmount } from '../../src/native/index.js';
import { compiledUrl, repoRoot } from '../helpers/paths.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(argv: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

async function runOk(argv: string[]): Promise<void> {
  const r = await run(argv);
  assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
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

/** SIGKILL; a process already gone is fine (a child that exits on its parent's death, reaped at once by the node's init). */
function sigkill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}

function exeOf(pid: number): string {
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return '';
  }
}

function ppidOf(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return 0;
  }
}

let nsCounter = 0;

/** A test node: a network namespace with the VIP on lo, and mount and PID namespaces held by an init. */
class TestNode {
  readonly root: string;
  readonly data: string;
  readonly ns: string;
  #holder: ChildProcess | null = null;
  #netIno: number | undefined;

  constructor(readonly vip: string, data?: string) {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'crofttest-mirrormod-'));
    // The servers run as postgres, mysql, redis: they must reach the data folder.
    fs.chmodSync(this.root, 0o755);
    this.data = data ?? path.join(this.root, 'data');
    for (const d of ['run', 'log', 'data']) fs.mkdirSync(path.join(this.root, d), { mode: 0o755 });
    this.ns = `cmm${process.pid % 100000}x${nsCounter++}`;
  }

  async up(): Promise<void> {
    await runOk(['ip', 'netns', 'add', this.ns]);
    this.#netIno = nsInode(`/run/netns/${this.ns}`);
    await runOk(['ip', '-n', this.ns, 'link', 'set', 'lo', 'up']);
    await runOk(['ip', '-n', this.ns, 'addr', 'add', `${this.vip}/32`, 'dev', 'lo']);
    // Bind targets must exist in the host's tree (empty folders when croft never ran here).
    fs.mkdirSync('/run/croft', { recursive: true });
    fs.mkdirSync('/var/log/croft', { recursive: true });
    const script = [
      'set -e',
      `mount --bind '${this.root}/run' /run/croft`,
      `mount --bind '${this.root}/log' /var/log/croft`,
      'echo ready',
      // pid 1 of the node: reaps the orphans re-parented to it, as the lab's node init does.
      `exec perl -e '$SIG{CHLD} = sub {}; while (1) { while (wait() > 0) {} sleep 1 }'`,
    ].join('\n');
    // unshare (the holder) stays in the host's PID namespace; its child, the init, is pid 1 of the
    // new one, with the node's own /proc (--mount-proc).
    const holder = spawn('ip', ['netns', 'exec', this.ns, 'unshare', '--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child', '--mount-proc', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.#holder = holder;
    const lines = readline.createInterface({ input: holder.stdout! })[Symbol.asyncIterator]();
    const first = await lines.next();
    assert.equal(first.value, 'ready', 'the mount namespace is ready');
  }

  /** Runs argv inside the node's namespaces, with the module's environment. */
  exec(argv: string[], env: Record<string, string> = {}, timeoutMs = 200_000): Promise<Run> {
    assert.ok(this.#holder?.pid !== undefined);
    const pairs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    const h = this.#holder.pid;
    return run(['nsenter', '-t', String(h), '-m', '-n', `--pid=/proc/${h}/ns/pid_for_children`, '--', 'env', ...pairs, ...argv], {}, timeoutMs);
  }

  /** The holder and the node's init (its child). */
  #own(): number[] {
    const h = this.#holder?.pid;
    if (h === undefined) return [];
    let children: number[] = [];
    try {
      children = fs.readFileSync(`/proc/${h}/task/${h}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch { /* gone */ }
    return [h, ...children];
  }

  /** Live processes in the node's network namespace, the holder and the init excepted. */
  pids(): number[] {
    if (this.#netIno === undefined) return [];
    const own = this.#own();
    return pidsIn([this.#netIno], []).filter((p) => !own.includes(p) && alive(p));
  }

  /** The host's pid of the node's process nodePid (a pid file's). */
  hostPid(nodePid: number): number | undefined {
    return this.pids().find((p) => {
      try {
        return /^NSpid:\s+(.*)$/m.exec(fs.readFileSync(`/proc/${p}/status`, 'utf8'))?.[1]!.trim().split(/\s+/).at(-1) === String(nodePid);
      } catch {
        return false;
      }
    });
  }

  file(rel: string): string {
    return path.join(this.root, rel);
  }

  /** Kills what runs in the namespace (only processes this test started there), then removes it. */
  async down(): Promise<void> {
    // The init first: its death kills every process of the node's PID namespace.
    for (const p of [...this.#own().slice(1), ...this.pids()]) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    const h = this.#holder;
    if (h && h.exitCode === null && h.signalCode === null) {
      const gone = new Promise((r) => h.once('exit', r));
      h.kill('SIGKILL');
      await gone;
    }
    const deadline = Date.now() + 5000;
    while (this.pids().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await run(['ip', 'netns', 'del', this.ns]);
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

interface Spec {
  folder: string;
  vip: string;
  /** Executables of the server's processes (as /proc/<pid>/exe shows them). */
  serverExe: (exe: string) => boolean;
  /** A file or folder (relative to the replicated dir) that exists once the data is initialised. */
  initialised: string;
  /** Commits row through the VIP (a client inside the node). */
  write: (node: TestNode, row: string) => Promise<void>;
  /** The committed rows, sorted, comma-separated, read through the VIP. */
  read: (node: TestNode) => Promise<string>;
  /** What the server's log says after a clean stop, then a start (null: nothing to check). */
  cleanRestartLog: RegExp | null;
  /** What it says when it starts on the data of a crashed server (null: nothing to check). */
  crashRecoveryLog: RegExp | null;
  /** The generated config (under the node's /run/croft/<module>/) and the durability lines it must have. */
  durableConf: { file: string; lines: RegExp[] } | null;
}

async function clientOk(node: TestNode, argv: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await node.exec(argv, env, 30_000);
  assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout.trim();
}

const specs: Spec[] = [
  {
    folder: 'postgresql-mirror',
    vip: '10.77.0.60',
    serverExe: (e) => /^\/usr\/lib\/postgresql\/[^/]+\/bin\/postgres$/.test(e),
    initialised: 'data/PG_VERSION',
    // The application role of lib.sh, over TCP with its password (scram-sha-256 from 127.0.0.1,
    // 10.77/16 and 10.100/16).
    write: async (node, row) => {
      await clientOk(node, ['psql', '-X', '-v', 'ON_ERROR_STOP=1', '-h', node.vip, '-U', 'croft', '-d', 'croft', '-c',
        `create table if not exists t (x text); insert into t values ('${row}')`], { PGPASSWORD: 'croft' });
    },
    read: (node) => clientOk(node, ['psql', '-X', '-At', '-h', node.vip, '-U', 'croft', '-d', 'croft', '-c',
      "select coalesce(string_agg(x, ',' order by x), '') from t"], { PGPASSWORD: 'croft' }),
    // pg_ctl stop -m fast wrote a shutdown checkpoint: the next start needs no recovery.
    cleanRestartLog: /database system was shut down at/,
    crashRecoveryLog: /database system was interrupted|not properly shut down/,
    durableConf: { file: 'postgresql.conf', lines: [/^fsync = on$/m, /^synchronous_commit = on$/m, /^full_page_writes = on$/m] },
  },
  {
    folder: 'mariadb-mirror',
    vip: '10.77.0.61',
    serverExe: (e) => e === '/usr/sbin/mariadbd',
    initialised: 'data/mysql',
    write: async (node, row) => {
      await clientOk(node, ['mariadb', '--no-defaults', '-h', node.vip, '-u', 'croft', '-pcroft', 'croft', '-e',
        `create table if not exists t (x varchar(64)) engine=innodb; insert into t values ('${row}')`]);
    },
    read: async (node) => (await clientOk(node, ['mariadb', '--no-defaults', '-h', node.vip, '-u', 'croft', '-pcroft', 'croft', '-N', '-B', '-e',
      "select coalesce(group_concat(x order by x separator ','), '') from t"])),
    cleanRestartLog: /Shutdown complete/,
    crashRecoveryLog: /crash recovery/i,
    durableConf: { file: 'my.cnf', lines: [/^innodb_flush_log_at_trx_commit = 1$/m, /^innodb_doublewrite = 1$/m] },
  },
  {
    folder: 'redis-mirror',
    vip: '10.77.0.62',
    serverExe: (e) => e === fs.realpathSync('/usr/bin/redis-server'),
    initialised: 'appendonlydir',
    write: async (node, row) => {
      assert.equal(await clientOk(node, ['redis-cli', '-h', node.vip, '-p', '6379', 'sadd', 't', row]), '1');
    },
    read: async (node) => (await clientOk(node, ['redis-cli', '-h', node.vip, '-p', '6379', 'smembers', 't'])).split('\n').filter(Boolean).sort().join(','),
    cleanRestartLog: /ready to exit, bye bye/,
    crashRecoveryLog: null,
    durableConf: { file: 'redis.conf', lines: [/^appendonly yes$/m, /^appendfsync always$/m] },
  },
  {
    folder: 'generic-mirror',
    vip: '10.77.0.63',
    serverExe: (e) => e === process.execPath || path.basename(e) === 'node',
    initialised: 'kv.log',
    write: async (node, row) => {
      await clientOk(node, ['curl', '-fsS', '-m', '5', '-X', 'PUT', '--data', row, `http://${node.vip}:8082/kv/${row}`]);
    },
    read: async (node) => {
      const rows: string[] = [];
      for (const row of ['row1', 'row2']) {
        const r = await node.exec(['curl', '-sS', '-m', '5', '-w', '\n%{http_code}', `http://${node.vip}:8082/kv/${row}`]);
        assert.equal(r.code, 0, r.stderr);
        const [body, status] = r.stdout.split('\n');
        if (status === '200') rows.push(body!);
      }
      return rows.sort().join(',');
    },
    cleanRestartLog: null,
    crashRecoveryLog: null,
    durableConf: null,
  },
];

for (const spec of specs) {
  describe(`modules/${spec.folder}: start_prim/stop_prim on a data folder (no mirror)`, { timeout: 300_000 }, () => {
    const MODULE = spec.folder;
    const dir = path.join(repoRoot, 'modules', spec.folder);
    let node: TestNode;
    const env = (state: string): Record<string, string> => ({
      CROFT_NODE: 'n1', CROFT_MODULE: MODULE, CROFT_CLUSTER: 'test', CROFT_STATE: state, CROFT_MIRROR_DIR_0: node.data,
    });
    const script = (name: 'start_prim' | 'stop_prim' | 'check') => node.exec([path.join(dir, name)], env(name === 'stop_prim' ? 'STOP' : 'PRIM'));
    // The module's checker: its check script or, for a `type: redis` checker (redis-mirror), croft's
    // redis probe itself, run inside the node's namespaces where the server listens.
    const check = (): Promise<Run> => {
      const first = moduleCheckers(dir)[0]!;
      return first.type === 'redis' ? node.exec(redisProbeCommand(first)) : script('check');
    };
    const serverPids = () => node.pids().filter((p) => spec.serverExe(exeOf(p)));
    /** Server processes whose parent is not a server process (postmaster, mariadbd...). */
    const mainServers = () => {
      const all = serverPids();
      return all.filter((p) => !all.includes(ppidOf(p)));
    };
    const log = () => fs.readFileSync(node.file(`log/${MODULE}.log`), 'utf8');

    beforeAll(async () => {
      node = new TestNode(spec.vip);
      await node.up();
    });
    afterAll(async () => {
      // Best effort: the module's own stop, then whatever is left in the namespace.
      await script('stop_prim').catch(() => undefined);
      await node.down();
    });

    test('initialises, keeps a committed row across a clean stop and a SIGKILL, stops cleanly', async () => {
      // Nothing ever ran: stop_prim succeeds, and the checker fails.
      const stop0 = await script('stop_prim');
      assert.equal(stop0.code, 0, `stop_prim with nothing running: ${stop0.stdout}${stop0.stderr}`);
      assert.notEqual((await check()).code, 0, 'the checker fails when no server runs');

      const start1 = await script('start_prim');
      assert.equal(start1.code, 0, `first start_prim: ${start1.stdout}${start1.stderr}\n${log()}`);
      assert.ok(fs.existsSync(path.join(node.data, spec.initialised)), `${spec.initialised} made in the replicated folder`);
      assert.match(start1.stdout, new RegExp(`listening on 127\\.0\\.0\\.1[, ]${spec.vip.replace(/\./g, '\\.')}`), 'it listens on the VIP');
      if (spec.durableConf) {
        const conf = fs.readFileSync(node.file(`run/${MODULE}/${spec.durableConf.file}`), 'utf8');
        for (const re of spec.durableConf.lines) assert.match(conf, re, `${spec.durableConf.file} is durable`);
      }
      const check1 = await check();
      assert.equal(check1.code, 0, `checker while running: ${check1.stdout}${check1.stderr}`);
      assert.ok(serverPids().length > 0, 'server processes run in the node');

      await spec.write(node, 'row1');
      assert.equal(await spec.read(node), 'row1');

      const logAtStop = log().length;
      const stop1 = await script('stop_prim');
      assert.equal(stop1.code, 0, `stop_prim: ${stop1.stdout}${stop1.stderr}`);
      assert.deepEqual(serverPids(), [], 'no server process of the module is left');
      assert.deepEqual(node.pids(), [], 'nothing at all is left in the node');
      assert.equal(fs.existsSync(node.file(`run/${MODULE}/server.pid`)), false, 'the pid file is removed');
      assert.notEqual((await check()).code, 0, 'the checker fails once stopped');

      const start2 = await script('start_prim');
      assert.equal(start2.code, 0, `second start_prim: ${start2.stdout}${start2.stderr}`);
      // What the server logged from stop_prim to the end of this start.
      if (spec.cleanRestartLog) assert.match(log().slice(logAtStop), spec.cleanRestartLog, 'the stop was clean');
      assert.equal(await spec.read(node), 'row1', 'the committed row is found after a restart');

      // A crash: SIGKILL of every server process (no shutdown at all). The pid file is stale, the
      // data directory as the crash left it (PostgreSQL: postmaster.pid too).
      await spec.write(node, 'row2');
      const killed = serverPids();
      for (const p of killed) sigkill(p);
      const deadline = Date.now() + 5000;
      while (killed.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(killed.filter(alive), [], 'killed');
      assert.notEqual((await check()).code, 0, 'the checker fails after the crash');
      const start3 = await script('start_prim');
      assert.equal(start3.code, 0, `start_prim after SIGKILL: ${start3.stdout}${start3.stderr}`);
      assert.equal(await spec.read(node), 'row1,row2', 'both committed rows survive the crash');
      assert.equal((await check()).code, 0, 'the checker passes again');
    });

    test('start_prim is idempotent; stop_prim twice exits 0', async () => {
      // Running since the previous test (or started now if it failed halfway).
      const s0 = await script('start_prim');
      assert.equal(s0.code, 0, `${s0.stdout}${s0.stderr}`);
      const pidFile = node.file(`run/${MODULE}/server.pid`);
      // The pid file holds the node's pid; the host sees it under another.
      const hostPid = () => node.hostPid(Number(fs.readFileSync(pidFile, 'utf8'))) ?? -1;
      const pid = hostPid();
      assert.ok(alive(pid), 'the recorded pid runs');
      assert.deepEqual(mainServers(), [pid], 'one server, the recorded one');

      const again = await script('start_prim');
      assert.equal(again.code, 0, `start_prim again: ${again.stdout}${again.stderr}`);
      assert.match(again.stdout, /already running/);
      assert.equal(hostPid(), pid, 'the same server');
      assert.ok(alive(pid));
      // No second server beside it: one top-level server process, the recorded one.
      assert.deepEqual(mainServers(), [pid]);
      assert.equal((await check()).code, 0);

      for (const round of [1, 2]) {
        const stop = await script('stop_prim');
        assert.equal(stop.code, 0, `stop_prim #${round}: ${stop.stdout}${stop.stderr}`);
        assert.deepEqual(serverPids(), [], `no server process after stop_prim #${round}`);
      }
      assert.equal(alive(pid), false);
    });
  });
}

/** The checkers of a module folder's module.yaml, as written. */
function moduleCheckers(dir: string): Record<string, unknown>[] {
  const y = parseYaml(fs.readFileSync(path.join(dir, 'module.yaml'), 'utf8')) as { checkers: Record<string, unknown>[] };
  return y.checkers;
}

/** A node program that runs the compiled redis probe once, as the runner does (aborted at timeout_ms): exit 0 when healthy. */
function redisProbeCommand(c: Record<string, unknown>): string[] {
  const redisJs = compiledUrl('src/module/checkers/redis.js');
  const cfg = {
    host: c.host ?? '127.0.0.1',
    port: c.port ?? 6379,
    timeoutMs: c.timeout_ms ?? 1000,
    ...(c.password !== undefined ? { password: c.password } : {}),
    ...(c.db !== undefined ? { db: c.db } : {}),
  };
  const code = [
    `import { redisProbe } from ${JSON.stringify(redisJs)};`,
    `const cfg = ${JSON.stringify(cfg)};`,
    'const ac = new AbortController();',
    'setTimeout(() => ac.abort(), cfg.timeoutMs).unref();',
    'const r = await redisProbe(cfg)(ac.signal);',
    'console.log(r.detail);',
    'process.exitCode = r.ok ? 0 : 1;',
  ].join('\n');
  return [process.execPath, '--input-type=module', '-e', code];
}

/** The default of a `NAME=${...:-default}` or `NAME=default` line of a lib.sh. */
function libDefault(lib: string, name: string): string | undefined {
  const m = new RegExp(`^${name}=(?:\\$\\{[A-Z0-9_]+:-([^}]*)\\}|(\\S+))`, 'm').exec(lib);
  return m ? (m[1] ?? m[2]) : undefined;
}

describe('mirror modules: module.yaml agrees with lib.sh', () => {
  for (const spec of specs) {
    test(spec.folder, () => {
      const dir = path.join(repoRoot, 'modules', spec.folder);
      const y = parseYaml(fs.readFileSync(path.join(dir, 'module.yaml'), 'utf8')) as Record<string, unknown>;
      const lib = fs.readFileSync(path.join(dir, 'lib.sh'), 'utf8');
      assert.equal(y.kind, 'mirror');
      assert.equal((y.nodes as string[]).length, 2);
      assert.equal(y.vip, spec.vip, 'the VIP the scripts read from module.yaml is the one tested');
      assert.deepEqual(y.dirs, [libDefault(lib, 'DIR')], 'dirs[0] is the DIR of lib.sh');
      const scripts = y.scripts as Record<string, unknown>;
      for (const k of ['start_prim', 'stop_prim']) {
        const f = path.join(dir, String(scripts[k]));
        assert.ok((fs.statSync(f).mode & 0o111) !== 0, `${scripts[k]} is executable`);
      }
      const checkers = y.checkers as Record<string, unknown>[];
      assert.ok(checkers.length >= 1);
      for (const c of checkers) {
        assert.equal(c.scope, 'app');
        if (c.type === 'script') assert.ok((fs.statSync(path.join(dir, String(c.path))).mode & 0o111) !== 0, `${c.path} is executable`);
        if (c.type === 'tcp') assert.equal(c.port, Number(libDefault(lib, 'PORT')), 'the tcp checker probes PORT');
        if (c.type === 'redis') {
          assert.deepEqual([c.host, c.port], ['127.0.0.1', Number(libDefault(lib, 'PORT'))], 'the redis checker probes PORT on 127.0.0.1');
          assert.equal(c.password, libDefault(lib, 'PASSWORD') || undefined, 'and has the password of lib.sh, if any');
        }
      }
    });
  }
});

const KEY = Buffer.from('croft mirror modules test key');

for (const spec of specs) {
  describe(`modules/${spec.folder} over a real mirror: the other copy starts with every committed row`, { timeout: 300_000 }, () => {
    const MODULE = spec.folder;
    const dir = path.join(repoRoot, 'modules', spec.folder);
    let root: string;
    let replica: MirrorReplica | null = null;
    let mount: MirrorMount | null = null;
    const nodes: TestNode[] = [];
    const env = (node: TestNode, state: string): Record<string, string> => ({
      CROFT_NODE: node.ns, CROFT_MODULE: MODULE, CROFT_CLUSTER: 'test', CROFT_STATE: state, CROFT_MIRROR_DIR_0: node.data,
    });
    const script = (node: TestNode, name: 'start_prim' | 'stop_prim') => node.exec([path.join(dir, name)], env(node, name === 'stop_prim' ? 'STOP' : 'PRIM'));

    beforeAll(() => {
      root = fs.mkdtempSync(path.join(os.tmpdir(), 'crofttest-mirrormod-fuse-'));
      fs.chmodSync(root, 0o755);
    });
    afterAll(async () => {
      for (const n of nodes) {
        await script(n, 'stop_prim').catch(() => undefined);
        await n.down().catch(() => undefined);
      }
      await mount?.unmount().catch(() => undefined);
      await lazyUnmount(path.join(root, 'a')).catch(() => undefined);
      replica?.stop();
      fs.rmSync(root, { recursive: true, force: true });
    });

    test('initialised and written through FUSE; after a crash the replica has every committed row', async () => {
      const a = path.join(root, 'a');
      const b = path.join(root, 'b');
      // Both folders as a new module finds them: empty, root's, 0755 (in sync).
      fs.mkdirSync(a, { mode: 0o755 });
      fs.mkdirSync(b, { mode: 0o755 });
      replica = MirrorReplica.start({ dir: b, host: '127.0.0.1', port: 0, key: KEY });
      mount = await MirrorMount.mount({ dir: a, peer: { host: '127.0.0.1', port: replica.port, key: KEY, ackLevel: 'received' }, failMode: 'alone' });

      // The primary: its mount namespace is made after the mirror is mounted, so it sees the mount.
      const prim = new TestNode(spec.vip, a);
      nodes.push(prim);
      await prim.up();
      const start = await script(prim, 'start_prim');
      assert.equal(start.code, 0, `start_prim through FUSE: ${start.stdout}${start.stderr}\n${fs.readFileSync(prim.file(`log/${MODULE}.log`), 'utf8').slice(-3000)}`);
      await spec.write(prim, 'row1');
      await spec.write(prim, 'row2');
      assert.equal(await spec.read(prim), 'row1,row2');
      assert.equal(mount.status().link.connected, true, 'the replica stayed connected (nothing went dirty)');
      assert.ok(fs.existsSync(path.join(b, spec.initialised)), `${spec.initialised} is in the replica`);

      // The primary crashes: every server process is SIGKILLed (no shutdown, no final flush).
      const killed = prim.pids();
      assert.ok(killed.length > 0);
      for (const p of killed) sigkill(p);
      await prim.down();
      nodes.splice(nodes.indexOf(prim), 1);
      await mount.unmount();
      mount = null;

      // The other node starts the module on the replica (a folder, no mount: written in place).
      const second = new TestNode(spec.vip, b);
      nodes.push(second);
      await second.up();
      const start2 = await script(second, 'start_prim');
      assert.equal(start2.code, 0, `start_prim on the replica: ${start2.stdout}${start2.stderr}\n${fs.readFileSync(second.file(`log/${MODULE}.log`), 'utf8').slice(-3000)}`);
      if (spec.crashRecoveryLog) assert.match(fs.readFileSync(second.file(`log/${MODULE}.log`), 'utf8'), spec.crashRecoveryLog, 'it recovered from the crash');
      assert.equal(await spec.read(second), 'row1,row2', 'every committed row is on the other node');
      const stop = await script(second, 'stop_prim');
      assert.equal(stop.code, 0, `${stop.stdout}${stop.stderr}`);
    });
  });
}

describe('modules/generic-mirror runs the program named in an env file', { timeout: 60_000 }, () => {
  const dir = path.join(repoRoot, 'modules', 'generic-mirror');
  let node: TestNode;
  let envFile: string;
  const env = (): Record<string, string> => ({
    CROFT_NODE: 'n1', CROFT_MODULE: 'gen2', CROFT_CLUSTER: 'test', CROFT_STATE: 'PRIM', CROFT_MIRROR_DIR_0: node.data, GENERIC_MIRROR_ENV: envFile,
  });
  beforeAll(async () => {
    node = new TestNode('10.77.0.63');
    await node.up();
    envFile = node.file('app.env');
    // A program that is not server.mjs: Python's file server over the replicated folder, on the
    // address list start_prim gives (its first address), port 9099.
    fs.writeFileSync(envFile, [
      'PORT=9099',
      'COMMAND=\'exec python3 -m http.server --bind "${GENERIC_MIRROR_LISTEN%%,*}" --directory "$CROFT_MIRROR_DIR" "$GENERIC_MIRROR_PORT"\'',
      'MATCH="http.server --bind"',
      'READY=http://127.0.0.1:9099/',
      'CHECK=tcp',
      '',
    ].join('\n'));
  });
  afterAll(async () => {
    await node.exec([path.join(dir, 'stop_prim')], env()).catch(() => undefined);
    await node.down();
  });

  test('start_prim starts it with the replicated dir and port, check passes, stop_prim stops it', async () => {
    fs.writeFileSync(path.join(node.data, 'hello.txt'), 'hello from the replicated folder\n');
    const start = await node.exec([path.join(dir, 'start_prim')], env());
    assert.equal(start.code, 0, `${start.stdout}${start.stderr}`);
    const body = await node.exec(['curl', '-fsS', '-m', '5', 'http://127.0.0.1:9099/hello.txt']);
    assert.equal(body.stdout, 'hello from the replicated folder\n', body.stderr);
    assert.equal((await node.exec([path.join(dir, 'check')], env())).code, 0, 'check (CHECK=tcp on PORT) passes');
    const pythons = node.pids().filter((p) => path.basename(exeOf(p)).startsWith('python3'));
    assert.equal(pythons.length, 1, 'one program runs');
    const stop = await node.exec([path.join(dir, 'stop_prim')], env());
    assert.equal(stop.code, 0, `${stop.stdout}${stop.stderr}`);
    assert.deepEqual(node.pids(), [], 'nothing is left');
    assert.notEqual((await node.exec([path.join(dir, 'check')], env())).code, 0, 'check fails once stopped');
  });
});
