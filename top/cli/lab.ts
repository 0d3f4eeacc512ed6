// `croft lab ...`: the lab (a cluster in network namespaces on this machine) from the command line.
// The CLI main dispatches here; exit codes: 0 ok, 1 failure, 2 usage.
import { spawn } from 'node:child_process';
import { CroftError } from '../../src/errors.js';
import { formatStatus, Lab } from '../lab/index.js';
import { chaosCommand } from './lab-chaos.js';
import { forwardToSocket, nodeApiSocket } from '../lab/node-api.js';

export interface LabOutput {
  log(s: string): void;
  error(s: string): void;
}

const USAGE = `usage: croft lab <command> [--name NAME] ...
  up [--nodes 3] [--clients 1] [--lans 1] [--config DIR] [--interval-ms 100] [--timeout-ms 500] [--no-daemons] [--ipv6]
  down [--all]
  status [--json]
  exec <node|client> -- CMD...
  kill <node>            SIGKILL of the node's daemon and everything in its namespaces
  crash <node>           links down at the switch, then as kill: nothing leaves the node (no FIN, no RST)
  start <node>           start the node's daemon again (after a crash: links up first)
  cut <node> [--lan K]   links down at the switch (all LANs, or LAN K)
  heal <node> [--lan K]
  netem <node> loss 10% | delay 50ms [jitter] | clear  [--lan K]
  partition <n1,n2> [<n3>...]   nodes in different groups cannot reach each other (the client reaches all)
  partition --heal               end the partition
  console <node> [--port 9450]   serve the node's console and API on the host's 127.0.0.1 (until Ctrl-C)
  chaos [--config DIR [--nodes 3] [--clients 32] [--witness redis]] [--rounds 30] [--seed S]
        [--faults kill,crash,cut,partition,pause,loss,delay,witness-down] [--hold-ms 1500-3000]
        [--settle-ms 500] [--converge-ms 30000] [--json]
                                 a campaign of seeded random faults under load, invariants checked
                                 after every round (README, "Chaos campaigns"); with --config it
                                 builds lab --name (default chaos) and removes it unless a round failed`;

interface Parsed {
  positional: string[];
  flags: Map<string, string | true>;
  /** Everything after `--` (exec). */
  rest?: string[];
}

const VALUE_FLAGS = new Set(['name', 'nodes', 'clients', 'lans', 'config', 'interval-ms', 'timeout-ms', 'lan', 'port',
  'rounds', 'seed', 'faults', 'hold-ms', 'settle-ms', 'converge-ms', 'witness']);
const BOOL_FLAGS = new Set(['no-daemons', 'json', 'all', 'help', 'heal', 'ipv6']);

function usage(msg: string): never {
  throw new CroftError('CROFT_ERR_USAGE', msg);
}

function parse(args: string[]): Parsed {
  const p: Parsed = { positional: [], flags: new Map() };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      p.rest = args.slice(i + 1);
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const key = eq > 0 ? a.slice(2, eq) : a.slice(2);
      if (BOOL_FLAGS.has(key)) {
        if (eq > 0) usage(`--${key} takes no value`);
        p.flags.set(key, true);
      } else if (VALUE_FLAGS.has(key)) {
        const v = eq > 0 ? a.slice(eq + 1) : args[++i];
        if (v === undefined) usage(`--${key} needs a value`);
        p.flags.set(key, v);
      } else {
        usage(`unknown option ${a}`);
      }
    } else {
      p.positional.push(a);
    }
  }
  return p;
}

function str(p: Parsed, key: string): string | undefined {
  const v = p.flags.get(key);
  return typeof v === 'string' ? v : undefined;
}

function int(p: Parsed, key: string): number | undefined {
  const v = str(p, key);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) usage(`--${key} must be a whole number, got ${v}`);
  return Number(v);
}

function onlyFlags(p: Parsed, allowed: string[]): void {
  for (const k of p.flags.keys()) if (!allowed.includes(k)) usage(`--${k} does not apply here`);
}

function oneNode(p: Parsed, cmd: string): string {
  if (p.positional.length !== 1) usage(`lab ${cmd} needs one node name`);
  return p.positional[0]!;
}

export async function labCommand(args: string[], out: LabOutput): Promise<number> {
  try {
    return await dispatch(args, out);
  } catch (e) {
    if (e instanceof CroftError) {
      out.error(`croft lab: ${e.message} [${e.code}]`);
      if (e.code === 'CROFT_ERR_USAGE') {
        out.error(USAGE);
        return 2;
      }
      return 1;
    }
    throw e;
  }
}

async function dispatch(args: string[], out: LabOutput): Promise<number> {
  const [cmd, ...restArgs] = args;
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    out.log(USAGE);
    return cmd === undefined ? 2 : 0;
  }
  const p = parse(restArgs);
  if (p.flags.has('help')) {
    out.log(USAGE);
    return 0;
  }
  const name = str(p, 'name') ?? 'lab';
  switch (cmd) {
    case 'up': {
      onlyFlags(p, ['name', 'nodes', 'clients', 'lans', 'config', 'interval-ms', 'timeout-ms', 'no-daemons', 'ipv6']);
      if (p.positional.length > 0) usage(`lab up takes no arguments, got ${p.positional.join(' ')}`);
      const lab = await Lab.up({
        name,
        nodes: int(p, 'nodes'),
        clients: int(p, 'clients'),
        lans: int(p, 'lans'),
        config: str(p, 'config'),
        intervalMs: int(p, 'interval-ms'),
        timeoutMs: int(p, 'timeout-ms'),
        daemons: !p.flags.has('no-daemons'),
        ipv6: p.flags.has('ipv6'),
      });
      out.log(formatStatus(await lab.status()));
      // Every directory the configuration names is one folder per node, as on real servers.
      const own = Object.keys(lab.snapshot.nodes[0]?.dirs ?? {}).sort();
      if (own.length > 0) out.log(`\neach node has its own copy of: ${own.join(', ')}`);
      out.log(`\nrun on a node: croft lab exec${name === 'lab' ? '' : ` --name ${name}`} n1 -- croft status`);
      return 0;
    }
    case 'down': {
      onlyFlags(p, ['name', 'all']);
      if (p.positional.length > 0) usage('lab down takes no arguments');
      const names = p.flags.has('all') ? Lab.list() : [name];
      let found = 0;
      for (const n of names) {
        const r = await Lab.down(n);
        if (r.found) {
          found++;
          out.log(`lab ${n} removed (${r.namespaces.length} namespaces, ${r.killed} processes killed)`);
        }
      }
      if (found === 0) out.log(p.flags.has('all') ? 'no croft lab is up' : `no lab named ${name} is up`);
      return 0;
    }
    case 'status': {
      onlyFlags(p, ['name', 'json']);
      const s = await Lab.open(name).status();
      out.log(p.flags.has('json') ? JSON.stringify(s, null, 2) : formatStatus(s));
      return 0;
    }
    case 'exec': {
      onlyFlags(p, ['name']);
      if (p.positional.length !== 1 || !p.rest || p.rest.length === 0) usage('lab exec <node|client> -- CMD...');
      const lab = Lab.open(name);
      const target = p.positional[0]!;
      const [c, ...a] = lab.enterArgv(target, p.rest, process.cwd());
      const child = spawn(c!, a, { stdio: 'inherit', env: lab.env(target) });
      return await new Promise<number>((resolve, reject) => {
        child.once('error', (e) => reject(new CroftError('CROFT_ERR_LAB', `cannot run nsenter: ${e.message}`)));
        child.once('exit', (code, signal) => resolve(code ?? (signal === 'SIGKILL' ? 137 : 128 + 15)));
      });
    }
    case 'kill': {
      onlyFlags(p, ['name']);
      const node = oneNode(p, 'kill');
      const killed = await Lab.open(name).kill(node);
      out.log(`${node}: killed ${killed.length} process(es)`);
      return 0;
    }
    case 'crash': {
      onlyFlags(p, ['name']);
      const node = oneNode(p, 'crash');
      const killed = await Lab.open(name).crash(node);
      out.log(`${node}: links down, killed ${killed.length} process(es)`);
      return 0;
    }
    case 'start': {
      onlyFlags(p, ['name']);
      const node = oneNode(p, 'start');
      const pid = await Lab.open(name).start(node);
      out.log(`${node}: daemon started (pid ${pid})`);
      return 0;
    }
    case 'cut':
    case 'heal': {
      onlyFlags(p, ['name', 'lan']);
      const node = oneNode(p, cmd);
      const lab = Lab.open(name);
      const lan = int(p, 'lan');
      if (cmd === 'cut') await lab.cut(node, lan);
      else await lab.heal(node, lan);
      out.log(`${node}: ${lan === undefined ? 'every LAN' : `LAN ${lan}`} ${cmd === 'cut' ? 'cut' : 'healed'}`);
      return 0;
    }
    case 'netem': {
      onlyFlags(p, ['name', 'lan']);
      const [node, ...spec] = p.positional;
      if (node === undefined || spec.length === 0) usage('lab netem <node> loss 10% | delay 50ms [jitter] | clear [--lan K]');
      await Lab.open(name).netem(node, spec, int(p, 'lan'));
      out.log(`${node}: netem ${spec.join(' ')}`);
      return 0;
    }
    case 'partition': {
      onlyFlags(p, ['name', 'heal']);
      const heal = p.flags.has('heal');
      if (heal === p.positional.length > 0) usage('lab partition <n1,n2> [<n3,...>...] | lab partition --heal');
      const groups = p.positional.map((g) => g.split(',').filter(Boolean));
      await Lab.open(name).partition(groups);
      out.log(heal ? 'partition healed' : `partition: ${groups.map((g) => g.join(' ')).join(' | ')} | the other nodes`);
      return 0;
    }
    case 'console': {
      onlyFlags(p, ['name', 'port']);
      const node = oneNode(p, 'console');
      const lab = Lab.open(name);
      if (!lab.nodes.includes(node)) usage(`no node ${node} in lab ${name}`);
      const port = int(p, 'port') ?? 9450;
      const server = await forwardToSocket(nodeApiSocket(lab.stateDir, node), port);
      out.log(`console of ${node} (lab ${name}): http://127.0.0.1:${port}/  (API: http://127.0.0.1:${port}/api/v1/status); Ctrl-C to stop`);
      return await new Promise<number>((resolve) => {
        const stop = () => server.close(() => resolve(0));
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    }
    case 'chaos':
      onlyFlags(p, ['name', 'config', 'nodes', 'clients', 'witness', 'rounds', 'seed', 'faults', 'hold-ms', 'settle-ms', 'converge-ms', 'json']);
      if (p.positional.length > 0) usage(`lab chaos takes no arguments, got ${p.positional.join(' ')}`);
      return chaosCommand({
        name: str(p, 'name'), config: str(p, 'config'), nodes: int(p, 'nodes'), clients: int(p, 'clients'), witness: str(p, 'witness'),
        rounds: int(p, 'rounds'), seed: int(p, 'seed'), faults: str(p, 'faults'), holdMs: str(p, 'hold-ms'),
        settleMs: int(p, 'settle-ms'), convergeMs: int(p, 'converge-ms'), json: p.flags.has('json'),
      }, out);
    default:
      usage(`unknown lab command ${cmd}`);
  }
}
