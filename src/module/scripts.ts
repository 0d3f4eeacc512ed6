// Driver: run one module script (start_both, stop_both, start_prim, stop_prim, a checker script)
// with a timeout.
//
// Environment. A script gets a minimal, fixed environment, never the daemon's own (which may hold
// secrets: tokens, passwords given to croft's service):
//   PATH      croft's PATH, or /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
//   HOME      the home of croft's user (/root for root); USER and LOGNAME its name
//   LANG, LC_ALL, TZ   only when croft's environment sets them
//   CROFT_NODE, CROFT_MODULE, CROFT_CLUSTER, CROFT_SCRIPT, CROFT_STATE (the state being entered)
//   CROFT_LIB  the shell library of process helpers the shipped modules source (CROFT_LIB_PATH)
//   mirror modules also: CROFT_PEER, CROFT_MIRROR_DIRS (':'-separated), CROFT_MIRROR_DIR_<i>, CROFT_VIP
//   checker scripts also: CROFT_CHECKER (the checker's name; CROFT_SCRIPT is that name too)
// Nothing else (no TERM, no croft's own CROFT_* settings such as CROFT_CONFIG or CROFT_TOKEN).
// A script that needs more sets it itself (the modules/* scripts read their settings from a file).
//
// Containment (contain.ts). The script runs in its own process group (detached: setsid) and, where
// cgroup v2 is usable, in its own cgroup: on timeout every process of the run is killed, those that
// left the group too (setsid children), SIGTERM then SIGKILL after killGraceMs (cgroup.kill).
// Without cgroup v2, the group and its /proc descendants are killed (a checker script runs in its
// own PID namespace then). The result comes when the script itself exits, or when a killed run is
// gone entirely.
//
// Output. Given line by line to onOutput, at most OUTPUT_BURST_BYTES at once and OUTPUT_RATE_BYTES_PER_S
// after that (a token bucket per run); the rest is read and dropped (the pipe is always drained, so
// the script never blocks on it) and counted: a line "… N bytes of output dropped" says so when
// output passes again and when the run's pipes close. A script that starts a daemon in the
// background (`app &`) without redirecting its output leaves our pipes open in the daemon: we do not
// wait for them (the script is done), and we keep reading them (closing them would kill the daemon
// with SIGPIPE at its next write), so the daemon's lines keep arriving, rate-limited, until it
// closes them.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { repoRoot } from '../paths.js';
import { Containment } from './contain.js';
import type { ModuleState, ScriptName } from './types.js';

/** Longest output line given to onOutput; longer lines are cut (and marked) so one line cannot fill the log. */
export const maxLineChars = 4096;
/** After the script exits, how long its last output may take to arrive before we answer. */
const drainMs = 50;
/** How often we look whether a killed process group is gone before its SIGKILL is due. */
const groupPollMs = 20;
/** Output a run may log at once (bytes, newlines included)... */
export const OUTPUT_BURST_BYTES = 64 * 1024;
/** ...and per second after that. */
export const OUTPUT_RATE_BYTES_PER_S = 8 * 1024;
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * modules/lib/croft.sh of the package croft runs from (in the Debian package, /usr/lib/croft/modules
 * is a link to /usr/share/croft/modules): one library for every module, whichever folder the
 * module itself was copied to.
 */
export const CROFT_LIB_PATH = path.join(repoRoot, 'modules', 'lib', 'croft.sh');

/** The fixed part of every script's environment (see the top of this file). */
export function baseScriptEnv(): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env.PATH || DEFAULT_PATH };
  let user: os.UserInfo<string> | null = null;
  try {
    user = os.userInfo();
  } catch {
    user = null;
  }
  env.HOME = user?.homedir || (process.getuid?.() === 0 ? '/root' : '/');
  if (user?.username) {
    env.USER = user.username;
    env.LOGNAME = user.username;
  }
  for (const k of ['LANG', 'LC_ALL', 'TZ']) {
    const v = process.env[k];
    if (v !== undefined && v !== '') env[k] = v;
  }
  env.CROFT_LIB = CROFT_LIB_PATH;
  return env;
}

export interface RunScriptOptions {
  path: string;
  args: string[];
  /** croft's variables for this script (CROFT_*), added to baseScriptEnv(): the whole environment. */
  env: Record<string, string>;
  timeoutMs: number;
  killGraceMs: number;
  cwd?: string;
  onOutput?: (stream: 'stdout' | 'stderr', line: string) => void;
  /** Kills the script's group as a timeout would (timedOut stays false). */
  signal?: AbortSignal;
  /**
   * The run must leave no process behind (checker scripts): without cgroup v2, it runs in its own
   * PID namespace. Module scripts may leave a background application running.
   */
  isolated?: boolean;
}

export interface ScriptResult {
  /** Exit code 0, no timeout. */
  ok: boolean;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  durationMs: number;
  /** The script could not be started (ENOENT, EACCES...). */
  error?: string;
  /** Output bytes read from the run's pipes so far, and how many of them were dropped (rate limit). */
  outputBytes: number;
  droppedBytes: number;
}

/** The environment croft gives a module script. */
export function scriptEnv(o: { node: string; module: string; cluster: string; script: ScriptName | string; entering: ModuleState }): Record<string, string> {
  return {
    CROFT_NODE: o.node,
    CROFT_MODULE: o.module,
    CROFT_STATE: o.entering,
    CROFT_SCRIPT: o.script,
    CROFT_CLUSTER: o.cluster,
  };
}

/** Per run: lets OUTPUT_BURST_BYTES through at once, OUTPUT_RATE_BYTES_PER_S after; counts the rest. */
class OutputBudget {
  private tokens = OUTPUT_BURST_BYTES;
  private lastMs = performance.now();
  total = 0;
  dropped = 0;
  private unreported = 0;

  constructor(private readonly emit: ((stream: 'stdout' | 'stderr', line: string) => void) | undefined) {}

  read(bytes: number): void {
    this.total += bytes;
  }

  line(stream: 'stdout' | 'stderr', text: string, bytes: number): void {
    const now = performance.now();
    this.tokens = Math.min(OUTPUT_BURST_BYTES, this.tokens + ((now - this.lastMs) / 1000) * OUTPUT_RATE_BYTES_PER_S);
    this.lastMs = now;
    if (this.tokens < bytes) {
      this.dropped += bytes;
      this.unreported += bytes;
      return;
    }
    this.tokens -= bytes;
    this.report(stream);
    this.emit?.(stream, text);
  }

  /** A line saying how much was dropped since the last one, if anything was. */
  report(stream: 'stdout' | 'stderr'): void {
    if (this.unreported === 0) return;
    const n = this.unreported;
    this.unreported = 0;
    this.emit?.(stream, `… ${n} bytes of output dropped (over ${OUTPUT_BURST_BYTES} bytes at once or ${OUTPUT_RATE_BYTES_PER_S} bytes/s)`);
  }
}

function notRunnable(file: string): string | null {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile() ? null : `EACCES: not a regular file: ${file}`;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return `${err.code ?? 'EACCES'}: cannot run ${file}: ${err.message}`;
  }
}

export function runScript(opts: RunScriptOptions): Promise<ScriptResult> {
  const startedMs = performance.now();
  const budget = new OutputBudget(opts.onOutput);
  const counts = () => ({ outputBytes: budget.total, droppedBytes: budget.dropped });
  return new Promise<ScriptResult>((resolve) => {
    // Checked here: through the cgroup wrapper, a missing script would be the wrapper's exit 127.
    const cannot = notRunnable(opts.path);
    if (cannot !== null) {
      resolve({ ok: false, exitCode: null, signal: null, timedOut: false, durationMs: performance.now() - startedMs, error: cannot, ...counts() });
      return;
    }
    const box = Containment.create();
    const { cmd, argv } = box.command(opts.path, opts.args, opts.isolated === true);
    let child;
    try {
      child = spawn(cmd, argv, {
        cwd: opts.cwd,
        env: { ...baseScriptEnv(), ...opts.env },
        detached: true, // own process group: -pid addresses the script and all its children
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (err) {
      box.release();
      resolve({ ok: false, exitCode: null, signal: null, timedOut: false, durationMs: performance.now() - startedMs, error: String(err), ...counts() });
      return;
    }
    const pid = child.pid;
    let timedOut = false;
    let killing = false;
    let exited: { code: number | null; signal: string | null } | null = null;
    let finished = false;
    const timers: NodeJS.Timeout[] = [];

    const lines = (stream: 'stdout' | 'stderr', r: Readable) => {
      let buf = '';
      let cut = false; // inside an over-long line whose head was already given
      r.setEncoding('utf8');
      r.on('data', (chunk: string) => {
        budget.read(Buffer.byteLength(chunk));
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i).replace(/\r$/, '');
          buf = buf.slice(i + 1);
          if (!cut) budget.line(stream, line.slice(0, maxLineChars), Math.min(line.length, maxLineChars) + 1);
          cut = false;
        }
        if (buf.length > maxLineChars) {
          if (!cut) budget.line(stream, `${buf.slice(0, maxLineChars)} [line cut]`, maxLineChars + 1);
          cut = true;
          buf = '';
        }
      });
      r.on('end', () => {
        if (buf.length > 0 && !cut) budget.line(stream, buf.slice(0, maxLineChars), Math.min(buf.length, maxLineChars));
        buf = '';
        budget.report(stream);
      });
      r.on('error', () => {});
    };
    lines('stdout', child.stdout);
    lines('stderr', child.stderr);

    const finish = (error?: string) => {
      if (finished) return;
      finished = true;
      for (const t of timers) clearTimeout(t);
      opts.signal?.removeEventListener('abort', onAbort);
      // Pipes still held by background children must not keep croft alive.
      for (const s of [child.stdout, child.stderr]) (s as unknown as { unref?: () => void }).unref?.();
      const code = exited?.code ?? null;
      const signal = exited?.signal ?? null;
      budget.report('stderr');
      box.release();
      const r: ScriptResult = {
        ok: !timedOut && !killing && !error && code === 0, exitCode: code, signal, timedOut, durationMs: performance.now() - startedMs, ...counts(),
      };
      if (error) r.error = error;
      resolve(r);
    };

    const groupAlive = (): boolean => {
      if (pid === undefined) return false;
      try {
        process.kill(-pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    const killGroup = (sig: NodeJS.Signals) => {
      // Every process of the run (cgroup or /proc descendants), then the group.
      box.signal(pid, sig);
      if (pid === undefined) return;
      try {
        process.kill(-pid, sig);
      } catch {
        // ESRCH: the group is already gone.
      }
    };
    // The answer waits until the script has exited and, if we killed it, until all of the run is
    // gone (or got its SIGKILL): the caller may then start the next script without a leftover.
    const maybeDone = () => {
      if (!exited || finished) return;
      if (!killing || (!groupAlive() && !box.populated())) finish();
    };
    const kill = () => {
      if (killing || exited) return;
      killing = true;
      killGroup('SIGTERM');
      timers.push(setTimeout(() => {
        killGroup('SIGKILL');
        if (exited) finish();
      }, opts.killGraceMs));
      const poll = () => {
        if (finished) return;
        maybeDone();
        if (!finished) timers.push(setTimeout(poll, groupPollMs));
      };
      timers.push(setTimeout(poll, groupPollMs));
    };
    const onAbort = () => kill();

    child.on('error', (err) => {
      // spawn failed (the process never ran): no exit event follows.
      if (!exited) {
        exited = { code: null, signal: null };
        finish(err.message);
      }
    });
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      if (killing) {
        maybeDone();
        return;
      }
      // Give the last lines a moment to arrive (they may be behind the exit event).
      let drained = 0;
      const done = () => {
        if (++drained === 1) finish();
      };
      child.on('close', done);
      timers.push(setTimeout(done, drainMs));
    });
    timers.push(setTimeout(() => {
      if (exited) return;
      timedOut = true;
      kill();
    }, opts.timeoutMs));
    if (opts.signal) {
      if (opts.signal.aborted) kill();
      else opts.signal.addEventListener('abort', onAbort, { once: true });
    }
  });
}
