// One probe per configured checker, by type.
import type { CheckerConfig } from '../../config/types.js';
import { httpProbe } from './http.js';
import { interfaceProbe } from './interface.js';
import { moduleProbe, type ModuleStateGetter } from './module.js';
import { pingProbe } from './ping.js';
import type { Probe } from './probe.js';
import type { RunnerChecker } from './runner.js';
import { redisProbe } from './redis.js';
import { scriptProbe } from './script.js';
import { tcpProbe } from './tcp.js';

export type { Probe, ProbeResult } from './probe.js';
export { CheckerRunner, type RunnerChecker, type ProbeListener } from './runner.js';
export type { ModuleStateGetter } from './module.js';

export interface ProbeContext {
  getModuleState: ModuleStateGetter;
  /** Environment for script checkers (CROFT_NODE, CROFT_MODULE...). */
  env: Record<string, string>;
  onScriptOutput?: (checker: string, stream: 'stdout' | 'stderr', line: string) => void;
}

export function probeFor(c: CheckerConfig, ctx: ProbeContext): Probe {
  switch (c.type) {
    case 'tcp':
      return tcpProbe(c);
    case 'http':
      return httpProbe(c);
    case 'ping':
      return pingProbe(c);
    case 'interface':
      return interfaceProbe(c);
    case 'script': {
      const out = ctx.onScriptOutput;
      return scriptProbe({
        path: c.path,
        timeoutMs: c.timeoutMs,
        env: { ...ctx.env, CROFT_CHECKER: c.name, CROFT_SCRIPT: c.name },
        ...(out ? { onOutput: (stream: 'stdout' | 'stderr', line: string) => out(c.name, stream, line) } : {}),
      });
    }
    case 'module':
      return moduleProbe(c, ctx.getModuleState);
    case 'redis':
      return redisProbe({
        host: c.host,
        port: c.port,
        timeoutMs: c.timeoutMs,
        ...(c.password !== undefined ? { password: c.password } : {}),
        ...(c.db !== undefined ? { db: c.db } : {}),
      });
  }
}

/** The runner's view of a module's checkers (light and mirror runtimes alike). */
export function runnerCheckers(checkers: readonly CheckerConfig[], ctx: ProbeContext): RunnerChecker[] {
  return checkers.map((c) => ({ name: c.name, intervalMs: c.intervalMs, timeoutMs: c.timeoutMs, probe: probeFor(c, ctx) }));
}
