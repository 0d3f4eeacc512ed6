// wrk in the lab's client namespace, and its text output turned into numbers.
import type { Lab } from '../../top/lab/index.js';

export interface WrkResult {
  requestsPerS: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  /** connect/read/write/timeout errors and non-2xx answers, summed: should be 0. */
  errors: number;
}

export interface WrkOptions {
  url: string;
  durationS: number;
  connections: number;
  threads: number;
  /** One TCP connection per request (wrk sends `Connection: close`): measures connection setup. */
  close: boolean;
}

/** "0.88ms" / "703.00us" / "1.02s" -> milliseconds. */
export function durationMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!m) throw new Error(`wrk: cannot read the duration "${text}"`);
  const v = Number(m[1]);
  const factor: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };
  return v * factor[m[2]!]!;
}

export function parseWrk(out: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const p50 = /^\s+50%\s+(\S+)$/m.exec(out);
  const p99 = /^\s+99%\s+(\S+)$/m.exec(out);
  const total = /(\d+) requests in/.exec(out);
  if (!rps || !p50 || !p99 || !total) throw new Error(`wrk: unexpected output:\n${out}`);
  let errors = 0;
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  if (sock) errors += Number(sock[1]) + Number(sock[2]) + Number(sock[3]) + Number(sock[4]);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (non2xx) errors += Number(non2xx[1]);
  return { requestsPerS: Number(rps[1]), p50Ms: durationMs(p50[1]!), p99Ms: durationMs(p99[1]!), requests: Number(total[1]), errors };
}

export async function wrk(lab: Lab, o: WrkOptions): Promise<WrkResult> {
  const argv = ['wrk', `-t${o.threads}`, `-c${o.connections}`, `-d${o.durationS}s`, '--latency', '--timeout', '2s'];
  if (o.close) argv.push('-H', 'Connection: close');
  argv.push(o.url);
  const r = await lab.exec('client', argv, { timeoutMs: (o.durationS + 30) * 1000 });
  if (r.code !== 0) throw new Error(`wrk failed (exit ${r.code}): ${r.stderr}${r.stdout}`);
  return parseWrk(r.stdout);
}
