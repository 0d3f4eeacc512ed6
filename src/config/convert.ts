// From validated YAML data (snake_case) to the types the rest of croft uses (camelCase, defaults
// applied, paths absolute). Only called when validation found no problem, so it asserts instead of
// reporting.
import assert from 'node:assert/strict';
import path from 'node:path';
import { defaults, readyStates } from './defaults.js';
import { toFarmConfig } from './farm.js';
import { toMirrorConfig } from './mirror.js';
import { toNotifyConfig } from './notify.js';
import { checkerName, moduleName } from './semantics.js';
import type { Source } from './source.js';
import type { CheckerConfig, ClusterConfig, FailureAction, ModuleConfig, ModuleKind } from './types.js';

// The data has passed the schema, so these shapes hold: `any` here only spares re-checking them.
type Raw = Record<string, any>;

export function toClusterConfig(source: Source, dir: string, key: Buffer): ClusterConfig {
  const d = source.data as Raw;
  const hb: Raw = d.heartbeat ?? {};
  const api: Raw = d.api ?? {};
  const nodes: Raw = d.nodes;
  const tls: Raw | undefined = api.tls;
  return {
    file: source.file,
    name: d.name,
    key,
    heartbeat: {
      port: hb.port ?? defaults.heartbeat.port,
      intervalMs: hb.interval_ms ?? defaults.heartbeat.intervalMs,
      timeoutMs: hb.timeout_ms ?? defaults.heartbeat.timeoutMs,
    },
    lans: d.lans ?? [...defaults.lans],
    nodes: Object.entries(nodes).map(([name, n]: [string, Raw]) => ({
      name,
      addresses: [...n.addresses],
      weight: n.weight ?? defaults.node.weight,
    })),
    api: {
      host: api.host ?? defaults.api.host,
      port: api.port ?? defaults.api.port,
      socket: api.socket ?? defaults.api.socket,
      tokens: [...(api.tokens ?? [])],
      users: (api.users ?? []).map((u: Raw) => ({ name: u.name, password: u.password, role: u.role ?? 'admin' })),
      ...(api.allowed_hosts ? { allowedHosts: [...api.allowed_hosts] } : {}),
      ...(api.metrics_auth !== undefined ? { metricsAuth: api.metrics_auth } : {}),
      ...(tls ? { tls: { cert: path.resolve(dir, tls.cert), key: path.resolve(dir, tls.key) } } : {}),
    },
    stateDir: d.state_dir ?? defaults.stateDir,
    notify: toNotifyConfig(d.notify, dir),
  };
}

export function toModuleConfigs(sources: readonly Source[], cluster: ClusterConfig): ModuleConfig[] {
  const kinds = new Map<string, ModuleKind>(sources.map((s) => [moduleName(s), (s.data as Raw).kind]));
  const clusterWeights = new Map(cluster.nodes.map((n) => [n.name, n.weight]));
  return sources.map((source) => {
    const d = source.data as Raw;
    const dir = path.dirname(source.file);
    const scripts: Raw = d.scripts ?? {};
    const restart: Raw = d.restart ?? {};
    const abs = (p: string | undefined): string | undefined => (p === undefined ? undefined : path.resolve(dir, p));
    const startBoth = abs(scripts.start_both);
    const stopBoth = abs(scripts.stop_both);
    const startPrim = abs(scripts.start_prim);
    const stopPrim = abs(scripts.stop_prim);
    const name = moduleName(source);
    const nodes: string[] = d.nodes ? [...d.nodes] : cluster.nodes.map((n) => n.name);
    return {
      file: source.file,
      name,
      kind: d.kind,
      nodes,
      autostart: d.autostart ?? defaults.module.autostart,
      scripts: {
        ...(startBoth !== undefined ? { startBoth } : {}),
        ...(stopBoth !== undefined ? { stopBoth } : {}),
        ...(startPrim !== undefined ? { startPrim } : {}),
        ...(stopPrim !== undefined ? { stopPrim } : {}),
        timeoutMs: scripts.timeout_ms ?? defaults.scripts.timeoutMs,
        killGraceMs: scripts.kill_grace_ms ?? defaults.scripts.killGraceMs,
      },
      restart: {
        maxloop: restart.maxloop ?? defaults.restart.maxloop,
        windowMs: restart.window_ms ?? defaults.restart.windowMs,
      },
      checkers: ((d.checkers ?? []) as Raw[]).map((c, i) => toChecker(c, i, dir, kinds)),
      farm: d.kind === 'farm' ? toFarmConfig(d, cluster.name, name, nodes, clusterWeights) : undefined,
      ...(d.kind === 'mirror'
        ? { mirror: toMirrorConfig(d, { clusterName: cluster.name, moduleName: name, lans: cluster.lans, heartbeatTimeoutMs: cluster.heartbeat.timeoutMs }) }
        : {}),
    };
  });
}

function toChecker(c: Raw, index: number, dir: string, kinds: Map<string, ModuleKind>): CheckerConfig {
  const isModule = c.type === 'module';
  const base = {
    name: checkerName(c, index),
    intervalMs: c.interval_ms ?? defaults.checker.intervalMs,
    timeoutMs: c.timeout_ms ?? defaults.checker.timeoutMs,
    rise: c.rise ?? (isModule ? defaults.checker.riseModule : defaults.checker.rise),
    fall: c.fall ?? defaults.checker.fall,
    onFailure: (c.on_failure ?? (isModule ? defaults.checker.onFailureModule : defaults.checker.onFailure)) as FailureAction,
  };
  switch (c.type) {
    case 'tcp':
      return { ...base, type: 'tcp', host: c.host, port: c.port };
    case 'http':
      return { ...base, type: 'http', url: c.url, expectStatus: [...(c.expect_status ?? defaults.checker.expectStatus)] };
    case 'ping':
      return { ...base, type: 'ping', host: c.host };
    case 'interface':
      return { ...base, type: 'interface', interface: c.interface };
    case 'script':
      return { ...base, type: 'script', path: path.resolve(dir, c.path) };
    case 'redis':
      return {
        ...base,
        type: 'redis',
        host: c.host ?? defaults.checker.redisHost,
        port: c.port ?? defaults.checker.redisPort,
        ...(c.password !== undefined ? { password: c.password } : {}),
        ...(c.db !== undefined ? { db: c.db } : {}),
      };
    case 'module': {
      const kind = kinds.get(c.module);
      assert.ok(kind, `module checker names a module that validation accepted: ${c.module}`);
      return {
        ...base,
        type: 'module',
        module: c.module,
        node: c.node ?? defaults.checker.moduleNode,
        states: [...(c.states ?? readyStates[kind])],
      };
    }
    default:
      assert.fail(`checker type ${String(c.type)} passed the schema`);
  }
}
