// croft farm map <module> [--json]: which node owns each bucket, and the load per node.
// croft farm who <module> <client-ip> [--port P] [--json]: the bucket and node of one client,
// computed with the kernel's own hash (farm/hash-input.ts), so it names the node the filter lets in.
// The member set is the module's nodes that are UP per the local daemon (or --members a,b: what if).
import { assignBuckets, loadOf } from '../../farm/assign.js';
import { bucketOf, familyOf, nftHashExpr, seedText } from '../../farm/hash-input.js';
import { isIP } from 'node:net';
import { loadConfig } from '../../src/config/load.js';
import type { Config, FarmBalance, ModuleConfig } from '../../src/config/types.js';
import type { ClusterStatus } from '../daemon/daemon.js';
import { CroftError } from '../../src/errors.js';
import { flagString, parseArgs, rejectUnknown, type Output } from './args.js';
import { apiRequest, defaultConfigDir, targetFromConfig } from './client.js';
import { table } from './table.js';

const usage = `usage: croft farm map <module> [--json] [--buckets] [--members n1,n2]
       croft farm who <module> <client-ip> [--port P] [--json] [--members n1,n2]
  --buckets  also list each node's buckets (as ranges)
  --members  compute with these nodes as the farm's members instead of asking the local daemon`;

export interface FarmMember {
  name: string;
  weight: number;
}

export interface FarmMapView {
  module: string;
  /** null in cloud mode (vip: none): the provider's load balancer picks nodes, not these buckets. */
  vip: string | null;
  /** Every VIP of the module (IPv4 and IPv6), the same buckets for all; [] in cloud mode. */
  vips: string[];
  balance: FarmBalance;
  buckets: number;
  seed: number;
  /** The member set used: the module's UP nodes, in the module's order, with their weights. */
  members: FarmMember[];
  /** Per member: buckets owned and their share of all buckets (percent, one decimal). */
  load: { node: string; weight: number; buckets: number; percent: number }[];
  /** Buckets no node owns (no member, or every member has weight 0): their clients get no answer. */
  unowned: number;
  /** Per member, the buckets it owns as inclusive [first, last] ranges. */
  ranges: Record<string, [number, number][]>;
  /** index = bucket, value = owner ('' = none). */
  map: string[];
}

export interface FarmWhoView {
  module: string;
  client: string;
  port: number | null;
  balance: FarmBalance;
  buckets: number;
  seed: number;
  /** The nft expression the kernel evaluates for this client. */
  hashExpr: string;
  bucket: number;
  /** The owner of the bucket, null when no node owns it. */
  node: string | null;
  members: FarmMember[];
}

/** The farm module `name` of the config; CroftError when there is none or it is of another kind. */
export function farmModule(config: Config, name: string): ModuleConfig & { farm: NonNullable<ModuleConfig['farm']> } {
  const m = config.modules.find((x) => x.name === name);
  if (!m) {
    const farms = config.modules.filter((x) => x.kind === 'farm').map((x) => x.name);
    throw new CroftError('CROFT_ERR_UNKNOWN_MODULE', `no module "${name}" in ${config.dir}; farm modules: ${farms.length > 0 ? farms.join(', ') : '(none)'}`);
  }
  if (m.kind !== 'farm' || !m.farm) {
    throw new CroftError('CROFT_ERR_USAGE', `module "${name}" is a ${m.kind} module; croft farm needs a farm module`);
  }
  return m as ModuleConfig & { farm: NonNullable<ModuleConfig['farm']> };
}

/** The module's nodes that the daemon reports UP (and knows the state of), in the module's order. */
export function upNodesOf(status: ClusterStatus, module: string): string[] {
  const nodes = status.modules[module]?.nodes ?? {};
  return Object.entries(nodes).filter(([, s]) => s.state === 'UP' && s.known).map(([n]) => n);
}

function membersOf(config: Config, m: ModuleConfig & { farm: NonNullable<ModuleConfig['farm']> }, upNodes: readonly string[]): FarmMember[] {
  return m.nodes
    .filter((n) => upNodes.includes(n))
    .map((name) => ({ name, weight: m.farm.weights[name] ?? config.cluster.nodes.find((n) => n.name === name)?.weight ?? 1 }));
}

function rangesOf(map: readonly string[], node: string): [number, number][] {
  const out: [number, number][] = [];
  map.forEach((owner, b) => {
    if (owner !== node) return;
    const last = out[out.length - 1];
    if (last && last[1] === b - 1) last[1] = b;
    else out.push([b, b]);
  });
  return out;
}

/** The bucket map of a farm module for a member set. Pure. */
export function farmMap(config: Config, module: string, upNodes: readonly string[]): FarmMapView {
  const m = farmModule(config, module);
  const members = membersOf(config, m, upNodes);
  const map = assignBuckets(m.farm.buckets, members);
  const counts = loadOf(map);
  const ranges: Record<string, [number, number][]> = {};
  for (const n of members) ranges[n.name] = rangesOf(map, n.name);
  return {
    module: m.name,
    vip: m.farm.vip,
    vips: [...m.farm.vips],
    balance: m.farm.balance,
    buckets: m.farm.buckets,
    seed: seedOf(m),
    members,
    load: members.map((n) => {
      const buckets = counts[n.name] ?? 0;
      return { node: n.name, weight: n.weight, buckets, percent: Math.round((1000 * buckets) / map.length) / 10 };
    }),
    unowned: map.filter((o) => o === '').length,
    ranges,
    map,
  };
}

function seedOf(m: ModuleConfig & { farm: NonNullable<ModuleConfig['farm']> }): number {
  // The config always fills the seed in (derived when not given); null would be a loader bug.
  if (m.farm.seed === null) throw new Error(`farm module ${m.name} has no seed after loading`);
  return m.farm.seed;
}

/** The bucket and node that serve one client. Pure apart from the native hash. */
export function farmWho(config: Config, module: string, upNodes: readonly string[], client: string, port?: number): FarmWhoView {
  const m = farmModule(config, module);
  if (m.farm.vip === null) {
    throw new CroftError('CROFT_ERR_USAGE', `module "${module}" is in cloud mode (vip: none): the provider's load balancer picks the node, not a hash`);
  }
  if (isIP(client) === 0) throw new CroftError('CROFT_ERR_USAGE', `not an IP address: ${client}`);
  const { balance, buckets } = m.farm;
  if (balance === 'source-ip-port' && port === undefined) {
    throw new CroftError('CROFT_ERR_USAGE', `module "${module}" balances by source-ip-port: give the client's TCP port with --port`);
  }
  const seed = seedOf(m);
  const view = farmMap(config, module, upNodes);
  const usedPort = balance === 'source-ip-port' ? (port ?? null) : null;
  const bucket = bucketOf(balance, buckets, seed, client, usedPort ?? undefined);
  return {
    module: m.name,
    client,
    port: usedPort,
    balance,
    buckets,
    seed,
    hashExpr: nftHashExpr(balance, familyOf(client), buckets, seed),
    bucket,
    node: view.map[bucket] || null,
    members: view.members,
  };
}

const membersText = (members: readonly FarmMember[]): string =>
  members.length === 0 ? '(none)' : members.map((n) => `${n.name} (weight ${n.weight})`).join(', ');

function rangesText(ranges: readonly [number, number][]): string {
  return ranges.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(' ');
}

/** Wraps a long list of ranges under its label, so the map stays readable in a terminal. */
function wrap(label: string, text: string, width = 100): string[] {
  const indent = ' '.repeat(label.length);
  const lines: string[] = [];
  let line = label;
  let empty = true;
  for (const word of text === '' ? ['(none)'] : text.split(' ')) {
    if (!empty && line.length + 1 + word.length > width) {
      lines.push(line);
      line = indent;
      empty = true;
    }
    line += empty ? word : ` ${word}`;
    empty = false;
  }
  lines.push(line);
  return lines;
}

/** The map as a table; with `buckets`, each node's buckets as ranges too (long: 1024 buckets by default). */
export function formatFarmMap(v: FarmMapView, buckets = false): string {
  const lines: string[] = [];
  lines.push(`farm ${v.module}: vip ${v.vip === null ? 'none (cloud mode)' : v.vips.join(' ')}, balance ${v.balance}, ${v.buckets} buckets, seed ${seedText(v.seed)}`);
  lines.push(`members (UP): ${membersText(v.members)}`);
  if (v.vip === null) lines.push("cloud mode: the provider's load balancer spreads clients; this map is not used by a filter");
  lines.push('');
  const rows = [['NODE', 'WEIGHT', 'BUCKETS', 'SHARE']];
  for (const l of v.load) rows.push([l.node, String(l.weight), String(l.buckets), `${l.percent.toFixed(1)}%`]);
  if (v.unowned > 0) rows.push(['(none)', '-', String(v.unowned), `${(Math.round((1000 * v.unowned) / v.buckets) / 10).toFixed(1)}%`]);
  lines.push(table(rows));
  if (v.unowned > 0) lines.push(`${v.unowned} bucket${v.unowned === 1 ? ' has' : 's have'} no owner: their clients get no answer`);
  if (!buckets) return lines.join('\n');
  lines.push('');
  lines.push('buckets per node:');
  const width = Math.max(0, ...v.members.map((n) => n.name.length));
  for (const n of v.members) lines.push(...wrap(`  ${n.name.padEnd(width)}  `, rangesText(v.ranges[n.name] ?? [])));
  return lines.join('\n');
}

export function formatFarmWho(v: FarmWhoView): string {
  const port = v.port === null ? '' : ` port ${v.port}`;
  return [
    `${v.client}${port} -> bucket ${v.bucket} of ${v.buckets} -> ${v.node ?? 'no node (no member owns this bucket)'}`,
    `farm ${v.module}: ${v.hashExpr}`,
    `members (UP): ${membersText(v.members)}`,
  ].join('\n');
}

async function upNodesFromDaemon(configDir: string, module: string, api?: string, token?: string): Promise<string[]> {
  const target = targetFromConfig(configDir, api, token);
  const status = await apiRequest<ClusterStatus>(target, 'GET', '/api/v1/status');
  return upNodesOf(status, module);
}

function usageError(message: string): CroftError {
  return new CroftError('CROFT_ERR_USAGE', `${message}\n${usage}`);
}

export async function farmCommand(argv: string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['config', 'api', 'token', 'port', 'members']);
  rejectUnknown(args, ['config', 'api', 'token', 'json', 'port', 'members', 'buckets']);
  const [sub, module, client, ...extra] = [...args.positionals, ...args.rest];
  if (sub !== 'map' && sub !== 'who') throw usageError(sub === undefined ? 'missing map or who' : `unknown farm command "${sub}"`);
  if (module === undefined) throw usageError('missing <module>');
  if (sub === 'map' && client !== undefined) throw usageError(`unexpected argument "${client}"`);
  if (sub === 'who' && client === undefined) throw usageError('missing <client-ip>');
  if (extra.length > 0) throw usageError(`unexpected argument "${extra[0]}"`);
  if (sub === 'map' && args.flags.has('port')) throw usageError('--port is for croft farm who');
  let port: number | undefined;
  const portText = flagString(args, 'port');
  if (args.flags.has('port')) {
    port = Number(portText);
    if (portText === undefined || !/^\d+$/.test(portText) || port > 65535) throw usageError(`--port expects a port number from 0 to 65535, got ${portText ?? 'nothing'}`);
  }

  const configDir = flagString(args, 'config') ?? defaultConfigDir;
  const config = loadConfig(configDir);
  farmModule(config, module); // fail on a wrong module before asking the daemon
  const membersFlag = args.flags.get('members');
  let upNodes: string[];
  if (membersFlag !== undefined) {
    if (membersFlag === true) throw usageError('--members expects a list of nodes: --members n1,n2');
    upNodes = membersFlag.split(',').map((s) => s.trim()).filter((s) => s !== '');
    const m = config.modules.find((x) => x.name === module);
    const strangers = upNodes.filter((n) => !m?.nodes.includes(n));
    if (strangers.length > 0) throw usageError(`--members: ${strangers.join(', ')} not among the nodes of module ${module} (${m?.nodes.join(', ')})`);
  } else {
    upNodes = await upNodesFromDaemon(configDir, module, flagString(args, 'api'), flagString(args, 'token'));
  }

  const json = args.flags.has('json');
  if (sub === 'map') {
    const view = farmMap(config, module, upNodes);
    out.log(json ? JSON.stringify(view, null, 2) : formatFarmMap(view, args.flags.has('buckets')));
  } else {
    const view = farmWho(config, module, upNodes, client as string, port);
    out.log(json ? JSON.stringify(view, null, 2) : formatFarmWho(view));
  }
  return 0;
}
