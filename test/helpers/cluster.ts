// Helpers for integration tests on a lab: talk to each node's daemon through its local API socket
// (top/lab/node-api.ts), wait for conditions, read daemon logs.
import fs from 'node:fs';
import path from 'node:path';
import type { ClusterStatus } from '../../top/daemon/daemon.js';
import type { Lab } from '../../top/lab/index.js';
import { nodeApiRequest } from '../../top/lab/node-api.js';

export function nodeApi<T>(lab: Lab, node: string, method: 'GET' | 'POST', urlPath: string, timeoutMs = 2000): Promise<{ status: number; body: T }> {
  return nodeApiRequest<T>(lab.stateDir, node, method, urlPath, timeoutMs);
}

export async function nodeStatus(lab: Lab, node: string): Promise<ClusterStatus | null> {
  try {
    const r = await nodeApi<ClusterStatus>(lab, node, 'GET', '/api/v1/status');
    return r.status === 200 ? r.body : null;
  } catch {
    return null;
  }
}

// The lab's own drivers (top/lab: committer, chaos) wait the same way.
export { sleep, waitFor } from '../../top/lab/wait.js';

/** True when `node` sees exactly `members` up, as one converged view. */
export async function seesMembers(lab: Lab, node: string, members: string[]): Promise<boolean> {
  const st = await nodeStatus(lab, node);
  if (!st) return false;
  return JSON.stringify(st.view.members) === JSON.stringify([...members].sort()) && st.converged;
}

export interface LogLine { time: string; node?: string; event?: string; peer?: string; module?: string; from?: string; to?: string; cause?: string; [k: string]: unknown }

export function daemonLog(lab: Lab, node: string): LogLine[] {
  const file = path.join(lab.stateDir, 'nodes', node, 'daemon.log');
  if (!fs.existsSync(file)) return [];
  const out: LogLine[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try { out.push(JSON.parse(line) as LogLine); } catch { /* a partial last line */ }
  }
  return out;
}

/** Wall-clock ms of the first log event matching `match` at or after `sinceMs`, or null. */
export function firstEventAfter(lab: Lab, node: string, sinceMs: number, match: (l: LogLine) => boolean): number | null {
  for (const l of daemonLog(lab, node)) {
    const t = Date.parse(l.time);
    if (t >= sinceMs && match(l)) return t;
  }
  return null;
}

export function stats(values: number[]): { min: number; median: number; mean: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  return {
    min: s[0] ?? NaN,
    median: s[Math.floor(s.length / 2)] ?? NaN,
    mean: Math.round(s.reduce((a, b) => a + b, 0) / (s.length || 1)),
    max: s[s.length - 1] ?? NaN,
  };
}
