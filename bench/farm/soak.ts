// The false-failover soak: a 3-node lab at the bench's heartbeat (interval 100 ms, timeout 250 ms)
// while both cores are busy (one spinning process per core, at the daemons' own priority) and every
// daemon collects a few hundred MB of garbage (test/fixtures/membership/gc-pressure.cjs, preloaded).
// No node may mark another down, and no view may change. Used by bench/farm/run (5 minutes) and by
// test/integration/membership-soak.lab.test.ts (a shorter run in `make test`).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab } from '../../top/lab/index.js';
import { NODE_CONFIG_PATH } from '../../top/lab/mounts.js';
import { nodeApiRequest } from '../../top/lab/node-api.js';
import { croftJs } from '../../top/lab/paths.js';
import { repoRoot } from '../../src/paths.js';

export const GC_PRESSURE = path.join(repoRoot, 'test', 'fixtures', 'membership', 'gc-pressure.cjs');
const NODES = ['n1', 'n2', 'n3'];

export interface SoakOptions {
  name: string;
  durationS: number;
  intervalMs?: number;
  timeoutMs?: number;
  log?: (line: string) => void;
}

export interface SoakResult {
  durationS: number;
  intervalMs: number;
  timeoutMs: number;
  cores: number;
  /** peer_down and view_change events logged during the load, per node (all should be 0). */
  peerDowns: Record<string, number>;
  viewChanges: Record<string, number>;
  /** Per node, from the preload's last report: collections, longest and total pause. */
  gc: Record<string, { collections: number; maxPauseMs: number; totalPauseMs: number; over100: number } | null>;
  /** CPU time the spinning processes got, as a share of the wall time of all cores. */
  hogShare: number;
}

interface LogLine { time?: string; event?: string; [k: string]: unknown }

function logLines(lab: Lab, node: string): { json: LogLine[]; raw: string[] } {
  const file = path.join(lab.stateDir, 'nodes', node, 'daemon.log');
  const raw = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n') : [];
  const json: LogLine[] = [];
  for (const line of raw) {
    if (!line.startsWith('{')) continue;
    try { json.push(JSON.parse(line) as LogLine); } catch { /* a partial last line */ }
  }
  return { json, raw };
}

async function allSeeAll(lab: Lab, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const views = await Promise.all(NODES.map(async (n) => {
      try {
        const r = await nodeApiRequest<{ view: { members: string[] }; converged: boolean }>(lab.stateDir, n, 'GET', '/api/v1/status');
        return r.status === 200 && r.body.converged ? r.body.view.members.join(' ') : '';
      } catch {
        return '';
      }
    }));
    if (views.every((v) => v === NODES.join(' '))) return;
    if (Date.now() - t0 > timeoutMs) throw new Error(`the soak lab did not form within ${timeoutMs} ms: ${JSON.stringify(views)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 1/100 s
}

export async function soak(opts: SoakOptions): Promise<SoakResult> {
  const intervalMs = opts.intervalMs ?? 100;
  const timeoutMs = opts.timeoutMs ?? 250;
  const log = opts.log ?? (() => {});
  // The lab starts each daemon with this command (CROFT_LAB_NODE is set per node by the lab).
  const saved = process.env.CROFT_LAB_DAEMON_CMD;
  process.env.CROFT_LAB_DAEMON_CMD = `exec ${process.execPath} --require ${GC_PRESSURE} ${croftJs} daemon --config ${NODE_CONFIG_PATH} --node "$CROFT_LAB_NODE"`;
  let lab: Lab | undefined;
  const hogs: ChildProcess[] = [];
  try {
    lab = await Lab.up({ name: opts.name, nodes: NODES.length, intervalMs, timeoutMs });
    if (saved === undefined) delete process.env.CROFT_LAB_DAEMON_CMD;
    else process.env.CROFT_LAB_DAEMON_CMD = saved;
    await allSeeAll(lab, 20_000);
    const before = Object.fromEntries(NODES.map((n) => [n, logLines(lab!, n).json.length]));
    const cores = os.cpus().length;
    for (let i = 0; i < cores; i++) hogs.push(spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
    log(`soak: ${cores} spinning processes, GC pressure in every daemon, ${opts.durationS} s`);
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, opts.durationS * 1000));
    const wallS = (Date.now() - t0) / 1000;
    const hogCpu = hogs.reduce((a, h) => a + (h.pid ? cpuSeconds(h.pid) : 0), 0);
    for (const h of hogs) h.kill('SIGKILL');
    const peerDowns: Record<string, number> = {};
    const viewChanges: Record<string, number> = {};
    const gc: SoakResult['gc'] = {};
    for (const n of NODES) {
      const { json, raw } = logLines(lab, n);
      const during = json.slice(before[n]);
      peerDowns[n] = during.filter((l) => l.event === 'peer_down').length;
      viewChanges[n] = during.filter((l) => l.event === 'view_change').length;
      const reports = raw.filter((l) => l.includes('"gc_pressure"')).map((l) => JSON.parse(l.slice(l.indexOf('{'))) as SoakResult['gc'][string]);
      gc[n] = reports.at(-1) ?? null;
    }
    return { durationS: opts.durationS, intervalMs, timeoutMs, cores, peerDowns, viewChanges, gc, hogShare: hogCpu / (wallS * cores) };
  } finally {
    for (const h of hogs) if (h.exitCode === null && h.signalCode === null) h.kill('SIGKILL');
    if (process.env.CROFT_LAB_DAEMON_CMD !== saved) {
      if (saved === undefined) delete process.env.CROFT_LAB_DAEMON_CMD;
      else process.env.CROFT_LAB_DAEMON_CMD = saved;
    }
    await lab?.down();
  }
}

/** The `#` lines both the test and the bench print. */
export function soakReport(r: SoakResult): string[] {
  const gcs = Object.entries(r.gc).map(([n, g]) => (g ? `${n} ${g.collections} collections, longest ${g.maxPauseMs} ms, ${g.over100} over 100 ms, ${(g.totalPauseMs / 1000).toFixed(1)} s paused` : `${n} no report`));
  return [
    `# soak ${r.durationS} s, heartbeat ${r.intervalMs} ms / timeout ${r.timeoutMs} ms, ${r.cores} cores spinning (they got ${(r.hogShare * 100).toFixed(0)} % of all CPU time)`,
    `# GC in the daemons: ${gcs.join('; ')}`,
    `# peer_down events: ${Object.entries(r.peerDowns).map(([n, c]) => `${n} ${c}`).join(', ')}; view changes: ${Object.entries(r.viewChanges).map(([n, c]) => `${n} ${c}`).join(', ')}`,
  ];
}
