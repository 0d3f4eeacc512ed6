// The croft command. Exit codes: 0 ok, 1 failure, 2 usage.
import { CroftError } from '../../src/errors.js';
import { consoleOutput, type Output } from './args.js';

const usage = `usage: croft <command> [options]

  daemon [--config DIR] [--node NAME]     run this node's daemon (foreground, JSON logs)
  status [--json]                         nodes and modules as seen from this node
  start|stop|restart <module>             control a module on this node
  reload                                  the daemon re-reads its config folder: modules added, removed, changed
  maintenance on|off|status [<module>]    suspend checkers and automatic failover here (a module, or the whole node)
  config push [--reload] [--to NODES]     send this node's config folder to the other nodes (checked, swapped whole)
  prim|second|swap <module>               mirror: make this node primary / secondary, or hand over
  mirror status|verify <module>           mirror: both nodes, data, link, reintegration; compare sides
  farm map|who <module> [<client-ip>]     a farm's bucket map, or the node that serves a client
  check <config-dir> [--json]             validate a configuration
  init --name C --node n1=ADDR[,ADDR] ... write a new configuration: cluster.yaml, key, API token
  module add <kind|shipped> <name>        add a module to the configuration (--set key=value ...)
  lab up|down|status|exec|kill|start|cut|heal|netem|partition|console ...   a cluster in network namespaces
  demo [--nodes N]                        a 3-node lab: nginx farm, PostgreSQL mirror, light module

Common options: --config DIR (default $CROFT_CONFIG or /etc/croft), --api URL, --token TOKEN, --json
croft help <command>: that command's options`;

export async function main(argv: string[], out: Output = consoleOutput): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'daemon': return await (await import('./daemon.js')).daemonCommand(rest, out);
      case 'status': return await (await import('./status.js')).statusCommand(rest, out);
      case 'start': case 'stop': case 'restart':
        return await (await import('./module.js')).moduleCommand(command, rest, out);
      case 'reload': return await (await import('./reload.js')).reloadCommand(rest, out);
      case 'maintenance': return await (await import('./maintenance.js')).maintenanceCommand(rest, out);
      case 'config': return await (await import('./config.js')).configCommand(rest, out);
      case 'prim': case 'second': case 'swap':
        return await (await import('./mirror.js')).mirrorRoleCommand(command, rest, out);
      case 'mirror': return await (await import('./mirror.js')).mirrorCommand(rest, out);
      case 'farm': return await (await import('./farm.js')).farmCommand(rest, out);
      case 'check': return await (await import('./check.js')).checkCommand(rest, out);
      case 'init': return await (await import('./init.js')).initCommand(rest, out);
      case 'module': {
        if (rest[0] === 'add') return await (await import('./module-add.js')).moduleAddCommand(rest.slice(1), out);
        out.error(`croft module: expected "add"\n${(await import('./module-add.js')).moduleAddUsage.split('\n')[0]}`);
        return 2;
      }
      case 'lab': return await (await import('./lab.js')).labCommand(rest, out);
      case 'demo': return await (await import('./demo.js')).demoCommand(rest, out);
      case 'help':
        if (rest[0] !== undefined) return await helpFor(rest[0], out);
        out.log(usage);
        return 0;
      case undefined: case '--help': case '-h':
        out.log(usage);
        return command === undefined ? 2 : 0;
      default:
        out.error(`croft: unknown command "${command}"\n\n${usage}`);
        return 2;
    }
  } catch (err) {
    if (err instanceof CroftError) {
      out.error(`croft: ${err.message} [${err.code}]`);
      return err.code === 'CROFT_ERR_USAGE' ? 2 : 1;
    }
    throw err;
  }
}

/** `croft help <command>`: the command's own usage where it has one, else its lines of the summary. */
async function helpFor(command: string, out: Output): Promise<number> {
  if (command === 'init') { out.log((await import('./init.js')).initUsage); return 0; }
  if (command === 'config') { out.log((await import('./config.js')).configUsage); return 0; }
  if (command === 'module') { out.log((await import('./module-add.js')).moduleAddUsage.replace('${shipped}', (await import('./module-add.js')).shippedModules().join(', '))); return 0; }
  const word = command.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const lines = usage.split('\n').filter((l) => new RegExp(`^  (\\S+\\|)*${word}(\\|\\S+)*( |$)`).test(l));
  if (lines.length === 0) {
    out.error(`croft help: unknown command "${command}"\n\n${usage}`);
    return 2;
  }
  out.log(`usage: croft ${lines.map((l) => l.trim()).join('\n       croft ')}\n\nCommon options: --config DIR (default $CROFT_CONFIG or /etc/croft), --api URL, --token TOKEN, --json`);
  return 0;
}
