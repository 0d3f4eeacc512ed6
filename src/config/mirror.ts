// The keys of a mirror module (kind: mirror): their schema, the checks across keys and files that
// the schema cannot express (two nodes, absolute non-nested dirs, a LAN of cluster.yaml, a witness
// with what it needs), and the conversion into MirrorConfig with its defaults. Its scripts
// (start_prim/stop_prim) and checkers (with `scope`) are in schema.ts, beside the common ones.
import path from 'node:path';
import { defaults } from './defaults.js';
import type { ConfigProblem } from './problems.js';
import { interfaceName, ms, nameSchema, port, type JsonSchema } from './schema-parts.js';
import { canonicalIp, checkVips, vipSchema, vipsOf } from './vips.js';
import { list, obj, type Obj } from './raw.js';
import type { DataPath, Source } from './source.js';
import type { MirrorConfig, MirrorWitnessConfig } from './types.js';

const nodeName = nameSchema('node name');

/** Schema of the mirror keys (snake_case), merged into the module schema of kind mirror. */
export const mirrorProperties: Record<string, JsonSchema> = {
  vip: vipSchema("an IPv4 or IPv6 address, a list of them (IPv4 and IPv6 mixed), or 'none' (no VIP)"),
  interface: interfaceName,
  dirs: {
    type: 'array',
    minItems: 1,
    maxItems: 16,
    uniqueItems: true,
    // An item is a path, or a mapping { path, exclude } (the string keywords apply to the
    // first, the object ones to the second: one schema, no anyOf noise in the errors).
    items: {
      type: ['string', 'object'],
      pattern: '^/',
      additionalProperties: false,
      required: ['path'],
      properties: {
        path: { type: 'string', pattern: '^/', expect: 'an absolute directory path' },
        exclude: {
          type: 'array',
          minItems: 1,
          maxItems: 64,
          uniqueItems: true,
          items: { type: 'string', minLength: 1, maxLength: 4096, expect: 'a path inside the directory (relative to it, or absolute under it)' },
          expect: 'a list of paths inside the directory that are not replicated',
        },
      },
      expect: 'an absolute directory path, or a mapping with path (absolute) and exclude (paths inside it)',
    },
    expect: 'a list of absolute directory paths (the replicated directories), each one a path or { path, exclude }',
  },
  ack: { type: 'string', enum: ['received', 'durable'] },
  mode: { type: 'string', enum: ['every-change', 'on-sync'] },
  xattrs: { type: 'boolean' },
  ack_timeout_ms: ms(10, 600_000),
  port,
  lan: {
    type: 'string',
    pattern: '^[a-z0-9]([a-z0-9-]*[a-z0-9])?$',
    maxLength: 63,
    expect: 'the name of a LAN of cluster.yaml',
  },
  zone_bytes: {
    type: 'integer',
    enum: [...defaults.mirror.zoneBytesChoices],
    expect: `a power of two from 65536 to 1048576 (${defaults.mirror.zoneBytesChoices.join(', ')})`,
  },
  witness: {
    type: 'object',
    additionalProperties: false,
    required: ['type'],
    properties: {
      type: { type: 'string', enum: ['none', 'ping', 'redis'] },
      addresses: {
        type: 'array',
        minItems: 1,
        maxItems: 16,
        items: { type: 'string', check: 'ip', expect: 'an IP address' },
        expect: 'a list of IP addresses to ping',
      },
      url: { type: 'string', pattern: '^redis://[^/:\\s]+(:[0-9]{1,5})?/?$', expect: 'a redis://host:port URL' },
      key: { type: 'string', minLength: 1, maxLength: 200, expect: 'a Redis key' },
      ttl_ms: ms(100, 600_000),
    },
  },
  prim_preference: nodeName,
  peer_wait_ms: ms(0, 3_600_000),
  verify_every: {
    type: 'string',
    pattern: '^[0-9]{1,7}(s|m|h|d)$',
    expect: "a duration: a number and a unit s, m, h or d (\"6h\", \"30m\"), from 5s to 90d",
  },
  resync_max_bytes_per_s: {
    type: 'integer',
    minimum: 65_536,
    maximum: 1e12,
    expect: 'bytes per second from 65536 to 1000000000000 (the reintegration bandwidth cap)',
  },
};

const durationUnits: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** Bounds of verify_every: often enough to matter, not so often it is a load. */
export const VERIFY_EVERY_MIN_MS = 5_000;
export const VERIFY_EVERY_MAX_MS = 90 * 86_400_000;

/** Milliseconds of a duration that matched the schema's pattern ("6h"). */
export function durationMs(d: string): number {
  return Number(d.slice(0, -1)) * durationUnits[d.slice(-1)]!;
}

/**
 * The excluded paths of one dirs item, relative to its path, or the reason one is refused: it
 * must stay inside the directory (no '..' out of it, not the directory itself, absolute only
 * under it), normalized.
 */
export function excludedPath(dir: string, raw: string): { rel: string } | { error: string } {
  if (raw.includes('\0')) return { error: 'a path cannot hold a NUL byte' };
  if (/[*?[]/.test(raw)) return { error: `${JSON.stringify(raw)}: patterns are not supported; expected a literal path (its whole subtree is excluded)` };
  let rel = raw;
  if (raw.startsWith('/')) {
    if (!raw.startsWith(`${dir}/`)) return { error: `${raw} is not inside ${dir}; expected a path under it` };
    rel = raw.slice(dir.length + 1);
  }
  const normalized = path.posix.normalize(rel).replace(/\/+$/, '');
  if (normalized === '..' || normalized.startsWith('../')) return { error: `${JSON.stringify(raw)} escapes ${dir}; expected a path inside it` };
  if (normalized === '.' || normalized === '') return { error: `${JSON.stringify(raw)} is the directory itself; remove the dir instead` };
  if (normalized !== rel) return { error: `expected a normalized path (${normalized}): no '..', '.', '//' or trailing '/'` };
  return { rel };
}

/** Keys a mirror module must have. */
export const mirrorRequired: readonly string[] = ['vip', 'dirs'];

export interface MirrorFacts {
  /** Nodes of the module (its `nodes`, else every node of cluster.yaml); undefined when unknown. */
  moduleNodes: string[] | undefined;
  /** LAN names of cluster.yaml, when usable. */
  lans: string[] | undefined;
  /** Every node address of cluster.yaml, with where it is ("n1 on lan0"). */
  addresses: Map<string, string>;
}

/** Checks of a mirror module that JSON Schema cannot express. Reads the raw data defensively. */
export function checkMirror(source: Source, facts: MirrorFacts): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const data = obj(source.data);
  if (!data || data.kind !== 'mirror') return problems;
  const report = (p: DataPath, message: string, anchor: 'key' | 'value' = 'value'): void => {
    problems.push(source.problem(p, message, anchor));
  };

  const nodes = facts.moduleNodes;
  if (nodes && nodes.length !== 2) {
    report(['nodes'], `a mirror runs on exactly two nodes; got ${nodes.length} (${nodes.join(', ')})${'nodes' in data ? '' : ': the default is every node of cluster.yaml, so give nodes: [a, b]'}`, 'nodes' in data ? 'value' : 'key');
  }

  if (data.vip === 'none') {
    if ('interface' in data) report(['interface'], 'interface has no effect without a VIP (vip: none): remove it, or give a VIP', 'key');
  } else {
    problems.push(...checkVips(source, data.vip, facts.addresses, 'the VIP moves with the primary'));
  }

  const items = list(data.dirs) ?? [];
  const dirs = items.map((d) => (typeof d === 'string' ? d : obj(d)?.path));
  dirs.forEach((d, i) => {
    if (typeof d !== 'string' || !d.startsWith('/')) return;
    const at = (typeof items[i] === 'string' ? ['dirs', i] : ['dirs', i, 'path']) as DataPath;
    const normalized = path.posix.normalize(d).replace(/\/+$/, '');
    if (normalized === '') {
      report(at, 'the root directory cannot be replicated; expected an application directory');
      return;
    }
    if (normalized !== d) {
      report(at, `expected a normalized path (${normalized}): no '..', '.', '//' or trailing '/'`);
      return;
    }
    dirs.forEach((o, j) => {
      if (j === i || typeof o !== 'string') return;
      if (d.startsWith(`${o}/`)) report(at, `${d} is inside dirs[${j}] (${o}); expected directories that do not contain each other`);
    });
    (list(obj(items[i])?.exclude) ?? []).forEach((x, k) => {
      if (typeof x !== 'string') return;
      const r = excludedPath(d, x);
      if ('error' in r) report(['dirs', i, 'exclude', k], r.error);
    });
  });

  if (typeof data.verify_every === 'string' && /^[0-9]{1,7}(s|m|h|d)$/.test(data.verify_every)) {
    const v = durationMs(data.verify_every);
    if (v < VERIFY_EVERY_MIN_MS || v > VERIFY_EVERY_MAX_MS) report(['verify_every'], `${data.verify_every} is out of range; expected from 5s to 90d`);
  }

  const lan = typeof data.lan === 'string' ? data.lan : undefined;
  if (lan !== undefined && facts.lans && !facts.lans.includes(lan)) {
    report(['lan'], `unknown LAN "${lan}"; expected one of the lans of cluster.yaml: ${facts.lans.join(', ')}`);
  }

  const pref = typeof data.prim_preference === 'string' ? data.prim_preference : undefined;
  if (pref !== undefined && nodes && !nodes.includes(pref)) {
    report(['prim_preference'], `"${pref}" is not a node of this module; expected one of ${nodes.join(', ')}`);
  }

  const port = Number.isInteger(data.port) ? (data.port as number) : defaults.mirror.port;
  if (port + dirs.length - 1 > 65535) report(['port'], `dirs[i] uses port + i: ${port} + ${dirs.length - 1} is above 65535`);

  const w = obj(data.witness);
  if (w) {
    const type = w.type;
    const needs: Record<string, string[]> = { none: [], ping: ['addresses'], redis: ['url'] };
    const allowed: Record<string, string[]> = { none: ['type'], ping: ['type', 'addresses', 'ttl_ms'], redis: ['type', 'url', 'key', 'ttl_ms'] };
    if (typeof type === 'string' && type in needs) {
      for (const k of needs[type]!) if (!(k in w)) report(['witness', 'type'], `a ${type} witness needs ${k}`);
      for (const k of Object.keys(w)) {
        if (!allowed[type]!.includes(k) && k in (mirrorProperties.witness as { properties: Obj }).properties) {
          report(['witness', k], `${k} has no meaning for a ${type} witness; remove it`, 'key');
        }
      }
    }
  }

  (list(data.checkers) ?? []).forEach((raw, i) => {
    const c = obj(raw);
    if (!c) return;
    const scope = c.scope ?? (c.type === 'module' ? 'dependency' : 'app');
    const onFailure = c.on_failure ?? (c.type === 'module' ? 'wait' : 'restart');
    if (scope === 'app' && onFailure === 'wait') {
      report(['checkers', i, 'on_failure' in c ? 'on_failure' : 'scope'], 'on_failure: wait needs scope: dependency (an app checker runs on the primary only: it restarts or stops the application)');
    }
  });
  return problems;
}

// The data has passed the schema and checkMirror: these shapes hold.
type Raw = Record<string, any>;

function witnessOf(w: Raw | undefined, clusterName: string, moduleName: string): MirrorWitnessConfig {
  const type = w?.type ?? 'none';
  if (type === 'ping') return { type, addresses: [...w!.addresses], validityMs: w!.ttl_ms ?? defaults.mirror.pingValidityMs };
  if (type === 'redis') {
    const url = new URL(w!.url);
    return {
      type,
      host: url.hostname,
      port: url.port === '' ? defaults.mirror.redisPort : Number(url.port),
      key: w!.key ?? `croft:${clusterName}:${moduleName}`,
      ttlMs: w!.ttl_ms ?? defaults.mirror.redisTtlMs,
    };
  }
  return { type: 'none' };
}

/** MirrorConfig of a validated mirror module. */
export function toMirrorConfig(d: Raw, o: { clusterName: string; moduleName: string; lans: readonly string[]; heartbeatTimeoutMs: number }): MirrorConfig {
  const vips = vipsOf(d.vip).map(canonicalIp);
  const vip: string | null = vips[0] ?? null;
  const checkerScopes: Record<string, 'app' | 'dependency'> = {};
  ((d.checkers ?? []) as Raw[]).forEach((c, i) => {
    const name: string = c.name ?? `${c.type}-${i}`;
    checkerScopes[name] = c.scope ?? (c.type === 'module' ? 'dependency' : 'app');
  });
  const lan = d.lan === undefined ? 0 : o.lans.indexOf(d.lan);
  return {
    vip,
    vips,
    interface: vip === null ? null : (d.interface ?? null),
    dirs: (d.dirs as (string | Raw)[]).map((x) => (typeof x === 'string' ? x : x.path)),
    excludes: (d.dirs as (string | Raw)[]).map((x) => (typeof x === 'string' ? [] : ((x.exclude ?? []) as string[]).map((e) => {
      const r = excludedPath(x.path, e);
      return 'rel' in r ? r.rel : e;
    }))),
    verifyEveryMs: d.verify_every === undefined ? null : durationMs(d.verify_every),
    resyncMaxBytesPerS: d.resync_max_bytes_per_s ?? null,
    ack: d.ack ?? defaults.mirror.ack,
    mode: d.mode ?? defaults.mirror.mode,
    xattrs: d.xattrs ?? defaults.mirror.xattrs,
    ackTimeoutMs: d.ack_timeout_ms ?? defaults.mirror.ackTimeoutMs,
    port: d.port ?? defaults.mirror.port,
    lan: lan < 0 ? 0 : lan,
    zoneBytes: d.zone_bytes ?? defaults.mirror.zoneBytes,
    witness: witnessOf(d.witness, o.clusterName, o.moduleName),
    primPreference: d.prim_preference ?? null,
    peerWaitMs: d.peer_wait_ms ?? defaults.mirror.peerWaitTimeouts * o.heartbeatTimeoutMs,
    checkerScopes,
  };
}
