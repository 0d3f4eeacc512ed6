// One runner for the network tools croft drives (`ip`, `bridge`): argv only (no shell), output
// collected, and a failure reported as a CroftError with the caller's code.
import { spawn } from 'node:child_process';
import { CroftError, type ErrorCode } from '../errors.js';

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv[0] with argv[1..]; resolves with its exit code and output (rejects only if it cannot start). */
export function run(argv: readonly string[], errorCode: ErrorCode): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => reject(new CroftError(errorCode, `cannot run ${argv[0]}: ${e.message}`, { cause: e })));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
  });
}

/** As run, and a non-zero exit is an error naming the command and its stderr. Resolves with stdout. */
export async function runOk(argv: readonly string[], errorCode: ErrorCode): Promise<string> {
  const r = await run(argv, errorCode);
  if (r.code !== 0) throw new CroftError(errorCode, `\`${argv.join(' ')}\` failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}
