// What a configuration check reports: every problem found (never only the first), each pinned to
// the file, line and column of the offending key or value, so a person can go straight to it.
import { CroftError } from '../errors.js';

export interface ConfigProblem {
  /** Path of the file, as built from the directory given by the user. */
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  column: number;
  /** Dotted path of the key, e.g. `nodes.n2.addresses[1]` or `checkers[0].interval_ms`; '' for the whole file. */
  key: string;
  /** What is wrong and what is expected. */
  message: string;
}

/** `file:line:column: key: message`, one problem per line. */
export function formatProblem(p: ConfigProblem): string {
  const where = `${p.file}:${p.line}:${p.column}`;
  return p.key === '' ? `${where}: ${p.message}` : `${where}: ${p.key}: ${p.message}`;
}

export function formatProblems(problems: readonly ConfigProblem[]): string {
  return problems.map(formatProblem).join('\n');
}

/** Orders problems by file, then position, so the output reads top to bottom. */
export function sortProblems(problems: readonly ConfigProblem[], fileOrder: readonly string[]): ConfigProblem[] {
  const rank = (file: string): number => {
    const i = fileOrder.indexOf(file);
    return i < 0 ? fileOrder.length : i;
  };
  return [...problems].sort(
    (a, b) =>
      rank(a.file) - rank(b.file) ||
      a.file.localeCompare(b.file) ||
      a.line - b.line ||
      a.column - b.column ||
      a.key.localeCompare(b.key),
  );
}

export class ConfigError extends CroftError {
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[]) {
    const n = problems.length;
    super(
      'CROFT_ERR_CONFIG',
      `Invalid configuration (${n} problem${n === 1 ? '' : 's'}); fix ${n === 1 ? 'it' : 'them'} and run \`croft check\` again:\n` +
        formatProblems(problems),
    );
    this.name = 'ConfigError';
    this.problems = problems;
  }
}
