// The keys of a farm module (kind: farm): their schema, the checks across keys and files that the
// schema cannot express, and the conversion into FarmConfig with the derived defaults (seed and
// virtual MAC from the cluster and module names, so every node derives the same ones).
import { createHash } from 'node:crypto';
import { defaults } from './defaults.js';
import type { ConfigProblem } from './problems.js';
import { interfaceName, type JsonSchema } from './schema-parts.js';
import { canonicalIp, checkVips, vipSchema, vipsOf } from './vips.js';
import { obj } from './raw.js';
import type { DataPath, Source } from './source.js';
import type { FarmBalance, FarmConfig } from './types.js';

export const farmBalances: readonly FarmBalance[] = ['source-ip', 'source-ip-port', 'network'];
export const farmMacModes: readonly FarmConfig['macMode'][] = ['invisible', 'multicast'];

const macPattern = '^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$';

/** Schema of the farm keys (snake_case), merged into the module schema of kind farm. */
export const farmProperties: Record<string, JsonSchema> = {
  vip: vipSchema("an IPv4 or IPv6 address, a list of them (IPv4 and IPv6 mixed), or 'none' (cloud mode: no VIP)"),
  interface: interfaceName,
  mac_mode: { type: 'string', enum: [...farmMacModes] },
  virtual_mac: { type: 'string', pattern: macPattern, expect: 'a MAC address like 02:00:5e:10:00:01' },
  buckets: { type: 'integer', minimum: 1, maximum: defaults.farm.bucketsMax },
  balance: { type: 'string', enum: [...farmBalances] },
  ports: {
    type: 'array',
    uniqueItems: true,
    maxItems: 64,
    items: { type: 'integer', minimum: 1, maximum: 65535, expect: 'a port number from 1 to 65535' },
    expect: 'a list of port numbers',
  },
  seed: { type: 'integer', minimum: 0, maximum: 0xffffffff, expect: 'an integer from 0 to 4294967295 (a u32)' },
  quorum: { type: 'string', enum: ['majority', 'none'] },
  drain_ms: { type: 'integer', minimum: 0, maximum: 3_600_000, unit: 'milliseconds' },
  weights: {
    type: 'object',
    propertyNames: {
      type: 'string',
      pattern: '^[a-z0-9]([a-z0-9-]*[a-z0-9])?$',
      maxLength: 63,
      expect: 'a node name',
    },
    additionalProperties: { type: 'number', minimum: 0, maximum: 1000, expect: 'a weight from 0 to 1000 (0: the node never gets buckets)' },
    expect: 'a mapping of node names to weights (n2: 2)',
  },
};

/** Keys a farm module must have. */
export const farmRequired: readonly string[] = ['vip'];

/** Keys that only mean something with a VIP: refused in cloud mode so nobody believes they act. */
const vipOnlyKeys = ['interface', 'mac_mode', 'virtual_mac'] as const;

/** Stable bytes from the cluster and module names, for one purpose (seed, MAC). */
function derive(purpose: string, cluster: string, module: string): Buffer {
  return createHash('sha256').update(`croft-farm-${purpose}\0${cluster}\0${module}`).digest();
}

/** The default jhash seed: the first 4 bytes of sha256 over the cluster and module names. */
export function deriveFarmSeed(cluster: string, module: string): number {
  return derive('seed', cluster, module).readUInt32BE(0);
}

/**
 * The default virtual MAC: 02:xx:xx:xx:xx:xx (locally administered unicast, bit 0x02 set, 0x01
 * clear) in invisible mode, 03:xx:... (locally administered multicast) in multicast mode; the
 * other five bytes from sha256 over the cluster and module names, so two farms differ.
 */
export function deriveVirtualMac(cluster: string, module: string, macMode: FarmConfig['macMode']): string {
  const bytes = derive('mac', cluster, module).subarray(0, 6);
  bytes[0] = macMode === 'multicast' ? 0x03 : 0x02;
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

const macByte0 = (mac: string): number => parseInt(mac.slice(0, 2), 16);
const isMulticastMac = (mac: string): boolean => (macByte0(mac) & 0x01) !== 0;

export interface FarmFacts {
  /** Nodes of the module (its `nodes`, else every node of cluster.yaml); undefined when unknown. */
  moduleNodes: string[] | undefined;
  /** Cluster weight of each node, when cluster.yaml is usable. */
  clusterWeights: Map<string, number> | undefined;
  /** Every node address of cluster.yaml, with where it is ("n1 on lan0"). */
  addresses: Map<string, string>;
}

/** Checks of a farm module that JSON Schema cannot express. Reads the raw data defensively. */
export function checkFarm(source: Source, facts: FarmFacts): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const data = obj(source.data);
  if (!data || data.kind !== 'farm') return problems;
  const report = (p: DataPath, message: string, anchor: 'key' | 'value' = 'value'): void => {
    problems.push(source.problem(p, message, anchor));
  };

  if (data.vip === 'none') {
    for (const k of vipOnlyKeys) {
      if (k in data) report([k], `${k} has no effect in cloud mode (vip: none): remove it, or give a VIP`, 'key');
    }
  } else {
    problems.push(...checkVips(source, data.vip, facts.addresses, 'the VIP is shared by the farm'));
  }

  const macMode = data.mac_mode === 'multicast' ? 'multicast' : 'invisible';
  const mac = typeof data.virtual_mac === 'string' && new RegExp(macPattern).test(data.virtual_mac) ? data.virtual_mac : undefined;
  if (mac !== undefined) {
    if (/^(00:){5}00$/i.test(mac) || /^(ff:){5}ff$/i.test(mac)) {
      report(['virtual_mac'], `${mac} cannot be a virtual MAC; expected a ${macMode === 'multicast' ? 'multicast' : 'unicast'} MAC such as ${macMode === 'multicast' ? '03' : '02'}:00:5e:10:00:01`);
    } else if (macMode === 'invisible' && isMulticastMac(mac)) {
      report(['virtual_mac'], `${mac} is a multicast MAC (bit 0x01 of the first byte set); mac_mode invisible needs a unicast one, e.g. ${(macByte0(mac) & 0xfe).toString(16).padStart(2, '0')}${mac.slice(2)}, or set mac_mode: multicast`);
    } else if (macMode === 'multicast' && !isMulticastMac(mac)) {
      report(['virtual_mac'], `${mac} is a unicast MAC; mac_mode multicast needs a multicast one (bit 0x01 of the first byte set), e.g. ${(macByte0(mac) | 0x01).toString(16).padStart(2, '0')}${mac.slice(2)}`);
    }
  }

  const weights = obj(data.weights);
  if (weights && facts.moduleNodes) {
    const nodes = facts.moduleNodes;
    for (const name of Object.keys(weights)) {
      if (!nodes.includes(name)) {
        report(['weights', name], `"${name}" is not a node of this module; expected one of ${nodes.join(', ')}`, 'key');
      }
    }
  }
  if (facts.moduleNodes && facts.clusterWeights) {
    const clusterWeights = facts.clusterWeights;
    const effective = facts.moduleNodes.map((n) => {
      const w = weights?.[n];
      return typeof w === 'number' ? w : (clusterWeights.get(n) ?? defaults.node.weight);
    });
    if (effective.length > 0 && effective.every((w) => w === 0)) {
      report(['weights'], 'every node of the module has weight 0: no node would ever get a bucket; give at least one a weight above 0', 'key');
    }
  }
  return problems;
}

// The data has passed the schema and checkFarm: these shapes hold.
type Raw = Record<string, any>;

/**
 * FarmConfig of a validated farm module. `weights` holds every node of the module: its `weights:`
 * entry, else its cluster.yaml weight. `seed` is always set (derived when not given); `virtualMac`
 * is set whenever there is a VIP (derived when not given) and null in cloud mode.
 */
export function toFarmConfig(d: Raw, clusterName: string, moduleName: string, nodes: readonly string[], clusterWeights: ReadonlyMap<string, number>): FarmConfig {
  const vips = vipsOf(d.vip).map(canonicalIp);
  const vip: string | null = vips[0] ?? null;
  const macMode: FarmConfig['macMode'] = d.mac_mode ?? defaults.farm.macMode;
  const given: Raw = d.weights ?? {};
  const weights: Record<string, number> = {};
  for (const n of nodes) weights[n] = given[n] ?? clusterWeights.get(n) ?? defaults.node.weight;
  return {
    vip,
    vips,
    interface: vip === null ? null : (d.interface ?? defaults.farm.interface),
    macMode,
    virtualMac: vip === null ? null : (d.virtual_mac?.toLowerCase() ?? deriveVirtualMac(clusterName, moduleName, macMode)),
    buckets: d.buckets ?? defaults.farm.buckets,
    balance: d.balance ?? defaults.farm.balance,
    ports: [...(d.ports ?? [])].sort((a: number, b: number) => a - b),
    seed: d.seed ?? deriveFarmSeed(clusterName, moduleName),
    // With 3 nodes or more a majority can be told apart from a minority; with 2, a dead peer
    // cannot be told from a cut link, and stopping the survivor would turn every failure into an
    // outage (as Pacemaker's two_node mode, the pair keeps running).
    quorum: d.quorum ?? (nodes.length >= 3 ? 'majority' : 'none'),
    drainMs: d.drain_ms ?? defaults.farm.drainMs,
    weights,
  };
}
