// Containment of a script run, so that its timeout ends every process it started, including those
// that left its process group (setsid, daemon-style double forks):
// - cgroup v2 (preferred): each run gets its own cgroup, <croft's cgroup>/croft-scripts/<pid>.<n>,
//   entered by a tiny wrapper before exec (`sh -c 'echo $$ > cgroup.procs; exec "$@"'`), so even the
//   first fork is inside; the timeout SIGTERMs every process of the cgroup, then cgroup.kill
//   (SIGKILL to all, atomically) after the grace; the run is over when the cgroup is unpopulated.
//   A background application a start script leaves running stays in its run's cgroup (alive); empty
//   cgroups are removed when the run ends, or later by a sweep once their processes are gone.
// - without a usable cgroup v2 (no cgroup2 mount, read-only, kernel without cgroup.kill): the process
//   group, plus every descendant found through /proc (parent links) at kill time; a descendant
//   whose parent already exited (re-parented to init) is not found then. A checker script, which
//   must leave nothing behind, then runs in its own PID namespace (unshare --pid --fork
//   --kill-child): all of it ends with it. Module start scripts cannot run that way, since the end
//   of a PID namespace's first process kills the applications they start in the background.
import fs from 'node:fs';
import path from 'node:path';

/** Where croft's script cgroups go, or null when cgroup v2 cannot be used here (cached). */
let base: string | null | undefined;
let serial = 0;
let lastSweepMs = 0;
const SWEEP_EVERY_MS = 10_000;
/** Cgroups of runs still going (never swept). */
const active = new Set<string>();

function cgroup2Mounts(): { mount: string; root: string }[] {
  const out: { mount: string; root: string }[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right || right.split(' ')[0] !== 'cgroup2') continue;
    const f = left.split(' ');
    if (f[3] !== undefined && f[4] !== undefined) out.push({ root: f[3], mount: f[4] });
  }
  // /sys/fs/cgroup first (unified hierarchy), then a hybrid system's /sys/fs/cgroup/unified.
  return out.sort((a, b) => a.mount.length - b.mount.length);
}

function findBase(): string | null {
  try {
    const line = fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'));
    if (line === undefined) return null;
    const own = line.slice(3).trim();
    for (const { mount, root } of cgroup2Mounts()) {
      if (root !== '/' && own !== root && !own.startsWith(`${root}/`)) continue;
      const rel = root === '/' ? own : own.slice(root.length);
      const dir = path.join(mount, rel);
      // The daemon must really be there (a cgroup namespace could make the paths disagree).
      const procs = fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n');
      if (!procs.includes(String(process.pid))) continue;
      const b = path.join(dir, 'croft-scripts');
      fs.mkdirSync(b, { recursive: true });
      // A probe: can we create a cgroup there, and does the kernel have cgroup.kill (5.14+)?
      const probe = path.join(b, `${process.pid}.probe`);
      fs.mkdirSync(probe, { recursive: true });
      const ok = fs.existsSync(path.join(probe, 'cgroup.kill'));
      fs.rmdirSync(probe);
      if (ok) return b;
    }
  } catch {
    // not usable
  }
  return null;
}

/** The base folder of script cgroups, or null (fallback). CROFT_SCRIPT_CGROUP=0 forces the fallback (tests). */
export function cgroupBase(): string | null {
  if (base === undefined) base = process.env.CROFT_SCRIPT_CGROUP === '0' ? null : findBase();
  return base;
}

/** For tests: forget the cached answer. */
export function resetContainment(): void {
  base = undefined;
}

function sweep(b: string): void {
  const now = Date.now();
  if (now - lastSweepMs < SWEEP_EVERY_MS) return;
  lastSweepMs = now;
  let names: string[];
  try {
    names = fs.readdirSync(b);
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^(\d+)\.\d+$/.exec(name);
    if (!m) continue;
    const dir = path.join(b, name);
    if (active.has(dir)) continue;
    const owner = Number(m[1]);
    // Ours when finished, or a dead daemon's: removed once empty (rmdir fails while populated).
    if (owner !== process.pid && pidAlive(owner)) continue;
    try {
      fs.rmdirSync(dir);
    } catch {
      // still populated (a background application), or gone
    }
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** One run's containment. */
export class Containment {
  /** The run's cgroup, or null in the fallback. */
  readonly cgroup: string | null;
  /** Descendants seen at the first kill (fallback): killed again with SIGKILL. */
  private known = new Set<number>();

  private constructor(cgroup: string | null) {
    this.cgroup = cgroup;
  }

  static create(): Containment {
    const b = cgroupBase();
    if (b === null) return new Containment(null);
    sweep(b);
    const dir = path.join(b, `${process.pid}.${++serial}`);
    try {
      fs.mkdirSync(dir);
    } catch {
      return new Containment(null);
    }
    active.add(dir);
    return new Containment(dir);
  }

  /**
   * The command to spawn for `file args`: through the cgroup wrapper, or a PID namespace for a run
   * that must leave nothing behind (`isolated`) when there is no cgroup, or as is.
   */
  command(file: string, args: string[], isolated: boolean): { cmd: string; argv: string[] } {
    if (this.cgroup !== null) {
      // If entering the cgroup fails (delegation refused...), the script still runs: a failover must
      // not fail for that; the timeout then falls back to the group and /proc descendants.
      const wrapper = '{ echo $$ > "$1/cgroup.procs"; } 2>/dev/null || echo "croft: could not enter the cgroup $1; the timeout kills the process group only" >&2; shift; exec "$@"';
      return { cmd: '/bin/sh', argv: ['-c', wrapper, 'croft-script', this.cgroup, file, ...args] };
    }
    if (isolated) return { cmd: 'unshare', argv: ['--pid', '--fork', '--kill-child', '--', file, ...args] };
    return { cmd: file, argv: args };
  }

  private cgroupPids(): number[] {
    if (this.cgroup === null) return [];
    try {
      return fs.readFileSync(path.join(this.cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  }

  /** Whether any process of the run (cgroup, or tracked descendants) is still there. */
  populated(): boolean {
    if (this.cgroup !== null) {
      try {
        if (/^populated 1$/m.test(fs.readFileSync(path.join(this.cgroup, 'cgroup.events'), 'utf8'))) return true;
      } catch {
        // removed: empty
      }
    }
    for (const pid of this.known) if (pidAlive(pid) && !isZombie(pid)) return true;
    return false;
  }

  /** Signals every process of the run: the cgroup (cgroup.kill for SIGKILL), and `pid`'s descendants. */
  signal(rootPid: number | undefined, sig: NodeJS.Signals): void {
    if (this.cgroup !== null) {
      if (sig === 'SIGKILL') {
        try {
          fs.writeFileSync(path.join(this.cgroup, 'cgroup.kill'), '1');
        } catch {
          // gone
        }
      } else {
        for (const pid of this.cgroupPids()) kill(pid, sig);
      }
    }
    if (rootPid !== undefined) {
      for (const pid of descendants(rootPid)) this.known.add(pid);
      for (const pid of this.known) kill(pid, sig);
    }
  }

  /** The run is over: its cgroup goes if empty (else a background application lives in it; swept later). */
  release(): void {
    if (this.cgroup === null) return;
    active.delete(this.cgroup);
    try {
      fs.rmdirSync(this.cgroup);
    } catch {
      // populated: left for the sweep
    }
  }
}

function kill(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone
  }
}

function isZombie(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/** Every process whose parent chain leads to `root` (through /proc), root excluded. */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  let names: string[];
  try {
    names = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length > 0 && out.length < 100_000) {
    const p = todo.pop() as number;
    for (const c of children.get(p) ?? []) {
      out.push(c);
      todo.push(c);
    }
  }
  return out;
}
