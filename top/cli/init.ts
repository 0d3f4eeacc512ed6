// `croft init`: writes a new cluster configuration (cluster.yaml, cluster.key, an API token), checks
// it as `croft check` does, and says what to copy where. The key is 32 random bytes, hex-encoded in
// cluster.key (0600): the loader reads key_file as text, trimmed, at least 32 bytes. The API token
// can only be given inline (api.tokens), so cluster.yaml is 0600 too, unless --no-token (then 0644).
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { stringify } from 'yaml';
import { checkConfigDir } from '../../src/config/load.js';
import { formatProblems } from '../../src/config/problems.js';
import { CroftError } from '../../src/errors.js';
import { flagString, parseArgs, type Output } from './args.js';

export const initUsage = `usage: croft init --name <cluster> --node <name>=<addr>[,<addr>...] --node ... [options]

  --name NAME           cluster name (lowercase letters, digits, '-')
  --node NAME=ADDRS     a node and its addresses, one per LAN in the order of --lan (repeat per node)
  --lan NAME            a LAN's name, in order (repeat; default lan0, lan1... one per address)
  --dir DIR             where to write (default /etc/croft)
  --api-host ADDR       the API's listen address (default 127.0.0.1: local only)
  --api-port PORT       the API's port (default 9450)
  --no-token            no API token (cluster.yaml 0644; the CLI uses the root-only local socket)
  --force               replace an existing cluster.yaml and cluster.key`;

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Takes every `--<name> v` / `--<name>=v` out of argv (parseArgs keeps only the last of a repeated option). */
export function takeRepeated(argv: string[], name: string): { values: string[]; rest: string[] } {
  const values: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') { rest.push(...argv.slice(i)); break; }
    if (a === `--${name}`) {
      const v = argv[i + 1];
      if (v === undefined || v.startsWith('--')) throw new CroftError('CROFT_ERR_USAGE', `option --${name} needs a value`);
      values.push(v);
      i++;
    } else if (a.startsWith(`--${name}=`)) {
      values.push(a.slice(name.length + 3));
    } else {
      rest.push(a);
    }
  }
  return { values, rest };
}

function usageError(message: string): never {
  throw new CroftError('CROFT_ERR_USAGE', `${message}\n${initUsage}`);
}

interface InitPlan {
  dir: string;
  name: string;
  lans: string[];
  nodes: { name: string; addresses: string[] }[];
  apiHost?: string;
  apiPort?: number;
  token: boolean;
  force: boolean;
}

export function parseInit(argv: string[]): InitPlan {
  const nodeArgs = takeRepeated(argv, 'node');
  const lanArgs = takeRepeated(nodeArgs.rest, 'lan');
  const args = parseArgs(lanArgs.rest, ['name', 'dir', 'api-host', 'api-port']);
  const allowed = ['name', 'dir', 'api-host', 'api-port', 'no-token', 'force'];
  for (const k of args.flags.keys()) if (!allowed.includes(k)) usageError(`unknown option --${k}`);
  if (args.positionals.length || args.rest.length) usageError(`unexpected argument "${[...args.positionals, ...args.rest][0]}"`);
  for (const k of ['no-token', 'force']) if (typeof args.flags.get(k) === 'string') usageError(`--${k} takes no value`);

  const name = flagString(args, 'name');
  if (name === undefined) usageError('missing --name <cluster>');
  if (!NAME.test(name)) usageError(`--name ${JSON.stringify(name)}: expected lowercase letters, digits and '-' (at most 63)`);
  if (nodeArgs.values.length === 0) usageError('missing --node <name>=<address>[,<address>...] (one per node)');

  const nodes: InitPlan['nodes'] = [];
  const seen = new Map<string, string>();
  for (const spec of nodeArgs.values) {
    const eq = spec.indexOf('=');
    if (eq <= 0) usageError(`--node ${spec}: expected <name>=<address>[,<address>...], e.g. n1=10.0.0.1,10.1.0.1`);
    const node = spec.slice(0, eq);
    if (!NAME.test(node) || node === 'local' || node === 'any') {
      usageError(`--node ${spec}: node name ${JSON.stringify(node)}: expected lowercase letters, digits and '-' ("local" and "any" are reserved)`);
    }
    if (nodes.some((n) => n.name === node)) usageError(`--node ${spec}: node ${node} given twice`);
    const addresses = spec.slice(eq + 1).split(',').map((a) => a.trim());
    for (const a of addresses) {
      if (net.isIP(a) === 0) usageError(`--node ${spec}: ${JSON.stringify(a)} is not an IP address`);
      const other = seen.get(a);
      if (other !== undefined) usageError(`--node ${spec}: address ${a} is already ${other}'s (no address may be used twice)`);
      seen.set(a, node);
    }
    nodes.push({ name: node, addresses });
  }
  const perNode = nodes[0]!.addresses.length;
  const lans = lanArgs.values.length > 0 ? lanArgs.values : Array.from({ length: perNode }, (_, i) => `lan${i}`);
  for (const l of lans) if (!NAME.test(l)) usageError(`--lan ${l}: expected lowercase letters, digits and '-'`);
  if (new Set(lans).size !== lans.length) usageError(`--lan: a LAN is named twice (${lans.join(', ')})`);
  for (const n of nodes) {
    if (n.addresses.length !== lans.length) {
      usageError(`--node ${n.name}: ${n.addresses.length} address${n.addresses.length === 1 ? '' : 'es'} for ${lans.length} LAN${lans.length === 1 ? '' : 's'} (${lans.join(', ')}): give one address per LAN, in the same order on every node`);
    }
  }

  const apiHost = flagString(args, 'api-host');
  if (apiHost !== undefined && net.isIP(apiHost) === 0) usageError(`--api-host ${apiHost}: expected an IP address to listen on (0.0.0.0 for every address)`);
  const portText = flagString(args, 'api-port');
  let apiPort: number | undefined;
  if (portText !== undefined) {
    apiPort = Number(portText);
    if (!/^\d+$/.test(portText) || apiPort < 1 || apiPort > 65535) usageError(`--api-port ${portText}: expected a port from 1 to 65535`);
  }
  return {
    dir: path.resolve(flagString(args, 'dir') ?? '/etc/croft'),
    name, lans, nodes, apiHost, apiPort,
    token: !args.flags.has('no-token'),
    force: args.flags.has('force'),
  };
}

function clusterYaml(plan: InitPlan, token: string | undefined): string {
  const api: Record<string, unknown> = {};
  if (plan.apiHost !== undefined) api.host = plan.apiHost;
  if (plan.apiPort !== undefined) api.port = plan.apiPort;
  if (token !== undefined) api.tokens = [token];
  const doc: Record<string, unknown> = {
    name: plan.name,
    key_file: 'cluster.key',
    lans: plan.lans,
    nodes: Object.fromEntries(plan.nodes.map((n) => [n.name, { addresses: n.addresses }])),
  };
  if (Object.keys(api).length > 0) doc.api = api;
  const head = [
    `# Written by croft init on ${new Date().toISOString()}. The same folder goes to every node.`,
    '# Every key is explained in /usr/share/doc/croft/examples/cluster.yaml.example (examples/ in the',
    '# source); check changes with `croft check <this folder>`.',
    token !== undefined ? '# Holds an API token: keep it private (mode 0600).' : '',
  ].filter(Boolean).join('\n');
  return `${head}\n${stringify(doc)}`;
}

/** Writes a file through a temporary one and a rename: a reader sees the old or the new file, whole. */
function writeAtomic(file: string, text: string, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text, { mode, flag: 'wx' });
  fs.chmodSync(tmp, mode); // whatever the umask
  fs.renameSync(tmp, file);
}

function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return out;
}

/** On a terminal, asks for what the flags did not give (cluster name, nodes); elsewhere nothing is asked. */
async function askMissing(argv: string[], out: Output): Promise<string[]> {
  const has = (f: string) => argv.some((a) => a === `--${f}` || a.startsWith(`--${f}=`));
  if (!process.stdin.isTTY || (has('name') && has('node'))) return argv;
  // Lines are read through the iterator, which keeps those typed (or pasted) ahead of the question.
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  const lines = rl[Symbol.asyncIterator]();
  const ask = async (q: string): Promise<string> => {
    process.stdout.write(q);
    const r = await lines.next();
    return r.done ? '' : String(r.value).trim();
  };
  const extra: string[] = [];
  try {
    if (!has('name')) extra.push('--name', await ask('cluster name (lowercase letters, digits, -): '));
    if (!has('node')) {
      out.log('nodes, one per line: <name>=<address>[,<address> on the second LAN] (an empty line ends)');
      for (;;) {
        const line = await ask(`node ${extra.filter((a) => a === '--node').length + 1}: `);
        if (line === '') break;
        extra.push('--node', line);
      }
    }
  } finally {
    rl.close();
  }
  return [...argv, ...extra];
}

export async function initCommand(argv: string[], out: Output): Promise<number> {
  let plan: InitPlan;
  try {
    plan = parseInit(await askMissing(argv, out));
  } catch (err) {
    if (err instanceof CroftError && err.code === 'CROFT_ERR_USAGE') {
      out.error(`croft init: ${err.message}${err.message.includes('usage:') ? '' : `\n${initUsage}`}`);
      return 2;
    }
    throw err;
  }
  const { dir } = plan;
  const clusterFile = path.join(dir, 'cluster.yaml');
  const keyFile = path.join(dir, 'cluster.key');
  const existing = [clusterFile, keyFile].filter((f) => fs.existsSync(f));
  if (existing.length > 0 && !plan.force) {
    out.error(`croft init: ${existing.join(' and ')} already exist${existing.length === 1 ? 's' : ''}: not overwritten (--force replaces them, with a new key: every node then needs the new files)`);
    return 1;
  }

  const token = plan.token ? randomBytes(24).toString('hex') : undefined;
  const yamlMode = token !== undefined ? 0o600 : 0o644;
  // Everything is written and checked in a private folder beside the target first: a configuration
  // `croft check` refuses never replaces anything.
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const staging = fs.mkdtempSync(path.join(dir, '.croft-init-'));
  try {
    fs.chmodSync(staging, 0o755);
    writeAtomic(path.join(staging, 'cluster.key'), `${randomBytes(32).toString('hex')}\n`, 0o600);
    writeAtomic(path.join(staging, 'cluster.yaml'), clusterYaml(plan, token), yamlMode);
    const staged = checkConfigDir(staging);
    if (!staged.config) {
      const problems = staged.problems.filter((p) => !p.file.startsWith(path.join(staging, 'modules')));
      if (problems.length > 0) {
        out.error(`${formatProblems(problems).split(staging).join(dir)}\ncroft init: the configuration would be refused; nothing written`);
        return 1;
      }
    }
    fs.renameSync(path.join(staging, 'cluster.key'), keyFile);
    fs.renameSync(path.join(staging, 'cluster.yaml'), clusterFile);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }

  out.log(`croft init: wrote ${clusterFile} (${yamlMode.toString(8).padStart(4, '0')}${token ? ', holds the API token' : ''}) and ${keyFile} (0600, the cluster key: 32 random bytes in hex)`);
  // The whole folder as `croft check` sees it (modules already there included).
  const result = checkConfigDir(dir);
  if (!result.config) {
    const n = result.problems.length;
    out.error(`${formatProblems(result.problems)}\n${dir}: ${n} problem${n === 1 ? '' : 's'} (fix them, then run croft check ${dir})`);
    return 1;
  }
  const c = result.config.cluster;
  out.log(`${dir}: configuration OK: cluster ${c.name}, ${c.nodes.length} node${c.nodes.length === 1 ? '' : 's'} (${c.nodes.map((n) => n.name).join(', ')}), LANs ${c.lans.join(', ')}`);
  const local = localAddresses();
  const remote = plan.nodes.filter((n) => !n.addresses.some((a) => local.has(a)));
  const lines = [
    '',
    'Next:',
    `  1. add modules, e.g.: croft module add nginx-farm web --dir ${dir} --set vip=<a free address of the clients' LAN>`,
    `                        croft module add postgresql-mirror db --dir ${dir} --set 'nodes=[${plan.nodes.slice(0, 2).map((n) => n.name).join(', ')}]' --set vip=<address>`,
    `  2. copy the same folder to /etc/croft on every node${remote.length < plan.nodes.length ? ' (this machine is one of them)' : ''}, as root, modes kept (scp -p):`,
    ...remote.map((n) => `       ssh root@${n.addresses[0]} install -d -m 0755 /etc/croft && scp -rp ${dir}/* root@${n.addresses[0]}:/etc/croft/   # ${n.name}`),
    '  3. on every node: croft check /etc/croft && systemctl enable --now croft',
    `  The key (${keyFile})${token ? ' and cluster.yaml (its API token)' : ''} must stay private: 0600, root's.`,
  ];
  if (token) lines.push(`  API token (for --token, or Authorization: Bearer): in ${clusterFile}, api.tokens`);
  out.log(lines.join('\n'));
  return 0;
}
