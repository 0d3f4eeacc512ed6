// Idle cost of croft's daemons (issue 11 part 4): a lab of N nodes with one farm module, 100 ms
// heartbeats, nothing happening; per daemon, over a window, its own CPU (utime+stime of
// /proc/<pid>/stat), the CPU of its children counted separately (cutime+cstime: children it
// reaped during the window, e.g. an `nft` per interval, plus the descendants still alive) and its
// RSS (VmRSS of /proc/<pid>/status, at the end of the window).
import fs from 'node:fs';
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import type { Lab } from '../../top/lab/index.js';

export interface IdleDaemon {
  node: string;
  pid: number;
  /** % of one core used by the daemon process itself (all its threads) over the window. */
  cpuPct: number;
  /** % of one core used by its children (reaped ones and live descendants) over the window. */
  childrenCpuPct: number;
  /** VmRSS at the end of the window, MiB. */
  rssMb: number;
  /**
   * % of one core per thread group: `js` (the main thread: JavaScript, libuv's loop), `v8+libuv`
   * (the other threads node names `node`: V8's GC and compiler helpers, libuv's pool), and each
   * named native thread of croft (croft-hb-send, croft-hb-recv0, croft-nft, croft-arp-...).
   */
  threads: Record<string, number>;
}

export interface IdleResult {
  nodes: number;
  /** The module's http checker interval (ms), when the run says. */
  checkerMs?: number;
  windowS: number;
  daemons: IdleDaemon[];
}

const TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

interface Ticks { self: number; reaped: number }

function statTicks(pid: number, tid?: string): Ticks {
  // comm (field 2) may hold spaces: split after the last ')'.
  const text = fs.readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state): utime = field 14, stime 15, cutime 16, cstime 17.
  const n = (field: number) => Number(f[field - 3]);
  return { self: n(14) + n(15), reaped: n(16) + n(17) };
}

function descendants(pid: number): number[] {
  const out: number[] = [];
  const walk = (p: number) => {
    let tasks: string[] = [];
    try {
      tasks = fs.readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    for (const t of tasks) {
      let kids = '';
      try {
        kids = fs.readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').trim();
      } catch { /* gone */ }
      for (const k of kids ? kids.split(' ').map(Number) : []) {
        out.push(k);
        walk(k);
      }
    }
  };
  walk(pid);
  return out;
}

function liveChildrenTicks(pid: number): Map<number, number> {
  const m = new Map<number, number>();
  for (const d of descendants(pid)) {
    try {
      m.set(d, statTicks(d).self);
    } catch { /* exited */ }
  }
  return m;
}

/** Ticks per thread group of the process (see IdleDaemon.threads). */
function threadTicks(pid: number): Map<string, number> {
  const m = new Map<string, number>();
  let tids: string[] = [];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return m;
  }
  for (const tid of tids) {
    try {
      const comm = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const group = tid === String(pid) ? 'js' : comm.startsWith('croft-') ? comm : 'v8+libuv';
      m.set(group, (m.get(group) ?? 0) + statTicks(pid, tid).self);
    } catch { /* the thread ended */ }
  }
  return m;
}

function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Measures every daemon of the lab over `windowS` seconds (the lab already settled). */
export async function measureIdle(lab: Lab, nodes: string[], windowS: number): Promise<IdleResult> {
  const st = await lab.status();
  const pids = nodes.map((node) => {
    const s = st.nodes.find((n) => n.name === node);
    if (!s?.daemonPid || s.daemon !== 'alive') throw new Error(`the daemon of ${node} is not running`);
    return { node, pid: s.daemonPid };
  });
  const before = pids.map((p) => ({ ...statTicks(p.pid), live: liveChildrenTicks(p.pid), threads: threadTicks(p.pid) }));
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, windowS * 1000));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const daemons = pids.map((p, i) => {
    const a = before[i]!;
    const b = statTicks(p.pid);
    const liveAfter = liveChildrenTicks(p.pid);
    let live = 0;
    for (const [pid, t] of liveAfter) live += t - (a.live.get(pid) ?? 0);
    const pct = (ticks: number) => (ticks / TICKS / seconds) * 100;
    const threads: Record<string, number> = {};
    for (const [g, t] of threadTicks(p.pid)) threads[g] = pct(t - (a.threads.get(g) ?? 0));
    return { node: p.node, pid: p.pid, cpuPct: pct(b.self - a.self), childrenCpuPct: pct(b.reaped - a.reaped + live), rssMb: rssMb(p.pid), threads };
  });
  return { nodes: nodes.length, windowS: seconds, daemons };
}

/** `# idle ...` lines: one per lab size, the mean and the worst daemon. */
export function idleLines(results: IdleResult[]): string[] {
  const lines: string[] = [];
  for (const r of results) {
    const d = r.daemons;
    const mean = (f: (x: IdleDaemon) => number) => d.reduce((s, x) => s + f(x), 0) / d.length;
    const max = (f: (x: IdleDaemon) => number) => Math.max(...d.map(f));
    lines.push(`# idle ${r.nodes} nodes, heartbeat 100 ms${r.checkerMs ? `, http checker every ${r.checkerMs} ms` : ''}, ${r.windowS.toFixed(0)} s: daemon CPU ${mean((x) => x.cpuPct).toFixed(2)} % of a core `
      + `(max ${max((x) => x.cpuPct).toFixed(2)}), children ${mean((x) => x.childrenCpuPct).toFixed(2)} % (max ${max((x) => x.childrenCpuPct).toFixed(2)}), `
      + `RSS ${mean((x) => x.rssMb).toFixed(0)} MB (max ${max((x) => x.rssMb).toFixed(0)}); ${os.cpus().length} CPUs`);
    // A thread that ended during the window (a libuv pool thread) is not counted: the groups may
    // add up to a little less than the daemon's CPU.
    const groups = [...new Set(d.flatMap((x) => Object.keys(x.threads ?? {})))].sort();
    if (groups.length) lines.push(`#   per thread, mean % of a core: ${groups.map((g) => `${g} ${mean((x) => x.threads?.[g] ?? 0).toFixed(2)}`).join(', ')}`);
  }
  return lines;
}
