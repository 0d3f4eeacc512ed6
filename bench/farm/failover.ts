// Failover as test/integration/farm.lab.test.ts measures it: a node fails — `lab kill` (SIGKILL of its
// processes: croft's daemon and nginx, or keepalived and nginx; its kernel lives on and answers RST)
// or `lab crash` (its links down first, then the same kill: nothing leaves the node, as a power cut)
// — then every client source retries with a fresh connection (100 ms per attempt) until answered; the
// figure is failure -> the last client's answer.
import path from 'node:path';
import type { Lab } from '../../top/lab/index.js';
import { repoRoot } from '../../src/paths.js';

const clientsScript = path.join(repoRoot, 'test', 'fixtures', 'farm-lab', 'clients.mjs');

export interface ClientsResult { results: Record<string, string | null>; answeredAtMs: Record<string, number> }

export async function clients(lab: Lab, url: string, opts: object): Promise<ClientsResult> {
  const r = await lab.exec('client', ['node', clientsScript, JSON.stringify({ url, ...opts })], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`clients.mjs failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as ClientsResult;
}

export type Failure = 'kill' | 'crash';
export const FAILURES: readonly Failure[] = ['kill', 'crash'];

/** Fails `victim` (lab kill or lab crash) and returns ms from just before it to the last client's answer. */
export async function failAndMeasure(lab: Lab, victim: string, how: Failure, url: string, sources: string[]): Promise<number> {
  const t0 = Date.now();
  await (how === 'crash' ? lab.crash(victim) : lab.kill(victim));
  const res = await clients(lab, url, { sources, mode: 'until-all', timeoutMs: 100, deadlineMs: 10_000 });
  const missing = sources.filter((s) => !res.results[s]);
  if (missing.length > 0) throw new Error(`${missing.length} clients not answered within 10 s after lab ${how} of ${victim} (e.g. ${missing[0]})`);
  return Math.max(...Object.values(res.answeredAtMs)) - t0;
}

/** Every client answered once (a check that the cluster is whole before a run). */
export async function allAnswered(lab: Lab, url: string, sources: string[]): Promise<boolean> {
  const res = await clients(lab, url, { sources, mode: 'once', timeoutMs: 1000 });
  return sources.every((s) => res.results[s]);
}

export function stats(values: number[]): { min: number; median: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length / 2;
  const median = s.length % 2 ? s[Math.floor(mid)]! : (s[mid - 1]! + s[mid]!) / 2;
  return { min: s[0] ?? NaN, median, max: s[s.length - 1] ?? NaN };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 20_000, everyMs = 50): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await check()) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await sleep(everyMs);
  }
}
