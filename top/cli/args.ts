// A small argument parser: `--flag`, `--key value`, `--key=value`, positionals, and `--` to end options.
import { CroftError } from '../../src/errors.js';

export interface ParsedArgs {
  positionals: string[];
  flags: Map<string, string | true>;
  /** Everything after `--`. */
  rest: string[];
}

/** `valued` lists the options that take a value; any other `--x` is a boolean flag. */
export function parseArgs(argv: string[], valued: readonly string[] = []): ParsedArgs {
  const out: ParsedArgs = { positionals: [], flags: new Map(), rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') { out.rest = argv.slice(i + 1); break; }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const key = eq > 0 ? a.slice(2, eq) : a.slice(2);
      if (eq > 0) { out.flags.set(key, a.slice(eq + 1)); continue; }
      if (valued.includes(key)) {
        const v = argv[i + 1];
        if (v === undefined || v.startsWith('--')) throw new CroftError('CROFT_ERR_USAGE', `option --${key} needs a value`);
        out.flags.set(key, v);
        i++;
      } else {
        out.flags.set(key, true);
      }
      continue;
    }
    out.positionals.push(a);
  }
  return out;
}

export function flagString(args: ParsedArgs, key: string): string | undefined {
  const v = args.flags.get(key);
  return typeof v === 'string' ? v : undefined;
}

export function rejectUnknown(args: ParsedArgs, allowed: readonly string[]): void {
  for (const k of args.flags.keys()) {
    if (!allowed.includes(k)) throw new CroftError('CROFT_ERR_USAGE', `unknown option --${k}`);
  }
}

export interface Output {
  log(s: string): void;
  error(s: string): void;
}

export const consoleOutput: Output = {
  log: (s) => process.stdout.write(`${s}\n`),
  error: (s) => process.stderr.write(`${s}\n`),
};
