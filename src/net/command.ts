// One runner for the network tools croft drives (`ip`, `bridge`, `nft`): argv only (no shell),
// output collected, optional stdin and timeout, and a failure to start reported as a CroftError
// with the caller's code.
import { spawn } from 'node:child_process';
import { CroftError, type ErrorCode } from '../errors.js';

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to its stdin (closed after). */
  input?: string;
  /** Killed (SIGKILL) past this; its exit code is then 137. */
  timeoutMs?: number;
}

/** Runs argv[0] with argv[1..]; resolves with its exit code and output (rejects only if it cannot start). */
export function run(argv: readonly string[], errorCode: ErrorCode, o: RunOptions = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = o.timeoutMs === undefined ? null : setTimeout(() => child.kill('SIGKILL'), o.timeoutMs);
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(new CroftError(errorCode, `cannot run ${argv[0]}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code: code ?? (signal ? 137 : 1), stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    if (child.stdin) {
      child.stdin.on('error', () => { /* it may exit before reading all of its input */ });
      child.stdin.end(o.input);
    }
  });
}

/** As run, and a non-zero exit is an error naming the command and its stderr. Resolves with stdout. */
export async function runOk(argv: readonly string[], errorCode: ErrorCode): Promise<string> {
  const r = await run(argv, errorCode);
  if (r.code !== 0) throw new CroftError(errorCode, `\`${argv.join(' ')}\` failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}
