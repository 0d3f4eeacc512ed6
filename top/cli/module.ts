// croft start|stop|restart <module> [--json]: ask the local daemon.
import { CroftError } from '../../src/errors.js';
import { flagString, parseArgs, rejectUnknown, type Output } from './args.js';
import { apiRequest, defaultConfigDir, targetFromConfig } from './client.js';

export async function moduleCommand(command: 'start' | 'stop' | 'restart', argv: string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['config', 'api', 'token']);
  rejectUnknown(args, ['config', 'api', 'token', 'json']);
  const [module, ...extra] = args.positionals;
  if (!module || extra.length) throw new CroftError('CROFT_ERR_USAGE', `usage: croft ${command} <module>`);
  const target = targetFromConfig(flagString(args, 'config') ?? defaultConfigDir, flagString(args, 'api'), flagString(args, 'token'));
  const r = await apiRequest<{ node: string }>(target, 'POST', `/api/v1/modules/${encodeURIComponent(module)}/${command}`);
  out.log(args.flags.has('json') ? JSON.stringify(r) : `${command} ${module} on ${r.node}: accepted (see \`croft status\`)`);
  return 0;
}
