// script checker: healthy when the user's script exits 0 within the checker's timeout. It runs
// like module scripts (scripts.ts: the same minimal environment plus CROFT_CHECKER, its own cgroup,
// killed whole on timeout, output rate-limited), and `isolated`: without cgroup v2 it runs in its
// own PID namespace, since a checker must leave nothing behind.
import { runScript } from '../scripts.js';
import type { Probe } from './probe.js';

/** A checker script that ignores SIGTERM gets this long before SIGKILL. Short: checkers run often. */
const checkerKillGraceMs = 500;

export function scriptProbe(cfg: {
  path: string;
  timeoutMs: number;
  env: Record<string, string>;
  onOutput?: (stream: 'stdout' | 'stderr', line: string) => void;
}): Probe {
  return async (signal) => {
    const r = await runScript({
      path: cfg.path,
      args: [],
      env: cfg.env,
      timeoutMs: cfg.timeoutMs,
      killGraceMs: checkerKillGraceMs,
      signal,
      isolated: true,
      ...(cfg.onOutput ? { onOutput: cfg.onOutput } : {}),
    });
    if (r.ok) return { ok: true, detail: 'exit 0' };
    if (r.error) return { ok: false, detail: `cannot run ${cfg.path}: ${r.error}` };
    if (r.timedOut || signal.aborted) return { ok: false, detail: 'timeout' };
    return { ok: false, detail: r.exitCode !== null ? `exit ${r.exitCode}` : `killed by ${r.signal}` };
  };
}
