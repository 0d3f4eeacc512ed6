// bench/mirror: croft's mirror against local disk and a plain FUSE passthrough, in the same run,
// on this machine (a lab of two nodes without daemons: the data node n1 and its peer n2, joined
// by the lab's veth/bridge LAN).
//   1. storage: sequential 1 MiB writes, 4 KiB random writes each followed by fdatasync, creating
//      100,000 small files; on n1's local disk, bindfs (a plain FUSE passthrough, no
//      replication), croft's mount with no peer (the FUSE ceiling), and croft's mirror to n2 in
//      both modes (every-change, on-sync) at both ack levels (received, durable), with the durable
//      dirty log as the daemon mounts it (--modes picks some; `<mode>+k=v/k=v` runs a mode with
//      CROFT_MIRROR_TUNING k=v,k=v, to compare FUSE settings side by side in one run);
//   2. pgbench TPS of PostgreSQL (modules/postgresql-mirror's start_prim) on a local data
//      directory vs the same on croft's mirror to n2 (ack received, both modes: --pg-modes);
//   3. reintegration of a 1 GiB tree with 1% changed (64 KiB chunks) and of 1,000,000 small files
//      with 1,000 rewritten: croft from its dirty log, croft's full sync (tree compare + zone
//      checksums), and rsync (daemon on the peer, `rsync -a --delete`), time and bytes sent.
// Run it with bench/mirror/run (installs bindfs, builds, then runs this file).
// Prints a markdown summary and writes every figure to bench/mirror/last-run.json.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Lab } from '../../top/lab/index.js';
import { repoRoot } from '../../src/paths.js';
import type { WorkloadResult } from './workload.js';

const ALL_WORKLOADS = ['seq-1mib', 'seq-4k', 'random-4k-fsync', 'small-files', 'random-4k-read', 'walk'];

const { values: opt } = parseArgs({
  options: {
    'seq-mib': { type: 'string', default: '256' },
    'random-ops': { type: 'string', default: '2000' },
    'small-files': { type: 'string', default: '100000' },
    'tree-mib': { type: 'string', default: '1024' },
    'tree-files': { type: 'string', default: '1000000' },
    only: { type: 'string', default: 'all' },
    'pgbench-s': { type: 'string', default: '30' },
    'pgbench-scale': { type: 'string', default: '10' },
    'pgbench-clients': { type: 'string', default: '4' },
    rounds: { type: 'string', default: '1' },
    modes: { type: 'string', default: 'local,bindfs,alone-on-sync,every-change-received,every-change-durable,on-sync-received,on-sync-durable' },
    'pg-modes': { type: 'string', default: 'local,every-change-received,on-sync-received' },
    threads: { type: 'string' },
    'no-dirty-log': { type: 'boolean', default: false },
    workloads: { type: 'string', default: ALL_WORKLOADS.join(',') },
    out: { type: 'string', default: path.join(repoRoot, 'bench', 'mirror', 'last-run.json') },
    summary: { type: 'string' },
  },
});

const log = (s: string) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}`);

/**
 * A mode of the storage runs: 'local', 'bindfs', 'alone-<sync mode>' (croft's mount, no peer),
 * '<sync mode>-<ack>' (croft's mirror to n2), each optionally '+k=v/k=v' (CROFT_MIRROR_TUNING).
 */
type Mode = string;
interface ModeSpec { kind: 'local' | 'bindfs' | 'gluster' | 'croft'; sync?: 'every-change' | 'on-sync'; ack?: 'received' | 'durable'; peer: boolean; tuning: string }

function parseMode(m: Mode): ModeSpec {
  const [base = '', tuning = ''] = m.split('+', 2);
  const t = tuning.replaceAll('/', ',');
  if (base === 'local' || base === 'bindfs') return { kind: base, peer: false, tuning: t };
  if (base === 'gluster') return { kind: 'gluster', peer: true, tuning: t };
  const alone = /^alone-(every-change|on-sync)$/.exec(base);
  if (alone) return { kind: 'croft', sync: alone[1] as 'every-change' | 'on-sync', peer: false, tuning: t };
  const mirrored = /^(every-change|on-sync)-(received|durable)$/.exec(base);
  if (mirrored) return { kind: 'croft', sync: mirrored[1] as 'every-change' | 'on-sync', ack: mirrored[2] as 'received' | 'durable', peer: true, tuning: t };
  throw new Error(`unknown mode ${m}: expected local, bindfs, gluster, alone-every-change, alone-on-sync or <every-change|on-sync>-<received|durable>, optionally +key=value/key=value`);
}
const MODES: Mode[] = String(opt.modes).split(',').filter(Boolean);
const WORKLOADS = String(opt.workloads).split(',').filter(Boolean);
for (const w of WORKLOADS) if (!ALL_WORKLOADS.includes(w)) throw new Error(`unknown workload ${w}: expected some of ${ALL_WORKLOADS.join(', ')}`);
MODES.forEach(parseMode);
const BASE = '/srv/croft/bench';
const PORT = 4899;

interface Row extends WorkloadResult { mode: Mode; round: number }

const node = (file: string) => [process.execPath, path.join(repoRoot, 'dist', 'bench', 'mirror', file)];

async function must(lab: Lab, target: string, argv: string[]): Promise<string> {
  const r = await lab.exec(target, argv, { timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`${argv.join(' ')} on ${target} failed (${r.code}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

function startReplica(lab: Lab, dir: string, key: string): Promise<ChildProcess> {
  const child = lab.spawn('n2', [...node('replica.js'), dir, lab.nodeAddress('n2'), String(PORT), key], { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('ready')) resolve(child);
    });
    child.on('exit', (code) => reject(new Error(`replica exited (${code}) before it was ready`)));
  });
}

async function stopReplica(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.stdin?.end();
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await done;
  clearTimeout(t);
}

// ---- GlusterFS replica 2: the file-level synchronous replication Linux users pick instead ------

/**
 * Debian's glusterd on both nodes, each with its own state, logs and run folders (bound over
 * /var/lib/glusterd, /var/log/glusterfs and /run/gluster in the node's own mount namespace, the
 * host's untouched) and its own management socket (the default, /run/glusterd.socket, is in the
 * /run the nodes share), n2 probed from n1. Its processes live in the nodes' PID namespaces and
 * end with the lab.
 */
async function glusterUp(lab: Lab): Promise<void> {
  const state = `${BASE}/gluster-state`;
  for (const n of ['n1', 'n2']) {
    await must(lab, n, ['sh', '-c', [
      'set -e',
      'if ! mountpoint -q /var/lib/glusterd; then',
      `  mkdir -p ${state}/lib ${state}/log ${state}/run /var/log/glusterfs /run/gluster`,
      `  cp -a /var/lib/glusterd/. ${state}/lib/`,
      `  mount --bind ${state}/lib /var/lib/glusterd`,
      `  mount --bind ${state}/log /var/log/glusterfs`,
      `  mount --bind ${state}/run /run/gluster`,
      'fi',
      `sed 's|^end-volume|    option glusterd-sockfile ${GLUSTER_SOCK}\\nend-volume|' /etc/glusterfs/glusterd.vol > ${state}/glusterd.vol`,
      `glusterd -f ${state}/glusterd.vol -p /run/gluster/glusterd.pid`,
    ].join('\n')]);
    await waitOk(lab, n, [...GLUSTER, 'pool', 'list'], 'glusterd');
  }
  await must(lab, 'n1', [...GLUSTER, 'peer', 'probe', lab.nodeAddress('n2')]);
  await waitOk(lab, 'n1', ['sh', '-c', `${GLUSTER.join(' ')} peer status | grep -q "(Connected)"`], 'the gluster peer');
}

const GLUSTER_SOCK = '/run/gluster/glusterd.socket';
const GLUSTER = ['gluster', '--mode=script', `--glusterd-sock=${GLUSTER_SOCK}`];

async function waitOk(lab: Lab, target: string, argv: string[], what: string): Promise<void> {
  let last = '';
  for (let i = 0; i < 100; i++) {
    const r = await lab.exec(target, argv, { timeoutMs: 30_000 });
    if (r.code === 0) return;
    last = r.stderr || r.stdout;
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error(`${what} not ready on ${target} after 20 s: ${last}`);
}

const GLUSTER_VOLUME = 'croftbench';

/** A fresh replica-2 volume (one brick on each node) mounted on n1 at `dir` with the FUSE client. */
async function glusterMount(lab: Lab, dir: string): Promise<void> {
  const brick = `${BASE}/gluster-brick`;
  for (const n of ['n1', 'n2']) await must(lab, n, ['sh', '-c', `rm -rf ${brick} && mkdir -p ${brick}`]);
  await must(lab, 'n1', [...GLUSTER, 'volume', 'create', GLUSTER_VOLUME, 'replica', '2',
    `${lab.nodeAddress('n1')}:${brick}`, `${lab.nodeAddress('n2')}:${brick}`, 'force']);
  await must(lab, 'n1', [...GLUSTER, 'volume', 'start', GLUSTER_VOLUME]);
  await must(lab, 'n1', ['mount', '-t', 'glusterfs', `${lab.nodeAddress('n1')}:/${GLUSTER_VOLUME}`, dir]);
  // Both bricks up, seen by the client: a write is then on both before it returns.
  await waitOk(lab, 'n1', ['sh', '-c', `${GLUSTER.join(' ')} volume status ${GLUSTER_VOLUME} detail | grep -c "^Online *: Y" | grep -qx 2`], 'both bricks');
}

async function glusterUnmount(lab: Lab, dir: string): Promise<void> {
  await lab.exec('n1', ['umount', dir], { timeoutMs: 60_000 });
  await lab.exec('n1', [...GLUSTER, 'volume', 'stop', GLUSTER_VOLUME, 'force'], { timeoutMs: 60_000 });
  await lab.exec('n1', [...GLUSTER, 'volume', 'delete', GLUSTER_VOLUME], { timeoutMs: 60_000 });
}

let glusterStarted = false;

async function one(lab: Lab, mode: Mode, workload: string, round: number): Promise<Row> {
  const key = crypto.randomBytes(32).toString('hex');
  const spec = parseMode(mode);
  const dir = `${BASE}/data`;
  const logDir = `${BASE}/dirty-log`;
  await must(lab, 'n1', ['sh', '-c', `rm -rf ${BASE}/bindfs-src ${dir} ${logDir} && mkdir -p ${dir}`]);
  let replica: ChildProcess | null = null;
  let mounted = false;
  const args = ['--dir', dir, '--workload', workload, '--seq-mib', String(opt['seq-mib']),
    '--random-ops', String(opt['random-ops']), '--small-files', String(opt['small-files'])];
  try {
    if (spec.kind === 'bindfs') {
      await must(lab, 'n1', ['mkdir', '-p', `${BASE}/bindfs-src`]);
      await must(lab, 'n1', ['bindfs', '--no-allow-other', `${BASE}/bindfs-src`, dir]);
    }
    if (spec.kind === 'gluster') {
      if (!glusterStarted) await glusterUp(lab);
      glusterStarted = true;
      mounted = true;
      await glusterMount(lab, dir);
    }
    if (spec.kind === 'croft') {
      args.push('--mirror', '--mode', spec.sync!);
      if (opt.threads) args.push('--threads', String(opt.threads));
      if (spec.peer) {
        await must(lab, 'n2', ['sh', '-c', `rm -rf ${BASE}/replica && mkdir -p ${BASE}/replica`]);
        replica = await startReplica(lab, `${BASE}/replica`, key);
        args.push('--peer', lab.nodeAddress('n2'), '--port', String(PORT), '--key', key, '--ack', spec.ack!);
        if (!opt['no-dirty-log']) args.push('--dirty-log', logDir);
      }
    }
    await must(lab, 'n1', ['sync']);
    const r0 = await lab.exec('n1', [...node('workload.js'), ...args], { timeoutMs: 600_000, env: spec.tuning ? { CROFT_MIRROR_TUNING: spec.tuning } : {} });
    if (r0.code !== 0) throw new Error(`workload ${workload} in ${mode} failed (${r0.code}): ${r0.stderr || r0.stdout}`);
    const out = r0.stdout;
    const r = JSON.parse(out.trim().split('\n').pop()!) as WorkloadResult;
    if (spec.peer && r.link && (!r.link.connected || r.link.aloneOps > 0)) {
      throw new Error(`${mode} ${workload}: the mirror lost its peer during the run (${JSON.stringify(r.link)})`);
    }
    return { ...r, mode, round };
  } finally {
    if (spec.kind === 'bindfs') await lab.exec('n1', ['fusermount3', '-u', dir]);
    if (mounted) await glusterUnmount(lab, dir);
    if (replica) await stopReplica(replica);
  }
}

// ---- 2. pgbench ----------------------------------------------------------------------------

interface PgbenchRow { mode: Mode; tps: number; latencyMs: number; transactions: number }

const PG_MODULE = path.join(repoRoot, 'modules', 'postgresql-mirror');

async function pgbench(lab: Lab): Promise<PgbenchRow[]> {
  const rows: PgbenchRow[] = [];
  for (const mode of String(opt['pg-modes']).split(',').filter(Boolean)) {
    const spec = parseMode(mode);
    if (spec.kind === 'bindfs' || (spec.kind === 'croft' && !spec.peer)) throw new Error(`--pg-modes: ${mode} is not local or a mirror to n2`);
    const dir = `${BASE}/pg-${mode}`;
    const env = { CROFT_MIRROR_DIR_0: dir, CROFT_MODULE: `bench-pg-${mode}`, CROFT_NODE: 'n1', CROFT_VIP: 'none', CROFT_STATE: 'ALONE' };
    await must(lab, 'n1', ['sh', '-c', `rm -rf ${dir} && mkdir -p ${dir}`]);
    let replica: ChildProcess | null = null;
    let hold: ChildProcess | null = null;
    let mounted = false;
    try {
      if (spec.kind === 'gluster') {
        if (!glusterStarted) await glusterUp(lab);
        glusterStarted = true;
        mounted = true;
        await glusterMount(lab, dir);
      }
      if (spec.kind === 'croft') {
        const key = crypto.randomBytes(32).toString('hex');
        await must(lab, 'n2', ['sh', '-c', `rm -rf ${BASE}/pg-replica && mkdir -p ${BASE}/pg-replica`]);
        replica = await startReplica(lab, `${BASE}/pg-replica`, key);
        const holdArgs = [dir, lab.nodeAddress('n2'), String(PORT), key, spec.ack!, spec.sync!, ...(opt['no-dirty-log'] ? [] : [`${BASE}/pg-dirty-log`])];
        await must(lab, 'n1', ['rm', '-rf', `${BASE}/pg-dirty-log`]);
        hold = lab.spawn('n1', [...node('hold.js'), ...holdArgs], { stdio: ['pipe', 'pipe', 'inherit'], ...(spec.tuning ? { env: { CROFT_MIRROR_TUNING: spec.tuning } } : {}) });
        await new Promise<void>((resolve, reject) => {
          hold!.stdout!.once('data', () => resolve());
          hold!.once('exit', (c) => reject(new Error(`hold.js exited (${c})`)));
        });
      }
      const start = await lab.exec('n1', [path.join(PG_MODULE, 'start_prim')], { env, timeoutMs: 300_000 });
      if (start.code !== 0) throw new Error(`start_prim (${mode}): ${start.stdout}${start.stderr}`);
      const pgEnv = { ...env, PGPASSWORD: 'croft' };
      const conn = ['-h', '127.0.0.1', '-U', 'croft', 'croft'];
      const init = await lab.exec('n1', ['pgbench', '-i', '-q', '-s', String(opt['pgbench-scale']), ...conn], { env: pgEnv, timeoutMs: 600_000 });
      if (init.code !== 0) throw new Error(`pgbench -i (${mode}): ${init.stderr}`);
      const c = String(opt['pgbench-clients']);
      const r = await lab.exec('n1', ['pgbench', '-c', c, '-j', '2', '-T', String(opt['pgbench-s']), ...conn], { env: pgEnv, timeoutMs: 900_000 });
      if (r.code !== 0) throw new Error(`pgbench (${mode}): ${r.stderr}`);
      const tps = /tps = ([\d.]+)/.exec(r.stdout);
      const lat = /latency average = ([\d.]+) ms/.exec(r.stdout);
      const tx = /number of transactions actually processed: (\d+)/.exec(r.stdout);
      if (!tps || !lat || !tx) throw new Error(`pgbench output not understood: ${r.stdout}`);
      rows.push({ mode, tps: Number(tps[1]), latencyMs: Number(lat[1]), transactions: Number(tx[1]) });
      log(`pgbench ${mode}: ${tps[1]} tps, latency ${lat[1]} ms`);
    } finally {
      await lab.exec('n1', [path.join(PG_MODULE, 'stop_prim')], { env, timeoutMs: 120_000 });
      if (hold) {
        const out: string[] = [];
        hold.stdout!.on('data', (b: Buffer) => out.push(b.toString()));
        const exited = new Promise((r) => hold!.once('exit', r));
        hold.stdin!.end();
        await exited;
        const link = JSON.parse(out.join('').trim().split('\n').pop() ?? '{}') as { connected?: boolean; aloneOps?: number };
        if (link.connected !== true || link.aloneOps !== 0) throw new Error(`pgbench on the mirror: the peer was lost during the run (${JSON.stringify(link)})`);
      }
      if (mounted) await glusterUnmount(lab, dir);
      if (replica) await stopReplica(replica);
    }
  }
  return rows;
}

function pgbenchSummary(rows: PgbenchRow[]): string {
  const local = rows.find((r) => r.mode === 'local');
  const lines = ['| pgbench (TPC-B like) | TPS | latency (ms) | vs local |', '|---|---:|---:|---:|'];
  for (const r of rows) lines.push(`| ${r.mode === 'local' ? 'local data directory' : r.mode === 'gluster' ? 'GlusterFS replica 2 (n1, n2)' : `croft mirror to n2, ${r.mode}`} | ${r.tps.toFixed(0)} | ${r.latencyMs.toFixed(2)} | ${local ? (r.tps / local.tps).toFixed(2) : '-'} |`);
  return lines.join('\n');
}

// ---- 3. reintegration ---------------------------------------------------------------------

interface ReintegrationRow {
  tree: 'big' | 'small';
  tool: 'croft (dirty log)' | 'croft (full sync)' | 'rsync';
  seconds: number;
  bytesSent: number;
  changedBytes: number;
  /** croft: the dirty zones the log held (what it must copy). */
  dirtyBytes?: number;
}

const RSYNC_PORT = 8730;

function treeArgs(tree: 'big' | 'small'): string[] {
  return tree === 'big'
    ? ['--kind', 'big', '--total-mib', String(opt['tree-mib']), '--file-mib', '16', '--changed-fraction', '0.01']
    : ['--kind', 'small', '--files', String(opt['tree-files']), '--changed-files', '1000'];
}

async function startRsyncd(lab: Lab, dir: string): Promise<ChildProcess> {
  const conf = `${BASE}/rsyncd.conf`;
  await must(lab, 'n2', ['sh', '-c', `printf '%s\\n' 'use chroot = no' 'uid = root' 'gid = root' '[dst]' 'path = ${dir}' 'read only = no' > ${conf}`]);
  const child = lab.spawn('n2', ['rsync', '--daemon', '--no-detach', `--address=${lab.nodeAddress('n2')}`, `--port=${RSYNC_PORT}`, `--config=${conf}`], { stdio: 'ignore' });
  for (let i = 0; i < 50; i++) {
    const r = await lab.exec('n1', ['rsync', `rsync://${lab.nodeAddress('n2')}:${RSYNC_PORT}/`]);
    if (r.code === 0) return child;
    await new Promise((res) => setTimeout(res, 100));
  }
  child.kill('SIGKILL');
  throw new Error('rsync daemon did not answer');
}

async function reintegration(lab: Lab, tree: 'big' | 'small'): Promise<ReintegrationRow[]> {
  const spec = treeArgs(tree);
  const src = `${BASE}/r-src`;
  const dst = (t: string) => `${BASE}/r-dst-${t}`;
  log(`${tree} tree: building one copy on n1, three on n2`);
  await Promise.all([
    must(lab, 'n1', ['sh', '-c', `rm -rf ${src} ${BASE}/r-log`]).then(() => must(lab, 'n1', [...node('tree.js'), 'build', '--dir', src, ...spec])),
    (async () => {
      for (const t of ['dirty', 'full', 'rsync']) {
        await must(lab, 'n2', ['rm', '-rf', dst(t)]);
        await must(lab, 'n2', [...node('tree.js'), 'build', '--dir', dst(t), ...spec]);
      }
    })(),
  ]);
  await must(lab, 'n1', ['sync']);
  await must(lab, 'n2', ['sync']);
  const rows: ReintegrationRow[] = [];
  for (const full of [false, true]) {
    const key = crypto.randomBytes(32).toString('hex');
    const replica = await startReplica(lab, dst(full ? 'full' : 'dirty'), key);
    try {
      const out = await must(lab, 'n1', [...node('tree.js'), 'croft', '--dir', src, '--log', `${BASE}/r-log`, ...spec,
        '--peer', lab.nodeAddress('n2'), '--port', String(PORT), '--key', key, ...(full ? ['--full'] : [])]);
      const r = JSON.parse(out.trim().split('\n').pop()!) as { changedBytes: number; dirtyBytes: number; seconds: number; bytesSent: number };
      rows.push({ tree, tool: full ? 'croft (full sync)' : 'croft (dirty log)', seconds: r.seconds, bytesSent: r.bytesSent, changedBytes: r.changedBytes, ...(full ? {} : { dirtyBytes: r.dirtyBytes }) });
    } finally {
      await stopReplica(replica);
    }
    log(`${tree} ${rows.at(-1)!.tool}: ${rows.at(-1)!.seconds.toFixed(2)} s, ${rows.at(-1)!.bytesSent} bytes sent`);
  }
  const rsyncd = await startRsyncd(lab, dst('rsync'));
  try {
    const t = performance.now();
    const out = await must(lab, 'n1', ['rsync', '-a', '--delete', '--stats', `${src}/`, `rsync://${lab.nodeAddress('n2')}:${RSYNC_PORT}/dst/`]);
    const seconds = (performance.now() - t) / 1000;
    const sent = /Total bytes sent: ([\d,]+)/.exec(out);
    if (!sent) throw new Error(`rsync --stats printed no "Total bytes sent": ${out}`);
    rows.push({ tree, tool: 'rsync', seconds, bytesSent: Number(sent[1]!.replace(/,/g, '')), changedBytes: rows[0]!.changedBytes });
    log(`${tree} rsync: ${seconds.toFixed(2)} s, ${rows.at(-1)!.bytesSent} bytes sent`);
  } finally {
    rsyncd.kill('SIGTERM');
  }
  const diff = await lab.exec('n2', ['diff', '-r', '-q', dst('dirty'), dst('rsync')], { timeoutMs: 600_000 });
  if (diff.code !== 0) throw new Error(`after reintegration the croft and rsync copies differ: ${diff.stdout.slice(0, 2000)}`);
  const diffFull = await lab.exec('n2', ['diff', '-r', '-q', dst('full'), dst('rsync')], { timeoutMs: 600_000 });
  if (diffFull.code !== 0) throw new Error(`after the full sync the croft and rsync copies differ: ${diffFull.stdout.slice(0, 2000)}`);
  await must(lab, 'n1', ['rm', '-rf', src, `${BASE}/r-log`]);
  await must(lab, 'n2', ['rm', '-rf', dst('dirty'), dst('full'), dst('rsync')]);
  return rows;
}

function reintegrationSummary(rows: ReintegrationRow[]): string {
  const lines = [
    '| tree | tool | time (s) | bytes sent | bytes changed | sent / changed | time vs rsync |',
    '|---|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const rs = rows.find((x) => x.tree === r.tree && x.tool === 'rsync');
    lines.push(`| ${r.tree === 'big' ? `${opt['tree-mib']} MiB, 1% changed` : `${opt['tree-files']} small files, 1000 changed`} | ${r.tool} | ${r.seconds.toFixed(3)} | ${r.bytesSent} | ${r.changedBytes} | ${(r.bytesSent / r.changedBytes).toFixed(2)} | ${rs ? (r.seconds / rs.seconds).toFixed(2) : '-'} |`);
  }
  return lines.join('\n');
}

// ---- report --------------------------------------------------------------------------------

function rate(r: Row): number {
  return r.workload === 'seq-1mib' || r.workload === 'seq-4k' ? r.bytes / (1 << 20) / r.seconds : r.ops / r.seconds;
}
const unit = (w: string) => ({ 'seq-1mib': 'MiB/s', 'seq-4k': 'MiB/s', 'random-4k-fsync': 'writes+fdatasync/s', 'small-files': 'files/s', 'random-4k-read': 'reads/s', walk: 'entries/s' })[w] ?? 'ops/s';

function best(rows: Row[], mode: Mode, workload: string): number {
  const rs = rows.filter((r) => r.mode === mode && r.workload === workload).map(rate);
  return rs.length ? Math.max(...rs) : NaN;
}

/** One table: each mode's rate, then (second table) each mode's ratio to the local disk. */
function summary(rows: Row[]): string {
  const modes = [...new Set(rows.map((r) => r.mode))];
  const f = (x: number) => (Number.isNaN(x) ? '-' : x >= 100 ? x.toFixed(0) : x.toFixed(1));
  const lines = [`| workload | ${modes.join(' | ')} |`, `|---|${modes.map(() => '---:').join('|')}|`];
  for (const w of WORKLOADS) lines.push(`| ${w} (${unit(w)}) | ${modes.map((m) => f(best(rows, m, w))).join(' | ')} |`);
  lines.push('', `| ratio to local | ${modes.join(' | ')} |`, `|---|${modes.map(() => '---:').join('|')}|`);
  for (const w of WORKLOADS) {
    const local = best(rows, 'local', w);
    lines.push(`| ${w} | ${modes.map((m) => (best(rows, m, w) / local).toFixed(2)).join(' | ')} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  if (opt.summary) {
    const saved = JSON.parse(fs.readFileSync(String(opt.summary), 'utf8')) as { rows: Row[]; pgbench?: PgbenchRow[]; reintegration?: ReintegrationRow[] };
    console.log(summary(saved.rows));
    if (saved.pgbench?.length) console.log(`\n${pgbenchSummary(saved.pgbench)}`);
    if (saved.reintegration?.length) console.log(`\n${reintegrationSummary(saved.reintegration)}`);
    return;
  }
  const rounds = Number(opt.rounds);
  const lab = await Lab.up({ name: `bm${process.pid}`, nodes: 2, daemons: false });
  const only = String(opt.only);
  if (!['all', 'storage', 'pgbench', 'reintegration'].includes(only)) throw new Error('--only must be all, storage, pgbench or reintegration');
  const rows: Row[] = [];
  const reint: ReintegrationRow[] = [];
  let pg: PgbenchRow[] = [];
  const started = Date.now();
  try {
    for (let round = 1; round <= rounds && (only === 'all' || only === 'storage'); round++) {
      for (const w of WORKLOADS) {
        for (const m of MODES) {
          const r = await one(lab, m, w, round);
          log(`round ${round} ${w} ${m}: ${rate(r).toFixed(1)} ${unit(w)} (${r.ops} ops in ${r.seconds.toFixed(2)} s)`);
          rows.push(r);
        }
      }
    }
    if (only === 'all' || only === 'pgbench') pg = await pgbench(lab);
    if (only === 'all' || only === 'reintegration') for (const tree of ['big', 'small'] as const) reint.push(...await reintegration(lab, tree));
  } finally {
    await lab.down();
  }
  const versions = await new Promise<string>((resolve) => {
    const c = spawn('sh', ['-c', 'dpkg-query -W -f "\\${Package} \\${Version}\\n" bindfs fuse3 glusterfs-server postgresql-15 rsync 2>/dev/null; uname -r'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let s = '';
    c.stdout.on('data', (b: Buffer) => (s += b.toString()));
    c.on('close', () => resolve(s.trim()));
  });
  fs.writeFileSync(String(opt.out), `${JSON.stringify({ date: new Date().toISOString(), seconds: (Date.now() - started) / 1000, versions, options: opt, rows, pgbench: pg, reintegration: reint }, null, 2)}\n`);
  if (rows.length) console.log(summary(rows));
  if (pg.length) console.log(`\n${pgbenchSummary(pg)}`);
  if (reint.length) console.log(`\n${reintegrationSummary(reint)}`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack ?? err.message : String(err));
  process.exit(1);
});
