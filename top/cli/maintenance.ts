// croft maintenance on|off [<module>] [--json]: the local daemon suspends (on) or resumes (off) the
// checkers' verdicts and automatic failover for a module, or for every module of the node when no
// module is named; persisted under the node's state_dir. `croft maintenance [status]` shows it.
import { CroftError } from '../../src/errors.js';
import type { MaintenanceState } from '../daemon/maintenance.js';
import { flagString, parseArgs, rejectUnknown, type Output } from './args.js';
import { apiRequest, defaultConfigDir, targetFromConfig } from './client.js';

const usage = 'usage: croft maintenance on|off [<module>] [--json]  |  croft maintenance [status] [--json]';

export async function maintenanceCommand(argv: string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['config', 'api', 'token']);
  rejectUnknown(args, ['config', 'api', 'token', 'json']);
  const [verb = 'status', module, ...extra] = args.positionals;
  if (extra.length || !['on', 'off', 'status'].includes(verb) || (verb === 'status' && module !== undefined)) {
    throw new CroftError('CROFT_ERR_USAGE', usage);
  }
  const target = targetFromConfig(flagString(args, 'config') ?? defaultConfigDir, flagString(args, 'api'), flagString(args, 'token'));
  const json = args.flags.has('json');
  if (verb === 'status') {
    const r = await apiRequest<{ node: string; maintenance: MaintenanceState }>(target, 'GET', '/api/v1/maintenance');
    out.log(json ? JSON.stringify(r) : describe(r.node, r.maintenance));
    return 0;
  }
  const path = module === undefined ? `/api/v1/maintenance/${verb}` : `/api/v1/modules/${encodeURIComponent(module)}/maintenance/${verb}`;
  const r = await apiRequest<{ node: string; changed: boolean; state: MaintenanceState }>(target, 'POST', path);
  const what = module === undefined ? `node ${r.node}` : `${module} on ${r.node}`;
  out.log(json ? JSON.stringify(r) : `maintenance ${verb} for ${what}${r.changed ? '' : ' (it was already)'}; ${describe(r.node, r.state)}`);
  return 0;
}

function describe(node: string, m: MaintenanceState): string {
  if (m.node) return `the whole node ${node} is in maintenance since ${m.node.since}`;
  const mods = Object.keys(m.modules);
  return mods.length ? `in maintenance on ${node}: ${mods.join(', ')}` : `nothing in maintenance on ${node}`;
}
