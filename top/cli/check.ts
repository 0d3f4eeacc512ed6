// `croft check <dir> [--json]`: validates a config directory without starting anything.
// Exit 0 when valid (with a short summary), 1 with every problem, 2 on a usage error.
import { checkConfigDir } from '../../src/config/load.js';
import { formatProblems } from '../../src/config/problems.js';
import type { Config } from '../../src/config/types.js';
import { CroftError } from '../../src/errors.js';
import { parseArgs } from './args.js';

const usage = 'usage: croft check <config-dir> [--json]';

export async function checkCommand(
  args: string[],
  out: { log(s: string): void; error(s: string): void },
): Promise<number> {
  let dir: string;
  let json: boolean;
  try {
    const parsed = parseArgs(args);
    for (const k of parsed.flags.keys()) {
      if (k !== 'json') throw new CroftError('CROFT_ERR_USAGE', `unknown option --${k}`);
    }
    if (parsed.flags.get('json') !== undefined && parsed.flags.get('json') !== true) {
      throw new CroftError('CROFT_ERR_USAGE', '--json takes no value');
    }
    const positionals = [...parsed.positionals, ...parsed.rest];
    if (positionals.length !== 1) {
      throw new CroftError('CROFT_ERR_USAGE', positionals.length === 0 ? 'missing <config-dir>' : 'expected exactly one <config-dir>');
    }
    dir = positionals[0] as string;
    json = parsed.flags.has('json');
  } catch (err) {
    if (err instanceof CroftError && err.code === 'CROFT_ERR_USAGE') {
      out.error(`croft check: ${err.message}\n${usage}`);
      return 2;
    }
    throw err;
  }

  const result = checkConfigDir(dir);
  if (json) {
    out.log(JSON.stringify({ ok: result.config !== undefined, problems: result.problems }, null, 2));
  } else if (result.config) {
    out.log(summary(result.config));
  } else {
    const n = result.problems.length;
    out.error(`${formatProblems(result.problems)}\n${dir}: ${n} problem${n === 1 ? '' : 's'}`);
  }
  return result.config ? 0 : 1;
}

function summary(config: Config): string {
  const c = config.cluster;
  const lines = [
    `${config.dir}: configuration OK`,
    `cluster ${c.name}: ${c.nodes.length} node${c.nodes.length === 1 ? '' : 's'} (${c.nodes.map((n) => n.name).join(', ')}), LANs ${c.lans.join(', ')}`,
  ];
  if (config.modules.length === 0) lines.push('modules: none');
  for (const m of config.modules) {
    lines.push(
      `module ${m.name}: ${m.kind} on ${m.nodes.join(', ')}, ${m.checkers.length} checker${m.checkers.length === 1 ? '' : 's'}`,
    );
  }
  return lines.join('\n');
}
