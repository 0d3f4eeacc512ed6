// Driver: run one module script (start_both, stop_both, a checker script) with a timeout.
//
// The script runs in its own process group (detached: setsid), so that on timeout the whole group
// is killed, SIGTERM then SIGKILL after killGraceMs: a hung script that forked children is really
// gone, not just its shell. The result comes when the script itself exits; its output is given line
// by line. A script that starts a daemon in the background (`app &`) without redirecting the
// daemon's output leaves our pipes open in the daemon: we do not wait for them (the script is done),
// and we keep reading them (closing them would kill the daemon with SIGPIPE at its next write), so
// the daemon's lines keep arriving on onOutput until it closes them.
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { ModuleState, ScriptName } from './types.js';

/** Longest output line given to onOutput; longer lines are cut (and marked) so one line cannot fill the log. */
export const maxLineChars = 4096;
/** After the script exits, how long its last output may take to arrive before we answer. */
const drainMs = 50;
/** How often we look whether a killed process group is gone before its SIGKILL is due. */
const groupPollMs = 20;

export interface RunScriptOptions {
  path: string;
  args: string[];
  /** Added to croft's own environment (PATH...). */
  env: Record<string, string>;
  timeoutMs: number;
  killGraceMs: number;
  cwd?: string;
  onOutput?: (stream: 'stdout' | 'stderr', line: string) => void;
  /** Kills the script's group as a timeout would (timedOut stays false). */
  signal?: AbortSignal;
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

export function runScript(opts: RunScriptOptions): Promise<ScriptResult> {
  const startedMs = performance.now();
  return new Promise<ScriptResult>((resolve) => {
    let child;
    try {
      child = spawn(opts.path, opts.args, {
        cwd: opts.cwd,
        env: { ...process.env, ...opts.env },
        detached: true, // own process group: -pid addresses the script and all its children
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (err) {
      resolve({ ok: false, exitCode: null, signal: null, timedOut: false, durationMs: performance.now() - startedMs, error: String(err) });
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
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i).replace(/\r$/, '');
          buf = buf.slice(i + 1);
          if (!cut) opts.onOutput?.(stream, line.slice(0, maxLineChars));
          cut = false;
        }
        if (buf.length > maxLineChars) {
          if (!cut) opts.onOutput?.(stream, `${buf.slice(0, maxLineChars)} [line cut]`);
          cut = true;
          buf = '';
        }
      });
      r.on('end', () => {
        if (buf.length > 0 && !cut) opts.onOutput?.(stream, buf.slice(0, maxLineChars));
        buf = '';
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
      const r: ScriptResult = { ok: !timedOut && !killing && !error && code === 0, exitCode: code, signal, timedOut, durationMs: performance.now() - startedMs };
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
      if (pid === undefined) return;
      try {
        process.kill(-pid, sig);
      } catch {
        // ESRCH: the group is already gone.
      }
    };
    // The answer waits until the script has exited and, if we killed it, until its group is gone
    // (or got its SIGKILL): the caller may then start the next script without a leftover.
    const maybeDone = () => {
      if (!exited || finished) return;
      if (!killing || !groupAlive()) finish();
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
