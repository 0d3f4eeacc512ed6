// croft reload [--json]: the local daemon re-reads its config folder and applies the changes
// (modules added, removed, changed); an invalid configuration is refused whole with file:line.
import { CroftError } from '../../src/errors.js';
import { describeReload, type ReloadResult } from '../daemon/daemon.js';
import { flagString, parseArgs, rejectUnknown, type Output } from './args.js';
import { apiRequest, defaultConfigDir, targetFromConfig } from './client.js';

/** The daemon answers once the modules it stops have stopped: their stop scripts and drains are bounded
 * by their own timeouts, so this only guards against a daemon that never answers. */
const RELOAD_TIMEOUT_MS = 600_000;

export async function reloadCommand(argv: string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['config', 'api', 'token']);
  rejectUnknown(args, ['config', 'api', 'token', 'json']);
  if (args.positionals.length) throw new CroftError('CROFT_ERR_USAGE', 'usage: croft reload [--json]');
  // --config only finds the daemon (its API socket); the daemon reloads the folder it runs from.
  const target = targetFromConfig(flagString(args, 'config') ?? defaultConfigDir, flagString(args, 'api'), flagString(args, 'token'));
  const r = await apiRequest<ReloadResult>(target, 'POST', '/api/v1/reload', RELOAD_TIMEOUT_MS);
  out.log(args.flags.has('json') ? JSON.stringify(r) : `reload on ${r.node}: ${describeReload(r)}`);
  return 0;
}
