// bench/farm: croft's farm against its peers, in the same run, on this machine.
//   1. throughput and latency (wrk from the lab's client namespace) of the same 3 nginx nodes:
//      (a) through croft's VIP, (b) behind HAProxy in a namespace of its own, (c) one node alone;
//   2. failover (lab kill and lab crash -> every client answered again): croft vs keepalived (VRRPv3);
//   3. the false-failover soak (bench/farm/soak.ts): full CPU load and heavy GC, no peer marked down;
//   4. idle cost: per-daemon CPU and RSS in labs of 3 and 8 nodes, nothing happening (idle.ts).
// Run it with bench/farm/run (installs wrk, haproxy, keepalived, builds, then runs this file).
// Prints a markdown summary and writes every figure to bench/farm/last-run.json.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { Lab } from '../../top/lab/index.js';
import { LAN_PREFIX_LEN } from '../../top/lab/names.js';
import { nodeApiRequest } from '../../top/lab/node-api.js';
import { run } from '../../top/lab/run.js';
import { repoRoot } from '../../src/paths.js';
import { addSnat, flushConntrack, removeSnat, SOURCES } from './snat.js';
import { LB_ADDRESS, startHaproxy, stopHaproxy, type LoadBalancer } from './haproxy.js';
import { renderKeepalived, startKeepalived, vipHolders } from './keepalived.js';
import { allAnswered, failAndMeasure, FAILURES, sleep, stats, waitFor, type Failure } from './failover.js';
import { wrk, type WrkResult } from './wrk.js';
import { soak, soakReport, type SoakResult } from './soak.js';
import { idleLines, measureIdle, type IdleResult } from './idle.js';

const VIP = '10.77.0.100';
const PORT = 80;
const MODULE = 'web';
const NODES = ['n1', 'n2', 'n3'];

const { values: opt } = parseArgs({
  options: {
    'duration-s': { type: 'string', default: '10' },
    'warmup-s': { type: 'string', default: '3' },
    rounds: { type: 'string', default: '2' },
    connections: { type: 'string', default: '32' },
    threads: { type: 'string', default: '2' },
    runs: { type: 'string', default: '6' },
    clients: { type: 'string', default: '200' },
    'advert-int-s': { type: 'string', default: '0.1' },
    // croft's heartbeat: the same interval as keepalived's advert_int; 2.5 intervals of silence
    // (one lost heartbeat tolerated) declare a node dead.
    'interval-ms': { type: 'string', default: '100' },
    'timeout-ms': { type: 'string', default: '250' },
    'soak-s': { type: 'string', default: '300' },
    'idle-nodes': { type: 'string', default: '3,8' },
    'idle-window-s': { type: 'string', default: '40' },
    // A daemon idles for hours: its first half minute (V8 compiling its hot functions, the first
    // collections, the lab's formation) is not its idle cost. 5 s until 2026-12-08: 0.3-0.4 % of a
    // core more than 30 s, on the same build (REPORT, idle).
    'idle-settle-s': { type: 'string', default: '30' },
    // The idle labs' http checker interval (the shipped module checks every 500 ms): the checker's
    // share of the idle cost is the difference between two runs.
    'idle-checker-ms': { type: 'string', default: '500' },
    only: { type: 'string', default: 'all' },
    out: { type: 'string', default: path.join(repoRoot, 'bench', 'farm', 'last-run.json') },
    summary: { type: 'string' },
  },
});
const num = (k: keyof typeof opt): number => {
  const v = Number(opt[k]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${k} must be a positive number, got ${String(opt[k])}`);
  return v;
};
const cfg = {
  durationS: num('duration-s'), warmupS: num('warmup-s'), rounds: num('rounds'), connections: num('connections'),
  threads: num('threads'), runs: num('runs'), clients: num('clients'), advertIntS: num('advert-int-s'),
  intervalMs: num('interval-ms'), timeoutMs: num('timeout-ms'), soakS: num('soak-s'),
  idleWindowS: num('idle-window-s'), idleSettleS: num('idle-settle-s'), idleCheckerMs: num('idle-checker-ms'),
  idleNodes: String(opt['idle-nodes']).split(',').map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 1 || n > 250) throw new Error(`--idle-nodes must be a list of node counts, got ${String(opt['idle-nodes'])}`);
    return n;
  }),
};
const only = String(opt.only);
if (!['all', 'throughput', 'failover', 'soak', 'idle'].includes(only)) throw new Error('--only must be all, throughput, failover, soak or idle');

const log = (s: string) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}`);

/** The shipped nginx-farm module as module "web", with a fixed seed (the lab's name changes at
 *  every run, and with it the derived seed: a fixed one makes the spread reproducible). */
function farmConfig(workDir: string, checkerMs?: number): string {
  const dir = path.join(workDir, checkerMs === undefined ? 'config' : `config-checker-${checkerMs}`);
  const web = path.join(dir, 'modules', MODULE);
  fs.cpSync(path.join(repoRoot, 'modules', 'nginx-farm'), web, { recursive: true });
  const file = path.join(web, 'module.yaml');
  const yaml = fs.readFileSync(file, 'utf8').replace(/^# seed: .*$/m, 'seed: 1');
  if (!/^seed: 1$/m.test(yaml)) throw new Error('modules/nginx-farm/module.yaml: no "# seed:" line to set');
  const checked = checkerMs === undefined ? yaml : yaml.replace(/^(    interval_ms:) 500\b/m, `$1 ${checkerMs}`);
  if (checkerMs !== undefined && checkerMs !== 500 && checked === yaml) throw new Error('modules/nginx-farm/module.yaml: no checker "interval_ms: 500" line to set');
  fs.writeFileSync(file, checked);
  return dir;
}

async function farmMembers(lab: Lab, node: string): Promise<string[] | undefined> {
  try {
    const r = await nodeApiRequest<{ farm?: { active: boolean; members: string[] } }>(lab.stateDir, node, 'GET', `/api/v1/modules/${MODULE}`);
    return r.status === 200 && r.body.farm?.active ? r.body.farm.members : undefined;
  } catch {
    return undefined;
  }
}

async function waitMembers(lab: Lab, observers: string[], members: string[], timeoutMs?: number): Promise<void> {
  await waitFor(`farm members [${members.join(' ')}]`, async () => {
    const all = await Promise.all(observers.map((n) => farmMembers(lab, n)));
    return all.every((m) => JSON.stringify(m) === JSON.stringify(members));
  }, timeoutMs);
}

// ---- 1. throughput -------------------------------------------------------------------------

interface Scenario { key: 'a' | 'b' | 'c'; label: string; url: string }
const scenarios: Scenario[] = [
  { key: 'a', label: "croft VIP (3 nodes)", url: `http://${VIP}/` },
  { key: 'b', label: 'HAProxy (3 nodes)', url: `http://${LB_ADDRESS}/` },
  { key: 'c', label: 'n1 alone, no filter', url: 'http://10.77.0.1/' },
];

interface ThroughputRun extends WrkResult { scenario: string; mode: string; round: number; perNode: Record<string, number> }

/** Requests each node's nginx logged since the last call (its access log, then emptied). */
async function takeNodeCounts(lab: Lab): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const n of NODES) {
    const file = `/var/log/nginx/croft-${MODULE}-access.log`;
    const r = await lab.exec(n, ['sh', '-c', `wc -l < ${file}; : > ${file}`]);
    out[n] = Number(r.stdout.trim()) || 0;
  }
  return out;
}

/**
 * `freshLb` gives (b) a new load-balancer namespace and HAProxy before each of its runs: with a
 * connection per request, HAProxy's rate falls as the TIME_WAIT sockets of its earlier client
 * connections pile up in its namespace (measured here: 6700, then 1470, then 920 req/s in three
 * back-to-back 8 s runs on one instance). A fresh one is its best case; the nodes get no such reset.
 */
async function throughput(lab: Lab, freshLb: () => Promise<void>): Promise<ThroughputRun[]> {
  const runs: ThroughputRun[] = [];
  for (const mode of ['keep-alive', 'close'] as const) {
    for (let round = 1; round <= cfg.rounds; round++) {
      for (const s of scenarios) {
        const base = { url: s.url, connections: cfg.connections, threads: cfg.threads, close: mode === 'close' };
        if (s.key === 'b') await freshLb();
        await flushConntrack(lab);
        await wrk(lab, { ...base, durationS: cfg.warmupS });
        await flushConntrack(lab);
        await takeNodeCounts(lab);
        const r = await wrk(lab, { ...base, durationS: cfg.durationS });
        const perNode = await takeNodeCounts(lab);
        log(`${mode} round ${round} (${s.key}) ${s.label}: ${r.requestsPerS.toFixed(0)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, errors ${r.errors}, per node ${JSON.stringify(perNode)}`);
        runs.push({ ...r, scenario: s.key, mode, round, perNode });
      }
    }
  }
  return runs;
}

// ---- 2. failover ---------------------------------------------------------------------------

/** Failover figures per kind of failure (ms, one per run). */
type Failovers = Record<Failure, number[]>;
const noFailovers = (): Failovers => ({ kill: [], crash: [] });

async function croftFailover(lab: Lab, sources: string[], how: Failure): Promise<number[]> {
  const runs: number[] = [];
  for (let i = 0; i < cfg.runs; i++) {
    const victim = NODES[i % NODES.length]!;
    const others = NODES.filter((n) => n !== victim);
    await waitMembers(lab, NODES, NODES);
    const ms = await failAndMeasure(lab, victim, how, `http://${VIP}/`, sources);
    log(`croft failover ${i + 1}/${cfg.runs}: lab ${how} ${victim} -> all ${sources.length} clients answered in ${ms} ms`);
    runs.push(ms);
    await waitMembers(lab, others, others);
    await lab.start(victim);
  }
  await waitMembers(lab, NODES, NODES);
  return runs;
}

const nginxEnv = (lab: Lab, node: string) => ({ CROFT_NODE: node, CROFT_MODULE: MODULE, CROFT_CLUSTER: lab.name, CROFT_STATE: 'UP', CROFT_SCRIPT: 'start_both' });

async function startNginx(lab: Lab, node: string): Promise<void> {
  const r = await lab.exec(node, [`/etc/croft/modules/${MODULE}/start_both`], { env: nginxEnv(lab, node), timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`nginx start_both on ${node}: ${r.stdout}${r.stderr}`);
}

async function keepalivedFailover(lab: Lab, workDir: string, sources: string[], children: ChildProcess[], how: Failure): Promise<number[]> {
  const priorities: Record<string, number> = { n1: 150, n2: 100, n3: 50 };
  const conf = (node: string) => renderKeepalived({ node, priority: priorities[node]!, vip: VIP, prefixLen: LAN_PREFIX_LEN, advertIntS: cfg.advertIntS });
  const logOf = (node: string) => path.join(workDir, `keepalived-${node}.log`);
  const logSize = (node: string) => (fs.existsSync(logOf(node)) ? fs.statSync(logOf(node)).size : 0);
  const enteredBackupSince = (node: string, offset: number) => {
    const text = fs.readFileSync(logOf(node), 'utf8').slice(offset);
    return /Entering BACKUP STATE/.test(text);
  };
  if ((await vipHolders(lab, VIP)).length === 0) {
    for (const n of NODES) await startNginx(lab, n);
    for (const n of NODES) children.push(startKeepalived(lab, n, workDir, conf(n)));
  }
  await waitFor('one keepalived MASTER holding the VIP', async () => (await vipHolders(lab, VIP)).length === 1);
  await waitFor('every client answered through the VIP', () => allAnswered(lab, `http://${VIP}/`, sources));

  const runs: number[] = [];
  for (let i = 0; i < cfg.runs; i++) {
    const holders = await vipHolders(lab, VIP);
    if (holders.length !== 1) throw new Error(`expected one MASTER, VIP held by [${holders.join(' ')}]`);
    const victim = holders[0]!;
    const ms = await failAndMeasure(lab, victim, how, `http://${VIP}/`, sources);
    log(`keepalived failover ${i + 1}/${cfg.runs}: lab ${how} ${victim} (MASTER) -> all ${sources.length} clients answered in ${ms} ms`);
    runs.push(ms);
    // SIGKILL left the VIP on the victim's interface (keepalived had no chance to remove it): take
    // it away as a reboot would (a crashed node boots: links up), then start nginx and keepalived
    // again; nopreempt keeps it BACKUP.
    await lab.exec(victim, ['ip', 'addr', 'del', `${VIP}/${LAN_PREFIX_LEN}`, 'dev', 'eth0']);
    await lab.reboot(victim);
    await startNginx(lab, victim);
    const offset = logSize(victim);
    children.push(startKeepalived(lab, victim, workDir, conf(victim)));
    await waitFor(`keepalived of ${victim} BACKUP again`, () => enteredBackupSince(victim, offset));
    await sleep(500);
    await waitFor('one MASTER holding the VIP', async () => (await vipHolders(lab, VIP)).length === 1);
    await waitFor('every client answered through the VIP', () => allAnswered(lab, `http://${VIP}/`, sources));
  }
  return runs;
}

// ---- report --------------------------------------------------------------------------------

function median(values: number[]): number {
  return stats(values).median;
}

function summary(tp: ThroughputRun[], croft: Failovers, ka: Failovers, idle: IdleResult[] = []): string {
  const lines: string[] = [];
  if (tp.length) {
    lines.push(`### Throughput (wrk -t${cfg.threads} -c${cfg.connections}, ${cfg.durationS} s after ${cfg.warmupS} s warm-up, median of ${cfg.rounds} rounds)`, '');
    lines.push('| mode | scenario | req/s | p50 ms | p99 ms | errors | requests per node |', '|---|---|---:|---:|---:|---:|---|');
    const med: Record<string, number> = {};
    for (const mode of ['keep-alive', 'close']) {
      for (const s of scenarios) {
        const rs = tp.filter((r) => r.mode === mode && r.scenario === s.key);
        if (!rs.length) continue;
        const rps = median(rs.map((r) => r.requestsPerS));
        med[`${mode}/${s.key}`] = rps;
        const perNode = NODES.map((n) => `${n} ${Math.round((rs.reduce((a, r) => a + (r.perNode[n] ?? 0), 0) / rs.reduce((a, r) => a + Object.values(r.perNode).reduce((x, y) => x + y, 0), 0)) * 100)}%`).join(', ');
        lines.push(`| ${mode} | (${s.key}) ${s.label} | ${rps.toFixed(0)} (${rs.map((r) => r.requestsPerS.toFixed(0)).join(', ')}) | ${median(rs.map((r) => r.p50Ms)).toFixed(2)} | ${median(rs.map((r) => r.p99Ms)).toFixed(2)} | ${rs.reduce((a, r) => a + r.errors, 0)} | ${perNode} |`);
      }
    }
    lines.push('');
    const best = (mode: string, key: string) => Math.max(...tp.filter((r) => r.mode === mode && r.scenario === key).map((r) => r.requestsPerS));
    for (const mode of ['keep-alive', 'close']) {
      const a = med[`${mode}/a`]; const b = med[`${mode}/b`]; const c = med[`${mode}/c`];
      if (!a || !b || !c) continue;
      lines.push(`- ${mode}: (a)/(b) = ${(a / b).toFixed(2)}, (a)/(c) = ${(a / c).toFixed(2)} (medians); `
        + `best rounds: (a)/(b) = ${(best(mode, 'a') / best(mode, 'b')).toFixed(2)}, (a)/(c) = ${(best(mode, 'a') / best(mode, 'c')).toFixed(2)}`);
    }
    lines.push('');
  }
  if (FAILURES.some((f) => croft[f].length || ka[f].length)) {
    lines.push(`### Failover, lab kill or lab crash -> all ${cfg.clients} clients answered again (ms, ${cfg.runs} runs each)`, '');
    lines.push('| failure | cluster | runs | min | median | max |', '|---|---|---|---:|---:|---:|');
    for (const f of FAILURES) {
      for (const [name, r] of [[`croft (heartbeat ${cfg.intervalMs} ms, timeout ${cfg.timeoutMs} ms)`, croft[f]], [`keepalived (VRRPv3, advert_int ${cfg.advertIntS} s)`, ka[f]]] as const) {
        if (!r.length) continue;
        const s = stats(r);
        lines.push(`| lab ${f} | ${name} | ${r.join(' ')} | ${s.min} | ${s.median} | ${s.max} |`);
      }
    }
    lines.push('');
    for (const f of FAILURES) {
      if (croft[f].length && ka[f].length) lines.push(`- lab ${f}: median croft / median keepalived = ${(median(croft[f]) / median(ka[f])).toFixed(2)}`);
    }
  }
  if (idle.length) {
    lines.push('', `### Idle cost per daemon (one farm module, heartbeat 100 ms, nothing happening)`, '');
    lines.push('| nodes | daemon | CPU % of a core | children CPU % | RSS MB |', '|---:|---|---:|---:|---:|');
    for (const r of idle) {
      for (const d of r.daemons) lines.push(`| ${r.nodes} | ${d.node} | ${d.cpuPct.toFixed(2)} | ${d.childrenCpuPct.toFixed(2)} | ${d.rssMb.toFixed(0)} |`);
    }
    lines.push('', ...idleLines(idle));
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  if (opt.summary !== undefined) {
    // Reprints the tables of a saved run (its own settings), without running anything.
    const saved = JSON.parse(fs.readFileSync(opt.summary, 'utf8')) as { date: string; config: typeof cfg; throughput: ThroughputRun[]; failover: { croft: Failovers | number[]; keepalived: Failovers | number[] }; idle?: IdleResult[] };
    // Runs saved before --interval-ms/--timeout-ms existed used 100 / 500 ms.
    Object.assign(cfg, { intervalMs: 100, timeoutMs: 500 }, saved.config);
    // Runs saved before lab crash existed hold only kill figures, as a plain list.
    const kinds = (v: Failovers | number[]): Failovers => (Array.isArray(v) ? { kill: v, crash: [] } : v);
    console.log(`## bench/farm, ${saved.date}\n\n${summary(saved.throughput, kinds(saved.failover.croft), kinds(saved.failover.keepalived), saved.idle)}`);
    const soaked = (saved as { soak?: SoakResult | null }).soak;
    if (soaked) console.log(['', '### False-failover soak', '', ...soakReport(soaked)].join('\n'));
    return;
  }
  if (process.getuid?.() !== 0) throw new Error('bench/farm needs root (network namespaces, nftables)');
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-bench-farm-'));
  const config = farmConfig(workDir);
  const tag = process.pid % 100000;
  const started = new Date();
  let tp: ThroughputRun[] = [];
  const croft = noFailovers();
  const ka = noFailovers();
  let soaked: SoakResult | undefined;
  const idle: IdleResult[] = [];
  const has = (part: string) => only === 'all' || only === part;
  try {
    if (has('throughput') || has('failover')) {
      // One lab for (a), (b), (c) and croft's failover: the same three nginx, started by croft.
      const lab = await Lab.up({ name: `bf${tag}`, nodes: 3, clients: cfg.clients, config, intervalMs: cfg.intervalMs, timeoutMs: cfg.timeoutMs });
      let lb: LoadBalancer | undefined;
      try {
        log(`lab ${lab.name} up; waiting for the farm`);
        await waitMembers(lab, NODES, NODES);
        const sources = lab.clientAddresses();
        if (has('throughput')) {
          const freshLb = async () => {
            if (lb) await stopHaproxy(lb);
            lb = undefined;
            const haproxy = await startHaproxy(lab, workDir, PORT, cfg.threads);
            lb = haproxy;
            await waitFor('HAProxy answers', async () => {
              if (haproxy.child.exitCode !== null) throw new Error(`haproxy exited: ${fs.readFileSync(path.join(workDir, 'haproxy.log'), 'utf8')}`);
              return (await lab.exec('client', ['curl', '-fsS', '-m', '1', `http://${LB_ADDRESS}/`])).code === 0;
            });
          };
          await freshLb();
          await addSnat(lab, [VIP, LB_ADDRESS, lab.nodeAddress('n1')], PORT);
          log(`HAProxy at ${LB_ADDRESS}; wrk connections SNATed to ${SOURCES} client sources`);
          tp = await throughput(lab, freshLb);
          await removeSnat(lab);
          await flushConntrack(lab);
        }
        if (has('failover')) for (const f of FAILURES) croft[f] = await croftFailover(lab, sources, f);
      } finally {
        if (lb) await stopHaproxy(lb);
        await lab.down();
      }
    }
    if (has('failover')) {
      const lab = await Lab.up({ name: `bk${tag}`, nodes: 3, clients: cfg.clients, config, daemons: false });
      const children: ChildProcess[] = [];
      try {
        log(`lab ${lab.name} up (no croft daemons): nginx and keepalived on every node`);
        for (const f of FAILURES) ka[f] = await keepalivedFailover(lab, workDir, lab.clientAddresses(), children, f);
      } finally {
        for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
        await lab.down();
      }
    }
    if (has('idle')) {
      for (const n of cfg.idleNodes) {
        const nodes = Array.from({ length: n }, (_, i) => `n${i + 1}`);
        const lab = await Lab.up({ name: `bi${tag}`, nodes: n, clients: 1, config: farmConfig(workDir, cfg.idleCheckerMs), intervalMs: cfg.intervalMs, timeoutMs: cfg.timeoutMs });
        try {
          log(`lab ${lab.name} up (${n} nodes); waiting for the farm, then ${cfg.idleSettleS} s to settle`);
          await waitMembers(lab, nodes, nodes, 120_000);
          await sleep(cfg.idleSettleS * 1000);
          const r = { ...await measureIdle(lab, nodes, cfg.idleWindowS), checkerMs: cfg.idleCheckerMs };
          for (const line of idleLines([r])) log(line);
          idle.push(r);
        } finally {
          await lab.down();
        }
      }
    }
    if (has('soak')) {
      soaked = await soak({ name: `bs${tag}`, durationS: cfg.soakS, intervalMs: cfg.intervalMs, timeoutMs: cfg.timeoutMs, log });
    }
  } catch (e) {
    log(`failed: configs and logs (haproxy, keepalived) kept in ${workDir}`);
    throw e;
  }
  fs.rmSync(workDir, { recursive: true, force: true });
  const versions: string[] = [];
  for (const pkg of ['wrk', 'haproxy', 'keepalived', 'nginx', 'nftables']) {
    versions.push(`${pkg} ${(await run(['dpkg-query', '-W', '-f=${Version}', pkg])).stdout.trim() || '?'}`);
  }
  const result = {
    date: started.toISOString(), host: { cpus: os.cpus().length, model: os.cpus()[0]?.model, kernel: os.release() },
    versions: `${versions.join(', ')}; node ${process.version}`, config: cfg, throughput: tp, failover: { croft, keepalived: ka }, idle, soak: soaked ?? null,
  };
  fs.writeFileSync(String(opt.out), `${JSON.stringify(result, null, 2)}\n`);
  console.log(`## bench/farm, ${result.date}, ${result.host.cpus} CPUs (${result.host.model}), kernel ${result.host.kernel}`);
  console.log(`${result.versions}\n`);
  console.log(summary(tp, croft, ka, idle));
  if (soaked) console.log(['', '### False-failover soak', '', ...soakReport(soaked)].join('\n'));
  console.log(`\n(figures in ${String(opt.out)})`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack ?? e.message : e);
  process.exit(1);
});
