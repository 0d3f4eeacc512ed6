// What a reload (`croft reload`, SIGHUP) would change: the pure comparison of the running
// configuration with the one just read. Modules are compared whole (every validated field, the
// file they come from included); the scripts they name are run from disk at each start and stop,
// so an edited script needs no reload and is not compared. cluster.yaml is compared field by field:
// the daemon applies none of its changes live (top/daemon/daemon.ts, reload).
import { isDeepStrictEqual } from 'node:util';
import type { ClusterConfig, Config, ModuleConfig } from './types.js';

export interface ConfigDiff {
  /** Module names, each sorted. */
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
  /** The cluster.yaml fields that differ (`nodes`, `api`, `key`, ...): each needs a daemon restart. */
  cluster: string[];
}

/** cluster.yaml fields, in the order a message lists them (`file`, where it was read, is no setting). */
const clusterFields = ['name', 'nodes', 'lans', 'heartbeat', 'key', 'api', 'stateDir', 'notify'] as const satisfies readonly (keyof ClusterConfig)[];

/** The YAML key of each field, for messages. */
const yamlKey: Record<(typeof clusterFields)[number], string> = {
  name: 'name', nodes: 'nodes', lans: 'lans', heartbeat: 'heartbeat', key: 'key', api: 'api', stateDir: 'state_dir', notify: 'notify',
};

export function diffConfig(running: Config, next: Config): ConfigDiff {
  const before = new Map<string, ModuleConfig>(running.modules.map((m) => [m.name, m]));
  const after = new Map<string, ModuleConfig>(next.modules.map((m) => [m.name, m]));
  const diff: ConfigDiff = { added: [], removed: [], changed: [], unchanged: [], cluster: [] };
  for (const [name, m] of after) {
    const old = before.get(name);
    if (!old) diff.added.push(name);
    else if (isDeepStrictEqual(old, m)) diff.unchanged.push(name);
    else diff.changed.push(name);
  }
  for (const name of before.keys()) if (!after.has(name)) diff.removed.push(name);
  for (const field of clusterFields) {
    // key is a Buffer: isDeepStrictEqual compares its bytes.
    if (!isDeepStrictEqual(running.cluster[field], next.cluster[field])) diff.cluster.push(yamlKey[field]);
  }
  for (const list of [diff.added, diff.removed, diff.changed, diff.unchanged]) list.sort();
  return diff;
}
